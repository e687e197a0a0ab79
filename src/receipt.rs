//! `stele receipt verify`: the offline receipt check for auditors, against
//! the service's public key (`--key`) or, for a service in BFT mode, its
//! validators (`--validators`, the file `GET /node/validators` serves).

use std::path::PathBuf;

use anyhow::{bail, Context};
use stele_history::{Checkpoint, HistoryError, Receipt};

/// Arguments of `stele receipt verify`: exactly one of `--key` and
/// `--validators`.
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("certifier")
        .required(true)
        .args(["key", "validators"])
))]
pub struct ReceiptVerifyArgs {
    /// The receipt, as served by `GET /node/receipt` (`-` reads standard input).
    pub receipt: PathBuf,
    /// The service's public key: 64 hex digits, or a C2SP note verifier key.
    #[arg(long, value_name = "PUBLIC_KEY")]
    pub key: Option<String>,
    /// For a service in BFT mode (no service key): its validators, a file
    /// holding what `GET /node/validators` serves. The receipt's checkpoint
    /// must be signed by validators holding more than two thirds of their
    /// voting power.
    #[arg(long, value_name = "FILE")]
    pub validators: Option<PathBuf>,
}

/// Checks the receipt: its leaf, inclusion proof, root and checkpoint
/// signature (or, in BFT mode, its certificate).
pub fn run(args: &ReceiptVerifyArgs) -> anyhow::Result<()> {
    let text = if args.receipt.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the receipt from stdin")?
    } else {
        std::fs::read_to_string(&args.receipt)
            .with_context(|| format!("reading {}", args.receipt.display()))?
    };
    let receipt: Receipt =
        serde_json::from_str(&text).context("the receipt is not valid receipt JSON")?;
    let failed = |error: &dyn std::fmt::Display| {
        anyhow::anyhow!(
            "receipt verification FAILED for transaction {}: {error}",
            receipt.transaction_id
        )
    };
    match (&args.key, &args.validators) {
        (Some(key), None) => {
            let key = crate::verify::parse_key(key)?;
            let checkpoint = receipt.verify(&key.key).map_err(|error| failed(&error))?;
            key.check_origin(&checkpoint.origin).with_context(|| {
                format!(
                    "receipt verification FAILED for transaction {}",
                    receipt.transaction_id
                )
            })?;
            print_verified(&receipt);
            println!("  signed by the given key as origin {}", checkpoint.origin);
            Ok(())
        }
        (None, Some(path)) => {
            let validators = crate::verify::read_validators(path)?;
            let certified = receipt
                .verify_with_validators(&validators)
                .and_then(|checkpoint| {
                    let (_, signers) = validators.verify_signers(&receipt.checkpoint)?;
                    Ok::<(Checkpoint, Vec<u64>), HistoryError>((checkpoint, signers))
                });
            let (checkpoint, signers) = certified.map_err(|error| failed(&error))?;
            let signed: u64 = validators
                .members()
                .iter()
                .filter(|member| signers.contains(&member.id))
                .map(|member| member.power)
                .sum();
            print_verified(&receipt);
            println!(
                "  certified as origin {} by validators holding {signed} of {} voting power \
                 (more than two thirds): {}",
                checkpoint.origin,
                validators.total_power(),
                crate::verify::describe_signers(&validators, &signers)
            );
            Ok(())
        }
        // clap's group "certifier" asks for exactly one.
        _ => bail!("pass exactly one of --key and --validators"),
    }
}

fn print_verified(receipt: &Receipt) {
    println!("receipt OK: transaction {}", receipt.transaction_id);
    println!(
        "  leaf {} is in the tree of size {} with root {}",
        receipt.leaf_index,
        receipt.tree_size,
        receipt.root.to_hex()
    );
}
