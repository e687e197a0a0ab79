//! `stele verify`: the offline ledger check for operators. The checkpoints
//! are checked against the service's public key (`--key`, or the one the
//! genesis entry records), or for a service in BFT mode against its
//! validators (`--validators`, the file `GET /node/validators` serves).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use stele_api::ValidatorsInfo;
use stele_history::{Digest, NoteVerifier, ValidatorQuorum, VerifyingKey};
use stele_ledger::{verify_ledger_with, KeySource, Progress, Trust, VerifySummary};

/// Arguments of `stele verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The ledger folder (a node's `<data dir>/ledger`, or a copy of it).
    pub ledger_dir: PathBuf,
    /// The service's public key: 64 hex digits, or a C2SP note verifier key
    /// (`<origin>+<key id>+<base64>`), as served by `GET /node/public-key`.
    /// Without it, checkpoints are checked against the key recorded in the ledger's
    /// genesis entry, which proves consistency, not identity.
    #[arg(long, value_name = "PUBLIC_KEY")]
    pub key: Option<String>,
    /// For a service in BFT mode (no service key): its validators, a file
    /// holding what `GET /node/validators` serves. Every checkpoint must be
    /// signed by validators holding more than two thirds of their voting
    /// power.
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    pub validators: Option<PathBuf>,
    /// A signed checkpoint of this service kept from earlier (a file holding
    /// the note, as `GET /node/checkpoint` serves it). The ledger must reach
    /// its tree size with its root: every prefix of a ledger verifies on its
    /// own, so only this detects a cut-off tail or a replaced one.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Where the ledger's archived chunks are, if not in its own `archive/`
    /// folder (a copy of an archive, an object-store mount): the two folders
    /// are checked as one ledger.
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
    /// Fails if the ledger does not hold every batch from seqno 1: a ledger
    /// that resumes at a signed checkpoint (a node that joined from a
    /// snapshot) verifies without it, with the skipped seqnos reported.
    #[arg(long)]
    pub complete: bool,
}

/// A parsed `--key`: the public key and, for a note verifier key, the name
/// (origin) it was issued for.
#[derive(Debug, Clone)]
pub struct GivenKey {
    /// The Ed25519 public key.
    pub key: VerifyingKey,
    /// The origin a verifier key names; `None` for bare hex.
    pub origin: Option<String>,
}

impl GivenKey {
    /// Fails unless the key was given bare or names `origin`: a verifier key
    /// issued for another log must not vouch for this one.
    pub fn check_origin(&self, origin: &str) -> anyhow::Result<()> {
        match &self.origin {
            Some(named) if named != origin => bail!(
                "--key is a verifier key for origin {named}, but the signatures are by origin {origin}"
            ),
            _ => Ok(()),
        }
    }
}

/// Parses `--key`.
pub fn parse_key(text: &str) -> anyhow::Result<GivenKey> {
    let text = text.trim();
    if text.contains('+') {
        let verifier = NoteVerifier::from_verifier_key(text)
            .context("--key is neither 64 hex digits nor a note verifier key")?;
        return Ok(GivenKey {
            key: *verifier.key(),
            origin: Some(verifier.name().to_owned()),
        });
    }
    let digest = Digest::from_hex(text, "public key")
        .context("--key must be 64 lowercase hex digits (or a note verifier key)")?;
    let key = VerifyingKey::from_bytes(digest.as_bytes())
        .context("--key is not a valid Ed25519 public key")?;
    Ok(GivenKey { key, origin: None })
}

/// Reads `--validators`: the JSON `GET /node/validators` serves, checked
/// whole ([`ValidatorsInfo::to_quorum`]).
pub fn read_validators(path: &Path) -> anyhow::Result<ValidatorQuorum> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the validators {}", path.display()))?;
    let info: ValidatorsInfo = serde_json::from_str(&text).with_context(|| {
        format!(
            "--validators {} is not what GET /node/validators serves",
            path.display()
        )
    })?;
    info.to_quorum()
        .with_context(|| format!("--validators {}", path.display()))
}

/// Runs the verifier with a progress bar on a terminal, plain lines otherwise.
pub fn run(args: &VerifyArgs) -> anyhow::Result<()> {
    let key = args.key.as_deref().map(parse_key).transpose()?;
    let validators = args
        .validators
        .as_deref()
        .map(read_validators)
        .transpose()?;
    let trust = match (&key, &validators) {
        (Some(given), _) => Trust::ServiceKey(&given.key),
        (None, Some(validators)) => Trust::Validators(validators),
        (None, None) => Trust::Genesis,
    };
    let anchor = args
        .checkpoint
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the checkpoint {}", path.display()))
        })
        .transpose()?;
    let started = Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})")
                .expect("the template is valid"),
        );
        bar
    });
    let mut report = |progress: Progress| match &bar {
        Some(bar) => {
            bar.set_length(progress.bytes_total);
            bar.set_position(progress.bytes_done);
            bar.set_message(format!("{} transactions", progress.transactions));
        }
        None => eprintln!(
            "verified {} of {} bytes, {} transactions",
            progress.bytes_done, progress.bytes_total, progress.transactions
        ),
    };
    let result = verify_ledger_with(
        &args.ledger_dir,
        args.archive.as_deref(),
        trust,
        anchor.as_deref(),
        &mut report,
    );
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match result {
        Ok(summary) => {
            if let Some(given) = &key {
                given
                    .check_origin(&summary.origin)
                    .context("ledger verification FAILED")?;
            }
            if let (true, Some((first, last))) = (args.complete, summary.absent.first()) {
                bail!(
                    "ledger verification FAILED: --complete, but seqnos {first}..={last} are \
                     not in the ledger (it resumes at the signed checkpoint of tree size {last})"
                );
            }
            print_summary(
                &args.ledger_dir,
                &summary,
                validators.as_ref(),
                started.elapsed().as_secs_f64(),
            );
            Ok(())
        }
        Err(failure) => bail!("ledger verification FAILED: {failure}"),
    }
}

fn print_summary(
    dir: &Path,
    summary: &VerifySummary,
    validators: Option<&ValidatorQuorum>,
    seconds: f64,
) {
    println!("ledger OK: {}", dir.display());
    println!(
        "  {} chunks, {} entries, {} transactions, {} bytes",
        summary.chunks, summary.entries, summary.transactions, summary.bytes
    );
    match &summary.last_checkpoint {
        Some(checkpoint) => println!(
            "  last verified checkpoint: origin {}, tree size {}, root {}",
            checkpoint.origin,
            checkpoint.tree_size,
            checkpoint.root.to_hex()
        ),
        None => println!("  no transactions yet (genesis only)"),
    }
    for (first, last) in &summary.absent {
        println!(
            "  seqnos {first}..={last} are not in this ledger: it resumes at the signed \
             checkpoint of tree size {last} (a node that joined from a snapshot, \
             before it fetched them); what follows was checked from there"
        );
    }
    if let Some(anchor) = &summary.anchor {
        println!(
            "  reaches the given checkpoint: tree size {}, root {}",
            anchor.tree_size,
            anchor.root.to_hex()
        );
    }
    let key = Digest(summary.public_key).to_hex();
    match (summary.key_source, validators) {
        (KeySource::Validators, Some(validators)) => println!(
            "  every checkpoint certified by validators holding more than two thirds of \
             the voting power, of the given validators {} (total power {})",
            describe_validators(validators),
            validators.total_power()
        ),
        (KeySource::Given, _) => println!("  signatures checked against the given key {key}"),
        (KeySource::Genesis, _) => println!(
            "  signatures checked against the key recorded in the genesis entry, {key}: \
             this proves the ledger is consistent with itself; pass --key with the \
             service's public key to prove whose it is"
        ),
        (KeySource::Validators, None) => {
            println!("  every checkpoint certified by the given validators")
        }
    }
    let rate = summary.transactions as f64 / seconds.max(1e-9);
    println!("  took {seconds:.3} s ({rate:.0} transactions/s)");
}

/// `v1 (power 1), v2 (power 3), ...` for the validators `ids` of
/// `validators`.
pub fn describe_signers(validators: &ValidatorQuorum, ids: &[u64]) -> String {
    validators
        .members()
        .iter()
        .filter(|member| ids.contains(&member.id))
        .map(|member| format!("v{} (power {})", member.id, member.power))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every validator of `validators`, as [`describe_signers`] does.
fn describe_validators(validators: &ValidatorQuorum) -> String {
    let ids: Vec<u64> = validators
        .members()
        .iter()
        .map(|member| member.id)
        .collect();
    describe_signers(validators, &ids)
}
