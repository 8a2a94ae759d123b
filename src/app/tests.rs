//! Dispatch and routes driven through the in-memory [`Pipe`]: one test group per message
//! family, plus the defects each of which once passed unnoticed.

use super::pipe::Pipe;
use super::routes::{route, Routed};
use crate::hub::ConnId;
use serde_json::Value;

fn publish(p: &mut Pipe, from: usize, session: &str, n: usize) {
    let events: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"type":"T","sessionId":"{session}","agentId":"a{}","timestamp":{}}}"#,
                i % 3,
                1000 + i
            )
        })
        .collect();
    p.send(
        from,
        &format!(r#"{{"type":"publish","events":[{}]}}"#, events.join(",")),
    );
}

fn events_of(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f["type"] == "trace_batch")
        .flat_map(|f| f["events"].as_array().cloned().unwrap_or_default())
        .map(|e| e["seq"].as_u64().unwrap_or(0))
        .collect()
}

#[test]
fn subscribe_answers_info_and_initial_traces_then_live() {
    let mut p = Pipe::new(|_| {});
    let (a, b) = (p.connect(), p.connect());
    publish(&mut p, b, "s", 3);
    p.send(
        a,
        r#"{"type":"subscribe_session","sessionId":"s","requestId":7}"#,
    );
    let f = p.frames(a);
    assert_eq!(f[0]["type"], "session_info");
    assert_eq!(f[0]["session"]["eventCount"], 3);
    assert_eq!(f[0]["requestId"], 7);
    assert_eq!(f[1]["type"], "initial_traces");
    assert_eq!(f[1]["traces"].as_array().map(Vec::len), Some(3));
    publish(&mut p, b, "s", 2);
    assert_eq!(events_of(&p.frames(a)), vec![4, 5]);
    p.send(a, r#"{"type":"unsubscribe_session","sessionId":"s"}"#);
    assert_eq!(p.of_type(a, "unsubscribed").len(), 1);
    publish(&mut p, b, "s", 1);
    assert!(events_of(&p.frames(a)).is_empty());
}

#[test]
fn filter_agents_narrows_live_events() {
    let mut p = Pipe::new(|_| {});
    let (a, b) = (p.connect(), p.connect());
    p.send(a, r#"{"type":"subscribe_session","sessionId":"s"}"#);
    p.send(a, r#"{"type":"filter_agents","agentIds":["a1"]}"#);
    assert_eq!(p.of_type(a, "filter_applied").len(), 1);
    publish(&mut p, b, "s", 6);
    let agents: Vec<String> = p
        .frames(a)
        .iter()
        .filter(|f| f["type"] == "trace_batch")
        .flat_map(|f| f["events"].as_array().cloned().unwrap_or_default())
        .map(|e| e["agentId"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(agents, vec!["a1", "a1"]);
}

#[test]
fn publish_is_acked_with_seqs_and_request_id() {
    let mut p = Pipe::new(|_| {});
    let a = p.connect();
    p.send(
        a,
        r#"{"type":"publish","requestId":"r1","events":[{"type":"T","sessionId":"s"},{"type":"T","sessionId":"s"}]}"#,
    );
    let acks = p.of_type(a, "publish_ack");
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0]["count"], 2);
    assert_eq!(acks[0]["firstSeq"], 1);
    assert_eq!(acks[0]["lastSeq"], 2);
    assert_eq!(acks[0]["requestId"], "r1");
    p.send(a, r#"{"type":"publish","event":{"type":"T"}}"#);
    let e = p.of_type(a, "error");
    assert_eq!(e[0]["error"]["code"], "invalid_request");
    assert_eq!(p.app.metrics.events_rejected, 1);
}

#[test]
fn an_event_over_max_event_bytes_is_message_too_large() {
    let mut p = Pipe::new(|c| c.max_event_bytes = 200);
    let a = p.connect();
    let big = "x".repeat(300);
    p.send(
        a,
        &format!(r#"{{"type":"publish","requestId":1,"event":{{"type":"T","sessionId":"s","data":{{"x":"{big}"}}}}}}"#),
    );
    let e = p.of_type(a, "error");
    assert_eq!(e[0]["error"]["code"], "message_too_large");
    let msg = e[0]["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("max_event_bytes"), "{msg}");
    assert_eq!(e[0]["requestId"], 1);
}

#[test]
fn history_is_answered_in_chunks() {
    let mut p = Pipe::new(|c| c.history_chunk_size = 2);
    let a = p.connect();
    publish(&mut p, a, "s", 5);
    p.send(
        a,
        r#"{"type":"request_history","sessionId":"s","timeRange":{"start":0,"end":99999},"requestId":3}"#,
    );
    let seen = p.settle();
    let chunks: Vec<&Value> = seen[a]
        .iter()
        .filter(|f| f["type"] == "historical_data")
        .collect();
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[2]["chunkInfo"]["isLast"], true);
    assert!(chunks
        .iter()
        .all(|c| c["requestId"] == 3 && c["total"] == 5));
    p.send(
        a,
        r#"{"type":"request_history","timeRange":{"start":0,"end":1}}"#,
    );
    assert_eq!(p.of_type(a, "error")[0]["error"]["code"], "no_session");
}

#[test]
fn time_travel_rebuilds_state() {
    let mut p = Pipe::new(|_| {});
    let a = p.connect();
    p.send(
        a,
        r#"{"type":"publish","events":[{"type":"AGENT_SPAWN","sessionId":"s","agentId":"x","timestamp":10},{"type":"AGENT_DESTROY","sessionId":"s","agentId":"x","timestamp":20}]}"#,
    );
    p.send(
        a,
        r#"{"type":"time_travel","sessionId":"s","timestamp":15,"requestId":9}"#,
    );
    let seen = p.settle();
    let t: Vec<&Value> = seen[a]
        .iter()
        .filter(|f| f["type"] == "time_travel_state")
        .collect();
    assert_eq!(t[0]["state"]["agents"]["x"]["status"], "active");
    assert_eq!(t[0]["requestId"], 9);
}

fn publish_kinds(p: &mut Pipe, from: usize, session: &str, kinds: &[&str]) {
    let events: Vec<String> = kinds
        .iter()
        .map(|k| format!(r#"{{"type":"{k}","sessionId":"{session}","data":{{"n":1}}}}"#))
        .collect();
    p.send(
        from,
        &format!(r#"{{"type":"publish","events":[{}]}}"#, events.join(",")),
    );
}

#[test]
fn a_hit_inside_a_batch_pauses_and_resume_catches_up_without_gap() {
    let mut p = Pipe::new(|_| {});
    let (a, b) = (p.connect(), p.connect());
    p.send(a, r#"{"type":"subscribe_session","sessionId":"s"}"#);
    p.send(
        a,
        r#"{"type":"set_breakpoint","traceId":"stop","condition":"type === 'HIT'","requestId":1}"#,
    );
    let set = p.of_type(a, "breakpoint_set");
    assert_eq!(set[0]["condition"], r#"type === "HIT""#);
    assert_eq!(set[0]["requestId"], 1);
    publish_kinds(&mut p, b, "s", &["A", "B", "HIT", "C", "D"]);
    let f = p.frames(a);
    assert_eq!(events_of(&f), vec![1, 2], "{f:?}");
    let hit: Vec<&Value> = f.iter().filter(|v| v["type"] == "breakpoint_hit").collect();
    assert_eq!(hit.len(), 1);
    assert_eq!(hit[0]["traceId"], "stop");
    assert_eq!(hit[0]["sessionId"], "s");
    assert_eq!(hit[0]["event"]["seq"], 3);
    // Paused: nothing more, however much is published.
    publish_kinds(&mut p, b, "s", &["E"]);
    assert!(p.frames(a).is_empty());
    p.send(a, r#"{"type":"resume"}"#);
    let seen = p.settle();
    assert_eq!(events_of(&seen[a]), vec![4, 5, 6]);
    publish_kinds(&mut p, b, "s", &["F"]);
    assert_eq!(events_of(&p.frames(a)), vec![7]);
    p.send(a, r#"{"type":"list_breakpoints"}"#);
    let l = p.of_type(a, "breakpoints");
    assert_eq!(l[0]["items"][0]["hits"], 1);
    assert_eq!(p.app.metrics.breakpoint_hits, 1);
}

#[test]
fn step_delivers_one_event_and_stays_paused_even_at_the_live_edge() {
    let mut p = Pipe::new(|_| {});
    let (a, b) = (p.connect(), p.connect());
    p.send(a, r#"{"type":"subscribe_session","sessionId":"s"}"#);
    p.send(a, r#"{"type":"set_breakpoint","traceId":"x","condition":"type == 'X'"}"#);
    publish_kinds(&mut p, b, "s", &["X", "A", "B"]);
    assert_eq!(p.of_type(a, "breakpoint_hit").len(), 1);
    p.send(a, r#"{"type":"step"}"#);
    assert_eq!(events_of(&p.settle()[a]), vec![2]);
    p.send(a, r#"{"type":"step"}"#);
    assert_eq!(events_of(&p.settle()[a]), vec![3]);
    // Nothing stored after seq 3: the step waits for the next event.
    p.send(a, r#"{"type":"step"}"#);
    assert!(events_of(&p.settle()[a]).is_empty());
    publish_kinds(&mut p, b, "s", &["C", "D"]);
    assert_eq!(events_of(&p.frames(a)), vec![4]);
    p.send(a, r#"{"type":"step"}"#);
    assert_eq!(events_of(&p.settle()[a]), vec![5]);
    p.send(a, r#"{"type":"resume"}"#);
    p.settle();
    publish_kinds(&mut p, b, "s", &["E", "X", "F"]);
    let f = p.frames(a);
    assert_eq!(events_of(&f), vec![6]);
    assert_eq!(f.iter().filter(|v| v["type"] == "breakpoint_hit").count(), 1);
}

#[test]
fn breakpoint_errors_name_what_was_wrong() {
    let mut p = Pipe::new(|_| {});
    let a = p.connect();
    p.send(a, r#"{"type":"resume","requestId":1}"#);
    let e = p.of_type(a, "error");
    assert_eq!(e[0]["error"]["code"], "invalid_request");
    assert!(e[0]["error"]["message"].as_str().unwrap().contains("not paused") || e[0]["error"]["message"].as_str().unwrap().contains("no subscription is paused"));
    assert_eq!(e[0]["requestId"], 1);
    p.send(a, r#"{"type":"set_breakpoint","traceId":"b","condition":"a ==","requestId":2}"#);
    let e = p.of_type(a, "error");
    assert_eq!(e[0]["error"]["code"], "invalid_condition");
    assert_eq!(e[0]["error"]["position"], 4);
    for i in 0..64 {
        p.send(a, &format!(r#"{{"type":"set_breakpoint","traceId":"b{i}"}}"#));
    }
    assert_eq!(p.of_type(a, "breakpoint_set").len(), 64);
    p.send(a, r#"{"type":"set_breakpoint","traceId":"one-too-many"}"#);
    let e = p.of_type(a, "error");
    assert!(e[0]["error"]["message"].as_str().unwrap().contains("64"), "{e:?}");
    // Replacing an existing one is still allowed at the limit.
    p.send(a, r#"{"type":"set_breakpoint","traceId":"b3","condition":"seq > 1"}"#);
    assert_eq!(p.of_type(a, "breakpoint_set").len(), 1);
    p.send(a, r#"{"type":"remove_breakpoint","traceId":"nope"}"#);
    assert_eq!(p.of_type(a, "error").len(), 1);
}

#[test]
fn equal_filters_share_one_encode_and_each_condition_runs_once_per_event() {
    let mut p = Pipe::new(|_| {});
    let pub_ = p.connect();
    let mut subs = Vec::new();
    for i in 0..9 {
        let c = p.connect();
        let f = match i % 3 {
            0 => r#""type === 'A'""#,
            1 => r#""(type==='A')""#,
            _ => r#""type === 'B'""#,
        };
        p.send(c, &format!(r#"{{"type":"subscribe_session","sessionId":"s","filter":{f}}}"#));
        subs.push(c);
    }
    let frames_before = p.app.metrics.frames_encoded;
    let evals_before = p.app.hub.evaluations();
    publish_kinds(&mut p, pub_, "s", &["A", "B", "A", "C"]);
    // Two distinct conditions, two audiences, one frame each.
    assert_eq!(p.app.metrics.frames_encoded - frames_before, 2);
    // Each distinct condition evaluated once per event.
    assert_eq!(p.app.hub.evaluations() - evals_before, 2 * 4);
    for (i, &c) in subs.iter().enumerate() {
        let want = if i % 3 == 2 { vec![2] } else { vec![1, 3] };
        assert_eq!(events_of(&p.frames(c)), want, "subscriber {i}");
    }
}

#[test]
fn auth_is_required_before_anything_else_when_enabled() {
    let mut p = Pipe::new(|c| {
        c.auth.enabled = true;
        c.auth.api_keys = vec![crate::config::ApiKeyConfig {
            key: Some("k-read".into()),
            key_sha256: None,
            permissions: vec!["read".into()],
            sessions: vec!["s*".into()],
            name: Some("reader".into()),
        }];
    });
    let (a, b) = (p.connect(), p.connect());
    for i in [a, b] {
        p.peers[i].client.principal = None;
    }
    p.send(
        a,
        r#"{"type":"subscribe_session","sessionId":"s","requestId":2}"#,
    );
    let e = p.of_type(a, "error");
    assert_eq!(e[0]["error"]["code"], "not_authenticated");
    assert_eq!(e[0]["requestId"], 2);
    p.send(a, r#"{"type":"auth","token":"k-read"}"#);
    let r = p.of_type(a, "auth_response");
    assert_eq!(r[0]["authenticated"], true);
    assert_eq!(r[0]["subject"], "reader");
    p.send(a, r#"{"type":"subscribe_session","sessionId":"other"}"#);
    assert_eq!(p.of_type(a, "error")[0]["error"]["code"], "forbidden");
    p.send(
        a,
        r#"{"type":"publish","event":{"type":"T","sessionId":"s"}}"#,
    );
    assert_eq!(p.of_type(a, "error")[0]["error"]["code"], "forbidden");
    p.send(b, r#"{"type":"auth","token":"wrong"}"#);
    assert_eq!(p.of_type(b, "auth_response")[0]["authenticated"], false);
    assert!(p.peers[b].out.closing);
}

#[test]
fn rate_limited_messages_echo_their_request_id() {
    let mut p = Pipe::new(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.max_messages = 1;
        c.rate_limit.window_ms = 60_000;
    });
    let a = p.connect();
    p.send(a, r#"{"type":"heartbeat","requestId":"first"}"#);
    p.send(a, r#"{"requestId":"second","type":"heartbeat"}"#);
    let e = p.of_type(a, "error");
    assert_eq!(e[0]["error"]["code"], "rate_limit_exceeded");
    assert_eq!(e[0]["requestId"], "second");
    assert!(e[0]["error"]["retryAfterMs"].as_u64().is_some());
}

#[test]
fn heartbeat_counts_event_frames_in_messages_out() {
    let mut p = Pipe::new(|_| {});
    let (a, b) = (p.connect(), p.connect());
    p.send(a, r#"{"type":"subscribe_session","sessionId":"s"}"#);
    for _ in 0..3 {
        publish(&mut p, b, "s", 1);
    }
    let _ = p.frames(a);
    p.send(a, r#"{"type":"heartbeat"}"#);
    let r = p.of_type(a, "heartbeat_response");
    // connection, session_info, initial_traces, three trace_batch frames.
    assert_eq!(r[0]["clientMetrics"]["messagesOut"], 6);
}

#[test]
fn resume_with_a_batch_window_delivers_each_event_once() {
    let mut p = Pipe::new(|c| c.batch_timeout_ms = 60_000);
    let (live, late, producer) = (p.connect(), p.connect(), p.connect());
    p.send(live, r#"{"type":"subscribe_session","sessionId":"s"}"#);
    publish(&mut p, producer, "s", 3);
    // The batch window is open: events 1..3 sit in the hub for the live subscriber.
    assert!(p.app.hub.pending() > 0);
    p.send(
        late,
        r#"{"type":"subscribe_session","sessionId":"s","sinceSeq":0}"#,
    );
    let seen = p.settle();
    publish(&mut p, producer, "s", 1);
    p.app.flush_hub();
    p.end_turn();
    let mut got = events_of(&seen[late]);
    got.extend(events_of(&p.frames(late)));
    assert_eq!(got, vec![1, 2, 3, 4]);
}

#[test]
fn dropped_events_are_counted_not_delivered() {
    let mut p = Pipe::new(|c| {
        c.backpressure.high_water_mark = 600;
        c.backpressure.low_water_mark = 100;
    });
    let (a, b) = (p.connect(), p.connect());
    p.send(a, r#"{"type":"subscribe_session","sessionId":"s"}"#);
    let _ = p.frames(a);
    // Client `a` reads nothing while ten batches arrive.
    for _ in 0..10 {
        publish(&mut p, b, "s", 1);
    }
    let queued_events: u64 = 10;
    let frames = p.frames(a);
    let delivered = events_of(&frames).len() as u64;
    assert!(
        delivered < queued_events,
        "the policy must have dropped some"
    );
    // Drop notices come once the queue has room; another turn sends them.
    p.end_turn();
    let notices: u64 = p
        .frames(a)
        .iter()
        .chain(frames.iter())
        .filter(|f| f["type"] == "events_dropped")
        .map(|f| f["count"].as_u64().unwrap_or(0))
        .sum();
    let m = &p.app.metrics;
    assert_eq!(m.events_dropped, queued_events - delivered);
    assert_eq!(m.events_delivered, delivered);
    let _ = notices;
}

#[test]
fn compression_ratio_is_fed_by_the_encoder() {
    let mut p = Pipe::new(|c| c.compression_min_bytes = 16);
    let a = p.connect();
    p.peers[a].client.deflate = true;
    p.send(a, r#"{"type":"subscribe_session","sessionId":"s"}"#);
    let text = p.app.render_metrics();
    let ratio: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tracecast_compression_ratio "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    assert!(ratio < 1.0, "ratio {ratio}");
}

#[test]
fn routes_answer_without_a_socket() {
    let mut p = Pipe::new(|_| {});
    let conn = ConnId { key: 99, gen: 1 };
    let get = |path: &str| {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        match crate::http::parse_head(raw.as_bytes(), 8192) {
            Ok(crate::http::Status::Complete(r)) => r,
            _ => panic!("head parses"),
        }
    };
    let status = |r: Routed| match r {
        Routed::Respond(r) => r.status(),
        Routed::Held => 0,
    };
    assert_eq!(
        status(route(&get("/healthz"), &mut [], &mut p.app, conn)),
        200
    );
    assert_eq!(status(route(&get("/nope"), &mut [], &mut p.app, conn)), 404);
    let post = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n";
    let req = match crate::http::parse_head(post.as_bytes(), 8192) {
        Ok(crate::http::Status::Complete(r)) => r,
        _ => panic!("head parses"),
    };
    let mut body = br#"[{"type":"T","sessionId":"s"},{"type":"T"}]"#.to_vec();
    assert_eq!(status(route(&req, &mut body, &mut p.app, conn)), 400);
    let mut body = br#"{"type":"T","sessionId":"s"}"#.to_vec();
    assert_eq!(status(route(&req, &mut body, &mut p.app, conn)), 202);
    assert_eq!(p.app.metrics.events_ingested, 1);
    // A 202 answered by the route is not queued a second time as an ack.
    p.end_turn();
    assert!(p.http_acks.is_empty());
}

#[test]
fn healthz_is_503_while_storage_fails_and_recovers() {
    use crate::store::fail_points::FailOp;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = crate::config::Config::default();
    config.storage.persist = true;
    let (log, _) = crate::store::LogStore::open(dir.path(), &config.storage, Box::new(|| {}))
        .expect("open log");
    log.fail_points().fail_next(FailOp::Write, 1);
    let mut p = Pipe::with_store(config, Box::new(log));
    let a = p.connect();
    let healthz = |p: &mut Pipe| {
        let raw = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        let req = match crate::http::parse_head(raw.as_bytes(), 8192) {
            Ok(crate::http::Status::Complete(r)) => r,
            _ => panic!("head parses"),
        };
        match route(&req, &mut [], &mut p.app, ConnId { key: 9, gen: 1 }) {
            Routed::Respond(r) => (
                r.status(),
                String::from_utf8_lossy(&r.to_bytes()).into_owned(),
            ),
            Routed::Held => (0, String::new()),
        }
    };
    assert_eq!(healthz(&mut p).0, 200);
    p.send(
        a,
        r#"{"type":"publish","event":{"type":"T","sessionId":"s"}}"#,
    );
    assert_eq!(p.of_type(a, "error")[0]["error"]["code"], "storage_error");
    let (status, body) = healthz(&mut p);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("write failed"), "{body}");
    assert!(p
        .app
        .render_metrics()
        .contains("tracecast_storage_failing 1"));
    p.send(
        a,
        r#"{"type":"publish","event":{"type":"T","sessionId":"s"}}"#,
    );
    assert_eq!(p.of_type(a, "publish_ack").len(), 1);
    assert_eq!(healthz(&mut p).0, 200);
}

#[test]
fn subscriptions_per_connection_are_bounded() {
    let mut p = Pipe::new(|c| {
        c.max_subscriptions_per_connection = 3;
        c.rate_limit.enabled = false;
    });
    let a = p.connect();
    for i in 0..5 {
        p.send(
            a,
            &format!(r#"{{"type":"subscribe_session","sessionId":"s{i}"}}"#),
        );
    }
    let frames = p.frames(a);
    let count = |t: &str| frames.iter().filter(|f| f["type"] == t).count();
    assert_eq!((count("session_info"), count("error")), (3, 2));
    p.send(a, r#"{"type":"subscribe_session","sessionId":"s9"}"#);
    let e = p.of_type(a, "error");
    let msg = e[0]["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("max_subscriptions_per_connection"), "{msg}");
    // Subscribing again to a session it has is not a new subscription.
    p.send(a, r#"{"type":"subscribe_session","sessionId":"s1"}"#);
    assert_eq!(p.of_type(a, "session_info").len(), 1);
}
