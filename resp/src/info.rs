//! The text of `INFO`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use stele_api::Node;

use crate::server::Shared;

/// The Redis version whose commands and replies Stele follows (clients read
/// it from INFO and HELLO to decide what they may send).
pub(crate) const REDIS_VERSION: &str = "7.0.0";

/// `INFO`: the server, clients and replication sections (no keyspace
/// section: counting keys walks the whole state; DBSIZE does it on demand).
pub(crate) fn info<N: Node>(shared: &Shared<N>) -> String {
    let state = shared.node.state();
    let role = if state.role == "Primary" {
        "master"
    } else {
        "slave"
    };
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        text,
        "# Server\r\nredis_version:{REDIS_VERSION}\r\nstele_version:{}\r\nredis_mode:standalone\r\nrun_id:{}\r\nstele_role:{}\r\nstele_view:{}\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        shared.config.node_id,
        state.role,
        state.view,
    );
    let _ = write!(
        text,
        "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n",
        shared.connected.load(Ordering::Relaxed),
        shared.connections_max,
    );
    let _ = write!(text, "# Replication\r\nrole:{role}\r\n");
    if let Some(address) = state.leader_address.filter(|_| role == "slave") {
        let _ = write!(text, "stele_leader_https:{address}\r\n");
    }
    let _ = write!(
        text,
        "\r\n# Stele\r\nstele_last_committed:{}\r\nstele_ledger_seqno:{}\r\n",
        state
            .last_committed
            .map(|id| id.to_string())
            .unwrap_or_default(),
        state.ledger_seqno,
    );
    text
}
