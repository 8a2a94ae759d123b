//! Storage benchmarks (issue #3 targets): store-only append throughput per fsync policy,
//! streaming history out of a big log, time travel on a long session, and recovery; and
//! many small sessions (`sessions`): appending new ones, counting and paging them.
//!
//! Scale: one session of `TRACECAST_BENCH_EVENTS` events (default 10,000,000, ~250 bytes
//! each on disk, ~2.6 GB) with 50 agents and 1000 recurring task ids (three events in four
//! are `TASK_*`/`STATE_CHANGE`, the kinds time travel parses). The log is built once in a
//! temp dir under `TMPDIR`. Append batches are 1000 events of ~250 bytes, built outside
//! the timed part, so the figures are the store's own cost. The first `state_at` after a
//! restart builds the checkpoints lazily; its cost is printed once (it is not a repeatable
//! measurement), the criterion figure is for calls after it.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tracecast::config::{FsyncPolicy, StorageConfig};
use tracecast::store::{EventLog, LogStore, Pending, SessionReads, TimeTravel, SEQ_HEADROOM};

const BASE_TS: i64 = 1_700_000_000_000;
/// Events read per history bench iteration, in chunks of [`CHUNK`].
const STREAM: u64 = 1_000_000;
const CHUNK: usize = 100;

fn long_events() -> u64 {
    std::env::var("TRACECAST_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000)
        .max(2 * STREAM)
}

/// Agents and kinds are interned as ingest interns them (one `Arc` per distinct string).
struct Names {
    agents: Vec<Arc<str>>,
    kinds: Vec<Arc<str>>,
    session: Arc<str>,
}

impl Names {
    fn new() -> Self {
        Names {
            agents: (0..50).map(|i| Arc::from(format!("agent-{i}"))).collect(),
            kinds: [
                "TASK_START",
                "TASK_COMPLETE",
                "STATE_CHANGE",
                "MESSAGE_SEND",
            ]
            .into_iter()
            .map(Arc::from)
            .collect(),
            session: Arc::from("bench"),
        }
    }

    /// Event `n`: ~250 bytes delivered (`pad` 130).
    fn pending(&self, n: u64, pad: usize) -> Pending {
        let agent = self.agents[(n % 50) as usize].clone();
        let kind = self.kinds[(n % 4) as usize].clone();
        let extra = match n % 4 {
            0 | 1 => format!(",\"data\":{{\"taskId\":\"t{}\"}}", (n / 4) % 1000),
            2 => ",\"data\":{\"state\":\"busy\"}".to_string(),
            _ => String::new(),
        };
        let ts = BASE_TS + n as i64;
        let tail = format!(
            "\"type\":\"{kind}\",\"sessionId\":\"bench\",\"timestamp\":{ts},\"agentId\":\"{agent}\"{extra},\"pad\":\"{}\"}}",
            ".".repeat(pad)
        );
        // As ingest builds it: exact capacity, with headroom for `{"seq":N,`.
        let mut json_tail = Vec::with_capacity(SEQ_HEADROOM + tail.len());
        json_tail.resize(SEQ_HEADROOM, b' ');
        json_tail.extend_from_slice(tail.as_bytes());
        Pending {
            timestamp: ts,
            session: self.session.clone(),
            agent: Some(agent),
            kind,
            json_tail,
            headroom: SEQ_HEADROOM,
        }
    }
}

fn cfg(fsync: FsyncPolicy) -> StorageConfig {
    StorageConfig {
        fsync,
        fsync_interval_ms: 100,
        retention_bytes: 0,
        retention_ms: 0,
        ..StorageConfig::default()
    }
}

fn open(dir: &Path, c: &StorageConfig) -> LogStore {
    match LogStore::open(dir, c, Box::new(|| {})) {
        Ok((s, _)) => s,
        Err(e) => panic!("open: {e}"),
    }
}

fn append(c: &mut Criterion) {
    let names = Names::new();
    let mut g = c.benchmark_group("store_append");
    g.throughput(Throughput::Elements(1000));
    for (name, policy) in [
        ("never", FsyncPolicy::Never),
        ("interval", FsyncPolicy::Interval),
    ] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut st = open(
            dir.path(),
            &StorageConfig {
                segment_bytes: 64 << 20,
                retention_bytes: 256 << 20,
                ..cfg(policy)
            },
        );
        let mut n = 0u64;
        g.bench_function(format!("1000x250B_{name}"), |b| {
            b.iter_batched(
                || {
                    let batch: Vec<Pending> =
                        (0..1000).map(|i| names.pending(n + i, 130)).collect();
                    n += 1000;
                    batch
                },
                |batch| {
                    black_box(st.append(batch).map(|a| a.events.len()).unwrap_or(0));
                    st.enforce_retention(0);
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn long_log(c: &mut Criterion) {
    let long = long_events();
    let names = Names::new();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = cfg(FsyncPolicy::Never);
    {
        let t = Instant::now();
        let mut st = open(dir.path(), &config);
        for chunk in 0..long.div_ceil(1000) {
            let batch: Vec<Pending> = (0..1000)
                .map(|i| names.pending(chunk * 1000 + i, 130))
                .collect();
            if let Err(e) = st.append(batch) {
                panic!("{e}");
            }
        }
        eprintln!("built {long} events in {:?}", t.elapsed());
    }
    let bytes: u64 = std::fs::read_dir(dir.path())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);

    let mut g = c.benchmark_group("store_recovery");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function(
        format!("open_{}M_events_{}MB", long / 1_000_000, bytes >> 20),
        |b| b.iter(|| black_box(open(dir.path(), &config).next_seq())),
    );
    g.finish();

    let st = open(dir.path(), &config);
    let mut g = c.benchmark_group("store_history");
    g.sample_size(10);
    g.throughput(Throughput::Elements(STREAM));
    let mut from = 0u64;
    g.bench_function("after_seq_1M_in_chunks_of_100", |b| {
        b.iter(|| {
            // A different stretch of the log each time, so the cache of recent events
            // is not what is measured.
            from = (from + 3 * STREAM + 7919) % (long - STREAM);
            let (mut after, mut n) = (from, 0u64);
            while n < STREAM {
                let v = st.after_seq("bench", after, CHUNK).unwrap_or_default();
                let Some(last) = v.last() else { break };
                after = last.seq;
                n += v.len() as u64;
                black_box(v);
            }
            n
        })
    });
    let mut start = 0i64;
    g.bench_function("time_range_1M_in_chunks_of_100", |b| {
        b.iter(|| {
            start = (start + 3 * STREAM as i64 + 7919) % (long - STREAM) as i64;
            let (lo, hi) = (BASE_TS + start, BASE_TS + start + STREAM as i64 - 1);
            let (mut offset, mut n) = (0usize, 0u64);
            while n < STREAM {
                let v = st
                    .time_range("bench", lo, hi, offset, CHUNK)
                    .unwrap_or_default();
                if v.is_empty() {
                    break;
                }
                offset += v.len();
                n += v.len() as u64;
                black_box(v);
            }
            n
        })
    });
    g.finish();

    let mut g = c.benchmark_group("store_read");
    g.throughput(Throughput::Elements(1));
    g.bench_function("count_time_range_200k", |b| {
        b.iter(|| black_box(st.count_time_range("bench", BASE_TS + 400_000, BASE_TS + 600_000)))
    });
    let t = Instant::now();
    let first = st
        .state_at("bench", BASE_TS + long as i64 / 2, 100)
        .map(|(s, _)| s.event_count)
        .unwrap_or(0);
    eprintln!(
        "first state_at after open ({long} events, folds to mid-session, builds checkpoints): {:?} ({first} events in state)",
        t.elapsed()
    );
    let t = Instant::now();
    let _ = st.state_at("bench", BASE_TS + long as i64 - 1, 100);
    eprintln!(
        "state_at at the end (checkpoints completed): {:?}",
        t.elapsed()
    );
    g.bench_function(format!("state_at_{}M_session", long / 1_000_000), |b| {
        let mut t = 0i64;
        b.iter(|| {
            t = (t + 1_047_299) % long as i64;
            black_box(
                st.state_at("bench", BASE_TS + t, 100)
                    .map(|(s, tr)| s.event_count + tr.len() as u64)
                    .unwrap_or(0),
            )
        })
    });
    g.finish();
    // A restart: closing saves the checkpoints (where the store saves them), so the first
    // time travel after the reopen need not fold the session from its start.
    let t = Instant::now();
    drop(st);
    eprintln!(
        "close (saves checkpoints where supported): {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let st = open(dir.path(), &config);
    eprintln!("reopen: {:?}", t.elapsed());
    for (what, at) in [
        ("mid-session", BASE_TS + long as i64 / 2),
        ("a quarter in", BASE_TS + long as i64 / 4),
        ("the end", BASE_TS + long as i64 - 1),
    ] {
        let t = Instant::now();
        let n = st
            .state_at("bench", at, 100)
            .map(|(s, _)| s.event_count)
            .unwrap_or(0);
        eprintln!(
            "first state_at after restart, {what}: {:?} ({n} events in state)",
            t.elapsed()
        );
    }
}

/// Sessions in the `sessions` group's store (`TRACECAST_BENCH_SESSIONS`, default 200k).
fn many_sessions() -> u64 {
    std::env::var("TRACECAST_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
        .max(10_000)
}

/// One event of session `n`, the probe's shape (type, sessionId, the assigned id and
/// timestamp), as ingest builds it.
fn one_event_session(n: u64) -> Pending {
    let session: Arc<str> = Arc::from(format!("s{n:08}"));
    let ts = BASE_TS + n as i64;
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

/// Many one-event sessions: appending new sessions, counting them, and paging through
/// them (a page must cost the page, not the session count).
fn sessions(c: &mut Criterion) {
    let total = many_sessions();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut st = open(
        dir.path(),
        &StorageConfig {
            max_sessions: usize::MAX,
            ..cfg(FsyncPolicy::Never)
        },
    );
    let mut n = 0u64;
    while n < total {
        let batch: Vec<Pending> = (n..n + 1000).map(one_event_session).collect();
        if let Err(e) = st.append(batch) {
            panic!("append: {e}");
        }
        n += 1000;
    }
    let mut g = c.benchmark_group("sessions");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("append_1000_new_sessions", |b| {
        b.iter_batched(
            || {
                let batch: Vec<Pending> = (n..n + 1000).map(one_event_session).collect();
                n += 1000;
                batch
            },
            |batch| black_box(st.append(batch).map(|a| a.events.len()).unwrap_or(0)),
            BatchSize::LargeInput,
        )
    });
    // A page from the middle: its cursor is the creation seq of the session before it.
    let mid = st.sessions_page(0, 10_000, &|_| true).next.unwrap_or(0);
    g.bench_function("page_of_1000", |b| {
        b.iter(|| black_box(st.sessions_page(mid, 1000, &|_| true).sessions.len()))
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("session_count", |b| {
        b.iter(|| black_box(st.session_count()))
    });
    g.finish();
}

criterion_group!(benches, append, long_log, sessions);
criterion_main!(benches);
