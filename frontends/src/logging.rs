//! The logging app, CCF's canonical sample: record a message under an id, read it
//! back.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use stele_kv::ReadView;

use crate::command::{AbortReason, KeySet};
use crate::scoped::{ScopedTx, Stop};
use crate::transaction::utf8;
use crate::{FrontendError, VALUE_BYTES_MAX};

/// The map the messages live in; the key is the id in decimal.
pub const LOGGING_MAP: &str = "logging.records";

/// A logging command, tagged by `"op"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum LoggingCommand {
    /// Records `message` under `id`, replacing any earlier one. Response `{"id"}`.
    Record {
        /// The message id.
        id: u64,
        /// The message.
        message: String,
    },
    /// Reads the message under `id`. Response `{"id","message"}`; aborts with
    /// `not_found` if there is none.
    Read {
        /// The message id.
        id: u64,
    },
}

impl LoggingCommand {
    fn id(&self) -> u64 {
        match self {
            LoggingCommand::Record { id, .. } | LoggingCommand::Read { id } => *id,
        }
    }

    /// Checks the message length.
    pub fn validate(&self) -> Result<(), FrontendError> {
        if let LoggingCommand::Record { message, .. } = self {
            FrontendError::check_length(|| "message".to_owned(), message, VALUE_BYTES_MAX)?;
        }
        Ok(())
    }

    /// The one key of the id.
    pub fn key_set(&self) -> KeySet {
        KeySet::new(vec![(LOGGING_MAP.to_owned(), self.id().to_string())])
    }

    pub(crate) fn execute<V: ReadView + ?Sized>(
        &self,
        tx: &mut ScopedTx<'_, V>,
    ) -> Result<Value, Stop> {
        let key = self.id().to_string();
        match self {
            LoggingCommand::Record { id, message } => {
                tx.put(LOGGING_MAP, &key, message.as_bytes().to_vec())?;
                Ok(json!({ "id": id }))
            }
            LoggingCommand::Read { id } => match tx.get(LOGGING_MAP, &key)? {
                Some(bytes) => {
                    let message = utf8(bytes, LOGGING_MAP, &key)?;
                    Ok(json!({ "id": id, "message": message }))
                }
                None => Err(Stop::Abort(AbortReason::NotFound {
                    map: LOGGING_MAP.to_owned(),
                    key,
                })),
            },
        }
    }
}
