//! `stele cluster-init`: the folders and configuration files of an N-node
//! cluster on one host — one shared service identity and user token, one node
//! key per node, every member's public key pinned in every configuration, and
//! an admin token (`<dir>/admin.token`) for `/admin/*`. With `--joining K`, K
//! more nodes are laid out with `join = true`: started, they wait until the
//! leader adds them (`POST /admin/members` with the line printed for each).
//!
//! With `--mode bft` (docs/bft.md) every node is a validator with a voting
//! power (`--powers`), and no two nodes share a signing key: each signs with
//! its node key; the identity files share only the origin and the
//! commit-evidence secret.

use std::path::PathBuf;

use anyhow::Context;
use stele_history::hash::encode_lower_hex;

use crate::datadir::DataDir;

/// Most nodes `cluster-init` lays out.
pub const CLUSTER_NODES_MAX: u64 = 15;

/// Arguments of `stele cluster-init`.
#[derive(Debug, clap::Args)]
pub struct ClusterInitArgs {
    /// Where to create `node<i>/` data folders and `node<i>.toml` files.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// How many nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// The host every node listens on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Node i listens on `base_port + i - 1`.
    #[arg(long, default_value_t = 9441)]
    pub base_port: u16,
    /// The checkpoint origin of the service.
    #[arg(long)]
    pub origin: Option<String>,
    /// Enables `PUT /admin/partition` on every node (partition tests only).
    #[arg(long)]
    pub partition_injection: bool,
    /// Further nodes laid out to join the cluster later (`join = true`).
    #[arg(long, default_value_t = 0)]
    pub joining: u64,
    /// The ordering protocol: `raft` or `bft`.
    #[arg(long, value_enum, default_value_t = InitMode::Raft)]
    pub mode: InitMode,
    /// BFT mode: the validators' voting powers, one per node in order
    /// (default: 1 each), e.g. `--powers 1,1,1,1`.
    #[arg(long, value_delimiter = ',', value_name = "POWERS")]
    pub powers: Vec<u64>,
}

/// `stele cluster-init --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InitMode {
    /// Raft: crash faults, n = 2f + 1.
    Raft,
    /// BFT: arbitrary faults, n = 3f + 1 validators.
    Bft,
}

/// Creates the cluster's folders and files; refuses to overwrite a node folder.
pub fn run(args: &ClusterInitArgs) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes.saturating_add(args.joining) > CLUSTER_NODES_MAX {
        anyhow::bail!(
            "--nodes must be at least 1 and --nodes + --joining at most {CLUSTER_NODES_MAX}"
        );
    }
    let bft = args.mode == InitMode::Bft;
    if bft && args.joining > 0 {
        anyhow::bail!("--joining: BFT mode has a fixed validator set");
    }
    if !args.powers.is_empty() && (!bft || args.powers.len() as u64 != args.nodes) {
        anyhow::bail!(
            "--powers needs --mode bft and one power per node ({})",
            args.nodes
        );
    }
    if args.powers.contains(&0) {
        anyhow::bail!("--powers must be at least 1 each");
    }
    if bft && args.nodes < 4 {
        eprintln!(
            "warning: {} BFT validators tolerate no faulty one; 4 (3f + 1, f = 1) is the least that does",
            args.nodes
        );
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("resolving {}", args.dir.display()))?;
    let mut members = Vec::new();
    for id in 1..=args.nodes + args.joining {
        let node_dir = dir.join(format!("node{id}"));
        if node_dir.join("identity.json").exists() {
            anyhow::bail!("{} already holds a node", node_dir.display());
        }
        let data = DataDir::open(&node_dir)?;
        if id > 1 {
            // One service: the same identity (signing key, commit secret) and
            // user token on every node.
            for file in ["identity.json", "user.token"] {
                std::fs::copy(dir.join("node1").join(file), node_dir.join(file))
                    .with_context(|| format!("copying {file} to {}", node_dir.display()))?;
            }
        }
        data.identity(args.origin.as_deref())?;
        if bft {
            // The service key is never shared in BFT mode.
            data.replace_signing_key()?;
        }
        data.token()?;
        let key = data.node_key()?;
        let port = u32::from(args.base_port) + u32::try_from(id - 1).context("port")?;
        let port = u16::try_from(port).context("--base-port + nodes exceeds 65535")?;
        members.push((
            id,
            format!("{}:{port}", args.host),
            key.verifying_key().to_bytes(),
        ));
    }
    let token = crate::datadir::random_token()?;
    let path = dir.join("admin.token");
    crate::datadir::write_secret(&path, format!("{token}\n").as_bytes())?;
    let admin = format!(
        "\n[admin]\ntoken_sha256 = \"{}\"\npartition_injection = {}\n",
        encode_lower_hex(&stele_api::token_hash(&token)),
        args.partition_injection
    );
    for (id, address, _) in &members {
        let joins = *id > args.nodes;
        let mut text = format!(
            "data_dir = {:?}\nlisten = {address:?}\n\n[cluster]\nnode_id = {id}\njoin = {joins}\n",
            dir.join(format!("node{id}")).display().to_string()
        );
        if bft {
            text.push_str("mode = \"bft\"\n");
        }
        // A founder knows the founders; a joining node also knows itself.
        let known = members
            .iter()
            .filter(|(member, _, _)| *member <= args.nodes || member == id);
        for (member, address, key) in known {
            text.push_str(&format!(
                "\n[[cluster.members]]\nid = {member}\naddress = {address:?}\npublic_key = \"{}\"\n",
                encode_lower_hex(key)
            ));
            if bft {
                let index = usize::try_from(*member - 1).context("node id")?;
                let power = args.powers.get(index).copied().unwrap_or(1);
                text.push_str(&format!("power = {power}\n"));
            }
        }
        text.push_str(&admin);
        let path = dir.join(format!("node{id}.toml"));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
    }
    for (id, address, key) in members.iter().filter(|(id, _, _)| *id > args.nodes) {
        println!(
            "node {id} joins with: POST /admin/members {}",
            serde_json::json!({"id": id, "address": address, "public_key": encode_lower_hex(key)})
        );
    }
    Ok(())
}
