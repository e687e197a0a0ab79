//! How each [`RedisOp`] reads and writes [`STRINGS_MAP`] and [`HASHES_MAP`], and
//! [`watch_digest`].
//!
//! An op first reads what it needs, then computes its reply and its writes, and
//! only then writes, all or nothing: an op answering an error writes nothing
//! (Redis checks before it modifies, too).

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};
use stele_kv::ReadView;

use super::hash::{
    decode_hash, encode_hash, encoded_hash_len, field_value, to_fields, DecodedHash, Fields,
};
use super::integer::{format_integer, parse_integer};
use super::{
    key_name, RedisOp, Reply, SetCondition, ERROR_CORRUPT_HASH, ERROR_HASH_NOT_INTEGER,
    ERROR_HASH_TOO_LARGE, ERROR_NOT_INTEGER, ERROR_OVERFLOW, ERROR_STRING_TOO_LARGE,
    ERROR_WRITES_TOO_LARGE, ERROR_WRONGTYPE, HASHES_MAP, REDIS_HASH_BYTES_MAX,
    REDIS_VALUE_BYTES_MAX, REDIS_WRITE_BYTES_MAX, STRINGS_MAP, WATCH_TAG_HASH, WATCH_TAG_STRING,
};
use crate::scoped::{ScopedTx, Stop};
use crate::FrontendError;

/// What WATCH records for `key` in `view`: SHA-256 of (type tag, stored value), the
/// tag [`WATCH_TAG_STRING`] or [`WATCH_TAG_HASH`]; `None` if the key is absent.
/// EXEC aborts if it differs at execution (a value written back unchanged does not
/// count as a change, unlike Redis, which aborts on any write).
pub fn watch_digest(view: &(impl ReadView + ?Sized), key: &[u8]) -> Option<[u8; 32]> {
    let name = key_name(key);
    digest_of(view.read(STRINGS_MAP, &name), view.read(HASHES_MAP, &name))
}

/// The digest of what is stored under one name. A string wins over a hash, as in
/// every op, for a name the generic language wrote in both maps.
fn digest_of(string: Option<&[u8]>, hash: Option<&[u8]>) -> Option<[u8; 32]> {
    let (tag, value) = match (string, hash) {
        (Some(value), _) => (WATCH_TAG_STRING, value),
        (None, Some(value)) => (WATCH_TAG_HASH, value),
        (None, None) => return None,
    };
    let mut hasher = Sha256::new();
    hasher.update([tag]);
    hasher.update(value);
    Some(hasher.finalize().into())
}

/// What is stored under one key name.
enum Stored {
    Absent,
    String(Vec<u8>),
    /// The encoded hash, not yet decoded.
    Hash(Vec<u8>),
}

/// Why an op stops before its end: with a reply (a runtime error, or an early
/// answer), or with a [`Stop`] for the whole command.
enum Early {
    Answer(Reply),
    Stop(Stop),
}

impl From<FrontendError> for Early {
    fn from(error: FrontendError) -> Self {
        Early::Stop(Stop::Fault(error))
    }
}

impl From<Stop> for Early {
    fn from(stop: Stop) -> Self {
        Early::Stop(stop)
    }
}

fn error(text: &str) -> Early {
    Early::Answer(Reply::Error(text.to_owned()))
}

/// The writes an op decided on, applied only once it has succeeded.
#[derive(Default)]
struct Writes {
    entries: Vec<(&'static str, String, Option<Vec<u8>>)>,
}

impl Writes {
    fn put(&mut self, map: &'static str, name: &str, value: Vec<u8>) {
        self.entries.push((map, name.to_owned(), Some(value)));
    }

    fn delete(&mut self, map: &'static str, name: &str) {
        self.entries.push((map, name.to_owned(), None));
    }
}

/// Runs ops in one transaction and keeps the write-set budget.
pub(crate) struct Executor<'t, 'a, V: ReadView + ?Sized> {
    tx: &'t mut ScopedTx<'a, V>,
    /// Size of the last value written to each (map, name), for the budget.
    written: BTreeMap<(&'static str, String), usize>,
    /// Sum of `written`: at most [`REDIS_WRITE_BYTES_MAX`].
    written_bytes: usize,
}

impl<'t, 'a, V: ReadView + ?Sized> Executor<'t, 'a, V> {
    pub(crate) fn new(tx: &'t mut ScopedTx<'a, V>) -> Self {
        Executor {
            tx,
            written: BTreeMap::new(),
            written_bytes: 0,
        }
    }

    /// The current WATCH digest of `key_name`, as the transaction sees it.
    pub(crate) fn digest(&mut self, name: &str) -> Result<Option<[u8; 32]>, Stop> {
        let string = self.tx.get(STRINGS_MAP, name)?.map(<[u8]>::to_vec);
        let hash = self.tx.get(HASHES_MAP, name)?;
        Ok(digest_of(string.as_deref(), hash))
    }

    /// Runs one op. `Err` only for a fault (an undeclared key: a bug); runtime
    /// errors are `Ok(Reply::Error)`.
    pub(crate) fn run(&mut self, op: &RedisOp) -> Result<Reply, Stop> {
        match self.run_op(op) {
            Ok(reply) | Err(Early::Answer(reply)) => Ok(reply),
            Err(Early::Stop(stop)) => Err(stop),
        }
    }

    fn stored(&mut self, name: &str) -> Result<Stored, FrontendError> {
        if let Some(value) = self.tx.get(STRINGS_MAP, name)? {
            return Ok(Stored::String(value.to_vec()));
        }
        Ok(match self.tx.get(HASHES_MAP, name)? {
            Some(value) => Stored::Hash(value.to_vec()),
            None => Stored::Absent,
        })
    }

    /// True if the key exists as any type (no copy of the value).
    fn exists(&mut self, name: &str) -> Result<bool, FrontendError> {
        Ok(self.tx.get(STRINGS_MAP, name)?.is_some() || self.tx.get(HASHES_MAP, name)?.is_some())
    }

    /// The string under `name`, `None` if absent; WRONGTYPE for a hash.
    fn string(&mut self, name: &str) -> Result<Option<Vec<u8>>, Early> {
        match self.stored(name)? {
            Stored::Absent => Ok(None),
            Stored::String(value) => Ok(Some(value)),
            Stored::Hash(_) => Err(error(ERROR_WRONGTYPE)),
        }
    }

    /// The encoded hash under `name`, `None` if absent; WRONGTYPE for a string.
    fn hash(&mut self, name: &str) -> Result<Option<Vec<u8>>, Early> {
        match self.stored(name)? {
            Stored::Absent => Ok(None),
            Stored::Hash(encoded) => Ok(Some(encoded)),
            Stored::String(_) => Err(error(ERROR_WRONGTYPE)),
        }
    }

    /// Writes a string under `name`, deleting a hash stored there (SET overwrites
    /// any type).
    fn put_string(&mut self, writes: &mut Writes, name: &str, value: Vec<u8>) -> Result<(), Early> {
        if self.tx.get(HASHES_MAP, name)?.is_some() {
            writes.delete(HASHES_MAP, name);
        }
        writes.put(STRINGS_MAP, name, value);
        Ok(())
    }

    /// Deletes whatever is stored under `name`; true if something was.
    fn delete_key(&mut self, writes: &mut Writes, name: &str) -> Result<bool, Early> {
        let mut existed = false;
        for map in [STRINGS_MAP, HASHES_MAP] {
            if self.tx.get(map, name)?.is_some() {
                writes.delete(map, name);
                existed = true;
            }
        }
        Ok(existed)
    }

    /// Writes a hash (an empty one deletes the key); ERROR_HASH_TOO_LARGE past the bound.
    fn put_hash(&mut self, writes: &mut Writes, name: &str, fields: &Fields) -> Result<(), Early> {
        if fields.is_empty() {
            writes.delete(HASHES_MAP, name);
            return Ok(());
        }
        // Hash ops answer WRONGTYPE on a string before they get here, so a hash never
        // joins a string under one name.
        debug_assert!(matches!(self.tx.get(STRINGS_MAP, name), Ok(None)));
        if encoded_hash_len(fields) > REDIS_HASH_BYTES_MAX {
            return Err(error(ERROR_HASH_TOO_LARGE));
        }
        writes.put(HASHES_MAP, name, encode_hash(fields));
        Ok(())
    }

    /// Applies an op's writes, or none of them (ERROR_WRITES_TOO_LARGE) if they would
    /// take the command past [`REDIS_WRITE_BYTES_MAX`].
    fn apply(&mut self, writes: Writes) -> Result<(), Early> {
        // The last size this op writes to each (map, name) it names.
        let mut sizes: BTreeMap<(&'static str, &str), usize> = BTreeMap::new();
        for (map, name, value) in &writes.entries {
            sizes.insert((map, name), value.as_ref().map_or(0, Vec::len));
        }
        let mut total = self.written_bytes;
        for (&(map, name), &size) in &sizes {
            let previous = self
                .written
                .get(&(map, name.to_owned()))
                .copied()
                .unwrap_or(0);
            debug_assert!(previous <= total, "the total includes every earlier size");
            total = total - previous + size;
        }
        if total > REDIS_WRITE_BYTES_MAX {
            return Err(error(ERROR_WRITES_TOO_LARGE));
        }
        for ((map, name), size) in sizes {
            self.written.insert((map, name.to_owned()), size);
        }
        for (map, name, value) in writes.entries {
            match value {
                Some(value) => {
                    debug_assert!(value.len() <= stele_kv::VALUE_BYTES_MAX);
                    self.tx.put(map, &name, value)?;
                }
                None => self.tx.delete(map, &name)?,
            }
        }
        self.written_bytes = total;
        debug_assert_eq!(self.written_bytes, self.written.values().sum::<usize>());
        Ok(())
    }

    fn run_op(&mut self, op: &RedisOp) -> Result<Reply, Early> {
        match op {
            RedisOp::Get { key } => Ok(bulk_or_nil(self.string(&key_name(key))?)),
            RedisOp::Set {
                key,
                value,
                condition,
                get,
            } => self.set(key, value, *condition, *get),
            RedisOp::SetNx { key, value } => {
                let reply = self.set(key, value, SetCondition::IfAbsent, false)?;
                Ok(Reply::Int(i64::from(reply == Reply::ok())))
            }
            RedisOp::GetSet { key, value } => self.set(key, value, SetCondition::Always, true),
            RedisOp::GetDel { key } => {
                let name = key_name(key);
                let value = self.string(&name)?;
                if value.is_some() {
                    let mut writes = Writes::default();
                    writes.delete(STRINGS_MAP, &name);
                    self.apply(writes)?;
                }
                Ok(bulk_or_nil(value))
            }
            RedisOp::MGet { keys } => {
                let mut replies = Vec::with_capacity(keys.len());
                for key in keys {
                    // MGET answers nil for a key of another type, not WRONGTYPE.
                    replies.push(match self.stored(&key_name(key))? {
                        Stored::String(value) => Reply::Bulk(value),
                        Stored::Absent | Stored::Hash(_) => Reply::Nil,
                    });
                }
                Ok(Reply::Array(replies))
            }
            RedisOp::MSet { pairs } => {
                self.set_all(pairs)?;
                Ok(Reply::ok())
            }
            RedisOp::MSetNx { pairs } => {
                for (key, _) in pairs {
                    if self.exists(&key_name(key))? {
                        return Ok(Reply::Int(0));
                    }
                }
                self.set_all(pairs)?;
                Ok(Reply::Int(1))
            }
            RedisOp::Del { keys } => self.del(keys),
            RedisOp::Exists { keys } => {
                // Repeats count (EXISTS k k answers 2).
                let mut count = 0;
                for key in keys {
                    count += i64::from(self.exists(&key_name(key))?);
                }
                Ok(Reply::Int(count))
            }
            RedisOp::Type { key } => {
                let type_name = match self.stored(&key_name(key))? {
                    Stored::Absent => "none",
                    Stored::String(_) => "string",
                    Stored::Hash(_) => "hash",
                };
                Ok(Reply::Status(type_name.to_owned()))
            }
            RedisOp::StrLen { key } => {
                let value = self.string(&key_name(key))?;
                Ok(Reply::Int(length(value.as_deref().unwrap_or_default())))
            }
            RedisOp::Append { key, value } => self.append(key, value),
            RedisOp::IncrBy { key, by } => self.incr_by(key, *by),
            RedisOp::HSet { key, pairs } => self.hset(key, pairs),
            RedisOp::HGet { key, field } => {
                let encoded = self.hash(&key_name(key))?;
                let fields = decode(&encoded)?;
                Ok(bulk_or_nil(field_value(&fields, field).map(<[u8]>::to_vec)))
            }
            RedisOp::HDel { key, fields } => self.hdel(key, fields),
            RedisOp::HGetAll { key } => {
                let encoded = self.hash(&key_name(key))?;
                let fields = decode(&encoded)?;
                Ok(Reply::Array(
                    fields
                        .iter()
                        .flat_map(|(field, value)| {
                            [Reply::Bulk(field.to_vec()), Reply::Bulk(value.to_vec())]
                        })
                        .collect(),
                ))
            }
            RedisOp::HExists { key, field } => {
                let encoded = self.hash(&key_name(key))?;
                let fields = decode(&encoded)?;
                Ok(Reply::Int(i64::from(field_value(&fields, field).is_some())))
            }
            RedisOp::HLen { key } => {
                let encoded = self.hash(&key_name(key))?;
                Ok(Reply::Int(length(&decode(&encoded)?)))
            }
            RedisOp::HMGet { key, fields: names } => {
                let encoded = self.hash(&key_name(key))?;
                let fields = decode(&encoded)?;
                Ok(Reply::Array(
                    names
                        .iter()
                        .map(|name| bulk_or_nil(field_value(&fields, name).map(<[u8]>::to_vec)))
                        .collect(),
                ))
            }
            RedisOp::HIncrBy { key, field, by } => self.hincr_by(key, field, *by),
        }
    }

    /// SET with its options; GETSET and SETNX are special cases of it.
    fn set(
        &mut self,
        key: &[u8],
        value: &[u8],
        condition: SetCondition,
        get: bool,
    ) -> Result<Reply, Early> {
        let name = key_name(key);
        // With GET, a hash is WRONGTYPE before anything else (Redis 7.0); without,
        // SET overwrites it.
        let old = if get { Some(self.string(&name)?) } else { None };
        let exists = match &old {
            // `string` answered: a hash would have been WRONGTYPE.
            Some(old) => old.is_some(),
            None => self.exists(&name)?,
        };
        let allowed = match condition {
            SetCondition::Always => true,
            SetCondition::IfAbsent => !exists,
            SetCondition::IfPresent => exists,
        };
        if allowed {
            let mut writes = Writes::default();
            self.put_string(&mut writes, &name, value.to_vec())?;
            self.apply(writes)?;
        }
        Ok(match old {
            Some(old) => bulk_or_nil(old),
            None if allowed => Reply::ok(),
            None => Reply::Nil,
        })
    }

    fn set_all(&mut self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<(), Early> {
        let mut writes = Writes::default();
        for (key, value) in pairs {
            // In order: the last value of a repeated key wins, as in Redis.
            self.put_string(&mut writes, &key_name(key), value.clone())?;
        }
        self.apply(writes)
    }

    fn del(&mut self, keys: &[Vec<u8>]) -> Result<Reply, Early> {
        // Each distinct key counts once (DEL k k answers 1).
        let names: BTreeSet<String> = keys.iter().map(|key| key_name(key)).collect();
        let mut writes = Writes::default();
        let mut deleted = 0;
        for name in &names {
            deleted += i64::from(self.delete_key(&mut writes, name)?);
        }
        self.apply(writes)?;
        Ok(Reply::Int(deleted))
    }

    fn append(&mut self, key: &[u8], value: &[u8]) -> Result<Reply, Early> {
        let name = key_name(key);
        let mut current = self.string(&name)?.unwrap_or_default();
        if current.len() + value.len() > REDIS_VALUE_BYTES_MAX {
            return Err(error(ERROR_STRING_TOO_LARGE));
        }
        current.extend_from_slice(value);
        let new_length = length(&current);
        let mut writes = Writes::default();
        self.put_string(&mut writes, &name, current)?;
        self.apply(writes)?;
        Ok(Reply::Int(new_length))
    }

    fn incr_by(&mut self, key: &[u8], by: i64) -> Result<Reply, Early> {
        let name = key_name(key);
        let current = match self.string(&name)? {
            None => 0,
            Some(text) => parse_integer(&text).ok_or_else(|| error(ERROR_NOT_INTEGER))?,
        };
        let new = current
            .checked_add(by)
            .ok_or_else(|| error(ERROR_OVERFLOW))?;
        let mut writes = Writes::default();
        self.put_string(&mut writes, &name, format_integer(new))?;
        self.apply(writes)?;
        Ok(Reply::Int(new))
    }

    fn hset(&mut self, key: &[u8], pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<Reply, Early> {
        let name = key_name(key);
        let encoded = self.hash(&name)?;
        let mut fields = to_fields(&decode(&encoded)?);
        let mut added = 0;
        for (field, value) in pairs {
            // A field repeated in one HSET is added once, then updated.
            added += i64::from(fields.insert(field.clone(), value.clone()).is_none());
        }
        let mut writes = Writes::default();
        self.put_hash(&mut writes, &name, &fields)?;
        self.apply(writes)?;
        Ok(Reply::Int(added))
    }

    fn hdel(&mut self, key: &[u8], names: &[Vec<u8>]) -> Result<Reply, Early> {
        let name = key_name(key);
        let encoded = self.hash(&name)?;
        let mut fields = to_fields(&decode(&encoded)?);
        let mut removed = 0;
        for field in names {
            removed += i64::from(fields.remove(field).is_some());
        }
        if removed > 0 {
            // Removing the last field deletes the key (`put_hash` of an empty hash).
            let mut writes = Writes::default();
            self.put_hash(&mut writes, &name, &fields)?;
            self.apply(writes)?;
        }
        Ok(Reply::Int(removed))
    }

    fn hincr_by(&mut self, key: &[u8], field: &[u8], by: i64) -> Result<Reply, Early> {
        let name = key_name(key);
        let encoded = self.hash(&name)?;
        let decoded = decode(&encoded)?;
        let current = match field_value(&decoded, field) {
            None => 0,
            Some(text) => parse_integer(text).ok_or_else(|| error(ERROR_HASH_NOT_INTEGER))?,
        };
        let new = current
            .checked_add(by)
            .ok_or_else(|| error(ERROR_OVERFLOW))?;
        let mut fields = to_fields(&decoded);
        fields.insert(field.to_vec(), format_integer(new));
        let mut writes = Writes::default();
        self.put_hash(&mut writes, &name, &fields)?;
        self.apply(writes)?;
        Ok(Reply::Int(new))
    }
}

/// The fields of an encoded hash (none if absent); an error reply if it is corrupt.
fn decode(encoded: &Option<Vec<u8>>) -> Result<DecodedHash<'_>, Early> {
    match encoded {
        None => Ok(Vec::new()),
        Some(bytes) => decode_hash(bytes).map_err(|_| error(ERROR_CORRUPT_HASH)),
    }
}

fn bulk_or_nil(value: Option<Vec<u8>>) -> Reply {
    value.map_or(Reply::Nil, Reply::Bulk)
}

/// A length as a RESP integer (lengths are bounded far below `i64::MAX`).
fn length<T>(items: &[T]) -> i64 {
    i64::try_from(items.len()).expect("lengths are bounded by the store's value limit")
}
