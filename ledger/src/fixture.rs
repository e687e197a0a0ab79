//! Deterministic synthetic ledgers for tests, benchmarks and demonstrations: batches
//! of made-up transactions with correct leaves, roots and signed checkpoints. The
//! node builds its entries from real executions; this builds them from a counter.
//!
//! [`FixtureWriter::new`] signs as a service key does (Raft mode);
//! [`FixtureWriter::bft`] writes a BFT ledger: a genesis entry without a
//! service key, and certificate notes signed by the validators of
//! [`FixtureWriter::certifying`] (all of them unless a test says otherwise).

use sha2::{Digest as _, Sha256};
use stele_history::identity::NO_SERVICE_KEY;
use stele_history::{
    validator_key_name, Checkpoint, Digest, HistoryError, MerkleTree, NoteSigner, SigningKey,
    ValidatorQuorum,
};

use crate::{
    BatchEntry, Genesis, ResumeEntry, SignatureEntry, TxRecord, LEAF_FORMAT_1, LEAF_FORMAT_CURRENT,
};

/// The origin fixtures sign as.
pub const FIXTURE_ORIGIN: &str = "fixture.stele.example/ledger";

/// What opens the decision line of a BFT certificate note.
pub const DECISION_EXTENSION_PREFIX: &str = "stele-bft ";

/// Makes the entries of a ledger, batch after batch, as a primary would.
pub struct FixtureWriter {
    signer: NoteSigner,
    public_key: [u8; 32],
    /// BFT mode: validator `index + 1`'s signer (empty: the service key
    /// signs).
    validators: Vec<NoteSigner>,
    /// BFT mode: the ids of the validators whose signature lines the next
    /// certificate notes carry (their precommits), in order.
    pub certifying: Vec<u64>,
    /// BFT mode: the height of the last batch made (one batch per height).
    height: u64,
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
            validators: Vec::new(),
            certifying: Vec::new(),
            height: 0,
            tree: MerkleTree::new(),
            view: 1,
            salt: 0,
            command_bytes: 100,
            leaf_format: LEAF_FORMAT_CURRENT,
        }
    }

    /// A writer of a BFT ledger certified by `validators` validators (ids 1
    /// ..= `validators`, at most 155, power 1 each, validator `id`'s secret
    /// 32 bytes of `100 + id`), every one of them signing each certificate
    /// note.
    pub fn bft(validators: u8) -> Self {
        assert!(validators <= 155, "validator keys are 32 bytes of 100 + id");
        let mut writer = FixtureWriter::new(0);
        writer.validators = (1..=validators)
            .map(|id| {
                let name = validator_key_name(FIXTURE_ORIGIN, u64::from(id));
                NoteSigner::new(&name, SigningKey::from_bytes(&[100 + id; 32]))
                    .expect("a validator key name of the fixture origin is a valid note name")
            })
            .collect();
        writer.certifying = (1..=u64::from(validators)).collect();
        writer
    }

    /// BFT mode: the validators, as `GET /node/validators` would describe
    /// them; `None` for a writer signing with a service key.
    pub fn quorum(&self) -> Option<ValidatorQuorum> {
        if self.validators.is_empty() {
            return None;
        }
        let members = (1..).zip(&self.validators).map(|(id, signer)| {
            let verifier = signer.verifier();
            (id, *verifier.key(), 1)
        });
        Some(
            ValidatorQuorum::new(FIXTURE_ORIGIN, members)
                .expect("the fixture's validators have distinct ids and power 1"),
        )
    }

    /// The genesis entry naming this writer's key (BFT mode: no service key).
    pub fn genesis(&self) -> Genesis {
        Genesis {
            origin: FIXTURE_ORIGIN.to_owned(),
            public_key: if self.validators.is_empty() {
                self.public_key
            } else {
                NO_SERVICE_KEY
            },
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
        self.height += 1;
        let checkpoint = Checkpoint {
            origin: FIXTURE_ORIGIN.to_owned(),
            tree_size: self.tree.size(),
            root: self.tree.root(),
            // Format 1 checkpoints had no view line.
            view: (self.leaf_format > LEAF_FORMAT_1).then_some(self.view),
        };
        let note = self
            .sign(&checkpoint)
            .expect("the fixture's checkpoints are valid note texts");
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
        let note = self
            .sign(&checkpoint)
            .expect("the fixture's checkpoints are valid note texts");
        ResumeEntry::new(after_seqno, vec![(1, self.view)], &frontier, note)
    }

    /// The note of `checkpoint`: signed with the service key, or in BFT mode
    /// a certificate note (the body and a decision line, `stele-bft <height>
    /// 0 <view> <digest>`) signed by the validators of `certifying`.
    fn sign(&self, checkpoint: &Checkpoint) -> Result<String, HistoryError> {
        if self.validators.is_empty() {
            return checkpoint.sign(&self.signer);
        }
        let body = checkpoint.body();
        let value = Digest(Sha256::digest(body.as_bytes()).into());
        let text = format!(
            "{body}{DECISION_EXTENSION_PREFIX}{} 0 {} {}\n",
            self.height,
            self.view,
            value.to_hex()
        );
        let mut note = format!("{text}\n");
        for id in &self.certifying {
            let Some(signer) = usize::try_from(*id)
                .ok()
                .and_then(|id| id.checked_sub(1))
                .and_then(|index| self.validators.get(index))
            else {
                continue; // Not a validator: no line, as a test asked.
            };
            // The signed note is the text, a blank line and the line.
            let signed = signer.sign(&text)?;
            note.push_str(&signed[text.len() + 1..]);
        }
        Ok(note)
    }

    /// Forgets every transaction after `seqno` (as the node rolls back its tree).
    pub fn rollback(&mut self, seqno: u64) {
        self.tree
            .truncate(seqno)
            .expect("fixtures roll back only to seqnos they made");
    }
}
