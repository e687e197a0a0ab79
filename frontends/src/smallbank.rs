//! SmallBank, the standard OLTP benchmark: accounts with a checking and a savings
//! balance, in integer cents, with checked arithmetic.
//!
//! Balances are stored as decimal `i64` text under the account id (decimal) in
//! [`CHECKING_MAP`] and [`SAVINGS_MAP`], so the generic language can read them. An
//! account exists when both keys exist.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use stele_kv::ReadView;

use crate::command::{AbortReason, KeySet};
use crate::scoped::{ScopedTx, Stop};
use crate::{FrontendError, ACCOUNTS_PER_SETUP_MAX};

/// Checking balances.
pub const CHECKING_MAP: &str = "smallbank.checking";
/// Savings balances.
pub const SAVINGS_MAP: &str = "smallbank.savings";
/// What `write_check` charges on top when the check overdraws the total balance.
pub const WRITE_CHECK_PENALTY_CENTS: i64 = 100;

/// A SmallBank command, tagged by `"op"`. Every command that changes balances
/// responds with the balances it changed; `balance` with both balances and their sum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum SmallBankCommand {
    /// Creates one account; aborts if it exists.
    CreateAccount {
        /// The account id.
        account: u64,
        /// Initial checking balance (not negative).
        checking_cents: i64,
        /// Initial savings balance (not negative).
        savings_cents: i64,
    },
    /// Creates accounts `first_account ..first_account + count` with equal balances
    /// (bulk setup); aborts if any exists.
    CreateAccounts {
        /// The first id.
        first_account: u64,
        /// How many, at most [`ACCOUNTS_PER_SETUP_MAX`].
        count: u32,
        /// Initial checking balance of each.
        checking_cents: i64,
        /// Initial savings balance of each.
        savings_cents: i64,
    },
    /// Reads both balances.
    Balance {
        /// The account.
        account: u64,
    },
    /// Adds a non-negative amount to checking.
    DepositChecking {
        /// The account.
        account: u64,
        /// The amount.
        amount_cents: i64,
    },
    /// Adds a signed amount to savings; aborts if savings would go negative.
    TransactSavings {
        /// The account.
        account: u64,
        /// The amount (negative: a withdrawal).
        amount_cents: i64,
    },
    /// Moves all of `from`'s funds into `to`'s checking.
    Amalgamate {
        /// The account emptied.
        from: u64,
        /// The account credited.
        to: u64,
    },
    /// Debits checking by a non-negative amount; if that exceeds checking plus
    /// savings, also charges [`WRITE_CHECK_PENALTY_CENTS`] (checking may go negative).
    WriteCheck {
        /// The account.
        account: u64,
        /// The amount.
        amount_cents: i64,
    },
    /// Moves a non-negative amount between checking accounts; aborts if the
    /// sender's checking is short.
    SendPayment {
        /// The payer.
        from: u64,
        /// The payee.
        to: u64,
        /// The amount.
        amount_cents: i64,
    },
}

fn both_keys(account: u64) -> [(String, String); 2] {
    let key = account.to_string();
    [
        (CHECKING_MAP.to_owned(), key.clone()),
        (SAVINGS_MAP.to_owned(), key),
    ]
}

fn distinct(from: u64, to: u64) -> Result<(), FrontendError> {
    if from == to {
        return Err(FrontendError::InvalidArgument {
            field: "to".to_owned(),
            reason: "must differ from `from`",
        });
    }
    Ok(())
}

impl SmallBankCommand {
    /// Checks arguments that need no state.
    pub fn validate(&self) -> Result<(), FrontendError> {
        match *self {
            SmallBankCommand::CreateAccounts {
                first_account,
                count,
                ..
            } => {
                if count > ACCOUNTS_PER_SETUP_MAX {
                    return Err(FrontendError::InvalidArgument {
                        field: "count".to_owned(),
                        reason: "more than ACCOUNTS_PER_SETUP_MAX accounts",
                    });
                }
                if first_account.checked_add(u64::from(count)).is_none() {
                    return Err(FrontendError::InvalidArgument {
                        field: "count".to_owned(),
                        reason: "account range overflows u64",
                    });
                }
                Ok(())
            }
            SmallBankCommand::Amalgamate { from, to }
            | SmallBankCommand::SendPayment { from, to, .. } => distinct(from, to),
            _ => Ok(()),
        }
    }

    /// The checking (and savings where used) keys of the accounts named.
    pub fn key_set(&self) -> KeySet {
        let mut keys = Vec::new();
        match *self {
            SmallBankCommand::CreateAccount { account, .. }
            | SmallBankCommand::Balance { account }
            | SmallBankCommand::TransactSavings { account, .. }
            | SmallBankCommand::DepositChecking { account, .. }
            | SmallBankCommand::WriteCheck { account, .. } => keys.extend(both_keys(account)),
            SmallBankCommand::CreateAccounts {
                first_account,
                count,
                ..
            } => {
                // Saturating: an overflowing range is refused by `validate` first.
                let end = first_account.saturating_add(u64::from(count));
                for account in first_account..end {
                    keys.extend(both_keys(account));
                }
            }
            SmallBankCommand::Amalgamate { from, to }
            | SmallBankCommand::SendPayment { from, to, .. } => {
                keys.extend(both_keys(from));
                keys.extend(both_keys(to));
            }
        }
        KeySet::new(keys)
    }

    pub(crate) fn execute<V: ReadView + ?Sized>(
        &self,
        tx: &mut ScopedTx<'_, V>,
    ) -> Result<Value, Stop> {
        match *self {
            SmallBankCommand::CreateAccount {
                account,
                checking_cents,
                savings_cents,
            } => {
                create(tx, account, checking_cents, savings_cents)?;
                Ok(json!({ "created": 1 }))
            }
            SmallBankCommand::CreateAccounts {
                first_account,
                count,
                checking_cents,
                savings_cents,
            } => {
                for account in first_account..first_account + u64::from(count) {
                    create(tx, account, checking_cents, savings_cents)?;
                }
                Ok(json!({ "created": count }))
            }
            SmallBankCommand::Balance { account } => {
                let (checking, savings) = (checking_of(tx, account)?, savings_of(tx, account)?);
                let total = checking.checked_add(savings).ok_or(AbortReason::Overflow)?;
                Ok(json!({
                    "account": account,
                    "checking_cents": checking,
                    "savings_cents": savings,
                    "total_cents": total,
                }))
            }
            SmallBankCommand::DepositChecking {
                account,
                amount_cents,
            } => {
                non_negative(amount_cents)?;
                savings_of(tx, account)?; // the account must exist in full
                let checking = add(checking_of(tx, account)?, amount_cents)?;
                store(tx, CHECKING_MAP, account, checking)?;
                Ok(json!({ "account": account, "checking_cents": checking }))
            }
            SmallBankCommand::TransactSavings {
                account,
                amount_cents,
            } => {
                checking_of(tx, account)?;
                let savings = add(savings_of(tx, account)?, amount_cents)?;
                if savings < 0 {
                    return Err(AbortReason::InsufficientFunds { account }.into());
                }
                store(tx, SAVINGS_MAP, account, savings)?;
                Ok(json!({ "account": account, "savings_cents": savings }))
            }
            SmallBankCommand::Amalgamate { from, to } => amalgamate(tx, from, to),
            SmallBankCommand::WriteCheck {
                account,
                amount_cents,
            } => write_check(tx, account, amount_cents),
            SmallBankCommand::SendPayment {
                from,
                to,
                amount_cents,
            } => send_payment(tx, from, to, amount_cents),
        }
    }
}

fn create<V: ReadView + ?Sized>(
    tx: &mut ScopedTx<'_, V>,
    account: u64,
    checking_cents: i64,
    savings_cents: i64,
) -> Result<(), Stop> {
    non_negative(checking_cents)?;
    non_negative(savings_cents)?;
    let key = account.to_string();
    if tx.get(CHECKING_MAP, &key)?.is_some() || tx.get(SAVINGS_MAP, &key)?.is_some() {
        return Err(AbortReason::AccountExists { account }.into());
    }
    store(tx, CHECKING_MAP, account, checking_cents)?;
    store(tx, SAVINGS_MAP, account, savings_cents)
}

fn amalgamate<V: ReadView + ?Sized>(
    tx: &mut ScopedTx<'_, V>,
    from: u64,
    to: u64,
) -> Result<Value, Stop> {
    let moved = add(checking_of(tx, from)?, savings_of(tx, from)?)?;
    savings_of(tx, to)?;
    let credited = add(checking_of(tx, to)?, moved)?;
    store(tx, CHECKING_MAP, from, 0)?;
    store(tx, SAVINGS_MAP, from, 0)?;
    store(tx, CHECKING_MAP, to, credited)?;
    Ok(json!({ "from": from, "to": to, "moved_cents": moved, "to_checking_cents": credited }))
}

fn write_check<V: ReadView + ?Sized>(
    tx: &mut ScopedTx<'_, V>,
    account: u64,
    amount_cents: i64,
) -> Result<Value, Stop> {
    non_negative(amount_cents)?;
    let (checking, savings) = (checking_of(tx, account)?, savings_of(tx, account)?);
    let total = add(checking, savings)?;
    let charge = if total < amount_cents {
        add(amount_cents, WRITE_CHECK_PENALTY_CENTS)?
    } else {
        amount_cents
    };
    let checking = checking.checked_sub(charge).ok_or(AbortReason::Overflow)?;
    store(tx, CHECKING_MAP, account, checking)?;
    Ok(json!({ "account": account, "checking_cents": checking }))
}

fn send_payment<V: ReadView + ?Sized>(
    tx: &mut ScopedTx<'_, V>,
    from: u64,
    to: u64,
    amount_cents: i64,
) -> Result<Value, Stop> {
    non_negative(amount_cents)?;
    savings_of(tx, from)?;
    savings_of(tx, to)?;
    let (payer, payee) = (checking_of(tx, from)?, checking_of(tx, to)?);
    if payer < amount_cents {
        return Err(AbortReason::InsufficientFunds { account: from }.into());
    }
    let payee = add(payee, amount_cents)?;
    let payer = payer - amount_cents; // cannot overflow: 0 <= amount <= payer
    store(tx, CHECKING_MAP, from, payer)?;
    store(tx, CHECKING_MAP, to, payee)?;
    Ok(json!({ "from": from, "to": to, "from_checking_cents": payer, "to_checking_cents": payee }))
}

fn non_negative(amount_cents: i64) -> Result<(), AbortReason> {
    if amount_cents < 0 {
        return Err(AbortReason::NegativeAmount { amount_cents });
    }
    Ok(())
}

fn add(left: i64, right: i64) -> Result<i64, AbortReason> {
    left.checked_add(right).ok_or(AbortReason::Overflow)
}

fn checking_of<V: ReadView + ?Sized>(tx: &mut ScopedTx<'_, V>, account: u64) -> Result<i64, Stop> {
    balance_of(tx, CHECKING_MAP, account)
}

fn savings_of<V: ReadView + ?Sized>(tx: &mut ScopedTx<'_, V>, account: u64) -> Result<i64, Stop> {
    balance_of(tx, SAVINGS_MAP, account)
}

fn balance_of<V: ReadView + ?Sized>(
    tx: &mut ScopedTx<'_, V>,
    map: &str,
    account: u64,
) -> Result<i64, Stop> {
    let key = account.to_string();
    let bytes = tx
        .get(map, &key)?
        .ok_or(AbortReason::UnknownAccount { account })?;
    let corrupt = || AbortReason::CorruptBalance {
        map: map.to_owned(),
        key: key.clone(),
    };
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt())?;
    text.parse::<i64>().map_err(|_| Stop::Abort(corrupt()))
}

fn store<V: ReadView + ?Sized>(
    tx: &mut ScopedTx<'_, V>,
    map: &str,
    account: u64,
    cents: i64,
) -> Result<(), Stop> {
    Ok(tx.put(map, &account.to_string(), cents.to_string().into_bytes())?)
}
