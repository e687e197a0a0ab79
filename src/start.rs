//! `stele start`: one node, on embedded defaults unless told otherwise.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use anyhow::Context;
use stele_api::prometheus_client::registry::Registry;
use stele_api::{ensure_self_signed, token_hash, write_peer_certificate, ApiConfig};
use stele_consensus::raft::network::{self, Partition, PeerAuth};
use stele_consensus::raft::SteleNode;
use stele_consensus::{ClusterSetup, Engine, EngineConfig, Fault, RaftLogPolicy, RaftTiming};
use stele_history::VerifyingKey;
use stele_ledger::{Ledger, LedgerConfig, LedgerError};

use crate::config::{Config, DATA_DIR_DEFAULT, LISTEN_DEFAULT};
use crate::datadir::DataDir;
use crate::node::NodeHandle;

/// Arguments of `stele start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// A TOML configuration file (see `src/config.rs` or the README); every
    /// setting has a default.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the node keeps its ledger, keys, certificate and token
    /// [default: ./stele-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The HTTPS address [default: 127.0.0.1:8443]; port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// The RESP (Redis protocol) address, or `off` [default: 127.0.0.1:6380
    /// without `[cluster]`, off in a cluster]; port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT|off")]
    pub resp_listen: Option<String>,
}

/// Runs the node until SIGINT or SIGTERM, then shuts down cleanly: stops
/// accepting, finishes in-flight requests (bounded grace period), makes every
/// executed batch durable, exits 0.
pub fn run(args: &StartArgs) -> anyhow::Result<()> {
    init_tracing();
    crate::datadir::restrict_new_files();
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| config.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DATA_DIR_DEFAULT));
    let listen = match args.listen.or(config.listen) {
        Some(listen) => listen,
        None => LISTEN_DEFAULT
            .parse()
            .context("the default listening address")?,
    };
    let dir = DataDir::open(&data_dir)?;
    let (identity, created) = dir.identity(config.origin.as_deref())?;
    if created {
        tracing::info!(origin = identity.origin(), "created a new service identity");
    }
    let bft = config
        .cluster
        .as_ref()
        .filter(|cluster| cluster.mode == crate::config::OrderingMode::Bft);
    let identity = match bft {
        Some(cluster) => validator_identity(identity, cluster, &dir)?,
        None => identity,
    };
    let ledger = open_ledger(&dir, &config, &identity)?;
    let engine_config = EngineConfig {
        batch_entries_max: config.batching.batch_entries_max,
        batch_wait_us: config.batching.batch_wait_us,
        workers: config.batching.workers,
        fault: fault_from_env()?,
        snapshot_dir: Some(dir.snapshots()),
        snapshot_interval_tx: config
            .snapshot_interval_tx
            .unwrap_or(crate::config::SNAPSHOT_INTERVAL_TX_DEFAULT),
        history_leaves_kept: config.ledger.leaves_in_memory,
        committed_chunks_live: config.ledger.committed_chunks_live,
    };
    let cluster = cluster_setup(&config, &dir, listen)?;
    let users = users(&dir, &config)?;
    let api_config = ApiConfig {
        body_bytes_max: config.api.body_bytes_max,
        user_token_hashes: users.iter().map(|user| user.token_sha256).collect(),
        auditor_token_hashes: config
            .auditors
            .iter()
            .map(|auditor| auditor.token_sha256.0)
            .collect(),
        requests_in_flight_max: config.api.requests_in_flight_max,
        request_timeout_ms: config.api.request_timeout_ms,
        ..api_bounds(&config.api)
    };
    let resp_listen = config
        .resp
        .address(args.resp_listen.as_deref(), config.cluster.is_some())?;
    // Descriptors: RESP's cap comes out of what HTTPS may use, so that the two
    // together still leave the ledger its reserve.
    let fd_budget = stele_api::connections::raise_fd_limit()
        .saturating_sub(stele_api::connections::FDS_RESERVED);
    let fd_budget = usize::try_from(fd_budget).unwrap_or(usize::MAX);
    let resp_connections_max = if resp_listen.is_some() {
        config.resp.connections_max.min(fd_budget / 2).max(1)
    } else {
        0
    };
    let mut server_config = api_config.clone();
    server_config.connections_max = server_config
        .connections_max
        .min(fd_budget.saturating_sub(resp_connections_max).max(1));
    let tls = ensure_self_signed(&dir.tls())?;
    let resp_config = stele_resp::RespConfig {
        users: users.into(),
        tls: match resp_listen {
            Some(addr) if !stele_resp::plain_allowed(&addr) => {
                let mut tls_config = (*stele_api::tls::server_config(&tls)?).clone();
                // RESP is not HTTP: no ALPN protocol to agree on.
                tls_config.alpn_protocols.clear();
                Some(Arc::new(tls_config))
            }
            _ => None,
        },
        connections_max: resp_connections_max,
        idle_timeout_ms: config.resp.idle_timeout_ms,
        node_id: String::new(),
        ..stele_resp::RespConfig::default()
    };
    let peers = serves_peers(&config);
    if peers {
        write_peer_certificate(&dir.tls(), cluster.node_id, &dir.node_key()?.to_bytes())?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("stele-http")
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(async {
        // Bind first: peers can reach this node while it replays and elects.
        let listener = std::net::TcpListener::bind(listen)
            .with_context(|| format!("listening on {listen}"))?;
        let addr = listener.local_addr().context("the bound address")?;
        // The protocol behind the consensus seam, from `[cluster] mode`.
        let mode = config
            .cluster
            .as_ref()
            .map(|cluster| cluster.mode)
            .unwrap_or_default();
        let engine = match (mode, bft) {
            (crate::config::OrderingMode::Bft, Some(section)) => {
                let setup = bft_setup(section, &dir)?;
                Arc::new(Engine::start_bft(ledger, identity, engine_config, cluster, setup).await?)
            }
            _ => Arc::new(Engine::start(ledger, identity, engine_config, cluster).await?),
        };
        tracing::info!(
            committed_seqno = engine.committed_seqno(),
            snapshot_seqno = engine.restored_from_snapshot(),
            "state recovered from the ledger"
        );
        let mut registry = Registry::default();
        let node = Arc::new(NodeHandle::new(
            Arc::clone(&engine),
            dir.ledger(),
            &mut registry,
        ));
        let mut router = stele_api::router(Arc::clone(&node), api_config, registry);
        if peers {
            router = router.merge(network::router(engine.peer_service()));
        }
        let router = router.merge(crate::admin::router(
            Arc::clone(&engine),
            config.admin.as_ref(),
        ));
        // RESP first: its line comes before the one tools wait for.
        let (resp_stop, resp_stopped) = tokio::sync::oneshot::channel::<()>();
        let resp_task = match resp_listen {
            Some(resp_addr) => {
                let listener = tokio::net::TcpListener::bind(resp_addr)
                    .await
                    .with_context(|| format!("listening for RESP on {resp_addr}"))?;
                let bound = listener.local_addr().context("the bound RESP address")?;
                let scheme = if resp_config.tls.is_some() {
                    "rediss"
                } else {
                    "redis"
                };
                println!("resp listening on {scheme}://{bound}");
                let node = Arc::clone(&node);
                let resp_config = stele_resp::RespConfig {
                    node_id: stele_api::Node::state(node.as_ref()).node_id,
                    ..resp_config
                };
                Some(tokio::spawn(async move {
                    let stopped = async {
                        let _ = resp_stopped.await;
                    };
                    if let Err(error) =
                        stele_resp::serve(node, listener, resp_config, stopped).await
                    {
                        tracing::error!(%error, "the RESP listener stopped");
                    }
                }))
            }
            None => None,
        };
        // The one line tools wait for (stdout); everything else is logged to stderr.
        println!("listening on https://{addr}");
        tracing::info!(%addr, data_dir = %dir.root().display(), "stele is serving");
        let fatal = Arc::new(std::sync::Mutex::new(None));
        let stop = stop_signal(Arc::downgrade(&engine), Arc::clone(&fatal));
        let served =
            stele_api::serve_listener_with(router, listener, tls, &server_config, stop).await;
        let _ = resp_stop.send(());
        if let Some(task) = resp_task {
            let _ = task.await;
        }
        drop(node);
        served?;
        let fatal = fatal.lock().map(|mut fatal| fatal.take()).unwrap_or(None);
        if let Some(reason) = fatal {
            // No clean shutdown: the engine cannot make anything durable any
            // more, and what it reported durable is. A supervisor restarts the
            // node, which recovers from its ledger.
            anyhow::bail!("fatal: {reason}; exiting so that the node is restarted");
        }
        tracing::info!("HTTP stopped; making the last batches durable");
        match Arc::try_unwrap(engine) {
            Ok(engine) => engine.shutdown().await,
            // Some request task still holds it: dropping the last reference
            // stops the executor; the ledger writer syncs on drop.
            Err(engine) => drop(engine),
        }
        anyhow::Ok(())
    });
    if served.is_err() {
        // A fatal error (or a failed start): threads stuck on the storage must
        // not keep the process from exiting.
        runtime.shutdown_timeout(std::time::Duration::from_millis(RUNTIME_STOP_MS));
        return served;
    }
    drop(runtime);
    tracing::info!("stopped");
    Ok(())
}

/// The connection and request bounds of `[api]` (the rest of [`ApiConfig`]
/// at its defaults, overridden by the caller).
fn api_bounds(api: &crate::config::Api) -> ApiConfig {
    ApiConfig {
        connections_max: api.connections_max,
        header_read_timeout_ms: api.header_read_timeout_ms,
        idle_timeout_ms: api.idle_timeout_ms,
        body_read_timeout_ms: api.body_read_timeout_ms,
        uri_bytes_max: api.uri_bytes_max,
        headers_max: api.headers_max,
        header_bytes_max: api.header_bytes_max,
        ..ApiConfig::default()
    }
}

/// Whether this node serves the peer routes and their certificate: only if it
/// may have peers, i.e. it is configured as a member of a `[cluster]`, or its
/// `[admin]` routes can add members to it.
fn serves_peers(config: &Config) -> bool {
    config.cluster.is_some() || config.admin.is_some()
}

/// The deliberate execution fault, from `STELE_TEST_FAULT` (tests only:
/// `corrupt-follower` or `corrupt-primary`; unset in production).
fn fault_from_env() -> anyhow::Result<Fault> {
    match std::env::var("STELE_TEST_FAULT").ok().as_deref() {
        None | Some("") => Ok(Fault::None),
        Some("corrupt-follower") => {
            tracing::warn!("STELE_TEST_FAULT: this node corrupts its re-execution");
            Ok(Fault::CorruptFollower)
        }
        Some("corrupt-primary") => {
            tracing::warn!("STELE_TEST_FAULT: this node corrupts the batches it proposes");
            Ok(Fault::CorruptPrimary)
        }
        Some(other) => anyhow::bail!(
            "STELE_TEST_FAULT={other:?}: expected corrupt-follower or corrupt-primary"
        ),
    }
}

/// Who this node is among whom: `[cluster]` of the configuration, or a cluster
/// of one listening on `listen`.
fn cluster_setup(
    config: &Config,
    dir: &DataDir,
    listen: SocketAddr,
) -> anyhow::Result<ClusterSetup> {
    let key = dir.node_key()?;
    let join = config.cluster.as_ref().is_some_and(|cluster| cluster.join);
    let (node_id, members, timing, log) = match &config.cluster {
        None => (
            1,
            vec![crate::config::Member {
                id: 1,
                address: listen.to_string(),
                public_key: stele_history::Digest(key.verifying_key().to_bytes()),
                power: 1,
            }],
            RaftTiming::default(),
            RaftLogPolicy::default(),
        ),
        Some(cluster) => (
            cluster.node_id,
            cluster.members.clone(),
            RaftTiming {
                heartbeat_ms: cluster.heartbeat_ms,
                election_timeout_min_ms: cluster.election_timeout_min_ms,
                election_timeout_max_ms: cluster.election_timeout_max_ms,
                learner_catch_up_timeout_ms: cluster.learner_catch_up_timeout_ms,
            },
            RaftLogPolicy {
                snapshot_entries: cluster.snapshot_entries,
                entries_kept: cluster.log_entries_kept,
                resume_transfers: cluster.snapshot_transfer
                    == crate::config::SnapshotTransfer::Resume,
                fetch_skipped: cluster.fetch_skipped,
            },
        ),
    };
    let mut keys = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    for member in &members {
        let public_key =
            VerifyingKey::from_bytes(member.public_key.as_bytes()).with_context(|| {
                format!("the public key of node {} is not an Ed25519 key", member.id)
            })?;
        keys.insert(member.id, public_key);
        nodes.insert(
            member.id,
            SteleNode::new(member.address.clone(), &public_key),
        );
    }
    if keys.get(&node_id) != Some(&key.verifying_key()) {
        anyhow::bail!(
            "{}/node.key does not match the public key configured for node {node_id}",
            dir.root().display()
        );
    }
    Ok(ClusterSetup {
        node_id,
        members: nodes,
        auth: Arc::new(PeerAuth::new(node_id, key, keys)),
        partition: Partition::default(),
        timing,
        log,
        join,
    })
}

/// BFT mode: the service identity as this validator holds it (its own node
/// key signs; the members' keys and powers certify committed checkpoints).
fn validator_identity(
    identity: stele_consensus::ServiceIdentity,
    cluster: &crate::config::Cluster,
    dir: &DataDir,
) -> anyhow::Result<stele_consensus::ServiceIdentity> {
    let validators = cluster
        .members
        .iter()
        .map(|member| {
            let key =
                VerifyingKey::from_bytes(member.public_key.as_bytes()).with_context(|| {
                    format!("the public key of node {} is not an Ed25519 key", member.id)
                })?;
            Ok((member.id, key, member.power))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let quorum = stele_history::ValidatorQuorum::new(identity.origin(), validators)
        .context("the BFT validators")?;
    Ok(identity.into_validator(dir.node_key()?, quorum)?)
}

/// BFT mode's setup from `[cluster]`.
fn bft_setup(
    cluster: &crate::config::Cluster,
    dir: &DataDir,
) -> anyhow::Result<stele_consensus::BftSetup> {
    let delta = std::time::Duration::from_millis(cluster.bft_timeout_delta_ms);
    let vote = std::time::Duration::from_millis(cluster.bft_vote_timeout_ms);
    let timeouts = stele_bft::LinearTimeouts {
        propose: std::time::Duration::from_millis(cluster.bft_propose_timeout_ms),
        propose_delta: delta,
        prevote: vote,
        prevote_delta: delta,
        precommit: vote,
        precommit_delta: delta,
        rebroadcast: vote * 3,
        max_timeout: std::time::Duration::from_millis(crate::config::BFT_TIMEOUT_MS_MAX),
    };
    Ok(stele_consensus::BftSetup {
        powers: cluster
            .members
            .iter()
            .map(|member| (member.id, member.power))
            .collect(),
        signing_key: dir.node_key()?,
        timeouts,
        wal_path: dir.root().join("bft.wal"),
        #[cfg(feature = "byzantine")]
        fault: byzantine_from_env()?,
    })
}

/// Byzantine tests only (the `byzantine` feature): the fault of this node,
/// from `STELE_BYZANTINE` (`wrong-root`, `equivocate`, `vote-all`, `silent`).
#[cfg(feature = "byzantine")]
fn byzantine_from_env() -> anyhow::Result<Option<stele_consensus::bft::byzantine::ByzantineFault>> {
    match std::env::var("STELE_BYZANTINE").ok().as_deref() {
        None | Some("") => Ok(None),
        Some(name) => {
            let fault = stele_consensus::bft::byzantine::ByzantineFault::parse(name)
                .with_context(|| {
                    format!("STELE_BYZANTINE={name:?}: expected wrong-root, equivocate, vote-all or silent")
                })?;
            tracing::warn!(?fault, "STELE_BYZANTINE: this validator misbehaves");
            Ok(Some(fault))
        }
    }
}

/// Opens the ledger, or creates it with the genesis entry of `identity`.
fn open_ledger(
    dir: &DataDir,
    config: &Config,
    identity: &stele_consensus::ServiceIdentity,
) -> anyhow::Result<Ledger> {
    let ledger_config = LedgerConfig {
        chunk_bytes: config.ledger.chunk_bytes,
    };
    let started = std::time::Instant::now();
    match Ledger::open(&dir.ledger(), ledger_config) {
        Ok((ledger, recovery)) => {
            tracing::info!(
                batches = ledger.batches().len(),
                last_seqno = ledger.last_seqno(),
                open_ms = started.elapsed().as_millis() as u64,
                "opened the ledger"
            );
            if let Some(torn) = recovery.torn {
                tracing::warn!(
                    file = %torn.file.display(),
                    offset = torn.offset,
                    bytes = torn.bytes,
                    reason = %torn.reason,
                    "cut a torn tail off the ledger (an append interrupted by a crash; it was never reported durable)"
                );
            }
            Ok(ledger)
        }
        // No ledger yet (no folder, or no chunk in it): the first start.
        Err(LedgerError::NotFound(_)) => Ok(Ledger::create(
            &dir.ledger(),
            ledger_config,
            &identity.genesis(),
        )?),
        Err(LedgerError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(
            Ledger::create(&dir.ledger(), ledger_config, &identity.genesis())?,
        ),
        Err(error) => Err(error).context("opening the ledger"),
    }
}

/// The users and the SHA-256 of their tokens: the configured `[[users]]`, or
/// the first user's token (created on first start and announced, never
/// logged) under Redis's default user name, `default`, so that over RESP both
/// `AUTH <token>` and `AUTH default <token>` work. HTTPS uses the hashes,
/// RESP the names too.
fn users(dir: &DataDir, config: &Config) -> anyhow::Result<Vec<stele_resp::RespUser>> {
    if !config.users.is_empty() {
        return Ok(config
            .users
            .iter()
            .map(|user| stele_resp::RespUser {
                name: user.name.clone(),
                token_sha256: user.token_sha256.0,
            })
            .collect());
    }
    let (token, created) = dir.token()?;
    if created {
        eprintln!(
            "created a user token in {} (send it as `Authorization: Bearer <token>`)",
            dir.user_token().display()
        );
    }
    Ok(vec![stele_resp::RespUser {
        name: "default".to_owned(),
        token_sha256: token_hash(&token),
    }])
}

/// The log filter when `RUST_LOG` is unset or empty: Stele's own crates (every
/// target starting with `stele`: `stele`, `stele_api`, `stele_consensus`...) at
/// info, dependencies at warn. openraft's info lines (a whole `RaftState` dump on
/// a first start) are its internals, not an operator's business.
const LOG_FILTER_DEFAULT: &str = "warn,stele=info";

/// Logs to stderr, filtered by `RUST_LOG` (default [`LOG_FILTER_DEFAULT`]).
fn init_tracing() {
    let filter = std::env::var(tracing_subscriber::EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|directives| !directives.trim().is_empty())
        .and_then(|directives| tracing_subscriber::EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(LOG_FILTER_DEFAULT));
    // A second call (tests) finds a subscriber already set: fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// How often the node looks for a fatal engine failure, in milliseconds.
const FATAL_POLL_MS: u64 = 200;

/// Longest wait for the runtime's tasks after a fatal error, in milliseconds.
const RUNTIME_STOP_MS: u64 = 2_000;

/// Resolves on SIGINT or SIGTERM, or once the engine has failed in a way only
/// a restart repairs (its reason is then left in `fatal`). A condition that
/// clears by itself (a full disk) is not one: the engine refuses writes and
/// resumes.
async fn stop_signal(engine: Weak<Engine>, fatal: Arc<std::sync::Mutex<Option<String>>>) {
    let failed = async {
        let mut poll = tokio::time::interval(std::time::Duration::from_millis(FATAL_POLL_MS));
        loop {
            poll.tick().await;
            // Weak: the clean shutdown takes the engine back whole.
            let Some(engine) = engine.upgrade() else {
                return std::future::pending().await;
            };
            if let Some(reason) = engine.fatal() {
                return reason;
            }
        }
    };
    tokio::select! {
        () = shutdown_signal() => {}
        reason = failed => {
            tracing::error!(%reason, "fatal: the node stops (a supervisor restarts it; it recovers from its ledger)");
            if let Ok(mut fatal) = fatal.lock() {
                *fatal = Some(reason);
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM; only SIGINT stops the node");
                let _ = interrupt.await;
                return;
            }
        };
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT: shutting down"),
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
    }
}
