//! The snapshot thread: KV snapshots of the committed state, bound to the
//! signed checkpoint at their seqno (`snapshot.rs`), written at nice 19 off
//! the commit path when [`Replica`] says one is due.

use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::EngineConfig;
use crate::replica::Replica;
use crate::sync::lock;
use crate::ConsensusError;

/// Starts the snapshot thread if `config` asks for snapshots.
pub(crate) fn spawn_snapshotter(
    replica: &Arc<Replica>,
    config: &EngineConfig,
) -> Result<Option<JoinHandle<()>>, ConsensusError> {
    let Some(dir) = config
        .snapshot_dir
        .clone()
        .filter(|_| config.snapshot_interval_tx > 0)
    else {
        return Ok(None);
    };
    let (sender, receiver) = sync_channel::<u64>(1);
    *lock(&replica.snapshots) = Some(sender);
    let weak = Arc::downgrade(replica);
    let thread = std::thread::Builder::new()
        .name("stele-snapshot".to_owned())
        .spawn(move || {
            crate::paced::lower_this_thread();
            while let Ok(_seqno) = receiver.recv() {
                let Some(replica) = weak.upgrade() else {
                    break;
                };
                write_snapshot(&replica, &dir);
            }
        })
        .map_err(|error| {
            ConsensusError::Stopped(format!("spawning the snapshot thread: {error}"))
        })?;
    Ok(Some(thread))
}

/// Writes a snapshot of the committed state (on the snapshot thread).
fn write_snapshot(replica: &Replica, dir: &std::path::Path) {
    // Set aside under the lock (O(1)), sorted after releasing it.
    let taken = {
        let store = replica.read_store();
        let version = store.committed_version();
        store.freeze(version)
    };
    let snapshot = match taken.map(stele_kv::Frozen::into_snapshot) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            tracing::warn!(%error, "cannot take a snapshot");
            return;
        }
    };
    let held = {
        let history = replica.read_history();
        history
            .note_ending_at(snapshot.version())
            .map(str::to_owned)
            .zip(history.frontier_at(snapshot.version()))
    };
    let Some((note, frontier)) = held else {
        tracing::warn!(
            seqno = snapshot.version(),
            "no checkpoint ends at the snapshot's seqno, or its tree edge left memory"
        );
        return;
    };
    match crate::snapshot::write(dir, &snapshot, &note, &frontier) {
        Ok(path) => {
            tracing::info!(seqno = snapshot.version(), path = %path.display(), "wrote a snapshot")
        }
        Err(error) => tracing::warn!(%error, "cannot write a snapshot"),
    }
}
