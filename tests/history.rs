//! History end to end: `request_history` chunking (numbering, totals, empty ranges,
//! `limit`, `offset` paging, inclusive time bounds, requestId on every chunk),
//! `GET /v1/history` NDJSON, and `session_info` / `GET /v1/sessions` after publishing.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const T0: i64 = 1_700_000_000_000;
const FAR: i64 = 9_999_999_999_999;

/// A server with sessions `h0` (never published), `h1`, `h100` and `h250`; event `i` of a
/// session has timestamp `T0 + 10 i`. Returns each session's seqs.
fn server_with_sessions() -> (TestServer, Vec<(&'static str, Vec<u64>)>) {
    let s = TestServer::start("history_chunk_size = 100\n");
    let mut out = vec![("h0", Vec::new())];
    for (name, n) in [("h1", 1usize), ("h100", 100), ("h250", 250)] {
        let evs: Vec<Value> = (0..n)
            .map(|i| {
                let mut e = event(name, &format!("a{}", i % 4), "MESSAGE_SEND", i);
                e["timestamp"] = json!(T0 + 10 * i as i64);
                e
            })
            .collect();
        out.push((name, post_batch(&s, &evs)));
    }
    (s, out)
}

/// Sends a `request_history` and collects its chunks up to `isLast` (bounded).
fn history(c: &mut Client, req: Value) -> Vec<Value> {
    c.send(req);
    let mut chunks = Vec::new();
    loop {
        let m = c.recv_type("historical_data");
        let last = m["chunkInfo"]["isLast"] == true;
        chunks.push(m);
        if last {
            return chunks;
        }
        assert!(chunks.len() < 1000, "no isLast");
    }
}

/// Checks the chunk numbering of one answer; returns the events in order.
fn check_chunks(chunks: &[Value], total: u64, rid: &Value) -> Vec<Value> {
    let n = chunks.len() as u64;
    let mut events = Vec::new();
    for (i, ch) in chunks.iter().enumerate() {
        let info = &ch["chunkInfo"];
        assert_eq!(info["current"], i as u64 + 1, "{info}");
        assert_eq!(info["total"], n, "{info}");
        assert_eq!(info["isLast"], i as u64 + 1 == n, "{info}");
        assert_eq!(ch["total"], total, "matches in the range");
        assert_eq!(&ch["requestId"], rid, "requestId on every chunk");
        events.extend(ch["traces"].as_array().expect("traces").iter().cloned());
    }
    events
}

fn req(session: &str, start: i64, end: i64, extra: Value) -> Value {
    let mut r = json!({"type": "request_history", "sessionId": session,
        "timeRange": {"start": start, "end": end}});
    if let (Some(r), Some(x)) = (r.as_object_mut(), extra.as_object()) {
        r.extend(x.clone());
    }
    r
}

#[test]
fn history_chunks_count_from_one_with_consistent_totals() {
    let (s, sessions) = server_with_sessions();
    let mut c = s.client();
    // (session, chunk sizes)
    let table: [(&str, &[usize]); 3] = [("h1", &[1]), ("h100", &[100]), ("h250", &[100, 100, 50])];
    for (name, sizes) in table {
        let want = &sessions.iter().find(|(n, _)| *n == name).unwrap().1;
        let rid = json!(format!("r-{name}"));
        let chunks = history(&mut c, req(name, 0, FAR, json!({"requestId": rid})));
        let got: Vec<usize> = chunks
            .iter()
            .map(|c| c["traces"].as_array().unwrap().len())
            .collect();
        assert_eq!(got, sizes, "{name}");
        let events = check_chunks(&chunks, want.len() as u64, &rid);
        assert_eq!(
            &seqs_of(&events),
            want,
            "{name}: every event once, in order"
        );
        assert!(events.iter().all(|e| e["sessionId"] == name));
    }
    assert!(
        c.try_recv(Duration::from_millis(200)).is_none(),
        "nothing after isLast"
    );
}

#[test]
fn empty_history_answers_once_with_total_zero() {
    let (s, _) = server_with_sessions();
    let mut c = s.client();
    let cases = [
        ("h0", 0, FAR),           // a session never published to
        ("h250", 0, T0 - 1),      // before the first event
        ("h250", T0 + 5, T0 + 9), // between two events
        ("h250", T0 + 3000, FAR), // after the last
    ];
    for (i, (name, start, end)) in cases.into_iter().enumerate() {
        let chunks = history(&mut c, req(name, start, end, json!({"requestId": i})));
        assert_eq!(chunks.len(), 1, "{name} {start}..{end}");
        let events = check_chunks(&chunks, 0, &json!(i));
        assert!(events.is_empty());
        assert_eq!(chunks[0]["chunkInfo"]["current"], 1);
        assert_eq!(chunks[0]["timeRange"]["start"], start);
        assert_eq!(chunks[0]["timeRange"]["end"], end);
    }
    assert!(c.try_recv(Duration::from_millis(200)).is_none());
    // A reversed range is a mistake, not an empty answer.
    c.send(req("h250", T0 + 100, T0 + 50, json!({"requestId": "rev"})));
    let e = c.recv();
    assert_eq!(e["error"]["code"], "invalid_request", "{e}");
    assert_eq!(e["requestId"], "rev");
}

#[test]
fn history_time_bounds_are_inclusive() {
    let (s, sessions) = server_with_sessions();
    let all = &sessions[3].1;
    let mut c = s.client();
    let chunks = history(&mut c, req("h250", T0 + 100, T0 + 190, json!({})));
    let events = check_chunks(&chunks, 10, &Value::Null);
    assert_eq!(seqs_of(&events), all[10..20].to_vec());
    assert!(
        chunks[0].get("requestId").is_none(),
        "no requestId asked, none sent"
    );
}

#[test]
fn history_limit_caps_and_offset_pages_on() {
    let (s, sessions) = server_with_sessions();
    let all = &sessions[3].1;
    let mut c = s.client();
    let mut paged = Vec::new();
    // (offset, limit, chunk sizes)
    let pages: [(usize, usize, &[usize]); 4] = [
        (0, 120, &[100, 20]),
        (120, 120, &[100, 20]),
        (240, 120, &[10]),
        (250, 120, &[0]),
    ];
    for (offset, limit, sizes) in pages {
        let rid = json!(offset);
        let chunks = history(
            &mut c,
            req(
                "h250",
                0,
                FAR,
                json!({"limit": limit, "offset": offset, "requestId": rid}),
            ),
        );
        let got: Vec<usize> = chunks
            .iter()
            .map(|c| c["traces"].as_array().unwrap().len())
            .collect();
        assert_eq!(got, sizes, "offset {offset}");
        paged.extend(check_chunks(&chunks, 250, &rid));
    }
    assert_eq!(
        &seqs_of(&paged),
        all,
        "pages join with no gap and no repeat"
    );
}

#[test]
fn history_session_defaults_to_the_one_subscribed() {
    let (s, sessions) = server_with_sessions();
    let mut c = s.client();
    c.send(
        json!({"type": "request_history", "timeRange": {"start": 0, "end": FAR},
        "requestId": "none"}),
    );
    let e = c.recv_type("error");
    assert_eq!(e["error"]["code"], "no_session", "{e}");
    assert_eq!(e["requestId"], "none");
    c.subscribe("h100");
    c.send(json!({"type": "request_history", "timeRange": {"start": 0, "end": FAR}}));
    let events = check_chunks(&[c.recv_type("historical_data")], 100, &Value::Null);
    assert_eq!(seqs_of(&events), sessions[2].1);
    c.subscribe("h1");
    c.send(
        json!({"type": "request_history", "timeRange": {"start": 0, "end": FAR},
        "requestId": 7}),
    );
    let e = c.recv_type("error");
    assert_eq!(
        e["error"]["code"], "invalid_request",
        "two subscriptions: {e}"
    );
    assert_eq!(e["requestId"], 7);
}

#[test]
fn http_history_is_ndjson_with_range_limit_and_offset() {
    let (s, sessions) = server_with_sessions();
    let all = &sessions[3].1;
    let (status, head, body) = s.http("GET", "/v1/history?sessionId=h250", &[], b"");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/x-ndjson"),
        "{head}"
    );
    assert!(body.ends_with(b"\n"));
    let (events, total) = http_history(&s, "sessionId=h250");
    assert_eq!((seqs_of(&events), total), (all.clone(), 250));
    let (events, total) = http_history(&s, "sessionId=h250&limit=50&offset=100");
    assert_eq!((seqs_of(&events), total), (all[100..150].to_vec(), 250));
    let q = format!("sessionId=h250&start={}&end={}&limit=5", T0 + 100, T0 + 190);
    let (events, total) = http_history(&s, &q);
    assert_eq!((seqs_of(&events), total), (all[10..15].to_vec(), 10));
    // The same bytes the WebSocket side delivers.
    let mut c = s.client();
    let ws = check_chunks(
        &history(&mut c, req("h250", T0 + 100, T0 + 140, json!({}))),
        5,
        &Value::Null,
    );
    assert_eq!(ws, events);
    let (events, total) = http_history(&s, "sessionId=h0");
    assert!(events.is_empty() && total == 0);
    let (status, _, _) = s.http("GET", "/v1/history", &[], b"");
    assert_eq!(status, 400, "sessionId is required");
    let (status, _, _) = s.http("GET", "/v1/history?sessionId=h1&limit=x", &[], b"");
    assert_eq!(status, 400, "a bad number is refused");
}

#[test]
fn session_info_and_v1_sessions_report_the_same_counts() {
    let s = TestServer::start("");
    let evs: Vec<Value> = (0..30)
        .map(|i| {
            let mut e = event("info", &format!("agent-{}", i % 3), "TASK_START", i);
            e["timestamp"] = json!(T0 + 1000 * i as i64);
            e
        })
        .collect();
    let seqs = post_batch(&s, &evs);
    // One more without an agent: counted as an event, not as an agent.
    let bare = json!({"type": "METRIC", "sessionId": "info", "timestamp": T0 + 50_000});
    let last = post_batch(&s, &[bare])[0];
    assert!(last > seqs[29]);
    let mut c = s.client();
    let (info, initial) = c.subscribe("info");
    let want = json!({"id": "info", "eventCount": 31, "agentCount": 3,
        "firstTimestamp": T0, "lastTimestamp": T0 + 50_000, "lastSeq": last});
    assert_eq!(info["session"], want, "{info}");
    assert_eq!(initial["traces"].as_array().unwrap().len(), 31);
    let (status, _, body) = s.http("GET", "/v1/sessions", &[], b"");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let listed = v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "info")
        .cloned();
    assert_eq!(listed, Some(want));
    // A session nobody published to: zero counts, nulls.
    let (info, _) = c.subscribe("nobody");
    assert_eq!(info["session"]["eventCount"], 0);
    assert_eq!(info["session"]["lastSeq"], Value::Null);
}
