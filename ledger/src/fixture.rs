//! Deterministic synthetic ledgers for tests, benchmarks and demonstrations: batches
//! of made-up transactions with correct leaves, roots and signed checkpoints. The
//! node builds its entries from real executions; this builds them from a counter.

use sha2::{Digest as _, Sha256};
use stele_history::{Checkpoint, MerkleTree, NoteSigner, SigningKey};

use crate::{
    BatchEntry, Genesis, ResumeEntry, SignatureEntry, TxRecord, LEAF_FORMAT_1, LEAF_FORMAT_CURRENT,
};

/// The origin fixtures sign as.
pub const FIXTURE_ORIGIN: &str = "fixture.stele.example/ledger";

/// Makes the entries of a ledger, batch after batch, as a primary would.
pub struct FixtureWriter {
    signer: NoteSigner,
    public_key: [u8; 32],
    tree: MerkleTree,
    /// The view of the next batch.
    pub view: u64,
    /// Changes the made-up contents, so two writers with different salts produce
    /// different transactions at the same seqnos.
    pub salt: u64,
    /// Bytes of each made-up command.
    pub command_bytes: usize,
    /// The leaf format of the batches made (the current one unless a test
    /// makes an older ledger).
    pub leaf_format: u8,
}

impl FixtureWriter {
    /// A writer signing with the Ed25519 key whose secret is 32 bytes of `key_byte`.
    pub fn new(key_byte: u8) -> Self {
        let key = SigningKey::from_bytes(&[key_byte; 32]);
        let public_key = key.verifying_key().to_bytes();
        FixtureWriter {
            signer: NoteSigner::new(FIXTURE_ORIGIN, key)
                .expect("the fixture origin is a valid note name"),
            public_key,
            tree: MerkleTree::new(),
            view: 1,
            salt: 0,
            command_bytes: 100,
            leaf_format: LEAF_FORMAT_CURRENT,
        }
    }

    /// The genesis entry naming this writer's key.
    pub fn genesis(&self) -> Genesis {
        Genesis {
            origin: FIXTURE_ORIGIN.to_owned(),
            public_key: self.public_key,
        }
    }

    /// The public key.
    pub fn public_key(&self) -> stele_history::VerifyingKey {
        self.signer.verifier().key().to_owned()
    }

    /// Seqno of the last transaction made.
    pub fn last_seqno(&self) -> u64 {
        self.tree.size()
    }

    /// The made-up transaction at `seqno`.
    pub fn record(&self, seqno: u64) -> TxRecord {
        let seed = |tag: &str| -> [u8; 32] {
            Sha256::new()
                .chain_update(tag.as_bytes())
                .chain_update(seqno.to_be_bytes())
                .chain_update(self.salt.to_be_bytes())
                .finalize()
                .into()
        };
        let command_seed = seed("command");
        TxRecord {
            command: command_seed
                .iter()
                .copied()
                .cycle()
                .take(self.command_bytes)
                .collect(),
            write_set: seed("write set").to_vec(),
            claims_digest: seed("claims"),
            commit_evidence_digest: seed("commit evidence"),
        }
    }

    /// The next batch of `txs` transactions and its signature entry.
    pub fn batch(&mut self, txs: usize) -> (BatchEntry, SignatureEntry) {
        let first_seqno = self.tree.size() + 1;
        let records: Vec<TxRecord> = (0..txs as u64)
            .map(|offset| self.record(first_seqno + offset))
            .collect();
        let batch = BatchEntry {
            view: self.view,
            first_seqno,
            txs: records,
            leaf_format: self.leaf_format,
        };
        self.tree.append_leaf_hashes(&batch.leaf_hashes());
        let checkpoint = Checkpoint {
            origin: FIXTURE_ORIGIN.to_owned(),
            tree_size: self.tree.size(),
            root: self.tree.root(),
            // Format 1 checkpoints had no view line.
            view: (self.leaf_format > LEAF_FORMAT_1).then_some(self.view),
        };
        let note = checkpoint
            .sign(&self.signer)
            .expect("the checkpoint's origin is the signer's name");
        let signature = SignatureEntry {
            view: self.view,
            checkpoint: note,
        };
        (batch, signature)
    }

    /// The resume entry of a ledger that holds this writer's transactions up
    /// to `after_seqno` and resumes at its last one (what a node that joined
    /// from a snapshot writes; the batches between are made and not appended).
    pub fn resume(&self, after_seqno: u64) -> ResumeEntry {
        let size = self.tree.size();
        let frontier = self
            .tree
            .frontier(size)
            .expect("a fixture's tree holds every leaf");
        let checkpoint = Checkpoint {
            origin: FIXTURE_ORIGIN.to_owned(),
            tree_size: size,
            root: self.tree.root(),
            view: (self.leaf_format > LEAF_FORMAT_1).then_some(self.view),
        };
        let note = checkpoint
            .sign(&self.signer)
            .expect("the checkpoint's origin is the signer's name");
        ResumeEntry::new(after_seqno, vec![(1, self.view)], &frontier, note)
    }

    /// Forgets every transaction after `seqno` (as the node rolls back its tree).
    pub fn rollback(&mut self, seqno: u64) {
        self.tree
            .truncate(seqno)
            .expect("fixtures roll back only to seqnos they made");
    }
}
