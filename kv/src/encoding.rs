//! The length-prefixed byte layout used for write-set digests and snapshots.
//!
//! Integers are big-endian. A string or byte string is a `u32` length followed by
//! that many bytes. `docs/execution.md` specifies both layouts with worked examples.

use sha2::{Digest, Sha256};

use crate::KvError;

/// Where encoded bytes go: a buffer, or straight into a hasher (so a digest never
/// needs the whole encoding in memory).
pub trait ByteSink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl ByteSink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl ByteSink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// Appends a `u32` big-endian.
pub fn put_u32(sink: &mut impl ByteSink, value: u32) {
    sink.put(&value.to_be_bytes());
}

/// Appends a `u64` big-endian.
pub fn put_u64(sink: &mut impl ByteSink, value: u64) {
    sink.put(&value.to_be_bytes());
}

/// Appends a length-prefixed byte string.
///
/// Lengths are bounded by the store's limits (at most [`crate::VALUE_BYTES_MAX`]),
/// far below `u32::MAX`; the assertion documents that the prefix cannot wrap.
pub fn put_bytes(sink: &mut impl ByteSink, bytes: &[u8]) {
    let length = u32::try_from(bytes.len()).expect("entries are bounded far below 4 GiB");
    put_u32(sink, length);
    sink.put(bytes);
}

/// Reads the layout back, strictly: every read is bounds-checked and a short input
/// is an error, never a panic.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    /// Takes the next `count` bytes.
    pub fn take(&mut self, count: usize) -> Result<&'a [u8], KvError> {
        if count > self.bytes.len() {
            return Err(KvError::Malformed {
                reason: "truncated input",
            });
        }
        let (head, tail) = self.bytes.split_at(count);
        self.bytes = tail;
        Ok(head)
    }

    /// Reads a `u32` big-endian.
    pub fn u32(&mut self) -> Result<u32, KvError> {
        let mut buffer = [0u8; 4];
        buffer.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(buffer))
    }

    /// Reads a `u64` big-endian.
    pub fn u64(&mut self) -> Result<u64, KvError> {
        let mut buffer = [0u8; 8];
        buffer.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(buffer))
    }

    /// Reads a length-prefixed byte string of at most `max` bytes.
    pub fn bytes(&mut self, max: usize) -> Result<&'a [u8], KvError> {
        let length = self.u32()? as usize;
        if length > max {
            return Err(KvError::Malformed {
                reason: "length above the limit",
            });
        }
        self.take(length)
    }

    /// Reads a length-prefixed UTF-8 string of at most `max` bytes.
    pub fn string(&mut self, max: usize) -> Result<&'a str, KvError> {
        std::str::from_utf8(self.bytes(max)?).map_err(|_| KvError::Malformed {
            reason: "string is not UTF-8",
        })
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }
}
