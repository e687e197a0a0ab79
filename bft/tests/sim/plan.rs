//! The fault plan of a seed: everything the run will do wrong, drawn from the
//! seed alone before the run starts (faults are data).

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How a node behaves. Every node runs the real `BftNode`; a faulty one has
/// one decision swapped by its host (the test side), so no fault code is in
/// the crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Follows the protocol.
    Honest,
    /// Sends nothing (and answers no sync request).
    Silent,
    /// As proposer, signs two different values for one height and round and
    /// sends each to half of its peers; sends each vote to half of its peers
    /// and a conflicting vote to the other half.
    Equivocate,
    /// As proposer, proposes values the validity hook rejects.
    InvalidProposer,
    /// Accepts every value and prevotes and precommits every value it sees.
    VoteAll,
    /// Replays old messages and sends garbage: bad signatures, votes in
    /// another validator's name, forged certificates.
    Garbage,
}

/// One change to the world at a point of virtual time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Cut every link between `side` and the other nodes.
    Partition(Vec<usize>),
    /// Restore every link.
    Heal,
    /// Stop a node (its WAL and committed batches survive).
    Crash(usize),
    /// Restart a crashed node from its WAL.
    Restart(usize),
}

/// Everything a seed fixes before the run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The seed itself (keys and every network draw derive from it).
    pub seed: u64,
    /// Voting power of each node (node i is validator i + 1).
    pub powers: Vec<u64>,
    /// Behaviour of each node.
    pub behaviours: Vec<Behaviour>,
    /// Probability that a message is lost, until the heal.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Message delay range (ms), drawn per message: delays reorder.
    pub delay_ms: (u64, u64),
    /// Timed steps, sorted by time (ms).
    pub steps: Vec<(u64, Step)>,
    /// From here on: every link healed, every crashed node restarted, no loss.
    pub heal_at_ms: u64,
    /// Whether nodes park between heights (their hosts start them).
    pub park: bool,
}

/// An RNG for `stream` of `seed`.
pub fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Stream of the plan's draws.
pub const STREAM_PLAN: u64 = 1;
/// Stream of the network's draws.
pub const STREAM_NETWORK: u64 = 2;
/// Stream of the keys.
pub const STREAM_KEYS: u64 = 3;

impl Plan {
    /// The plan of `seed`.
    pub fn from_seed(seed: u64) -> Plan {
        let mut rng = rng(seed, STREAM_PLAN);
        let nodes: usize = if rng.gen_bool(0.2) { 7 } else { 4 };
        let powers: Vec<u64> = if rng.gen_bool(0.5) {
            vec![1; nodes]
        } else {
            (0..nodes).map(|_| rng.gen_range(1..=4)).collect()
        };
        let total: u64 = powers.iter().sum();
        // Up to f faulty nodes, then fewer until they hold < 1/3 of the power
        // (the assumption under which Tendermint is safe and live).
        let f = (nodes - 1) / 3;
        let mut order: Vec<usize> = (0..nodes).collect();
        order.shuffle(&mut rng);
        let mut faulty: Vec<usize> = order[..rng.gen_range(0..=f)].to_vec();
        while faulty.iter().map(|node| powers[*node]).sum::<u64>() * 3 >= total {
            faulty.pop();
        }
        let kinds = [
            Behaviour::Silent,
            Behaviour::Equivocate,
            Behaviour::InvalidProposer,
            Behaviour::VoteAll,
            Behaviour::Garbage,
        ];
        let mut behaviours = vec![Behaviour::Honest; nodes];
        for node in &faulty {
            behaviours[*node] = *kinds.choose(&mut rng).expect("kinds is not empty");
        }
        let honest: Vec<usize> = (0..nodes)
            .filter(|node| behaviours[*node] == Behaviour::Honest)
            .collect();

        let heal_at_ms = rng.gen_range(5_000..20_000);
        let mut steps = Vec::new();
        for _ in 0..rng.gen_range(0..=3) {
            let at = rng.gen_range(0..heal_at_ms);
            if rng.gen_bool(0.5) {
                let mut side = order.clone();
                side.shuffle(&mut rng);
                side.truncate(rng.gen_range(1..nodes));
                side.sort_unstable();
                steps.push((at, Step::Partition(side)));
                let until = rng.gen_range(at..=heal_at_ms);
                steps.push((until, Step::Heal));
            } else {
                let node = *honest.choose(&mut rng).expect("most nodes are honest");
                steps.push((at, Step::Crash(node)));
                let until = rng.gen_range(at..=heal_at_ms);
                steps.push((until, Step::Restart(node)));
            }
        }
        // Stable: a crash and its restart at one instant stay in that order.
        steps.sort_by_key(|(at, _)| *at);
        let loss = [0.0, 0.05, 0.2][rng.gen_range(0..3)];
        let duplicate = [0.0, 0.05, 0.2][rng.gen_range(0..3)];
        let delay_ms = (rng.gen_range(1..20), rng.gen_range(20..400));
        Plan {
            seed,
            powers,
            behaviours,
            loss,
            duplicate,
            delay_ms,
            steps,
            heal_at_ms,
            park: rng.gen_bool(0.5),
        }
    }

    /// Nodes in the run.
    pub fn nodes(&self) -> usize {
        self.powers.len()
    }

    /// Whether `node` follows the protocol.
    pub fn is_honest(&self, node: usize) -> bool {
        self.behaviours[node] == Behaviour::Honest
    }
}
