//! The write-ahead log on disk (`stele_bft::Wal`) with entries from real runs
//! of four `BftNode`s (as in tests/node.rs): every kind of input the core logs
//! round-trips, a reopened log returns what was appended, a torn tail is cut
//! at every byte offset, damage before the last frame is refused naming the
//! offset, and a node recovered from the reopened file re-sends its votes.

mod common;

use common::{config, keys};
use std::collections::{BTreeSet, VecDeque};
use std::fs;
use std::path::Path;

use arc_malachitebft_core_types::{NilOrVal, PolkaCertificate, PolkaSignature, VoteType};
use ed25519_dalek::SigningKey;
use stele_bft::{
    AcceptAll, Action, BftNode, Event, Height, Message, Round, Timeout, ValidatorId, Value, Wal,
    WalEntry, WalEntryKind, WalError,
};

fn node(keys: &[SigningKey], i: usize) -> BftNode {
    BftNode::new(config(keys, i, false), Box::new(AcceptAll), Height(1), 0).expect("valid")
}

struct Run {
    wals: Vec<Vec<WalEntry>>,
    sent: Vec<(usize, Message)>,
}

/// Four nodes over a FIFO queue (no timeouts fire) until every node decided
/// height 1.
fn run_height_1(keys: &[SigningKey]) -> Run {
    let mut nodes: Vec<BftNode> = (0..4).map(|i| node(keys, i)).collect();
    let mut run = Run {
        wals: vec![Vec::new(); 4],
        sent: Vec::new(),
    };
    let mut queue: VecDeque<(usize, Event)> = (0..4).map(|i| (i, Event::Start)).collect();
    while let Some((i, event)) = queue.pop_front() {
        if nodes[i].height() > Height(1) {
            continue;
        }
        for action in nodes[i].handle(event) {
            match action {
                Action::PersistWal(entry) => run.wals[i].push(entry),
                Action::Broadcast(message) => {
                    run.sent.push((i, message.clone()));
                    for to in (0..4).filter(|to| *to != i) {
                        let from = ValidatorId(i as u64 + 1);
                        queue.push_back((to, Event::Message(from, message.clone())));
                    }
                }
                Action::GetValue { height, round } => {
                    let body = format!("example.com/log\n{height}\nroot-{round}\n");
                    let value = Value::new(body, format!("batch {height} {round}").into_bytes())
                        .expect("well formed");
                    queue.push_back((i, Event::ValueToPropose(height, round, value)));
                }
                _ => {}
            }
        }
    }
    run
}

/// Height-1 entries of a run, plus those of a lone node whose propose timeout
/// fires and which is then sent the polka certificate of the run's prevotes:
/// between them, every kind of input the core logs.
fn real_entries(keys: &[SigningKey]) -> (Run, Vec<WalEntry>) {
    let run = run_height_1(keys);
    let mut entries: Vec<WalEntry> = run.wals.concat();
    let prevotes: Vec<_> = run
        .sent
        .iter()
        .filter_map(|(_, message)| match message {
            Message::Vote(vote)
                if vote.vote_type == VoteType::Prevote
                    && vote.height == Height(1)
                    && vote.round == Round::new(0) =>
            {
                Some(vote.clone())
            }
            _ => None,
        })
        .collect();
    let NilOrVal::Val(value_id) = prevotes[0].value_id.clone() else {
        panic!("round 0 prevotes a value");
    };
    let certificate = PolkaCertificate {
        height: Height(1),
        round: Round::new(0),
        value_id,
        polka_signatures: prevotes
            .iter()
            .map(|vote| PolkaSignature::new(vote.validator, vote.signature))
            .collect(),
    };
    let mut lone = node(keys, 1);
    let mut actions = lone.handle(Event::Start);
    actions.extend(lone.handle(Event::TimeoutElapsed(
        Height(1),
        Timeout::propose(Round::new(0)),
    )));
    actions.extend(lone.handle(Event::Message(
        ValidatorId(1),
        Message::PolkaCertificate(certificate),
    )));
    entries.extend(actions.into_iter().filter_map(|action| match action {
        Action::PersistWal(entry) => Some(entry),
        _ => None,
    }));
    entries.retain(|entry| entry.height == Height(1));
    (run, entries)
}

/// The height-1 entries node `i` logged, written to a fresh log in `folder`;
/// returns the log's path and the offset of each frame.
fn write_log(folder: &Path, entries: &[WalEntry]) -> (std::path::PathBuf, Vec<u64>) {
    let path = folder.join("bft.wal");
    let (mut wal, found) = Wal::open(&path).expect("a new log");
    assert!(found.is_empty());
    wal.reset(Height(1)).expect("reset");
    let mut offsets = Vec::new();
    for entry in entries {
        offsets.push(fs::metadata(&path).expect("stat").len());
        wal.append(entry).expect("append");
    }
    wal.sync().expect("sync");
    (path, offsets)
}

#[test]
fn every_logged_kind_from_a_real_run_round_trips() {
    let (_, entries) = real_entries(&keys());
    let kinds: BTreeSet<WalEntryKind> = entries.iter().map(WalEntry::kind).collect();
    let expected = BTreeSet::from([
        WalEntryKind::Vote,
        WalEntryKind::Proposal,
        WalEntryKind::ProposedValue,
        WalEntryKind::TimeoutElapsed,
        WalEntryKind::PolkaCertificate,
    ]);
    assert_eq!(kinds, expected, "the run logs every kind");
    for entry in &entries {
        let bytes = entry.encode().expect("a logged input encodes");
        assert_eq!(&WalEntry::decode(&bytes).expect("decodes"), entry);
    }
}

#[test]
fn a_reopened_log_returns_what_was_appended() {
    let (_, entries) = real_entries(&keys());
    let folder = tempfile::tempdir().expect("a temporary folder");
    let (path, _) = write_log(folder.path(), &entries);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (mut wal, found) = Wal::open(&path).expect("reopen");
    assert_eq!(found, entries);
    assert_eq!(wal.height(), Height(1));
    assert_eq!(wal.torn_tail(), None);

    wal.append(&entries[0]).expect("append after reopen");
    wal.sync().expect("sync");
    let (mut wal, found) = Wal::open(&path).expect("reopen");
    assert_eq!(found.len(), entries.len() + 1);
    assert_eq!(found.last(), Some(&entries[0]));

    wal.reset(Height(2)).expect("reset");
    assert!(!folder.path().join("bft.wal.tmp").exists());
    let (mut wal, found) = Wal::open(&path).expect("reopen");
    assert!(found.is_empty());
    assert_eq!(wal.height(), Height(2));
    assert!(matches!(
        wal.append(&entries[0]),
        Err(WalError::WrongHeight {
            wal: Height(2),
            entry: Height(1)
        })
    ));
}

#[test]
fn a_torn_tail_is_cut_at_every_offset_of_the_last_frame() {
    let (_, entries) = real_entries(&keys());
    let entries = &entries[..4];
    let folder = tempfile::tempdir().expect("a temporary folder");
    let (path, offsets) = write_log(folder.path(), entries);
    let whole = fs::read(&path).expect("read");
    let last = offsets[3] as usize;
    for cut in last..whole.len() {
        fs::write(&path, &whole[..cut]).expect("write");
        let (wal, found) = Wal::open(&path).expect("a torn tail is not an error");
        assert_eq!(found, entries[..3], "cut at {cut}");
        let torn = wal.torn_tail();
        if cut == last {
            assert_eq!(torn, None);
        } else {
            assert_eq!(
                torn.map(|t| (t.offset, t.bytes)),
                Some((last as u64, (cut - last) as u64))
            );
        }
        assert_eq!(
            fs::metadata(&path).expect("stat").len(),
            last as u64,
            "cut at {cut}"
        );
    }
    // The cut log takes appends again.
    let (mut wal, _) = Wal::open(&path).expect("open");
    wal.append(&entries[3]).expect("append");
    wal.sync().expect("sync");
    assert_eq!(Wal::open(&path).expect("open").1, entries);

    // A file extended with zeros (size written, data not) and a damaged last
    // frame are torn writes too.
    let mut zeros = whole.clone();
    zeros.extend([0; 100]);
    fs::write(&path, &zeros).expect("write");
    let (wal, found) = Wal::open(&path).expect("open");
    assert_eq!(
        (found.as_slice(), wal.torn_tail().map(|t| t.bytes)),
        (entries, Some(100))
    );
    let mut damaged = whole.clone();
    let end = damaged.len() - 1;
    damaged[end] ^= 0x40;
    fs::write(&path, &damaged).expect("write");
    let (wal, found) = Wal::open(&path).expect("open");
    assert_eq!(found, entries[..3]);
    assert_eq!(wal.torn_tail().map(|t| t.offset), Some(last as u64));
}

#[test]
fn a_flipped_byte_before_the_last_frame_is_refused_naming_the_offset() {
    let (_, entries) = real_entries(&keys());
    let folder = tempfile::tempdir().expect("a temporary folder");
    let (path, offsets) = write_log(folder.path(), &entries[..3]);
    let whole = fs::read(&path).expect("read");
    for (frame, window) in offsets.windows(2).enumerate() {
        let (start, end) = (window[0] as usize, window[1] as usize);
        for at in start..end {
            let mut bad = whole.clone();
            bad[at] ^= 0x01;
            fs::write(&path, &bad).expect("write");
            match Wal::open(&path) {
                Err(error @ WalError::Corrupt { offset, .. }) => {
                    assert_eq!(offset, start as u64, "frame {frame}, byte {at}");
                    let text = error.to_string();
                    assert!(text.contains("bft.wal") && text.contains(&format!("offset {start}")));
                }
                other => panic!("frame {frame}, byte {at}: {other:?}"),
            }
        }
    }
    // A damaged header is refused too.
    for at in 0..20 {
        let mut bad = whole.clone();
        bad[at] ^= 0x80;
        fs::write(&path, &bad).expect("write");
        assert!(
            matches!(Wal::open(&path), Err(WalError::Corrupt { .. })),
            "header byte {at}"
        );
    }
}

#[test]
fn a_node_recovered_from_the_reopened_log_resends_its_votes() {
    let keys = keys();
    let run = run_height_1(&keys);
    // Node 3 crashes before its host commits height 1: its log holds height 1.
    let node = 3;
    let logged: Vec<WalEntry> = run.wals[node]
        .iter()
        .filter(|entry| entry.height == Height(1))
        .cloned()
        .collect();
    let folder = tempfile::tempdir().expect("a temporary folder");
    let (path, _) = write_log(folder.path(), &logged);
    let (wal, entries) = Wal::open(&path).expect("reopen");
    assert_eq!(entries, logged);
    let (_, actions) = BftNode::recover(
        config(&keys, node, false),
        Box::new(AcceptAll),
        wal.height(),
        0,
        &entries,
    )
    .expect("replay does not diverge");
    let resent: Vec<&Message> = actions
        .iter()
        .filter_map(|action| match action {
            Action::Broadcast(message @ Message::Vote(_)) => Some(message),
            _ => None,
        })
        .collect();
    let own_votes: Vec<&Message> = run
        .sent
        .iter()
        .filter(|(from, message)| {
            *from == node && matches!(message, Message::Vote(v) if v.height == Height(1))
        })
        .map(|(_, message)| message)
        .collect();
    assert!(!own_votes.is_empty());
    for vote in own_votes {
        assert!(resent.contains(&vote), "{vote:?} was not re-sent as logged");
    }
    assert!(
        !actions.iter().any(|a| matches!(a, Action::PersistWal(_))),
        "replayed entries are not logged again"
    );
}

#[test]
fn a_log_of_the_format_before_checkpoint_bodies_is_refused_clearly() {
    let (_, entries) = real_entries(&keys());
    let folder = tempfile::tempdir().expect("a temporary folder");
    let (path, offsets) = write_log(folder.path(), &entries[..1]);
    let mut bytes = fs::read(&path).expect("read");
    // Rewrite the first frame's payload as format 1, checksums fixed up, as
    // an older stele-bft's log of a height in progress would hold it.
    let frame = offsets[0] as usize;
    let payload = frame + 12;
    bytes[payload] = 1;
    let crc = crc32c::crc32c(&bytes[payload..]).to_le_bytes();
    bytes[frame + 8..frame + 12].copy_from_slice(&crc);
    fs::write(&path, &bytes).expect("write");
    match Wal::open(&path) {
        Err(error @ WalError::Corrupt { .. }) => {
            let text = error.to_string();
            assert!(text.contains("entry format 1"), "{text}");
            assert!(text.contains("no longer read"), "{text}");
        }
        other => panic!("an old entry was not refused: {other:?}"),
    }
}
