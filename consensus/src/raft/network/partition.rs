//! [`Partition`]: fault injection for tests — the peers this node drops
//! traffic to (the client, [`super::PeerClient`]: unreachable) and from (the
//! server, [`super::server`]: 503 before the body is read). Set through the
//! node's `[admin]` routes.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use crate::sync::{read, write};

/// The peers this node drops traffic to and from (test partitions). Cheap to
/// clone: clones share the set.
#[derive(Debug, Clone, Default)]
pub struct Partition {
    blocked: Arc<RwLock<BTreeSet<u64>>>,
}

impl Partition {
    /// Replaces the set of blocked peers.
    pub fn set(&self, blocked: BTreeSet<u64>) {
        // The set is only ever replaced whole, so a poisoned lock still holds a
        // consistent value.
        *write(&self.blocked) = blocked;
    }

    /// The blocked peers.
    pub fn blocked(&self) -> BTreeSet<u64> {
        self.read().clone()
    }

    /// Whether traffic with `peer` is dropped.
    pub fn is_blocked(&self, peer: u64) -> bool {
        self.read().contains(&peer)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeSet<u64>> {
        read(&self.blocked)
    }
}
