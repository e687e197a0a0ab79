//! [`Cluster`]: N real `stele start` processes on 127.0.0.1, laid out by
//! `stele cluster-init`, with what cluster tests share: the agreed leader,
//! waiting for a commit on a node, partitions through `PUT /admin/partition`,
//! and `stele verify` of every ledger.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stele_history::TransactionId;

use crate::client::{Auth, NodeClient};
use crate::node::{NodeConfig, TestNode};
use crate::{describe_output, run_cli};

/// Longest wait for the running nodes to agree on a leader.
pub const LEADER_WAIT: Duration = Duration::from_secs(60);

/// Clusters started by this process so far (each takes its own ports).
static CLUSTERS_STARTED: AtomicU16 = AtomicU16::new(0);

/// Most nodes of one test cluster (its port block).
const CLUSTER_PORTS: u16 = 8;

/// How to lay out and start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// How many nodes.
    pub nodes: u64,
    /// `cluster-init --partition-injection`: `PUT /admin/partition` served.
    pub partition_injection: bool,
    /// Extra environment variables of one node: `(node id, name, value)`.
    pub env: Vec<(u64, String, String)>,
    /// Nodes given long election timeouts (3–4 s), so that the others win the
    /// first election: a test picks who leads first.
    pub slow_elections: Vec<u64>,
    /// Further nodes laid out to join later (`cluster-init --joining`), not
    /// started: see [`Cluster::start_joining`].
    pub joining: u64,
    /// Lines added to the `[cluster]` section of every node's file, e.g.
    /// `"snapshot_entries = 8\n"`.
    pub cluster_settings: String,
    /// Lines of a `[ledger]` section added to every node's file, e.g.
    /// `"chunk_bytes = 4096\n"`.
    pub ledger_settings: String,
    /// More `cluster-init` arguments, e.g. `["--mode", "bft"]`.
    pub init_args: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            partition_injection: false,
            env: Vec::new(),
            slow_elections: Vec::new(),
            joining: 0,
            cluster_settings: String::new(),
            ledger_settings: String::new(),
            init_args: Vec::new(),
        }
    }
}

/// The running nodes (index `i` is node id `i + 1`) and their folder.
pub struct Cluster {
    /// The nodes.
    pub nodes: Vec<TestNode>,
    bin: PathBuf,
    admin_token: String,
    /// `POST /admin/members` bodies of the joining nodes, by id.
    join_bodies: Vec<(u64, Value)>,
    base: u16,
    env: Vec<(u64, String, String)>,
    dir: tempfile::TempDir,
}

/// A free port block for a cluster: below Linux's ephemeral range (32768 and
/// up, where outgoing connections take their ports), spread by process id, and
/// probed (every port bound and released) before use.
fn base_port() -> u16 {
    let process = u16::try_from(std::process::id() % 300).expect("below 300");
    for attempt in 0..50u16 {
        let started = CLUSTERS_STARTED.fetch_add(1, Ordering::Relaxed) % 5;
        let block = (process + attempt / 5) % 300;
        let base = 20_000 + block * 40 + started * CLUSTER_PORTS;
        let free = (base..base + CLUSTER_PORTS)
            .all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free block of {CLUSTER_PORTS} ports for a test cluster");
}

/// `{"ops":[put m/<key> = <value>]}`.
pub fn put_body(key: &str, value: &str) -> Value {
    json!({ "ops": [{"op": "put", "map": "m", "key": key, "value": value}] })
}

impl Cluster {
    /// Lays out a cluster with `stele cluster-init` and starts every node.
    pub fn start(bin: &Path, options: &ClusterOptions) -> Cluster {
        assert!(options.nodes <= u64::from(CLUSTER_PORTS));
        let dir = tempfile::tempdir().expect("a temporary folder");
        let base = base_port();
        let dir_text = dir.path().to_str().expect("a UTF-8 temporary path");
        let (nodes, base_text) = (options.nodes.to_string(), base.to_string());
        let joining = options.joining.to_string();
        let mut args = vec![
            "cluster-init",
            "--dir",
            dir_text,
            "--nodes",
            &nodes,
            "--base-port",
            &base_text,
            "--joining",
            &joining,
        ];
        if options.partition_injection {
            args.push("--partition-injection");
        }
        args.extend(options.init_args.iter().map(String::as_str));
        let output = run_cli(bin, &args);
        assert!(output.status.success(), "{}", describe_output(&output));
        let admin_token = std::fs::read_to_string(dir.path().join("admin.token"))
            .expect("cluster-init wrote admin.token")
            .trim()
            .to_owned();
        let join_bodies = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once("POST /admin/members "))
            .map(|(_, body)| {
                let body: Value = serde_json::from_str(body).expect("a JSON body");
                (body["id"].as_u64().expect("an id"), body)
            })
            .collect();
        for id in &options.slow_elections {
            add_cluster_settings(
                &dir.path().join(format!("node{id}.toml")),
                *id,
                "election_timeout_min_ms = 3000\nelection_timeout_max_ms = 4000\n",
            );
        }
        if !options.cluster_settings.is_empty() {
            for id in 1..=options.nodes + options.joining {
                let toml = dir.path().join(format!("node{id}.toml"));
                add_cluster_settings(&toml, id, &options.cluster_settings);
            }
        }
        if !options.ledger_settings.is_empty() {
            for id in 1..=options.nodes + options.joining {
                let toml = dir.path().join(format!("node{id}.toml"));
                add_ledger_section(&toml, &options.ledger_settings);
            }
        }
        let mut cluster = Cluster {
            nodes: Vec::new(),
            bin: bin.to_owned(),
            admin_token,
            join_bodies,
            base,
            env: options.env.clone(),
            dir,
        };
        for id in 1..=options.nodes {
            let node = cluster.start_node(id);
            cluster.nodes.push(node);
        }
        cluster
    }

    fn start_node(&self, id: u64) -> TestNode {
        let toml = self.dir.path().join(format!("node{id}.toml"));
        let mut config = NodeConfig::new(&self.bin, &self.dir.path().join(format!("node{id}")));
        let port = self.base + u16::try_from(id - 1).expect("few nodes");
        config.listen = format!("127.0.0.1:{port}");
        config.extra_args = vec!["--config".to_owned(), toml.display().to_string()];
        for (node, name, value) in &self.env {
            if *node == id {
                config.env.push((name.clone(), value.clone()));
            }
        }
        TestNode::start_with(config)
    }

    /// Starts the next joining node (it waits to be added); returns its index.
    pub fn start_joining(&mut self) -> usize {
        let id = self.nodes.len() as u64 + 1;
        assert!(
            self.join_bodies.iter().any(|(joining, _)| *joining == id),
            "node {id} was not laid out to join"
        );
        let node = self.start_node(id);
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// An admin request to node index `index`.
    pub fn admin(
        &self,
        index: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> crate::client::Reply {
        self.client(index)
            .try_request(
                method.clone(),
                path,
                body.map(|body| body.to_string().into_bytes()),
                body.map(|_| "application/json"),
                &Auth::Bearer(self.admin_token.clone()),
            )
            .unwrap_or_else(|error| panic!("{method} {path} on node {}: {error}", index + 1))
    }

    /// `POST /admin/members` on node index `leader` for joining node `id`:
    /// returns once it votes.
    pub fn add_member(&self, leader: usize, id: u64) -> Value {
        let body = self
            .join_bodies
            .iter()
            .find(|(joining, _)| *joining == id)
            .map(|(_, body)| body.clone())
            .expect("a joining node");
        self.admin(leader, reqwest::Method::POST, "/admin/members", Some(&body))
            .expect_json(200)
    }

    /// Every node index.
    pub fn all(&self) -> Vec<usize> {
        (0..self.nodes.len()).collect()
    }

    /// The client of node index `index`.
    pub fn client(&self, index: usize) -> &NodeClient {
        self.nodes[index].client()
    }

    /// `/node/state` of node index `index`, if it answers.
    pub fn state(&self, index: usize) -> Option<Value> {
        self.client(index)
            .try_request(reqwest::Method::GET, "/node/state", None, None, &Auth::None)
            .ok()
            .filter(|reply| reply.status == 200)
            .map(|reply| reply.json())
    }

    /// The index of the node every node of `running` agrees is the leader.
    pub fn leader(&self, running: &[usize]) -> usize {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let leaders: Vec<Option<u64>> = running
                .iter()
                .map(|&index| self.state(index).and_then(|state| state["leader"].as_u64()))
                .collect();
            if let Some(Some(leader)) = leaders.first() {
                let index = usize::try_from(*leader - 1).expect("a small id");
                if leaders.iter().all(|seen| *seen == Some(*leader)) && running.contains(&index) {
                    return index;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader among {running:?}: {leaders:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (bounded) until `id` is committed on node index `index`.
    pub fn wait_committed(&self, index: usize, id: TransactionId) {
        let seen = self
            .client(index)
            .poll_until_committed(id, 600, Duration::from_millis(50));
        assert_eq!(
            seen.last().map(String::as_str),
            Some("Committed"),
            "{id} on node {}: {seen:?}\n{}",
            index + 1,
            self.nodes[index].log_tail()
        );
    }

    /// Waits until `last` is committed on each of `nodes`, then checks that every
    /// transaction of `ids` is committed there too.
    pub fn assert_committed_everywhere(
        &self,
        nodes: &[usize],
        ids: &[TransactionId],
        last: TransactionId,
    ) {
        for &index in nodes {
            self.wait_committed(index, last);
            for id in ids {
                assert_eq!(
                    self.client(index).tx_status(*id),
                    "Committed",
                    "{id} on node {}",
                    index + 1
                );
            }
        }
    }

    /// Makes node index `index` drop the traffic of the nodes `drop` (ids), on
    /// both directions of its links; `&[]` heals it.
    pub fn set_partition(&self, index: usize, drop: &[u64]) {
        let body = json!({ "drop": drop });
        self.admin(index, reqwest::Method::PUT, "/admin/partition", Some(&body))
            .expect_status(200);
    }

    /// Cuts the cluster in two: every node of `side` drops every node outside it
    /// and the other way round. `&[]` (or every node) heals all links.
    pub fn split(&self, side: &[usize]) {
        for index in self.all() {
            let inside = side.contains(&index);
            let drop: Vec<u64> = self
                .all()
                .into_iter()
                .filter(|other| side.contains(other) != inside)
                .map(|other| other as u64 + 1)
                .collect();
            self.set_partition(index, &drop);
        }
    }

    /// The cluster's folder (`node<i>/`, `node<i>.toml`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The path of the `stele` binary the nodes run.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Stops every running node (SIGTERM) and runs `stele verify --key` on
    /// each ledger (of stopped nodes too).
    pub fn terminate_and_verify(&mut self) {
        let running = self
            .nodes
            .iter()
            .position(|node| node.pid().is_some())
            .expect("a running node");
        let key = self.client(running).public_key_hex();
        for node in &mut self.nodes {
            if node.pid().is_some() {
                node.terminate();
            }
            let ledger = node.ledger_dir();
            let output = run_cli(
                &self.bin,
                &["verify", ledger.to_str().expect("UTF-8"), "--key", &key],
            );
            assert!(output.status.success(), "{}", describe_output(&output));
        }
    }
}

/// Appends a `[ledger]` section of `settings` (TOML lines) to `toml`.
fn add_ledger_section(toml: &Path, settings: &str) {
    let text = std::fs::read_to_string(toml).expect("cluster-init wrote the node's file");
    assert!(
        !text.contains("[ledger]"),
        "{}: has a [ledger] section",
        toml.display()
    );
    std::fs::write(toml, format!("{text}\n[ledger]\n{settings}"))
        .expect("rewriting the node's file");
}

/// Adds `settings` (TOML lines) to the `[cluster]` section of `toml`.
fn add_cluster_settings(toml: &Path, id: u64, settings: &str) {
    let text = std::fs::read_to_string(toml).expect("cluster-init wrote the node's file");
    let from = format!("node_id = {id}\n");
    let to = format!("{from}{settings}");
    assert!(text.contains(&from), "{}: no {from:?}", toml.display());
    std::fs::write(toml, text.replacen(&from, &to, 1)).expect("rewriting the node's file");
}
