//! `/app/*`: submitting transactions and reading committed state (bearer
//! token required, see [`crate::auth`]).

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::Json;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use stele_frontends::logging::LOGGING_MAP;
use stele_frontends::smallbank::{CHECKING_MAP, SAVINGS_MAP};
use stele_frontends::{
    Command, FrontendError, LoggingCommand, SmallBankCommand, Transaction, KEY_BYTES_MAX,
    MAP_NAME_BYTES_MAX, VALUE_BYTES_MAX,
};

use super::AppState;
use crate::error::{codes, HttpError};
use crate::extract::{json_error, path_error, quote, JsonBody, QueryParams};
use crate::node::{Node, Submitted};

/// The SmallBank operations `POST /app/smallbank/{op}` accepts (`balance` is
/// `GET /app/smallbank/balance`).
pub const SMALLBANK_OPS: &[&str] = &[
    "create_account",
    "create_accounts",
    "deposit_checking",
    "transact_savings",
    "send_payment",
    "write_check",
    "amalgamate",
];

/// `?wait=true|false` (default true): whether to answer once committed.
fn wait_param(query: &QueryParams) -> Result<bool, HttpError> {
    Ok(query
        .allow(&["wait"])?
        .optional("wait", "`true` or `false`")?
        .unwrap_or(true))
}

/// The read consistency a query asks for (`?consistency=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Consistency {
    /// The default: this node's committed state, which may lag the leader's.
    Committed,
    /// Through the leader's read index: reflects every write committed before
    /// the read began.
    Linearizable,
}

impl std::str::FromStr for Consistency {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "committed" => Ok(Consistency::Committed),
            "linearizable" => Ok(Consistency::Linearizable),
            _ => Err("unknown consistency".to_owned()),
        }
    }
}

/// Checks the query names only `allowed` and `consistency`, then waits for the
/// read barrier if `consistency=linearizable`.
async fn read_consistency<N: Node>(
    state: &AppState<N>,
    query: &QueryParams,
    allowed: &[&str],
) -> Result<(), HttpError> {
    let names: Vec<&str> = allowed.iter().copied().chain(["consistency"]).collect();
    let consistency = query
        .allow(&names)?
        .optional("consistency", "`committed` or `linearizable`")?
        .unwrap_or(Consistency::Committed);
    if consistency == Consistency::Linearizable {
        state.node.read_barrier().await?;
    }
    Ok(())
}

/// Validates, submits, and returns the committed response with the submission,
/// or the abort as an error.
async fn submit<N: Node>(
    state: &AppState<N>,
    command: Command,
    wait: bool,
) -> Result<(Submitted, Value), HttpError> {
    command.validate()?;
    let submitted = state.node.submit(command, wait).await?;
    match &submitted.outcome {
        Ok(response) => {
            let response = response.clone();
            Ok((submitted, response))
        }
        Err(reason) => Err(HttpError::aborted(submitted.transaction_id, reason)),
    }
}

/// `{"transaction_id","status"}` of a submission.
fn receipt_head(submitted: &Submitted) -> Map<String, Value> {
    let mut head = Map::new();
    head.insert(
        "transaction_id".to_owned(),
        Value::String(submitted.transaction_id.to_string()),
    );
    head.insert(
        "status".to_owned(),
        serde_json::to_value(submitted.status).unwrap_or(Value::Null),
    );
    head
}

fn field_too_long(field: &str, text: &str, max: usize) -> Result<(), HttpError> {
    if text.len() > max {
        return Err(FrontendError::FieldTooLong {
            field: field.to_owned(),
            bytes: text.len(),
            max,
        }
        .into());
    }
    Ok(())
}

/// `POST /app/tx[?wait=false]`, body a [`Transaction`].
pub(crate) async fn submit_tx<N: Node>(
    State(state): State<AppState<N>>,
    query: QueryParams,
    JsonBody(transaction): JsonBody<Transaction>,
) -> Result<Json<Value>, HttpError> {
    let wait = wait_param(&query)?;
    let (submitted, response) = submit(&state, Command::Transaction(transaction), wait).await?;
    let mut body = receipt_head(&submitted);
    let results = response
        .get("results")
        .cloned()
        .unwrap_or_else(|| Value::Array(Vec::new()));
    body.insert("results".to_owned(), results);
    Ok(Json(Value::Object(body)))
}

/// `GET /app/kv/{map}/{key}`: the committed value and its writer.
pub(crate) async fn kv_get<N: Node>(
    State(state): State<AppState<N>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: QueryParams,
) -> Result<Json<Value>, HttpError> {
    let Path((map, key)) = path.map_err(|rejection| path_error(&rejection))?;
    field_too_long("map", &map, MAP_NAME_BYTES_MAX)?;
    field_too_long("key", &key, KEY_BYTES_MAX)?;
    read_consistency(&state, &query, &[]).await?;
    let value = state.node.kv_get(&map, &key)?.ok_or_else(|| {
        HttpError::not_found(format!("no value for {}/{}", quote(&map), quote(&key)))
    })?;
    // Values written over RESP may be any bytes: those show as base64.
    let shown = match std::str::from_utf8(&value.value) {
        Ok(text) => ("value", Value::String(text.to_owned())),
        Err(_) => ("value_base64", Value::String(BASE64.encode(&value.value))),
    };
    let mut body = json!({
        "map": map,
        "key": key,
        "transaction_id": value.transaction_id.to_string(),
    });
    body[shown.0] = shown.1;
    Ok(Json(body))
}

/// The body of `POST /app/log`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogRecord {
    id: u64,
    msg: String,
}

/// `POST /app/log[?wait=false]`, body `{"id","msg"}`.
pub(crate) async fn log_record<N: Node>(
    State(state): State<AppState<N>>,
    query: QueryParams,
    JsonBody(record): JsonBody<LogRecord>,
) -> Result<Json<Value>, HttpError> {
    let wait = wait_param(&query)?;
    field_too_long("msg", &record.msg, VALUE_BYTES_MAX)?;
    let command = Command::Logging(LoggingCommand::Record {
        id: record.id,
        message: record.msg,
    });
    let (submitted, _) = submit(&state, command, wait).await?;
    let mut body = receipt_head(&submitted);
    body.insert("id".to_owned(), Value::from(record.id));
    Ok(Json(Value::Object(body)))
}

/// `GET /app/log?id=N`: the committed message.
pub(crate) async fn log_read<N: Node>(
    State(state): State<AppState<N>>,
    query: QueryParams,
) -> Result<Json<Value>, HttpError> {
    read_consistency(&state, &query, &["id"]).await?;
    let id: u64 = query.required("id", "an unsigned integer")?;
    let value = state
        .node
        .kv_get(LOGGING_MAP, &id.to_string())?
        .ok_or_else(|| HttpError::not_found(format!("no message with id {id}")))?;
    Ok(Json(json!({
        "id": id,
        "msg": String::from_utf8_lossy(&value.value),
        "transaction_id": value.transaction_id.to_string(),
    })))
}

/// `POST /app/smallbank/{op}[?wait=false]`, body the op's fields.
pub(crate) async fn smallbank_submit<N: Node>(
    State(state): State<AppState<N>>,
    path: Result<Path<String>, PathRejection>,
    query: QueryParams,
    request: Request,
) -> Result<Json<Value>, HttpError> {
    let Path(op) = path.map_err(|rejection| path_error(&rejection))?;
    if !SMALLBANK_OPS.contains(&op.as_str()) {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            codes::UNKNOWN_OPERATION,
            format!(
                "unknown SmallBank operation `{}` (expected one of: {})",
                quote(&op),
                SMALLBANK_OPS.join(", ")
            ),
        ));
    }
    let wait = wait_param(&query)?;
    let JsonBody(mut fields) = JsonBody::<Map<String, Value>>::from_request(request, &()).await?;
    if fields.contains_key("op") {
        return Err(HttpError::bad_request(
            codes::INVALID_BODY,
            "unknown field `op`: the operation is given by the path",
        ));
    }
    fields.insert("op".to_owned(), Value::String(op));
    let command: SmallBankCommand =
        serde_json::from_value(Value::Object(fields)).map_err(|error| json_error(&error, None))?;
    let (submitted, response) = submit(&state, Command::SmallBank(command), wait).await?;
    let mut body = receipt_head(&submitted);
    if let Value::Object(fields) = response {
        for (name, value) in fields {
            body.entry(name).or_insert(value);
        }
    }
    Ok(Json(Value::Object(body)))
}

/// `GET /app/smallbank/balance?account=N`: both committed balances. Two reads
/// of committed state, not one snapshot: a transfer committing in between can
/// show in one balance and not the other (a `POST /app/tx` with two `get`s is
/// one consistent read).
pub(crate) async fn smallbank_balance<N: Node>(
    State(state): State<AppState<N>>,
    query: QueryParams,
) -> Result<Json<Value>, HttpError> {
    read_consistency(&state, &query, &["account"]).await?;
    let account: u64 = query.required("account", "an unsigned integer")?;
    let key = account.to_string();
    let balance = |map: &str| -> Result<i64, HttpError> {
        let value = state.node.kv_get(map, &key)?.ok_or_else(|| {
            HttpError::new(
                StatusCode::NOT_FOUND,
                codes::UNKNOWN_ACCOUNT,
                format!("account {account} does not exist"),
            )
        })?;
        let text = std::str::from_utf8(&value.value).unwrap_or_default();
        text.parse().map_err(|_| {
            HttpError::new(
                StatusCode::CONFLICT,
                codes::CORRUPT_BALANCE,
                format!("the balance at {map}/{key} is not a decimal integer"),
            )
        })
    };
    let checking = balance(CHECKING_MAP)?;
    let savings = balance(SAVINGS_MAP)?;
    let total = checking.checked_add(savings).ok_or_else(|| {
        HttpError::new(
            StatusCode::CONFLICT,
            codes::OVERFLOW,
            format!("the total balance of account {account} overflows"),
        )
    })?;
    Ok(Json(json!({
        "account": account,
        "checking_cents": checking,
        "savings_cents": savings,
        "total_cents": total,
    })))
}
