//! OTLP ingest load: 100-span `ExportTraceServiceRequest`s with typical GenAI attributes,
//! posted to a running tracecast's `POST /v1/traces` (protobuf, OTLP/JSON) and, in the
//! same run, the very events they map to posted to `POST /v1/events`, so the two front
//! ends are compared on the same stored work. Closed loop: each connection keeps one
//! request in flight on a keep-alive connection; rounds alternate the modes
//! (native, protobuf, json, native, …) and print spans/s, events/s and, with
//! `--server-pid`, the server's CPU per span.
//!
//! ```sh
//! cargo build --release --bin tracecast -p tracecast-loadgen --bin otlp-load
//! taskset -c 0 target/release/tracecast serve --config bench.toml &
//! taskset -c 1 target/release/otlp-load --addr 127.0.0.1:4318 --rounds 3 --server-pid $!
//! ```

use clap::Parser;
use prost::Message;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracecast::otlp::proto::{self as pb, AnyValue, KeyValue};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Spans per request.
    #[arg(long, default_value_t = 100)]
    spans: usize,
    /// Keep-alive connections, one request in flight each.
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Seconds measured per mode and round.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Modes, in the order of each round.
    #[arg(long, default_value = "native,protobuf,json")]
    modes: String,
    /// The server's pid, for its CPU time per span.
    #[arg(long)]
    server_pid: Option<u32>,
    /// No server: run each mode's ingest in-process (decode and map, or parse and
    /// validate; no store) this many times and print ns per span (for callgrind too).
    #[arg(long)]
    offline: Option<usize>,
}

/// The in-process front half of ingest for one mode: what differs between the front ends
/// (the append to the log after it is the same for both).
fn offline(modes: &[Arc<Mode>], iterations: usize, spans: usize) {
    use tracecast::ingest::{parse_body, validate, IngestContext, JsonBuffers};
    use tracecast::otlp::{decode, map_request, Format, MapConfig};
    for m in modes {
        let mut ctx = IngestContext::new(65_536, 1_765_000_000_000, 1);
        let mut bufs = JsonBuffers::default();
        let cfg = MapConfig::default();
        let body = &m.bodies[0];
        let mut scratch = body.clone();
        let mut events = 0usize;
        let t = Instant::now();
        for _ in 0..iterations {
            let n = match m.name {
                "native" => {
                    scratch.clear();
                    scratch.extend_from_slice(body);
                    let parsed = parse_body(&mut scratch, &mut bufs).expect("parse");
                    let n = validate(&parsed, &mut ctx).expect("valid").len();
                    bufs.recycle(parsed);
                    n
                }
                name => {
                    let format = if name == "json" {
                        Format::Json
                    } else {
                        Format::Protobuf
                    };
                    let req = decode(format, None, body, 1 << 30).expect("decode");
                    map_request(&req, &cfg, &mut ctx).events.len()
                }
            };
            events += n;
        }
        let ns = t.elapsed().as_nanos() as f64 / (iterations * spans) as f64;
        println!("offline {:<9} {ns:>8.0} ns/span  ({events} events)", m.name);
    }
}

fn s(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.to_string().into(),
        value: Some(AnyValue {
            value: Some(pb::Value::String(v.to_string().into())),
        }),
    }
}
fn i(k: &str, v: i64) -> KeyValue {
    KeyValue {
        key: k.to_string().into(),
        value: Some(AnyValue {
            value: Some(pb::Value::Int(v)),
        }),
    }
}
fn d(k: &str, v: f64) -> KeyValue {
    KeyValue {
        key: k.to_string().into(),
        value: Some(AnyValue {
            value: Some(pb::Value::Double(v)),
        }),
    }
}

/// One agent run of `n` spans: an invoke_agent root, then chat and execute_tool spans
/// under it, as GenAI instrumentations emit them.
fn request(n: usize, salt: u64) -> pb::ExportTraceServiceRequest {
    let t0 = 1_765_000_000_000_000_000u64;
    let spans = (0..n)
        .map(|k| {
            let op = match k {
                0 => "invoke_agent",
                k if k % 2 == 1 => "chat",
                _ => "execute_tool",
            };
            let mut attrs = vec![
                s("gen_ai.operation.name", op),
                s("gen_ai.system", "openai"),
                s("gen_ai.conversation.id", &format!("conv-{salt}")),
                s("gen_ai.agent.id", "planner"),
                s("gen_ai.agent.name", "Planner"),
            ];
            match op {
                "chat" => attrs.extend([
                    s("gen_ai.request.model", "gpt-4o-2024-08-06"),
                    d("gen_ai.request.temperature", 0.2),
                    i("gen_ai.request.max_tokens", 1024),
                    s("gen_ai.response.id", "chatcmpl-9x2Kq4lP0aZ3"),
                    i("gen_ai.usage.input_tokens", 1200 + k as i64),
                    i("gen_ai.usage.output_tokens", 85),
                ]),
                "execute_tool" => attrs.extend([
                    s("gen_ai.tool.name", "web_search"),
                    s("gen_ai.tool.call.id", "call_a81f2"),
                    s("gen_ai.tool.type", "function"),
                ]),
                _ => {}
            }
            let start = t0 + k as u64 * 3_000_000;
            pb::Span {
                trace_id: [(salt as u8).wrapping_add(1); 16].to_vec().into(),
                span_id: ((salt << 32) | (k as u64 + 1))
                    .to_be_bytes()
                    .to_vec()
                    .into(),
                parent_span_id: if k == 0 {
                    Default::default()
                } else {
                    ((salt << 32) | 1).to_be_bytes().to_vec().into()
                },
                name: format!("{op} planner").into(),
                kind: 3,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 2_500_000,
                attributes: attrs,
                events: vec![],
                status: Some(pb::Status {
                    message: Default::default(),
                    code: 1,
                }),
            }
        })
        .collect();
    pb::ExportTraceServiceRequest {
        resource_spans: vec![pb::ResourceSpans {
            resource: Some(pb::Resource {
                attributes: vec![
                    s("service.name", "agents"),
                    s("service.version", "1.4.2"),
                    s("telemetry.sdk.language", "python"),
                    s("telemetry.sdk.name", "opentelemetry"),
                    s("telemetry.sdk.version", "1.29.0"),
                ],
            }),
            scope_spans: vec![pb::ScopeSpans {
                scope: Some(pb::InstrumentationScope {
                    name: "opentelemetry.instrumentation.openai".into(),
                    version: "0.50b0".into(),
                }),
                spans,
            }],
        }],
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn any_json(v: &AnyValue) -> Value {
    match &v.value {
        Some(pb::Value::String(s)) => json!({"stringValue": pb::text(s)}),
        Some(pb::Value::Int(i)) => json!({"intValue": i.to_string()}),
        Some(pb::Value::Double(d)) => json!({"doubleValue": d}),
        Some(pb::Value::Bool(b)) => json!({"boolValue": b}),
        _ => json!({}),
    }
}

fn attrs_json(a: &[KeyValue]) -> Value {
    a.iter()
        .map(|kv| json!({"key": pb::text(&kv.key), "value": kv.value.as_ref().map(any_json)}))
        .collect()
}

/// The same request in OTLP/JSON.
fn to_json(r: &pb::ExportTraceServiceRequest) -> Vec<u8> {
    let rs = &r.resource_spans[0];
    let ss = &rs.scope_spans[0];
    let spans: Vec<Value> = ss
        .spans
        .iter()
        .map(|sp| {
            json!({
                "traceId": hex(&sp.trace_id), "spanId": hex(&sp.span_id),
                "parentSpanId": hex(&sp.parent_span_id), "name": pb::text(&sp.name), "kind": sp.kind,
                "startTimeUnixNano": sp.start_time_unix_nano.to_string(),
                "endTimeUnixNano": sp.end_time_unix_nano.to_string(),
                "attributes": attrs_json(&sp.attributes),
                "status": {"code": sp.status.as_ref().map_or(0, |s| s.code)}
            })
        })
        .collect();
    let scope = ss.scope.as_ref().expect("scope");
    json!({"resourceSpans": [{
        "resource": {"attributes": attrs_json(&rs.resource.as_ref().expect("resource").attributes)},
        "scopeSpans": [{"scope": {"name": pb::text(&scope.name), "version": pb::text(&scope.version)}, "spans": spans}]
    }]})
    .to_string()
    .into_bytes()
}

/// The events the request maps to, as a native `POST /v1/events` body (without the
/// server-assigned `id`, as a producer sends them).
fn to_native(r: &pb::ExportTraceServiceRequest) -> (Vec<u8>, usize) {
    let mut ctx = tracecast::ingest::IngestContext::new(1 << 20, 0, 1);
    let m = tracecast::otlp::map_request(r, &tracecast::otlp::MapConfig::default(), &mut ctx);
    let events: Vec<Value> = m
        .events
        .iter()
        .map(|p| {
            let mut full = b"{".to_vec();
            full.extend_from_slice(&p.json_tail[p.headroom..]);
            let mut v: Value = serde_json::from_slice(&full).expect("stored JSON");
            if let Some(o) = v.as_object_mut() {
                o.remove("id");
            }
            v
        })
        .collect();
    let n = events.len();
    (serde_json::to_vec(&events).expect("json"), n)
}

struct Mode {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    bodies: Vec<Vec<u8>>,
    events_per_request: usize,
}

fn read_response(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                buf.drain(..end + 4 + len);
                return Ok(status);
            }
        }
        let mut chunk = [0u8; 8192];
        let n = sock.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("server closed the connection"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Runs one mode for `secs`; returns requests completed.
fn run(addr: &str, mode: &Arc<Mode>, conns: usize, secs: u64) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..conns)
        .map(|c| {
            let (addr, mode, stop, done) =
                (addr.to_string(), mode.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut sock = TcpStream::connect(&addr).expect("connect");
                sock.set_nodelay(true).ok();
                let body = &mode.bodies[c % mode.bodies.len()];
                let head = format!(
                    "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
                    mode.path,
                    mode.content_type,
                    body.len()
                );
                let mut req = head.into_bytes();
                req.extend_from_slice(body);
                let mut buf = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    sock.write_all(&req).expect("write");
                    let status = read_response(&mut sock, &mut buf).expect("response");
                    assert!(status == 200 || status == 202, "status {status}");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let start_count = done.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(secs));
    let n = done.load(Ordering::Relaxed) - start_count;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    n
}

fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // utime and stime are fields 14 and 15: 12 and 13 after the name.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

fn main() {
    let args = Args::parse();
    let reqs: Vec<_> = (0..args.conns as u64)
        .map(|c| request(args.spans, c))
        .collect();
    let (native, events) = {
        let all: Vec<_> = reqs.iter().map(to_native).collect();
        let n = all[0].1;
        (all.into_iter().map(|(b, _)| b).collect::<Vec<_>>(), n)
    };
    let modes: Vec<Arc<Mode>> = args
        .modes
        .split(',')
        .map(|m| {
            Arc::new(match m {
                "native" => Mode {
                    name: "native",
                    path: "/v1/events",
                    content_type: "application/json",
                    bodies: native.clone(),
                    events_per_request: events,
                },
                "protobuf" => Mode {
                    name: "protobuf",
                    path: "/v1/traces",
                    content_type: "application/x-protobuf",
                    bodies: reqs.iter().map(|r| r.encode_to_vec()).collect(),
                    events_per_request: events,
                },
                "json" => Mode {
                    name: "json",
                    path: "/v1/traces",
                    content_type: "application/json",
                    bodies: reqs.iter().map(to_json).collect(),
                    events_per_request: events,
                },
                other => panic!("unknown mode {other}"),
            })
        })
        .collect();
    for m in &modes {
        println!(
            "# {}: {} bytes per request of {} spans ({} events)",
            m.name,
            m.bodies[0].len(),
            args.spans,
            m.events_per_request
        );
    }
    if let Some(n) = args.offline {
        offline(&modes, n, args.spans);
        return;
    }
    println!("round mode      spans/s    events/s   server-cpu-us/span");
    for round in 1..=args.rounds {
        for m in &modes {
            let cpu0 = args.server_pid.map(cpu_secs);
            let t = Instant::now();
            let n = run(&args.addr, m, args.conns, args.duration);
            let secs = args.duration as f64;
            let _ = t;
            let spans = n as f64 * args.spans as f64;
            let cpu = match (cpu0, args.server_pid) {
                (Some(c0), Some(pid)) => {
                    // The CPU over warm-up + measured window, per span of that window
                    // scaled to it (an estimate; the idle pause is excluded).
                    let total = cpu_secs(pid) - c0;
                    format!("{:.3}", total / (secs + 1.0) * secs / spans * 1e6)
                }
                _ => "-".into(),
            };
            println!(
                "{round:>5} {:<9} {:>9.0} {:>11.0}   {cpu}",
                m.name,
                spans / secs,
                n as f64 * m.events_per_request as f64 / secs,
            );
        }
    }
}
