//! The simulated cluster: N whole `BftNode`s, each behind a host that owns its
//! timers, WAL and committed decisions, joined by an in-memory network with a
//! virtual clock (`network.rs`). One thread, one seeded RNG stream for the
//! network and the hosts' delays, one event queue ordered by (virtual time,
//! sequence number): a seed replays exactly.
//!
//! Parking (half the seeds): a parked node's host starts its height as the
//! next proposer after a short random delay (a batch arrived), or, as a
//! non-proposer, after a longer random "demand" delay (clients' writes waited
//! too long); any other node starts on the messages of the height.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;
use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use stele_bft::{
    BftConfig, BftNode, Decision, Event, Height, LinearTimeouts, Message, Round, Timeout,
    Validator, ValidatorId, ValidatorSet, Validity, ValidityFn, Value, ValueId, WalEntry,
};

use super::byzantine;
use super::plan::{rng, Behaviour, Plan, Step, STREAM_KEYS, STREAM_NETWORK};

/// Every node asks its peers for the decided batch of its height this often.
pub const SYNC_INTERVAL_MS: u64 = 1_000;
/// Heights every honest node must commit after the heal (beyond the highest
/// height any node had committed at the heal).
pub const PROGRESS_AFTER_HEAL: u64 = 5;
/// Virtual time allowed for that progress.
pub const PROGRESS_WINDOW_MS: u64 = 120_000;
/// A bound on events per run (a run that needs more is a bug).
pub const EVENTS_MAX: u64 = 3_000_000;
/// A parked next proposer starts its height within this delay (a batch).
pub const PROPOSER_START_MAX_MS: u64 = 300;
/// A parked non-proposer starts its height after a delay in this range
/// (clients' demand waited too long at it).
pub const DEMAND_START_MS: (u64, u64) = (2_000, 6_000);

/// What travels between hosts.
#[derive(Clone, Debug)]
pub enum Payload {
    /// An encoded consensus message (`Message::encode`; garbage may not decode).
    Consensus(Vec<u8>),
    /// "Send me the decided batch of this height."
    SyncRequest(Height),
    /// An encoded decided height (`Decision::encode`).
    SyncResponse(Vec<u8>),
}

impl Payload {
    /// A consensus message's payload.
    pub fn message(message: &Message) -> Payload {
        Payload::Consensus(message.encode())
    }
}

#[derive(Debug)]
pub(super) enum SimEvent {
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
    /// The host starts a parked height (a batch arrived, or demand waited).
    StartParked {
        node: usize,
        incarnation: u64,
        height: Height,
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

/// One line of the decision trace (honest nodes only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceLine {
    pub at_ms: u64,
    pub node: usize,
    pub height: Height,
    pub round: Round,
    /// The view the height was decided in.
    pub view: u64,
    /// The proposer of that view.
    pub proposer: ValidatorId,
    pub value: ValueId,
}

/// A node, its host state, and what survives a crash.
pub struct Host {
    pub behaviour: Behaviour,
    pub node: Option<BftNode>,
    pub key: SigningKey,
    pub(super) incarnation: u64,
    pub(super) timers: Vec<(Height, Timeout, u64)>,
    /// The parked height whose start the host has scheduled.
    pub(super) start_scheduled: Option<Height>,
    /// Durable: the write-ahead log of the current height.
    pub wal: Vec<WalEntry>,
    /// Durable: the ledger, height `h` at index `h - 1`.
    pub committed: Vec<Decision>,
    /// Messages this node received (the garbage node replays them).
    pub received: Vec<Message>,
}

impl Host {
    /// The view base of the next height: the view the last one was decided in.
    pub fn next_view_base(&self) -> u64 {
        self.committed.last().map_or(0, |decision| decision.view)
    }
}

/// The outcome of a run.
pub struct Outcome {
    pub trace: Vec<TraceLine>,
    pub summary: String,
}

pub struct Cluster {
    pub plan: Plan,
    pub now_ms: u64,
    pub validators: ValidatorSet,
    pub hosts: Vec<Host>,
    queue: BTreeMap<(u64, u64), SimEvent>,
    pub(super) sequence: u64,
    pub net: ChaCha8Rng,
    pub(super) cut: BTreeSet<(usize, usize)>,
    pub(super) healed: bool,
    /// A deliberate bug (`Sabotage::None` in real runs).
    sabotage: Sabotage,
    /// Restarts from the WAL, and the entries they replayed.
    restarts: u64,
    replayed_entries: usize,
    /// Synced decisions fed to nodes, and payloads that did not decode.
    pub(super) syncs_fed: u64,
    pub(super) undecodable: u64,
    /// Parked heights the hosts started.
    parked_starts: u64,
    /// Honest decisions in another view than their host's base gives (adopted
    /// by sync).
    pub views_adopted: u64,
    /// Height -> the value the first honest decider decided.
    pub decided: BTreeMap<Height, ValueId>,
    /// (node, vote kind, height, round) -> value voted, for honest nodes.
    pub votes_signed: BTreeMap<(usize, u8, u64, i64), Option<ValueId>>,
    pub trace: Vec<TraceLine>,
    pub violations: Vec<String>,
}

/// The value the host of `node` proposes: invalid ones' payloads start with
/// "invalid"; the body is a checkpoint-like text.
pub fn proposed_value(node: usize, height: Height, round: Round, valid: bool) -> Value {
    let prefix = if valid { "batch" } else { "invalid" };
    let body = format!("sim.example/log\n{height}\nroot/r{round}/n{node}\n");
    let payload = format!("{prefix}/h{height}/r{round}/n{node}").into_bytes();
    Value::new(body, payload).expect("a well-formed body")
}

pub fn is_valid_value(value: &Value) -> bool {
    !value.payload().starts_with(b"invalid")
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
                start_scheduled: None,
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
            undecodable: 0,
            parked_starts: 0,
            views_adopted: 0,
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

    pub(super) fn schedule(&mut self, at_ms: u64, event: SimEvent) {
        self.sequence += 1;
        self.queue.insert((at_ms, self.sequence), event);
    }

    fn config(&self, node: usize) -> BftConfig {
        BftConfig {
            id: ValidatorId(node as u64 + 1),
            signing_key: self.hosts[node].key.clone(),
            validators: self.validators.clone(),
            timeouts: LinearTimeouts::default(),
            park_between_heights: self.plan.park,
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
        let view_base = self.hosts[node].next_view_base();
        let host = &mut self.hosts[node];
        host.incarnation += 1;
        host.timers.clear();
        host.start_scheduled = None;
        let (bft, actions) = if host.incarnation == 1 {
            let mut bft = BftNode::new(self.config(node), self.validity(node), height, view_base)
                .expect("the node's config is valid");
            // Parking, a new node waits like a parked one.
            let actions = if self.plan.park {
                Vec::new()
            } else {
                bft.handle(Event::Start)
            };
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
            let config = self.config(node);
            BftNode::recover(config, self.validity(node), height, view_base, &wal)
                .expect("the WAL replays without divergence")
        };
        self.hosts[node].node = Some(bft);
        let incarnation = self.hosts[node].incarnation;
        self.schedule(
            self.now_ms + SYNC_INTERVAL_MS,
            SimEvent::SyncTick { node, incarnation },
        );
        self.carry_out(node, actions);
        self.schedule_parked_start(node);
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
        let last_view = self.trace.iter().map(|d| d.view).max().unwrap_or(0);
        Ok(Outcome {
            summary: format!(
                "{} nodes {:?} powers {:?}{}: heights {heights:?} at {} ms, {events} events, \
                 {} decisions ({rounds_above_zero} after round 0, last view {last_view}, \
                 {} views adopted by sync), {refused} refused proposals, {} restarts \
                 replaying {} WAL entries, {} sync responses fed, {} parked starts, \
                 {} undecodable payloads",
                self.plan.nodes(),
                self.plan.behaviours,
                self.plan.powers,
                if self.plan.park { " parking" } else { "" },
                self.now_ms,
                self.trace.len(),
                self.views_adopted,
                self.restarts,
                self.replayed_entries,
                self.syncs_fed,
                self.parked_starts,
                self.undecodable,
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
                if host.node.as_ref().is_some_and(BftNode::parked) {
                    self.violations.push(format!(
                        "node {node}: a timer of height {height} fired while parked"
                    ));
                }
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
                let value = proposed_value(node, height, round, valid);
                self.handle(node, Event::ValueToPropose(height, round, value));
            }
            SimEvent::StartParked {
                node,
                incarnation,
                height,
            } => {
                let host = &self.hosts[node];
                let parked_at = host
                    .node
                    .as_ref()
                    .filter(|bft| bft.parked())
                    .map(BftNode::height);
                if host.incarnation == incarnation && parked_at == Some(height) {
                    self.parked_starts += 1;
                    self.handle(node, Event::Start);
                }
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
}
