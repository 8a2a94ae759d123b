//! Backpressure (SPEC §1, §8) with a truly stalled subscriber: a raw client whose socket
//! is never read while thousands of ~1 KB events flow. The reading subscribers get every
//! event in order; the stalled one is told exactly what it lost (`events_dropped` seq
//! ranges under `drop_oldest` / `drop_newest`) or is closed with 4008 (`disconnect`); the
//! server's memory stays bounded.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SESSION: &str = "bp";
const TOTAL: usize = 20_000;
const PER_POST: usize = 250;

fn config(policy: &str) -> String {
    format!(
        "[storage]\npersist = false\nmemory_events_per_session = 1000\n\
         [backpressure]\npolicy = \"{policy}\"\nhigh_water_mark = 65536\nlow_water_mark = 16384\nmax_queue_size = 256\n"
    )
}

/// A ~1 KB event.
fn big_event(n: usize) -> Value {
    let mut e = event(SESSION, &format!("agent-{}", n % 5), "TASK_START", n);
    e["data"]["pad"] = Value::String("p".repeat(720));
    e
}

fn post_range(s: &TestServer, from: usize, to: usize) -> Value {
    let body: String = (from..to).map(|i| format!("{}\n", big_event(i))).collect();
    let (st, _, b) = s.http(
        "POST",
        "/v1/events",
        &[("Content-Type", "application/x-ndjson")],
        body.as_bytes(),
    );
    let ack: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    assert_eq!(st, 202, "{ack}");
    ack
}

/// A subscriber that keeps reading in its own thread until it has the event whose seq
/// `last` ends up holding; returns the seqs it got and any `events_dropped` notices.
fn reader(s: &TestServer, last: Arc<AtomicU64>) -> JoinHandle<(Vec<u64>, Vec<Value>)> {
    let mut c = s.client();
    c.subscribe(SESSION);
    std::thread::spawn(move || {
        let mut seqs: Vec<u64> = Vec::with_capacity(TOTAL);
        let mut drops = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let target = last.load(Ordering::SeqCst);
            if target != 0 && seqs.last().is_some_and(|&s| s >= target) {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(v) = c.try_recv(left.min(Duration::from_millis(500))) else {
                if left.is_zero() {
                    break;
                }
                continue;
            };
            match v["type"].as_str() {
                Some("trace_batch") => seqs.extend(
                    v["events"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| e["seq"].as_u64().unwrap()),
                ),
                Some("events_dropped") => drops.push(v),
                _ => {}
            }
        }
        (seqs, drops)
    })
}

fn events_dropped_total(s: &TestServer) -> u64 {
    let (_, _, body) = s.http("GET", "/metrics", &[], b"");
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| l.starts_with("tracecast_events_dropped_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Publishes batches of ~1 KB events (at most `TOTAL`), stopping early once `stop` says
/// so; returns the first and last seq stored.
fn publish(s: &TestServer, stop: impl Fn(&TestServer) -> bool) -> (u64, u64) {
    let mut first = None;
    let mut last = 0;
    for from in (0..TOTAL).step_by(PER_POST) {
        let ack = post_range(s, from, from + PER_POST);
        first.get_or_insert(ack["firstSeq"].as_u64().unwrap());
        last = ack["lastSeq"].as_u64().unwrap();
        if stop(s) {
            break;
        }
    }
    (first.unwrap(), last)
}

/// A subscriber that stops reading once subscribed.
fn stalled(s: &TestServer) -> Raw {
    let mut r = Raw::upgrade(&s.addr);
    let msg = format!(r#"{{"type":"subscribe_session","sessionId":"{SESSION}"}}"#);
    r.frame(0x81, msg.as_bytes(), true);
    loop {
        let (op, p) = r.next_frame().expect("initial_traces");
        if op == 0x1 && String::from_utf8_lossy(&p).contains("\"type\":\"initial_traces\"") {
            return r;
        }
    }
}

/// What the stalled client finds once it reads again.
struct Catchup {
    seqs: Vec<u64>,
    dropped: BTreeSet<u64>,
    notices: Vec<Value>,
    close: Option<u16>,
}

/// Reads the stalled client until every seq in `first..=last` is either received or
/// reported dropped (or it is closed, or time runs out).
fn catch_up(r: &mut Raw, first: u64, last: u64) -> Catchup {
    let mut c = Catchup {
        seqs: Vec::new(),
        dropped: BTreeSet::new(),
        notices: Vec::new(),
        close: None,
    };
    let covered = |c: &Catchup| {
        c.seqs.last() == Some(&last)
            && (first..=last).all(|s| c.dropped.contains(&s) || c.seqs.binary_search(&s).is_ok())
    };
    while !covered(&c) {
        let Some((op, p)) = r.next_frame() else { break };
        match op {
            0x1 => {
                let v: Value = serde_json::from_slice(&p).expect("JSON");
                match v["type"].as_str() {
                    Some("trace_batch") => c.seqs.extend(
                        v["events"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|e| e["seq"].as_u64().unwrap()),
                    ),
                    Some("events_dropped") => {
                        let (from, to) =
                            (v["fromSeq"].as_u64().unwrap(), v["toSeq"].as_u64().unwrap());
                        assert!(from <= to && from >= first && to <= last, "{v}");
                        assert_eq!(v["sessionId"], SESSION);
                        c.dropped.extend(from..=to);
                        c.notices.push(v);
                    }
                    _ => {}
                }
            }
            0x8 => {
                c.close = (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
                break;
            }
            _ => {}
        }
    }
    c
}

fn assert_in_order_and_complete(seqs: &[u64], first: u64, last: u64) {
    assert_eq!(
        seqs.len() as u64,
        last - first + 1,
        "a reading subscriber lost events"
    );
    assert!(
        seqs.iter().copied().eq(first..=last),
        "a reading subscriber got events out of order"
    );
}

/// Under a lossy policy: readers complete; the stalled client lost some events, was told
/// which (never silently), and what it did get is in order.
fn lossy_policy(policy: &str, stop: impl Fn(&TestServer) -> bool) {
    let s = TestServer::start(&config(policy));
    let target = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2).map(|_| reader(&s, target.clone())).collect();
    let mut stuck = stalled(&s);
    let (first, last) = publish(&s, stop);
    target.store(last, Ordering::SeqCst);
    for r in readers {
        let (seqs, drops) = r.join().expect("reader thread");
        assert!(
            drops.is_empty(),
            "a reading subscriber was told of drops: {drops:?}"
        );
        assert_in_order_and_complete(&seqs, first, last);
    }
    let (peak_kb, _) = s.rss_kb();
    assert!(peak_kb < 100 * 1024, "server peak RSS {peak_kb} KiB");

    let c = catch_up(&mut stuck, first, last);
    assert_eq!(c.close, None, "not closed under {policy}");
    assert!(
        !c.notices.is_empty(),
        "no events_dropped notice under {policy}"
    );
    assert!(
        c.seqs.windows(2).all(|w| w[0] < w[1]),
        "stalled client's events out of order"
    );
    // Seqs are global, so a notice's range may span seqs the client did get; what it
    // must do is cover every missing one and count them exactly.
    let got: BTreeSet<u64> = c.seqs.iter().copied().collect();
    let missing: Vec<u64> = (first..=last).filter(|s| !got.contains(s)).collect();
    assert!(
        !missing.is_empty(),
        "nothing was dropped: the client was not stalled"
    );
    let uncovered: Vec<&u64> = missing.iter().filter(|s| !c.dropped.contains(s)).collect();
    assert!(
        uncovered.is_empty(),
        "{} events vanished silently (first {:?})",
        uncovered.len(),
        uncovered.first()
    );
    let counted: u64 = c.notices.iter().map(|n| n["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, missing.len() as u64, "notices: {:?}", c.notices);
}

#[test]
fn drop_oldest_keeps_readers_whole_and_reports_drops_to_the_stalled_client() {
    lossy_policy("drop_oldest", |_| false);
}

#[test]
fn drop_newest_keeps_readers_whole_and_reports_drops_to_the_stalled_client() {
    // Only until the policy has had to act, and a little beyond, to keep the test short.
    let after = std::cell::Cell::new(0);
    lossy_policy("drop_newest", move |s| {
        if after.get() > 0 || events_dropped_total(s) > 0 {
            after.set(after.get() + 1);
        }
        after.get() > 4
    });
}

#[test]
fn disconnect_policy_closes_the_stalled_client_with_4008() {
    let s = TestServer::start(&config("disconnect"));
    let target = Arc::new(AtomicU64::new(0));
    let reader = reader(&s, target.clone());
    let mut stuck = stalled(&s);
    // Stop as soon as the server gave up on the stalled client, and read it at once: a
    // client that stays silent past the close grace is cut without its close frame.
    let (first, last) = publish(&s, |s| events_dropped_total(s) > 0);
    target.store(last, Ordering::SeqCst);
    let c = catch_up(&mut stuck, first, last);
    assert_eq!(c.close, Some(4008), "received {} events", c.seqs.len());
    assert!(c.seqs.windows(2).all(|w| w[0] < w[1]));
    assert!(c.notices.is_empty(), "{:?}", c.notices);
    let (seqs, drops) = reader.join().expect("reader thread");
    assert!(drops.is_empty(), "{drops:?}");
    assert_in_order_and_complete(&seqs, first, last);
}

/// Replies are never dropped, so a client that keeps sending requests without reading
/// the answers must not grow server memory without bound: it is closed with 1008 once its
/// queue passes the cap, while other clients are served.
#[test]
fn a_client_that_never_reads_its_replies_is_closed_not_buffered_forever() {
    let s = TestServer::start(
        "max_message_size = 4096\nmax_event_bytes = 1024\nhistorical_data_limit = 10\nhistory_chunk_size = 10\n\
         [backpressure]\nhigh_water_mark = 1024\nlow_water_mark = 512\n\
         [rate_limit]\nenabled = false\n[storage]\npersist = false\n",
    );
    let mut greedy = Raw::upgrade(&s.addr);
    // Far more replies than the kernel's socket buffers and the cap can hold.
    let msg = br#"{"type":"heartbeat"}"#;
    let mut sent = 0;
    for _ in 0..60_000 {
        greedy.frame(0x81, msg, true);
        sent += 1;
    }
    // Another client is served meanwhile.
    let mut other = s.client();
    other.send(serde_json::json!({"type": "heartbeat"}));
    other.recv_type("heartbeat_response");
    // The greedy client finds its replies cut off by a policy close.
    assert_eq!(
        greedy.close_code(),
        Some(1008),
        "after {sent} unread requests"
    );
    let (peak, _) = s.rss_kb();
    assert!(peak < 100 * 1024, "peak RSS {peak} KiB");
}
