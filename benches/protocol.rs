//! Protocol and ingest hot paths: client message parsing, ingest validation (the 1M
//! events/s path), the per-batch encoders (JSON plain/delta, binary) and the raw JSON
//! scanner's path probe.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use tracecast::event::Event;
use tracecast::ingest::{parse_body, validate, IngestContext, JsonBuffers};
use tracecast::json::{probe, Value};
use tracecast::protocol::{
    encode_binary_batch, encode_trace_batch, parse_client_message, BatchCompression, ClientMessage,
};

/// A realistic ~250-byte producer event.
fn producer_event(i: usize) -> String {
    format!(
        r#"{{"type":"TASK_{}","sessionId":"swarm-7f3a9c","agentId":"agent-{}","traceId":"tr-{:08x}","spanId":"sp-{:06x}","phase":"execute","duration":{}.25,"data":{{"taskId":"task-{}","status":"running","attempt":1,"note":"fetching page 3 of results"}}}}"#,
        if i % 3 == 0 { "START" } else { "PROGRESS" },
        i % 4,
        i * 7919,
        i,
        i % 100,
        i / 3
    )
}

fn stored_events(n: usize) -> Vec<Event> {
    let mut body = format!(
        "[{}]",
        (0..n).map(producer_event).collect::<Vec<_>>().join(",")
    )
    .into_bytes();
    let mut buffers = JsonBuffers::default();
    let values = parse_body(&mut body, &mut buffers).expect("bench body parses");
    let mut ctx = IngestContext::new(65536, 1_700_000_000_000, 1);
    let pending = validate(&values, &mut ctx).expect("bench events are valid");
    pending
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let mut json = format!("{{\"seq\":{},", 1000 + i).into_bytes();
            json.extend_from_slice(&p.json_tail);
            Event {
                seq: 1000 + i as u64,
                timestamp: p.timestamp,
                session: p.session,
                agent: p.agent,
                kind: p.kind,
                json: Bytes::from(json),
            }
        })
        .collect()
}

fn client_message_parse(c: &mut Criterion) {
    let subscribe = br#"{"type":"subscribe_session","sessionId":"swarm-7f3a9c","sinceSeq":12345,"requestId":"r-17"}"#.to_vec();
    let publish = format!(
        r#"{{"type":"publish","requestId":9,"events":[{}]}}"#,
        (0..10).map(producer_event).collect::<Vec<_>>().join(",")
    )
    .into_bytes();
    let mut buffers = JsonBuffers::default();
    let mut g = c.benchmark_group("client_message_parse");
    let mut buf = Vec::new();
    g.bench_function("subscribe", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(&subscribe);
            match parse_client_message(&mut buf, &mut buffers).map(|p| p.msg) {
                Ok(ClientMessage::Publish { events }) => buffers.recycle(events),
                other => {
                    black_box(other.ok().map(|m| m.type_name()));
                }
            }
        })
    });
    g.bench_function("publish_10", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(&publish);
            match parse_client_message(&mut buf, &mut buffers).map(|p| p.msg) {
                Ok(ClientMessage::Publish { events }) => buffers.recycle(events),
                other => {
                    black_box(other.ok().map(|m| m.type_name()));
                }
            }
        })
    });
    g.finish();
}

/// The ingest share of the 1M events/s target: parse + validate + building each
/// `Pending` for 50 ~250-byte events, through each of the three body shapes.
fn ingest_validate_50(c: &mut Criterion) {
    let events: Vec<String> = (0..50).map(producer_event).collect();
    let body = format!("[{}]", events.join(",")).into_bytes();
    let ndjson = format!("{}\n", events.join("\n")).into_bytes();
    let publish = format!(
        r#"{{"type":"publish","requestId":9,"events":[{}]}}"#,
        events.join(",")
    )
    .into_bytes();
    let mut buffers = JsonBuffers::default();
    let mut ctx = IngestContext::new(65536, 1_700_000_000_000, 1);
    let mut buf = Vec::new();
    c.bench_function("ingest_parse_only_50", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(&body);
            let values = parse_body(&mut buf, &mut buffers).expect("parses");
            black_box(values.len());
            buffers.recycle(values);
        })
    });
    for (name, input) in [
        ("ingest_validate_50", &body),
        ("ingest_validate_50_ndjson", &ndjson),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(input);
                let values = parse_body(&mut buf, &mut buffers).expect("parses");
                black_box(validate(&values, &mut ctx).expect("valid").len());
                buffers.recycle(values);
            })
        });
    }
    c.bench_function("ingest_validate_50_ws_publish", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(&publish);
            let parsed = parse_client_message(&mut buf, &mut buffers).expect("parses");
            let n = match parsed.msg {
                ClientMessage::Publish { events } => {
                    let n = validate(&events, &mut ctx).expect("valid").len();
                    buffers.recycle(events);
                    n
                }
                _ => 0,
            };
            black_box(n);
        })
    });
}

fn encoders(c: &mut Criterion) {
    let events = stored_events(50);
    let mut out = Vec::with_capacity(64 * 1024);
    c.bench_function("encode_trace_batch_50", |b| {
        b.iter(|| {
            out.clear();
            encode_trace_batch(
                &mut out,
                "swarm-7f3a9c",
                events.iter(),
                BatchCompression::None,
                1,
            );
            black_box(out.len());
        })
    });
    c.bench_function("encode_trace_batch_50_delta", |b| {
        b.iter(|| {
            out.clear();
            encode_trace_batch(
                &mut out,
                "swarm-7f3a9c",
                events.iter(),
                BatchCompression::Delta,
                1,
            );
            black_box(out.len());
        })
    });
    c.bench_function("encode_binary_batch_50", |b| {
        b.iter(|| {
            out.clear();
            encode_binary_batch(&mut out, "swarm-7f3a9c", events.iter(), 1);
            black_box(out.len());
        })
    });
    let mut frame = Vec::new();
    encode_binary_batch(&mut frame, "swarm-7f3a9c", events.iter(), 1);
    c.bench_function("decode_binary_batch_50", |b| {
        b.iter(|| {
            black_box(
                tracecast::protocol::decode_binary_batch(&frame)
                    .map(|d| d.events.len())
                    .ok(),
            )
        })
    });
}

/// The raw scanner the condition language (SPEC §7) evaluates with: a path probed in
/// each stored event's bytes, no parse, no allocation. One present nested string and one
/// path that leads nowhere (the whole top level is still read: the last occurrence wins).
fn json_probe(c: &mut Criterion) {
    let events = stored_events(50);
    for (name, path) in [
        ("json_probe_50_present", &["data", "taskId"][..]),
        ("json_probe_50_missing", &["data", "metrics", "latency"][..]),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| {
                let found = events
                    .iter()
                    .filter(|e| {
                        matches!(
                            probe(black_box(&e.json), path),
                            Some(Value::Str(s)) if s.as_plain().is_some()
                        )
                    })
                    .count();
                black_box(found)
            })
        });
    }
}

criterion_group!(
    benches,
    client_message_parse,
    ingest_validate_50,
    encoders,
    json_probe
);
criterion_main!(benches);
