//! [`PeerAuth`]: signing and checking peer messages, and the replay guard.
//!
//! A request's signature covers its route, sender, recipient, send time, nonce
//! and body; the receiver refuses a request outside [`PEER_REQUEST_WINDOW_MS`]
//! of its own clock, or whose (sender, time, nonce) it has already accepted.
//! Accepted triples are remembered until they leave the window, at most
//! [`PEER_NONCES_PER_SENDER_MAX`] per sender: past that, the oldest are
//! forgotten and the sender's floor rises above them, so memory stays bounded
//! and a forgotten triple still cannot pass (its time is below the floor).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::{
    check_size, parse_node_id, PeerAuthError, PeerRpcKind, HEADER_FROM, HEADER_NONCE,
    HEADER_SIGNATURE, HEADER_TIME, HEADER_TO,
};
use crate::sync::{lock, read, write};

/// How far a request's send time may be from the receiver's clock, either way.
/// Members' clocks must agree within it (NTP); a captured request is worthless
/// once it is older.
pub const PEER_REQUEST_WINDOW_MS: u64 = 30_000;
/// The most (time, nonce) pairs remembered per sender. A leader sends a few
/// thousand requests a second to a follower at most, so the floor this forces
/// stays seconds behind the clock, far behind any request still in flight.
pub const PEER_NONCES_PER_SENDER_MAX: usize = 65_536;

/// Domain separators: a request signature can never pass as a response one, and
/// a version bump invalidates old messages (v2: time and nonce signed).
const REQUEST_DOMAIN: &[u8] = b"stele-peer-request-v2\0";
const RESPONSE_DOMAIN: &[u8] = b"stele-peer-response-v2\0";

/// The signed head of a request: everything but its body and route, as carried
/// by the [`HEADER_FROM`], [`HEADER_TO`], [`HEADER_TIME`], [`HEADER_NONCE`] and
/// [`HEADER_SIGNATURE`] headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The sending node.
    pub from: u64,
    /// The receiving node.
    pub to: u64,
    /// The sender's clock when it signed, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Unique among the sender's requests of the same millisecond.
    pub nonce: u64,
    /// The lowercase hex of the sender's 64-byte Ed25519 signature.
    pub signature: String,
}

impl RequestHead {
    /// Reads the head from request headers (`get` looks one up by name). A
    /// missing header is [`PeerAuthError::MissingHeader`].
    pub fn from_headers<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, PeerAuthError> {
        let header = |name: &'static str| get(name).ok_or(PeerAuthError::MissingHeader(name));
        let number = |name: &'static str| {
            header(name)?
                .parse::<u64>()
                .map_err(|_| PeerAuthError::Malformed(format!("{name} is not a decimal u64")))
        };
        Ok(RequestHead {
            from: parse_node_id(header(HEADER_FROM)?)?,
            to: parse_node_id(header(HEADER_TO)?)?,
            time_ms: number(HEADER_TIME)?,
            nonce: number(HEADER_NONCE)?,
            signature: header(HEADER_SIGNATURE)?.to_owned(),
        })
    }

    /// The headers that carry this head, as (name, value).
    pub fn headers(&self) -> [(&'static str, String); 5] {
        [
            (HEADER_FROM, self.from.to_string()),
            (HEADER_TO, self.to.to_string()),
            (HEADER_TIME, self.time_ms.to_string()),
            (HEADER_NONCE, self.nonce.to_string()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ]
    }
}

/// The (time, nonce) pairs accepted from one sender within the window.
#[derive(Debug, Default)]
struct Seen {
    /// Requests sent before this time (ms) are refused: they were forgotten, or
    /// sent before this node started (it remembers nothing older).
    floor_ms: u64,
    pairs: BTreeSet<(u64, u64)>,
}

/// This node's signing key and the pinned public keys of every member
/// (including itself: `members[node_id]` should be `key`'s public key). The
/// keys start from the configuration and follow the Raft membership
/// ([`PeerAuth::set_members`]) as members are added and removed.
pub struct PeerAuth {
    node_id: u64,
    key: SigningKey,
    members: RwLock<BTreeMap<u64, VerifyingKey>>,
    next_nonce: AtomicU64,
    started_ms: u64,
    seen: Mutex<BTreeMap<u64, Seen>>,
    /// [`PEER_NONCES_PER_SENDER_MAX`], smaller in tests.
    nonces_per_sender_max: usize,
}

impl std::fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the signing key.
        f.debug_struct("PeerAuth")
            .field("node_id", &self.node_id)
            .field("members", &self.members().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch (0 for a clock before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

impl PeerAuth {
    /// This node (`node_id`, signing with `key`) among `members`.
    pub fn new(node_id: u64, key: SigningKey, members: BTreeMap<u64, VerifyingKey>) -> Self {
        let started_ms = now_ms();
        PeerAuth {
            node_id,
            key,
            members: RwLock::new(members),
            // Nonces only need to differ within one millisecond of one process;
            // starting from the clock keeps a restarted sender's apart anyway.
            next_nonce: AtomicU64::new(started_ms.wrapping_mul(1 << 20)),
            started_ms,
            seen: Mutex::new(BTreeMap::new()),
            nonces_per_sender_max: PEER_NONCES_PER_SENDER_MAX,
        }
    }

    /// Remembers at most `max` (time, nonce) pairs per sender instead of
    /// [`PEER_NONCES_PER_SENDER_MAX`] (tests: fills the memory quickly).
    pub fn with_nonces_per_sender_max(mut self, max: usize) -> Self {
        self.nonces_per_sender_max = max.max(1);
        self
    }

    /// The pinned keys, by node id.
    pub fn members(&self) -> BTreeMap<u64, VerifyingKey> {
        // Replaced whole only: a poisoned lock still holds a consistent map.
        read(&self.members).clone()
    }

    /// Replaces the pinned keys (this node's own is always kept).
    pub fn set_members(&self, mut members: BTreeMap<u64, VerifyingKey>) {
        members.insert(self.node_id, self.key.verifying_key());
        lock(&self.seen).retain(|sender, _| members.contains_key(sender));
        *write(&self.members) = members;
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// This node's public key.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs a request from this node to `to`, sent now with a fresh nonce.
    pub fn sign_request(&self, to: u64, kind: PeerRpcKind, body: &[u8]) -> RequestHead {
        let nonce = self.next_nonce.fetch_add(1, Ordering::Relaxed);
        self.sign_request_at(to, kind, body, now_ms(), nonce)
    }

    /// Signs a request with a given time and nonce (tests): the signed message
    /// is `"stele-peer-request-v2\0" || kind.path() || from || to || time_ms ||
    /// nonce (each u64 BE) || SHA-256(body)`.
    pub fn sign_request_at(
        &self,
        to: u64,
        kind: PeerRpcKind,
        body: &[u8],
        time_ms: u64,
        nonce: u64,
    ) -> RequestHead {
        let mut head = RequestHead {
            from: self.node_id,
            to,
            time_ms,
            nonce,
            signature: String::new(),
        };
        let message = request_message(kind, &head, body);
        head.signature = hex::encode(self.key.sign(&message).to_bytes());
        head
    }

    /// What can be checked of a request before reading its body: it is
    /// addressed to this node, comes from a pinned member other than this node,
    /// was sent within [`PEER_REQUEST_WINDOW_MS`] of now, and its signature is
    /// well-formed. Returns the sender's key.
    pub fn check_head(&self, head: &RequestHead) -> Result<VerifyingKey, PeerAuthError> {
        if head.to != self.node_id {
            return Err(PeerAuthError::WrongRecipient {
                this: self.node_id,
                addressed: head.to,
            });
        }
        if head.from == self.node_id {
            return Err(PeerAuthError::FromSelf(head.from));
        }
        let key = self.member_key(head.from)?;
        let now_ms = now_ms();
        if head.time_ms.abs_diff(now_ms) > PEER_REQUEST_WINDOW_MS || head.time_ms < self.started_ms
        {
            return Err(PeerAuthError::Stale {
                time_ms: head.time_ms,
                now_ms,
            });
        }
        parse_signature(&head.signature)?;
        Ok(key)
    }

    /// Checks a request received by this node: [`check_head`](Self::check_head),
    /// its body is within the limit, the signature verifies with the sender's
    /// key, and this (sender, time, nonce) was not accepted before. Accepting
    /// it records the triple, so the same request passes only once.
    pub fn verify_request(
        &self,
        kind: PeerRpcKind,
        head: &RequestHead,
        body: &[u8],
    ) -> Result<(), PeerAuthError> {
        check_size(body.len())?;
        let key = self.check_head(head)?;
        let signature = parse_signature(&head.signature)?;
        verify(&key, &request_message(kind, head, body), &signature)?;
        // Only after the signature: forged requests must not fill the memory.
        self.record(head)
    }

    /// Remembers `head`'s (time, nonce) for its sender, or refuses a repeat.
    fn record(&self, head: &RequestHead) -> Result<(), PeerAuthError> {
        let mut seen = lock(&self.seen);
        let sender = seen.entry(head.from).or_insert_with(|| Seen {
            floor_ms: self.started_ms,
            pairs: BTreeSet::new(),
        });
        if head.time_ms < sender.floor_ms {
            return Err(PeerAuthError::Stale {
                time_ms: head.time_ms,
                now_ms: now_ms(),
            });
        }
        if !sender.pairs.insert((head.time_ms, head.nonce)) {
            return Err(PeerAuthError::Replayed {
                from: head.from,
                nonce: head.nonce,
            });
        }
        // Out of the window: refused by the time check anyway.
        let expired = now_ms().saturating_sub(PEER_REQUEST_WINDOW_MS);
        while sender
            .pairs
            .first()
            .is_some_and(|(time_ms, _)| *time_ms < expired)
        {
            sender.pairs.pop_first();
        }
        while sender.pairs.len() > self.nonces_per_sender_max {
            if let Some((time_ms, _)) = sender.pairs.pop_first() {
                sender.floor_ms = sender.floor_ms.max(time_ms + 1);
            }
        }
        debug_assert!(sender.pairs.len() <= self.nonces_per_sender_max);
        Ok(())
    }

    /// Signs this node's response `body` to the request that carried
    /// `request_signature_hex`: the signed message is
    /// `"stele-peer-response-v2\0" || request signature (64 bytes) || SHA-256(body)`.
    /// Request signatures are unique (time and nonce), so responses are too.
    ///
    /// Call it only for a request [`verify_request`](Self::verify_request)
    /// accepted. A malformed request signature is bound as 64 zero bytes, which
    /// no client's request signature can be, so such a response matches nothing.
    pub fn sign_response(&self, request_signature_hex: &str, body: &[u8]) -> String {
        let request_signature = parse_signature(request_signature_hex)
            .map(|s| s.to_bytes())
            .unwrap_or([0; 64]);
        let message = response_message(&request_signature, body);
        hex::encode(self.key.sign(&message).to_bytes())
    }

    /// Checks that `from` (a pinned member) signed `body` as its response to the
    /// request this node signed with `request_signature_hex`.
    pub fn verify_response(
        &self,
        from: u64,
        request_signature_hex: &str,
        response_signature_hex: &str,
        body: &[u8],
    ) -> Result<(), PeerAuthError> {
        check_size(body.len())?;
        let key = self.member_key(from)?;
        let request_signature = parse_signature(request_signature_hex)?;
        let signature = parse_signature(response_signature_hex)?;
        let message = response_message(&request_signature.to_bytes(), body);
        verify(&key, &message, &signature)
    }

    fn member_key(&self, node: u64) -> Result<VerifyingKey, PeerAuthError> {
        read(&self.members)
            .get(&node)
            .copied()
            .ok_or(PeerAuthError::UnknownPeer(node))
    }
}

fn request_message(kind: PeerRpcKind, head: &RequestHead, body: &[u8]) -> Vec<u8> {
    // The path is the only variable-length field and comes before fixed-length
    // ones, so the encoding is unambiguous.
    let fields: [&[u8]; 5] = [
        kind.path().as_bytes(),
        &head.from.to_be_bytes(),
        &head.to.to_be_bytes(),
        &head.time_ms.to_be_bytes(),
        &head.nonce.to_be_bytes(),
    ];
    signed_message(REQUEST_DOMAIN, &fields, body)
}

fn response_message(request_signature: &[u8; 64], body: &[u8]) -> Vec<u8> {
    signed_message(RESPONSE_DOMAIN, &[request_signature], body)
}

/// `domain || fields || SHA-256(body)`.
fn signed_message(domain: &[u8], fields: &[&[u8]], body: &[u8]) -> Vec<u8> {
    let mut message = domain.to_vec();
    fields
        .iter()
        .for_each(|field| message.extend_from_slice(field));
    message.extend_from_slice(&Sha256::digest(body));
    message
}

fn parse_signature(signature_hex: &str) -> Result<Signature, PeerAuthError> {
    let mut bytes = [0; 64];
    hex::decode_to_slice(signature_hex, &mut bytes)
        .map_err(|e| PeerAuthError::Malformed(format!("signature is not 64 bytes of hex: {e}")))?;
    Ok(Signature::from_bytes(&bytes))
}

fn verify(key: &VerifyingKey, message: &[u8], signature: &Signature) -> Result<(), PeerAuthError> {
    // Strict: refuses weak keys and malleable signatures.
    key.verify_strict(message, signature)
        .map_err(|_| PeerAuthError::BadSignature)
}
