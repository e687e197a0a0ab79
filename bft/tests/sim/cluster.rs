//! The simulated cluster: N whole `BftNode`s, each behind a host that owns its
//! timers, WAL and committed batches, joined by an in-memory network with a
//! virtual clock. One thread, one seeded RNG stream for the network, one event
//! queue ordered by (virtual time, sequence number): a seed replays exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;
use stele_bft::{
    Action, BftConfig, BftNode, CommitCertificate, Event, Height, LinearTimeouts, Message, Round,
    Timeout, Validator, ValidatorId, ValidatorSet, Validity, ValidityFn, Value, ValueId, WalEntry,
};

use super::plan::{rng, Behaviour, Plan, Step, STREAM_KEYS, STREAM_NETWORK};
use super::{byzantine, checks};

/// Every node asks its peers for the decided batch of its height this often.
pub const SYNC_INTERVAL_MS: u64 = 1_000;
/// Heights every honest node must commit after the heal (beyond the highest
/// height any node had committed at the heal).
pub const PROGRESS_AFTER_HEAL: u64 = 5;
/// Virtual time allowed for that progress.
pub const PROGRESS_WINDOW_MS: u64 = 120_000;
/// A bound on events per run (a run that needs more is a bug).
pub const EVENTS_MAX: u64 = 3_000_000;

/// What travels between hosts.
#[derive(Clone, Debug)]
pub enum Payload {
    /// A consensus message.
    Consensus(Message),
    /// "Send me the decided batch of this height."
    SyncRequest(Height),
    /// A decided batch and its certificate.
    SyncResponse(Vec<u8>, CommitCertificate<stele_bft::SteleContext>),
}

#[derive(Debug)]
enum SimEvent {
    Deliver {
        to: usize,
        from: usize,
        payload: Payload,
    },
    Timer {
        node: usize,
        incarnation: u64,
        height: Height,
        timeout: Timeout,
        id: u64,
    },
    Propose {
        node: usize,
        incarnation: u64,
        height: Height,
        round: Round,
    },
    SyncTick {
        node: usize,
        incarnation: u64,
    },
    Step(Step),
}

/// A deliberate bug, to show that the checks catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sabotage {
    /// None: the real run.
    None,
    /// No node checks validity.
    NoValidityCheck,
    /// A restarted node loses its write-ahead log.
    ForgetWal,
}

/// One line of the decision trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub at_ms: u64,
    pub node: usize,
    pub height: Height,
    pub round: Round,
    pub value: ValueId,
}

/// A node, its host state, and what survives a crash.
pub struct Host {
    pub behaviour: Behaviour,
    pub node: Option<BftNode>,
    pub key: SigningKey,
    incarnation: u64,
    timers: Vec<(Height, Timeout, u64)>,
    /// Durable: the write-ahead log of the current height.
    pub wal: Vec<WalEntry>,
    /// Durable: the ledger, batch `h` at index `h - 1`.
    pub committed: Vec<(Value, CommitCertificate<stele_bft::SteleContext>)>,
    /// Messages this node received (the garbage node replays them).
    pub received: Vec<Message>,
}

/// The outcome of a run.
pub struct Outcome {
    pub trace: Vec<Decision>,
    pub summary: String,
}

pub struct Cluster {
    pub plan: Plan,
    pub now_ms: u64,
    pub validators: ValidatorSet,
    pub hosts: Vec<Host>,
    queue: BTreeMap<(u64, u64), SimEvent>,
    sequence: u64,
    pub net: ChaCha8Rng,
    cut: BTreeSet<(usize, usize)>,
    healed: bool,
    /// A deliberate bug (`Sabotage::None` in real runs).
    sabotage: Sabotage,
    /// Restarts from the WAL, and the entries they replayed.
    restarts: u64,
    replayed_entries: usize,
    /// Synced batches fed to nodes.
    syncs_fed: u64,
    /// Height -> the value the first honest decider decided.
    pub decided: BTreeMap<Height, ValueId>,
    /// (node, vote kind, height, round) -> value voted, for honest nodes.
    pub votes_signed: BTreeMap<(usize, u8, u64, i64), Option<ValueId>>,
    pub trace: Vec<Decision>,
    pub violations: Vec<String>,
}

/// The value the host of `node` proposes: invalid ones start with "invalid".
pub fn value_bytes(node: usize, height: Height, round: Round, valid: bool) -> Vec<u8> {
    let prefix = if valid { "batch" } else { "invalid" };
    format!("{prefix}/h{height}/r{round}/n{node}").into_bytes()
}

pub fn is_valid_value(value: &Value) -> bool {
    !value.bytes().starts_with(b"invalid")
}

impl Cluster {
    pub fn new(plan: Plan, sabotage: Sabotage) -> Cluster {
        let mut keys_rng = rng(plan.seed, STREAM_KEYS);
        let keys: Vec<SigningKey> = (0..plan.nodes())
            .map(|_| {
                let mut secret = [0u8; 32];
                keys_rng.fill_bytes(&mut secret);
                SigningKey::from_bytes(&secret)
            })
            .collect();
        let validators = ValidatorSet::new(
            keys.iter()
                .enumerate()
                .map(|(node, key)| Validator {
                    id: ValidatorId(node as u64 + 1),
                    public_key: key.verifying_key(),
                    power: plan.powers[node],
                })
                .collect(),
        )
        .expect("the plan's validator set is valid");
        let hosts = keys
            .into_iter()
            .enumerate()
            .map(|(node, key)| Host {
                behaviour: plan.behaviours[node],
                node: None,
                key,
                incarnation: 0,
                timers: Vec::new(),
                wal: Vec::new(),
                committed: Vec::new(),
                received: Vec::new(),
            })
            .collect();
        let net = rng(plan.seed, STREAM_NETWORK);
        let mut cluster = Cluster {
            plan,
            now_ms: 0,
            validators,
            hosts,
            queue: BTreeMap::new(),
            sequence: 0,
            net,
            cut: BTreeSet::new(),
            healed: false,
            sabotage,
            restarts: 0,
            replayed_entries: 0,
            syncs_fed: 0,
            decided: BTreeMap::new(),
            votes_signed: BTreeMap::new(),
            trace: Vec::new(),
            violations: Vec::new(),
        };
        for (at, step) in cluster.plan.steps.clone() {
            cluster.schedule(at, SimEvent::Step(step));
        }
        cluster
    }

    fn schedule(&mut self, at_ms: u64, event: SimEvent) {
        self.sequence += 1;
        self.queue.insert((at_ms, self.sequence), event);
    }

    fn config(&self, node: usize) -> BftConfig {
        BftConfig {
            id: ValidatorId(node as u64 + 1),
            signing_key: self.hosts[node].key.clone(),
            validators: self.validators.clone(),
            timeouts: LinearTimeouts::default(),
        }
    }

    fn validity(&self, node: usize) -> Box<dyn Validity + Send> {
        let accept_all = self.sabotage == Sabotage::NoValidityCheck
            || self.hosts[node].behaviour == Behaviour::VoteAll;
        Box::new(ValidityFn(move |_height: Height, value: &Value| {
            accept_all || is_valid_value(value)
        }))
    }

    /// Starts (or restarts from the WAL) `node`.
    fn boot(&mut self, node: usize) {
        let height = Height(self.hosts[node].committed.len() as u64 + 1);
        let host = &mut self.hosts[node];
        host.incarnation += 1;
        host.timers.clear();
        let (bft, actions) = if host.incarnation == 1 {
            let mut bft = BftNode::new(self.config(node), self.validity(node), height)
                .expect("the node's config is valid");
            let actions = bft.handle(Event::Start);
            (bft, actions)
        } else {
            if self.sabotage == Sabotage::ForgetWal {
                self.hosts[node].wal.clear();
            }
            // Through the on-disk encoding, as a real host reads its log back.
            let wal: Vec<WalEntry> = self.hosts[node]
                .wal
                .iter()
                .map(|entry| {
                    let bytes = entry.encode().expect("a logged input encodes");
                    let decoded = WalEntry::decode(&bytes).expect("an encoded entry decodes");
                    assert_eq!(&decoded, entry, "the encoding round-trips");
                    decoded
                })
                .collect();
            self.restarts += 1;
            self.replayed_entries += wal.len();
            BftNode::recover(self.config(node), self.validity(node), height, &wal)
                .expect("the WAL replays without divergence")
        };
        self.hosts[node].node = Some(bft);
        let incarnation = self.hosts[node].incarnation;
        self.schedule(
            self.now_ms + SYNC_INTERVAL_MS,
            SimEvent::SyncTick { node, incarnation },
        );
        self.carry_out(node, actions);
    }

    /// Runs the plan, then until every honest node has made progress after
    /// the heal (or the window closes). Returns the trace, or the violations.
    pub fn run(mut self) -> Result<Outcome, String> {
        for node in 0..self.hosts.len() {
            self.boot(node);
        }
        let heal_at = self.plan.heal_at_ms;
        self.schedule(heal_at, SimEvent::Step(Step::Heal));
        let mut goal: Option<u64> = None;
        let mut events = 0u64;
        while let Some(((at, _), event)) = self.queue.pop_first() {
            events += 1;
            assert!(events <= EVENTS_MAX, "more than {EVENTS_MAX} events");
            self.now_ms = at;
            if goal.is_none() && at >= heal_at {
                self.heal_everything();
                let highest = self.hosts.iter().map(|h| h.committed.len() as u64).max();
                goal = Some(highest.unwrap_or(0) + PROGRESS_AFTER_HEAL);
            }
            self.on_event(event);
            if !self.violations.is_empty() {
                break;
            }
            if let Some(goal) = goal {
                let honest_done = (0..self.hosts.len())
                    .filter(|node| self.plan.is_honest(*node))
                    .all(|node| self.hosts[node].committed.len() as u64 >= goal);
                if honest_done {
                    break;
                }
                if at > heal_at + PROGRESS_WINDOW_MS {
                    let heights: Vec<usize> =
                        self.hosts.iter().map(|h| h.committed.len()).collect();
                    self.violations.push(format!(
                        "no progress: honest nodes did not all commit height {goal} within \
                         {PROGRESS_WINDOW_MS} ms of the heal (committed heights {heights:?})"
                    ));
                    break;
                }
            }
        }
        self.finish(events)
    }

    fn finish(self, events: u64) -> Result<Outcome, String> {
        let mut violations = self.violations;
        for (node, host) in self.hosts.iter().enumerate() {
            let Some(bft) = &host.node else { continue };
            if self.plan.is_honest(node) && bft.stats().core_errors > 0 {
                violations.push(format!("node {node}: core errors {:?}", bft.stats()));
            }
        }
        if !violations.is_empty() {
            return Err(violations.join("\n"));
        }
        let heights: Vec<usize> = self.hosts.iter().map(|h| h.committed.len()).collect();
        let refused: u64 = self
            .hosts
            .iter()
            .filter_map(|h| h.node.as_ref().map(|n| n.stats().refused_proposals))
            .sum();
        let rounds_above_zero = self
            .trace
            .iter()
            .filter(|d| d.round != Round::new(0))
            .count();
        Ok(Outcome {
            summary: format!(
                "{} nodes {:?} powers {:?}: heights {heights:?} at {} ms, {events} events, \
                 {} decisions ({rounds_above_zero} after round 0), {refused} refused proposals, \
                 {} restarts replaying {} WAL entries, {} sync responses fed",
                self.plan.nodes(),
                self.plan.behaviours,
                self.plan.powers,
                self.now_ms,
                self.trace.len(),
                self.restarts,
                self.replayed_entries,
                self.syncs_fed,
            ),
            trace: self.trace,
        })
    }

    fn heal_everything(&mut self) {
        self.healed = true;
        self.cut.clear();
        for node in 0..self.hosts.len() {
            if self.hosts[node].node.is_none() {
                self.boot(node);
            }
        }
    }

    fn on_event(&mut self, event: SimEvent) {
        match event {
            SimEvent::Deliver { to, from, payload } => {
                if self.cut.contains(&(from, to)) || self.hosts[to].node.is_none() {
                    return;
                }
                self.deliver(to, from, payload);
            }
            SimEvent::Timer {
                node,
                incarnation,
                height,
                timeout,
                id,
            } => {
                let host = &mut self.hosts[node];
                if host.incarnation != incarnation {
                    return;
                }
                let Some(index) = host.timers.iter().position(|t| t.2 == id) else {
                    return;
                };
                host.timers.swap_remove(index);
                self.handle(node, Event::TimeoutElapsed(height, timeout));
            }
            SimEvent::Propose {
                node,
                incarnation,
                height,
                round,
            } => {
                if self.hosts[node].incarnation != incarnation {
                    return;
                }
                let valid = self.hosts[node].behaviour != Behaviour::InvalidProposer;
                let bytes = value_bytes(node, height, round, valid);
                self.handle(node, Event::ValueToPropose(height, round, bytes));
            }
            SimEvent::SyncTick { node, incarnation } => {
                if self.hosts[node].incarnation != incarnation || self.hosts[node].node.is_none() {
                    return;
                }
                self.schedule(
                    self.now_ms + SYNC_INTERVAL_MS,
                    SimEvent::SyncTick { node, incarnation },
                );
                let height = Height(self.hosts[node].committed.len() as u64 + 1);
                self.send_all(node, Payload::SyncRequest(height));
                if self.hosts[node].behaviour == Behaviour::Garbage {
                    byzantine::send_garbage(self, node);
                }
            }
            SimEvent::Step(step) => self.on_step(step),
        }
    }

    fn on_step(&mut self, step: Step) {
        match step {
            Step::Partition(side) => {
                for a in 0..self.hosts.len() {
                    for b in 0..self.hosts.len() {
                        if side.contains(&a) != side.contains(&b) {
                            self.cut.insert((a, b));
                        }
                    }
                }
            }
            Step::Heal => self.cut.clear(),
            Step::Crash(node) => {
                let host = &mut self.hosts[node];
                if host.node.take().is_some() {
                    // In-flight timers and proposals die with the process.
                    host.incarnation += 1;
                    host.timers.clear();
                }
            }
            Step::Restart(node) => {
                if self.hosts[node].node.is_none() {
                    self.boot(node);
                }
            }
        }
    }

    fn deliver(&mut self, to: usize, from: usize, payload: Payload) {
        match payload {
            Payload::Consensus(message) => {
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
                if let Some((value, certificate)) = self.hosts[to].committed.get(index as usize) {
                    if !silent {
                        let payload =
                            Payload::SyncResponse(value.bytes().to_vec(), certificate.clone());
                        self.send(to, from, payload);
                    }
                }
            }
            Payload::SyncResponse(value, certificate) => {
                self.syncs_fed += 1;
                self.handle(to, Event::Synced { value, certificate });
            }
        }
    }

    /// Feeds `event` to `node` and carries out the actions.
    pub fn handle(&mut self, node: usize, event: Event) {
        let Some(bft) = self.hosts[node].node.as_mut() else {
            return;
        };
        let actions = bft.handle(event);
        self.carry_out(node, actions);
    }

    fn carry_out(&mut self, node: usize, actions: Vec<Action>) {
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
                } => {
                    checks::on_decided(self, node, height, value, certificate);
                }
            }
        }
    }

    /// Sends a node's broadcast, through its behaviour.
    fn broadcast(&mut self, node: usize, message: Message) {
        match self.hosts[node].behaviour {
            Behaviour::Silent => {}
            Behaviour::Equivocate => byzantine::equivocate(self, node, message),
            Behaviour::Honest => {
                checks::record_own_vote(self, node, &message);
                self.send_all(node, Payload::Consensus(message));
            }
            _ => self.send_all(node, Payload::Consensus(message)),
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

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).expect("timeouts are short")
}
