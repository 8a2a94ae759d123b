//! Rebuilding a session's state at an instant (SPEC §6): a pure fold over events.
//!
//! [`SessionState`] is what `time_travel_state.state` carries; [`SessionState::apply`]
//! folds one event into it and [`SessionState::to_json`] writes it with the protocol's
//! field names. [`Checkpoints`] keeps snapshots of the fold so a store can answer "state
//! at T" on a long session without refolding it from the start.
//!
//! Ordering rule (timestamps may arrive out of order): the state at `T` is the fold, **in
//! seq order**, over exactly the events whose `timestamp <= T`. A checkpoint is a
//! snapshot of the fold over the first `p` events in seq order, together with the largest
//! timestamp among them; it may stand in for those `p` events when answering `T` only if
//! that largest timestamp is `<= T` (then all of them would be folded anyway, in the same
//! order). The store then folds the events after `p` whose timestamp is `<= T`.
//!
//! Derivation (SPEC §6), per event in that order:
//! - every event: `eventCount += 1`, `lastSeq = seq`; if it has an `agentId`, that agent's
//!   `eventCount += 1`, `lastEventType = type`, `lastEventAt = timestamp`. An agent first
//!   seen without `AGENT_SPAWN` starts `active` with `spawnedAt` = that event's timestamp.
//! - `AGENT_SPAWN` → `active`, `spawnedAt`, clears `destroyedAt`; `AGENT_DESTROY` →
//!   `destroyed`, `destroyedAt`; `STATE_CHANGE` with a string `data.state` → that status.
//! - `TASK_START` → `running`, `startedAt`; `TASK_COMPLETE` → `completed`, `endedAt`;
//!   `TASK_FAIL` → `failed`, `endedAt`. The task id is `data.taskId` (string or number),
//!   else `traceId`; a task event with neither is counted but makes no task. A task first
//!   seen by its end event gets `startedAt` = that timestamp. `agentId` is the first agent
//!   any of its events named (`null` when none did).

use crate::event::Event;
use crate::json::scan::{self, Value};
use crate::json::write::{
    key, next_key, write_i64, write_opt_str, write_opt_u64, write_str, write_u64,
};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// One agent in a rebuilt state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentState {
    pub status: Arc<str>,
    pub last_event_type: Arc<str>,
    pub last_event_at: i64,
    pub event_count: u64,
    pub spawned_at: i64,
    pub destroyed_at: Option<i64>,
}

/// One task in a rebuilt state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    pub status: &'static str,
    pub agent_id: Option<Arc<str>>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
}

/// The rebuilt state of one session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionState {
    pub agents: HashMap<Arc<str>, AgentState>,
    pub tasks: HashMap<Arc<str>, TaskState>,
    pub event_count: u64,
    pub last_seq: Option<u64>,
}

/// The facts of an event the fold reads; lets a store fold straight from a log record.
#[derive(Debug, Clone, Copy)]
pub struct EventFacts<'a> {
    pub seq: u64,
    pub timestamp: i64,
    pub agent: Option<&'a str>,
    pub kind: &'a str,
    /// The event's JSON; probed only for `TASK_*` and `STATE_CHANGE`.
    pub json: &'a [u8],
}

impl<'a> EventFacts<'a> {
    pub fn of(e: &'a Event) -> Self {
        EventFacts {
            seq: e.seq,
            timestamp: e.timestamp,
            agent: e.agent.as_deref(),
            kind: &e.kind,
            json: &e.json,
        }
    }
}

/// What a run of [`SessionState::fold`] calls reuses: the few strings (types, statuses)
/// states keep, shared instead of allocated per event.
#[derive(Debug, Default)]
pub struct FoldScratch {
    names: Vec<Arc<str>>,
}

/// Distinct names kept for sharing; beyond this they are allocated (a session with very
/// many types or statuses still folds correctly, just less cheaply).
const NAMES: usize = 32;

impl FoldScratch {
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.names.iter().find(|a| &***a == s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        if self.names.len() < NAMES {
            self.names.push(a.clone());
        }
        a
    }
}

/// What a `TASK_*` / `STATE_CHANGE` event says beyond its header.
#[derive(Debug, Default, PartialEq, Eq)]
struct Probe<'a> {
    task_id: Option<Cow<'a, str>>,
    state: Option<Cow<'a, str>>,
}

/// Reads `data.taskId` / `traceId` / `data.state` from an event's JSON with the shared
/// scanner: one pass over the event's members and one over `data`'s, borrowing the
/// strings (a string with escapes is decoded into a new one). A repeated key reads as
/// its last occurrence, as `JSON.parse` reads it in a client. JSON the scanner cannot
/// read where it walks yields nothing, as a failed parse would (ingest never stores any).
fn probe(json: &[u8]) -> Probe<'_> {
    probe_checked(json).unwrap_or_default()
}

fn probe_checked(json: &[u8]) -> Option<Probe<'_>> {
    let [data, trace] = scan::lookup(json, ["data", "traceId"])?;
    let (task, state) = match data {
        Value::Object(d) => {
            let [task, state] = scan::lookup(d, ["taskId", "state"])?;
            (task, state)
        }
        _ => (Value::Missing, Value::Missing),
    };
    let state = match state {
        Value::Str(s) => s.to_cow().ok(),
        _ => None,
    };
    Some(Probe {
        task_id: as_id(task).or_else(|| as_id(trace)),
        state,
    })
}

/// A task id: a string, or an integer (as the JSON reader prints it: `-0` is `0`).
fn as_id(v: Value<'_>) -> Option<Cow<'_, str>> {
    match v {
        Value::Str(s) => s.to_cow().ok(),
        Value::Number(n) if n.as_i64().is_some() || n.as_u64().is_some() => match n.raw() {
            "-0" => Some(Cow::Borrowed("0")),
            raw => Some(Cow::Borrowed(raw)),
        },
        _ => None,
    }
}

impl SessionState {
    /// Folds one event (see the module doc for the rules).
    pub fn apply(&mut self, event: &Event) {
        self.fold(&EventFacts::of(event), &mut FoldScratch::default());
    }

    /// [`SessionState::apply`] on borrowed facts. `_scratch` was the parse buffer of an
    /// older probe; reading fields no longer parses, and the argument stays only so
    /// existing callers keep compiling.
    pub fn apply_facts(&mut self, e: &EventFacts<'_>, _scratch: &mut Vec<u8>) {
        self.fold(e, &mut FoldScratch::default());
    }

    /// Folds one event, with a [`FoldScratch`] kept across a run of events so the strings
    /// the state holds (types, statuses) are shared rather than allocated per event.
    pub fn fold(&mut self, e: &EventFacts<'_>, fs: &mut FoldScratch) {
        self.event_count += 1;
        self.last_seq = Some(e.seq);
        let needs_json = matches!(
            e.kind,
            "TASK_START" | "TASK_COMPLETE" | "TASK_FAIL" | "STATE_CHANGE"
        );
        let p = if needs_json {
            probe(e.json)
        } else {
            Probe::default()
        };
        if let Some(id) = e.agent {
            // One lookup on the common path (a known agent); strings the state keeps are
            // shared through the scratch's interner instead of allocated per event.
            if !self.agents.contains_key(id) {
                let kind = fs.intern(e.kind);
                let active = fs.intern("active");
                self.agents.insert(
                    Arc::from(id),
                    AgentState {
                        status: active,
                        last_event_type: kind,
                        last_event_at: e.timestamp,
                        event_count: 0,
                        spawned_at: e.timestamp,
                        destroyed_at: None,
                    },
                );
            }
            if let Some(a) = self.agents.get_mut(id) {
                a.event_count += 1;
                if &*a.last_event_type != e.kind {
                    a.last_event_type = fs.intern(e.kind);
                }
                a.last_event_at = e.timestamp;
                match e.kind {
                    "AGENT_SPAWN" => {
                        a.status = fs.intern("active");
                        a.spawned_at = e.timestamp;
                        a.destroyed_at = None;
                    }
                    "AGENT_DESTROY" => {
                        a.status = fs.intern("destroyed");
                        a.destroyed_at = Some(e.timestamp);
                    }
                    "STATE_CHANGE" => {
                        if let Some(s) = p.state.as_deref() {
                            if &*a.status != s {
                                a.status = fs.intern(s);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        let status = match e.kind {
            "TASK_START" => "running",
            "TASK_COMPLETE" => "completed",
            "TASK_FAIL" => "failed",
            _ => return,
        };
        let Some(task_id) = p.task_id else { return };
        // Look up before allocating a key: most task events name a known task.
        let t = match self.tasks.get_mut(&*task_id) {
            Some(t) => t,
            None => self
                .tasks
                .entry(Arc::from(&*task_id))
                .or_insert_with(|| TaskState {
                    status,
                    agent_id: None,
                    started_at: e.timestamp,
                    ended_at: None,
                }),
        };
        t.status = status;
        if t.agent_id.is_none() {
            t.agent_id = e
                .agent
                .and_then(|id| self.agents.get_key_value(id))
                .map(|(k, _)| k.clone());
        }
        if status == "running" {
            t.started_at = e.timestamp;
            t.ended_at = None;
        } else {
            t.ended_at = Some(e.timestamp);
        }
    }

    /// Agents plus tasks: the size that checkpoint spacing scales with.
    pub fn size(&self) -> usize {
        self.agents.len() + self.tasks.len()
    }

    /// Writes `{"agents":{…},"tasks":{…},"eventCount":N,"lastSeq":N|null}`, keys sorted so
    /// equal states give equal bytes.
    pub fn to_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"agents\":{");
        let mut agents: Vec<_> = self.agents.iter().collect();
        agents.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (i, (id, a)) in agents.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, id);
            out.extend_from_slice(b":{");
            key(out, "status");
            write_str(out, &a.status);
            next_key(out, "lastEventType");
            write_str(out, &a.last_event_type);
            next_key(out, "lastEventAt");
            write_i64(out, a.last_event_at);
            next_key(out, "eventCount");
            write_u64(out, a.event_count);
            next_key(out, "spawnedAt");
            write_i64(out, a.spawned_at);
            if let Some(d) = a.destroyed_at {
                next_key(out, "destroyedAt");
                write_i64(out, d);
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"},\"tasks\":{");
        let mut tasks: Vec<_> = self.tasks.iter().collect();
        tasks.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (i, (id, t)) in tasks.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, id);
            out.extend_from_slice(b":{");
            key(out, "status");
            write_str(out, t.status);
            next_key(out, "agentId");
            write_opt_str(out, t.agent_id.as_deref());
            next_key(out, "startedAt");
            write_i64(out, t.started_at);
            if let Some(d) = t.ended_at {
                next_key(out, "endedAt");
                write_i64(out, d);
            }
            out.push(b'}');
        }
        out.push(b'}');
        next_key(out, "eventCount");
        write_u64(out, self.event_count);
        next_key(out, "lastSeq");
        write_opt_u64(out, self.last_seq);
        out.push(b'}');
    }
}

/// One snapshot: the fold over the first `pos` events of the session in seq order.
#[derive(Debug, Clone)]
struct Checkpoint {
    pos: u64,
    max_ts: i64,
    state: SessionState,
}

/// The live fold of a session plus its snapshots.
///
/// A snapshot is taken once at least `max(every, 4 × state size)` events were folded
/// since the previous one: with a small state that is every `every` events, and when the
/// state grows (many tasks) snapshots thin out so their total memory stays about a quarter
/// of a state entry per event, while the fold after a snapshot still costs at most four
/// times the size of the state it produces.
#[derive(Debug)]
pub struct Checkpoints {
    every: u64,
    live: SessionState,
    live_pos: u64,
    live_max_ts: i64,
    /// Where the fold started (0, or where [`Checkpoints::restart_at`] put it).
    origin: u64,
    list: VecDeque<Checkpoint>,
    scratch: FoldScratch,
}

impl Checkpoints {
    pub fn new(every: u64) -> Self {
        Checkpoints {
            every: every.max(1),
            live: SessionState::default(),
            live_pos: 0,
            live_max_ts: i64::MIN,
            origin: 0,
            list: VecDeque::new(),
            scratch: FoldScratch::default(),
        }
    }

    /// Folds the event at absolute position `pos` (positions must arrive in order; a
    /// position the fold has already passed is ignored).
    pub fn push(&mut self, pos: u64, e: &EventFacts<'_>) {
        if pos < self.live_pos {
            return;
        }
        self.live_pos = pos;
        self.live.fold(e, &mut self.scratch);
        self.live_pos += 1;
        self.live_max_ts = self.live_max_ts.max(e.timestamp);
        let last = self.list.back().map_or(self.origin, |c| c.pos);
        let gap = self.every.max(4 * self.live.size() as u64);
        if self.live_pos - last >= gap {
            self.list.push_back(Checkpoint {
                pos: self.live_pos,
                max_ts: self.live_max_ts,
                state: self.live.clone(),
            });
        }
    }

    /// Where to start answering "state at `at`": the latest snapshot whose events all have
    /// `timestamp <= at` and that lies at or after `min_pos` (the first event the store
    /// still holds), else an empty state at `min_pos`. Returns the state and the position
    /// from which the caller folds the events with `timestamp <= at`.
    pub fn start_for(&self, at: i64, min_pos: u64) -> (SessionState, u64) {
        // `max_ts` is non-decreasing along the list, so this is a binary search.
        let usable = self.list.partition_point(|c| c.max_ts <= at);
        match usable.checked_sub(1).and_then(|i| self.list.get(i)) {
            Some(c) if c.pos >= min_pos => (c.state.clone(), c.pos),
            _ => (SessionState::default(), min_pos),
        }
    }

    /// The position of the next event the live fold expects: everything before it has
    /// been folded. A store that folds lazily catches up from here.
    pub fn live_pos(&self) -> u64 {
        self.live_pos
    }

    /// Starts the fold afresh at `pos` with an empty state and no snapshots: used when
    /// the events between the fold and `pos` were deleted before it got to them.
    pub fn restart_at(&mut self, pos: u64) {
        self.live = SessionState::default();
        self.live_pos = pos;
        self.live_max_ts = i64::MIN;
        self.origin = pos;
        self.list.clear();
    }

    /// Forgets snapshots before `min_pos` (their tail events were deleted).
    pub fn trim(&mut self, min_pos: u64) {
        while self.list.front().is_some_and(|c| c.pos < min_pos) {
            self.list.pop_front();
        }
    }

    /// The snapshots held, oldest first, as `(position, largest timestamp, state)`: the
    /// fold over the events before `position`. For a store that saves them.
    pub fn snapshots(&self) -> impl Iterator<Item = (u64, i64, &SessionState)> {
        self.list.iter().map(|c| (c.pos, c.max_ts, &c.state))
    }

    /// The live fold, as [`Checkpoints::snapshots`] gives each snapshot.
    pub fn live(&self) -> (u64, i64, &SessionState) {
        (self.live_pos, self.live_max_ts, &self.live)
    }

    /// Continues the fold from a snapshot saved earlier (the fold over the events before
    /// `pos`, `max_ts` the largest timestamp among them), which becomes the only one held.
    pub fn resume_from(&mut self, pos: u64, max_ts: i64, state: SessionState) {
        self.live = state.clone();
        self.live_pos = pos;
        self.live_max_ts = max_ts;
        self.origin = pos;
        self.list.clear();
        self.list.push_back(Checkpoint { pos, max_ts, state });
    }

    /// Snapshots held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.list.len()
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ev(seq: u64, ts: i64, agent: Option<&str>, kind: &str, extra: &str) -> Event {
        let mut json =
            format!("{{\"seq\":{seq},\"type\":\"{kind}\",\"sessionId\":\"s\",\"timestamp\":{ts}");
        if let Some(a) = agent {
            json.push_str(&format!(",\"agentId\":\"{a}\""));
        }
        json.push_str(extra);
        json.push('}');
        Event {
            seq,
            timestamp: ts,
            session: Arc::from("s"),
            agent: agent.map(Arc::from),
            kind: Arc::from(kind),
            json: Bytes::from(json),
        }
    }

    fn fold(events: &[Event], at: i64) -> SessionState {
        let mut s = SessionState::default();
        for e in events.iter().filter(|e| e.timestamp <= at) {
            s.apply(e);
        }
        s
    }

    fn json(s: &SessionState) -> String {
        let mut out = Vec::new();
        s.to_json(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// The reference reading: simd-json's tape (what ingest accepts), with a repeated
    /// key read as its last occurrence (as `JSON.parse` reads it).
    fn reference(json: &str) -> (Option<String>, Option<String>) {
        use simd_json::{Node, StaticNode};
        let mut b = json.as_bytes().to_vec();
        let Ok(tape) = simd_json::to_tape(&mut b) else {
            return (None, None);
        };
        let nodes = tape.0;
        let get = |at: usize, key: &str| {
            let Some(&Node::Object { len, .. }) = nodes.get(at) else {
                return None;
            };
            let (mut i, mut found) = (at + 1, None);
            for _ in 0..len {
                if nodes.get(i) == Some(&Node::String(key)) {
                    found = Some(i + 1);
                }
                i += 1 + crate::json::span(nodes.get(i + 1));
            }
            found
        };
        let id = |at: Option<usize>| match at.and_then(|a| nodes.get(a)) {
            Some(Node::String(s)) => Some(s.to_string()),
            Some(Node::Static(StaticNode::I64(n))) => Some(n.to_string()),
            Some(Node::Static(StaticNode::U64(n))) => Some(n.to_string()),
            _ => None,
        };
        let data = get(0, "data");
        let task = id(data.and_then(|d| get(d, "taskId"))).or_else(|| id(get(0, "traceId")));
        let state = match data
            .and_then(|d| get(d, "state"))
            .and_then(|s| nodes.get(s))
        {
            Some(Node::String(s)) => Some(s.to_string()),
            _ => None,
        };
        (task, state)
    }

    const PROBES: &[&str] = &[
        r#"{"seq":1,"type":"TASK_START","data":{"taskId":"t1"}}"#,
        r#"{"seq":1,"data":{"taskId":7},"traceId":"x"}"#,
        r#"{"seq":1,"data":{"taskId":-7}}"#,
        r#"{"seq":1,"data":{"taskId":7.5},"traceId":"x"}"#,
        r#"{"seq":1,"data":{"taskId":1e3},"traceId":"x"}"#,
        r#"{"seq":1,"data":{"taskId":-0},"traceId":"x"}"#,
        r#"{"seq":1,"data":{"taskId":18446744073709551615}}"#,
        r#"{"seq":1,"data":{"taskId":-9223372036854775808}}"#,
        r#"{"seq":1,"data":{"taskId":true},"traceId":"x"}"#,
        r#"{"seq":1,"data":{"taskId":null},"traceId":7}"#,
        r#"{"seq":1,"data":{"taskId":{"a":1}},"traceId":"tr"}"#,
        r#"{"seq":1,"data":{"taskId":"t\"q"}}"#,
        r#"{"seq":1,"data":{"taskId":"t\u0041"}}"#,
        r#"{"seq":1,"data":{"task\u0049d":"t1"}}"#,
        r#"{"seq":1,"data":{"taskId":"a","taskId":"b"}}"#,
        r#"{"seq":1,"traceId":"a","traceId":"b"}"#,
        r#"{"seq":1,"data":{"state":"a"},"data":{"taskId":"b"}}"#,
        r#"{"seq":1,"data":"str","traceId":"tr"}"#,
        r#"{"seq":1,"data":[1,{"taskId":"no"}],"traceId":"tr"}"#,
        r#"{"seq":1,"x":{"data":{"taskId":"no"}},"y":[[],{}],"z":"}\"{"}"#,
        r#" { "seq" : 1 , "data" : { "state" : "idle" , "n" : [ 1 , 2 ] } } "#,
        r#"{"seq":1,"data":{"state":5}}"#,
        r#"{"seq":1,"data":{"state":"é✓"}}"#,
        r#"{"seq":1,"data":{"state":"a\nb\ud83d\ude00"}}"#,
        r#"{"seq":1,"data":{}}"#,
        r#"{}"#,
        r#"[{"data":{"taskId":"t1"}}]"#,
        r#"{"seq":1,"data":{"taskId":"t1"}} trailing"#,
        r#"{"seq":1,"data":{"taskId":"t1""#,
        r#"{"seq":1,"data":{"taskId":}}"#,
        r#"{"seq":1,"data":{"taskId":"t1"},"traceId":01}"#,
        r#"not json"#,
        "",
    ];

    #[test]
    fn probe_agrees_with_the_reference_reading() {
        for c in PROBES {
            let p = probe(c.as_bytes());
            let (task, state) = reference(c);
            assert_eq!(p.task_id.as_deref(), task.as_deref(), "task in {c}");
            assert_eq!(p.state.as_deref(), state.as_deref(), "state in {c}");
        }
    }

    #[test]
    fn probe_table() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            (PROBES[0], Some("t1"), None),
            (PROBES[1], Some("7"), None),
            (PROBES[3], Some("x"), None),
            (PROBES[5], Some("0"), None),
            (PROBES[11], Some("t\"q"), None),
            (PROBES[13], Some("t1"), None),
            // The last occurrence, at every level.
            (PROBES[14], Some("b"), None),
            (PROBES[15], Some("b"), None),
            (PROBES[16], Some("b"), None),
            (PROBES[20], None, Some("idle")),
            (PROBES[23], None, Some("a\nb😀")),
            // Malformed where the probe reads: nothing, as a failed parse.
            (PROBES[27], None, None),
            (PROBES[29], None, None),
            // Too large for an integer: not an id (ingest never stores such a number).
            (
                r#"{"data":{"taskId":123456789012345678901234},"traceId":"x"}"#,
                Some("x"),
                None,
            ),
        ];
        for &(doc, task, state) in cases {
            let p = probe(doc.as_bytes());
            assert_eq!(p.task_id.as_deref(), task, "task in {doc}");
            assert_eq!(p.state.as_deref(), state, "state in {doc}");
        }
        // Plain strings and integers are borrowed from the event, not copied.
        for doc in [PROBES[0], PROBES[1], PROBES[20]] {
            let p = probe(doc.as_bytes());
            assert!(!matches!(p.task_id, Some(Cow::Owned(_))), "{doc}");
            assert!(!matches!(p.state, Some(Cow::Owned(_))), "{doc}");
        }
    }

    #[test]
    fn lifecycle_table() {
        let events = vec![
            ev(1, 100, Some("a"), "AGENT_SPAWN", ""),
            ev(
                2,
                110,
                Some("a"),
                "TASK_START",
                ",\"data\":{\"taskId\":\"t1\"}",
            ),
            ev(3, 120, Some("a"), "TASK_START", ",\"traceId\":\"tr9\""),
            ev(
                4,
                130,
                Some("a"),
                "TASK_COMPLETE",
                ",\"data\":{\"taskId\":\"t1\"}",
            ),
            ev(
                5,
                140,
                Some("a"),
                "TASK_FAIL",
                ",\"traceId\":\"tr9\",\"data\":{}",
            ),
            ev(
                6,
                150,
                Some("a"),
                "STATE_CHANGE",
                ",\"data\":{\"state\":\"idle\"}",
            ),
            ev(7, 160, None, "MESSAGE_SEND", ""),
            ev(8, 170, Some("b"), "TASK_START", ",\"data\":{\"taskId\":7}"),
            ev(9, 180, Some("a"), "AGENT_DESTROY", ""),
        ];
        let table: &[(i64, &str)] = &[
            (
                99,
                r#"{"agents":{},"tasks":{},"eventCount":0,"lastSeq":null}"#,
            ),
            (
                100,
                r#"{"agents":{"a":{"status":"active","lastEventType":"AGENT_SPAWN","lastEventAt":100,"eventCount":1,"spawnedAt":100}},"tasks":{},"eventCount":1,"lastSeq":1}"#,
            ),
            (
                125,
                r#"{"agents":{"a":{"status":"active","lastEventType":"TASK_START","lastEventAt":120,"eventCount":3,"spawnedAt":100}},"tasks":{"t1":{"status":"running","agentId":"a","startedAt":110},"tr9":{"status":"running","agentId":"a","startedAt":120}},"eventCount":3,"lastSeq":3}"#,
            ),
            (
                145,
                r#"{"agents":{"a":{"status":"active","lastEventType":"TASK_FAIL","lastEventAt":140,"eventCount":5,"spawnedAt":100}},"tasks":{"t1":{"status":"completed","agentId":"a","startedAt":110,"endedAt":130},"tr9":{"status":"failed","agentId":"a","startedAt":120,"endedAt":140}},"eventCount":5,"lastSeq":5}"#,
            ),
            (
                155,
                r#"{"agents":{"a":{"status":"idle","lastEventType":"STATE_CHANGE","lastEventAt":150,"eventCount":6,"spawnedAt":100}},"tasks":{"t1":{"status":"completed","agentId":"a","startedAt":110,"endedAt":130},"tr9":{"status":"failed","agentId":"a","startedAt":120,"endedAt":140}},"eventCount":6,"lastSeq":6}"#,
            ),
            (
                200,
                r#"{"agents":{"a":{"status":"destroyed","lastEventType":"AGENT_DESTROY","lastEventAt":180,"eventCount":7,"spawnedAt":100,"destroyedAt":180},"b":{"status":"active","lastEventType":"TASK_START","lastEventAt":170,"eventCount":1,"spawnedAt":170}},"tasks":{"7":{"status":"running","agentId":"b","startedAt":170},"t1":{"status":"completed","agentId":"a","startedAt":110,"endedAt":130},"tr9":{"status":"failed","agentId":"a","startedAt":120,"endedAt":140}},"eventCount":9,"lastSeq":9}"#,
            ),
        ];
        for (at, want) in table {
            assert_eq!(json(&fold(&events, *at)), *want, "at {at}");
        }
    }

    #[test]
    fn out_of_order_timestamps_fold_in_seq_order() {
        // seq 2 carries an older timestamp than seq 1: at T=105 only seq 2 counts.
        let events = vec![
            ev(
                1,
                110,
                Some("a"),
                "STATE_CHANGE",
                ",\"data\":{\"state\":\"busy\"}",
            ),
            ev(
                2,
                100,
                Some("a"),
                "STATE_CHANGE",
                ",\"data\":{\"state\":\"idle\"}",
            ),
        ];
        let s = fold(&events, 105);
        assert_eq!(s.agents.get("a").map(|a| &*a.status), Some("idle"));
        assert_eq!(s.last_seq, Some(2));
        // At T=110 both count and seq order decides: seq 2 (idle) is applied last.
        let s = fold(&events, 110);
        assert_eq!(s.agents.get("a").map(|a| &*a.status), Some("idle"));
        assert_eq!(s.event_count, 2);
    }

    #[test]
    fn checkpoints_agree_with_full_fold() {
        let mut events = Vec::new();
        for i in 0..2000u64 {
            // Jittered timestamps with periodic stragglers far in the past.
            let ts = if i % 211 == 0 {
                (i as i64) / 2
            } else {
                i as i64 * 10 + (i as i64 * 31 % 17)
            };
            let agent = format!("a{}", i % 5);
            let (kind, extra) = match i % 7 {
                0 => (
                    "TASK_START",
                    format!(",\"data\":{{\"taskId\":\"t{}\"}}", i % 50),
                ),
                1 => (
                    "TASK_COMPLETE",
                    format!(",\"data\":{{\"taskId\":\"t{}\"}}", (i + 49) % 50),
                ),
                2 => (
                    "STATE_CHANGE",
                    format!(",\"data\":{{\"state\":\"s{}\"}}", i % 3),
                ),
                3 => ("AGENT_SPAWN", String::new()),
                _ => ("MESSAGE_SEND", String::new()),
            };
            events.push(ev(i + 1, ts, Some(&agent), kind, &extra));
        }
        let mut cps = Checkpoints::new(100);
        for (i, e) in events.iter().enumerate() {
            cps.push(i as u64, &EventFacts::of(e));
        }
        assert!(cps.len() >= 5);
        for at in [-1, 0, 5, 500, 3_333, 9_999, 15_000, 19_990, 25_000] {
            let (mut s, from) = cps.start_for(at, 0);
            for e in events
                .iter()
                .skip(from as usize)
                .filter(|e| e.timestamp <= at)
            {
                s.apply(e);
            }
            assert_eq!(json(&s), json(&fold(&events, at)), "at {at}");
        }
    }
}
