//! The workloads: what each request of a run is, the state a run needs first
//! (SmallBank accounts, transactions to fetch receipts of), and what counts as
//! a success.
//!
//! Keys and ids are drawn from a random run id, so two runs against the same
//! node neither collide (SmallBank `AccountExists`) nor rewrite each other's
//! records.

use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;

use super::target::{Connection, Reply, Request};

/// The trivial route the ceiling hammers: no token, no body, no engine work
/// beyond reading one number.
pub const CEILING_PATH: &str = "/node/commit";
/// SmallBank accounts one `create_accounts` request creates (the API's limit).
const ACCOUNTS_PER_CREATE: u64 = 1000;
/// The starting balances of every SmallBank account, in cents: large enough
/// that the mix's small debits rarely abort.
const ACCOUNT_BALANCE_CENTS: u64 = 1_000_000;
/// Log records written before a `receipt` run, whose receipts it then fetches.
const RECEIPT_TRANSACTIONS: u64 = 256;
/// Tries, and the pause between them, for the last of those records' receipt
/// to be served (it is as soon as it commits; this only bounds a slow node).
const RECEIPT_READY_TRIES: usize = 100;
const RECEIPT_READY_PAUSE: Duration = Duration::from_millis(50);
/// Distinct keys each client cycles through in `kv-put`: bounds the node's
/// state however long the run.
const KV_KEYS_PER_CLIENT: u64 = 100_000;
/// etcd's JSON gateway: a put, and the serializable range the ceiling reads.
const ETCD_PUT_PATH: &str = "/v3/kv/put";
const ETCD_RANGE_PATH: &str = "/v3/kv/range";
/// The key the etcd ceiling reads (absent or not: the answer is as cheap).
const ETCD_CEILING_KEY: &[u8] = b"stele-bench-ceiling";
/// Bits of a log record id below the client index (the sequence number).
const LOG_SEQUENCE_BITS: u32 = 30;
/// Bits of a log record id below the run id (client index and sequence).
const LOG_RUN_SHIFT: u32 = 40;

/// What a run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// `POST /app/log`: logging-app records of `--value-bytes`.
    Log,
    /// `POST /app/tx`: one put of `--value-bytes` per transaction.
    KvPut,
    /// `POST /app/smallbank/{op}`: the SmallBank mix over `--accounts`.
    Smallbank,
    /// `GET /node/receipt`: receipts of earlier commits.
    Receipt,
    /// Not Stele: `POST /v3/kv/put` on etcd's JSON gateway (`http://`, no
    /// token), one put of `--value-bytes` per request, keys as `kv-put`'s; its
    /// ceiling is a serializable `POST /v3/kv/range` of one key (the gateway
    /// and gRPC path without consensus). For the Stele-vs-etcd comparison.
    EtcdPut,
}

impl WorkloadKind {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Log => "log",
            WorkloadKind::KvPut => "kv-put",
            WorkloadKind::Smallbank => "smallbank",
            WorkloadKind::Receipt => "receipt",
            WorkloadKind::EtcdPut => "etcd-put",
        }
    }

    /// The route(s) it drives, for reports.
    pub fn route(self) -> &'static str {
        match self {
            WorkloadKind::Log => "POST /app/log",
            WorkloadKind::KvPut => "POST /app/tx",
            WorkloadKind::Smallbank => "POST /app/smallbank/{op}",
            WorkloadKind::Receipt => "GET /node/receipt",
            WorkloadKind::EtcdPut => "POST /v3/kv/put",
        }
    }

    /// Whether it drives etcd rather than a Stele node.
    pub fn is_etcd(self) -> bool {
        self == WorkloadKind::EtcdPut
    }

    /// The route of its ceiling, for reports.
    pub fn ceiling_route(self) -> String {
        if self.is_etcd() {
            format!("POST {ETCD_RANGE_PATH} (serializable)")
        } else {
            format!("GET {CEILING_PATH}")
        }
    }
}

/// A small, fast, seeded generator (SplitMix64): the SmallBank mix must not
/// cost the client more than the request does, and need not be cryptographic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for client `client` of a run seeded with `seed`.
    pub fn new(seed: u64, client: usize) -> Rng {
        Rng(seed ^ (client as u64).wrapping_mul(0xA24B_AED4_963E_E407))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0; the modulo bias is negligible here).
    pub fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0, "below(0)");
        self.next_u64() % bound.max(1)
    }
}

/// Everything a run's requests are made from; shared by every client.
#[derive(Debug)]
pub struct Plan {
    kind: WorkloadKind,
    /// The value of every write: `--value-bytes` of `x` (needs no JSON escape).
    value: String,
    /// The same value in base64, as etcd's gateway takes bytes.
    value_base64: String,
    run_id: u64,
    first_account: u64,
    accounts: u64,
    receipt_ids: Vec<String>,
}

impl Plan {
    /// The plan of a `kind` run; `run_id` keeps its keys apart from other runs'.
    pub fn new(kind: WorkloadKind, value_bytes: usize, accounts: u64, run_id: u64) -> Plan {
        // Below 2^24, so that log ids (run id << 40) fit in a u64.
        let run_id = run_id & 0xFF_FFFF;
        let value = "x".repeat(value_bytes);
        Plan {
            kind,
            value_base64: base64(value.as_bytes()),
            value,
            run_id,
            first_account: run_id * super::ACCOUNTS_MAX,
            accounts,
            receipt_ids: Vec::new(),
        }
    }

    /// The workload.
    pub fn kind(&self) -> WorkloadKind {
        self.kind
    }

    /// Creates what the workload needs on the service, through `connection`:
    /// the SmallBank accounts, or the records whose receipts a `receipt` run
    /// fetches. Bounded: at most `ACCOUNTS_MAX / 1000` or
    /// [`RECEIPT_TRANSACTIONS`] requests.
    pub async fn prepare(&mut self, connection: &mut Connection) -> anyhow::Result<()> {
        match self.kind {
            WorkloadKind::Log | WorkloadKind::KvPut | WorkloadKind::EtcdPut => Ok(()),
            WorkloadKind::Smallbank => self.create_accounts(connection).await,
            WorkloadKind::Receipt => self.write_records(connection).await,
        }
    }

    async fn create_accounts(&self, connection: &mut Connection) -> anyhow::Result<()> {
        let mut first = self.first_account;
        let end = self.first_account + self.accounts;
        while first < end {
            let count = (end - first).min(ACCOUNTS_PER_CREATE);
            let body = format!(
                "{{\"first_account\":{first},\"count\":{count},\
                 \"checking_cents\":{ACCOUNT_BALANCE_CENTS},\"savings_cents\":{ACCOUNT_BALANCE_CENTS}}}"
            );
            let request = Request::post("/app/smallbank/create_accounts", body);
            let reply = send_expecting_success(connection, &request)
                .await
                .with_context(|| {
                    format!("creating SmallBank accounts {first}..{}", first + count)
                })?;
            drop(reply);
            first += count;
        }
        Ok(())
    }

    async fn write_records(&mut self, connection: &mut Connection) -> anyhow::Result<()> {
        for index in 0..RECEIPT_TRANSACTIONS {
            // Only the last waits for its commit: the earlier ones are ordered
            // before it, so they are committed by then too.
            let last = index + 1 == RECEIPT_TRANSACTIONS;
            let id = self.log_id(0, index);
            let body = format!("{{\"id\":{id},\"msg\":\"{}\"}}", self.value);
            let request = Request::post(format!("/app/log?wait={last}"), body);
            let reply = send_expecting_success(connection, &request)
                .await
                .context("writing the records whose receipts the run fetches")?;
            let answer: serde_json::Value = serde_json::from_slice(&reply.body)
                .context("the answer to POST /app/log is not JSON")?;
            let transaction_id = answer["transaction_id"]
                .as_str()
                .with_context(|| format!("POST /app/log answered no transaction_id: {answer}"))?;
            self.receipt_ids.push(transaction_id.to_owned());
        }
        let last = self
            .receipt_ids
            .last()
            .context("no record was written")?
            .clone();
        let request = Request::get(format!("/node/receipt?transaction_id={last}"));
        for _ in 0..RECEIPT_READY_TRIES {
            let reply = connection
                .send(&request)
                .await
                .context("fetching the first receipt")?;
            if reply.status.is_success() {
                return Ok(());
            }
            tokio::time::sleep(RECEIPT_READY_PAUSE).await;
        }
        bail!("the receipt of {last} was not served after {RECEIPT_READY_TRIES} tries")
    }

    /// One request before the run that must succeed, so that a wrong token,
    /// URL or certificate fails at once with the node's answer, not as a run
    /// of errors.
    pub fn probe(&self) -> Request {
        match self.kind {
            WorkloadKind::Smallbank => Request::post(
                "/app/smallbank/deposit_checking",
                format!("{{\"account\":{},\"amount_cents\":1}}", self.first_account),
            ),
            _ => self.request(0, u64::from(u32::MAX), &mut Rng::new(0, 0)),
        }
    }

    /// Request `sequence` of client `client`.
    pub fn request(&self, client: usize, sequence: u64, rng: &mut Rng) -> Request {
        match self.kind {
            WorkloadKind::Log => {
                let id = self.log_id(client, sequence);
                Request::post(
                    "/app/log",
                    format!("{{\"id\":{id},\"msg\":\"{}\"}}", self.value),
                )
            }
            WorkloadKind::KvPut => {
                let key = sequence % KV_KEYS_PER_CLIENT;
                Request::post(
                    "/app/tx",
                    format!(
                        "{{\"ops\":[{{\"op\":\"put\",\"map\":\"bench\",\"key\":\"{}-{client}-{key}\",\"value\":\"{}\"}}]}}",
                        self.run_id, self.value
                    ),
                )
            }
            WorkloadKind::EtcdPut => {
                let key = sequence % KV_KEYS_PER_CLIENT;
                let key = base64(format!("bench/{}-{client}-{key}", self.run_id).as_bytes());
                Request::post(
                    ETCD_PUT_PATH,
                    format!("{{\"key\":\"{key}\",\"value\":\"{}\"}}", self.value_base64),
                )
            }
            WorkloadKind::Smallbank => self.smallbank(rng),
            WorkloadKind::Receipt => {
                let count = self.receipt_ids.len().max(1) as u64;
                // Spread over the records: a different one each time, so the
                // node cannot serve one cached proof.
                let index = usize::try_from(rng.below(count)).unwrap_or(0);
                let id = self.receipt_ids.get(index).map_or("0.0", String::as_str);
                Request::get(format!("/node/receipt?transaction_id={id}"))
            }
        }
    }

    /// The SmallBank write mix (balance reads are left out: a run measures
    /// commits). Amounts are small against the starting balances.
    fn smallbank(&self, rng: &mut Rng) -> Request {
        let index = rng.below(self.accounts);
        let account = self.first_account + index;
        // Another account (`from != to` is required): `accounts` >= 2.
        let other = self.first_account + (index + 1 + rng.below(self.accounts - 1)) % self.accounts;
        let amount = 1 + rng.below(100);
        let (op, body) = match rng.below(100) {
            0..25 => (
                "deposit_checking",
                format!("{{\"account\":{account},\"amount_cents\":{amount}}}"),
            ),
            25..45 => (
                "transact_savings",
                format!("{{\"account\":{account},\"amount_cents\":{amount}}}"),
            ),
            45..70 => (
                "send_payment",
                format!("{{\"from\":{account},\"to\":{other},\"amount_cents\":{amount}}}"),
            ),
            70..90 => (
                "write_check",
                format!("{{\"account\":{account},\"amount_cents\":{amount}}}"),
            ),
            _ => (
                "amalgamate",
                format!("{{\"from\":{account},\"to\":{other}}}"),
            ),
        };
        Request::post(format!("/app/smallbank/{op}"), body)
    }

    /// Whether a reply counts: for a write, committed (200 and `Committed`;
    /// every write waits for its commit); for a receipt, served.
    pub fn succeeded(&self, reply: &Reply) -> bool {
        if reply.status != reqwest::StatusCode::OK {
            return false;
        }
        match self.kind {
            WorkloadKind::Receipt => true,
            // etcd answers a put once it is committed and applied; errors are
            // non-200 (`{"error":..,"code":..}`).
            WorkloadKind::EtcdPut => contains(&reply.body, b"\"revision\""),
            _ => contains(&reply.body, b"\"Committed\""),
        }
    }

    /// The ceiling's request: Stele's trivial route, or etcd's serializable
    /// one-key range (answered by the member itself, no consensus).
    pub fn ceiling_request(&self) -> Request {
        if self.kind.is_etcd() {
            Request::post(
                ETCD_RANGE_PATH,
                format!(
                    "{{\"key\":\"{}\",\"serializable\":true}}",
                    base64(ETCD_CEILING_KEY)
                ),
            )
        } else {
            Request::get(CEILING_PATH)
        }
    }

    fn log_id(&self, client: usize, sequence: u64) -> u64 {
        let sequence = sequence & ((1 << LOG_SEQUENCE_BITS) - 1);
        (self.run_id << LOG_RUN_SHIFT) | ((client as u64) << LOG_SEQUENCE_BITS) | sequence
    }
}

/// Standard base64 with padding (what etcd's gateway takes for `bytes`).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                text.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

/// Whether `haystack` contains `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Sends `request`; anything but a 2xx is an error quoting the node's answer.
pub async fn send_expecting_success(
    connection: &mut Connection,
    request: &Request,
) -> anyhow::Result<Reply> {
    let reply = connection
        .send(request)
        .await
        .with_context(|| format!("{} {}{}", request.method, connection.base(), request.path))?;
    if !reply.status.is_success() {
        bail!(
            "{} {}{} answered {}: {}",
            request.method,
            connection.base(),
            request.path,
            reply.status,
            reply.excerpt()
        );
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn smallbank_requests_stay_in_range_and_never_pay_oneself() {
        for accounts in [2, 3, 100] {
            let plan = Plan::new(WorkloadKind::Smallbank, 8, accounts, 7);
            let range = plan.first_account..plan.first_account + accounts;
            let mut rng = Rng::new(1, 0);
            for sequence in 0..2_000 {
                let request = plan.request(0, sequence, &mut rng);
                assert!(request.path.starts_with("/app/smallbank/"), "{request:?}");
                let body: serde_json::Value =
                    serde_json::from_str(request.body.as_deref().unwrap()).unwrap();
                for field in ["account", "from", "to"] {
                    if let Some(account) = body[field].as_u64() {
                        assert!(range.contains(&account), "{request:?}");
                    }
                }
                if body["from"].is_u64() {
                    assert_ne!(body["from"], body["to"], "{request:?}");
                }
            }
        }
    }

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }

    #[test]
    fn etcd_puts_are_gateway_json() {
        let plan = Plan::new(WorkloadKind::EtcdPut, 3, 0, 5);
        let request = plan.request(2, 7, &mut Rng::new(0, 0));
        assert_eq!(request.path, "/v3/kv/put");
        let body: serde_json::Value =
            serde_json::from_str(request.body.as_deref().unwrap()).unwrap();
        assert_eq!(body["value"], "eHh4");
        assert_eq!(body["key"], base64(b"bench/5-2-7"));
        assert_eq!(plan.ceiling_request().path, "/v3/kv/range");
    }

    #[test]
    fn log_ids_are_distinct_across_clients_and_sequences() {
        let plan = Plan::new(WorkloadKind::Log, 4, 0, 0xFFFF_FFFF);
        let ids: std::collections::BTreeSet<u64> = (0..4)
            .flat_map(|client| (0..100).map(move |sequence| (client, sequence)))
            .map(|(client, sequence)| plan.log_id(client, sequence))
            .collect();
        assert_eq!(ids.len(), 400);
    }
}
