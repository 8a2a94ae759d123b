//! Time travel end to end (SPEC §6): the state each event kind produces, the instant
//! including exactly the events with `timestamp <= T` even when timestamps arrive out of
//! order, `traces` as the last ≤100 events at or before T, and the same answer after a
//! restart (rebuilt from the log, checkpoints included).

mod common;
use common::*;
use serde_json::{json, Value};

/// An event with an explicit timestamp; `data` may carry `taskId` / `state`.
fn ev(session: &str, kind: &str, agent: Option<&str>, ts: i64, extra: Value) -> Value {
    let mut e = json!({"type": kind, "sessionId": session, "timestamp": ts});
    if let Some(a) = agent {
        e["agentId"] = json!(a);
    }
    if let (Some(e), Some(x)) = (e.as_object_mut(), extra.as_object()) {
        e.extend(x.clone());
    }
    e
}

fn travel(c: &mut Client, session: &str, at: i64) -> Value {
    c.send(
        json!({"type": "time_travel", "sessionId": session, "timestamp": at,
        "requestId": at}),
    );
    let m = c.recv_type("time_travel_state");
    assert_eq!(m["sessionId"], session);
    assert_eq!(m["timestamp"], at);
    assert_eq!(m["requestId"], at);
    m
}

/// Marks a field that must not be in the state at all.
fn absent() -> Value {
    json!("<absent>")
}

type Scenario = (
    &'static str,
    Vec<(&'static str, Option<&'static str>, i64, Value)>,
    i64,
    Vec<(&'static str, Value)>,
);

#[test]
fn time_travel_state_follows_each_event_kind() {
    let none = json!({});
    let task = |id: &str| json!({"data": {"taskId": id}});
    // (session, events (type, agent, ts, extra), T, expected JSON pointers in `state`)
    let table: Vec<Scenario> = vec![
        (
            "spawn",
            vec![("AGENT_SPAWN", Some("a1"), 100, none.clone())],
            100,
            vec![
                ("/agents/a1/status", json!("active")),
                ("/agents/a1/spawnedAt", json!(100)),
                ("/agents/a1/lastEventType", json!("AGENT_SPAWN")),
                ("/agents/a1/destroyedAt", absent()),
                ("/eventCount", json!(1)),
            ],
        ),
        (
            "start",
            vec![
                ("AGENT_SPAWN", Some("a1"), 100, none.clone()),
                ("TASK_START", Some("a1"), 110, task("t1")),
            ],
            200,
            vec![
                ("/tasks/t1/status", json!("running")),
                ("/tasks/t1/agentId", json!("a1")),
                ("/tasks/t1/startedAt", json!(110)),
                ("/tasks/t1/endedAt", absent()),
                ("/agents/a1/eventCount", json!(2)),
                ("/agents/a1/lastEventType", json!("TASK_START")),
                ("/agents/a1/lastEventAt", json!(110)),
            ],
        ),
        (
            "complete",
            vec![
                ("TASK_START", Some("a1"), 110, task("t1")),
                ("TASK_COMPLETE", Some("a1"), 150, task("t1")),
            ],
            150,
            vec![
                ("/tasks/t1/status", json!("completed")),
                ("/tasks/t1/startedAt", json!(110)),
                ("/tasks/t1/endedAt", json!(150)),
            ],
        ),
        (
            "fail",
            vec![
                ("TASK_START", Some("a1"), 110, task("t1")),
                ("TASK_FAIL", Some("a1"), 160, task("t1")),
            ],
            1000,
            vec![
                ("/tasks/t1/status", json!("failed")),
                ("/tasks/t1/endedAt", json!(160)),
            ],
        ),
        (
            "destroy",
            vec![
                ("AGENT_SPAWN", Some("a1"), 100, none.clone()),
                ("AGENT_DESTROY", Some("a1"), 190, none.clone()),
            ],
            190,
            vec![
                ("/agents/a1/status", json!("destroyed")),
                ("/agents/a1/destroyedAt", json!(190)),
                ("/agents/a1/spawnedAt", json!(100)),
            ],
        ),
        (
            "before-destroy",
            vec![
                ("AGENT_SPAWN", Some("a1"), 100, none.clone()),
                ("AGENT_DESTROY", Some("a1"), 190, none.clone()),
            ],
            189,
            vec![
                ("/agents/a1/status", json!("active")),
                ("/agents/a1/destroyedAt", absent()),
                ("/eventCount", json!(1)),
            ],
        ),
        (
            "state-change",
            vec![
                ("AGENT_SPAWN", Some("a1"), 100, none.clone()),
                (
                    "STATE_CHANGE",
                    Some("a1"),
                    120,
                    json!({"data": {"state": "thinking"}}),
                ),
            ],
            120,
            vec![
                ("/agents/a1/status", json!("thinking")),
                ("/agents/a1/lastEventType", json!("STATE_CHANGE")),
            ],
        ),
        (
            "task-from-trace",
            vec![("TASK_START", Some("a2"), 130, json!({"traceId": "trace-9"}))],
            130,
            vec![
                ("/tasks/trace-9/status", json!("running")),
                ("/tasks/trace-9/agentId", json!("a2")),
                // An agent first seen without a spawn is active from then.
                ("/agents/a2/status", json!("active")),
                ("/agents/a2/spawnedAt", json!(130)),
            ],
        ),
        (
            "taskid-wins",
            vec![(
                "TASK_START",
                None,
                130,
                json!({"traceId": "trace-9", "data": {"taskId": "real"}}),
            )],
            130,
            vec![
                ("/tasks/real/status", json!("running")),
                ("/tasks/real/agentId", Value::Null),
                ("/tasks/trace-9", absent()),
            ],
        ),
        (
            "before-everything",
            vec![("AGENT_SPAWN", Some("a1"), 100, none.clone())],
            99,
            vec![
                ("/agents", json!({})),
                ("/tasks", json!({})),
                ("/eventCount", json!(0)),
                ("/lastSeq", Value::Null),
            ],
        ),
    ];
    let s = TestServer::start("");
    let mut c = s.client();
    for (session, events, at, checks) in table {
        let evs: Vec<Value> = events
            .iter()
            .map(|(k, a, ts, x)| ev(session, k, *a, *ts, x.clone()))
            .collect();
        let seqs = post_batch(&s, &evs);
        let m = travel(&mut c, session, at);
        let state = &m["state"];
        for (ptr, want) in checks {
            let got = state.pointer(ptr);
            if want == absent() {
                assert!(got.is_none(), "{session}: {ptr} should be absent: {state}");
            } else {
                assert_eq!(got, Some(&want), "{session}: {ptr} in {state}");
            }
        }
        let included: Vec<u64> = events
            .iter()
            .zip(&seqs)
            .filter(|((_, _, ts, _), _)| *ts <= at)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(state["eventCount"], included.len() as u64, "{session}");
        assert_eq!(seqs_of(m["traces"].as_array().unwrap()), included);
        if let Some(last) = included.last() {
            assert_eq!(state["lastSeq"], *last, "{session}");
        }
    }
}

#[test]
fn time_travel_includes_exactly_the_events_at_or_before_t_out_of_order() {
    let s = TestServer::start("");
    let events = [
        ev("ooo", "AGENT_SPAWN", Some("a1"), 100, json!({})),
        ev("ooo", "AGENT_DESTROY", Some("a1"), 300, json!({})),
        ev(
            "ooo",
            "TASK_START",
            Some("a1"),
            200,
            json!({"data": {"taskId": "t"}}),
        ),
        ev(
            "ooo",
            "STATE_CHANGE",
            Some("a2"),
            50,
            json!({"data": {"state": "idle"}}),
        ),
        ev(
            "ooo",
            "TASK_COMPLETE",
            Some("a1"),
            250,
            json!({"data": {"taskId": "t"}}),
        ),
    ];
    let seqs = post_batch(&s, &events);
    let mut c = s.client();
    // (T, indexes of the events that count, a1 status, task status)
    let cases: [(i64, &[usize], &str, Option<&str>); 6] = [
        (49, &[], "", None),
        (50, &[3], "", None),
        (199, &[0, 3], "active", None),
        (200, &[0, 2, 3], "active", Some("running")),
        (260, &[0, 2, 3, 4], "active", Some("completed")),
        (300, &[0, 1, 2, 3, 4], "destroyed", Some("completed")),
    ];
    for (at, idx, a1, task) in cases {
        let m = travel(&mut c, "ooo", at);
        let st = &m["state"];
        let want: Vec<u64> = idx.iter().map(|&i| seqs[i]).collect();
        assert_eq!(st["eventCount"], want.len() as u64, "T={at}: {st}");
        assert_eq!(seqs_of(m["traces"].as_array().unwrap()), want, "T={at}");
        // The fold runs in seq order over the included events.
        assert_eq!(st["lastSeq"], want.last().map_or(Value::Null, |s| json!(s)));
        if a1.is_empty() {
            assert!(st.pointer("/agents/a1").is_none(), "T={at}: {st}");
        } else {
            assert_eq!(st["agents"]["a1"]["status"], a1, "T={at}: {st}");
        }
        assert_eq!(st["tasks"]["t"]["status"].as_str(), task, "T={at}: {st}");
        if at >= 50 {
            assert_eq!(st["agents"]["a2"]["status"], "idle", "T={at}: {st}");
        }
    }
}

#[test]
fn time_travel_traces_are_the_last_100_at_or_before_t_and_survive_restart() {
    let tmp = tempfile::tempdir().unwrap();
    // Small checkpoint spacing so the answer comes from checkpoints plus a tail.
    let toml = "[storage]\ncheckpoint_every = 16\n";
    let t0 = 1_700_000_000_000i64;
    let (seqs, before) = {
        let mut s = TestServer::start_in(tmp.path(), toml, &[]);
        let evs: Vec<Value> = (0..250)
            .map(|i| {
                let kind = ["AGENT_SPAWN", "TASK_START", "TASK_COMPLETE", "MESSAGE_SEND"][i % 4];
                let mut e = event("tt", &format!("a{}", i % 5), kind, i);
                e["timestamp"] = json!(t0 + i as i64);
                e
            })
            .collect();
        let seqs = post_batch(&s, &evs);
        let mut c = s.client();
        let m = travel(&mut c, "tt", t0 + 199);
        let traces = seqs_of(m["traces"].as_array().unwrap());
        assert_eq!(
            traces,
            seqs[100..200].to_vec(),
            "the last 100 at or before T"
        );
        assert_eq!(m["state"]["eventCount"], 200);
        assert_eq!(m["state"]["lastSeq"], seqs[199]);
        let few = travel(&mut c, "tt", t0 + 9);
        assert_eq!(
            seqs_of(few["traces"].as_array().unwrap()),
            seqs[..10].to_vec()
        );
        let after = [t0 + 17, t0 + 199, t0 + 1_000];
        let before: Vec<Value> = after.iter().map(|&t| travel(&mut c, "tt", t)).collect();
        drop(c);
        assert!(s.terminate().success());
        (seqs, before)
    };
    let s = TestServer::start_in(tmp.path(), toml, &[]);
    let mut c = s.client();
    for b in &before {
        let at = b["timestamp"].as_i64().unwrap();
        let m = travel(&mut c, "tt", at);
        assert_eq!(m["state"], b["state"], "T={at} after restart");
        assert_eq!(m["traces"], b["traces"], "T={at} after restart");
    }
    assert_eq!(before[2]["state"]["lastSeq"], seqs[249]);
}
