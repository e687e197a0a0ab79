//! The chunk header and the frame around every entry.
//!
//! ```text
//! chunk  = magic "STELEDG1" (8 bytes) || frame*
//! frame  = length (u32 BE) || crc32c(length || payload) (u32 BE) || payload
//! ```
//!
//! The checksum covers the length too, so a flipped length bit is caught even when
//! the shorter or longer frame happens to fit in the file.

use crate::ENTRY_BYTES_MAX;

/// First bytes of every chunk file: names the format and its revision.
pub const CHUNK_MAGIC: &[u8; 8] = b"STELEDG1";

/// Bytes before the first frame of a chunk.
pub const CHUNK_HEADER_BYTES: u64 = CHUNK_MAGIC.len() as u64;

/// Bytes of a frame before its payload.
pub const FRAME_HEADER_BYTES: usize = 8;

/// The checksum of a frame: CRC32C (Castagnoli; hardware-accelerated) of the
/// big-endian length followed by the payload.
pub fn checksum(length: [u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&length), payload)
}

/// Appends one frame holding `payload` (at most [`ENTRY_BYTES_MAX`] bytes; the
/// caller checks, as the limit is a property of entries, not of frames).
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(payload.len() <= ENTRY_BYTES_MAX);
    let length = u32::try_from(payload.len())
        .expect("payloads are bounded by ENTRY_BYTES_MAX, far below 4 GiB")
        .to_be_bytes();
    out.extend_from_slice(&length);
    out.extend_from_slice(&checksum(length, payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// One frame found in a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Offset of the frame (its length field) in the chunk file.
    pub offset: u64,
    /// Offset just past the frame.
    pub end: u64,
    /// The payload.
    pub payload: &'a [u8],
}

/// What is wrong with the bytes at some offset of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFault {
    /// The file ends inside the frame header or payload.
    Truncated,
    /// The length field is above [`ENTRY_BYTES_MAX`].
    TooLarge {
        /// The length it claims.
        length: u64,
    },
    /// The checksum does not match.
    Checksum,
}

impl std::fmt::Display for FrameFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameFault::Truncated => write!(f, "the file ends inside this frame"),
            FrameFault::TooLarge { length } => write!(
                f,
                "frame length {length} is above the maximum {ENTRY_BYTES_MAX}"
            ),
            FrameFault::Checksum => write!(f, "frame checksum (CRC32C) mismatch"),
        }
    }
}

/// A bad frame: where, and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameError {
    /// Offset of the frame's first byte in the chunk file.
    pub offset: u64,
    /// What is wrong.
    pub fault: FrameFault,
}

impl FrameError {
    /// True if this bad frame is what a crash during an append leaves at the end of
    /// the open chunk: the file ends inside it, its checksum fails and it is the
    /// last thing in the file, or everything from it on is zero (a file system that
    /// extended the file before the data reached the disk).
    pub fn is_torn_tail(&self, chunk: &[u8]) -> bool {
        let rest = chunk.get(self.offset as usize..).unwrap_or_default();
        match self.fault {
            FrameFault::Truncated => true,
            FrameFault::Checksum => {
                frame_end(rest).is_some_and(|end| end == rest.len())
                    || rest.iter().all(|&byte| byte == 0)
            }
            FrameFault::TooLarge { .. } => rest.iter().all(|&byte| byte == 0),
        }
    }
}

/// Where the frame starting at `bytes[0]` ends, by its length field, if the header
/// is complete.
fn frame_end(bytes: &[u8]) -> Option<usize> {
    let length = bytes.get(..4)?;
    let length = u32::from_be_bytes(length.try_into().ok()?) as usize;
    Some(FRAME_HEADER_BYTES + length)
}

/// The frames of a chunk's bytes (header included), in order; stops after the first
/// bad one.
pub struct Frames<'a> {
    chunk: &'a [u8],
    position: usize,
    failed: bool,
}

impl<'a> Frames<'a> {
    /// Iterates over the frames after the header. The header itself is checked by
    /// [`check_header`].
    pub fn new(chunk: &'a [u8]) -> Self {
        Self::starting_at(chunk, CHUNK_HEADER_BYTES as usize)
    }

    /// Iterates over the frames of `bytes` from `position` on (offsets are reported
    /// relative to `bytes`).
    pub fn starting_at(bytes: &'a [u8], position: usize) -> Self {
        Frames {
            chunk: bytes,
            position,
            failed: false,
        }
    }

    fn next_frame(&mut self) -> Result<Frame<'a>, FrameFault> {
        let rest = &self.chunk[self.position..];
        let header = rest
            .get(..FRAME_HEADER_BYTES)
            .ok_or(FrameFault::Truncated)?;
        let length_bytes: [u8; 4] = header[..4].try_into().expect("4 bytes sliced");
        let stored: [u8; 4] = header[4..].try_into().expect("4 bytes sliced");
        let length = u32::from_be_bytes(length_bytes) as usize;
        let payload = rest
            .get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + length)
            .ok_or(FrameFault::Truncated)?;
        if length > ENTRY_BYTES_MAX {
            return Err(FrameFault::TooLarge {
                length: length as u64,
            });
        }
        if checksum(length_bytes, payload) != u32::from_be_bytes(stored) {
            return Err(FrameFault::Checksum);
        }
        Ok(Frame {
            offset: self.position as u64,
            end: (self.position + FRAME_HEADER_BYTES + length) as u64,
            payload,
        })
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.chunk.len() {
            return None;
        }
        match self.next_frame() {
            Ok(frame) => {
                self.position = frame.end as usize;
                Some(Ok(frame))
            }
            Err(fault) => {
                self.failed = true;
                Some(Err(FrameError {
                    offset: self.position as u64,
                    fault,
                }))
            }
        }
    }
}

/// Checks the chunk header. `Err` says what is wrong; a file shorter than the
/// header is reported as such (the caller decides whether that is a torn tail).
pub fn check_header(chunk: &[u8]) -> Result<(), &'static str> {
    match chunk.get(..CHUNK_MAGIC.len()) {
        None => Err("the file is shorter than the chunk header"),
        Some(magic) if magic != CHUNK_MAGIC => Err("not a Stele ledger chunk (bad magic)"),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk_with(payloads: &[&[u8]]) -> Vec<u8> {
        let mut chunk = CHUNK_MAGIC.to_vec();
        for payload in payloads {
            encode_frame(payload, &mut chunk);
        }
        chunk
    }

    #[test]
    fn frames_round_trip() {
        let chunk = chunk_with(&[b"one", b"", b"three"]);
        let frames: Vec<_> = Frames::new(&chunk).collect::<Result<_, _>>().unwrap();
        let payloads: Vec<&[u8]> = frames.iter().map(|frame| frame.payload).collect();
        assert_eq!(payloads, vec![&b"one"[..], b"", b"three"]);
        assert_eq!(frames[0].offset, CHUNK_HEADER_BYTES);
        assert_eq!(frames[2].end, chunk.len() as u64);
        assert_eq!(check_header(&chunk), Ok(()));
    }

    #[test]
    fn every_cut_of_the_last_frame_is_a_torn_tail() {
        let chunk = chunk_with(&[b"first", b"second frame"]);
        let last = 8 + FRAME_HEADER_BYTES + 5;
        for cut in last + 1..chunk.len() {
            let bytes = &chunk[..cut];
            let error = Frames::new(bytes).find_map(Result::err).unwrap();
            assert_eq!(error.offset, last as u64);
            assert!(error.is_torn_tail(bytes), "cut at {cut}");
        }
    }

    #[test]
    fn a_bad_checksum_before_the_last_frame_is_not_a_torn_tail() {
        let mut chunk = chunk_with(&[b"first", b"second"]);
        chunk[8 + FRAME_HEADER_BYTES] ^= 1;
        let error = Frames::new(&chunk).find_map(Result::err).unwrap();
        assert_eq!(error.fault, FrameFault::Checksum);
        assert!(!error.is_torn_tail(&chunk));
        // The same damage in the last frame is what a torn write looks like.
        let mut last = chunk_with(&[b"first", b"second"]);
        let end = last.len();
        last[end - 1] ^= 1;
        let error = Frames::new(&last).find_map(Result::err).unwrap();
        assert!(error.is_torn_tail(&last));
    }

    #[test]
    fn zero_fill_is_a_torn_tail_and_a_flipped_length_is_caught() {
        let mut chunk = chunk_with(&[b"first"]);
        chunk.extend_from_slice(&[0; 64]);
        let error = Frames::new(&chunk).find_map(Result::err).unwrap();
        assert!(error.is_torn_tail(&chunk));

        let mut chunk = chunk_with(&[b"first", b"second"]);
        chunk[8 + 3] ^= 0x01; // length 5 -> 4: checksum covers the length
        let error = Frames::new(&chunk).find_map(Result::err).unwrap();
        assert_eq!(error.fault, FrameFault::Checksum);
        assert_eq!(
            check_header(b"STELEDG"),
            Err("the file is shorter than the chunk header")
        );
        assert!(check_header(b"NOTSTELE").is_err());
    }
}
