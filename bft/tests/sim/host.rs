//! The hosts' side of the simulated cluster: carrying out a node's actions
//! (timers, WAL, proposals, commits) and starting parked heights.

use std::time::Duration;

use rand::Rng;
use stele_bft::{Action, Decision, Event, ValidatorId};

use super::checks;
use super::cluster::{Cluster, SimEvent, DEMAND_START_MS, PROPOSER_START_MAX_MS};

impl Cluster {
    /// Feeds `event` to `node` and carries out the actions.
    pub fn handle(&mut self, node: usize, event: Event) {
        let Some(bft) = self.hosts[node].node.as_mut() else {
            return;
        };
        let actions = bft.handle(event);
        self.carry_out(node, actions);
        self.schedule_parked_start(node);
    }

    /// If `node` is parked at a height whose start is not scheduled yet,
    /// schedules it: soon as the next proposer, later as a non-proposer.
    pub(super) fn schedule_parked_start(&mut self, node: usize) {
        let host = &self.hosts[node];
        let Some(bft) = host.node.as_ref().filter(|bft| bft.parked()) else {
            return;
        };
        let height = bft.height();
        if host.start_scheduled == Some(height) {
            return;
        }
        let proposing = bft.proposer() == ValidatorId(node as u64 + 1);
        let incarnation = host.incarnation;
        self.hosts[node].start_scheduled = Some(height);
        let delay = if proposing {
            self.net.gen_range(0..=PROPOSER_START_MAX_MS)
        } else {
            self.net.gen_range(DEMAND_START_MS.0..=DEMAND_START_MS.1)
        };
        self.schedule(
            self.now_ms + delay,
            SimEvent::StartParked {
                node,
                incarnation,
                height,
            },
        );
    }

    pub(super) fn carry_out(&mut self, node: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                // In memory, so durable at once: before any later action.
                Action::PersistWal(entry) => self.hosts[node].wal.push(entry),
                Action::Broadcast(message) => self.broadcast(node, message),
                Action::ScheduleTimeout {
                    height,
                    timeout,
                    after,
                } => {
                    self.sequence += 1;
                    let id = self.sequence;
                    let host = &mut self.hosts[node];
                    host.timers
                        .retain(|(h, t, _)| !(*h == height && *t == timeout));
                    host.timers.push((height, timeout, id));
                    let incarnation = host.incarnation;
                    let at = self.now_ms + millis(after);
                    self.schedule(
                        at,
                        SimEvent::Timer {
                            node,
                            incarnation,
                            height,
                            timeout,
                            id,
                        },
                    );
                }
                Action::CancelTimeout { height, timeout } => {
                    self.hosts[node]
                        .timers
                        .retain(|(h, t, _)| !(*h == height && *t == timeout));
                }
                Action::CancelAllTimeouts => self.hosts[node].timers.clear(),
                Action::GetValue { height, round } => {
                    let incarnation = self.hosts[node].incarnation;
                    let at = self.now_ms + 1;
                    self.schedule(
                        at,
                        SimEvent::Propose {
                            node,
                            incarnation,
                            height,
                            round,
                        },
                    );
                }
                Action::Decided {
                    height,
                    value,
                    certificate,
                    view,
                } => {
                    let decision = Decision {
                        height,
                        view,
                        value,
                        certificate,
                    };
                    checks::on_decided(self, node, decision);
                }
            }
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).expect("timeouts are short")
}
