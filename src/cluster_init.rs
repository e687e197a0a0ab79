//! `stele cluster-init`: the folders and configuration files of an N-node
//! cluster on one host — one shared service identity and user token, one node
//! key per node, every member's public key pinned in every configuration.

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
    /// Enables `PUT /admin/partition` on every node (partition tests only),
    /// behind a new admin token written to `<dir>/admin.token`.
    #[arg(long)]
    pub partition_injection: bool,
}

/// Creates the cluster's folders and files; refuses to overwrite a node folder.
pub fn run(args: &ClusterInitArgs) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > CLUSTER_NODES_MAX {
        anyhow::bail!("--nodes must be 1..={CLUSTER_NODES_MAX}");
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("resolving {}", args.dir.display()))?;
    let mut members = Vec::new();
    for id in 1..=args.nodes {
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
    let admin = if args.partition_injection {
        let token = crate::datadir::random_token()?;
        let path = dir.join("admin.token");
        crate::datadir::write_secret(&path, format!("{token}\n").as_bytes())?;
        format!(
            "\n[admin]\ntoken_sha256 = \"{}\"\npartition_injection = true\n",
            encode_lower_hex(&stele_api::token_hash(&token))
        )
    } else {
        String::new()
    };
    for (id, address, _) in &members {
        let mut text = format!(
            "data_dir = {:?}\nlisten = {address:?}\n\n[cluster]\nnode_id = {id}\n",
            dir.join(format!("node{id}")).display().to_string()
        );
        for (member, address, key) in &members {
            text.push_str(&format!(
                "\n[[cluster.members]]\nid = {member}\naddress = {address:?}\npublic_key = \"{}\"\n",
                encode_lower_hex(key)
            ));
        }
        text.push_str(&admin);
        let path = dir.join(format!("node{id}.toml"));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
