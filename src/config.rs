//! The node's configuration: a TOML file (`--config`), every field optional with
//! embedded defaults, validated at start with precise errors; command-line flags
//! override it.
//!
//! ```toml
//! data_dir = "stele-data"
//! listen = "127.0.0.1:8443"
//! origin = "ledger.example.com/prod"   # first start only: names the log
//! snapshot_interval_tx = 100000        # or keys / 4 if more (0: no KV snapshots)
//!
//! [batching]
//! batch_entries_max = 1000
//! batch_wait_us = 1000
//! workers = 1
//!
//! [api]
//! body_bytes_max = 1048576
//! requests_in_flight_max = 4096
//! request_timeout_ms = 30000
//! connections_max = 8192                # lowered to the open-file limit - 256
//! header_read_timeout_ms = 10000        # TLS handshake and request head
//! idle_timeout_ms = 60000               # no byte and no request in flight
//! body_read_timeout_ms = 30000          # every route: 408, then close
//! uri_bytes_max = 8192                  # 414 beyond
//! headers_max = 64                      # 431 beyond (at most 100)
//! header_bytes_max = 16384              # 431 beyond
//!
//! [ledger]
//! chunk_bytes = 67108864
//! leaves_in_memory = 65536              # older leaves are read back from the ledger
//! committed_chunks_live = 2             # older committed chunks move to <ledger>/archive
//!
//! [cluster]                           # absent: a cluster of one
//! node_id = 1
//! heartbeat_ms = 100
//! election_timeout_min_ms = 500
//! election_timeout_max_ms = 1000
//! snapshot_entries = 10000            # Raft entries before a snapshot (0: never)
//! log_entries_kept = 1000             # entries behind a snapshot still sent as log
//! snapshot_transfer = "resume"        # a joining node gets the state, then fetches the ledger ("full": with it)
//! fetch_skipped = true                # false: a node that joined from a snapshot keeps the suffix
//! learner_catch_up_timeout_ms = 600000 # a node added must follow the log within it
//! join = false                       # true: wait to be added (POST /admin/members)
//! [[cluster.members]]                   # every voter, this node included
//! id = 1
//! address = "127.0.0.1:9441"            # its HTTPS address (clients and peers)
//! public_key = "<64 hex: its node key>" # `<data dir>/node.key` holds the secret
//!
//! [admin]                             # absent: no /admin routes
//! token_sha256 = "<64 hex: SHA-256 of the admin bearer token>"
//! partition_injection = false           # tests only: PUT /admin/partition
//!
//! [[users]]
//! name = "alice"
//! token_sha256 = "<64 hex: SHA-256 of alice's bearer token>"
//!
//! [[auditors]]                        # read receipts, not /app (403)
//! name = "audit-team"
//! token_sha256 = "<64 hex: SHA-256 of the auditor's bearer token>"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;
use stele_history::Digest;

/// Default data folder.
pub const DATA_DIR_DEFAULT: &str = "stele-data";

/// Default listening address.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:8443";

/// Default RESP (Redis protocol) address of a node without `[cluster]`
/// (`redis-cli -p 6380`; 6379 is left to a Redis on the same machine).
pub const RESP_LISTEN_DEFAULT: &str = "127.0.0.1:6380";

/// Default committed transactions between snapshots.
pub const SNAPSHOT_INTERVAL_TX_DEFAULT: u64 = 100_000;

/// Most frontend workers a configuration may ask for.
pub const WORKERS_MAX: usize = 64;

/// Longest batch wait a configuration may ask for (a second).
pub const BATCH_WAIT_US_MAX: u64 = 1_000_000;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the node keeps everything.
    pub data_dir: Option<PathBuf>,
    /// HTTPS address.
    pub listen: Option<SocketAddr>,
    /// The checkpoint origin, used when the data folder is first created.
    pub origin: Option<String>,
    /// Committed transactions between KV snapshots, at least (0: none): the
    /// interval grows to half of what the newest snapshot covers, so snapshots
    /// cost at most 3x the last one in all. A restart applies only the ledger
    /// suffix after the newest valid snapshot.
    pub snapshot_interval_tx: Option<u64>,
    /// Batching and execution.
    pub batching: Batching,
    /// HTTP limits.
    pub api: Api,
    /// The RESP2 (Redis protocol) listener.
    pub resp: RespSection,
    /// Ledger files.
    pub ledger: LedgerSection,
    /// Users allowed on `/app/*`. With none, the first start creates one token in
    /// `<data dir>/user.token`.
    pub users: Vec<User>,
    /// Auditors: their tokens read receipts (as users' do) but get 403 on
    /// `/app/*`. Same fields as `[[users]]`.
    pub auditors: Vec<User>,
    /// The cluster; absent: a cluster of one.
    pub cluster: Option<Cluster>,
    /// The operator's routes; absent: none are served.
    pub admin: Option<Admin>,
}

/// `[admin]`: routes for operators and tests, behind their own bearer token
/// (not a user's).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// SHA-256 of the admin bearer token, 64 lowercase hex digits.
    pub token_sha256: Digest,
    /// Serves `GET`/`PUT /admin/partition`, which makes this node drop the
    /// traffic of chosen peers (partition tests). Off unless set.
    #[serde(default)]
    pub partition_injection: bool,
}

/// `[cluster] mode`: which protocol orders the batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderingMode {
    /// Raft (openraft): crash faults, n = 2f + 1.
    #[default]
    Raft,
    /// BFT (Malachite's Tendermint core, `docs/bft.md`): up to f arbitrary
    /// faults among n = 3f + 1 validators weighted by `power`.
    Bft,
}

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// This node's id (one of the members).
    pub node_id: u64,
    /// The ordering protocol behind the consensus seam: `raft` (the default)
    /// or `bft` (each member a validator with its `power`; no shared signing
    /// key; members cannot change).
    #[serde(default)]
    pub mode: OrderingMode,
    /// BFT mode: the propose timeout of round 0, in milliseconds (a round's
    /// proposer that is silent this long is replaced).
    #[serde(default = "bft_propose_timeout_ms_default")]
    pub bft_propose_timeout_ms: u64,
    /// BFT mode: the prevote and precommit timeouts of round 0, in milliseconds.
    #[serde(default = "bft_vote_timeout_ms_default")]
    pub bft_vote_timeout_ms: u64,
    /// BFT mode: what each timeout grows by per round, in milliseconds.
    #[serde(default = "bft_timeout_delta_ms_default")]
    pub bft_timeout_delta_ms: u64,
    /// Between the leader's heartbeats, in milliseconds.
    #[serde(default = "heartbeat_ms_default")]
    pub heartbeat_ms: u64,
    /// Shortest election timeout, in milliseconds.
    #[serde(default = "election_timeout_min_ms_default")]
    pub election_timeout_min_ms: u64,
    /// Longest election timeout, in milliseconds.
    #[serde(default = "election_timeout_max_ms_default")]
    pub election_timeout_max_ms: u64,
    /// Applied Raft entries before the first snapshot, and the least between
    /// two (a larger state waits for a quarter of its keys in transactions:
    /// building one writes the state). 0: never. A node further behind than
    /// the last snapshot catches up from it (the KV state and the tree's
    /// frontier, or with `snapshot_transfer = "full"` the KV state and the
    /// ledger) instead of re-executing the log.
    #[serde(default = "snapshot_entries_default")]
    pub snapshot_entries: u64,
    /// Entries kept behind a snapshot that are still sent as log entries.
    #[serde(default = "log_entries_kept_default")]
    pub log_entries_kept: u64,
    /// What a snapshot sent to a node far behind carries: `resume` (the
    /// default: the KV state and the tree's frontier; the receiver serves in
    /// O(state), its ledger resumes at the snapshot and it fetches the
    /// batches before it in the background) or `full` (the KV state and the
    /// ledger up to it, in the transfer). Give every node the same setting.
    #[serde(default)]
    pub snapshot_transfer: SnapshotTransfer,
    /// A node whose ledger resumed at a snapshot (a resume transfer) fetches
    /// the batches before it from its peers in the background, checked
    /// against the signed checkpoints, and ends with the whole ledger.
    /// `false`: it keeps only the suffix from where it joined.
    #[serde(default = "fetch_skipped_default")]
    pub fetch_skipped: bool,
    /// Longest wait for a node added with `POST /admin/members` to acknowledge
    /// the leader's log before it votes; past it, it is removed again (504).
    #[serde(default = "learner_catch_up_timeout_ms_default")]
    pub learner_catch_up_timeout_ms: u64,
    /// Every voter, this node included (for a joining node: the members it
    /// joins, for their addresses and keys, and itself).
    pub members: Vec<Member>,
    /// This node joins a running cluster: it waits until the leader adds it
    /// (`POST /admin/members`) instead of founding a cluster with `members`.
    #[serde(default)]
    pub join: bool,
}

fn bft_propose_timeout_ms_default() -> u64 {
    3_000
}

fn bft_vote_timeout_ms_default() -> u64 {
    1_000
}

fn bft_timeout_delta_ms_default() -> u64 {
    500
}

/// Longest BFT timeout a configuration may ask for (a minute).
pub const BFT_TIMEOUT_MS_MAX: u64 = 60_000;

fn heartbeat_ms_default() -> u64 {
    stele_consensus::RaftTiming::default().heartbeat_ms
}

fn election_timeout_min_ms_default() -> u64 {
    stele_consensus::RaftTiming::default().election_timeout_min_ms
}

fn election_timeout_max_ms_default() -> u64 {
    stele_consensus::RaftTiming::default().election_timeout_max_ms
}

fn snapshot_entries_default() -> u64 {
    stele_consensus::RaftLogPolicy::default().snapshot_entries
}

fn fetch_skipped_default() -> bool {
    stele_consensus::RaftLogPolicy::default().fetch_skipped
}

fn learner_catch_up_timeout_ms_default() -> u64 {
    stele_consensus::RaftTiming::default().learner_catch_up_timeout_ms
}

fn log_entries_kept_default() -> u64 {
    stele_consensus::RaftLogPolicy::default().entries_kept
}

/// `[cluster] snapshot_transfer`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotTransfer {
    /// The KV state and the ledger up to the snapshot.
    Full,
    /// The KV state and the tree's frontier and checkpoint at the snapshot
    /// (the ledger before it is fetched afterwards, `fetch_skipped`).
    #[default]
    Resume,
}

/// `[[cluster.members]]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Its node id.
    pub id: u64,
    /// Its HTTPS address, `host:port`.
    pub address: String,
    /// Its pinned Ed25519 node key, 64 hex digits (in BFT mode also its
    /// validator key).
    pub public_key: Digest,
    /// BFT mode: its voting power (at least 1).
    #[serde(default = "power_default")]
    pub power: u64,
}

fn power_default() -> u64 {
    1
}

/// `[batching]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Batching {
    /// Most commands per batch.
    pub batch_entries_max: usize,
    /// Longest wait for a batch to fill while the log is still syncing the
    /// previous one, in microseconds (an idle log takes a batch at once).
    pub batch_wait_us: u64,
    /// Frontend workers (1 is fastest on 2 cores today; see the README).
    pub workers: usize,
}

impl Default for Batching {
    fn default() -> Self {
        Batching {
            batch_entries_max: stele_consensus::BATCH_ENTRIES_DEFAULT,
            batch_wait_us: stele_consensus::BATCH_WAIT_US_DEFAULT,
            workers: 1,
        }
    }
}

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// Largest request body, in bytes.
    pub body_bytes_max: usize,
    /// Most requests served at once.
    pub requests_in_flight_max: usize,
    /// Longest a request may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// Most connections open at once (lowered to the open-file limit minus a
    /// reserve for the ledger).
    pub connections_max: usize,
    /// Longest TLS handshake and request head, in milliseconds.
    pub header_read_timeout_ms: u64,
    /// Longest idle connection (no byte, no request in flight), in milliseconds.
    pub idle_timeout_ms: u64,
    /// Longest request body read, every route, in milliseconds.
    pub body_read_timeout_ms: u64,
    /// Longest request target, in bytes.
    pub uri_bytes_max: usize,
    /// Most request header fields.
    pub headers_max: usize,
    /// Most bytes of request header names and values.
    pub header_bytes_max: usize,
}

impl Default for Api {
    fn default() -> Self {
        let defaults = stele_api::ApiConfig::default();
        Api {
            body_bytes_max: defaults.body_bytes_max,
            requests_in_flight_max: defaults.requests_in_flight_max,
            request_timeout_ms: defaults.request_timeout_ms,
            connections_max: defaults.connections_max,
            header_read_timeout_ms: defaults.header_read_timeout_ms,
            idle_timeout_ms: defaults.idle_timeout_ms,
            body_read_timeout_ms: defaults.body_read_timeout_ms,
            uri_bytes_max: defaults.uri_bytes_max,
            headers_max: defaults.headers_max,
            header_bytes_max: defaults.header_bytes_max,
        }
    }
}

impl Api {
    /// Checks the connection and request bounds (the rest is checked in
    /// [`Config::validate`]).
    fn validate_connections(&self) -> anyhow::Result<()> {
        for (name, value) in [
            ("connections_max", self.connections_max as u64),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
            ("uri_bytes_max", self.uri_bytes_max as u64),
            ("headers_max", self.headers_max as u64),
            ("header_bytes_max", self.header_bytes_max as u64),
        ] {
            if value == 0 {
                bail!("api.{name} must be at least 1");
            }
        }
        let hyper_max = stele_api::limits::HYPER_HEADERS_MAX;
        if self.headers_max >= hyper_max {
            bail!(
                "api.headers_max is {}; it must be below {hyper_max} (hyper's own limit)",
                self.headers_max
            );
        }
        Ok(())
    }
}

/// `[resp]`: the RESP2 listener (`redis-cli`, Redis client libraries).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RespSection {
    /// `ADDR:PORT`, or `off`. Unset: [`RESP_LISTEN_DEFAULT`] on a node without
    /// `[cluster]`, off on a cluster member. Plain TCP on loopback only: any
    /// other address is served with TLS (the node's certificate).
    pub listen: Option<String>,
    /// Most RESP connections open at once.
    pub connections_max: usize,
    /// A connection silent this long is closed, in milliseconds.
    pub idle_timeout_ms: u64,
}

impl Default for RespSection {
    fn default() -> Self {
        RespSection {
            listen: None,
            connections_max: stele_resp::limits::RESP_CONNECTIONS_MAX_DEFAULT,
            idle_timeout_ms: stele_resp::limits::RESP_IDLE_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// Parses a RESP listen setting: `Some(addr)`, or `None` for `off`.
pub fn parse_resp_listen(text: &str) -> anyhow::Result<Option<SocketAddr>> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .with_context(|| format!("resp listen {text:?}: expected ADDR:PORT or off"))
}

impl RespSection {
    /// Where RESP listens, if anywhere: `flag` (`--resp-listen`) over the
    /// file, over the default (on only without `[cluster]`).
    pub fn address(
        &self,
        flag: Option<&str>,
        clustered: bool,
    ) -> anyhow::Result<Option<SocketAddr>> {
        match flag.or(self.listen.as_deref()) {
            Some(text) => parse_resp_listen(text),
            None if clustered => Ok(None),
            None => parse_resp_listen(RESP_LISTEN_DEFAULT),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.connections_max == 0 || self.idle_timeout_ms == 0 {
            bail!("resp.connections_max and resp.idle_timeout_ms must be at least 1");
        }
        if let Some(listen) = &self.listen {
            parse_resp_listen(listen)?;
        }
        Ok(())
    }
}

/// `[ledger]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSection {
    /// Size past which a chunk is closed.
    pub chunk_bytes: u64,
    /// Committed leaves of the Merkle tree kept in memory (32-64 bytes each);
    /// receipts and proofs of older ones read their leaves back from the
    /// ledger, 256 at a time.
    pub leaves_in_memory: u64,
    /// Committed chunks kept in the ledger folder; older ones move to its
    /// `archive/` folder (a folder or a link to a mount), where they are still
    /// read and verified. Absent: none move.
    pub committed_chunks_live: Option<usize>,
}

impl Default for LedgerSection {
    fn default() -> Self {
        LedgerSection {
            chunk_bytes: stele_ledger::CHUNK_BYTES_DEFAULT,
            leaves_in_memory: stele_history::state::LEAVES_COMMITTED_KEPT_DEFAULT,
            committed_chunks_live: None,
        }
    }
}

/// `[[users]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// A name for logs.
    pub name: String,
    /// SHA-256 of the user's bearer token, 64 lowercase hex digits (the token
    /// itself is never stored in the file).
    pub token_sha256: Digest,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration {}", path.display()))?;
        let config: Config = toml::from_str(&text)
            .with_context(|| format!("in the configuration {}", path.display()))?;
        config
            .validate()
            .with_context(|| format!("in the configuration {}", path.display()))?;
        Ok(config)
    }

    /// Checks every range.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.resp.validate()?;
        let batching = &self.batching;
        if batching.batch_entries_max == 0
            || batching.batch_entries_max > stele_ledger::BATCH_TXS_MAX
        {
            bail!(
                "batching.batch_entries_max is {}; it must be 1..={}",
                batching.batch_entries_max,
                stele_ledger::BATCH_TXS_MAX
            );
        }
        if batching.batch_wait_us > BATCH_WAIT_US_MAX {
            bail!(
                "batching.batch_wait_us is {}; at most {BATCH_WAIT_US_MAX}",
                batching.batch_wait_us
            );
        }
        if batching.workers == 0 || batching.workers > WORKERS_MAX {
            bail!(
                "batching.workers is {}; it must be 1..={WORKERS_MAX}",
                batching.workers
            );
        }
        if self.api.body_bytes_max == 0
            || self.api.body_bytes_max > stele_frontends::COMMAND_BYTES_MAX
        {
            bail!(
                "api.body_bytes_max is {}; it must be 1..={}",
                self.api.body_bytes_max,
                stele_frontends::COMMAND_BYTES_MAX
            );
        }
        if self.api.requests_in_flight_max == 0 {
            bail!("api.requests_in_flight_max must be at least 1");
        }
        if self.api.request_timeout_ms == 0 {
            bail!("api.request_timeout_ms must be at least 1");
        }
        self.api.validate_connections()?;
        if self.ledger.chunk_bytes < stele_ledger::CHUNK_BYTES_MIN {
            bail!(
                "ledger.chunk_bytes is {}; at least {}",
                self.ledger.chunk_bytes,
                stele_ledger::CHUNK_BYTES_MIN
            );
        }
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        if let Some(origin) = &self.origin {
            if origin.is_empty() || origin.contains(char::is_whitespace) || origin.contains('+') {
                bail!("origin {origin:?} must be non-empty, without spaces or '+'");
            }
        }
        Ok(())
    }
}

impl Cluster {
    fn validate(&self) -> anyhow::Result<()> {
        if !self.members.iter().any(|member| member.id == self.node_id) {
            bail!(
                "cluster.node_id {} is not among cluster.members",
                self.node_id
            );
        }
        let mut ids: Vec<u64> = self.members.iter().map(|member| member.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|pair| pair[0] == pair[1]) {
            bail!("cluster.members lists a node id twice");
        }
        if self.heartbeat_ms == 0 || self.election_timeout_min_ms <= self.heartbeat_ms {
            bail!(
                "cluster.heartbeat_ms must be at least 1 and below cluster.election_timeout_min_ms"
            );
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            bail!("cluster.election_timeout_max_ms must be above cluster.election_timeout_min_ms");
        }
        if self.mode == OrderingMode::Bft {
            if self.join {
                bail!("cluster.join: BFT mode has a fixed validator set, nodes cannot join");
            }
            if self.members.iter().any(|member| member.power == 0) {
                bail!("cluster.members power must be at least 1");
            }
            for (name, value) in [
                ("bft_propose_timeout_ms", self.bft_propose_timeout_ms),
                ("bft_vote_timeout_ms", self.bft_vote_timeout_ms),
            ] {
                if value == 0 || value > BFT_TIMEOUT_MS_MAX {
                    bail!("cluster.{name} must be between 1 and {BFT_TIMEOUT_MS_MAX}");
                }
            }
            if self.bft_timeout_delta_ms > BFT_TIMEOUT_MS_MAX {
                bail!("cluster.bft_timeout_delta_ms must be at most {BFT_TIMEOUT_MS_MAX}");
            }
        }
        for member in &self.members {
            if member.address.parse::<SocketAddr>().is_err() && !member.address.contains(':') {
                bail!(
                    "cluster.members address {:?} of node {} must be host:port",
                    member.address,
                    member.id
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn resp_listens_by_default_only_outside_a_cluster() {
        let config: Config = toml::from_str("").unwrap();
        let default = Some("127.0.0.1:6380".parse().unwrap());
        assert_eq!(config.resp.address(None, false).unwrap(), default);
        assert_eq!(config.resp.address(None, true).unwrap(), None);
        assert_eq!(config.resp.address(Some("off"), false).unwrap(), None);
        assert_eq!(
            config.resp.address(Some("127.0.0.1:0"), true).unwrap(),
            Some("127.0.0.1:0".parse().unwrap())
        );
        let config: Config = toml::from_str("[resp]\nlisten = \"0.0.0.0:7000\"").unwrap();
        assert_eq!(
            config.resp.address(None, true).unwrap(),
            Some("0.0.0.0:7000".parse().unwrap())
        );
        let bad: Config = toml::from_str("[resp]\nlisten = \"nowhere\"").unwrap();
        assert!(bad.validate().is_err());
        assert!(toml::from_str::<Config>("[resp]\nlistne = \"off\"").is_err());
    }

    #[test]
    fn the_ordering_mode_is_raft_unless_said_and_an_unknown_one_is_named() {
        let member = format!(
            "[[cluster.members]]\nid = 1\naddress = \"127.0.0.1:1\"\npublic_key = \"{}\"\n",
            "00".repeat(32)
        );
        let base = format!("[cluster]\nnode_id = 1\n{member}");
        let config: Config = toml::from_str(&base).unwrap();
        assert_eq!(config.cluster.unwrap().mode, OrderingMode::Raft);
        let raft = base.replace("node_id = 1\n", "node_id = 1\nmode = \"raft\"\n");
        let config: Config = toml::from_str(&raft).unwrap();
        assert_eq!(config.cluster.unwrap().mode, OrderingMode::Raft);
        let bft = base.replace("node_id = 1\n", "node_id = 1\nmode = \"bft\"\n");
        let config: Config = toml::from_str(&bft).unwrap();
        assert_eq!(config.cluster.unwrap().mode, OrderingMode::Bft);
        let pbft = base.replace("node_id = 1\n", "node_id = 1\nmode = \"pbft\"\n");
        let error = toml::from_str::<Config>(&pbft).unwrap_err().to_string();
        assert!(
            error.contains("pbft") && error.contains("bft") && error.contains("raft"),
            "{error}"
        );
    }

    #[test]
    fn bft_mode_refuses_joining_zero_powers_and_bad_timeouts() {
        let member = format!(
            "[[cluster.members]]\nid = 1\naddress = \"127.0.0.1:1\"\npublic_key = \"{}\"\n",
            "00".repeat(32)
        );
        let base = format!("[cluster]\nnode_id = 1\nmode = \"bft\"\n{member}");
        assert!(parse(&base).is_ok());
        let joining = base.replace("mode = \"bft\"\n", "mode = \"bft\"\njoin = true\n");
        assert!(parse(&joining).unwrap_err().to_string().contains("join"));
        let zero = format!("{base}power = 0\n");
        assert!(parse(&zero).unwrap_err().to_string().contains("power"));
        let slow = base.replace(
            "mode = \"bft\"\n",
            "mode = \"bft\"\nbft_propose_timeout_ms = 0\n",
        );
        assert!(parse(&slow)
            .unwrap_err()
            .to_string()
            .contains("bft_propose_timeout_ms"));
    }

    #[test]
    fn defaults_and_overrides() {
        let config = parse("").unwrap();
        assert_eq!(
            config.batching.batch_entries_max,
            stele_consensus::BATCH_ENTRIES_DEFAULT
        );
        let config = parse("listen = \"0.0.0.0:9000\"\n[batching]\nworkers = 2\n").unwrap();
        assert_eq!(config.listen.unwrap().port(), 9000);
        assert_eq!(config.batching.workers, 2);
    }

    #[test]
    fn errors_name_the_field() {
        for (text, fragment) in [
            ("lisen = \"x\"", "lisen"),
            ("listen = \"nowhere\"", "listen"),
            ("[batching]\nworkers = 0", "batching.workers"),
            ("[batching]\nbatch_entries_max = 0", "batch_entries_max"),
            ("[api]\nbody_bytes_max = 0", "body_bytes_max"),
            ("[api]\nidle_timeout_ms = 0", "api.idle_timeout_ms"),
            ("[api]\nheaders_max = 100", "api.headers_max"),
            ("[ledger]\nchunk_bytes = 1", "chunk_bytes"),
            (
                "[[users]]\nname = \"a\"\ntoken_sha256 = \"xyz\"",
                "token_sha256",
            ),
            ("origin = \"has space\"", "origin"),
            ("[admin]\npartition_injection = true", "token_sha256"),
        ] {
            let error = format!("{:#}", parse(text).unwrap_err());
            assert!(error.contains(fragment), "{text}: {error}");
        }
    }
}
