//! BFT mode with one Byzantine validator of four, real processes (issue
//! P11). Built only with the root package's `byzantine` feature
//! (`cargo test --features byzantine --test bft_byzantine`; `.ci/run` runs
//! it): node 1, the first proposer, misbehaves as `STELE_BYZANTINE` says,
//! and in every case writes keep committing on the honest nodes, which agree
//! on every batch and whose ledgers verify against the validators.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use stele_tests::bft::{bft_options, certified_part, validators_file, verify_all, write_committed};
use stele_tests::cluster::{Cluster, ClusterOptions};

const BIN: &str = env!("CARGO_BIN_EXE_stele");

/// Node index 0 (id 1) owns view 0: it proposes first.
const BYZANTINE: usize = 0;
const HONEST: [usize; 3] = [1, 2, 3];

fn with_fault(fault: &str) -> ClusterOptions {
    ClusterOptions {
        env: vec![(
            BYZANTINE as u64 + 1,
            "STELE_BYZANTINE".to_owned(),
            fault.to_owned(),
        )],
        ..bft_options()
    }
}

/// Writes through the honest nodes (a client may also reach the Byzantine
/// one, which proposes first), then checks agreement and the ledgers.
fn writes_commit_and_honest_nodes_agree(fault: &str) {
    let mut cluster = Cluster::start(Path::new(BIN), &with_fault(fault));
    let all = cluster.all();
    let mut committed = Vec::new();
    for index in 0..12 {
        // The first writes may reach the Byzantine proposer too.
        let running: &[usize] = if index < 2 { &all } else { &HONEST };
        committed.push(write_committed(&cluster, running, &format!("{fault}-{index}")).1);
    }
    let last = *committed.last().unwrap();
    cluster.assert_committed_everywhere(&HONEST, &committed, last);
    for id in &committed {
        let receipt = cluster.client(HONEST[0]).receipt_text(*id);
        for &index in &HONEST[1..] {
            let theirs = cluster.client(index).receipt_text(*id);
            assert_eq!(
                certified_part(&theirs),
                certified_part(&receipt),
                "{fault}: {id} on node {}",
                index + 1
            );
        }
    }
    let validators = validators_file(&cluster, HONEST[0]);
    verify_all(&mut cluster, &HONEST, &validators);
}

#[test]
fn a_proposer_proposing_wrong_roots_is_refused_and_replaced() {
    writes_commit_and_honest_nodes_agree("wrong-root");
}

#[test]
fn an_equivocating_validator_cannot_split_the_honest_ones() {
    writes_commit_and_honest_nodes_agree("equivocate");
}

#[test]
fn a_validator_voting_for_everything_changes_nothing() {
    writes_commit_and_honest_nodes_agree("vote-all");
}

#[test]
fn a_silent_proposer_is_replaced() {
    writes_commit_and_honest_nodes_agree("silent");
}
