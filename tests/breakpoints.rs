//! Conditional breakpoints end to end (SPEC §7): a real server, real sockets.
//!
//! "Nothing arrives while paused" is checked without sleeping: the client sends a
//! `heartbeat` and reads up to its `heartbeat_response`; the server answers in order,
//! so any event frame queued before it would be read first.

mod common;

use common::*;
use serde_json::{json, Value};

fn ev(session: &str, kind: &str, n: usize) -> Value {
    json!({"type": kind, "sessionId": session, "agentId": format!("a{}", n % 3),
           "data": {"n": n, "status": if n % 10 == 7 { "error" } else { "ok" }}})
}

fn post(s: &TestServer, session: &str, range: std::ops::Range<usize>) -> Vec<u64> {
    let events: Vec<Value> = range.map(|n| ev(session, "T", n)).collect();
    post_batch(s, &events)
}

/// Reads up to the answer of a heartbeat, returning what came before it.
fn drain(c: &mut Client) -> Vec<Value> {
    c.send(json!({"type": "heartbeat", "requestId": "drain"}));
    let mut before = Vec::new();
    loop {
        let v = c.recv();
        if v["type"] == "heartbeat_response" && v["requestId"] == "drain" {
            return before;
        }
        if v["type"] != "heartbeat" {
            before.push(v);
        }
    }
}

fn batch_seqs(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f["type"] == "trace_batch")
        .flat_map(|f| f["events"].as_array().cloned().unwrap_or_default())
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect()
}

/// Reads until a `breakpoint_hit`, returning the events delivered before it and it.
fn until_hit(c: &mut Client) -> (Vec<u64>, Value) {
    let mut seqs = Vec::new();
    loop {
        let v = c.recv();
        match v["type"].as_str() {
            Some("trace_batch") => seqs.extend(batch_seqs(&[v])),
            Some("breakpoint_hit") => return (seqs, v),
            _ => {}
        }
    }
}

fn set(c: &mut Client, name: &str, cond: &str) -> Value {
    c.send(json!({"type": "set_breakpoint", "traceId": name, "condition": cond}));
    c.recv_type("breakpoint_set")
}

fn error_of(c: &mut Client, msg: Value) -> Value {
    c.send(msg);
    c.recv_type("error")["error"].clone()
}

#[test]
fn a_hit_inside_a_batch_pauses_and_resume_rejoins_live_without_gap_or_duplicate() {
    let s = TestServer::start("");
    let mut c = s.client();
    c.subscribe("s");
    let set_reply = set(&mut c, "third", "data.n===3");
    assert_eq!(set_reply["condition"], "data.n === 3");
    let seqs = post(&s, "s", 0..6);
    let (before, hit) = until_hit(&mut c);
    assert_eq!(before, seqs[..3], "events before the hit in the same batch come first");
    assert_eq!(hit["traceId"], "third");
    assert_eq!(hit["sessionId"], "s");
    assert_eq!(hit["event"]["seq"], seqs[3]);
    assert_eq!(hit["event"]["data"]["n"], 3);
    // Paused: the rest of the batch and everything after stays in the log.
    let later = post(&s, "s", 6..9);
    assert!(batch_seqs(&drain(&mut c)).is_empty(), "nothing is delivered while paused");
    c.send(json!({"type": "resume"}));
    let (got, _) = c.recv_events(5);
    let want: Vec<u64> = seqs[4..].iter().chain(&later).copied().collect();
    assert_eq!(seqs_of(&got), want, "the hitting event is not delivered again");
    // Live again: the next event arrives once.
    let live = post(&s, "s", 9..10);
    let (got, _) = c.recv_events(1);
    assert_eq!(seqs_of(&got), live);
    assert!(batch_seqs(&drain(&mut c)).is_empty());
}

#[test]
fn step_delivers_exactly_the_next_event_and_remove_and_replace_work() {
    let s = TestServer::start("");
    let mut c = s.client();
    c.subscribe("s");
    set(&mut c, "bp", "data.n == 1");
    let seqs = post(&s, "s", 0..5);
    let (before, hit) = until_hit(&mut c);
    assert_eq!(before, vec![seqs[0]]);
    assert_eq!(hit["event"]["seq"], seqs[1]);
    for want in &seqs[2..4] {
        c.send(json!({"type": "step"}));
        let (got, frames) = c.recv_events(1);
        assert_eq!((seqs_of(&got), frames), (vec![*want], 1), "a trace_batch of one");
        assert!(batch_seqs(&drain(&mut c)).is_empty(), "and paused again");
    }
    // Replace: same name, new condition, hits start again.
    let r = set(&mut c, "bp", "data.n >= 6");
    assert_eq!(r["condition"], "data.n >= 6");
    c.send(json!({"type": "list_breakpoints"}));
    let l = c.recv_type("breakpoints");
    assert_eq!(l["items"], json!([{"traceId": "bp", "condition": "data.n >= 6", "hits": 0}]));
    // A step onto an event that hits reports the hit instead.
    let more = post(&s, "s", 5..8);
    c.send(json!({"type": "resume"}));
    let (before, hit) = until_hit(&mut c);
    assert_eq!(before, vec![seqs[4], more[0]]);
    assert_eq!(hit["event"]["seq"], more[1]);
    c.send(json!({"type": "remove_breakpoint", "traceId": "bp", "requestId": 5}));
    let r = c.recv_type("breakpoint_removed");
    assert_eq!((r["traceId"].clone(), r["requestId"].clone()), (json!("bp"), json!(5)));
    // Removing does not resume: the subscription stays paused until asked.
    assert!(batch_seqs(&drain(&mut c)).is_empty());
    c.send(json!({"type": "resume"}));
    let (got, _) = c.recv_events(1);
    assert_eq!(seqs_of(&got), vec![more[2]]);
    let live = post(&s, "s", 8..20);
    let (got, _) = c.recv_events(12);
    assert_eq!(seqs_of(&got), live, "no breakpoint left: everything flows");
}

#[test]
fn step_at_the_end_of_the_log_waits_for_the_next_event() {
    let s = TestServer::start("");
    let mut c = s.client();
    c.subscribe("s");
    set(&mut c, "any", "true");
    let first = post(&s, "s", 0..1);
    let (_, hit) = until_hit(&mut c);
    assert_eq!(hit["event"]["seq"], first[0]);
    set(&mut c, "any", "false");
    c.send(json!({"type": "step"}));
    assert!(batch_seqs(&drain(&mut c)).is_empty(), "nothing to step to yet");
    let next = post(&s, "s", 1..4);
    let (got, _) = c.recv_events(1);
    assert_eq!(seqs_of(&got), vec![next[0]]);
    assert!(batch_seqs(&drain(&mut c)).is_empty(), "paused after the one event");
    c.send(json!({"type": "resume"}));
    let (got, _) = c.recv_events(2);
    assert_eq!(seqs_of(&got), next[1..]);
}

#[test]
fn several_breakpoints_each_hit_and_are_counted() {
    let s = TestServer::start("");
    let mut c = s.client();
    c.subscribe("s");
    set(&mut c, "errors", r#"data.status === "error""#);
    set(&mut c, "twelve", "data.n === 12");
    let seqs = post(&s, "s", 0..20);
    let (before, hit) = until_hit(&mut c);
    assert_eq!(before, seqs[..7]);
    assert_eq!((hit["traceId"].clone(), hit["event"]["seq"].clone()), (json!("errors"), json!(seqs[7])));
    c.send(json!({"type": "resume"}));
    let (before, hit) = until_hit(&mut c);
    assert_eq!(before, seqs[8..12]);
    assert_eq!(hit["traceId"], "twelve");
    c.send(json!({"type": "resume"}));
    let (before, hit) = until_hit(&mut c);
    assert_eq!(before, seqs[13..17]);
    assert_eq!((hit["traceId"].clone(), hit["event"]["data"]["n"].clone()), (json!("errors"), json!(17)));
    c.send(json!({"type": "list_breakpoints"}));
    let items = c.recv_type("breakpoints")["items"].clone();
    assert_eq!(items[0]["hits"], 2);
    assert_eq!(items[1]["hits"], 1);
    c.send(json!({"type": "resume"}));
    let (got, _) = c.recv_events(2);
    assert_eq!(seqs_of(&got), seqs[18..]);
    assert_eq!(s.metric("tracecast_breakpoint_hits_total", &[]), 3.0);
}

#[test]
fn a_breakpoint_on_one_session_pauses_only_that_subscription_and_others_go_on() {
    let s = TestServer::start("");
    let mut c = s.client();
    let mut other = s.client();
    c.subscribe("s1");
    c.subscribe("s2");
    other.subscribe("s1");
    c.send(json!({"type": "set_breakpoint", "traceId": "b", "condition": "data.n == 2", "sessionId": "s1"}));
    assert_eq!(c.recv_type("breakpoint_set")["sessionId"], "s1");
    let a = post(&s, "s1", 0..5);
    let (before, hit) = until_hit(&mut c);
    assert_eq!(before, a[..2]);
    assert_eq!(hit["sessionId"], "s1");
    // The same condition on s2 does not hit; the other viewer of s1 gets everything.
    let b = post(&s, "s2", 0..5);
    let (got, _) = c.recv_events(5);
    assert_eq!(seqs_of(&got), b);
    let (got, _) = other.recv_events(5);
    assert_eq!(seqs_of(&got), a);
    c.send(json!({"type": "resume"}));
    let (got, _) = c.recv_events(2);
    assert_eq!(seqs_of(&got), a[3..]);
}

#[test]
fn a_pause_lasting_20000_events_holds_nothing_and_loses_nothing() {
    let s = TestServer::start("");
    let mut paused = s.client();
    let mut watcher = s.client();
    paused.subscribe("s");
    watcher.subscribe("s");
    set(&mut paused, "first", "data.n == 0");
    let head = post(&s, "s", 0..1);
    let (_, hit) = until_hit(&mut paused);
    assert_eq!(hit["event"]["seq"], head[0]);
    let (_, _) = watcher.recv_events(1);
    let mem = RssPeak::start(&s);
    let mut seqs = Vec::new();
    for k in 0..20 {
        seqs.extend(post(&s, "s", 1 + k * 1000..1 + (k + 1) * 1000));
        // The other viewer keeps up and gets every event.
        let (got, _) = watcher.recv_events(1000);
        assert_eq!(seqs_of(&got), seqs[k * 1000..]);
    }
    let growth = mem.growth_kb();
    eprintln!("server RSS growth while 20,000 events were published during the pause: {growth} KiB");
    // The paused connection holds nothing: its queue is empty and nothing was sent.
    paused.send(json!({"type": "heartbeat"}));
    let m = paused.recv_type("heartbeat_response")["clientMetrics"].clone();
    assert_eq!(m["queueFrames"], 0, "{m}");
    assert_eq!(m["dropped"], 0, "{m}");
    // What the store keeps for 20,000 ~200-byte events is about 5 MB of page cache and
    // index; a paused subscription buffering them would add as much again per client.
    assert!(growth < 24 * 1024, "RSS grew {growth} KiB during the pause");
    paused.send(json!({"type": "resume"}));
    let (got, _) = paused.recv_events(20_000);
    assert_eq!(seqs_of(&got), seqs, "every event once, in order");
    let live = post(&s, "s", 20_001..20_002);
    let (got, _) = paused.recv_events(1);
    assert_eq!(seqs_of(&got), live);
}

#[test]
fn every_error_path_is_answered_and_the_connection_stays_open() {
    let s = TestServer::start("");
    let mut c = s.client();
    let e = error_of(&mut c, json!({"type": "resume", "requestId": 1}));
    assert_eq!(e["code"], "invalid_request");
    assert!(e["message"].as_str().unwrap().contains("no subscription is paused"), "{e}");
    let e = error_of(&mut c, json!({"type": "step"}));
    assert!(e["message"].as_str().unwrap().contains("nothing to step"), "{e}");
    let e = error_of(&mut c, json!({"type": "set_breakpoint", "traceId": "x", "condition": "data.status = 'error'"}));
    assert_eq!(e["code"], "invalid_condition");
    assert_eq!(e["position"], 12);
    assert!(e["message"].as_str().unwrap().contains("position 12"), "{e}");
    let e = error_of(&mut c, json!({"type": "set_breakpoint", "traceId": "x", "condition": "(a && b"}));
    assert_eq!((e["code"].clone(), e["position"].clone()), (json!("invalid_condition"), json!(7)));
    let long = format!("a == \"{}\"", "x".repeat(5000));
    let e = error_of(&mut c, json!({"type": "set_breakpoint", "traceId": "x", "condition": long}));
    assert_eq!(e["code"], "invalid_condition");
    assert!(e["message"].as_str().unwrap().contains("over the limit of 4096"), "{e}");
    let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
    let e = error_of(&mut c, json!({"type": "set_breakpoint", "traceId": "x", "condition": deep}));
    assert!(e["message"].as_str().unwrap().contains("deeper than 64"), "{e}");
    for i in 0..64 {
        set(&mut c, &format!("b{i}"), "false");
    }
    let e = error_of(&mut c, json!({"type": "set_breakpoint", "traceId": "b64"}));
    assert!(e["message"].as_str().unwrap().contains("64 breakpoints"), "{e}");
    let e = error_of(&mut c, json!({"type": "remove_breakpoint", "traceId": "nope"}));
    assert!(e["message"].as_str().unwrap().contains("no breakpoint named"), "{e}");
    let e = error_of(&mut c, json!({"type": "set_breakpoint", "condition": "true"}));
    assert!(e["message"].as_str().unwrap().contains("traceId"), "{e}");
    // Still serving.
    c.subscribe("s");
    let seqs = post(&s, "s", 0..3);
    let (got, _) = c.recv_events(3);
    assert_eq!(seqs_of(&got), seqs);
}

#[test]
fn breakpoints_follow_the_read_permission() {
    let s = TestServer::start(
        "[auth]\nenabled = true\n[[auth.api_keys]]\nkey = \"k-s1\"\npermissions = [\"read\"]\nsessions = [\"s1\"]\n",
    );
    let mut c = s.client();
    c.send(json!({"type": "auth", "token": "k-s1"}));
    assert_eq!(c.recv_type("auth_response")["authenticated"], true);
    let e = error_of(&mut c, json!({"type": "set_breakpoint", "traceId": "b", "sessionId": "s2"}));
    assert_eq!(e["code"], "forbidden");
    c.send(json!({"type": "set_breakpoint", "traceId": "b", "sessionId": "s1"}));
    assert_eq!(c.recv_type("breakpoint_set")["traceId"], "b");
}
