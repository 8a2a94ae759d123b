//! The whole ingest path on one core (issue #3's append target): a 50- or 500-event body of
//! ~250-byte events is parsed in place, validated, sequenced and appended to the durable
//! log with `fsync = "interval"` — exactly what `POST /v1/events` does before routing.
//! `ws_publish_*` is the WebSocket front end's share of the same: the events arrive
//! inside a `publish` message, parsed by the client-message parser, whose tape ingest
//! validates as is (the socket, the frame and the ack are not in it: see
//! docs/perf-ingest.md, "Through the socket", for those).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use tracecast::config::{FsyncPolicy, StorageConfig};
use tracecast::ingest::{parse_body, validate, IngestContext, JsonBuffers};
use tracecast::protocol::{parse_client_message, ClientMessage};
use tracecast::store::{EventLog, LogStore};

#[path = "support/workload.rs"]
mod workload;
use workload::body;

fn pipeline(c: &mut Criterion) {
    let cfg = StorageConfig {
        fsync: FsyncPolicy::Interval,
        segment_bytes: 1 << 30,
        ..StorageConfig::default()
    };
    let mut buffers = JsonBuffers::default();
    let mut ctx = IngestContext::new(65_536, 1_732_550_000_000, 1);
    let mut g = c.benchmark_group("ingest_append");
    for batch in [50usize, 500] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = LogStore::open(dir.path(), &cfg, Box::new(|| {})).expect("open log");
        let template = body(batch);
        let per_event = template.len() / batch;
        let mut scratch = template.clone();
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(
            format!("http_body_{batch}x{per_event}B_fsync_interval"),
            |b| {
                b.iter(|| {
                    // Restoring the body stands in for the socket read into the read buffer.
                    scratch.clear();
                    scratch.extend_from_slice(&template);
                    let events = parse_body(&mut scratch, &mut buffers).expect("valid body");
                    let pending = validate(&events, &mut ctx).expect("valid events");
                    buffers.recycle(events);
                    black_box(store.append(pending).expect("append"));
                })
            },
        );
        let _ = store.poll_sync();
    }
    for batch in [50usize, 500] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = LogStore::open(dir.path(), &cfg, Box::new(|| {})).expect("open log");
        let mut template = br#"{"type":"publish","events":"#.to_vec();
        template.extend_from_slice(&body(batch));
        template.push(b'}');
        let mut scratch = template.clone();
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("ws_publish_{batch}_fsync_interval"), |b| {
            b.iter(|| {
                scratch.clear();
                scratch.extend_from_slice(&template);
                let parsed = parse_client_message(&mut scratch, &mut buffers).expect("parses");
                let ClientMessage::Publish { events } = parsed.msg else {
                    panic!("not a publish");
                };
                let pending = validate(&events, &mut ctx).expect("valid events");
                buffers.recycle(events);
                black_box(store.append(pending).expect("append"));
            })
        });
        let _ = store.poll_sync();
    }
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
