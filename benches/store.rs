//! Storage benchmarks: append throughput per fsync policy, indexed reads on a 1M-event
//! log, time travel on a long session, and recovery.
//!
//! Scale: the read/time-travel/recovery log holds 1,000,000 events (~200 bytes each on
//! disk, ~210 MB) in one session with 50 agents and 1000 recurring task ids (a task event every 2 events); it is built
//! once in a temp dir by the setup. Append batches are 1000 events of ~250 bytes.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use tracecast::config::{FsyncPolicy, StorageConfig};
use tracecast::store::{LogStore, Pending, Store};

const LONG: u64 = 1_000_000;

fn pending(n: u64, pad: usize) -> Pending {
    let agent = format!("agent-{}", n % 50);
    let (kind, extra) = match n % 4 {
        0 => (
            "TASK_START",
            format!(",\"data\":{{\"taskId\":\"t{}\"}}", (n / 4) % 1000),
        ),
        1 => (
            "TASK_COMPLETE",
            format!(",\"data\":{{\"taskId\":\"t{}\"}}", (n / 4) % 1000),
        ),
        2 => ("STATE_CHANGE", ",\"data\":{\"state\":\"busy\"}".to_string()),
        _ => ("MESSAGE_SEND", String::new()),
    };
    let ts = 1_700_000_000_000 + n as i64;
    let tail = format!(
        "\"type\":\"{kind}\",\"sessionId\":\"bench\",\"timestamp\":{ts},\"agentId\":\"{agent}\"{extra},\"pad\":\"{}\"}}",
        ".".repeat(pad)
    );
    Pending {
        timestamp: ts,
        session: Arc::from("bench"),
        agent: Some(Arc::from(agent)),
        kind: Arc::from(kind),
        json_tail: tail.into_bytes(),
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
            b.iter(|| {
                let batch: Vec<Pending> = (0..1000).map(|i| pending(n + i, 150)).collect();
                n += 1000;
                black_box(st.append(batch).map(|a| a.events.len()).unwrap_or(0));
                st.enforce_retention(0);
            })
        });
    }
    g.finish();
}

fn long_log(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = cfg(FsyncPolicy::Never);
    {
        let mut st = open(dir.path(), &config);
        for chunk in 0..(LONG / 1000) {
            let batch: Vec<Pending> = (0..1000).map(|i| pending(chunk * 1000 + i, 100)).collect();
            if let Err(e) = st.append(batch) {
                panic!("{e}");
            }
        }
    }
    let st = open(dir.path(), &config);
    let mut g = c.benchmark_group("store_read_1M");
    g.throughput(Throughput::Elements(100));
    let mut after = 0u64;
    g.bench_function("after_seq_100", |b| {
        b.iter(|| {
            after = (after + 7919 * 100) % (LONG - 200);
            black_box(
                st.after_seq("bench", after, 100)
                    .map(|v| v.len())
                    .unwrap_or(0),
            )
        })
    });
    let base = 1_700_000_000_000i64;
    g.bench_function("time_range_100", |b| {
        b.iter(|| {
            black_box(
                st.time_range("bench", base + 400_000, base + 600_000, 50_000, 100)
                    .map(|v| v.len())
                    .unwrap_or(0),
            )
        })
    });
    g.bench_function("count_time_range_200k", |b| {
        b.iter(|| black_box(st.count_time_range("bench", base + 400_000, base + 600_000)))
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("state_at_mid_session", |b| {
        let mut t = 0i64;
        b.iter(|| {
            t = (t + 104_729) % LONG as i64;
            black_box(
                st.state_at("bench", base + t, 100)
                    .map(|(s, tr)| s.event_count + tr.len() as u64)
                    .unwrap_or(0),
            )
        })
    });
    g.finish();
    drop(st);

    let mut g = c.benchmark_group("store_recovery");
    g.sample_size(10);
    let bytes: u64 = std::fs::read_dir(dir.path())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("open_1M_events", |b| {
        b.iter(|| black_box(open(dir.path(), &config).next_seq()))
    });
    g.finish();
}

criterion_group!(benches, append, long_log);
criterion_main!(benches);
