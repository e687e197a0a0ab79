//! The text of `INFO`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use stele_api::Node;

use crate::reply::Reply;
use crate::server::Shared;

/// The Redis version whose commands and replies Stele follows (clients read
/// it from INFO and HELLO to decide what they may send).
pub(crate) const REDIS_VERSION: &str = "7.0.0";

/// The parameters `CONFIG GET` answers: those a Redis tool reads to describe
/// durability (redis-benchmark prints `save` and `appendonly`), answered as
/// what Stele does: every write is in the ledger and synced before its
/// reply, there are no RDB snapshots of Redis's kind, one database. Any
/// other parameter matches nothing (an empty answer).
const CONFIG: &[(&str, &str)] = &[
    ("appendfsync", "always"),
    ("appendonly", "yes"),
    ("databases", "1"),
    ("save", ""),
];

/// `CONFIG GET pattern...`: the name and value of every parameter of
/// [`CONFIG`] some pattern matches (Redis's glob), once each.
pub(crate) fn config_get(patterns: &[Vec<u8>]) -> Reply {
    let mut answer = Vec::new();
    for (name, value) in CONFIG {
        let wanted = patterns.iter().any(|pattern| {
            crate::keyspace::glob_match(&pattern.to_ascii_lowercase(), name.as_bytes())
        });
        if wanted {
            answer.push(Reply::Bulk(name.as_bytes().to_vec()));
            answer.push(Reply::Bulk(value.as_bytes().to_vec()));
        }
    }
    Reply::Array(answer)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(reply: &Reply) -> Vec<String> {
        let Reply::Array(items) = reply else {
            panic!("CONFIG GET answers an array");
        };
        items
            .iter()
            .step_by(2)
            .map(|item| match item {
                Reply::Bulk(name) => String::from_utf8_lossy(name).into_owned(),
                other => panic!("a name is a bulk string, not {other:?}"),
            })
            .collect()
    }

    #[test]
    fn config_get_answers_durability_parameters_and_nothing_else() {
        assert_eq!(names(&config_get(&[b"save".to_vec()])), ["save"]);
        assert_eq!(
            names(&config_get(&[b"APPEND*".to_vec()])),
            ["appendfsync", "appendonly"]
        );
        assert_eq!(
            names(&config_get(&[b"maxmemory".to_vec()])),
            Vec::<String>::new()
        );
        assert_eq!(
            config_get(&[b"*".to_vec(), b"save".to_vec()]),
            config_get(&[b"*".to_vec()])
        );
        assert_eq!(
            config_get(&[b"appendfsync".to_vec()]),
            Reply::Array(vec![
                Reply::Bulk(b"appendfsync".to_vec()),
                Reply::Bulk(b"always".to_vec())
            ])
        );
    }
}
