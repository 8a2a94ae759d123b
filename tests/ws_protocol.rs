//! The WebSocket protocol end to end (SPEC §4): every client message gets the answer the
//! spec names, errors leave the connection usable, a connection may follow several
//! sessions while sessions stay isolated, batches arrive whole and in order, and one
//! event reaches every subscriber as the same bytes.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;
use tungstenite::Message;

const EPHEMERAL: &str = "[storage]\npersist = false\n";

fn batch(session: &str, agent: &str, from: usize, n: usize) -> String {
    let v: Vec<Value> = (from..from + n)
        .map(|i| event(session, agent, "TASK_START", i))
        .collect();
    Value::Array(v).to_string()
}

fn post_ok(s: &TestServer, body: &str) -> Value {
    let (st, ack) = s.post_events(body);
    assert_eq!(st, 202, "{ack}");
    ack
}

/// The text of the next `trace_batch`, exactly as the server sent it.
fn next_batch_text(c: &mut Client) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match c.ws.read() {
            Ok(Message::Text(t)) if t.as_str().contains("\"type\":\"trace_batch\"") => {
                return t.as_str().to_string()
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("websocket error: {e}"),
        }
        assert!(std::time::Instant::now() < deadline, "no trace_batch");
    }
}

/// Asserts an `error` reply with `code` whose message contains `needle`, then proves the
/// connection still answers.
fn assert_error_then_alive(c: &mut Client, code: &str, needle: &str) {
    let e = c.recv_type("error");
    assert_eq!(e["error"]["code"], code, "{e}");
    let msg = e["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(needle),
        "message {msg:?} should name {needle:?}"
    );
    assert!(e["timestamp"].is_number(), "{e}");
    c.send(json!({"type": "heartbeat"}));
    c.recv_type("heartbeat_response");
}

#[test]
fn connection_message_carries_server_info() {
    let s = TestServer::start(&format!("batch_size = 33\n{EPHEMERAL}"));
    let c = s.client();
    let h = &c.hello;
    assert_eq!(h["type"], "connection");
    assert!(h["clientId"].as_str().is_some_and(|s| !s.is_empty()), "{h}");
    assert!(h["timestamp"].is_number(), "{h}");
    let info = &h["serverInfo"];
    assert!(info["version"].is_string(), "{h}");
    let caps = info["capabilities"].as_array().expect("capabilities");
    assert!(caps.iter().any(|c| c == "live"), "{h}");
    assert_eq!(info["limits"]["maxMessageSize"], 1_048_576);
    assert_eq!(info["limits"]["batchSize"], 33);
    assert_eq!(info["limits"]["maxEventBytes"], 65_536);
    assert!(info["auth"].is_object(), "{h}");
    assert!(info["binaryProtocol"].is_object(), "{h}");
}

#[test]
fn subscribe_answers_session_info_and_the_100_most_recent_oldest_first() {
    let s = TestServer::start(EPHEMERAL);
    let ack = post_ok(&s, &batch("s1", "a", 0, 120));
    let last = ack["lastSeq"].as_u64().unwrap();
    let mut c = s.client();
    let (info, initial) = c.subscribe("s1");
    let sess = &info["session"];
    assert_eq!(sess["id"], "s1");
    assert_eq!(sess["eventCount"], 120);
    assert_eq!(sess["agentCount"], 1);
    assert_eq!(sess["lastSeq"], last);
    assert!(sess["firstTimestamp"].is_number() && sess["lastTimestamp"].is_number());
    let traces = initial["traces"].as_array().expect("traces");
    assert_eq!(traces.len(), 100);
    let seqs: Vec<u64> = traces.iter().map(|t| t["seq"].as_u64().unwrap()).collect();
    let want: Vec<u64> = (last - 99..=last).collect();
    assert_eq!(seqs, want, "the most recent 100, oldest first");
    assert_eq!(traces[0]["data"]["n"], 20);
}

#[test]
fn unsubscribe_answers_unsubscribed_and_stops_events() {
    let s = TestServer::start(EPHEMERAL);
    let mut c = s.client();
    c.subscribe("a");
    c.subscribe("b");
    c.send(json!({"type": "unsubscribe_session", "sessionId": "a", "requestId": "u1"}));
    let u = c.recv_type("unsubscribed");
    assert_eq!(u["requestId"], "u1");
    post_ok(&s, &batch("a", "x", 0, 3));
    let sentinel = post_ok(&s, &batch("b", "x", 100, 1));
    // `b`'s event was stored after `a`'s, so anything of `a` would have arrived first.
    let (evs, _) = c.recv_events(1);
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0]["sessionId"], "b");
    assert_eq!(evs[0]["seq"], sentinel["firstSeq"]);
}

#[test]
fn filter_agents_limits_events_and_an_empty_list_clears_it() {
    let s = TestServer::start(EPHEMERAL);
    let mut c = s.client();
    c.subscribe("s");
    c.send(json!({"type": "filter_agents", "agentIds": ["a1"]}));
    let f = c.recv_type("filter_applied");
    assert_eq!(f["agentIds"], json!(["a1"]));
    let evs = json!([
        event("s", "a1", "TASK_START", 1),
        event("s", "a2", "TASK_START", 2),
        event("s", "a1", "TASK_COMPLETE", 3),
    ]);
    post_ok(&s, &evs.to_string());
    let (got, _) = c.recv_events(2);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|e| e["agentId"] == "a1"), "{got:?}");

    c.send(json!({"type": "filter_agents", "agentIds": []}));
    let f = c.recv_type("filter_applied");
    assert_eq!(f["agentIds"], json!([]));
    let evs = json!([
        event("s", "a2", "TASK_START", 4),
        event("s", "a3", "TASK_START", 5),
    ]);
    post_ok(&s, &evs.to_string());
    let (got, _) = c.recv_events(2);
    let agents: Vec<&str> = got.iter().map(|e| e["agentId"].as_str().unwrap()).collect();
    assert_eq!(agents, ["a2", "a3"]);
}

#[test]
fn publish_single_and_array_get_publish_ack_with_request_id() {
    let s = TestServer::start(EPHEMERAL);
    let mut p = s.client();
    let mut sub = s.client();
    sub.subscribe("s");
    p.send(
        json!({"type": "publish", "event": event("s", "a", "TASK_START", 1), "requestId": "r1"}),
    );
    let a1 = p.recv_type("publish_ack");
    assert_eq!(a1["count"], 1);
    assert_eq!(a1["firstSeq"], a1["lastSeq"]);
    assert_eq!(a1["requestId"], "r1");
    let events: Vec<Value> = (2..5).map(|i| event("s", "a", "TASK_START", i)).collect();
    p.send(json!({"type": "publish", "events": events, "requestId": 7}));
    let a2 = p.recv_type("publish_ack");
    assert_eq!(a2["count"], 3);
    assert_eq!(a2["requestId"], 7);
    let first = a2["firstSeq"].as_u64().unwrap();
    assert_eq!(first, a1["lastSeq"].as_u64().unwrap() + 1);
    assert_eq!(a2["lastSeq"].as_u64().unwrap(), first + 2);
    let (got, _) = sub.recv_events(4);
    let seqs: Vec<u64> = got.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (first - 1..=first + 2).collect::<Vec<_>>());
}

#[test]
fn heartbeat_gets_heartbeat_response_with_client_metrics() {
    let s = TestServer::start(EPHEMERAL);
    let mut c = s.client();
    c.send(json!({"type": "heartbeat", "requestId": "hb"}));
    let r = c.recv_type("heartbeat_response");
    assert!(r["timestamp"].is_number(), "{r}");
    assert!(r["clientMetrics"].is_object(), "{r}");
    assert_eq!(r["requestId"], "hb");
}

#[test]
fn malformed_json_is_invalid_message_and_the_connection_stays_open() {
    let s = TestServer::start(EPHEMERAL);
    let mut c = s.client();
    c.send_text("{\"type\": \"subscribe_session\", ");
    assert_error_then_alive(&mut c, "invalid_message", "");
}

#[test]
fn unknown_type_is_unknown_message_type_naming_it() {
    let s = TestServer::start(EPHEMERAL);
    let mut c = s.client();
    c.send(json!({"type": "frobnicate_widgets", "requestId": "q"}));
    assert_error_then_alive(&mut c, "unknown_message_type", "frobnicate_widgets");
}

#[test]
fn missing_field_is_invalid_request_naming_it() {
    let s = TestServer::start(EPHEMERAL);
    let mut c = s.client();
    c.send(json!({"type": "subscribe_session"}));
    assert_error_then_alive(&mut c, "invalid_request", "sessionId");
    c.send(json!({"type": "filter_agents"}));
    assert_error_then_alive(&mut c, "invalid_request", "agentIds");
}

#[test]
fn one_connection_follows_several_sessions() {
    let s = TestServer::start(EPHEMERAL);
    let mut c = s.client();
    c.subscribe("a");
    c.subscribe("b");
    post_ok(&s, &batch("a", "x", 0, 2));
    post_ok(&s, &batch("b", "x", 10, 3));
    let (got, _) = c.recv_events(5);
    let a = got.iter().filter(|e| e["sessionId"] == "a").count();
    let b = got.iter().filter(|e| e["sessionId"] == "b").count();
    assert_eq!((a, b), (2, 3), "{got:?}");
}

#[test]
fn sessions_are_isolated() {
    let s = TestServer::start(EPHEMERAL);
    let mut only_a = s.client();
    only_a.subscribe("A");
    post_ok(&s, &batch("B", "x", 0, 10));
    let sentinel = post_ok(&s, &batch("A", "x", 50, 1));
    let (got, _) = only_a.recv_events(1);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["sessionId"], "A");
    assert_eq!(got[0]["seq"], sentinel["firstSeq"]);
}

#[test]
fn fifteen_events_at_once_arrive_complete_in_order_in_few_frames() {
    let s = TestServer::start(EPHEMERAL);
    let mut c = s.client();
    c.subscribe("s");
    let ack = post_ok(&s, &batch("s", "a", 0, 15));
    let (got, frames) = c.recv_events(15);
    assert_eq!(got.len(), 15);
    assert!(frames <= 2, "{frames} frames for 15 events");
    let first = ack["firstSeq"].as_u64().unwrap();
    let seqs: Vec<u64> = got.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (first..first + 15).collect::<Vec<_>>());
    let ns: Vec<u64> = got
        .iter()
        .map(|e| e["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, (0..15).collect::<Vec<_>>());
}

#[test]
fn five_subscribers_get_the_same_event_as_the_same_bytes() {
    let s = TestServer::start(EPHEMERAL);
    let mut clients: Vec<Client> = (0..5).map(|_| s.client()).collect();
    for c in &mut clients {
        c.subscribe("fan");
    }
    let ack = post_ok(&s, &batch("fan", "a", 7, 1));
    let texts: Vec<String> = clients.iter_mut().map(next_batch_text).collect();
    let v: Value = serde_json::from_str(&texts[0]).unwrap();
    assert_eq!(v["events"][0]["seq"], ack["firstSeq"]);
    assert_eq!(v["events"][0]["data"]["n"], 7);
    for t in &texts[1..] {
        assert_eq!(t, &texts[0], "every subscriber gets identical bytes");
    }
}

#[test]
fn connection_limit_answers_503_before_the_upgrade() {
    let s = TestServer::start(&format!("max_connections = 2\n{EPHEMERAL}"));
    let _c1 = s.client();
    let _c2 = s.client();
    use std::io::{Read, Write};
    let mut t = std::net::TcpStream::connect(&s.addr).unwrap();
    t.set_read_timeout(Some(WAIT)).unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        s.addr
    );
    t.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    let _ = t.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 503"), "got {text:?}");
    // The two admitted clients are unaffected.
    let mut c1 = _c1;
    c1.send(json!({"type": "heartbeat"}));
    assert!(c1.try_recv(Duration::from_secs(5)).is_some());
}

/// Rebuilds delta-encoded events the way docs/PROTOCOL.md tells a client to.
fn undelta(events: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for e in events {
        let mut full = match out.last() {
            Some(prev) => prev.as_object().unwrap().clone(),
            None => serde_json::Map::new(),
        };
        for (k, v) in e.as_object().unwrap() {
            if k != "$removed" {
                full.insert(k.clone(), v.clone());
            }
        }
        if let Some(removed) = e.get("$removed").and_then(Value::as_array) {
            for r in removed {
                full.remove(r.as_str().unwrap());
            }
        }
        out.push(Value::Object(full));
    }
    out
}

#[test]
fn delta_batches_rebuild_to_the_same_events_as_plain_ones() {
    let s = TestServer::start(EPHEMERAL);
    let mut plain = s.client();
    let mut delta = Client::connect(&format!("{}?compression=delta", s.ws_url()));
    plain.subscribe("d-1");
    delta.subscribe("d-1");
    let mut evs: Vec<Value> = (0..6).map(|i| event("d-1", "a", "TASK_START", i)).collect();
    evs[3].as_object_mut().unwrap().remove("metadata");
    post_ok(&s, &Value::Array(evs).to_string());

    let (whole, _) = plain.recv_events(6);
    let frame = delta.recv_type("trace_batch");
    assert_eq!(frame["compression"], "delta", "{frame}");
    let parts = frame["events"].as_array().unwrap();
    assert_eq!(parts.len(), 6);
    assert!(
        parts[1].get("sessionId").is_none(),
        "unchanged fields are left out: {}",
        parts[1]
    );
    assert!(
        parts[3]["$removed"]
            .as_array()
            .unwrap()
            .contains(&json!("metadata")),
        "{}",
        parts[3]
    );
    assert_eq!(undelta(parts), whole);
}

#[test]
fn binary_subprotocol_carries_batches_that_decode_to_the_stored_events() {
    use tungstenite::client::IntoClientRequest;
    let s = TestServer::start(EPHEMERAL);
    let mut req = s.ws_url().into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "tracecast.bin".parse().unwrap());
    let mut bin = Client::connect_request(req);
    assert_eq!(
        bin.hello["serverInfo"]["binaryProtocol"]["active"], true,
        "{}",
        bin.hello
    );
    let mut plain = s.client();
    bin.subscribe("b-1");
    plain.subscribe("b-1");
    post_ok(&s, &batch("b-1", "agent-7", 0, 3));
    let (whole, _) = plain.recv_events(3);

    let deadline = std::time::Instant::now() + WAIT;
    let frame = loop {
        match bin.ws.read() {
            Ok(Message::Binary(b)) => break b,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("websocket error: {e}"),
        }
        assert!(std::time::Instant::now() < deadline, "no binary batch");
    };
    let decoded = tracecast::protocol::decode_binary_batch(&frame).expect("a valid binary batch");
    assert_eq!(decoded.session, Some("b-1"));
    assert_eq!(decoded.events.len(), 3);
    for (d, w) in decoded.events.iter().zip(&whole) {
        assert_eq!(Some(d.seq), w["seq"].as_u64());
        assert_eq!(d.agent, Some("agent-7"));
        let json: Value = serde_json::from_slice(d.json).unwrap();
        assert_eq!(&json, w);
    }
}
