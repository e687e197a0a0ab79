//! BFT mode with real processes (issue P11): 4 validators laid out by
//! `stele cluster-init --mode bft` on 127.0.0.1. Writes commit on the
//! proposer and are served by every node with certificates of > 2/3 of the
//! voting power; a write on another node is redirected; kill -9 of the
//! proposer gives a new one; two of four down stops progress without any
//! divergence, and back up it resumes; every ledger verifies against the
//! validators, not a service key.

// Helpers outside #[test] functions may unwrap too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use stele_tests::bft::{
    bft_options, certified_part, divergences, validators_file, verify_all, write_committed,
};
use stele_tests::client::Auth;
use stele_tests::cluster::{put_body, Cluster};
use stele_tests::{describe_output, run_cli};

const BIN: &str = env!("CARGO_BIN_EXE_stele");

#[test]
fn four_validators_commit_redirect_survive_the_proposer_and_verify() {
    let mut cluster = Cluster::start(Path::new(BIN), &bft_options());
    let all = cluster.all();
    let (proposer, first) = write_committed(&cluster, &all, "first");
    assert_eq!(
        cluster.leader(&all),
        proposer,
        "every node names the proposer"
    );

    // A write on another node is redirected to the proposer.
    let other = (proposer + 1) % 4;
    let reply = cluster.client(other).request(
        reqwest::Method::POST,
        "/app/tx",
        Some(put_body("x", "y").to_string().into_bytes()),
        Some("application/json"),
        &Auth::Token,
    );
    assert_eq!(reply.status, 307, "{}", reply.text());

    let mut committed = vec![first];
    for index in 0..20 {
        committed.push(cluster.client(proposer).put("m", &format!("k{index}"), "v"));
    }
    let last = *committed.last().unwrap();
    cluster.assert_committed_everywhere(&all, &committed, last);
    // Every node serves the same receipt up to the certificate's signature
    // lines: each node's certificate is the first > 2/3 of the precommits it
    // saw, so the signers may differ; the certified text may not.
    let receipt = cluster.client(proposer).receipt_text(committed[3]);
    for index in &all {
        let theirs = cluster.client(*index).receipt_text(committed[3]);
        assert_eq!(
            certified_part(&theirs),
            certified_part(&receipt),
            "node {}",
            index + 1
        );
    }
    let certificate: Value = serde_json::from_str(&receipt).unwrap();
    let note = certificate["checkpoint"].as_str().unwrap();
    assert!(note.contains("\nstele-bft "), "{note}");
    assert!(
        note.lines()
            .filter(|line| line.starts_with('\u{2014}'))
            .count()
            >= 3
    );

    let validators = validators_file(&cluster, proposer);
    let receipt_path = cluster.dir().join("receipt.json");
    std::fs::write(&receipt_path, &receipt).unwrap();
    let output = run_cli(
        cluster.bin(),
        &[
            "receipt",
            "verify",
            receipt_path.to_str().unwrap(),
            "--validators",
            validators.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", describe_output(&output));

    // Kill -9 of the proposer: another takes over, writes go on.
    cluster.nodes[proposer].kill9();
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != proposer).collect();
    let (new_proposer, _) = write_committed(&cluster, &survivors, "after-kill");
    assert_ne!(new_proposer, proposer);
    for index in 0..10 {
        committed.push(write_committed(&cluster, &survivors, &format!("a{index}")).1);
    }
    // Back up, the killed node catches up from its peers.
    cluster.nodes[proposer].restart();
    let last = *committed.last().unwrap();
    cluster.wait_committed(proposer, last);
    for index in &all {
        assert_eq!(divergences(&cluster, *index), 0, "node {}", index + 1);
    }
    verify_all(&mut cluster, &all, &validators);
}

#[test]
fn two_of_four_down_stops_progress_without_divergence_and_resumes() {
    let mut cluster = Cluster::start(Path::new(BIN), &bft_options());
    let all = cluster.all();
    let (proposer, first) = write_committed(&cluster, &all, "first");
    cluster.assert_committed_everywhere(&all, &[first], first);
    let validators = validators_file(&cluster, proposer);

    // Two nodes down (the proposer among them): no quorum, nothing commits.
    let down = [proposer, (proposer + 1) % 4];
    for index in down {
        cluster.nodes[index].kill9();
    }
    let up: Vec<usize> = all.iter().copied().filter(|i| !down.contains(i)).collect();
    for &index in &up {
        let reply = cluster
            .client(index)
            .with_timeout(Duration::from_secs(8))
            .try_post_json("/app/tx", &put_body("stuck", "v"));
        if let Ok(reply) = reply {
            let body = reply.text();
            assert!(
                !body.contains("\"Committed\""),
                "committed with two of four validators down: {body}"
            );
        }
    }
    // Back up: progress resumes, nobody diverged.
    for index in down {
        cluster.nodes[index].restart();
    }
    let (_, after) = write_committed(&cluster, &all, "after");
    cluster.assert_committed_everywhere(&all, &[first], after);
    for index in &all {
        assert_eq!(divergences(&cluster, *index), 0, "node {}", index + 1);
    }
    verify_all(&mut cluster, &all, &validators);
}
