//! Server-side filters end to end (SPEC §4, §7): `subscribe_session.filter` (live,
//! `initial_traces`, `sinceSeq` catch-up), `filter_events`, `request_history.filter`
//! and `GET /v1/history?filter=`, over a real server and real sockets.

mod common;

use common::*;
use serde_json::{json, Value};

fn ev(session: &str, agent: &str, n: usize) -> Value {
    json!({"type": if n % 4 == 0 { "TASK_FAIL" } else { "TASK_START" }, "sessionId": session,
           "agentId": agent, "timestamp": 1_700_000_000_000u64 + n as u64,
           "data": {"n": n, "msg": format!("step {n} timeout")}})
}

fn post(s: &TestServer, session: &str, range: std::ops::Range<usize>) -> Vec<Value> {
    let events: Vec<Value> = range
        .map(|n| ev(session, if n % 2 == 0 { "planner" } else { "coder" }, n))
        .collect();
    let seqs = post_batch(s, &events);
    events
        .into_iter()
        .zip(seqs)
        .map(|(mut e, seq)| {
            e["seq"] = json!(seq);
            e
        })
        .collect()
}

fn ns(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["data"]["n"].as_u64().expect("data.n")).collect()
}

fn subscribe(c: &mut Client, session: &str, filter: Option<&str>, since: Option<u64>) -> Value {
    let mut m = json!({"type": "subscribe_session", "sessionId": session});
    if let Some(f) = filter {
        m["filter"] = json!(f);
    }
    if let Some(s) = since {
        m["sinceSeq"] = json!(s);
    }
    c.send(m);
    c.recv_type("session_info")
}

#[test]
fn two_filters_and_one_unfiltered_client_on_one_session() {
    let s = TestServer::start("");
    let mut fails = s.client();
    let mut big = s.client();
    let mut all = s.client();
    subscribe(&mut fails, "s", Some(r#"type === "TASK_FAIL""#), None);
    fails.recv_type("initial_traces");
    subscribe(&mut big, "s", Some("data.n >= 6 && data.msg.includes('timeout')"), None);
    big.recv_type("initial_traces");
    all.subscribe("s");
    post(&s, "s", 0..10);
    assert_eq!(ns(&fails.recv_events(3).0), vec![0, 4, 8]);
    assert_eq!(ns(&big.recv_events(4).0), vec![6, 7, 8, 9]);
    assert_eq!(ns(&all.recv_events(10).0), (0..10).collect::<Vec<_>>());
    // filter_events replaces a subscription's filter; empty clears it.
    fails.send(json!({"type": "filter_events", "condition": "data.n == 11", "sessionId": "s", "requestId": 3}));
    let a = fails.recv_type("filter_applied");
    assert_eq!((a["condition"].clone(), a["sessionId"].clone(), a["requestId"].clone()), (json!("data.n == 11"), json!("s"), json!(3)));
    post(&s, "s", 10..13);
    assert_eq!(ns(&fails.recv_events(1).0), vec![11]);
    fails.send(json!({"type": "filter_events", "condition": ""}));
    assert_eq!(fails.recv_type("filter_applied")["condition"], "");
    post(&s, "s", 13..15);
    assert_eq!(ns(&fails.recv_events(2).0), vec![13, 14]);
}

#[test]
fn a_filter_combines_with_the_agent_filter() {
    let s = TestServer::start("");
    let mut c = s.client();
    c.send(json!({"type": "filter_agents", "agentIds": ["planner"]}));
    c.recv_type("filter_applied");
    subscribe(&mut c, "s", None, None);
    c.recv_type("initial_traces");
    c.send(json!({"type": "filter_events", "condition": "data.n > 3"}));
    assert_eq!(c.recv_type("filter_applied")["condition"], "data.n > 3");
    post(&s, "s", 0..10);
    // planner has the even n; the condition keeps n > 3: both must pass.
    assert_eq!(ns(&c.recv_events(3).0), vec![4, 6, 8]);
}

#[test]
fn initial_traces_and_since_seq_catch_up_are_filtered_too() {
    let s = TestServer::start("");
    let stored = post(&s, "s", 0..40);
    let mut c = s.client();
    subscribe(&mut c, "s", Some("type == 'TASK_FAIL'"), None);
    let initial = c.recv_type("initial_traces");
    assert_eq!(ns(initial["traces"].as_array().unwrap()), (0..40).step_by(4).collect::<Vec<_>>());
    let mut r = s.client();
    let since = stored[20]["seq"].as_u64().unwrap();
    r.send(json!({"type": "subscribe_session", "sessionId": "s", "filter": "data.n % 2"}));
    let e = r.recv_type("error")["error"].clone();
    assert_eq!((e["code"].clone(), e["position"].clone()), (json!("invalid_condition"), json!(7)));
    subscribe(&mut r, "s", Some("type == 'TASK_FAIL'"), Some(since));
    // Catch-up: the stored events after `since` that match, then live, no gap.
    assert_eq!(ns(&r.recv_events(4).0), vec![24, 28, 32, 36]);
    post(&s, "s", 40..45);
    assert_eq!(ns(&r.recv_events(2).0), vec![40, 44]);
}

#[test]
fn history_answers_only_matching_events_with_exact_totals() {
    let s = TestServer::start("history_chunk_size = 4\n");
    post(&s, "s", 0..50);
    let mut c = s.client();
    c.send(json!({"type": "request_history", "sessionId": "s", "requestId": "h",
                  "timeRange": {"start": 0, "end": 2_000_000_000_000u64},
                  "filter": "data.n >= 10 && type === 'TASK_FAIL'", "offset": 1, "limit": 6}));
    let mut got = Vec::new();
    loop {
        let h = c.recv_type("historical_data");
        assert_eq!(h["total"], 10, "matches in the whole range: {h}");
        assert_eq!(h["requestId"], "h");
        got.extend(h["traces"].as_array().unwrap().iter().cloned());
        if h["chunkInfo"]["isLast"] == true {
            assert_eq!(h["chunkInfo"]["total"], 2);
            break;
        }
    }
    assert_eq!(ns(&got), vec![16, 20, 24, 28, 32, 36]);
    let e = {
        c.send(json!({"type": "request_history", "sessionId": "s",
                      "timeRange": {"start": 0, "end": 1}, "filter": "a ==="}));
        c.recv_type("error")["error"].clone()
    };
    assert_eq!((e["code"].clone(), e["position"].clone()), (json!("invalid_condition"), json!(5)));
    // The same over HTTP.
    let (events, total) = http_history(&s, &format!("sessionId=s&filter={}&limit=3", pct("data.msg.endsWith('9 timeout')")));
    assert_eq!((ns(&events), total), (vec![9, 19, 29], 5));
    let (status, _, body) = s.http("GET", &format!("/v1/history?sessionId=s&filter={}", pct("(")), &[], b"");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("position 1"));
}
