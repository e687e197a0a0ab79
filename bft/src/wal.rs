//! [`Wal`]: the write-ahead log on disk, one file per node holding the entries
//! of the current height.
//!
//! Layout (integers little-endian, CRCs are CRC32C):
//!
//! ```text
//! header (20 bytes): magic "SBFTWAL" (7) | format 1 (1) | height (8) | crc of the 16 bytes before (4)
//! frame:             length (4) | crc of the length (4) | crc of the payload (4) | payload (length)
//! payload:           WalEntry::encode (a format byte, then CBOR)
//! ```
//!
//! The header is only ever written by [`Wal::reset`] (and by [`Wal::open`] for a
//! new file): a fresh file is written aside, synced, renamed over the log and
//! the folder synced, so a header is never torn. Frames are appended; a crash
//! can leave the last one torn. [`Wal::open`] cuts a torn tail and reports it
//! ([`Wal::torn_tail`]):
//! - fewer bytes left than a frame header, or a payload shorter than its
//!   (checked) length: a partial write;
//! - a bad checksum in the frame that ends the file, or from where the rest of
//!   the file is zeros (a file extended but not written).
//!
//! Any other damage is [`WalError::Corrupt`], naming the file and the offset of
//! the damaged header or frame: a length whose own checksum fails (so that a
//! flipped length can never pass for a torn tail and silently drop the frames
//! after it), a length over [`WAL_ENTRY_BYTES_MAX`], a bad checksum with frames
//! after it, a checksummed payload that does not decode, or an entry of another
//! height than the header's. The whole file is read at open (its entries are
//! returned in memory anyway).
//!
//! Durability: [`Wal::append`] writes; [`Wal::sync`] (`fdatasync`) makes what
//! was appended durable, and must return before the host acts on the actions
//! after an `Action::PersistWal`. After a failed write or sync the end of the
//! file is unknown, so every later call fails ([`WalError::Failed`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::context::Height;
use crate::error::WalError;
use crate::node::WalEntry;

/// The largest encoded entry a frame may hold, 64 MiB: as large as Stele's
/// largest peer message (a proposal carries its whole batch).
pub const WAL_ENTRY_BYTES_MAX: usize = 64 << 20;
/// The log file's magic bytes.
pub const WAL_MAGIC: &[u8; 7] = b"SBFTWAL";
/// The version of the file layout.
pub const WAL_FILE_FORMAT: u8 = 1;
/// The size of the file header.
pub const WAL_HEADER_BYTES: u64 = 20;
/// The size of a frame header (length, its CRC, the payload's CRC).
pub const WAL_FRAME_HEADER_BYTES: u64 = 12;

/// A torn last frame that [`Wal::open`] cut off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Where the torn frame started (the file's length after the cut).
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes: u64,
}

/// The write-ahead log of one node: the current height's entries in one file.
#[derive(Debug)]
pub struct Wal {
    path: PathBuf,
    file: File,
    height: Height,
    torn_tail: Option<TornTail>,
    failed: bool,
}

impl Wal {
    /// Opens the log at `path`, or creates it (mode 0600) holding no height yet
    /// (`Height(0)`: [`Wal::reset`] it before appending). Returns the log and
    /// its entries, in order; a torn last frame is cut (see
    /// [`Wal::torn_tail`]), any other damage refused.
    pub fn open(path: impl AsRef<Path>) -> Result<(Wal, Vec<WalEntry>), WalError> {
        let path = path.as_ref().to_path_buf();
        let opened = OpenOptions::new().read(true).append(true).open(&path);
        let mut file = match opened {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let file = write_fresh(&path, Height(0))?;
                let wal = Wal {
                    path,
                    file,
                    height: Height(0),
                    torn_tail: None,
                    failed: false,
                };
                return Ok((wal, Vec::new()));
            }
            Err(error) => return Err(io_error("open", &path)(error)),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io_error("read", &path))?;
        let (height, entries, torn_tail) = parse(&path, &bytes)?;
        if let Some(torn) = torn_tail {
            file.set_len(torn.offset)
                .map_err(io_error("truncate", &path))?;
            file.sync_all().map_err(io_error("sync", &path))?;
        }
        let wal = Wal {
            path,
            file,
            height,
            torn_tail,
            failed: false,
        };
        Ok((wal, entries))
    }

    /// The height whose entries the log holds (0: none yet).
    pub fn height(&self) -> Height {
        self.height
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The torn last frame [`Wal::open`] cut off, if any.
    pub fn torn_tail(&self) -> Option<TornTail> {
        self.torn_tail
    }

    /// Appends `entry` (of the log's height) as one frame; not durable until
    /// [`Wal::sync`]. Refuses an entry over [`WAL_ENTRY_BYTES_MAX`].
    pub fn append(&mut self, entry: &WalEntry) -> Result<(), WalError> {
        self.check_usable()?;
        if entry.height != self.height {
            return Err(WalError::WrongHeight {
                wal: self.height,
                entry: entry.height,
            });
        }
        let payload = entry.encode()?;
        if payload.len() > WAL_ENTRY_BYTES_MAX {
            return Err(WalError::EntryTooLarge {
                size: payload.len(),
                max: WAL_ENTRY_BYTES_MAX,
            });
        }
        let length = u32::try_from(payload.len())
            .map_err(|_| WalError::Encode("an entry over 4 GiB".into()))?
            .to_le_bytes();
        let mut frame = Vec::with_capacity(payload.len() + 12);
        frame.extend_from_slice(&length);
        frame.extend_from_slice(&crc32c::crc32c(&length).to_le_bytes());
        frame.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        let written = self.file.write_all(&frame);
        self.fail_on(written, "write")
    }

    /// Makes every appended frame durable (`fdatasync`).
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.check_usable()?;
        let synced = self.file.sync_data();
        self.fail_on(synced, "sync")
    }

    /// Empties the log for `height` (a new height started; the previous one is
    /// committed): writes a fresh file aside, syncs it, renames it over the
    /// log and syncs the folder, so a crash leaves the old log or the new one.
    /// After a failure the log is unusable ([`WalError::Failed`]) until reopened.
    pub fn reset(&mut self, height: Height) -> Result<(), WalError> {
        self.check_usable()?;
        // After a failed reset the handle may name a file renamed away.
        self.file = write_fresh(&self.path, height).inspect_err(|_| self.failed = true)?;
        self.height = height;
        self.torn_tail = None;
        Ok(())
    }

    fn check_usable(&self) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::Failed {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    fn fail_on(&mut self, result: io::Result<()>, op: &'static str) -> Result<(), WalError> {
        result.map_err(|source| {
            self.failed = true;
            WalError::Io {
                op,
                path: self.path.clone(),
                source,
            }
        })
    }
}

/// Maps an IO error of `op` on `path` to a [`WalError::Io`].
fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WalError {
    let path = path.to_path_buf();
    move |source| WalError::Io { op, path, source }
}

fn header(height: Height) -> Vec<u8> {
    let mut header = Vec::with_capacity(20);
    header.extend_from_slice(WAL_MAGIC);
    header.push(WAL_FILE_FORMAT);
    header.extend_from_slice(&height.0.to_le_bytes());
    let crc = crc32c::crc32c(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    header
}

/// Writes a log holding only a header for `height` at `path`, atomically;
/// returns it open for appending.
fn write_fresh(path: &Path, height: Height) -> Result<File, WalError> {
    let io = io_error;
    let Some(name) = path.file_name() else {
        let error = io::Error::new(io::ErrorKind::InvalidInput, "the path names no file");
        return Err(io("create", path)(error));
    };
    let mut name = name.to_os_string();
    name.push(".tmp");
    let aside = path.with_file_name(name);
    match fs::remove_file(&aside) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            return Err(io("remove", &aside)(error))
        }
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.read(true).append(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&aside).map_err(io("create", &aside))?;
    file.write_all(&header(height))
        .map_err(io("write", &aside))?;
    file.sync_all().map_err(io("sync", &aside))?;
    fs::rename(&aside, path).map_err(io("rename", path))?;
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    #[cfg(unix)]
    File::open(folder)
        .and_then(|folder| folder.sync_all())
        .map_err(io("sync the folder of", folder))?;
    Ok(file)
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// The height, entries and torn tail of a log file's `bytes`.
fn parse(path: &Path, bytes: &[u8]) -> Result<(Height, Vec<WalEntry>, Option<TornTail>), WalError> {
    let corrupt = |offset: usize, reason: String| WalError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let header_len = WAL_HEADER_BYTES as usize;
    if bytes.len() < header_len {
        return Err(corrupt(
            0,
            format!("a {}-byte file has no header", bytes.len()),
        ));
    }
    if &bytes[..7] != WAL_MAGIC {
        return Err(corrupt(0, "not a stele-bft write-ahead log".into()));
    }
    if bytes[7] != WAL_FILE_FORMAT {
        return Err(corrupt(7, format!("unknown file format {}", bytes[7])));
    }
    if crc32c::crc32c(&bytes[..16]) != le_u32(bytes, 16) {
        return Err(corrupt(0, "the header's checksum does not match".into()));
    }
    let mut height = [0; 8];
    height.copy_from_slice(&bytes[8..16]);
    let height = Height(u64::from_le_bytes(height));

    let frame_header = WAL_FRAME_HEADER_BYTES as usize;
    let mut entries = Vec::new();
    let mut offset = header_len;
    let torn = |offset: usize| {
        Some(TornTail {
            offset: offset as u64,
            bytes: (bytes.len() - offset) as u64,
        })
    };
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        // A bad checksum is a torn write only where nothing follows but zeros.
        let zeros = || rest.iter().all(|byte| *byte == 0);
        if rest.len() < frame_header {
            return Ok((height, entries, torn(offset)));
        }
        if crc32c::crc32c(&rest[..4]) != le_u32(rest, 4) {
            if zeros() {
                return Ok((height, entries, torn(offset)));
            }
            return Err(corrupt(
                offset,
                "the frame length's checksum does not match".into(),
            ));
        }
        let length = le_u32(rest, 0) as usize;
        if length > WAL_ENTRY_BYTES_MAX {
            return Err(corrupt(
                offset,
                format!(
                    "a {length}-byte frame is over WAL_ENTRY_BYTES_MAX ({WAL_ENTRY_BYTES_MAX})"
                ),
            ));
        }
        let Some(payload) = rest.get(frame_header..frame_header + length) else {
            return Ok((height, entries, torn(offset)));
        };
        if crc32c::crc32c(payload) != le_u32(rest, 8) {
            if zeros() || frame_header + length == rest.len() {
                return Ok((height, entries, torn(offset)));
            }
            return Err(corrupt(
                offset,
                "the frame's checksum does not match".into(),
            ));
        }
        let entry =
            WalEntry::decode(payload).map_err(|error| corrupt(offset, error.to_string()))?;
        if entry.height != height {
            return Err(corrupt(
                offset,
                format!(
                    "an entry of height {} in the log of height {height}",
                    entry.height
                ),
            ));
        }
        entries.push(entry);
        offset += frame_header + length;
    }
    Ok((height, entries, None))
}
