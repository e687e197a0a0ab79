//! End-to-end test (RESP differential): seeded random sequences of the supported
//! commands, sent to a throwaway `redis-server` (the oracle: Redis 7.0, Debian's
//! package; `scripts/setup.sh` installs it) and to a Stele node, every reply
//! compared.
//!
//! A sequence works on a small key space (8 keys, one of them not UTF-8; hashes
//! with 3 fields) with small values, integers among them (and `i64::MAX`, so that
//! overflows happen), so that keys are often absent, of the wrong type or not an
//! integer: GET SET (NX XX GET) SETNX GETSET GETDEL MGET MSET MSETNX DEL UNLINK
//! EXISTS TYPE STRLEN APPEND INCR DECR INCRBY DECRBY, HSET HGET HDEL HGETALL HEXISTS
//! HLEN HMGET HINCRBY, DBSIZE KEYS PING ECHO; MULTI..EXEC and MULTI..DISCARD blocks;
//! and WATCH blocks on one connection, the watched key changed (or not) by that
//! connection or by a second one before EXEC.
//!
//! Comparison: an error by its kind (the first word: `ERR`, `WRONGTYPE`), HGETALL
//! as a set of pairs and KEYS as a set of keys, everything else exactly (inside an
//! EXEC reply too, element by element).
//!
//! Intended differences (not compared, or not generated):
//! - HGETALL order: Redis answers in insertion order, Stele sorted byte-wise
//!   (compared as sets). KEYS order: a hash table's in Redis (compared as sets).
//! - Error texts: only the kind is compared (Stele's texts are Redis's for the
//!   errors above, but e.g. `DECRBY k -9223372036854775808` is `ERR decrement
//!   would overflow` in Redis and may be worded otherwise).
//! - Expiry (`EX`, `PX`, `EXPIRE`, `TTL`...): refused by Stele (a ledger does not
//!   forget); not generated (tests/e2e/resp.rs checks the refusal).
//! - WATCH compares values: Stele records a digest of the watched key's type and
//!   value and EXEC aborts only if it differs, while Redis aborts on any write to
//!   the key, even one that leaves the same value (`SET k v` over `v`, `INCRBY k 0`,
//!   `APPEND k ""`, DEL then SET back). So the writes generated between WATCH and
//!   EXEC on a watched key always store a value never stored before; writes to
//!   other keys are random.
//! - Commands whose arguments Stele checks when queued, inside MULTI (an amount
//!   that is not an integer): Redis queues them and answers the error inside
//!   EXEC's reply; Stele's op carries an `i64`. Generated outside MULTI only.
//! - SCAN: cursors are implementation-defined (tests/e2e/resp.rs checks that an
//!   iteration sees every key once); not generated.
//! - `$-1` versus `*-1`: redis-rs reads both as nil.
//!
//! Seeds 0..16 in the normal run; `STELE_DIFF_SEED=<n>` runs seed n alone (e.g.
//! one that failed: the message names the seed, the step, the command, both
//! replies and the commands before it). `STELE_DIFF_STEPS=<n>` changes the
//! length of a sequence. `STELE_DIFF_AGAINST=redis-server` compares two
//! redis-servers instead (checks the harness itself: that run must pass).

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used)]

#[path = "resp_support.rs"]
mod support;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;

use redis::Value;
use stele_tests::{RedisServer, TestNode};
use support::{call, connect, show, show_args};

const BIN: &str = env!("CARGO_BIN_EXE_stele");
/// The seeds of the normal run.
const SEEDS: std::ops::Range<u64> = 0..16;
/// Items (a command, or a whole MULTI or WATCH block) per sequence.
const STEPS_DEFAULT: usize = 150;
/// Commands shown before a failing one.
const HISTORY_SHOWN: usize = 12;
/// The token of the redis-servers (`--requirepass`).
const REDIS_TOKEN: &str = "stele-diff-token";

// ---------------------------------------------------------------- the PRNG

/// splitmix64: tiny, seeded, the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for a test (n is small).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

// ---------------------------------------------------------------- the generator

type Args = Vec<Vec<u8>>;

/// The key space of one seed: its own prefix, so seeds do not share keys.
struct Space {
    keys: Vec<Vec<u8>>,
    /// A counter for values never stored before (WATCH blocks).
    fresh: u64,
}

const FIELDS: [&str; 3] = ["f", "g", "n"];
const VALUES: [&[u8]; 12] = [
    b"",
    b"v",
    b"w",
    b"0",
    b"1",
    b"-3",
    b"42",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"01",
    b"x y",
    b"\x00\xff",
];
/// INCRBY amounts (integers only: see the module documentation).
const AMOUNTS: [&str; 8] = [
    "0",
    "1",
    "-1",
    "7",
    "-100",
    "9223372036854775807",
    "-9223372036854775807",
    "3",
];
/// Amounts that are not integers, or overflow: outside MULTI only.
const BAD_AMOUNTS: [&str; 5] = ["x", "01", "1.5", "", "-9223372036854775808"];

impl Space {
    fn new(seed: u64) -> Space {
        let prefix = format!("d{seed}:");
        let mut keys: Vec<Vec<u8>> = ["a", "b", "c", "n", "m", "h1", "h2"]
            .iter()
            .map(|name| format!("{prefix}{name}").into_bytes())
            .collect();
        let mut binary = prefix.into_bytes();
        binary.extend_from_slice(&[0xff, 0x00, 0xfe]);
        keys.push(binary);
        Space { keys, fresh: 0 }
    }

    fn key(&self, rng: &mut Rng) -> Vec<u8> {
        rng.pick(&self.keys).clone()
    }

    fn value(rng: &mut Rng) -> Vec<u8> {
        rng.pick(&VALUES).to_vec()
    }

    fn fresh_value(&mut self) -> Vec<u8> {
        self.fresh += 1;
        format!("fresh-{}", self.fresh).into_bytes()
    }

    /// One command of the Redis data model (allowed inside MULTI); `in_multi`
    /// leaves out arguments Stele checks when queued.
    fn data_command(&self, rng: &mut Rng, in_multi: bool) -> Args {
        let key = self.key(rng);
        let amount = |rng: &mut Rng| -> Vec<u8> {
            if !in_multi && rng.chance(15) {
                rng.pick(&BAD_AMOUNTS).as_bytes().to_vec()
            } else {
                rng.pick(&AMOUNTS).as_bytes().to_vec()
            }
        };
        let pick_field = |rng: &mut Rng| rng.pick(&FIELDS).as_bytes().to_vec();
        let several = |rng: &mut Rng| -> Vec<Vec<u8>> {
            (0..1 + rng.below(3)).map(|_| self.key(rng)).collect()
        };
        let name = |text: &str| text.as_bytes().to_vec();
        match rng.below(26) {
            0 => vec![name("GET"), key],
            1 | 2 => {
                let mut args = vec![name("SET"), key, Space::value(rng)];
                match rng.below(6) {
                    0 => args.push(name("NX")),
                    1 => args.push(name("XX")),
                    2 => args.push(name("GET")),
                    3 => args.extend([name("NX"), name("GET")]),
                    4 => args.extend([name("XX"), name("GET")]),
                    _ => {}
                }
                args
            }
            3 => vec![name("SETNX"), key, Space::value(rng)],
            4 => vec![name("GETSET"), key, Space::value(rng)],
            5 => vec![name("GETDEL"), key],
            6 => [vec![name("MGET")], several(rng)].concat(),
            7 | 8 => {
                let command = if rng.chance(30) { "MSETNX" } else { "MSET" };
                let mut args = vec![name(command)];
                for key in several(rng) {
                    args.extend([key, Space::value(rng)]);
                }
                args
            }
            9 => [
                vec![name(if rng.chance(50) { "DEL" } else { "UNLINK" })],
                several(rng),
            ]
            .concat(),
            10 => [vec![name("EXISTS")], several(rng)].concat(),
            11 => vec![name("TYPE"), key],
            12 => vec![name("STRLEN"), key],
            13 => vec![name("APPEND"), key, Space::value(rng)],
            14 => vec![name(if rng.chance(50) { "INCR" } else { "DECR" }), key],
            15 => {
                let command = if rng.chance(50) { "INCRBY" } else { "DECRBY" };
                vec![name(command), key, amount(rng)]
            }
            16 | 17 => {
                let mut args = vec![name("HSET"), key];
                for _ in 0..1 + rng.below(2) {
                    args.extend([pick_field(rng), Space::value(rng)]);
                }
                args
            }
            18 => vec![name("HGET"), key, pick_field(rng)],
            19 => {
                let mut args = vec![name("HDEL"), key];
                for _ in 0..1 + rng.below(2) {
                    args.push(pick_field(rng));
                }
                args
            }
            20 => vec![name("HGETALL"), key],
            21 => vec![name("HEXISTS"), key, pick_field(rng)],
            22 => vec![name("HLEN"), key],
            23 => {
                let mut args = vec![name("HMGET"), key];
                for _ in 0..1 + rng.below(3) {
                    args.push(pick_field(rng));
                }
                args
            }
            _ => vec![name("HINCRBY"), key, pick_field(rng), amount(rng)],
        }
    }

    /// One command outside MULTI: the data model, or a server command.
    fn command(&self, rng: &mut Rng, seed: u64) -> Args {
        let name = |text: &str| text.as_bytes().to_vec();
        match rng.below(30) {
            0 => vec![name("DBSIZE")],
            1 => vec![name("KEYS"), name("*")],
            2 => vec![name("KEYS"), format!("d{seed}:h*").into_bytes()],
            3 => vec![name("PING")],
            _ => self.data_command(rng, false),
        }
    }
}

/// One step: the commands, each with the connection that sends it (0 or 1).
fn step(space: &mut Space, rng: &mut Rng, seed: u64) -> Vec<(usize, Args)> {
    let name = |text: &str| text.as_bytes().to_vec();
    match rng.below(10) {
        // MULTI ... EXEC (or DISCARD).
        0 | 1 => {
            let mut commands = vec![(0, vec![name("MULTI")])];
            for _ in 0..1 + rng.below(4) {
                commands.push((0, space.data_command(rng, true)));
            }
            let end = if rng.chance(15) { "DISCARD" } else { "EXEC" };
            commands.push((0, vec![name(end)]));
            commands
        }
        // WATCH k; maybe commands on other keys; maybe a change of k by this or the
        // other connection (a value never stored before); MULTI ... EXEC.
        2 => {
            let watched = space.key(rng);
            let mut commands = vec![(0, vec![name("WATCH"), watched.clone()])];
            for _ in 0..rng.below(3) {
                let command = space.data_command(rng, false);
                if !names_key(&command, &watched) {
                    commands.push((0, command));
                }
            }
            match rng.below(4) {
                0 => {
                    let value = space.fresh_value();
                    commands.push((0, vec![name("SET"), watched.clone(), value]));
                }
                1 => {
                    let value = space.fresh_value();
                    commands.push((1, vec![name("SET"), watched.clone(), value]));
                }
                2 => {
                    let value = space.fresh_value();
                    let field = rng.pick(&FIELDS).as_bytes().to_vec();
                    commands.push((1, vec![name("HSET"), watched.clone(), field, value]));
                }
                _ => {}
            }
            if rng.chance(20) {
                commands.push((0, vec![name("UNWATCH")]));
            }
            commands.push((0, vec![name("MULTI")]));
            for _ in 0..1 + rng.below(3) {
                commands.push((0, space.data_command(rng, true)));
            }
            commands.push((0, vec![name("EXEC")]));
            commands
        }
        // A write from the second connection.
        3 => vec![(1, space.data_command(rng, false))],
        _ => vec![(0, space.command(rng, seed))],
    }
}

/// Whether `command` names `key` among its arguments (not as its name).
fn names_key(command: &Args, key: &[u8]) -> bool {
    command[1..].iter().any(|arg| arg.as_slice() == key)
}

// ---------------------------------------------------------------- comparing

/// A reply as compared.
#[derive(Debug, PartialEq)]
enum Compared {
    /// An error, by kind.
    Error(String),
    /// HGETALL's pairs, sorted.
    Pairs(Vec<(Value, Value)>),
    /// KEYS's keys, sorted.
    Keys(Vec<Vec<u8>>),
    /// EXEC's replies, each compared as its command's.
    Exec(Vec<Compared>),
    Exact(Value),
}

fn compared(name: &str, queued: &[Args], value: &Value) -> Compared {
    match value {
        Value::ServerError(error) => Compared::Error(error.code().to_owned()),
        Value::Array(items) if name == "HGETALL" && items.len() % 2 == 0 => {
            let mut pairs: Vec<(Value, Value)> = items
                .chunks(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect();
            pairs.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
            Compared::Pairs(pairs)
        }
        Value::Array(items) if name == "KEYS" => {
            let mut keys: Vec<Vec<u8>> = items
                .iter()
                .map(|item| match item {
                    Value::BulkString(bytes) => bytes.clone(),
                    other => format!("{other:?}").into_bytes(),
                })
                .collect();
            keys.sort();
            Compared::Keys(keys)
        }
        Value::Array(items) if name == "EXEC" && items.len() == queued.len() => Compared::Exec(
            items
                .iter()
                .zip(queued)
                .map(|(item, command)| compared(&command_name(command), &[], item))
                .collect(),
        ),
        other => Compared::Exact(other.clone()),
    }
}

fn command_name(args: &Args) -> String {
    String::from_utf8_lossy(&args[0]).to_ascii_uppercase()
}

// ---------------------------------------------------------------- the sides

/// One side: a server and two connections to it.
struct Side {
    name: &'static str,
    connections: [redis::Connection; 2],
}

impl Side {
    fn new(name: &'static str, address: SocketAddr, token: &str) -> Side {
        Side {
            name,
            connections: [connect(address, token), connect(address, token)],
        }
    }
}

/// What a run compared, for the log: commands, error replies, aborted EXECs.
#[derive(Debug, Default)]
struct Tally {
    commands: usize,
    errors: usize,
    aborted_execs: usize,
}

fn run_seed(seed: u64, steps: usize, oracle: &mut Side, tested: &mut Side, tally: &mut Tally) {
    let mut rng = Rng(seed);
    let mut space = Space::new(seed);
    let mut history: VecDeque<String> = VecDeque::new();
    // The commands queued since MULTI on connection 0, for EXEC's comparison.
    let mut queued: Vec<Args> = Vec::new();
    let mut in_multi = false;
    for step_index in 0..steps {
        for (connection, args) in step(&mut space, &mut rng, seed) {
            let name = command_name(&args);
            let shown = format!(
                "[conn {connection}] {}",
                show_args(&args.iter().map(Vec::as_slice).collect::<Vec<_>>())
            );
            let want = call(&mut oracle.connections[connection], &args);
            let got = call(&mut tested.connections[connection], &args);
            let same = compared(&name, &queued, &want) == compared(&name, &queued, &got);
            tally.commands += 1;
            tally.errors += usize::from(matches!(want, Value::ServerError(_)));
            tally.aborted_execs += usize::from(name == "EXEC" && want == Value::Nil);
            if !same {
                panic!(
                    "seed {seed}, step {step_index}: {shown}\n  {}: {}\n  {}: {}\n\
                     rerun: STELE_DIFF_SEED={seed} cargo test -p stele --test resp_differential\n\
                     the commands before it (oldest first):\n  {}",
                    oracle.name,
                    show(&want),
                    tested.name,
                    show(&got),
                    history.iter().cloned().collect::<Vec<_>>().join("\n  ")
                );
            }
            if connection == 0 {
                match name.as_str() {
                    "MULTI" => {
                        in_multi = true;
                        queued.clear();
                    }
                    "EXEC" | "DISCARD" => {
                        in_multi = false;
                        queued.clear();
                    }
                    _ if in_multi => queued.push(args.clone()),
                    _ => {}
                }
            }
            if history.len() == HISTORY_SHOWN {
                history.pop_front();
            }
            history.push_back(format!("{shown} -> {}", show(&want)));
        }
    }
}

fn seeds() -> Vec<u64> {
    match std::env::var("STELE_DIFF_SEED") {
        Ok(seed) if !seed.trim().is_empty() => vec![seed
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("STELE_DIFF_SEED={seed:?} is not a number"))],
        _ => SEEDS.collect(),
    }
}

fn steps() -> usize {
    match std::env::var("STELE_DIFF_STEPS") {
        Ok(steps) if !steps.trim().is_empty() => steps
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("STELE_DIFF_STEPS={steps:?} is not a number")),
        _ => STEPS_DEFAULT,
    }
}

#[test]
fn stele_answers_random_command_sequences_as_redis_does() {
    let oracle_server = RedisServer::start_with(&["--requirepass", REDIS_TOKEN]);
    let mut oracle = Side::new("redis-server", oracle_server.address(), REDIS_TOKEN);
    let dir = tempfile::tempdir().unwrap();
    // Kept alive for the whole test: whichever the tested side is.
    let (_node, _other_server, mut tested) = match std::env::var("STELE_DIFF_AGAINST").as_deref() {
        Ok("redis-server") => {
            let server = RedisServer::start_with(&["--requirepass", REDIS_TOKEN]);
            let side = Side::new("redis-server #2", server.address(), REDIS_TOKEN);
            (None, Some(server), side)
        }
        Ok("") | Ok("stele") | Err(_) => {
            let node = TestNode::start(Path::new(BIN), &dir.path().join("data"));
            let side = Side::new("stele", node.resp_address(), node.token());
            (Some(node), None, side)
        }
        Ok(other) => panic!("STELE_DIFF_AGAINST={other:?}: use stele or redis-server"),
    };
    let steps = steps();
    let mut tally = Tally::default();
    for seed in seeds() {
        run_seed(seed, steps, &mut oracle, &mut tested, &mut tally);
    }
    eprintln!("compared with {}: {tally:?}", tested.name);
}

#[test]
fn the_generator_is_deterministic() {
    let sequence = |seed| {
        let mut rng = Rng(seed);
        let mut space = Space::new(seed);
        (0..50)
            .flat_map(|_| step(&mut space, &mut rng, seed))
            .collect::<Vec<_>>()
    };
    assert_eq!(sequence(7), sequence(7));
    assert_ne!(sequence(7), sequence(8));
}
