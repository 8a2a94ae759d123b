//! Fuzz body for the log's record decoder and its recovery.
//!
//! Arbitrary bytes are decoded as records directly, then written as a segment file and
//! opened as a store (with and without quarantine): recovery must answer `Ok` or a clean
//! `StoreError`, never panic, and a store it opens must answer reads.

use crate::config::{FsyncPolicy, StorageConfig};
use crate::store::{record, LogStore, SessionReads, TimeTravel};
use std::sync::atomic::{AtomicU64, Ordering};

static RUN: AtomicU64 = AtomicU64::new(0);

/// Feeds arbitrary bytes to the decoder and to recovery; must never panic.
pub fn run(data: &[u8]) {
    let mut at = 0;
    while let Some(rest) = data.get(at..).filter(|r| !r.is_empty()) {
        let Ok((body, n)) = record::decode_record(rest) else {
            break;
        };
        let _ = record::for_each_entry(body, |_, _, _| Ok(()));
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
                let _ = st.after_seq(&s.id, 0, 1000);
                let _ = st.time_range(&s.id, i64::MIN, i64::MAX, 0, 1000);
                let _ = st.state_at(&s.id, i64::MAX, 10);
                let _ = st.recent(&s.id, 100);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
