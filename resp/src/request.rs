//! [`Request`]: one RESP command, parsed from its arguments and checked
//! (arity, options, integers) before anything runs. Data commands become a
//! [`RedisOp`] (the frontend's, executed in a transaction or against the
//! committed state); the rest are the connection's own business.

use bytes::Bytes;
use stele_frontends::redis::{RedisOp, SetCondition};
use stele_history::TransactionId;

use crate::reply::{self, Reply};

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// A data command: a write is a transaction, a read reads committed state.
    Op(RedisOp),
    Auth {
        user: Option<Vec<u8>>,
        token: Vec<u8>,
    },
    Hello {
        protocol: Option<Vec<u8>>,
        auth: Option<(Vec<u8>, Vec<u8>)>,
        name: Option<Vec<u8>>,
    },
    Quit,
    Ping(Option<Vec<u8>>),
    Echo(Vec<u8>),
    Select(Vec<u8>),
    ClientSetName(Vec<u8>),
    ClientGetName,
    ClientId,
    ClientSetInfo,
    Info,
    DbSize,
    /// `CONFIG GET pattern...`.
    ConfigGet(Vec<Vec<u8>>),
    Command(CommandQuery),
    Scan(Scan),
    Keys(Vec<u8>),
    Multi,
    Exec,
    Discard,
    Watch(Vec<Vec<u8>>),
    Unwatch,
    SteleTxid,
    SteleStatus(TransactionId),
    SteleReceipt(TransactionId),
}

impl Request {
    /// The command's name, for messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Request::Op(_) => "a data command",
            Request::Auth { .. } => "AUTH",
            Request::Hello { .. } => "HELLO",
            Request::Quit => "QUIT",
            Request::Ping(_) => "PING",
            Request::Echo(_) => "ECHO",
            Request::Select(_) => "SELECT",
            Request::ClientSetName(_)
            | Request::ClientGetName
            | Request::ClientId
            | Request::ClientSetInfo => "CLIENT",
            Request::Info => "INFO",
            Request::DbSize => "DBSIZE",
            Request::ConfigGet(_) => "CONFIG",
            Request::Command(_) => "COMMAND",
            Request::Scan(_) => "SCAN",
            Request::Keys(_) => "KEYS",
            Request::Multi => "MULTI",
            Request::Exec => "EXEC",
            Request::Discard => "DISCARD",
            Request::Watch(_) => "WATCH",
            Request::Unwatch => "UNWATCH",
            Request::SteleTxid => "STELE.TXID",
            Request::SteleStatus(_) => "STELE.STATUS",
            Request::SteleReceipt(_) => "STELE.RECEIPT",
        }
    }
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND DOCS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommandQuery {
    List,
    Count,
    Docs,
}

/// What a SCAN step asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    pub cursor: u64,
    pub pattern: Option<Vec<u8>>,
    pub count: usize,
    pub kind: Option<KeyKind>,
}

/// The types Stele keeps, for `SCAN ... TYPE` and `TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    String,
    Hash,
    /// A type Stele never holds (list, set, ...): matches no key.
    Other,
}

/// Every command Stele answers (for `COMMAND COUNT` and the docs).
pub(crate) const COMMANDS: &[&str] = &[
    "append",
    "auth",
    "client",
    "command",
    "config",
    "dbsize",
    "decr",
    "decrby",
    "del",
    "discard",
    "echo",
    "exec",
    "exists",
    "get",
    "getdel",
    "getset",
    "hdel",
    "hello",
    "hexists",
    "hget",
    "hgetall",
    "hincrby",
    "hlen",
    "hmget",
    "hset",
    "incr",
    "incrby",
    "info",
    "keys",
    "mget",
    "mset",
    "msetnx",
    "multi",
    "ping",
    "quit",
    "scan",
    "select",
    "set",
    "setnx",
    "stele.receipt",
    "stele.status",
    "stele.txid",
    "strlen",
    "type",
    "unlink",
    "unwatch",
    "watch",
];

/// Commands that set or read an expiry: Stele refuses them whole.
const EXPIRY_COMMANDS: &[&str] = &[
    "expire",
    "pexpire",
    "expireat",
    "pexpireat",
    "ttl",
    "pttl",
    "persist",
    "setex",
    "psetex",
    "getex",
    "expiretime",
    "pexpiretime",
];

/// Parses `args` (the command name first). `Err` is the error reply.
pub(crate) fn parse(args: Vec<Bytes>) -> Result<Request, Reply> {
    let Some((name, rest)) = args.split_first() else {
        return Err(reply::error("ERR empty command"));
    };
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    let rest: Vec<Vec<u8>> = rest.iter().map(|arg| arg.to_vec()).collect();
    let arity = |ok: bool| -> Result<(), Reply> {
        if ok {
            Ok(())
        } else {
            Err(reply::error(format!(
                "ERR wrong number of arguments for '{name}' command"
            )))
        }
    };
    let n = rest.len();
    let mut it = rest.into_iter();
    let mut next = || it.next().unwrap_or_default();
    let request = match name.as_str() {
        "get" => {
            arity(n == 1)?;
            Request::Op(RedisOp::Get { key: next() })
        }
        "set" => {
            arity(n >= 2)?;
            let key = next();
            let value = next();
            let options: Vec<Vec<u8>> = std::iter::from_fn(|| Some(next())).take(n - 2).collect();
            parse_set(key, value, &options)?
        }
        "setnx" => {
            arity(n == 2)?;
            Request::Op(RedisOp::SetNx {
                key: next(),
                value: next(),
            })
        }
        "getset" => {
            arity(n == 2)?;
            Request::Op(RedisOp::GetSet {
                key: next(),
                value: next(),
            })
        }
        "getdel" => {
            arity(n == 1)?;
            Request::Op(RedisOp::GetDel { key: next() })
        }
        "mget" => {
            arity(n >= 1)?;
            Request::Op(RedisOp::MGet {
                keys: (0..n).map(|_| next()).collect(),
            })
        }
        "mset" | "msetnx" => {
            arity(n >= 2 && n.is_multiple_of(2))?;
            let pairs = (0..n / 2).map(|_| (next(), next())).collect();
            Request::Op(if name == "mset" {
                RedisOp::MSet { pairs }
            } else {
                RedisOp::MSetNx { pairs }
            })
        }
        "del" | "unlink" => {
            arity(n >= 1)?;
            Request::Op(RedisOp::Del {
                keys: (0..n).map(|_| next()).collect(),
            })
        }
        "exists" => {
            arity(n >= 1)?;
            Request::Op(RedisOp::Exists {
                keys: (0..n).map(|_| next()).collect(),
            })
        }
        "type" => {
            arity(n == 1)?;
            Request::Op(RedisOp::Type { key: next() })
        }
        "strlen" => {
            arity(n == 1)?;
            Request::Op(RedisOp::StrLen { key: next() })
        }
        "append" => {
            arity(n == 2)?;
            Request::Op(RedisOp::Append {
                key: next(),
                value: next(),
            })
        }
        "incr" | "decr" => {
            arity(n == 1)?;
            let by = if name == "incr" { 1 } else { -1 };
            Request::Op(RedisOp::IncrBy { key: next(), by })
        }
        "incrby" | "decrby" => {
            arity(n == 2)?;
            let key = next();
            let by = integer(&next())?;
            let by = if name == "incrby" {
                by
            } else {
                // Redis refuses DECRBY of i64::MIN the same way.
                by.checked_neg()
                    .ok_or_else(|| reply::error("ERR decrement would overflow"))?
            };
            Request::Op(RedisOp::IncrBy { key, by })
        }
        "hset" => {
            arity(n >= 3 && n % 2 == 1)?;
            let key = next();
            let pairs = (0..n / 2).map(|_| (next(), next())).collect();
            Request::Op(RedisOp::HSet { key, pairs })
        }
        "hget" => {
            arity(n == 2)?;
            Request::Op(RedisOp::HGet {
                key: next(),
                field: next(),
            })
        }
        "hdel" => {
            arity(n >= 2)?;
            let key = next();
            Request::Op(RedisOp::HDel {
                key,
                fields: (1..n).map(|_| next()).collect(),
            })
        }
        "hgetall" => {
            arity(n == 1)?;
            Request::Op(RedisOp::HGetAll { key: next() })
        }
        "hexists" => {
            arity(n == 2)?;
            Request::Op(RedisOp::HExists {
                key: next(),
                field: next(),
            })
        }
        "hlen" => {
            arity(n == 1)?;
            Request::Op(RedisOp::HLen { key: next() })
        }
        "hmget" => {
            arity(n >= 2)?;
            let key = next();
            Request::Op(RedisOp::HMGet {
                key,
                fields: (1..n).map(|_| next()).collect(),
            })
        }
        "hincrby" => {
            arity(n == 3)?;
            let key = next();
            let field = next();
            let by = integer(&next())?;
            Request::Op(RedisOp::HIncrBy { key, field, by })
        }
        "auth" => {
            arity(n == 1 || n == 2)?;
            if n == 1 {
                Request::Auth {
                    user: None,
                    token: next(),
                }
            } else {
                Request::Auth {
                    user: Some(next()),
                    token: next(),
                }
            }
        }
        "hello" => parse_hello((0..n).map(|_| next()).collect())?,
        "quit" => Request::Quit,
        "ping" => {
            arity(n <= 1)?;
            Request::Ping((n == 1).then(&mut next))
        }
        "echo" => {
            arity(n == 1)?;
            Request::Echo(next())
        }
        "select" => {
            arity(n == 1)?;
            Request::Select(next())
        }
        "client" => {
            arity(n >= 1)?;
            let sub = String::from_utf8_lossy(&next()).to_ascii_lowercase();
            match (sub.as_str(), n) {
                ("setname", 2) => Request::ClientSetName(next()),
                ("getname", 1) => Request::ClientGetName,
                ("id", 1) => Request::ClientId,
                // Client libraries announce themselves (redis-rs, redis-py).
                ("setinfo", 3) => Request::ClientSetInfo,
                ("setname" | "getname" | "id" | "setinfo", _) => {
                    return Err(reply::error(format!(
                        "ERR wrong number of arguments for 'client|{sub}' command"
                    )))
                }
                _ => return Err(unknown_subcommand(&sub, "CLIENT")),
            }
        }
        "info" => Request::Info,
        "dbsize" => {
            arity(n == 0)?;
            Request::DbSize
        }
        "config" => {
            arity(n >= 1)?;
            let sub = String::from_utf8_lossy(&next()).to_ascii_lowercase();
            match sub.as_str() {
                "get" if n >= 2 => Request::ConfigGet((1..n).map(|_| next()).collect()),
                "get" => {
                    return Err(reply::error(
                        "ERR wrong number of arguments for 'config|get' command",
                    ))
                }
                _ => {
                    return Err(reply::error(format!(
                        "ERR CONFIG {} is not supported: Stele is configured by its TOML file",
                        sub.to_ascii_uppercase()
                    )))
                }
            }
        }
        "command" => {
            let sub = (n >= 1).then(|| String::from_utf8_lossy(&next()).to_ascii_lowercase());
            match sub.as_deref() {
                None => Request::Command(CommandQuery::List),
                Some("count") if n == 1 => Request::Command(CommandQuery::Count),
                Some("count") => {
                    return Err(reply::error(
                        "ERR wrong number of arguments for 'command|count' command",
                    ))
                }
                Some("docs") => Request::Command(CommandQuery::Docs),
                Some(other) => return Err(unknown_subcommand(other, "COMMAND")),
            }
        }
        "scan" => {
            arity(n >= 1)?;
            parse_scan((0..n).map(|_| next()).collect())?
        }
        "keys" => {
            arity(n == 1)?;
            Request::Keys(pattern(next())?)
        }
        "multi" => {
            arity(n == 0)?;
            Request::Multi
        }
        "exec" => {
            arity(n == 0)?;
            Request::Exec
        }
        "discard" => {
            arity(n == 0)?;
            Request::Discard
        }
        "watch" => {
            arity(n >= 1)?;
            Request::Watch((0..n).map(|_| next()).collect())
        }
        "unwatch" => {
            arity(n == 0)?;
            Request::Unwatch
        }
        "stele.txid" => {
            arity(n == 0)?;
            Request::SteleTxid
        }
        "stele.status" | "stele.receipt" => {
            arity(n == 1)?;
            let id = transaction_id(&next())?;
            if name == "stele.status" {
                Request::SteleStatus(id)
            } else {
                Request::SteleReceipt(id)
            }
        }
        expiring if EXPIRY_COMMANDS.contains(&expiring) => return Err(no_expiry(expiring)),
        _ => {
            return Err(unknown_command(
                &String::from_utf8_lossy(&args[0]),
                &args[1..],
            ))
        }
    };
    Ok(request)
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT|PXAT|KEEPTTL]`.
fn parse_set(key: Vec<u8>, value: Vec<u8>, options: &[Vec<u8>]) -> Result<Request, Reply> {
    let mut condition = SetCondition::Always;
    let mut get = false;
    for option in options {
        let option = String::from_utf8_lossy(option).to_ascii_lowercase();
        match option.as_str() {
            // Repeating an option is allowed, as in Redis; NX with XX is not.
            "nx" if condition != SetCondition::IfPresent => condition = SetCondition::IfAbsent,
            "xx" if condition != SetCondition::IfAbsent => condition = SetCondition::IfPresent,
            "get" => get = true,
            "ex" | "px" | "exat" | "pxat" | "keepttl" => return Err(no_expiry(&option)),
            _ => return Err(reply::error("ERR syntax error")),
        }
    }
    Ok(Request::Op(RedisOp::Set {
        key,
        value,
        condition,
        get,
    }))
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
fn parse_hello(args: Vec<Vec<u8>>) -> Result<Request, Reply> {
    let mut args = args.into_iter();
    let protocol = args.next();
    let mut auth = None;
    let mut name = None;
    while let Some(option) = args.next() {
        match String::from_utf8_lossy(&option)
            .to_ascii_lowercase()
            .as_str()
        {
            "auth" => match (args.next(), args.next()) {
                (Some(user), Some(token)) => auth = Some((user, token)),
                _ => return Err(reply::error("ERR Syntax error in HELLO option 'auth'")),
            },
            "setname" => match args.next() {
                Some(value) => name = Some(value),
                None => return Err(reply::error("ERR Syntax error in HELLO option 'setname'")),
            },
            other => {
                return Err(reply::error(format!(
                    "ERR Syntax error in HELLO option '{other}'"
                )))
            }
        }
    }
    Ok(Request::Hello {
        protocol,
        auth,
        name,
    })
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]`.
fn parse_scan(args: Vec<Vec<u8>>) -> Result<Request, Reply> {
    let mut args = args.into_iter();
    let cursor = args.next().unwrap_or_default();
    let cursor = std::str::from_utf8(&cursor)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or_else(|| reply::error("ERR invalid cursor"))?;
    let mut scan = Scan {
        cursor,
        pattern: None,
        count: 10,
        kind: None,
    };
    while let Some(option) = args.next() {
        let option = String::from_utf8_lossy(&option).to_ascii_lowercase();
        let Some(value) = args.next() else {
            return Err(reply::error("ERR syntax error"));
        };
        match option.as_str() {
            "match" => scan.pattern = Some(pattern(value)?),
            "count" => {
                let count = integer(&value)?;
                if count < 1 {
                    return Err(reply::error("ERR syntax error"));
                }
                let count = usize::try_from(count).unwrap_or(usize::MAX);
                scan.count = count.min(crate::limits::RESP_SCAN_COUNT_MAX);
            }
            "type" => {
                scan.kind = Some(
                    match String::from_utf8_lossy(&value)
                        .to_ascii_lowercase()
                        .as_str()
                    {
                        "string" => KeyKind::String,
                        "hash" => KeyKind::Hash,
                        _ => KeyKind::Other,
                    },
                )
            }
            _ => return Err(reply::error("ERR syntax error")),
        }
    }
    Ok(Request::Scan(scan))
}

/// A glob pattern argument, within [`crate::limits::RESP_PATTERN_BYTES_MAX`]
/// (matching costs key length times pattern length).
fn pattern(bytes: Vec<u8>) -> Result<Vec<u8>, Reply> {
    let max = crate::limits::RESP_PATTERN_BYTES_MAX;
    if bytes.len() > max {
        return Err(reply::error(format!(
            "ERR a pattern has at most RESP_PATTERN_BYTES_MAX ({max}) bytes"
        )));
    }
    Ok(bytes)
}

/// An integer argument, as Redis reads one (`string2ll`).
fn integer(bytes: &[u8]) -> Result<i64, Reply> {
    stele_frontends::redis::integer::parse_integer(bytes)
        .ok_or_else(|| reply::error("ERR value is not an integer or out of range"))
}

/// A `<view>.<seqno>` argument.
fn transaction_id(bytes: &[u8]) -> Result<TransactionId, Reply> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            reply::error("ERR invalid transaction id: expected <view>.<seqno>, e.g. 2.17")
        })
}

/// The refusal of an expiry command or option.
fn no_expiry(what: &str) -> Reply {
    reply::error(format!(
        "ERR Stele keys do not expire: a ledger does not forget ({})",
        what.to_ascii_uppercase()
    ))
}

/// Redis's answer to an unknown command (with at most a few arguments quoted).
fn unknown_command(name: &str, args: &[Bytes]) -> Reply {
    let quoted: String = args
        .iter()
        .take(4)
        .map(|arg| format!("'{}' ", String::from_utf8_lossy(&arg[..arg.len().min(64)])))
        .collect();
    reply::error(format!(
        "ERR unknown command '{name}', with args beginning with: {quoted}"
    ))
}

fn unknown_subcommand(sub: &str, command: &str) -> Reply {
    reply::error(format!(
        "ERR unknown subcommand '{sub}'. Try {command} HELP."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Request, Reply> {
        parse(
            words
                .iter()
                .map(|word| Bytes::copy_from_slice(word.as_bytes()))
                .collect(),
        )
    }

    fn error_text(result: Result<Request, Reply>) -> String {
        match result {
            Err(Reply::Error(text)) => text,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn set_options_parse_and_expiry_is_refused() {
        assert_eq!(
            parse_words(&["SET", "k", "v", "nx", "GET"]),
            Ok(Request::Op(RedisOp::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                condition: SetCondition::IfAbsent,
                get: true,
            }))
        );
        assert!(error_text(parse_words(&["SET", "k", "v", "NX", "XX"])).starts_with("ERR syntax"));
        assert!(error_text(parse_words(&["SET", "k", "v", "EX", "10"])).contains("does not forget"));
        assert!(error_text(parse_words(&["EXPIRE", "k", "10"])).contains("does not forget"));
        assert!(error_text(parse_words(&["TTL", "k"])).contains("(TTL)"));
    }

    #[test]
    fn arity_and_integers_are_checked_before_anything_runs() {
        assert_eq!(
            error_text(parse_words(&["GET"])),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            error_text(parse_words(&["HSET", "h", "f"])),
            "ERR wrong number of arguments for 'hset' command"
        );
        assert_eq!(
            error_text(parse_words(&["INCRBY", "k", "1.5"])),
            "ERR value is not an integer or out of range"
        );
        assert!(parse_words(&["DECRBY", "k", "-9223372036854775808"]).is_err());
        assert_eq!(
            parse_words(&["DECRBY", "k", "5"]),
            Ok(Request::Op(RedisOp::IncrBy {
                key: b"k".to_vec(),
                by: -5
            }))
        );
        assert!(
            error_text(parse_words(&["NOSUCH", "a"])).starts_with("ERR unknown command 'NOSUCH'")
        );
    }

    #[test]
    fn patterns_are_bounded_and_set_options_may_repeat() {
        let long = "a".repeat(crate::limits::RESP_PATTERN_BYTES_MAX + 1);
        assert!(error_text(parse_words(&["KEYS", &long])).contains("RESP_PATTERN_BYTES_MAX"));
        assert!(error_text(parse_words(&["SCAN", "0", "MATCH", &long]))
            .contains("RESP_PATTERN_BYTES_MAX"));
        assert!(matches!(
            parse_words(&["SET", "k", "v", "NX", "nx"]),
            Ok(Request::Op(RedisOp::Set {
                condition: SetCondition::IfAbsent,
                ..
            }))
        ));
        assert!(parse_words(&["SET", "k", "v", "XX", "NX"]).is_err());
        assert!(parse_words(&["COMMAND", "COUNT", "x"]).is_err());
    }

    #[test]
    fn scan_options_parse() {
        assert_eq!(
            parse_words(&["SCAN", "17", "MATCH", "a*", "COUNT", "100000", "TYPE", "hash"]),
            Ok(Request::Scan(Scan {
                cursor: 17,
                pattern: Some(b"a*".to_vec()),
                count: crate::limits::RESP_SCAN_COUNT_MAX,
                kind: Some(KeyKind::Hash),
            }))
        );
        assert_eq!(
            error_text(parse_words(&["SCAN", "-1"])),
            "ERR invalid cursor"
        );
        assert!(parse_words(&["SCAN", "0", "COUNT", "0"]).is_err());
    }

    #[test]
    fn stele_commands_take_transaction_ids() {
        assert_eq!(
            parse_words(&["stele.status", "2.17"]),
            Ok(Request::SteleStatus(TransactionId { view: 2, seqno: 17 }))
        );
        assert!(error_text(parse_words(&["STELE.RECEIPT", "x"])).contains("<view>.<seqno>"));
    }
}
