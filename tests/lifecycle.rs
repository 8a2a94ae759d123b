//! Connection and process lifecycle (SPEC §1, §8): heartbeats (a JSON `heartbeat` and a
//! WebSocket ping), closing of stale connections while a ponging client stays, and
//! graceful shutdown on SIGTERM (`system_event` shutdown, close 1001, exit 0, events
//! still there after a restart on the same data directory).

mod common;
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};
use tungstenite::Message;

const INTERVAL_MS: u64 = 200;

fn heartbeat_config() -> String {
    format!("heartbeat_interval_ms = {INTERVAL_MS}\n[storage]\npersist = false\n")
}

fn sigterm(s: &TestServer) {
    let status = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn authenticated_client_gets_heartbeat_message_and_ping() {
    let s = TestServer::start(&heartbeat_config());
    let mut c = s.client();
    let (mut heartbeat, mut ping) = (None, false);
    let deadline = Instant::now() + WAIT;
    while heartbeat.is_none() || !ping {
        assert!(
            Instant::now() < deadline,
            "heartbeat {heartbeat:?}, ping {ping}"
        );
        match c.ws.read() {
            Ok(Message::Ping(_)) => ping = true,
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "heartbeat" {
                    heartbeat = Some(v);
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("websocket error: {e}"),
        }
    }
    let hb = heartbeat.unwrap();
    assert!(hb["timestamp"].is_number(), "{hb}");
    assert!(hb["metrics"].is_object(), "{hb}");
}

#[test]
fn silent_client_is_closed_as_stale_within_two_intervals() {
    let s = TestServer::start(&heartbeat_config());
    let mut r = Raw::upgrade(&s.addr);
    let t0 = Instant::now();
    let mut pinged = false;
    let code = loop {
        match r.next_frame() {
            Some((0x9, _)) => pinged = true,
            Some((0x8, p)) => break (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]])),
            Some(_) => {}
            None => break None,
        }
    };
    let took = t0.elapsed();
    assert!(pinged, "closed before any ping");
    assert!(
        took >= Duration::from_millis(2 * INTERVAL_MS - 100),
        "closed too early: {took:?}"
    );
    assert!(
        took <= Duration::from_millis(2 * INTERVAL_MS + 600),
        "stale connection lived {took:?}"
    );
    assert_eq!(code, Some(1001));
}

#[test]
fn ponging_client_stays_open_past_the_stale_timeout() {
    let s = TestServer::start(&heartbeat_config());
    let mut c = s.client();
    // Keep reading (tungstenite answers each ping) for well past the stale timeout.
    let until = Instant::now() + Duration::from_millis(2 * INTERVAL_MS + 600);
    let mut beats = 0;
    while Instant::now() < until {
        if let Some(v) = c.try_recv(Duration::from_millis(50)) {
            if v["type"] == "heartbeat" {
                beats += 1;
            }
        }
    }
    assert!(beats >= 2, "only {beats} heartbeats");
    c.send(json!({"type": "heartbeat"}));
    let r = c.recv_type("heartbeat_response");
    // The pongs were seen: the ping round trip is measured.
    assert!(r["clientMetrics"]["latencyMs"].is_number(), "{r}");
}

#[test]
fn sigterm_sends_shutdown_notice_then_close_1001_and_exits_0() {
    let mut s = TestServer::start("[storage]\npersist = false\n");
    let mut c = s.client();
    c.subscribe("s");
    let t0 = Instant::now();
    sigterm(&s);
    let notice = c.recv_type("system_event");
    assert_eq!(notice["event"], "shutdown", "{notice}");
    assert!(notice["timestamp"].is_number(), "{notice}");
    assert_eq!(c.recv_close(), Some(1001));
    // Like any client, keep reading: tungstenite sends its close reply, then the server
    // ends the connection.
    let deadline = Instant::now() + WAIT;
    loop {
        match c.ws.read() {
            Err(tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
            Ok(m) => panic!("after close: {m:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the server kept the connection open"
        );
    }
    let status = s.wait_exit();
    assert!(status.success(), "exit status {status}");
    // Every client completed the closing handshake: nothing left to wait for.
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?}");
}

#[test]
fn events_survive_a_graceful_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = TestServer::start_in(tmp.path(), "", &[]);
    let events: Vec<Value> = (0..30)
        .map(|i| event("keep", "a", "TASK_START", i))
        .collect();
    let (st, ack) = s.post_events(&Value::Array(events).to_string());
    assert_eq!(st, 202, "{ack}");
    let status = s.terminate();
    assert!(status.success(), "exit status {status}");
    drop(s);

    let s = TestServer::start_in(tmp.path(), "", &[]);
    let mut c = s.client();
    let (info, initial) = c.subscribe("keep");
    assert_eq!(info["session"]["eventCount"], 30);
    assert_eq!(info["session"]["lastSeq"], ack["lastSeq"]);
    let traces = initial["traces"].as_array().unwrap();
    let seqs: Vec<u64> = traces.iter().map(|t| t["seq"].as_u64().unwrap()).collect();
    let first = ack["firstSeq"].as_u64().unwrap();
    assert_eq!(seqs, (first..first + 30).collect::<Vec<_>>());
    assert_eq!(traces[29]["data"]["n"], 29);
    // Seqs are never reused across the restart.
    let (st, next) = s.post_events(&event("keep", "a", "TASK_START", 99).to_string());
    assert_eq!(st, 202);
    assert!(next["firstSeq"].as_u64().unwrap() > ack["lastSeq"].as_u64().unwrap());
}
