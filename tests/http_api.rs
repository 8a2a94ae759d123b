//! The plain-HTTP side of the port (SPEC §3, §9): health, Prometheus metrics, the session
//! list, ingest of a JSON object / array / NDJSON with all-or-nothing batches, the size
//! limit, 404/405, and the `tracecast publish` command against a live server.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EPHEMERAL: &str = "[storage]\npersist = false\n";

fn session<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list["sessions"]
        .as_array()
        .expect("sessions array")
        .iter()
        .find(|s| s["id"] == id)
}

fn sessions(s: &TestServer) -> Value {
    let (st, head, body) = s.http("GET", "/v1/sessions", &[], b"");
    assert_eq!(st, 200);
    assert!(
        head.to_ascii_lowercase().contains("application/json"),
        "{head}"
    );
    serde_json::from_slice(&body).expect("sessions JSON")
}

fn seq(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[test]
fn healthz_is_200_json() {
    let s = TestServer::start(EPHEMERAL);
    let (st, head, body) = s.http("GET", "/healthz", &[], b"");
    assert_eq!(st, 200);
    assert!(
        head.to_ascii_lowercase().contains("application/json"),
        "{head}"
    );
    let v: Value = serde_json::from_slice(&body).expect("JSON body");
    assert_eq!(v["status"], "ok");
}

#[test]
fn metrics_are_prometheus_text_with_ingest_counter() {
    let s = TestServer::start(EPHEMERAL);
    let (st, _) = s.post_events(&event("m", "a", "TASK_START", 1).to_string());
    assert_eq!(st, 202);
    let (st, head, body) = s.http("GET", "/metrics", &[], b"");
    assert_eq!(st, 200);
    assert!(head.to_ascii_lowercase().contains("text/plain"), "{head}");
    let text = String::from_utf8(body).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("tracecast_events_ingested_total"))
        .unwrap_or_else(|| panic!("no ingest counter in:\n{text}"));
    let value: f64 = line.split_whitespace().last().unwrap().parse().unwrap();
    assert_eq!(value, 1.0, "{line}");
    assert!(
        text.contains("# TYPE tracecast_events_ingested_total counter"),
        "{text}"
    );
}

#[test]
fn sessions_lists_a_session_with_counts() {
    let s = TestServer::start(EPHEMERAL);
    let evs = json!([
        event("alpha", "a1", "TASK_START", 1),
        event("alpha", "a2", "TASK_START", 2),
        event("alpha", "a1", "TASK_COMPLETE", 3),
    ]);
    let (st, ack) = s.post_events(&evs.to_string());
    assert_eq!(st, 202);
    let list = sessions(&s);
    let a = session(&list, "alpha").expect("alpha listed");
    assert_eq!(a["eventCount"], 3);
    assert_eq!(a["agentCount"], 2);
    assert_eq!(a["lastSeq"], ack["lastSeq"]);
    assert!(
        a["firstTimestamp"].is_number() && a["lastTimestamp"].is_number(),
        "{a}"
    );
}

#[test]
fn post_object_array_and_ndjson_are_accepted_with_contiguous_seqs() {
    let s = TestServer::start(EPHEMERAL);
    let (st, one) = s.post_events(&event("p", "a", "TASK_START", 1).to_string());
    assert_eq!(st, 202, "{one}");
    assert_eq!(one["accepted"], 1);
    assert_eq!(one["firstSeq"], one["lastSeq"]);

    let arr = json!([
        event("p", "a", "TASK_START", 2),
        event("p", "b", "TASK_START", 3)
    ]);
    let (st, two) = s.post_events(&arr.to_string());
    assert_eq!(st, 202, "{two}");
    assert_eq!(two["accepted"], 2);
    assert_eq!(seq(&two, "firstSeq"), seq(&one, "lastSeq") + 1);
    assert_eq!(seq(&two, "lastSeq"), seq(&two, "firstSeq") + 1);

    let nd: String = (4..7)
        .map(|i| format!("{}\n", event("p", "c", "TASK_START", i)))
        .collect();
    let (st, _, body) = s.http(
        "POST",
        "/v1/events",
        &[("Content-Type", "application/x-ndjson")],
        nd.as_bytes(),
    );
    let three: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st, 202, "{three}");
    assert_eq!(three["accepted"], 3);
    assert_eq!(seq(&three, "firstSeq"), seq(&two, "lastSeq") + 1);
    assert_eq!(seq(&three, "lastSeq"), seq(&three, "firstSeq") + 2);
    assert_eq!(session(&sessions(&s), "p").unwrap()["eventCount"], 6);
}

#[test]
fn a_bad_item_rejects_the_whole_batch_naming_index_and_field() {
    let s = TestServer::start(EPHEMERAL);
    let mut sub = s.client();
    sub.subscribe("b");
    let (st, before) = s.post_events(&event("b", "a", "TASK_START", 0).to_string());
    assert_eq!(st, 202);
    let _ = sub.recv_events(1);

    let mut bad = json!([
        event("b", "a", "TASK_START", 1),
        event("b", "a", "TASK_START", 2),
        event("b", "a", "TASK_START", 3),
        event("b", "a", "TASK_START", 4),
    ]);
    bad[2].as_object_mut().unwrap().remove("sessionId");
    let (st, err) = s.post_events(&bad.to_string());
    assert_eq!(st, 400, "{err}");
    let msg = err["error"]["message"].as_str().expect("error message");
    let names_index = msg
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w == "2");
    assert!(names_index && msg.contains("sessionId"), "{msg}");
    assert_eq!(err["error"]["code"], "invalid_request", "{err}");
    assert_eq!(err["error"]["index"], 2, "{err}");
    assert_eq!(err["error"]["field"], "sessionId", "{err}");

    // Nothing of the refused batch was stored or delivered, and no seq was spent on it.
    assert_eq!(session(&sessions(&s), "b").unwrap()["eventCount"], 1);
    let (st, after) = s.post_events(&event("b", "a", "TASK_START", 9).to_string());
    assert_eq!(st, 202);
    assert_eq!(seq(&after, "firstSeq"), seq(&before, "lastSeq") + 1);
    let (got, _) = sub.recv_events(1);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["data"]["n"], 9);
}

#[test]
fn a_producer_seq_is_refused() {
    let s = TestServer::start(EPHEMERAL);
    let mut e = event("q", "a", "TASK_START", 1);
    e["seq"] = json!(5);
    let (st, err) = s.post_events(&e.to_string());
    assert_eq!(st, 400, "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("seq"),
        "{err}"
    );
}

#[test]
fn body_over_max_message_size_is_413() {
    let s = TestServer::start(&format!(
        "max_message_size = 4096\nmax_event_bytes = 4096\n{EPHEMERAL}"
    ));
    // Written by hand: the server may answer before the body is sent, so a write error
    // after the head is fine.
    let mut t = std::net::TcpStream::connect(&s.addr).unwrap();
    t.set_read_timeout(Some(WAIT)).unwrap();
    let body = vec![b' '; 8000];
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    t.write_all(head.as_bytes()).unwrap();
    let _ = t.write_all(&body);
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = t.read(&mut buf) {
        if n == 0 {
            break;
        }
        resp.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 413"), "got {text:?}");
    assert!(sessions(&s)["sessions"].as_array().unwrap().is_empty());
}

#[test]
fn unknown_path_is_404() {
    let s = TestServer::start(EPHEMERAL);
    let (st, _, body) = s.http("GET", "/no/such/thing", &[], b"");
    assert_eq!(st, 404);
    let v: Value = serde_json::from_slice(&body).expect("JSON error body");
    assert!(v["error"]["message"].is_string(), "{v}");
}

#[test]
fn wrong_method_is_405() {
    let s = TestServer::start(EPHEMERAL);
    let (st, head, _) = s.http("GET", "/v1/events", &[], b"");
    assert_eq!(st, 405);
    assert!(head.to_ascii_lowercase().contains("allow: post"), "{head}");
    let (st, _, _) = s.http("DELETE", "/healthz", &[], b"");
    assert_eq!(st, 405);
}

#[test]
fn publish_cli_stores_piped_ndjson() {
    let s = TestServer::start(EPHEMERAL);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracecast"))
        .args(["publish", "--batch", "4", "--url"])
        .arg(format!("http://{}", s.addr))
        .env_remove("TRACECAST_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn publish");
    let nd: String = (0..10)
        .map(|i| format!("{}\n", event("cli", "a", "TASK_START", i)))
        .collect();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(nd.as_bytes()).unwrap();
    drop(stdin);
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "publish did not finish");
        std::thread::sleep(Duration::from_millis(10)); // polling a process, not syncing
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "publish failed: {status}\n{err}");
    let acks: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("ack JSON"))
        .collect();
    let total: u64 = acks.iter().map(|a| a["accepted"].as_u64().unwrap()).sum();
    assert_eq!(total, 10, "{out}");
    assert_eq!(session(&sessions(&s), "cli").unwrap()["eventCount"], 10);
}

/// A chunked request body (what streaming HTTP clients send) is decoded and ingested; one
/// that grows past max_message_size is refused with 413.
#[test]
fn chunked_post_is_accepted_and_an_oversized_one_is_413() {
    use std::io::{Read, Write};
    let s = TestServer::start(
        "max_message_size = 8192\nmax_event_bytes = 4096\n[storage]\npersist = false\n",
    );
    let send = |chunks: &[&[u8]]| {
        let mut st = std::net::TcpStream::connect(&s.addr).unwrap();
        st.set_read_timeout(Some(WAIT)).unwrap();
        let mut req = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for c in chunks {
            req.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            req.extend_from_slice(c);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        let _ = st.write_all(&req);
        let mut resp = Vec::new();
        let _ = st.read_to_end(&mut resp);
        parse_response(&resp)
    };
    let line = |i: usize| format!("{}\n", event("ch-1", "a", "TASK_START", i));
    let (a, b) = (line(1), line(2));
    let (status, _, body) = send(&[a.as_bytes(), b.as_bytes()]);
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let ack: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(ack["accepted"], 2);

    let big = vec![b' '; 5000];
    let (status, _, _) = send(&[a.as_bytes(), &big, &big]);
    assert_eq!(status, 413);
}
