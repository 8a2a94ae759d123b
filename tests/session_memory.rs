//! What one more session costs in memory (SPEC §8: "per-session memory is small and
//! bounded"): many one-event sessions appended to a durable `LogStore` with the default
//! configuration, the resident set read from `/proc/self/statm` before and after.
//!
//! Its own test binary, and the only test in it, so nothing else in the process allocates
//! meanwhile. The events have the probe's shape — `type` and `sessionId`, plus the `id`
//! and `timestamp` ingest assigns — and arrive 1000 to a batch, as one `POST /v1/events`
//! of 1000 events would bring them. `TRACECAST_MEM_SESSIONS` sets how many (default
//! 200,000); the figure is printed with `--nocapture`:
//!
//! ```sh
//! cargo test --test session_memory -- --nocapture
//! ```

use std::sync::Arc;
use tracecast::config::StorageConfig;
use tracecast::store::{EventLog, LogStore, Pending, SessionReads, SEQ_HEADROOM};

/// The bound the store promises for a one-event session (docs/STORAGE.md).
const BUDGET: u64 = 400;
const BATCH: usize = 1000;
/// Linux on x86-64 and aarch64 (4 KiB pages, which statm counts in).
const PAGE: u64 = 4096;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let resident: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    resident * PAGE
}

/// Session `n`'s one event, built as ingest builds it (exact capacity, with headroom
/// for `{"seq":N,`), the session id interned once as ingest's interner would.
fn event(n: u64) -> Pending {
    let session: Arc<str> = Arc::from(format!("s{n:07}"));
    let ts = 1_700_000_000_000 + n as i64;
    let tail = format!(
        "\"type\":\"X\",\"sessionId\":\"{session}\",\"id\":\"{n:016x}\",\"timestamp\":{ts}}}"
    );
    let mut json_tail = Vec::with_capacity(SEQ_HEADROOM + tail.len());
    json_tail.resize(SEQ_HEADROOM, b' ');
    json_tail.extend_from_slice(tail.as_bytes());
    Pending {
        timestamp: ts,
        session,
        agent: None,
        kind: Arc::from("X"),
        json_tail,
        headroom: SEQ_HEADROOM,
    }
}

fn append_sessions(st: &mut LogStore, from: u64, to: u64) {
    let mut n = from;
    while n < to {
        let end = (n + BATCH as u64).min(to);
        let batch: Vec<Pending> = (n..end).map(event).collect();
        if let Err(e) = st.append(batch) {
            panic!("append: {e}");
        }
        n = end;
    }
}

#[test]
fn a_one_event_session_costs_at_most_the_budget() {
    let sessions: u64 = std::env::var("TRACECAST_MEM_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let defaults = StorageConfig::default();
    // The default configuration, with room for the warm-up on top of a million.
    let config = StorageConfig {
        max_sessions: defaults.max_sessions.max(sessions as usize + 10 * BATCH),
        ..defaults
    };
    let (mut st, _) = LogStore::open(dir.path(), &config, Box::new(|| {}))
        .unwrap_or_else(|e| panic!("open: {e}"));
    // Warm-up: the first batches pay for one-time buffers (the record buffer, the
    // allocator's arenas), which are no per-session cost.
    append_sessions(&mut st, 0, 10 * BATCH as u64);
    let before = rss_bytes();
    append_sessions(&mut st, 10 * BATCH as u64, 10 * BATCH as u64 + sessions);
    let after = rss_bytes();
    let per = after.saturating_sub(before) / sessions;
    println!(
        "{sessions} one-event sessions: RSS {} -> {} KiB, {per} bytes/session",
        before / 1024,
        after / 1024
    );
    assert!(st.session("s0000000").is_some());
    assert!(
        per <= BUDGET,
        "{per} bytes per one-event session, over the budget of {BUDGET}"
    );
}
