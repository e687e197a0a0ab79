//! The background fetch of a resumed ledger's skipped seqnos (issue P10): a
//! node that joined from a resume transfer serves at once, and fills the
//! seqnos before its snapshot from its peers while it runs.
//!
//! - [`serve`] answers a peer's [`LedgerFetch`]: committed batches read back
//!   from this node's ledger by seqno (the log's slots, or the batches before
//!   the log's base), up to [`LEDGER_FETCH_BYTES_MAX`].
//! - [`LedgerSource`] is how a node asks a peer: the peer transport
//!   ([`PeerNetwork`]), or a test's twin.
//! - [`fetch_skipped`] is the fetching task: it asks the members in turn for
//!   the batches from where the ledger's first gap starts, checks them
//!   ([`GapCheck`]: every signed checkpoint with the service key, every root
//!   against the tree rebuilt from seqno 1, the last against the resume
//!   entry's), writes the checked ones as a committed chunk and has the
//!   ledger adopt it, then tells the history that receipts for them can be
//!   served.
//!
//! Invariants kept: nothing a peer sends reaches the ledger before it passes
//! the check; the gap only shrinks from its front; a crash at any point
//! leaves a valid ledger (a chunk written and not adopted is taken at the
//! next open; one half written is deleted when the fetch starts again).

use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver as _;
use stele_history::MerkleTree;
use stele_ledger::{BatchEntry, GapCheck, Genesis, Resumption, SignatureEntry};

use super::log_store::{LedgerLogReader, LogWriter};
use super::network::PeerNetwork;
use super::types::{
    LedgerFetch, LedgerFetched, SteleNode, SteleRaftHandle, LEDGER_FETCH_BYTES_MAX,
};
use crate::replica::Replica;
use crate::sequencer::BoxFuture;
use crate::ConsensusError;

/// The longest wait between two looks for a gap when the ledger has none (an
/// install of a resume transfer wakes the fetch at once).
pub const FETCH_IDLE_MS: u64 = 2_000;

/// The wait after every member failed to give batches, before asking again.
pub const FETCH_RETRY_MS: u64 = 1_000;

/// How a node asks a peer for committed ledger batches.
pub trait LedgerSource: Send + Sync + 'static {
    /// Asks member `peer` (at `node`) for `request`.
    fn fetch(
        &self,
        peer: u64,
        node: &SteleNode,
        request: LedgerFetch,
    ) -> BoxFuture<'_, Result<LedgerFetched, String>>;
}

impl LedgerSource for PeerNetwork {
    fn fetch(
        &self,
        peer: u64,
        node: &SteleNode,
        request: LedgerFetch,
    ) -> BoxFuture<'_, Result<LedgerFetched, String>> {
        let client = self.peer_client(peer, node);
        Box::pin(async move { client.fetch_ledger(request).await })
    }
}

/// This node's answer to a peer's `request`: committed batches from the one
/// holding `from_seqno`, none past `through_seqno` or the commit point, up to
/// [`LEDGER_FETCH_BYTES_MAX`] (at least one). Empty if this node does not
/// hold `from_seqno`. Blocking (reads the ledger).
pub(crate) fn serve(
    reader: &LedgerLogReader,
    committed_seqno: u64,
    request: LedgerFetch,
) -> Result<LedgerFetched, ConsensusError> {
    let last = request.through_seqno.min(committed_seqno);
    let mut batches = Vec::new();
    let mut bytes = 0u64;
    let mut seqno = request.from_seqno.max(1);
    while seqno <= last && bytes < LEDGER_FETCH_BYTES_MAX {
        let Some(batch) = reader.batch_holding(seqno)? else {
            break;
        };
        let end = batch.batch.last_seqno();
        if end > last {
            break;
        }
        bytes += (batch.batch.approx_bytes() + batch.signature.checkpoint.len()) as u64;
        if bytes > LEDGER_FETCH_BYTES_MAX && !batches.is_empty() {
            break;
        }
        batches.push((batch.batch, batch.signature));
        seqno = end + 1;
    }
    Ok(LedgerFetched { batches })
}

/// What the fetching task works with.
pub(crate) struct Fetcher {
    pub(crate) source: Arc<dyn LedgerSource>,
    pub(crate) raft: SteleRaftHandle,
    pub(crate) log: LogWriter,
    pub(crate) reader: LedgerLogReader,
    pub(crate) replica: Arc<Replica>,
    pub(crate) genesis: Genesis,
    pub(crate) node_id: u64,
}

/// Runs `blocking` on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    blocking: impl FnOnce() -> Result<T, ConsensusError> + Send + 'static,
) -> Result<T, ConsensusError> {
    tokio::task::spawn_blocking(blocking)
        .await
        .map_err(|error| ConsensusError::Stopped(format!("a ledger fetch task: {error}")))?
}

/// A written chunk being adopted: the gap's new `held_before`.
type Writing = tokio::task::JoinHandle<Result<u64, ConsensusError>>;

/// Fills the ledger's gaps from peers, for as long as the Raft engine runs.
/// The next run of batches is fetched and checked while the last is written.
pub(crate) async fn fetch_skipped(fetcher: Fetcher) {
    let dir = fetcher.log.dir();
    stele_ledger::fill::remove_unfinished_fills(&dir);
    // The check of the current gap: where it resumes, and the check itself.
    let mut check: Option<(u64, GapCheck)> = None;
    let mut writing: Option<Writing> = None;
    let mut turn = 0usize;
    loop {
        if fetcher.raft.metrics().borrow_watched().state == openraft::ServerState::Shutdown {
            return;
        }
        let done = check.as_ref().is_some_and(|(_, check)| check.is_done());
        if check.is_none() || done {
            // Everything checked is written (or given up, and fetched again
            // from the ledger's gap) before the gap is read again.
            finish(&fetcher, writing.take()).await;
            check = match next_check(&fetcher).await {
                Some(next) => Some(next),
                None => {
                    let idle = Duration::from_millis(FETCH_IDLE_MS);
                    fetcher.log.rebased_or(idle).await;
                    continue;
                }
            };
        }
        let (resumes_at, gap_check) = check.as_mut().expect("set just above");
        let request = LedgerFetch {
            from_seqno: gap_check.next_seqno(),
            through_seqno: *resumes_at,
        };
        let Some(run) = fetch_checked(&fetcher, gap_check, request, &mut turn).await else {
            tokio::time::sleep(Duration::from_millis(FETCH_RETRY_MS)).await;
            continue;
        };
        if !finish(&fetcher, writing.take()).await {
            // The check is ahead of the ledger: start it again from the ledger.
            check = None;
            continue;
        }
        let log = fetcher.log.clone();
        let genesis = fetcher.genesis.clone();
        writing = Some(tokio::task::spawn_blocking(move || {
            let filled = stele_ledger::write_filled_chunk(&log.dir(), &genesis, &run)?;
            let path = filled.path.clone();
            let gap = log.adopt_filled(filled).inspect_err(|_| {
                // Not adopted: not left for the next open to take either.
                let _ = std::fs::remove_file(&path);
            })?;
            Ok(gap.held_before)
        }));
    }
}

/// Waits for `writing`, if any, and tells the history what is held now;
/// false if it failed.
async fn finish(fetcher: &Fetcher, writing: Option<Writing>) -> bool {
    let Some(writing) = writing else {
        return true;
    };
    let written = writing
        .await
        .map_err(|error| ConsensusError::Stopped(format!("a ledger fetch write: {error}")))
        .and_then(|written| written);
    match written {
        Ok(held_before) => {
            fetcher.replica.write_history().filled(held_before);
            true
        }
        Err(error) => {
            tracing::warn!(%error, "the ledger fetch could not keep what it fetched");
            false
        }
    }
}

/// The check of the ledger's first gap, if it has one.
async fn next_check(fetcher: &Fetcher) -> Option<(u64, GapCheck)> {
    let log = fetcher.log.clone();
    let gap = match blocking(move || log.first_gap()).await {
        Ok(Some(gap)) => gap,
        Ok(None) => return None,
        Err(error) => {
            tracing::warn!(%error, "the ledger fetch cannot read the ledger's gap");
            return None;
        }
    };
    // What is held before the gap (a history replaced by a later install
    // starts with nothing filled).
    fetcher.replica.write_history().filled(gap.held_before);
    match start_check(fetcher, &gap).await {
        Ok(started) => Some((gap.seqno, started)),
        Err(error) => {
            tracing::warn!(%error, "the ledger fetch cannot start its check");
            None
        }
    }
}

/// A check of the batches after `gap.held_before`, with the tree of the
/// batches the ledger holds before it (read back: a fetch that starts again
/// after a restart reads what it fetched before).
async fn start_check(fetcher: &Fetcher, gap: &Resumption) -> Result<GapCheck, ConsensusError> {
    let reader = fetcher.reader.clone();
    let genesis = fetcher.genesis.clone();
    let gap = gap.clone();
    blocking(move || {
        let mut tree = MerkleTree::new();
        let mut seqno = 1;
        while seqno <= gap.held_before {
            let batch = reader
                .batch_holding(seqno)?
                .ok_or_else(|| ConsensusError::Replay {
                    seqno,
                    reason: "a batch fetched before is not in the ledger".to_owned(),
                })?;
            tree.append_leaf_hashes(&batch.batch.leaf_hashes());
            let size = tree.size();
            tree.forget_before(size);
            seqno = batch.batch.last_seqno() + 1;
        }
        Ok(GapCheck::new(&genesis, &gap, tree)?)
    })
    .await
}

/// Asks the members in turn until one gives batches that pass the check:
/// those batches, or `None` if no member gave any.
async fn fetch_checked(
    fetcher: &Fetcher,
    check: &mut GapCheck,
    request: LedgerFetch,
    turn: &mut usize,
) -> Option<Vec<(BatchEntry, SignatureEntry)>> {
    let peers: Vec<(u64, SteleNode)> = {
        let metrics = fetcher.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics
            .membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != fetcher.node_id)
            .map(|(id, node)| (*id, node.clone()))
            .collect()
    };
    for attempt in 0..peers.len() {
        let (peer, node) = &peers[(*turn + attempt) % peers.len()];
        let fetched = match fetcher.source.fetch(*peer, node, request).await {
            Ok(fetched) => fetched,
            Err(error) => {
                tracing::debug!(peer, %error, "a ledger fetch failed");
                continue;
            }
        };
        let mut checked = fetched.batches;
        let (passed, refused) = tokio::task::block_in_place(|| check.check_run(&checked));
        if let Some(reason) = refused {
            let seqno = checked
                .get(passed)
                .map_or(0, |(batch, _)| batch.first_seqno);
            tracing::warn!(peer, seqno, %reason, "refused a fetched batch");
        }
        checked.truncate(passed);
        if !checked.is_empty() {
            *turn = (*turn + attempt) % peers.len();
            return Some(checked);
        }
    }
    *turn = turn.wrapping_add(1);
    None
}
