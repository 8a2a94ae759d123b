//! Fan-out: one 50-event batch routed by the hub, encoded once per audience and queued on
//! 1,000 subscribers' write queues, then written to a sink with vectored writes.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::io::{IoSlice, Write};
use std::sync::Arc;
use tracecast::config::BackpressureConfig;
use tracecast::event::{Event, EventRef};
use tracecast::hub::encode::BatchEncoder;
use tracecast::hub::{Audience, ConnId, Hub};
use tracecast::server::queue::{EventSpan, WriteQueue};

const SUBSCRIBERS: u32 = 1000;

fn events(n: u64) -> Vec<EventRef> {
    (0..n)
        .map(|i| {
            let json = format!(
                r#"{{"seq":{i},"id":"e-{i}","timestamp":1732550000000,"type":"TASK_START","sessionId":"s-1","agentId":"agent-{a}","traceId":"trace-{i:08}","spanId":"span-{i:08}","data":{{"taskId":"task-{t}","tool":"web.search","n":{i}}},"metadata":{{"model":"planner-v2","region":"eu-west"}}}}"#,
                a = i % 7,
                t = i % 17
            );
            Arc::new(Event {
                seq: i,
                timestamp: 1_732_550_000_000,
                session: "s-1".into(),
                agent: Some(format!("agent-{}", i % 7).into()),
                kind: "TASK_START".into(),
                json: Bytes::from(json),
            })
        })
        .collect()
}

/// A socket that takes everything.
struct Sink(u64);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        let n: usize = bufs.iter().map(|b| b.len()).sum();
        self.0 += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn fanout(c: &mut Criterion) {
    let session: Arc<str> = "s-1".into();
    let cfg = BackpressureConfig::default();
    let mut queues: Vec<WriteQueue> = (0..SUBSCRIBERS).map(|_| WriteQueue::new(&cfg)).collect();
    let mut encoder = BatchEncoder::new(6, 1024);
    let batch = events(50);
    let mut sink = Sink(0);

    let mut g = c.benchmark_group("fanout");
    g.throughput(Throughput::Elements(50 * u64::from(SUBSCRIBERS)));
    // The same with every subscriber on permessage-deflate: the frame is compressed once
    // per batch, so the extra cost per delivery is the compression divided by 1,000.
    for (name, audience) in [
        ("batch50_to_1000_queues", Audience::plain()),
        (
            "batch50_to_1000_queues_deflate",
            Audience {
                deflate: true,
                ..Audience::plain()
            },
        ),
    ] {
        let mut hub = Hub::new(50);
        for key in 0..SUBSCRIBERS {
            hub.subscribe(&session, ConnId { key, gen: 1 }, audience.clone());
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                hub.publish(&batch);
                hub.flush(
                    |aud, s, evs| encoder.encode(aud, s, evs, 1_732_550_000_000),
                    |conn, frame: &Bytes, info| {
                        let span = EventSpan {
                            session: info.session.clone(),
                            first_seq: info.first_seq,
                            last_seq: info.last_seq,
                            count: info.count,
                        };
                        queues[conn.key as usize].push_events(frame.clone(), span);
                    },
                );
                for q in &mut queues {
                    black_box(q.flush(&mut sink).ok());
                }
            })
        });
    }
    g.finish();

    let refs: Vec<&Event> = batch.iter().map(|e| &**e).collect();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(50));
    g.bench_function("trace_batch50_frame", |b| {
        b.iter(|| black_box(encoder.encode(&Audience::plain(), "s-1", &refs, 1_732_550_000_000)))
    });
    let deflate = Audience {
        deflate: true,
        ..Audience::plain()
    };
    g.bench_function("trace_batch50_frame_deflate", |b| {
        b.iter(|| black_box(encoder.encode(&deflate, "s-1", &refs, 1_732_550_000_000)))
    });
    g.finish();
}

/// The hasher of the session tables: 10,000 session ids like clients send, looked up
/// with std's SipHash and with `tracecast::hash` (foldhash, OS-seeded).
fn session_lookup(c: &mut Criterion) {
    let ids: Vec<Arc<str>> = (0..10_000)
        .map(|i| format!("swarm-{i:05}-7f3a9c2e").into())
        .collect();
    let sip: std::collections::HashMap<Arc<str>, u32> = ids.iter().cloned().zip(0..).collect();
    let fold: tracecast::hash::Map<Arc<str>, u32> = ids.iter().cloned().zip(0..).collect();
    let mut g = c.benchmark_group("session_lookup");
    g.throughput(Throughput::Elements(ids.len() as u64));
    g.bench_function("siphash_10k", |b| {
        b.iter(|| ids.iter().filter_map(|id| sip.get(&**id)).sum::<u32>())
    });
    g.bench_function("foldhash_10k", |b| {
        b.iter(|| ids.iter().filter_map(|id| fold.get(&**id)).sum::<u32>())
    });
    g.finish();
}

criterion_group!(benches, fanout, session_lookup);
criterion_main!(benches);
