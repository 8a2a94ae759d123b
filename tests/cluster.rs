//! Cluster mode end to end (SPEC §11, docs/CLUSTER.md): 2–3 real `tracecast` processes on
//! one real `nats-server -js` that each test starts for itself, talked to over real sockets.
//!
//! Scenarios: a publish on one node reaches every node in one order with the same seqs;
//! producers on two nodes at once still give one order everywhere; a node killed with -9
//! under load catches up after a restart and holds the same history; a client resuming on
//! another node with `sinceSeq` gets exactly what it missed; with NATS stopped producers
//! get retryable errors and nothing acknowledged is lost, and everything flows once it is
//! back; the same message id published twice is stored once; a node joining after the
//! stream dropped old messages starts from what it still holds and says so; two nodes
//! share one port with `SO_REUSEPORT`.
//!
//! `nats-server` comes from Debian (`.ci/run` installs it). Without it these tests say so
//! and pass vacuously; that is the only case in which they skip.
#![cfg(feature = "cluster")]

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous: a node catching up, or NATS restarting, on a shared 2-core machine.
const LONG: Duration = Duration::from_secs(30);

/// A `nats-server -js` on its own port and store directory.
struct Nats {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Nats {
    /// Starts one, or `None` (with a message) when this machine has no `nats-server`.
    fn start() -> Option<Nats> {
        if Command::new("nats-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!("SKIP: nats-server is not installed (apt-get install nats-server)");
            return None;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut n = Nats {
            child: None,
            port: free_port(),
            dir: tmp.path().to_path_buf(),
            _tmp: tmp,
        };
        n.launch();
        Some(n)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// (Re)starts on the same port and store, waiting until it answers the protocol.
    fn launch(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        poll_until("nats-server answering", LONG, || {
            let s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line).ok()?;
            line.starts_with("INFO").then_some(())
        });
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Publishes `payload` to `subject` with a `Nats-Msg-Id` header, over the plain NATS
    /// protocol, and waits for JetStream's ack on a reply inbox.
    fn publish_with_id(&self, subject: &str, msg_id: &str, payload: &[u8]) -> String {
        self.request(
            subject,
            &format!("NATS/1.0\r\nNats-Msg-Id: {msg_id}\r\n\r\n"),
            payload,
        )
    }

    /// A request over the plain NATS protocol (`headers` as written on the wire, or
    /// empty), answered on a reply inbox: JetStream acks, `$JS.API` calls.
    fn request(&self, subject: &str, headers: &str, payload: &[u8]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect nats");
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap(); // INFO
        let mut out = Vec::new();
        out.extend_from_slice(
            b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB _INBOX.t 1\r\n",
        );
        out.extend_from_slice(
            format!(
                "HPUB {subject} _INBOX.t {} {}\r\n",
                headers.len(),
                headers.len() + payload.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(headers.as_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
        s.write_all(&out).unwrap();
        loop {
            line.clear();
            assert!(r.read_line(&mut line).unwrap() > 0, "nats closed");
            if let Some(rest) = line.strip_prefix("MSG ") {
                let n: usize = rest.split_whitespace().last().unwrap().parse().unwrap();
                let mut body = vec![0; n + 2];
                r.read_exact(&mut body).unwrap();
                return String::from_utf8_lossy(&body[..n]).to_string();
            }
            if line.starts_with("PING") {
                s.write_all(b"PONG\r\n").unwrap();
            }
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

fn cluster_toml(nats: &Nats, node: &str, extra: &str) -> String {
    format!(
        "[cluster]\nnats_url = {:?}\nnode_id = {node:?}\n{extra}\n",
        nats.url()
    )
}

/// Starts a node in `dir` and waits until `/healthz` says it is current.
fn node_in(dir: &Path, nats: &Nats, name: &str) -> TestServer {
    let s = TestServer::start_in(dir, &cluster_toml(nats, name, ""), &[]);
    wait_current(&s);
    s
}

fn node(nats: &Nats, name: &str) -> (TestServer, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = node_in(tmp.path(), nats, name);
    (s, tmp)
}

fn healthz(s: &TestServer) -> (u16, Value) {
    let (st, _, b) = s.http("GET", "/healthz", &[], b"");
    (st, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn wait_current(s: &TestServer) {
    poll_until(
        "node current (healthz 200, cluster connected)",
        LONG,
        || {
            let (st, h) = healthz(s);
            (st == 200 && h["cluster"]["connected"] == true).then_some(())
        },
    );
}

fn batch(session: &str, tag: &str, from: usize, n: usize) -> Vec<Value> {
    (from..from + n)
        .map(|i| event(session, tag, "MESSAGE_SEND", i))
        .collect()
}

/// Every stored event of `session` on `s`, as delivered JSON, in seq order.
fn history(s: &TestServer, session: &str) -> Vec<Value> {
    let (st, _, b) = s.http("GET", &format!("/v1/history?sessionId={session}"), &[], b"");
    if st != 200 {
        return Vec::new();
    }
    b.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("history line"))
        .collect()
}

/// Waits until `s` holds `n` events of `session`, and returns them.
fn history_of_len(s: &TestServer, session: &str, n: usize) -> Vec<Value> {
    poll_until(&format!("{n} events of {session} stored"), LONG, || {
        let h = history(s, session);
        (h.len() >= n).then_some(h)
    })
}

/// Subscribes and returns the client once subscribed (live events follow).
fn subscriber(s: &TestServer, session: &str) -> Client {
    let mut c = s.client();
    c.subscribe(session);
    c
}

fn assert_increasing(seqs: &[u64]) {
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seqs strictly increase: {seqs:?}"
    );
}

#[test]
fn a_publish_on_one_node_reaches_every_node_in_one_order_with_the_same_seqs() {
    let Some(nats) = Nats::start() else { return };
    let (a, _da) = node(&nats, "a");
    let (b, _db) = node(&nats, "b");
    let (c, _dc) = node(&nats, "c");
    let mut on_b = subscriber(&b, "s");
    let mut on_c = subscriber(&c, "s");
    let mut acked = Vec::new();
    for k in 0..5 {
        acked.extend(post_batch(&a, &batch("s", "a", k * 20, 20)));
    }
    assert_increasing(&acked);
    let (got_b, _) = on_b.recv_events(100);
    let (got_c, _) = on_c.recv_events(100);
    assert_eq!(seqs_of(&got_b), acked, "B saw exactly what A acknowledged");
    assert_eq!(
        got_b, got_c,
        "B and C: same events, same order, same seqs, same bytes"
    );
    let n: Vec<u64> = got_b
        .iter()
        .map(|e| e["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(n, (0..100).collect::<Vec<u64>>(), "in publish order");
    // History on every node, the publisher's own included, is the same.
    let ha = history_of_len(&a, "s", 100);
    assert_eq!(ha, got_b);
    assert_eq!(history_of_len(&c, "s", 100), got_b);
    // /v1/sessions agrees too.
    let (_, _, body) = b.http("GET", "/v1/sessions", &[], b"");
    let sessions: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sessions["sessions"][0]["eventCount"], 100, "{sessions}");
}

#[test]
fn producers_on_two_nodes_at_once_leave_one_order_everywhere() {
    let Some(nats) = Nats::start() else { return };
    let (a, _da) = node(&nats, "a");
    let (b, _db) = node(&nats, "b");
    let (c, _dc) = node(&nats, "c");
    let mut subs = [
        subscriber(&a, "mix"),
        subscriber(&b, "mix"),
        subscriber(&c, "mix"),
    ];
    let (addr_a, addr_b) = (a.addr.clone(), b.addr.clone());
    let produce = |addr: String, tag: &'static str| {
        std::thread::spawn(move || {
            let mut seqs = Vec::new();
            for k in 0..20 {
                let body = Value::Array(batch("mix", tag, k * 10, 10)).to_string();
                let (st, _, b) = http(
                    &addr,
                    "POST",
                    "/v1/events",
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                );
                assert_eq!(st, 202, "{}", String::from_utf8_lossy(&b));
                let ack: Value = serde_json::from_slice(&b).unwrap();
                let (f, l) = (
                    ack["firstSeq"].as_u64().unwrap(),
                    ack["lastSeq"].as_u64().unwrap(),
                );
                seqs.extend(f..=l);
            }
            seqs
        })
    };
    let pa = produce(addr_a, "from-a");
    let pb = produce(addr_b, "from-b");
    let mut acked = pa.join().unwrap();
    acked.extend(pb.join().unwrap());
    acked.sort_unstable();
    let seen: Vec<Vec<Value>> = subs.iter_mut().map(|s| s.recv_events(400).0).collect();
    assert_eq!(
        seqs_of(&seen[0]),
        acked,
        "every acknowledged event, once, in seq order"
    );
    assert_increasing(&seqs_of(&seen[0]));
    assert_eq!(seen[0], seen[1], "A and B saw one order");
    assert_eq!(seen[0], seen[2], "A and C saw one order");
    let tags: std::collections::HashSet<&str> = seen[0]
        .iter()
        .map(|e| e["agentId"].as_str().unwrap())
        .collect();
    assert_eq!(tags.len(), 2, "both producers are in it");
}

#[test]
fn a_node_killed_under_load_catches_up_after_restart_with_identical_history() {
    let Some(nats) = Nats::start() else { return };
    let (a, _da) = node(&nats, "a");
    let db = tempfile::tempdir().unwrap();
    let mut b = node_in(db.path(), &nats, "b");
    let addr = a.addr.clone();
    let (half_tx, half_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let producer = std::thread::spawn(move || {
        let mut acked = 0;
        for k in 0..60 {
            if k == 20 {
                let _ = half_tx.send(());
            }
            if k == 40 {
                // The rest only once B is back, so some of it lands during its catch-up.
                let _ = go_rx.recv_timeout(LONG);
            }
            let body = Value::Array(batch("load", "p", k * 25, 25)).to_string();
            let (st, _, b) = http(
                &addr,
                "POST",
                "/v1/events",
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            );
            assert_eq!(st, 202, "{}", String::from_utf8_lossy(&b));
            acked += 25;
        }
        acked
    });
    half_rx.recv_timeout(LONG).expect("producer running");
    b.kill9();
    // Restarted in the same data dir: it resumes from its last materialized message.
    let b = TestServer::start_in(db.path(), &cluster_toml(&nats, "b", ""), &[]);
    let _ = go_tx.send(());
    let total = producer.join().unwrap();
    assert_eq!(total, 1500);
    let ha = history_of_len(&a, "load", total);
    let hb = history_of_len(&b, "load", total);
    assert_eq!(ha.len(), total);
    assert_eq!(hb, ha, "identical history after the kill and the catch-up");
    wait_current(&b);
    let (_, h) = healthz(&b);
    assert_eq!(h["cluster"]["lag"], 0, "{h}");
    assert_eq!(h["cluster"]["catching_up"], false, "{h}");
}

#[test]
fn a_resume_on_another_node_with_since_seq_gets_exactly_what_was_missed() {
    let Some(nats) = Nats::start() else { return };
    let (a, _da) = node(&nats, "a");
    let (b, _db) = node(&nats, "b");
    let mut on_a = subscriber(&a, "r");
    let first = post_batch(&a, &batch("r", "x", 0, 30));
    let (seen, _) = on_a.recv_events(30);
    assert_eq!(seqs_of(&seen), first);
    let last_seen = *first.last().unwrap();
    drop(on_a);
    // Missed while away: published on both nodes.
    let mut missed = post_batch(&b, &batch("r", "x", 30, 15));
    missed.extend(post_batch(&a, &batch("r", "x", 45, 15)));
    // B must have materialized what A acknowledged before the client arrives there.
    history_of_len(&b, "r", 60);
    let mut on_b = b.client();
    on_b.send(json!({"type": "subscribe_session", "sessionId": "r", "sinceSeq": last_seen}));
    on_b.recv_type("session_info");
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < missed.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = on_b.try_recv(left).expect("the missed events");
        match m["type"].as_str() {
            Some("trace_batch") => got.extend(seqs_of(m["events"].as_array().unwrap())),
            Some("initial_traces" | "events_dropped") => panic!("not a clean resume: {m}"),
            _ => {}
        }
    }
    assert_eq!(got, missed, "no gap, no duplicate");
    // And live events continue after it.
    let more = post_batch(&a, &batch("r", "x", 60, 5));
    let (live, _) = on_b.recv_events(5);
    assert_eq!(seqs_of(&live), more);
}

#[test]
fn with_nats_stopped_producers_get_retryable_errors_and_nothing_acknowledged_is_lost() {
    let Some(mut nats) = Nats::start() else {
        return;
    };
    let (a, _da) = node(&nats, "a");
    let (b, _db) = node(&nats, "b");
    let mut acked = post_batch(&a, &batch("n", "x", 0, 10));
    nats.stop();
    // Producers are told to come back: 503 with Retry-After over HTTP...
    let head = poll_until("a 503 while NATS is down", LONG, || {
        let body = Value::Array(batch("n", "x", 100, 5)).to_string();
        let (st, head, _) = a.http(
            "POST",
            "/v1/events",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        match st {
            202 => None, // accepted before the client noticed; must survive too
            503 => Some(head),
            other => panic!("unexpected status {other}"),
        }
    });
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    // ...and `unavailable` over WebSocket.
    let mut p = b.client();
    p.send(json!({"type": "publish", "event": event("n", "x", "X", 200)}));
    let e = p.recv_type("error");
    assert_eq!(e["error"]["code"], "unavailable", "{e}");
    let (_, h) = healthz(&a);
    assert_eq!(h["cluster"]["connected"], false, "{h}");
    // Back: everything flows again, on both nodes.
    nats.launch();
    wait_current(&a);
    wait_current(&b);
    let more = poll_until("a 202 once NATS is back", LONG, || {
        let body = Value::Array(batch("n", "x", 10, 10)).to_string();
        let (st, ack) = b.post_events(&body);
        (st == 202).then_some(ack)
    });
    let (f, l) = (
        more["firstSeq"].as_u64().unwrap(),
        more["lastSeq"].as_u64().unwrap(),
    );
    acked.extend(f..=l);
    // Every acknowledged seq is stored on both nodes (a batch acknowledged while the
    // client had not yet noticed the outage is stored too, so allow more, never fewer).
    for s in [&a, &b] {
        let h = poll_until("acknowledged events stored", LONG, || {
            let h = history(s, "n");
            let have: std::collections::HashSet<u64> = seqs_of(&h).into_iter().collect();
            acked.iter().all(|q| have.contains(q)).then_some(h)
        });
        assert_increasing(&seqs_of(&h));
    }
    assert_eq!(history(&a, "n"), history(&b, "n"));
}

#[test]
fn the_same_message_id_published_twice_is_stored_once() {
    let Some(nats) = Nats::start() else { return };
    let (a, _da) = node(&nats, "a");
    let (b, _db) = node(&nats, "b");
    // A batch in the stream's own format, as a node would publish it.
    let tail = br#""type":"X","sessionId":"dup","agentId":"a","timestamp":1,"data":{}}"#;
    let pending = tracecast::store::Pending {
        timestamp: 1,
        session: "dup".into(),
        agent: Some("a".into()),
        kind: "X".into(),
        json_tail: tail.to_vec(),
        headroom: 0,
    };
    let mut payload = Vec::new();
    tracecast::cluster::wire::encode(&[pending], &mut payload).unwrap();
    let first = nats.publish_with_id("tracecast.events", "dup-1", &payload);
    let second = nats.publish_with_id("tracecast.events", "dup-1", &payload);
    let (first, second): (Value, Value) = (
        serde_json::from_str(&first).expect("ack JSON"),
        serde_json::from_str(&second).expect("ack JSON"),
    );
    assert_ne!(first["duplicate"], true, "{first}");
    assert_eq!(second["duplicate"], true, "{second}");
    assert_eq!(first["seq"], second["seq"], "one stream message");
    // A later batch through a node: once it is everywhere, so is whatever came before.
    post_batch(&a, &batch("dup", "a", 1, 1));
    for s in [&a, &b] {
        let h = history_of_len(s, "dup", 2);
        assert_eq!(h.len(), 2, "the duplicate stored once: {h:?}");
        assert_eq!(h[0]["type"], "X");
    }
    assert_eq!(history(&a, "dup"), history(&b, "dup"));
}

#[test]
fn a_late_node_starts_from_what_the_stream_still_has_and_says_so() {
    let Some(nats) = Nats::start() else { return };
    // The stream's max age follows the first node's retention: 1.5 s.
    let da = tempfile::tempdir().unwrap();
    let retention = "[storage]\nretention_ms = 1500\n";
    let a = TestServer::start_in(da.path(), &cluster_toml(&nats, "a", retention), &[]);
    wait_current(&a);
    post_batch(&a, &batch("old", "x", 0, 10));
    poll_until("the stream dropped the old messages", LONG, || {
        let info = nats.request("$JS.API.STREAM.INFO.TRACECAST", "", b"");
        let v: Value = serde_json::from_str(&info).ok()?;
        let state = &v["state"];
        (state["messages"] == 0 && state["last_seq"].as_u64() >= Some(1)).then_some(())
    });
    // A node that never read them is current at once: they cannot be read any more.
    let (b, _db) = node(&nats, "b");
    let (_, h) = healthz(&b);
    assert_eq!(h["cluster"]["catching_up"], false, "{h}");
    assert_eq!(h["cluster"]["lag"], 0, "{h}");
    assert!(history(&b, "old").is_empty());
    // What comes next reaches it with the seqs every node gives it, and it says what
    // it lacks.
    let fresh = post_batch(&a, &batch("new", "x", 0, 5));
    assert_eq!(seqs_of(&history_of_len(&b, "new", 5)), fresh);
    b.wait_log("gone before this node read them");
}

#[test]
fn two_nodes_share_one_port_with_reuse_port() {
    let Some(nats) = Nats::start() else { return };
    let port = free_port();
    let extra = format!("reuse_port = true\n{}", cluster_toml(&nats, "p1", ""));
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let toml = |n: &str| extra.replace("\"p1\"", &format!("{n:?}"));
    let start = |dir: &Path, n: &str| {
        let s = TestServer::start_in(dir, &toml(n), &[("TRACECAST_PORT", &port.to_string())]);
        // Not through /healthz: on a shared port it may be answered by the other process.
        s.wait_log("connected to NATS");
        s.wait_log("caught up with the stream");
        s
    };
    let one = start(dirs[0].path(), "p1");
    let two = start(dirs[1].path(), "p2");
    assert_eq!(one.addr, two.addr, "both listen on the same address");
    // Whichever process the kernel hands each request to, every event is on both.
    for k in 0..8 {
        post_batch(&one, &batch("port", "x", k, 1));
    }
    assert_eq!(
        history_of_len(&one, "port", 8),
        history_of_len(&two, "port", 8)
    );
}
