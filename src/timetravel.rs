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
use simd_json::prelude::*;
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
    /// The event's JSON; parsed only for `TASK_*` and `STATE_CHANGE`.
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

/// What a run of [`SessionState::fold`] calls reuses: the parse buffer and the few
/// strings (types, statuses) states keep, shared instead of allocated per event.
#[derive(Debug, Default)]
pub struct FoldScratch {
    json: Vec<u8>,
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
#[derive(Default)]
struct Probe<'a> {
    task_id: Option<Cow<'a, str>>,
    state: Option<Cow<'a, str>>,
}

/// Reads `data.taskId` / `traceId` / `data.state` from an event's JSON. The fast path
/// walks the bytes once without building a tree; anything it does not handle plainly
/// (escapes in the strings it needs, a repeated key, a non-integer number, unexpected
/// structure) is left to the full parser, which stays the reference.
fn probe<'a>(json: &'a [u8], scratch: &mut Vec<u8>) -> Probe<'a> {
    fast_probe(json).unwrap_or_else(|| slow_probe(json, scratch))
}

fn slow_probe(json: &[u8], scratch: &mut Vec<u8>) -> Probe<'static> {
    scratch.clear();
    scratch.extend_from_slice(json);
    let mut out = Probe::default();
    let Ok(v) = simd_json::to_borrowed_value(scratch.as_mut_slice()) else {
        return out;
    };
    let data = v.get("data");
    let as_id = |x: &simd_json::BorrowedValue<'_>| -> Option<String> {
        if let Some(s) = x.as_str() {
            Some(s.to_owned())
        } else if let Some(n) = x.as_i64() {
            Some(n.to_string())
        } else {
            x.as_u64().map(|n| n.to_string())
        }
    };
    out.task_id = data
        .and_then(|d| d.get("taskId"))
        .and_then(as_id)
        .or_else(|| v.get("traceId").and_then(as_id))
        .map(Cow::Owned);
    out.state = data
        .and_then(|d| d.get("state"))
        .and_then(|s| s.as_str())
        .map(|s| Cow::Owned(s.to_owned()));
    out
}

/// A value the fast probe may need: a plain string, a plain integer, or something else.
enum Scalar<'a> {
    Str(&'a str),
    Int(&'a str),
    Other,
}

/// A cursor over JSON bytes for [`fast_probe`]; every method returns `None` when the
/// input is not what the fast path handles.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&mut self) -> Option<u8> {
        while let Some(&c) = self.b.get(self.at) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(c);
            }
            self.at += 1;
        }
        None
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.at += 1)
    }

    /// A string without escapes (the opening quote is next).
    fn plain_str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let rest = self.b.get(self.at..)?;
        let n = quote_or_escape(rest)?;
        if rest.get(n) != Some(&b'"') {
            return None;
        }
        let s = std::str::from_utf8(rest.get(..n)?).ok()?;
        self.at += n + 1;
        Some(s)
    }

    /// Skips any string (escapes allowed).
    fn skip_str(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            self.at += quote_or_escape(self.b.get(self.at..)?)?;
            match *self.b.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                _ => self.at += 2,
            }
        }
    }

    /// Skips any value.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_str(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => self.skip_str()?,
                        b'{' | b'[' => {
                            depth += 1;
                            self.at += 1;
                        }
                        b'}' | b']' => {
                            depth -= 1;
                            self.at += 1;
                            if depth == 0 {
                                return Some(());
                            }
                        }
                        _ => self.at += 1,
                    }
                }
            }
            _ => {
                let rest = self.b.get(self.at..)?;
                let n = rest
                    .iter()
                    .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))?;
                (n > 0).then(|| self.at += n)
            }
        }
    }

    /// A value that may be an id or a state; `None` only when the fast path must give up.
    fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.peek()? {
            b'"' => {
                let s = self.plain_str()?;
                Some(Scalar::Str(s))
            }
            b'-' | b'0'..=b'9' => {
                let start = self.at;
                self.skip_value()?;
                let t = std::str::from_utf8(self.b.get(start..self.at)?).ok()?;
                let digits = t.strip_prefix('-').unwrap_or(t);
                // Only canonical integers the full parser would print back identically.
                let canonical = !digits.is_empty()
                    && digits.len() <= 18
                    && digits.bytes().all(|c| c.is_ascii_digit())
                    && (digits == "0" || !digits.starts_with('0'))
                    && t != "-0";
                canonical.then_some(Scalar::Int(t))
            }
            _ => {
                self.skip_value()?;
                Some(Scalar::Other)
            }
        }
    }

    /// Walks an object, calling `f(key, cursor)` with the cursor on each value; `f`
    /// consumes the value. Keys with escapes end the fast path.
    fn object(&mut self, mut f: impl FnMut(&'a str, &mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let key = self.plain_str()?;
            self.eat(b':')?;
            f(key, self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// Index of the first `"` or `\\` in `b`. Eight bytes at a time: string values (padding,
/// messages) are most of an event's bytes, and the fast probe must skip them.
fn quote_or_escape(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(LO) & !x & HI != 0;
    let mut at = 0;
    for c in b.chunks_exact(8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let w = u64::from_le_bytes(w);
        if zero_byte(w ^ (LO * u64::from(b'"'))) || zero_byte(w ^ (LO * u64::from(b'\\'))) {
            break;
        }
        at += 8;
    }
    b.get(at..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .map(|i| at + i)
}

fn as_id(s: Scalar<'_>) -> Option<&str> {
    match s {
        Scalar::Str(x) | Scalar::Int(x) => Some(x),
        Scalar::Other => None,
    }
}

fn fast_probe(json: &[u8]) -> Option<Probe<'_>> {
    let mut c = Cursor { b: json, at: 0 };
    let (mut data_seen, mut trace_seen) = (false, false);
    let mut trace: Option<&str> = None;
    let (mut task, mut state): (Option<&str>, Option<&str>) = (None, None);
    c.object(|key, c| match key {
        "data" => {
            if std::mem::replace(&mut data_seen, true) {
                return None;
            }
            if c.peek()? != b'{' {
                return c.skip_value();
            }
            let (mut task_seen, mut state_seen) = (false, false);
            c.object(|k, c| match k {
                "taskId" => {
                    if std::mem::replace(&mut task_seen, true) {
                        return None;
                    }
                    task = as_id(c.scalar()?);
                    Some(())
                }
                "state" => {
                    if std::mem::replace(&mut state_seen, true) {
                        return None;
                    }
                    if let Scalar::Str(s) = c.scalar()? {
                        state = Some(s);
                    }
                    Some(())
                }
                _ => c.skip_value(),
            })
        }
        "traceId" => {
            if std::mem::replace(&mut trace_seen, true) {
                return None;
            }
            trace = as_id(c.scalar()?);
            Some(())
        }
        _ => c.skip_value(),
    })?;
    if c.peek().is_some() {
        return None;
    }
    Some(Probe {
        task_id: task.or(trace).map(Cow::Borrowed),
        state: state.map(Cow::Borrowed),
    })
}

impl SessionState {
    /// Folds one event (see the module doc for the rules).
    pub fn apply(&mut self, event: &Event) {
        let mut scratch = Vec::new();
        self.apply_facts(&EventFacts::of(event), &mut scratch);
    }

    /// [`SessionState::apply`] on borrowed facts, reusing a scratch buffer for parsing.
    pub fn apply_facts(&mut self, e: &EventFacts<'_>, scratch: &mut Vec<u8>) {
        let mut fs = FoldScratch {
            json: std::mem::take(scratch),
            names: Vec::new(),
        };
        self.fold(e, &mut fs);
        *scratch = fs.json;
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
            probe(e.json, &mut fs.json)
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
            out.extend_from_slice(b":{\"status\":");
            write_str(out, &a.status);
            out.extend_from_slice(b",\"lastEventType\":");
            write_str(out, &a.last_event_type);
            push_fmt(
                out,
                format_args!(
                    ",\"lastEventAt\":{},\"eventCount\":{},\"spawnedAt\":{}",
                    a.last_event_at, a.event_count, a.spawned_at
                ),
            );
            if let Some(d) = a.destroyed_at {
                push_fmt(out, format_args!(",\"destroyedAt\":{d}"));
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
            out.extend_from_slice(b":{\"status\":");
            write_str(out, t.status);
            out.extend_from_slice(b",\"agentId\":");
            match &t.agent_id {
                Some(a) => write_str(out, a),
                None => out.extend_from_slice(b"null"),
            }
            push_fmt(out, format_args!(",\"startedAt\":{}", t.started_at));
            if let Some(d) = t.ended_at {
                push_fmt(out, format_args!(",\"endedAt\":{d}"));
            }
            out.push(b'}');
        }
        push_fmt(
            out,
            format_args!("}},\"eventCount\":{},\"lastSeq\":", self.event_count),
        );
        match self.last_seq {
            Some(s) => push_fmt(out, format_args!("{s}")),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
}

fn push_fmt(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = out.write_fmt(args);
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping is the reference; a Vec writer cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
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

    #[test]
    fn quote_or_escape_finds_the_first_at_any_offset() {
        for len in 0..40 {
            for hit in 0..=len {
                for c in [b'"', b'\\'] {
                    let mut b = vec![b'a'; len];
                    if hit < len {
                        b[hit] = c;
                    }
                    let want = (hit < len).then_some(hit);
                    assert_eq!(quote_or_escape(&b), want, "len {len} hit {hit}");
                }
            }
        }
        assert_eq!(quote_or_escape(b"\x80\xff\"\\"), Some(2));
    }

    #[test]
    fn fast_probe_agrees_with_the_full_parser() {
        let cases: &[&str] = &[
            r#"{"seq":1,"type":"TASK_START","data":{"taskId":"t1"}}"#,
            r#"{"seq":1,"data":{"taskId":7},"traceId":"x"}"#,
            r#"{"seq":1,"data":{"taskId":-7}}"#,
            r#"{"seq":1,"data":{"taskId":7.5},"traceId":"x"}"#,
            r#"{"seq":1,"data":{"taskId":1e3},"traceId":"x"}"#,
            r#"{"seq":1,"data":{"taskId":-0},"traceId":"x"}"#,
            r#"{"seq":1,"data":{"taskId":123456789012345678901234},"traceId":"x"}"#,
            r#"{"seq":1,"data":{"taskId":true},"traceId":"x"}"#,
            r#"{"seq":1,"data":{"taskId":null},"traceId":7}"#,
            r#"{"seq":1,"data":{"taskId":{"a":1}},"traceId":"tr"}"#,
            r#"{"seq":1,"data":{"taskId":"t\"q"}}"#,
            r#"{"seq":1,"data":{"taskId":"t\u0041"}}"#,
            r#"{"seq":1,"data":{"task\u0049d":"t1"}}"#,
            r#"{"seq":1,"data":{"taskId":"a","taskId":"b"}}"#,
            r#"{"seq":1,"traceId":"a","traceId":"b"}"#,
            r#"{"seq":1,"data":"str","traceId":"tr"}"#,
            r#"{"seq":1,"data":[1,{"taskId":"no"}],"traceId":"tr"}"#,
            r#"{"seq":1,"x":{"data":{"taskId":"no"}},"y":[[],{}],"z":"}\"{"}"#,
            r#" { "seq" : 1 , "data" : { "state" : "idle" , "n" : [ 1 , 2 ] } } "#,
            r#"{"seq":1,"data":{"state":5}}"#,
            r#"{"seq":1,"data":{"state":"é✓"}}"#,
            r#"{"seq":1,"data":{}}"#,
            r#"{}"#,
            r#"{"seq":1,"data":{"taskId":"t1"}} trailing"#,
            r#"{"seq":1,"data":{"taskId":"t1""#,
            r#"not json"#,
            "",
        ];
        let mut scratch = Vec::new();
        for c in cases {
            let fast = probe(c.as_bytes(), &mut scratch);
            let slow = slow_probe(c.as_bytes(), &mut scratch);
            assert_eq!(
                fast.task_id.as_deref(),
                slow.task_id.as_deref(),
                "task in {c}"
            );
            assert_eq!(fast.state.as_deref(), slow.state.as_deref(), "state in {c}");
        }
        for plain in [0, 1, 2, 18, 19, 20, 21] {
            assert!(
                fast_probe(cases[plain].as_bytes()).is_some(),
                "{}",
                cases[plain]
            );
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
