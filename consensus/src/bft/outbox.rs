//! [`Outbox`]: messages to the other validators over the signed HTTPS peer
//! transport. One task per peer sends in order, taking everything queued for
//! it into one `POST /bft/messages`; a full queue drops the message (the
//! protocol's timeouts and round certificates recover from loss, and a peer
//! that is down must not hold this node's memory).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::members::SteleNode;
use crate::raft::network::PeerNetwork;
use crate::raft::types::BftMessages;

/// Messages queued per peer before new ones are dropped.
pub const PEER_QUEUE_MESSAGES_MAX: usize = 1024;
/// Most bytes of messages sent in one request.
pub const REQUEST_BYTES_MAX: usize = 8 << 20;

/// The senders of this node's messages, one per other validator.
pub(crate) struct Outbox {
    peers: BTreeMap<u64, mpsc::Sender<Arc<Vec<u8>>>>,
}

impl Outbox {
    /// Starts a sending task per peer in `members` other than `self_id`, on
    /// `runtime`.
    pub(crate) fn start(
        runtime: &tokio::runtime::Handle,
        network: &PeerNetwork,
        self_id: u64,
        members: &BTreeMap<u64, SteleNode>,
    ) -> Self {
        let mut peers = BTreeMap::new();
        for (id, node) in members.iter().filter(|(id, _)| **id != self_id) {
            let (sender, receiver) = mpsc::channel(PEER_QUEUE_MESSAGES_MAX);
            let client = network.peer_client(*id, node);
            runtime.spawn(send_loop(client, receiver));
            peers.insert(*id, sender);
        }
        Outbox { peers }
    }

    /// Queues `message` for every peer.
    pub(crate) fn broadcast(&self, message: Vec<u8>) {
        let message = Arc::new(message);
        for (id, peer) in &self.peers {
            if peer.try_send(Arc::clone(&message)).is_err() {
                tracing::debug!(peer = id, "the queue to a peer is full: a message dropped");
            }
        }
    }
}

impl Outbox {
    /// Byzantine tests: `first` to the first half of the peers, `second` to
    /// the others.
    #[cfg(feature = "byzantine")]
    pub(crate) fn split(&self, first: Vec<u8>, second: Vec<u8>) {
        let (first, second) = (Arc::new(first), Arc::new(second));
        let half = self.peers.len() / 2;
        for (index, peer) in self.peers.values().enumerate() {
            let message = if index < half { &first } else { &second };
            let _ = peer.try_send(Arc::clone(message));
        }
    }
}

async fn send_loop(
    client: crate::raft::network::PeerClient,
    mut receiver: mpsc::Receiver<Arc<Vec<u8>>>,
) {
    while let Some(first) = receiver.recv().await {
        let mut bytes = first.len();
        let mut request = BftMessages {
            messages: vec![serde_bytes::ByteBuf::from(first.as_ref().clone())],
        };
        while bytes < REQUEST_BYTES_MAX {
            let Ok(next) = receiver.try_recv() else {
                break;
            };
            bytes += next.len();
            request
                .messages
                .push(serde_bytes::ByteBuf::from(next.as_ref().clone()));
        }
        if let Err(error) = client.bft_messages(&request).await {
            tracing::debug!(%error, "BFT messages not delivered");
        }
    }
}
