//! [`TransferData`]: a Raft snapshot as openraft hands it around, either a
//! file being received, or a snapshot to send composed of [`Piece`]s: the
//! kept snapshot file's header and KV state, then the ledger's own bytes up
//! to the snapshot (runs of raw frames read from the chunk files at send
//! time). The ledger is never copied to build or keep a snapshot: a kept
//! snapshot costs O(state) on disk, and what crosses the wire is unchanged
//! (`transfer.rs` describes it).
//!
//! Invariants kept: the pieces name byte ranges of committed batches, which
//! never change (a truncation stops at the commit point; a rename, a move to
//! the archive or a newer snapshot leaves an open file readable), so a send
//! reads the same bytes however long it takes; and a snapshot holds at most
//! one chunk file open at a time (chunks are opened as the send reaches
//! them), whatever the ledger's length.

use std::fs::File;
use std::future::Future as _;
use std::io::{self, SeekFrom};
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// Most bytes one read of a [`TransferData::Pieces`] takes from disk (the
/// chunk sender reads `SNAPSHOT_CHUNK_BYTES` through several reads).
pub const TRANSFER_READ_BYTES_MAX: usize = 1 << 20;

/// The ledger folder the [`Piece::Chunk`]s of one snapshot are read from,
/// with the one chunk file it holds open.
#[derive(Debug)]
pub struct ChunkSource {
    dir: PathBuf,
    state: Mutex<Opened>,
}

/// The folder's listing, and the chunk open now (by its first seqno).
#[derive(Debug, Default)]
struct Opened {
    listing: crate::raft::log_store::Chunks,
    chunk: Option<(u64, Arc<File>)>,
}

impl ChunkSource {
    /// Chunks of the ledger folder `dir`, none open yet.
    pub fn new(dir: PathBuf) -> Self {
        ChunkSource {
            dir,
            state: Mutex::new(Opened::default()),
        }
    }

    /// The chunk starting at `chunk_first`, open (the one open before is
    /// closed unless a read still holds it).
    fn open(&self, chunk_first: u64) -> io::Result<Arc<File>> {
        let mut state = crate::sync::lock(&self.state);
        if let Some((first, file)) = &state.chunk {
            if *first == chunk_first {
                return Ok(Arc::clone(file));
            }
        }
        let (file, _) =
            crate::raft::log_store::open_chunk(&self.dir, chunk_first, &mut state.listing)
                .map_err(io::Error::other)?;
        let file = Arc::new(file);
        state.chunk = Some((chunk_first, Arc::clone(&file)));
        Ok(file)
    }
}

/// A stretch of the bytes of a snapshot to send.
#[derive(Debug, Clone)]
pub enum Piece {
    /// `length` bytes from `offset` of the ledger chunk starting at
    /// `chunk_first`, opened when the send reaches it.
    Chunk {
        /// Where the chunk is looked up.
        source: Arc<ChunkSource>,
        /// The chunk's first seqno (its name).
        chunk_first: u64,
        /// Where the stretch starts in the chunk.
        offset: u64,
        /// Its length in bytes.
        length: u64,
    },
    /// `length` bytes of `file` from `offset`.
    File {
        /// Open, so a rename or deletion does not affect the send.
        file: Arc<File>,
        /// Where the stretch starts in the file.
        offset: u64,
        /// Its length in bytes.
        length: u64,
    },
    /// Bytes held in memory (batches not yet in a chunk file).
    Bytes(Arc<[u8]>),
}

impl Piece {
    /// The piece's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Piece::Chunk { length, .. } | Piece::File { length, .. } => *length,
            Piece::Bytes(bytes) => bytes.len() as u64,
        }
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads up to `wanted` bytes from `at` within the piece (blocking).
    fn read(&self, at: u64, wanted: usize) -> io::Result<Vec<u8>> {
        let left = self.len().saturating_sub(at);
        let length = usize::try_from(left).unwrap_or(usize::MAX).min(wanted);
        let (file, offset) = match self {
            Piece::Chunk {
                source,
                chunk_first,
                offset,
                ..
            } => (source.open(*chunk_first)?, *offset),
            Piece::File { file, offset, .. } => (Arc::clone(file), *offset),
            Piece::Bytes(bytes) => {
                let start = usize::try_from(at).map_err(io::Error::other)?;
                return bytes
                    .get(start..start + length)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| io::Error::other("a read past the end of a piece"));
            }
        };
        let mut bytes = vec![0; length];
        file.read_exact_at(&mut bytes, offset + at)?;
        Ok(bytes)
    }
}

/// Appends `piece` to `pieces`, merging it into the last one when both are
/// consecutive stretches of the same chunk.
pub fn push_piece(pieces: &mut Vec<Piece>, piece: Piece) {
    if piece.is_empty() {
        return;
    }
    if let (
        Some(Piece::Chunk {
            source: last_source,
            chunk_first: last_chunk,
            offset: last_offset,
            length: last_length,
        }),
        Piece::Chunk {
            source,
            chunk_first,
            offset,
            length,
        },
    ) = (pieces.last_mut(), &piece)
    {
        if Arc::ptr_eq(last_source, source)
            && last_chunk == chunk_first
            && *last_offset + *last_length == *offset
        {
            *last_length += length;
            return;
        }
    }
    pieces.push(piece);
}

/// The data of a Raft snapshot: what openraft's chunk sender reads (and
/// seeks in) and its chunk receiver writes.
#[derive(Debug)]
pub enum TransferData {
    /// A file: a transfer being received.
    File(tokio::fs::File),
    /// A snapshot to send, read piece after piece.
    Pieces(PieceReader),
}

impl TransferData {
    /// A snapshot to send made of `pieces`, read from their start.
    pub fn pieces(pieces: Vec<Piece>) -> Self {
        TransferData::Pieces(PieceReader::new(pieces))
    }
}

/// Reads a sequence of pieces as one stream; seeks anywhere in it. Reads
/// run on tokio's blocking threads, one at a time.
#[derive(Debug)]
pub struct PieceReader {
    pieces: Vec<Piece>,
    /// Where each piece starts in the stream.
    starts: Vec<u64>,
    length: u64,
    position: u64,
    /// The read under way: the position it reads from, and its task.
    reading: Option<(u64, tokio::task::JoinHandle<io::Result<Vec<u8>>>)>,
}

impl PieceReader {
    fn new(pieces: Vec<Piece>) -> Self {
        let mut starts = Vec::with_capacity(pieces.len());
        let mut length = 0u64;
        for piece in &pieces {
            starts.push(length);
            length += piece.len();
        }
        PieceReader {
            pieces,
            starts,
            length,
            position: 0,
            reading: None,
        }
    }

    /// The piece holding stream byte `position` and the offset within it.
    fn piece_at(&self, position: u64) -> Option<(&Piece, u64)> {
        let index = self.starts.partition_point(|&start| start <= position);
        let index = index.checked_sub(1)?;
        let piece = self.pieces.get(index)?;
        let within = position - self.starts[index];
        (within < piece.len()).then_some((piece, within))
    }
}

impl AsyncRead for PieceReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // A read started before a seek is of no use any more.
        if this
            .reading
            .as_ref()
            .is_some_and(|(from, _)| *from != this.position)
        {
            this.reading = None;
        }
        if this.reading.is_none() {
            let Some((piece, within)) = this.piece_at(this.position) else {
                return Poll::Ready(Ok(())); // the end of the stream
            };
            let piece = piece.clone();
            let wanted = buf.remaining().min(TRANSFER_READ_BYTES_MAX);
            let task = tokio::task::spawn_blocking(move || piece.read(within, wanted));
            this.reading = Some((this.position, task));
        }
        let (_, task) = this.reading.as_mut().expect("a read was just started");
        let read = ready!(Pin::new(task).poll(cx));
        this.reading = None;
        let bytes = read.map_err(io::Error::other)??;
        // Polled again with a smaller buffer than the read was started for:
        // what does not fit is read again next time.
        let fits = bytes.len().min(buf.remaining());
        buf.put_slice(&bytes[..fits]);
        this.position += fits as u64;
        Poll::Ready(Ok(()))
    }
}

impl AsyncSeek for PieceReader {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        let target = match position {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => this.length.checked_add_signed(delta),
            SeekFrom::Current(delta) => this.position.checked_add_signed(delta),
        };
        this.position = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to before the start of a snapshot",
            )
        })?;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.position))
    }
}

fn read_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "a snapshot to send is read, not written",
    )
}

impl AsyncRead for TransferData {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TransferData::File(file) => Pin::new(file).poll_read(cx, buf),
            TransferData::Pieces(pieces) => Pin::new(pieces).poll_read(cx, buf),
        }
    }
}

impl AsyncSeek for TransferData {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        match self.get_mut() {
            TransferData::File(file) => Pin::new(file).start_seek(position),
            TransferData::Pieces(pieces) => Pin::new(pieces).start_seek(position),
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        match self.get_mut() {
            TransferData::File(file) => Pin::new(file).poll_complete(cx),
            TransferData::Pieces(pieces) => Pin::new(pieces).poll_complete(cx),
        }
    }
}

impl AsyncWrite for TransferData {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TransferData::File(file) => Pin::new(file).poll_write(cx, buf),
            TransferData::Pieces(_) => Poll::Ready(Err(read_only())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TransferData::File(file) => Pin::new(file).poll_flush(cx),
            TransferData::Pieces(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TransferData::File(file) => Pin::new(file).poll_shutdown(cx),
            TransferData::Pieces(_) => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

    use super::*;

    /// Two stretches of a chunk, a piece held in memory, and a stretch of
    /// an open file (as a kept snapshot's head is sent).
    fn sample() -> (tempfile::TempDir, Vec<Piece>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..=255u8)
            .cycle()
            .take(3 * TRANSFER_READ_BYTES_MAX)
            .collect();
        let chunk_path = dir.path().join("ledger_1");
        std::fs::write(&chunk_path, &content).unwrap();
        let source = Arc::new(ChunkSource::new(dir.path().to_owned()));
        let chunk = |offset, length| Piece::Chunk {
            source: Arc::clone(&source),
            chunk_first: 1,
            offset,
            length,
        };
        let mut pieces = Vec::new();
        let first = TRANSFER_READ_BYTES_MAX as u64 + 7;
        push_piece(&mut pieces, chunk(3, 100));
        // Consecutive in the same chunk: merged.
        push_piece(&mut pieces, chunk(103, first));
        push_piece(&mut pieces, Piece::Bytes(Arc::from(&b"in memory"[..])));
        push_piece(&mut pieces, Piece::Bytes(Arc::from(&b""[..])));
        push_piece(
            &mut pieces,
            Piece::File {
                file: Arc::new(File::open(&chunk_path).unwrap()),
                offset: 10,
                length: 2 * TRANSFER_READ_BYTES_MAX as u64,
            },
        );
        let mut expected = content[3..103 + first as usize].to_vec();
        expected.extend_from_slice(b"in memory");
        expected.extend_from_slice(&content[10..10 + 2 * TRANSFER_READ_BYTES_MAX]);
        (dir, pieces, expected)
    }

    #[test]
    fn consecutive_stretches_of_a_chunk_merge_and_empty_pieces_go() {
        let (_file, pieces, _) = sample();
        assert_eq!(pieces.len(), 3, "{pieces:?}");
        assert_eq!(pieces[0].len(), TRANSFER_READ_BYTES_MAX as u64 + 107);
    }

    #[tokio::test]
    async fn the_pieces_read_as_one_stream_and_seek_like_a_file() {
        let (_file, pieces, expected) = sample();
        let mut data = TransferData::pieces(pieces);
        // What openraft's chunk sender does: the length, then chunks from offsets.
        let end = data.seek(SeekFrom::End(0)).await.unwrap();
        assert_eq!(end, expected.len() as u64);
        let mut all = Vec::new();
        data.seek(SeekFrom::Start(0)).await.unwrap();
        data.read_to_end(&mut all).await.unwrap();
        assert!(all == expected, "the stream differs from its pieces");
        for at in [0u64, 99, 100, 1 << 20, end - 5] {
            data.seek(SeekFrom::Start(at)).await.unwrap();
            let mut chunk = vec![0; 4096];
            let mut filled = 0;
            while filled < chunk.len() {
                let read = data.read(&mut chunk[filled..]).await.unwrap();
                if read == 0 {
                    break;
                }
                filled += read;
            }
            let want = &expected[at as usize..(at as usize + 4096).min(expected.len())];
            assert_eq!(&chunk[..filled], want, "reading from {at}");
        }
        assert!(data
            .seek(SeekFrom::Current(-(end as i64) - 1))
            .await
            .is_err());
        let mut past = [0u8; 8];
        data.seek(SeekFrom::Start(end + 10)).await.unwrap();
        assert_eq!(
            data.read(&mut past).await.unwrap(),
            0,
            "past the end: nothing"
        );
    }

    #[tokio::test]
    async fn a_snapshot_to_send_refuses_writes() {
        let mut data = TransferData::pieces(Vec::new());
        let error = tokio::io::AsyncWriteExt::write_all(&mut data, b"x")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Unsupported);
    }
}
