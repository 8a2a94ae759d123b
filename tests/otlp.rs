//! OpenTelemetry ingest end to end (SPEC §12): OTLP/HTTP exports to the real binary —
//! OTLP/JSON from the specification's examples, protobuf, gzip, a gzip bomb, malformed
//! bodies, partial success, auth, rate limits, the OTLP-only port — and a real Python
//! OpenTelemetry SDK agent (tests/otlp/agent.py) whose spans a WebSocket subscriber sees
//! mapped, then rebuilt by time travel.

mod common;
use common::*;
use prost::Message as _;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use tracecast::otlp::proto::*;

const JSON: &str = "application/json";
const PROTOBUF: &str = "application/x-protobuf";

fn post(s: &TestServer, ct: &str, extra: &[(&str, &str)], body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut h = vec![("Content-Type", ct)];
    h.extend_from_slice(extra);
    s.http("POST", "/v1/traces", &h, body)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 6));
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// A span in OTLP/JSON, as the specification's examples write one.
fn json_span(trace: &str, span: &str, parent: &str, name: &str, attrs: Value, t0: i64) -> Value {
    json!({
        "traceId": trace, "spanId": span, "parentSpanId": parent, "name": name,
        "kind": 1,
        "startTimeUnixNano": (t0 * 1_000_000).to_string(),
        "endTimeUnixNano": (t0 + 40) * 1_000_000,
        "attributes": attrs,
        "status": {}
    })
}

fn json_request(resource: Value, spans: Vec<Value>) -> Vec<u8> {
    json!({"resourceSpans": [{
        "resource": {"attributes": resource},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
        "schemaUrl": "https://opentelemetry.io/schemas/1.26.0"
    }]})
    .to_string()
    .into_bytes()
}

fn str_attr(k: &str, v: &str) -> Value {
    json!({"key": k, "value": {"stringValue": v}})
}

const TRACE: &str = "5b8efff798038103d269b633813fc60c";

fn protobuf_request(session: &str, n: usize) -> Vec<u8> {
    let kv = |k: &str, v: &str| KeyValue {
        key: k.to_string().into(),
        value: Some(AnyValue {
            value: Some(tracecast::otlp::proto::Value::String(v.to_string().into())),
        }),
    };
    let t0 = unix_now() as u64 * 1_000_000;
    let spans = (0..n)
        .map(|i| Span {
            trace_id: vec![7; 16].into(),
            span_id: (i as u64 + 1).to_be_bytes().to_vec().into(),
            parent_span_id: Default::default(),
            name: format!("step {i}").into(),
            kind: 1,
            start_time_unix_nano: t0 + i as u64 * 1_000_000,
            end_time_unix_nano: t0 + i as u64 * 1_000_000 + 500_000,
            attributes: vec![kv("session.id", session), kv("gen_ai.agent.id", "pb")],
            events: vec![],
            status: None,
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "svc")],
            }),
            scope_spans: vec![ScopeSpans { scope: None, spans }],
        }],
    }
    .encode_to_vec()
}

/// The specification's JSON example, through the real server to a subscriber: hex ids
/// of any case, a string and a number int64 time, unknown fields ignored; the answer is
/// OTLP/JSON `{}`.
#[test]
fn json_example_reaches_a_subscriber() {
    let s = TestServer::start("");
    let mut c = s.client();
    c.subscribe("my.service");
    let body = json_request(
        json!([str_attr("service.name", "my.service")]),
        vec![json!({
            "traceId": "5B8EFFF798038103D269B633813FC60C",
            "spanId": "EEE19B7EC3C1B174",
            "parentSpanId": "EEE19B7EC3C1B173",
            "name": "I'm a server span",
            "startTimeUnixNano": "1544712660000000000",
            "endTimeUnixNano": 1544712661000000000u64,
            "kind": 2,
            "droppedAttributesCount": 0,
            "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}},
                           {"key": "big", "value": {"intValue": "9007199254740993"}}],
            "someFutureField": {"x": 1}
        })],
    );
    let (status, head, resp) = post(&s, JSON, &[], &body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    assert_eq!(header(&head, "content-type"), Some(JSON));
    assert_eq!(resp, b"{}");
    let (events, _) = c.recv_events(2);
    assert_eq!(events[0]["type"], "TASK_START");
    assert_eq!(events[0]["timestamp"], 1_544_712_660_000i64);
    assert_eq!(events[0]["traceId"], TRACE);
    assert_eq!(events[0]["spanId"], "eee19b7ec3c1b174");
    assert_eq!(events[0]["parentId"], "eee19b7ec3c1b173");
    assert_eq!(events[0]["agentId"], "my.service");
    assert_eq!(events[0]["data"]["name"], "I'm a server span");
    assert_eq!(
        events[0]["data"]["attributes"]["big"].as_u64(),
        Some(9_007_199_254_740_993)
    );
    assert_eq!(events[1]["type"], "TASK_COMPLETE");
    assert_eq!(events[1]["timestamp"], 1_544_712_661_000i64);
    assert_eq!(events[1]["duration"], 1000.0);
    // An empty request is a success too.
    let (status, _, resp) = post(&s, JSON, &[], b"{}");
    assert_eq!((status, resp.as_slice()), (200, &b"{}"[..]));
}

/// Protobuf, plain and gzipped, answered in protobuf; history has every span's events.
#[test]
fn protobuf_and_gzip() {
    let s = TestServer::start("");
    let body = protobuf_request("pb-1", 10);
    let (status, head, resp) = post(&s, PROTOBUF, &[], &body);
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-type"), Some(PROTOBUF));
    let r = ExportTraceServiceResponse::decode(resp.as_slice()).expect("a response message");
    assert_eq!(r.partial_success, None);
    let (status, _, _) = post(
        &s,
        PROTOBUF,
        &[("Content-Encoding", "gzip")],
        &gzip(&protobuf_request("pb-2", 10)),
    );
    assert_eq!(status, 200);
    for session in ["pb-1", "pb-2"] {
        let (events, total) = http_history(&s, &format!("sessionId={session}"));
        assert_eq!(total, 20, "{session}");
        assert_eq!(events[0]["agentId"], "pb");
        assert_eq!(events[0]["metadata"]["service.name"], "svc");
    }
    // A damaged gzip body is malformed.
    let mut z = gzip(&body);
    let n = z.len();
    z[n - 5] ^= 0xff;
    let (status, _, resp) = post(&s, PROTOBUF, &[("Content-Encoding", "gzip")], &z);
    assert_eq!(status, 400);
    let st = RpcStatus::decode(resp.as_slice()).unwrap();
    assert!(st.message.contains("gzip"), "{}", st.message);
}

/// 8 KiB that inflate to 40 MiB: 413 after decompression, the server's memory intact and
/// the server serving.
#[test]
fn a_gzip_bomb_gets_413() {
    let s = TestServer::start("");
    let bomb = gzip(&vec![b' '; 40 << 20]);
    assert!(bomb.len() < 100 * 1024, "{}", bomb.len());
    let (_, rss_before) = s.rss_kb();
    let (status, head, resp) = post(&s, JSON, &[("Content-Encoding", "gzip")], &bomb);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&resp));
    assert_eq!(header(&head, "content-type"), Some(JSON));
    let v: Value = serde_json::from_slice(&resp).unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("after decompression"),
        "{v}"
    );
    let (peak, _) = s.rss_kb();
    // The limit (20 MiB) bounds what inflating may hold, never the 40 MiB.
    assert!(
        peak < rss_before + 36 * 1024,
        "peak {peak} KiB, before {rss_before} KiB"
    );
    let (status, _, _) = post(&s, PROTOBUF, &[], &protobuf_request("after", 1));
    assert_eq!(status, 200);
    // A plain body over the limit is refused before it is read.
    let s = TestServer::start("[otlp]\nmax_body_bytes = 1000\n");
    let (status, _, _) = post(&s, JSON, &[], &[b' '; 2000]);
    assert_eq!(status, 413);
}

/// Broken protobuf and JSON: 400 with a `Status` naming the problem; nothing stored, and
/// the server keeps serving (others and the same client).
#[test]
fn malformed_bodies_get_400_and_harm_nothing() {
    let s = TestServer::start("");
    let mut c = s.client();
    c.subscribe("pb-ok");
    let cases: &[(&str, &[u8])] = &[
        (PROTOBUF, b"\x0a\xff\xff\xff\xff\x0f"),
        (PROTOBUF, b"\x0a\x05\x12\x03\x12\x01\xff"),
        (PROTOBUF, &[0xff; 64]),
        (JSON, b"{\"resourceSpans\":[{"),
        (
            JSON,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#,
        ),
    ];
    for (ct, body) in cases {
        let (status, head, resp) = post(&s, ct, &[], body);
        assert_eq!(status, 400, "{body:?}");
        assert_eq!(header(&head, "content-type"), Some(*ct));
        let message = if *ct == PROTOBUF {
            let st = RpcStatus::decode(resp.as_slice()).expect("a Status");
            assert_eq!(st.code, 3);
            st.message
        } else {
            let v: Value = serde_json::from_slice(&resp).unwrap();
            assert_eq!(v["code"], 3);
            v["message"].as_str().unwrap().to_string()
        };
        assert!(message.contains("malformed"), "{message}");
    }
    let (status, _, _) = post(&s, "text/plain", &[], b"hello");
    assert_eq!(status, 415);
    let (status, _, _) = s.http("GET", "/v1/traces", &[], b"");
    assert_eq!(status, 405);
    let (status, _, _) = post(&s, PROTOBUF, &[], &protobuf_request("pb-ok", 2));
    assert_eq!(status, 200);
    let (events, _) = c.recv_events(4);
    assert!(events.iter().all(|e| e["sessionId"] == "pb-ok"));
    assert_eq!(s.post_events(r#"{"type":"T","sessionId":"native"}"#).0, 202);
}

/// Spans that cannot be mapped are rejected alone: 200 with `partial_success` naming
/// them, the others stored.
#[test]
fn partial_success() {
    let s = TestServer::start("");
    let t0 = unix_now();
    let body = json!({"resourceSpans": [
        {"resource": {"attributes": [str_attr("service.name", "svc")]},
         "scopeSpans": [{"spans": [
            json_span(TRACE, "0000000000000001", "", "good", json!([]), t0),
            json_span("", "0000000000000002", "", "no trace id", json!([]), t0)]}]},
        {"resource": {"attributes": []},
         "scopeSpans": [{"spans": [
            json_span(TRACE, "0000000000000003", "", "no session", json!([]), t0)]}]}
    ]});
    let (status, _, resp) = post(&s, JSON, &[], body.to_string().as_bytes());
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], 2, "{v}");
    let msg = v["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(msg.contains("span 1: traceId"), "{msg}");
    let (events, total) = http_history(&s, "sessionId=svc");
    assert_eq!(total, 2);
    assert_eq!(events[0]["data"]["name"], "good");
    // In protobuf too.
    let mut req = ExportTraceServiceRequest::decode(protobuf_request("p", 2).as_slice()).unwrap();
    req.resource_spans[0].scope_spans[0].spans[1].span_id = vec![1].into();
    let (status, _, resp) = post(&s, PROTOBUF, &[], &req.encode_to_vec());
    assert_eq!(status, 200);
    let r = ExportTraceServiceResponse::decode(resp.as_slice()).unwrap();
    assert_eq!(r.partial_success.unwrap().rejected_spans, 1);
}

const PUB_KEY: &str = "otlp-publisher-key-0123456789";
const READ_KEY: &str = "otlp-reader-key-0123456789ab";

#[test]
fn auth_as_for_native_ingest() {
    let s = TestServer::start(&format!(
        "[auth]\nenabled = true\n\
         [[auth.api_keys]]\nkey = {PUB_KEY:?}\npermissions = [\"publish\"]\n\
         [[auth.api_keys]]\nkey = {READ_KEY:?}\npermissions = [\"read\"]\n"
    ));
    let body = protobuf_request("authed", 1);
    let (status, head, resp) = post(&s, PROTOBUF, &[], &body);
    assert_eq!(status, 401);
    assert_eq!(header(&head, "www-authenticate"), Some("Bearer"));
    assert_eq!(RpcStatus::decode(resp.as_slice()).unwrap().code, 16);
    let (status, _, _) = post(&s, PROTOBUF, &[("X-API-Key", "wrong")], &body);
    assert_eq!(status, 401);
    let (status, _, resp) = post(&s, PROTOBUF, &[("X-API-Key", READ_KEY)], &body);
    assert_eq!(status, 403);
    assert_eq!(RpcStatus::decode(resp.as_slice()).unwrap().code, 7);
    let (status, _, _) = post(&s, PROTOBUF, &[("X-API-Key", PUB_KEY)], &body);
    assert_eq!(status, 200);
    let (_, total) = http_history_with(&s, "sessionId=authed", READ_KEY);
    assert_eq!(total, 2);
}

fn http_history_with(s: &TestServer, query: &str, key: &str) -> (Value, u64) {
    let (status, head, body) = s.http(
        "GET",
        &format!("/v1/history?{query}"),
        &[("X-API-Key", key)],
        b"",
    );
    assert_eq!(status, 200);
    let total = header(&head, "x-total-count").unwrap().parse().unwrap();
    (Value::String(String::from_utf8_lossy(&body).into()), total)
}

/// One keep-alive connection, as exporters keep one: requests in order, answers read
/// by their `Content-Length`.
struct KeepAlive {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl KeepAlive {
    fn new(addr: &str) -> KeepAlive {
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        KeepAlive {
            sock,
            buf: Vec::new(),
        }
    }

    fn post(&mut self, path: &str, ct: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.sock.write_all(head.as_bytes()).unwrap();
        self.sock.write_all(body).unwrap();
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let len: usize = header(&head, "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let (status, head, body) = parse_response(&self.buf[..end + 4 + len]);
                    self.buf.drain(..end + 4 + len);
                    return (status, head, body);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.sock.read(&mut chunk).expect("read");
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The connection's bucket, as for WebSocket messages: past it, 429 with `Retry-After`,
/// in the request's content type.
#[test]
fn rate_limit_gets_429_with_retry_after() {
    let s = TestServer::start(
        "[rate_limit]\nwindow_ms = 60000\nmax_messages = 3\nabuse_multiplier = 100\n",
    );
    let mut k = KeepAlive::new(&s.addr);
    let body = protobuf_request("limited", 1);
    for _ in 0..3 {
        assert_eq!(k.post("/v1/traces", PROTOBUF, &body).0, 200);
    }
    let (status, head, resp) = k.post("/v1/traces", PROTOBUF, &body);
    assert_eq!(status, 429);
    let secs: u64 = header(&head, "retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&secs), "{secs}");
    assert_eq!(RpcStatus::decode(resp.as_slice()).unwrap().code, 8);
    let (status, head, _) = k.post("/v1/traces", JSON, b"{}");
    assert_eq!(status, 429);
    assert_eq!(header(&head, "content-type"), Some(JSON));
    let (_, total) = http_history(&s, "sessionId=limited");
    assert_eq!(total, 6);
}

/// `[otlp] port`: a second listener that serves `POST /v1/traces` and nothing else.
#[test]
fn the_otlp_port_serves_only_otlp() {
    let s = TestServer::start("[otlp]\nport = 0\n");
    let line = s.wait_log("OTLP-only port open");
    let v: Value = serde_json::from_str(&line).unwrap();
    let addr = v["fields"]["addr"].as_str().unwrap().to_string();
    assert_ne!(addr, s.addr);
    let mut k = KeepAlive::new(&addr);
    let (status, _, _) = k.post("/v1/traces", PROTOBUF, &protobuf_request("port", 1));
    assert_eq!(status, 200);
    let (status, _, _) = k.post("/v1/events", JSON, br#"{"type":"T","sessionId":"x"}"#);
    assert_eq!(status, 404);
    let (status, _, _) = http(&addr, "GET", "/healthz", &[], b"");
    assert_eq!(status, 404);
    let (_, total) = http_history(&s, "sessionId=port");
    assert_eq!(total, 2);
}

/// A Python with the OpenTelemetry SDK and its OTLP/HTTP exporter: `OTLP_TEST_PYTHON`, or
/// the venv under `target/otel-venv` (`.ci/run` makes it; so does this test, from PyPI, the
/// first time it runs where python3 exists, so plain `cargo test` needs no set-up step).
fn python() -> Option<String> {
    if let Ok(p) = std::env::var("OTLP_TEST_PYTHON") {
        return Some(p);
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/otel-venv");
    let venv = format!("{dir}/bin/python");
    let ready = |py: &str| {
        std::process::Command::new(py)
            .args([
                "-c",
                "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready(&venv) {
        return Some(venv);
    }
    let run = |cmd: &mut std::process::Command| cmd.output().is_ok_and(|o| o.status.success());
    if !std::path::Path::new(&venv).exists()
        && !run(std::process::Command::new("python3").args(["-m", "venv", dir]))
    {
        return None;
    }
    let installed = run(std::process::Command::new(&venv).args([
        "-m",
        "pip",
        "install",
        "-q",
        "opentelemetry-sdk",
        "opentelemetry-exporter-otlp-proto-http",
    ]));
    (installed && ready(&venv)).then_some(venv)
}

/// A real agent instrumented with the OpenTelemetry Python SDK (GenAI attributes, nested
/// tool spans, an error, span events), exporting OTLP/protobuf over HTTP to the real
/// server. A subscriber sees the mapped events; time travel rebuilds the agent and its
/// tasks.
#[test]
fn a_real_opentelemetry_sdk_agent() {
    let Some(py) = python() else {
        if std::process::Command::new("python3")
            .arg("-V")
            .output()
            .is_err()
        {
            println!("skipped: python3 is not installed");
            return;
        }
        panic!(
            "no Python with opentelemetry-sdk: creating target/otel-venv with python3 -m venv \
             and pip failed; set OTLP_TEST_PYTHON to a Python that has the SDK"
        );
    };
    let s = TestServer::start("");
    let session = "conv-42";
    let mut c = s.client();
    c.subscribe(session);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp/agent.py");
    let out = std::process::Command::new(&py)
        .arg(script)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", s.addr))
        .env("AGENT_SESSION", session)
        .output()
        .expect("run the agent");
    assert!(
        out.status.success(),
        "agent failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.logs()
    );
    let spans: Value = serde_json::from_slice(&out.stdout).expect("the agent prints its spans");
    let spans = spans.as_object().unwrap();
    // create_agent: 1 event; invoke_agent and two tools: 2 each; chat: 2; the span
    // events (one user message, one choice) 1 each; the exception folds into TASK_FAIL.
    let (events, _) = c.recv_events(1 + 2 * 3 + 2 + 2);
    let of = |name: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["spanId"] == spans[name]["span_id"])
            .collect()
    };
    for e in &events {
        assert_eq!(e["sessionId"], session, "{e}");
        let span = spans
            .values()
            .find(|s| s["span_id"] == e["spanId"])
            .expect("every event belongs to an exported span");
        assert_eq!(e["traceId"], span["trace_id"], "{e}");
        assert_eq!(e["metadata"]["service.name"], "demo-agents");
    }
    let spawn = of("create_agent planner");
    assert_eq!(spawn.len(), 1);
    assert_eq!(spawn[0]["type"], "AGENT_SPAWN");
    assert_eq!(spawn[0]["agentId"], "planner");
    let invoke = of("invoke_agent planner");
    assert_eq!(invoke.len(), 2);
    assert_eq!(invoke[0]["type"], "TASK_START");
    assert_eq!(invoke[1]["type"], "TASK_COMPLETE");
    assert_eq!(invoke[0]["agentId"], "planner");
    assert_eq!(
        invoke[0]["timestamp"],
        spans["invoke_agent planner"]["start_ms"]
    );
    assert_eq!(
        invoke[1]["timestamp"],
        spans["invoke_agent planner"]["end_ms"]
    );
    let search = of("execute_tool web_search");
    assert_eq!(search[0]["type"], "TASK_START");
    assert_eq!(search[0]["data"]["tool"], "web_search");
    assert_eq!(
        search[0]["parentId"],
        spans["invoke_agent planner"]["span_id"]
    );
    assert_eq!(search.last().unwrap()["type"], "TASK_COMPLETE");
    let failing = of("execute_tool calculator");
    assert_eq!(failing.last().unwrap()["type"], "TASK_FAIL");
    let fail = failing.last().unwrap();
    assert_eq!(fail["data"]["status"], "error");
    assert_eq!(
        fail["data"]["exception"]["exception.type"],
        "ZeroDivisionError"
    );
    let chat = of("chat gpt-4o");
    let types: Vec<&str> = chat.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "MESSAGE_SEND",
            "MESSAGE_SEND",
            "MESSAGE_RECEIVE",
            "MESSAGE_RECEIVE"
        ],
        "{chat:?}"
    );
    let recv = chat.last().unwrap();
    assert_eq!(recv["data"]["usage"]["inputTokens"], 120);
    assert_eq!(recv["data"]["usage"]["outputTokens"], 42);
    assert!(chat[0]["data"]["attributes"]["gen_ai.request.temperature"].is_f64());
    // Time travel: at the end of the run, the agent and every task in its final state;
    // just before the tools ended, they were running.
    let end: i64 = spans["invoke_agent planner"]["end_ms"].as_i64().unwrap();
    c.send(json!({"type": "time_travel", "sessionId": session, "timestamp": end}));
    let state = c.recv_type("time_travel_state");
    let st = &state["state"];
    assert_eq!(st["agents"]["planner"]["status"], "active", "{st}");
    let task = |name: &str| st["tasks"][spans[name]["span_id"].as_str().unwrap()].clone();
    assert_eq!(task("invoke_agent planner")["status"], "completed", "{st}");
    assert_eq!(task("execute_tool web_search")["status"], "completed");
    assert_eq!(task("execute_tool calculator")["status"], "failed");
    assert_eq!(task("execute_tool web_search")["agentId"], "planner");
    let mid = spans["execute_tool web_search"]["start_ms"]
        .as_i64()
        .unwrap();
    c.send(json!({"type": "time_travel", "sessionId": session, "timestamp": mid}));
    let state = c.recv_type("time_travel_state");
    let st = &state["state"];
    assert_eq!(
        st["tasks"][spans["execute_tool web_search"]["span_id"]
            .as_str()
            .unwrap()]["status"],
        "running",
        "{st}"
    );
    assert_eq!(
        st["tasks"][spans["invoke_agent planner"]["span_id"].as_str().unwrap()]["status"],
        "running"
    );
}

/// Under `fsync = "always"` the answer waits for the disk, and is still OTLP's 200 in
/// the request's content type (not the native 202).
#[test]
fn durable_answers_are_otlp_answers() {
    let s = TestServer::start("[storage]\nfsync = \"always\"\n");
    let (status, head, resp) = post(
        &s,
        JSON,
        &[],
        &json_request(
            json!([str_attr("service.name", "durable")]),
            vec![json_span(
                TRACE,
                "00000000000000aa",
                "",
                "s",
                json!([]),
                unix_now(),
            )],
        ),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    assert_eq!(header(&head, "content-type"), Some(JSON));
    assert_eq!(resp, b"{}");
    let (status, head, resp) = post(&s, PROTOBUF, &[], &protobuf_request("durable-pb", 3));
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-type"), Some(PROTOBUF));
    assert_eq!(
        ExportTraceServiceResponse::decode(resp.as_slice())
            .unwrap()
            .partial_success,
        None
    );
    let (_, total) = http_history(&s, "sessionId=durable-pb");
    assert_eq!(total, 6);
}
