//! Who takes part: a member ([`SteleNode`]) and the membership ([`Members`]),
//! as every ordering protocol reports them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A member as the membership records it: where it listens and the Ed25519
/// key its peer messages are signed with. Membership changes travel through
/// the ordered log, so every node learns a new member's key from the leader
/// (authenticated) before that member can send it anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteleNode {
    /// `host:port` of its HTTPS listener (clients and peers).
    pub addr: String,
    /// Its peer public key, 64 lowercase hex digits.
    pub public_key: String,
}

impl SteleNode {
    /// A member at `addr` with peer key `public_key`.
    pub fn new(addr: impl Into<String>, public_key: &ed25519_dalek::VerifyingKey) -> Self {
        SteleNode {
            addr: addr.into(),
            public_key: hex::encode(public_key.as_bytes()),
        }
    }

    /// The peer key, if `public_key` is a valid one.
    pub fn verifying_key(&self) -> Option<ed25519_dalek::VerifyingKey> {
        let bytes: [u8; 32] = hex::decode(&self.public_key).ok()?.try_into().ok()?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok()
    }
}

impl std::fmt::Display for SteleNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (key {})", self.addr, self.public_key)
    }
}

/// The current membership, for `/admin/members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    /// The voters, by id.
    pub voters: BTreeMap<u64, SteleNode>,
    /// The learners (being added), by id.
    pub learners: BTreeMap<u64, SteleNode>,
}
