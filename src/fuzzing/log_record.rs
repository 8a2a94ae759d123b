//! Fuzz body for the log's record decoder and its recovery.
//!
//! Arbitrary bytes are decoded as records directly, then written as a segment file and
//! opened as a store (with and without quarantine): recovery must answer `Ok` or a clean
//! `StoreError`, never panic, and a store it opens must answer reads.
//!
//! Properties asserted: a record whose entries all decode re-encodes, through the writer's
//! own functions, to the same bytes (reserved fields and the checksum they change aside);
//! a session's events read back from a recovered store are that session's, in rising
//! `seq` order, none past the session's last seq.

use crate::config::{FsyncPolicy, StorageConfig};
use crate::store::record::{self, EntryRef, BODY_HEADER, FRAME_HEADER};
use crate::store::{LogStore, SessionReads, TimeTravel};
use std::sync::atomic::{AtomicU64, Ordering};

static RUN: AtomicU64 = AtomicU64::new(0);

/// Offset of an entry's reserved `u16` from the entry's start (after seq, ts and three
/// string lengths; docs/STORAGE.md).
const ENTRY_RESERVED: usize = 8 + 8 + 2 + 2 + 2;

/// Feeds arbitrary bytes to the decoder and to recovery, and checks what they produce.
pub fn run(data: &[u8]) {
    let mut at = 0;
    while let Some(rest) = data.get(at..).filter(|r| !r.is_empty()) {
        let Ok((body, n)) = record::decode_record(rest) else {
            break;
        };
        let mut entries = Vec::new();
        if let Ok(count) = record::for_each_entry(body, |offset, len, e| {
            entries.push((offset, len, e));
            Ok(())
        }) {
            reencodes_to_the_same_bytes(body, count, &entries);
        }
        at += n;
    }
    let _ = record::decode_entry(data);

    let dir = std::env::temp_dir().join(format!(
        "tracecast-fuzz-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    for quarantine in [false, true] {
        let _ = std::fs::write(dir.join("00000000000000000001.log"), data);
        let cfg = StorageConfig {
            fsync: FsyncPolicy::Never,
            quarantine_corrupt: quarantine,
            checkpoint_every: 4,
            ..StorageConfig::default()
        };
        if let Ok((st, _)) = LogStore::open(&dir, &cfg, Box::new(|| {})) {
            for s in st.sessions() {
                if let Ok(events) = st.after_seq(&s.id, 0, 1000) {
                    let mut prev = 0;
                    for e in &events {
                        assert_eq!(e.session, s.id, "after_seq returned another session");
                        assert!(e.seq > prev, "seqs not rising: {} after {prev}", e.seq);
                        assert!(s.last_seq.is_some_and(|last| e.seq <= last));
                        prev = e.seq;
                    }
                }
                let _ = st.time_range(&s.id, i64::MIN, i64::MAX, 0, 1000);
                let _ = st.state_at(&s.id, i64::MAX, 10);
                let _ = st.recent(&s.id, 100);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes the decoded entries again with [`record::begin_record`], [`record::put_entry`]
/// and [`record::finish_record`], and compares with the input body, whose reserved bytes
/// (the body's flags and reserved `u16`, each entry's reserved `u16`: written as zero,
/// never read) are first zeroed.
fn reencodes_to_the_same_bytes(body: &[u8], count: u32, entries: &[(usize, usize, EntryRef<'_>)]) {
    let mut out = Vec::new();
    record::begin_record(&mut out, count);
    for (_, _, e) in entries {
        record::put_entry(&mut out, e.seq, e.ts, e.session, e.agent, e.kind, e.json);
    }
    record::finish_record(&mut out);
    let mut expected = body.to_vec();
    let mut zero = |at: usize, n: usize| {
        if let Some(bytes) = expected.get_mut(at..at + n) {
            bytes.fill(0);
        }
    };
    zero(1, 3);
    for &(offset, _, _) in entries {
        zero(offset + ENTRY_RESERVED, 2);
    }
    assert_eq!(
        out.get(FRAME_HEADER..),
        Some(expected.as_slice()),
        "a decoded record re-encodes to other bytes"
    );
    let mut lens = Vec::new();
    let (again, total) = match record::decode_record(&out) {
        Ok(r) => r,
        Err(e) => panic!("a re-encoded record does not decode: {e}"),
    };
    assert_eq!(total, out.len());
    let walked = record::for_each_entry(again, |offset, len, e| {
        lens.push((offset, len, e));
        Ok(())
    });
    assert_eq!(walked, Ok(count));
    assert_eq!(lens.as_slice(), entries);
    assert!(entries
        .first()
        .is_none_or(|(offset, _, _)| *offset == BODY_HEADER));
}
