//! The simulated network: loss, duplication, per-copy delays (reordering),
//! cut links; payloads travel encoded (`Message::encode`, `Decision::encode`)
//! and are decoded by the receiving host, which drops what does not decode.
//! A host asks its peers for its next height every `SYNC_INTERVAL_MS`, and
//! asks again at once each time a synced height was committed.

use rand::Rng;
use stele_bft::{Decision, Event, Height, Message, ValidatorId};

use super::byzantine;
use super::checks;
use super::cluster::{Cluster, Payload, SimEvent};
use super::plan::Behaviour;

impl Cluster {
    pub(super) fn deliver(&mut self, to: usize, from: usize, payload: Payload) {
        match payload {
            Payload::Consensus(bytes) => {
                let Ok(message) = Message::decode(&bytes) else {
                    self.undecodable += 1;
                    return;
                };
                if self.hosts[to].behaviour == Behaviour::Garbage {
                    self.hosts[to].received.push(message.clone());
                }
                if self.hosts[to].behaviour == Behaviour::VoteAll {
                    byzantine::vote_for_everything(self, to, &message);
                }
                self.handle(to, Event::Message(ValidatorId(from as u64 + 1), message));
            }
            Payload::SyncRequest(height) => {
                let silent = self.hosts[to].behaviour == Behaviour::Silent;
                let Some(index) = height.0.checked_sub(1) else {
                    return;
                };
                if let Some(decision) = self.hosts[to].committed.get(index as usize) {
                    if !silent {
                        let payload = Payload::SyncResponse(decision.encode());
                        self.send(to, from, payload);
                    }
                }
            }
            Payload::SyncResponse(bytes) => {
                let Ok(decision) = Decision::decode(&bytes) else {
                    self.undecodable += 1;
                    return;
                };
                self.syncs_fed += 1;
                let committed = self.hosts[to].committed.len();
                let event = Event::Synced {
                    value: decision.value,
                    certificate: decision.certificate,
                    view: decision.view,
                };
                self.handle(to, event);
                // Caught up by one height: ask the same peer for the next at
                // once (sticky proposers let the others run far ahead).
                let now = self.hosts[to].committed.len();
                if now > committed {
                    self.send(to, from, Payload::SyncRequest(Height(now as u64 + 1)));
                }
            }
        }
    }

    /// Sends a node's broadcast, through its behaviour.
    pub(super) fn broadcast(&mut self, node: usize, message: Message) {
        match self.hosts[node].behaviour {
            Behaviour::Silent => {}
            Behaviour::Equivocate => byzantine::equivocate(self, node, message),
            Behaviour::Honest => {
                checks::record_own_vote(self, node, &message);
                self.send_all(node, Payload::message(&message));
            }
            _ => self.send_all(node, Payload::message(&message)),
        }
    }

    pub fn send_all(&mut self, from: usize, payload: Payload) {
        for to in 0..self.hosts.len() {
            if to != from {
                self.send(from, to, payload.clone());
            }
        }
    }

    /// One message on one link: maybe lost, maybe duplicated, each copy with
    /// its own delay (so messages reorder).
    pub fn send(&mut self, from: usize, to: usize, payload: Payload) {
        if self.cut.contains(&(from, to)) {
            return;
        }
        if !self.healed && self.net.gen_bool(self.plan.loss) {
            return;
        }
        let copies = if self.net.gen_bool(self.plan.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let (low, high) = self.plan.delay_ms;
            let at = self.now_ms + self.net.gen_range(low..=high);
            self.schedule(
                at,
                SimEvent::Deliver {
                    to,
                    from,
                    payload: payload.clone(),
                },
            );
        }
    }
}
