//! Resume with `sinceSeq` end to end: a catch-up racing a flat-out publisher hands over to
//! the live stream with no gap and no duplicate; a resume across a restart continues from
//! the old seq; a resume whose start retention deleted begins with
//! `events_dropped {reason:"retention"}`; a resume at the end gets only live events.

mod common;
use common::*;
use serde_json::{json, Value};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn batch(session: &str, from: usize, n: usize) -> Vec<Value> {
    (from..from + n)
        .map(|i| event(session, "a", "MESSAGE_SEND", i))
        .collect()
}

fn subscribe_since(c: &mut Client, session: &str, since: u64) -> Value {
    c.send(json!({"type": "subscribe_session", "sessionId": session, "sinceSeq": since}));
    c.recv_type("session_info")
}

/// Receives `trace_batch` events of `session` until `last` arrives (bounded); fails on
/// `initial_traces` or `events_dropped`, which a clean resume must not send.
fn collect_until(c: &mut Client, session: &str, last: u64, bound: Duration) -> Vec<u64> {
    let deadline = Instant::now() + bound;
    let mut got = Vec::new();
    while got.last() != Some(&last) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(m) = c.try_recv(left) else {
            panic!("stopped after {} events, last {:?}", got.len(), got.last())
        };
        match m["type"].as_str() {
            Some("trace_batch") => {
                assert_eq!(m["sessionId"], session);
                got.extend(seqs_of(m["events"].as_array().unwrap()));
            }
            Some("initial_traces" | "events_dropped") => panic!("unexpected {m}"),
            _ => {}
        }
    }
    got
}

#[test]
fn resume_during_flat_out_publishing_has_no_gap_and_no_duplicate() {
    let s = TestServer::start("history_chunk_size = 100\n");
    // A stored prefix long enough that the catch-up takes many chunks.
    let mut expected = Vec::new();
    for b in 0..4 {
        expected.extend(post_batch(&s, &batch("r", b * 250, 250)));
    }
    let since = expected[99];
    // The publisher: its own connection, batches alternating between `r` and another
    // session, each acknowledged before the next; reports its `r` seqs when done.
    let url = s.ws_url();
    let (started_tx, started_rx) = mpsc::channel();
    let publisher = std::thread::spawn(move || {
        let mut p = Client::connect(&url);
        let mut mine = Vec::new();
        for b in 0..200 {
            let session = if b % 2 == 0 { "r" } else { "other" };
            p.send(json!({"type": "publish", "events": batch(session, b * 10, 10)}));
            let ack = p.recv_type("publish_ack");
            if session == "r" {
                let first = ack["firstSeq"].as_u64().unwrap();
                mine.extend(first..first + 10);
            }
            if b == 10 {
                let _ = started_tx.send(());
            }
        }
        mine
    });
    started_rx.recv_timeout(WAIT).expect("publisher running");
    let mut c = s.client();
    let info = subscribe_since(&mut c, "r", since);
    assert_eq!(info["session"]["id"], "r");
    let live = publisher.join().expect("publisher");
    expected.extend(&live);
    let want: Vec<u64> = expected.into_iter().filter(|&q| q > since).collect();
    let got = collect_until(&mut c, "r", *want.last().unwrap(), WAIT);
    assert_eq!(got.len(), want.len(), "count (gap or duplicate)");
    assert_eq!(got, want);
    assert!(
        c.try_recv(Duration::from_millis(200))
            .is_none_or(|m| m["type"] != "trace_batch"),
        "nothing after the last event"
    );
}

#[test]
fn resume_after_restart_continues_from_the_old_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let mut stored = Vec::new();
    {
        let mut s = TestServer::start_in(tmp.path(), "", &[]);
        for b in 0..3 {
            stored.extend(post_batch(&s, &batch("rr", b * 100, 100)));
        }
        assert!(s.terminate().success());
    }
    let since = stored[99];
    let s = TestServer::start_in(tmp.path(), "", &[]);
    let newer = post_batch(&s, &batch("rr", 1000, 50));
    assert!(newer[0] > *stored.last().unwrap());
    let mut c = s.client();
    let info = subscribe_since(&mut c, "rr", since);
    assert_eq!(info["session"]["lastSeq"], *newer.last().unwrap());
    let mut want: Vec<u64> = stored[100..].to_vec();
    want.extend(&newer);
    assert_eq!(
        collect_until(&mut c, "rr", *want.last().unwrap(), WAIT),
        want
    );
    // And it is live now.
    let live = post_batch(&s, &batch("rr", 2000, 5));
    assert_eq!(
        collect_until(&mut c, "rr", *live.last().unwrap(), WAIT),
        live
    );
}

#[test]
fn resume_at_the_end_gets_only_live_events() {
    let s = TestServer::start("");
    let stored = post_batch(&s, &batch("end", 0, 20));
    let mut c = s.client();
    subscribe_since(&mut c, "end", *stored.last().unwrap());
    assert!(
        c.try_recv(Duration::from_millis(300))
            .is_none_or(|m| m["type"] != "trace_batch"),
        "nothing to catch up"
    );
    let live = post_batch(&s, &batch("end", 100, 3));
    assert_eq!(collect_until(&mut c, "end", live[2], WAIT), live);
}

#[test]
fn resume_into_deleted_history_starts_with_events_dropped() {
    let toml = "[storage]\nsegment_bytes = 1048576\nretention_bytes = 1048576\n";
    let s = TestServer::start(toml);
    let pad = "y".repeat(700);
    let mut keep = Vec::new();
    for b in 0..6 {
        // Mixed batches: `kept` events are spread among `filler` events.
        let evs: Vec<Value> = (0..500)
            .map(|i| {
                let session = if i % 5 == 0 { "kept" } else { "filler" };
                let mut e = event(session, "a", "MESSAGE_SEND", b * 500 + i);
                e["data"]["pad"] = json!(pad);
                e
            })
            .collect();
        let seqs = post_batch(&s, &evs);
        keep.extend(seqs.iter().step_by(5).copied());
    }
    let (events, _) = http_history(&s, "sessionId=kept&limit=10000");
    let remaining = seqs_of(&events);
    let first = remaining[0];
    let deleted: Vec<u64> = keep.iter().copied().filter(|&q| q < first).collect();
    assert!(!deleted.is_empty(), "retention deleted some of `kept`");
    assert_eq!([deleted.clone(), remaining.clone()].concat(), keep);

    // From before everything: the notice counts exactly what is gone, then the rest.
    let mut c = s.client();
    subscribe_since(&mut c, "kept", 0);
    let n = c.recv();
    assert_eq!(
        n,
        json!({"type": "events_dropped", "sessionId": "kept", "count": deleted.len(),
            "fromSeq": deleted[0], "toSeq": *deleted.last().unwrap(), "reason": "retention"}),
        "first message after session_info"
    );
    assert_eq!(
        collect_until(&mut c, "kept", *remaining.last().unwrap(), WAIT),
        remaining
    );

    // From the last deleted seq on, nothing is missing: no notice.
    let mut c = s.client();
    subscribe_since(&mut c, "kept", *deleted.last().unwrap());
    assert_eq!(
        collect_until(&mut c, "kept", *remaining.last().unwrap(), WAIT),
        remaining
    );
}
