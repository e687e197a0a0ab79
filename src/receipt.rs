//! `stele receipt verify`: the offline receipt check for auditors.

use std::path::PathBuf;

use anyhow::{bail, Context};
use stele_history::Receipt;

/// Arguments of `stele receipt verify`.
#[derive(Debug, clap::Args)]
pub struct ReceiptVerifyArgs {
    /// The receipt, as served by `GET /node/receipt` (`-` reads standard input).
    pub receipt: PathBuf,
    /// The service's public key: 64 hex digits, or a C2SP note verifier key.
    #[arg(long, value_name = "PUBLIC_KEY")]
    pub key: String,
}

/// Checks the receipt: its leaf, inclusion proof, root and checkpoint signature.
pub fn run(args: &ReceiptVerifyArgs) -> anyhow::Result<()> {
    let key = crate::verify::parse_key(&args.key)?;
    let text = if args.receipt.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the receipt from stdin")?
    } else {
        std::fs::read_to_string(&args.receipt)
            .with_context(|| format!("reading {}", args.receipt.display()))?
    };
    let receipt: Receipt =
        serde_json::from_str(&text).context("the receipt is not valid receipt JSON")?;
    match receipt.verify(&key.key) {
        Ok(checkpoint) => {
            key.check_origin(&checkpoint.origin).with_context(|| {
                format!(
                    "receipt verification FAILED for transaction {}",
                    receipt.transaction_id
                )
            })?;
            println!("receipt OK: transaction {}", receipt.transaction_id);
            println!(
                "  leaf {} is in the tree of size {} with root {}",
                receipt.leaf_index,
                receipt.tree_size,
                receipt.root.to_hex()
            );
            println!("  signed by the given key as origin {}", checkpoint.origin);
            Ok(())
        }
        Err(error) => bail!(
            "receipt verification FAILED for transaction {}: {error}",
            receipt.transaction_id
        ),
    }
}
