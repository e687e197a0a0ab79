//! [`Snapshot`]: the state at one version, as deterministic bytes with a SHA-256.

use sha2::{Digest, Sha256};

use crate::encoding::{put_bytes, put_u64, ByteSink, Reader};
use crate::entry::{Name, Value};
use crate::{KvError, Version, KEY_BYTES_MAX, MAP_NAME_BYTES_MAX, VALUE_BYTES_MAX};

/// One entry of a snapshot: (map, key), value and the version that wrote it,
/// shared with the store's state (a long name or value by reference count), so
/// taking a snapshot copies no long bytes.
pub(crate) type SnapshotEntry = (Name, Value, Version);

/// The state in canonical order: entries strictly increasing by (map, key),
/// compared byte-wise.
pub(crate) type SortedState = Vec<SnapshotEntry>;

/// First 8 bytes of every snapshot: names the format and its revision (2: each
/// entry carries the version that wrote it).
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"STELSNP2";

/// Length of the trailing SHA-256.
const DIGEST_BYTES: usize = 32;

/// The state at one version. Its bytes (see [`Snapshot::to_bytes`] and
/// `docs/execution.md`) are a function of the state alone: equal states give equal
/// bytes and equal digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    version: Version,
    state: SortedState,
}

impl Snapshot {
    pub(crate) fn from_state(version: Version, state: SortedState) -> Self {
        Snapshot { version, state }
    }

    pub(crate) fn into_parts(self) -> (Version, SortedState) {
        (self.version, self.state)
    }

    /// The version whose state this is.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Number of keys, over all maps.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// True if the state is empty.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// The entries in (map, key) order: map, key, value, the version that wrote it.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &[u8], Version)> {
        self.state.iter().map(|(name, value, written)| {
            let (map, key) = name.strs();
            (map, key, &**value, *written)
        })
    }

    /// Writes the body: `magic(8) | u64 version | u64 count | count x (str map,
    /// str key, bytes value, u64 written_at)`.
    fn encode_body(&self, sink: &mut impl ByteSink) {
        sink.put(SNAPSHOT_MAGIC);
        put_u64(sink, self.version);
        put_u64(sink, self.len() as u64);
        for (name, value, written) in &self.state {
            let (map, key) = name.parts();
            put_bytes(sink, map);
            put_bytes(sink, key);
            put_bytes(sink, value);
            put_u64(sink, *written);
        }
    }

    /// SHA-256 of the body; it is also the last 32 bytes of [`Snapshot::to_bytes`].
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        self.encode_body(&mut hasher);
        hasher.finalize().into()
    }

    /// The body followed by its SHA-256.
    pub fn to_bytes(&self) -> Vec<u8> {
        let capacity = usize::try_from(self.encoded_len()).expect("a snapshot in memory fits");
        let mut bytes = Vec::with_capacity(capacity);
        self.write_to(&mut bytes)
            .expect("writing to a Vec cannot fail");
        bytes
    }

    /// Length of [`Snapshot::to_bytes`], computed without encoding (a file
    /// header that precedes the snapshot needs it before the bytes).
    pub fn encoded_len(&self) -> u64 {
        const FIXED: usize = SNAPSHOT_MAGIC.len() + 8 + 8 + DIGEST_BYTES;
        // Per entry: three u32 length prefixes and the u64 version.
        const PER_ENTRY: usize = 3 * 4 + 8;
        let entries: usize = self
            .state
            .iter()
            .map(|(name, value, _)| {
                let (map, key) = name.parts();
                PER_ENTRY + map.len() + key.len() + value.len()
            })
            .sum();
        (FIXED + entries) as u64
    }

    /// Streams [`Snapshot::to_bytes`] into `writer` (hashing as it goes), so a
    /// snapshot file never needs a second, encoded copy of the state in memory:
    /// for a large state that copy cost as much page zeroing as the write itself.
    pub fn write_to(&self, writer: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut sink = HashingWriter {
            writer,
            hasher: Sha256::new(),
            failed: None,
        };
        self.encode_body(&mut sink);
        if let Some(error) = sink.failed {
            return Err(error);
        }
        let digest: [u8; 32] = sink.hasher.finalize().into();
        sink.writer.write_all(&digest)
    }

    /// Parses and verifies snapshot bytes: the trailing digest must match, and the
    /// body must be canonical (strictly increasing (map, key), within the limits, no
    /// trailing bytes), so `from_bytes(b)?.to_bytes() == b`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KvError> {
        let body_len = bytes
            .len()
            .checked_sub(DIGEST_BYTES)
            .ok_or(KvError::Malformed {
                reason: "shorter than a digest",
            })?;
        let (body, digest) = bytes.split_at(body_len);
        if Sha256::digest(body).as_slice() != digest {
            return Err(KvError::SnapshotDigestMismatch);
        }
        let mut reader = Reader::new(body);
        if reader.take(SNAPSHOT_MAGIC.len())? != SNAPSHOT_MAGIC {
            return Err(KvError::Malformed {
                reason: "not a snapshot (bad magic)",
            });
        }
        let version = reader.u64()?;
        let count = reader.u64()?;
        let state = read_entries(&mut reader, count, version)?;
        if reader.remaining() != 0 {
            return Err(KvError::Malformed {
                reason: "trailing bytes after the last entry",
            });
        }
        Ok(Snapshot { version, state })
    }
}

/// A [`ByteSink`] that hashes what it forwards to a writer, keeping the first
/// write error (the encoder's sinks are infallible; the caller checks after).
struct HashingWriter<'a, W: std::io::Write> {
    writer: &'a mut W,
    hasher: Sha256,
    failed: Option<std::io::Error>,
}

impl<W: std::io::Write> ByteSink for HashingWriter<'_, W> {
    fn put(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        self.hasher.update(bytes);
        if let Err(error) = self.writer.write_all(bytes) {
            self.failed = Some(error);
        }
    }
}

/// Reads `count` entries of a snapshot at `version`. The count is not trusted for
/// allocation: every entry consumes at least 20 bytes, so a lying count fails on
/// truncation.
fn read_entries(
    reader: &mut Reader<'_>,
    count: u64,
    version: Version,
) -> Result<SortedState, KvError> {
    let mut state = SortedState::new();
    let mut previous: Option<(&str, &str)> = None;
    for _ in 0..count {
        let map = reader.string(MAP_NAME_BYTES_MAX)?;
        let key = reader.string(KEY_BYTES_MAX)?;
        let value = reader.bytes(VALUE_BYTES_MAX)?;
        let written = reader.u64()?;
        if written == 0 || written > version {
            return Err(KvError::Malformed {
                reason: "an entry written after the snapshot's version (or at 0)",
            });
        }
        if previous.is_some_and(|previous| previous >= (map, key)) {
            return Err(KvError::Malformed {
                reason: "entries not strictly increasing by (map, key)",
            });
        }
        previous = Some((map, key));
        state.push((Name::new(map, key), Value::new(value), written));
    }
    Ok(state)
}
