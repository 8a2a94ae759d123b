//! Ingest (SPEC §2, §3): turning a publish body into validated, sequencing-ready events.
//!
//! Two steps, both pure. [`parse_body`] parses an HTTP body (one object, an array of
//! objects, or NDJSON) in place with simd-json into [`Events`]: simd-json's flat tape
//! plus the node where each event starts. A WebSocket `publish` arrives as [`Events`]
//! too, cut out of the frame's tape by the client-message parser. [`validate`] then
//! walks each event's fields once, checks them against the §2 rules and serializes the
//! event into a [`Pending`] whose `json_tail` the store prefixes with `{"seq":N,` — so
//! the delivered bytes are produced here, exactly once. A batch is all-or-nothing: the
//! first bad event fails it, and the error names the event's index and field so the
//! producer can fix it.
//!
//! This is the hot half of the 1M events/s target (issue #3), hence the shape: the tape
//! is one allocation per batch where a value tree costs a hash map and a `Vec` per
//! object; events are written straight from the tape; `type`/`sessionId`/`agentId`
//! strings come from a small cache that lives as long as the [`IngestContext`]; and each
//! `json_tail` is allocated once at its exact size, with [`SEQ_HEADROOM`] spare bytes in
//! front where the store writes `{"seq":N,` in place. docs/perf-ingest.md has the numbers.

use crate::json::tape::{write_static, TapeWriter};
use crate::json::write::{write_i64, write_str};
use crate::model::{Pending, SEQ_HEADROOM};
use simd_json::{Node, StaticNode};
use std::fmt;
use std::sync::Arc;

pub use crate::json::tape::{span, Events, JsonBuffers};

mod raw;

/// Longest `type` (bytes).
pub const MAX_TYPE_BYTES: usize = 64;
/// Longest `sessionId` / `swarmId` (bytes).
pub const MAX_SESSION_BYTES: usize = 256;
/// Longest producer `id` (bytes).
pub const MAX_ID_BYTES: usize = 256;
/// Latest accepted `timestamp`: JavaScript's `Date` maximum (year 275760), in ms.
pub const MAX_TIMESTAMP_MS: i64 = 8_640_000_000_000_000;

/// Why a batch was refused. `index` counts events from 0 (for NDJSON, non-empty lines);
/// errors about the body as a whole (not JSON, no events) report index 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestError {
    pub index: usize,
    pub field: Option<&'static str>,
    pub message: String,
}

impl IngestError {
    fn field(index: usize, field: &'static str, message: impl Into<String>) -> Self {
        IngestError {
            index,
            field: Some(field),
            message: message.into(),
        }
    }
    fn event(index: usize, message: impl Into<String>) -> Self {
        IngestError {
            index,
            field: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(
                f,
                "event {}: field \"{field}\": {}",
                self.index, self.message
            ),
            None => write!(f, "event {}: {}", self.index, self.message),
        }
    }
}

impl std::error::Error for IngestError {}

/// Server-assigned event ids: `"<seed hex>-<counter hex>"`. The seed is the server's
/// start time in ms (the caller may mix in more), so ids stay unique across restarts
/// without persisting the counter.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    prefix: Box<str>,
    counter: u64,
}

impl IdGenerator {
    pub fn new(seed: u64) -> Self {
        IdGenerator {
            prefix: format!("{seed:x}-").into(),
            counter: 0,
        }
    }

    /// Appends the next id as a JSON string (it needs no escaping).
    fn write_next(&mut self, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.counter = self.counter.wrapping_add(1);
        out.push(b'"');
        out.extend_from_slice(self.prefix.as_bytes());
        let mut buf = [0u8; 16];
        let mut i = buf.len();
        let mut v = self.counter;
        loop {
            i -= 1;
            buf[i] = HEX[(v & 0xf) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        out.extend_from_slice(buf.get(i..).unwrap_or_default());
        out.push(b'"');
    }
}

/// Slots in the [`Interner`]; a power of two so the hash's top bits pick one.
const INTERN_SLOTS: usize = 256;
/// Longer strings are not cached: hashing them costs more than it saves.
const INTERN_MAX_BYTES: usize = 64;

/// A direct-mapped cache of recent `Arc<str>`s for `type`, `sessionId` and `agentId`.
/// Producers repeat a handful of these across every batch, so a hit saves an
/// allocation per field; a collision only costs the allocation it would have made.
#[derive(Debug, Clone)]
struct Interner {
    slots: Vec<Option<Arc<str>>>,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            slots: vec![None; INTERN_SLOTS],
        }
    }
}

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if s.len() > INTERN_MAX_BYTES {
            return Arc::from(s);
        }
        match self.slots.get_mut(slot_of(s)) {
            Some(Some(a)) if **a == *s => a.clone(),
            Some(slot) => {
                let a: Arc<str> = Arc::from(s);
                *slot = Some(a.clone());
                a
            }
            None => Arc::from(s),
        }
    }
}

/// Multiplicative hash over 8-byte words (the last one overlapping the one before when
/// the length is not a multiple of 8, shorter strings gathered into one word); the top
/// byte picks the slot. Words are loaded whole: a byte-by-byte gather stalls on the
/// store forwarding it needs.
fn slot_of(s: &str) -> usize {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let b = s.as_bytes();
    let n = b.len();
    let word = |i: usize| {
        u64::from_le_bytes(
            b.get(i..i + 8)
                .and_then(|w| <[u8; 8]>::try_from(w).ok())
                .unwrap_or_default(),
        )
    };
    let half = |i: usize| {
        u64::from(u32::from_le_bytes(
            b.get(i..i + 4)
                .and_then(|w| <[u8; 4]>::try_from(w).ok())
                .unwrap_or_default(),
        ))
    };
    let mut h = n as u64;
    if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            h = (h ^ word(i)).wrapping_mul(K);
            i += 8;
        }
        if i < n {
            h = (h ^ word(n - 8)).wrapping_mul(K);
        }
    } else if n >= 4 {
        h = (h ^ (half(0) | (half(n - 4) << 32))).wrapping_mul(K);
    } else {
        let at = |i: usize| u64::from(b.get(i).copied().unwrap_or(0));
        h = (h ^ (at(0) | (at(n / 2) << 8) | (at(n.wrapping_sub(1)) << 16))).wrapping_mul(K);
    }
    (h >> 56) as usize % INTERN_SLOTS
}

/// What [`validate`] needs from the server: limits, the clock, the id source (and a
/// string cache that makes repeated batches cheaper).
#[derive(Debug, Clone)]
pub struct IngestContext {
    /// Largest accepted event, measured as its stored object without `"seq":N,`.
    pub max_event_bytes: usize,
    /// The receive time given to events without a `timestamp` (epoch ms).
    pub now_ms: i64,
    pub ids: IdGenerator,
    strings: Interner,
    scratch: Scratch,
}

impl IngestContext {
    pub fn new(max_event_bytes: usize, now_ms: i64, id_seed: u64) -> Self {
        IngestContext {
            max_event_bytes,
            now_ms,
            ids: IdGenerator::new(id_seed),
            strings: Interner::default(),
            scratch: Scratch::default(),
        }
    }
}

/// Parses an HTTP publish body in place: one JSON object, a JSON array (of objects,
/// checked by [`validate`]), or NDJSON.
///
/// NDJSON is recognized without a trial parse (an in-place parse clobbers the buffer):
/// a body is NDJSON when it starts with `{` and some line break has `}` before it and `{`
/// after it (whitespace aside). That sequence can never occur in one valid JSON value —
/// raw line breaks are not allowed inside strings and `}` `{` needs a comma between —
/// so a pretty-printed single object is still parsed as one. Each non-empty line is then
/// one event; its index is its position among the non-empty lines.
pub fn parse_body<'a>(
    body: &'a mut [u8],
    bufs: &mut JsonBuffers,
) -> Result<Events<'a>, IngestError> {
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(first) = first else {
        return Err(IngestError::event(0, "no events: the body is empty"));
    };
    if body.get(first) == Some(&b'{') && is_ndjson(body) {
        // Each non-empty line is one event, parsed on its own.
        return bufs.parse_lines(body).map_err(|(index, e)| {
            IngestError::event(index, format!("malformed JSON on its NDJSON line: {e}"))
        });
    }
    let end = body.len();
    let nodes = bufs
        .parse(body)
        .map_err(|e| IngestError::event(0, format!("malformed JSON body: {e}")))?;
    match nodes.first() {
        Some(Node::Array { len: 0, .. }) => {
            Err(IngestError::event(0, "no events: the array is empty"))
        }
        Some(Node::Array { .. }) => bufs
            .array_events(nodes, 0, Some(end))
            .ok_or_else(|| IngestError::event(0, "malformed JSON body")),
        _ => Ok(bufs.value_event(nodes, 0, Some(end))),
    }
}

/// True when some `\n` has `}` before it and `{` after it, whitespace aside.
fn is_ndjson(body: &[u8]) -> bool {
    let mut from = 0;
    while let Some(off) = body
        .get(from..)
        .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
    {
        let nl = from + off;
        let before = body
            .get(..nl)
            .and_then(|b| b.iter().rev().find(|c| !c.is_ascii_whitespace()));
        let after = body
            .get(nl + 1..)
            .and_then(|a| a.iter().find(|c| !c.is_ascii_whitespace()));
        if before == Some(&b'}') && after == Some(&b'{') {
            return true;
        }
        from = nl + 1;
    }
    false
}

/// Bits for the fields whose duplicates would make the stored event ambiguous.
mod seen {
    pub const TYPE: u32 = 1 << 0;
    pub const SESSION: u32 = 1 << 1;
    pub const SWARM: u32 = 1 << 2;
    pub const ID: u32 = 1 << 3;
    pub const TIMESTAMP: u32 = 1 << 4;
    pub const AGENT: u32 = 1 << 5;
    pub const OTHER_KNOWN: u32 = 1 << 6;
}

const NULL: Node<'static> = Node::Static(StaticNode::Null);

fn session_ok(s: &str) -> bool {
    // Printable ASCII is the common case and needs no UTF-8 decoding.
    !s.is_empty()
        && s.len() <= MAX_SESSION_BYTES
        && (s.bytes().all(|b| (0x20..0x7f).contains(&b)) || !s.chars().any(char::is_control))
}

/// Epoch ms from a JSON number: non-negative, finite, at most [`MAX_TIMESTAMP_MS`];
/// fractions are truncated for the index (the JSON keeps the producer's number).
fn timestamp_ms(v: Node<'_>) -> Option<i64> {
    let ms = match v {
        Node::Static(StaticNode::I64(n)) => n,
        Node::Static(StaticNode::U64(n)) => i64::try_from(n).ok()?,
        Node::Static(StaticNode::F64(n))
            if n.is_finite() && n >= 0.0 && n <= MAX_TIMESTAMP_MS as f64 =>
        {
            n as i64
        }
        _ => return None,
    };
    (0..=MAX_TIMESTAMP_MS).contains(&ms).then_some(ms)
}

/// Scratch space kept in the [`IngestContext`], so events allocate only their output.
#[derive(Debug, Clone, Default)]
struct Scratch {
    /// The producer's fields, each written as `,"key":value` (when not kept verbatim).
    body: Vec<u8>,
    /// The server-assigned fields, each written as `,"key":value`.
    head: Vec<u8>,
    /// Writes nested values from the tape.
    tape: TapeWriter,
    /// `,"timestamp":<now>`, formatted once per batch (the clock is fixed for it).
    now_field: Vec<u8>,
}

/// Validates a batch and builds each event's `json_tail`. All or nothing.
///
/// An event whose bytes the parser located (see [`raw`]) keeps the producer's members
/// verbatim, as SPEC §2 asks; one it did not, or one whose `id`/`timestamp` is `null`
/// (dropped, then assigned), is re-serialized compactly from the tape.
pub fn validate(events: &Events<'_>, ctx: &mut IngestContext) -> Result<Vec<Pending>, IngestError> {
    if events.is_empty() {
        return Err(IngestError::event(0, "no events"));
    }
    let mut out = Vec::with_capacity(events.len());
    let mut scratch = std::mem::take(&mut ctx.scratch);
    scratch.now_field.clear();
    scratch.now_field.extend_from_slice(b",\"timestamp\":");
    write_i64(&mut scratch.now_field, ctx.now_ms);
    let result = events
        .starts()
        .iter()
        .enumerate()
        .try_for_each(|(index, &start)| {
            let verbatim = raw::members_as_sent(events, index);
            let nodes = events.nodes();
            let p = match validate_one(nodes, start, index, verbatim, ctx, &mut scratch)? {
                Some(p) => p,
                None => validate_one(nodes, start, index, None, ctx, &mut scratch)?
                    .ok_or_else(|| IngestError::event(index, "cannot be stored"))?,
            };
            out.push(p);
            Ok(())
        });
    ctx.scratch = scratch;
    result.map(|()| out)
}

/// Validates one event and builds its `json_tail`, from `verbatim` (its members as sent)
/// when given, else from the tape. `Ok(None)` asks for the tape: the event drops a
/// field, so its bytes cannot be kept as sent.
fn validate_one(
    nodes: &[Node<'_>],
    start: usize,
    index: usize,
    verbatim: Option<&[u8]>,
    ctx: &mut IngestContext,
    scratch: &mut Scratch,
) -> Result<Option<Pending>, IngestError> {
    let Some(&Node::Object { len, .. }) = nodes.get(start) else {
        return Err(IngestError::event(index, "must be a JSON object"));
    };
    let body = &mut scratch.body;
    body.clear();
    let mut seen = 0u32;
    let mut kind: Option<&str> = None;
    let mut session: Option<&str> = None;
    let mut swarm: Option<&str> = None;
    let mut agent: Option<&str> = None;
    let mut has_id = false;
    let mut timestamp: Option<i64> = None;
    let mut dropped = false;
    let mut i = start + 1;
    for _ in 0..len {
        let k = match nodes.get(i) {
            Some(Node::String(k)) => *k,
            // simd-json always puts a string key here.
            _ => return Err(IngestError::event(index, "must be a JSON object")),
        };
        let at = i + 1;
        let v = nodes.get(at).copied().unwrap_or(NULL);
        i = at + span(Some(&v));
        // A null id/timestamp is replaced by the assigned one, so it is not written.
        let mut keep = true;
        let bit = match k {
            "type" => {
                match v {
                    Node::String(s) if !s.is_empty() && s.len() <= MAX_TYPE_BYTES => kind = Some(s),
                    _ => {
                        return Err(IngestError::field(
                            index,
                            "type",
                            "must be a string of 1..64 bytes",
                        ))
                    }
                }
                seen::TYPE
            }
            "sessionId" => {
                match v {
                    Node::String(s) if session_ok(s) => session = Some(s),
                    _ => {
                        return Err(IngestError::field(
                            index,
                            "sessionId",
                            "must be a string of 1..256 bytes without control characters",
                        ))
                    }
                }
                seen::SESSION
            }
            "swarmId" => {
                // Only an alias when sessionId is absent; checked after the loop.
                if let Node::String(s) = v {
                    swarm = Some(s);
                }
                seen::SWARM
            }
            "id" => {
                match v {
                    Node::String(s) if s.len() <= MAX_ID_BYTES => has_id = true,
                    Node::Static(StaticNode::Null) => keep = false,
                    _ => {
                        return Err(IngestError::field(
                            index,
                            "id",
                            "must be a string of at most 256 bytes",
                        ))
                    }
                }
                seen::ID
            }
            "timestamp" => {
                if matches!(v, Node::Static(StaticNode::Null)) {
                    keep = false;
                } else {
                    timestamp = Some(timestamp_ms(v).ok_or_else(|| {
                        IngestError::field(
                            index,
                            "timestamp",
                            "must be a non-negative number of epoch milliseconds",
                        )
                    })?);
                }
                seen::TIMESTAMP
            }
            "seq" => {
                return Err(IngestError::field(
                    index,
                    "seq",
                    "is assigned by the server; producers must not send it",
                ))
            }
            "agentId" => {
                match v {
                    Node::String(s) => agent = Some(s),
                    Node::Static(StaticNode::Null) => {}
                    _ => return Err(IngestError::field(index, "agentId", "must be a string")),
                }
                seen::AGENT
            }
            f @ ("traceId" | "spanId" | "parentId" | "phase") => {
                if !matches!(v, Node::String(_) | Node::Static(StaticNode::Null)) {
                    return Err(IngestError::field(
                        index,
                        static_name(f),
                        "must be a string",
                    ));
                }
                seen::OTHER_KNOWN
            }
            "duration" => {
                if !matches!(
                    v,
                    Node::Static(
                        StaticNode::I64(_)
                            | StaticNode::U64(_)
                            | StaticNode::F64(_)
                            | StaticNode::Null
                    )
                ) {
                    return Err(IngestError::field(index, "duration", "must be a number"));
                }
                seen::OTHER_KNOWN
            }
            f @ ("data" | "metadata" | "performance") => {
                if !matches!(v, Node::Object { .. } | Node::Static(StaticNode::Null)) {
                    return Err(IngestError::field(
                        index,
                        static_name(f),
                        "must be an object",
                    ));
                }
                seen::OTHER_KNOWN
            }
            _ => 0,
        };
        if bit != 0 && bit != seen::OTHER_KNOWN {
            if seen & bit != 0 {
                return Err(IngestError::field(
                    index,
                    static_name(k),
                    "appears more than once",
                ));
            }
            seen |= bit;
        }
        if !keep {
            dropped = true;
        } else if verbatim.is_none() {
            if bit != 0 {
                // A field we matched by name: its key is one of our plain ASCII names.
                body.extend_from_slice(b",\"");
                body.extend_from_slice(k.as_bytes());
                body.extend_from_slice(b"\":");
            } else {
                body.push(b',');
                write_str(body, k);
                body.push(b':');
            }
            match v {
                Node::String(s) => write_str(body, s),
                Node::Static(n) => write_static(body, n),
                _ => scratch
                    .tape
                    .write_value(body, nodes.get(at..i).unwrap_or_default()),
            }
        }
    }
    let Some(kind) = kind else {
        return Err(IngestError::field(index, "type", "is required"));
    };
    let assigned_session = match (session, seen & seen::SWARM != 0) {
        (Some(_), _) => None,
        (None, true) => match swarm {
            Some(s) if session_ok(s) => Some(s),
            _ => {
                return Err(IngestError::field(
                    index,
                    "swarmId",
                    "must be a string of 1..256 bytes without control characters",
                ))
            }
        },
        (None, false) => return Err(IngestError::field(index, "sessionId", "is required")),
    };
    let session = session.or(assigned_session).unwrap_or_default();

    // The producer's members, as sent or as written above (less the leading comma;
    // never empty: `type` is one of them).
    let members = match verbatim {
        Some(_) if dropped => return Ok(None),
        Some(v) => v,
        None => body.get(1..).unwrap_or_default(),
    };

    // Server-assigned fields first, then the producer's fields in their order.
    let head = &mut scratch.head;
    head.clear();
    if !has_id {
        head.extend_from_slice(b",\"id\":");
        ctx.ids.write_next(head);
    }
    let ts = match timestamp {
        Some(ts) => ts,
        None => {
            head.extend_from_slice(&scratch.now_field);
            ctx.now_ms
        }
    };
    if let Some(s) = assigned_session {
        head.extend_from_slice(b",\"sessionId\":");
        write_str(head, s);
    }
    // The stored object: `{`, head without its leading comma, a comma when there is a
    // head, the members, `}`.
    let size = head.len() + members.len() + 2;
    if size > ctx.max_event_bytes {
        return Err(IngestError::event(
            index,
            format!(
                "is {size} bytes, over the limit of {} (max_event_bytes)",
                ctx.max_event_bytes
            ),
        ));
    }
    // Exact capacity, headroom included: the store writes `{"seq":N,` into the headroom
    // and hands the same allocation to subscribers.
    let mut json_tail = Vec::with_capacity(SEQ_HEADROOM + size - 1);
    json_tail.resize(SEQ_HEADROOM, b' ');
    if let Some(h) = head.get(1..) {
        json_tail.extend_from_slice(h);
        json_tail.push(b',');
    }
    json_tail.extend_from_slice(members);
    json_tail.push(b'}');
    Ok(Some(Pending {
        timestamp: ts,
        session: ctx.strings.get(session),
        agent: agent.map(|a| ctx.strings.get(a)),
        kind: ctx.strings.get(kind),
        json_tail,
        headroom: SEQ_HEADROOM,
    }))
}

/// The static spelling of a field name we matched on (for error values).
fn static_name(k: &str) -> &'static str {
    const NAMES: [&str; 15] = [
        "type",
        "sessionId",
        "swarmId",
        "id",
        "timestamp",
        "seq",
        "agentId",
        "traceId",
        "spanId",
        "parentId",
        "phase",
        "duration",
        "data",
        "metadata",
        "performance",
    ];
    NAMES.iter().find(|n| **n == k).copied().unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn ctx() -> IngestContext {
        IngestContext::new(65536, 1_700_000_000_000, 0xabc)
    }

    fn run(body: &str) -> Result<Vec<Pending>, IngestError> {
        let mut buf = body.as_bytes().to_vec();
        let mut buffers = JsonBuffers::default();
        let values = parse_body(&mut buf, &mut buffers)?;
        validate(&values, &mut ctx())
    }

    fn stored(p: &Pending, seq: u64) -> Value {
        let mut full = format!("{{\"seq\":{seq},").into_bytes();
        full.extend_from_slice(&p.json_tail[p.headroom..]);
        serde_json::from_slice(&full)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&full)))
    }

    #[test]
    fn good_events() {
        let p = run(r#"{"type":"TASK_START","sessionId":"s1","agentId":"a","data":{"x":[1,2,"\n"]},"custom":true}"#).unwrap();
        assert_eq!(p.len(), 1);
        let tail = std::str::from_utf8(&p[0].json_tail[p[0].headroom..]).unwrap();
        assert_eq!(
            tail,
            r#""id":"abc-1","timestamp":1700000000000,"type":"TASK_START","sessionId":"s1","agentId":"a","data":{"x":[1,2,"\n"]},"custom":true}"#
        );
        assert_eq!(&*p[0].session, "s1");
        assert_eq!(p[0].agent.as_deref(), Some("a"));
        assert_eq!(&*p[0].kind, "TASK_START");
        assert_eq!(p[0].timestamp, 1_700_000_000_000);

        // Producer id and timestamp kept, swarmId aliased, float timestamp truncated.
        let p = run(r#"[{"id":"e1","type":"T","swarmId":"sw","timestamp":1234.9},{"type":"T","sessionId":"s","timestamp":null,"agentId":null}]"#).unwrap();
        let v = stored(&p[0], 7);
        assert_eq!(v["seq"], 7);
        assert_eq!(v["id"], "e1");
        assert_eq!(v["sessionId"], "sw");
        assert_eq!(v["swarmId"], "sw");
        assert_eq!(p[0].timestamp, 1234);
        assert_eq!(&*p[0].session, "sw");
        let tail = std::str::from_utf8(&p[1].json_tail[p[1].headroom..]).unwrap();
        assert_eq!(
            tail,
            r#""id":"abc-1","timestamp":1700000000000,"type":"T","sessionId":"s","agentId":null}"#
        );
        assert_eq!(p[1].agent, None);
        // Strings repeated across a batch share one allocation.
        let p = run(r#"[{"type":"T","sessionId":"s"},{"type":"T","sessionId":"s"}]"#).unwrap();
        assert!(Arc::ptr_eq(&p[0].session, &p[1].session));
        assert!(Arc::ptr_eq(&p[0].kind, &p[1].kind));
    }

    #[test]
    fn bad_events_name_index_and_field() {
        let t = r#""type":"T","sessionId":"s""#;
        let long_type = "x".repeat(65);
        let long_session = "s".repeat(257);
        let long_id = "i".repeat(257);
        let cases: Vec<(String, usize, Option<&str>)> = vec![
            (format!("[{{{t}}},1]"), 1, None),
            (r#"{"sessionId":"s"}"#.into(), 0, Some("type")),
            (r#"{"type":"","sessionId":"s"}"#.into(), 0, Some("type")),
            (
                format!(r#"{{"type":"{long_type}","sessionId":"s"}}"#),
                0,
                Some("type"),
            ),
            (r#"{"type":5,"sessionId":"s"}"#.into(), 0, Some("type")),
            (r#"{"type":"T"}"#.into(), 0, Some("sessionId")),
            (
                r#"{"type":"T","sessionId":""}"#.into(),
                0,
                Some("sessionId"),
            ),
            (
                r#"{"type":"T","sessionId":"a\u0001b"}"#.into(),
                0,
                Some("sessionId"),
            ),
            (
                format!(r#"{{"type":"T","sessionId":"{long_session}"}}"#),
                0,
                Some("sessionId"),
            ),
            (r#"{"type":"T","swarmId":7}"#.into(), 0, Some("swarmId")),
            (format!(r#"[{{{t}}},{{{t},"seq":3}}]"#), 1, Some("seq")),
            (format!(r#"{{{t},"id":5}}"#), 0, Some("id")),
            (format!(r#"{{{t},"id":"{long_id}"}}"#), 0, Some("id")),
            (format!(r#"{{{t},"timestamp":-1}}"#), 0, Some("timestamp")),
            (
                format!(r#"{{{t},"timestamp":"now"}}"#),
                0,
                Some("timestamp"),
            ),
            (
                format!(r#"{{{t},"timestamp":1e300}}"#),
                0,
                Some("timestamp"),
            ),
            (format!(r#"{{{t},"agentId":1}}"#), 0, Some("agentId")),
            (format!(r#"{{{t},"traceId":{{}}}}"#), 0, Some("traceId")),
            (format!(r#"{{{t},"phase":true}}"#), 0, Some("phase")),
            (format!(r#"{{{t},"duration":"1s"}}"#), 0, Some("duration")),
            (format!(r#"{{{t},"data":[1]}}"#), 0, Some("data")),
            (format!(r#"{{{t},"metadata":"x"}}"#), 0, Some("metadata")),
            (
                format!(r#"{{{t},"performance":1}}"#),
                0,
                Some("performance"),
            ),
            (format!(r#"{{{t},"type":"U"}}"#), 0, Some("type")),
            (
                format!("{{{t}}}\n{{{t}}}\n{{\"type\":\"T\"}}\n"),
                2,
                Some("sessionId"),
            ),
            ("[]".into(), 0, None),
            ("  ".into(), 0, None),
            ("{\"type\":".into(), 0, None),
        ];
        for (body, index, field) in cases {
            let e = run(&body).expect_err(&body);
            assert_eq!((e.index, e.field), (index, field), "{body}: {e}");
        }
    }

    #[test]
    fn error_display() {
        let e = run(r#"[{"type":"T","sessionId":"s"},{"type":"T","sessionId":"s"},{"type":"T","sessionId":"s"},{"type":"T","sessionId":""}]"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"event 3: field "sessionId": must be a string of 1..256 bytes without control characters"#
        );
    }

    #[test]
    fn size_limit() {
        let big = "x".repeat(100);
        let mut buf =
            format!(r#"{{"type":"T","sessionId":"s","id":"i","timestamp":1,"p":"{big}"}}"#)
                .into_bytes();
        let mut buffers = JsonBuffers::default();
        let values = parse_body(&mut buf, &mut buffers).unwrap();
        let mut c = ctx();
        // The stored object without seq: exactly what the producer sent here.
        let exact = r#"{"id":"i","timestamp":1,"type":"T","sessionId":"s","p":""}"#.len() + 100;
        c.max_event_bytes = exact;
        assert!(validate(&values, &mut c).is_ok());
        c.max_event_bytes = exact - 1;
        let e = validate(&values, &mut c).unwrap_err();
        assert_eq!((e.index, e.field), (0, None));
    }

    #[test]
    fn body_shapes() {
        let t = r#"{"type":"T","sessionId":"s"}"#;
        assert_eq!(run(t).unwrap().len(), 1);
        assert_eq!(run(&format!("[{t},{t}]")).unwrap().len(), 2);
        assert_eq!(run(&format!("{t}\n\n{t}\r\n{t}\n")).unwrap().len(), 3);
        // Pretty-printed single object is not NDJSON.
        let pretty = "{\n  \"type\": \"T\",\n  \"data\": {\n    \"a\": {}\n  },\n  \"sessionId\": \"s\"\n}\n";
        assert_eq!(run(pretty).unwrap().len(), 1);
        assert!(is_ndjson(format!("{t}\n{t}").as_bytes()));
        assert!(!is_ndjson(t.as_bytes()));
        // Bad JSON on an NDJSON line names that line's event.
        let e = run(&format!("{t}\n{{\"type\":\n")).unwrap_err();
        assert_eq!(e.index, 1);
    }

    #[test]
    fn key_order_kept_beyond_32_keys() {
        let fields: String = (0..40).map(|i| format!(",\"k{i}\":{i}")).collect();
        let p = run(&format!(
            r#"{{"type":"T","sessionId":"s","id":"i","timestamp":1{fields}}}"#
        ))
        .unwrap();
        let tail = String::from_utf8(p[0].json_tail[p[0].headroom..].to_vec()).unwrap();
        assert_eq!(
            tail,
            format!(r#""type":"T","sessionId":"s","id":"i","timestamp":1{fields}}}"#)
        );
    }

    #[test]
    fn strings_are_cached_across_batches() {
        let mut c = ctx();
        let mut pending = Vec::new();
        for _ in 0..2 {
            let mut buf = br#"{"type":"T","sessionId":"s","agentId":"a"}"#.to_vec();
            let mut buffers = JsonBuffers::default();
            let values = parse_body(&mut buf, &mut buffers).unwrap();
            pending.extend(validate(&values, &mut c).unwrap());
        }
        assert!(Arc::ptr_eq(&pending[0].session, &pending[1].session));
        assert!(Arc::ptr_eq(
            pending[0].agent.as_ref().unwrap(),
            pending[1].agent.as_ref().unwrap()
        ));
        let long = "x".repeat(INTERN_MAX_BYTES + 1);
        assert_eq!(&*c.strings.get(&long), long.as_str());
    }

    fn tails(body: &str) -> Vec<String> {
        run(body)
            .unwrap()
            .iter()
            .map(|p| String::from_utf8(p.json_tail[p.headroom..].to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn members_on_one_line_are_kept_as_sent() {
        let ev = r#"{ "type" : "T", "sessionId":"s","id":"i","timestamp":1.5e3, "data":{"q":"a\u0041\"}"} }"#;
        let want = r#""type" : "T", "sessionId":"s","id":"i","timestamp":1.5e3, "data":{"q":"a\u0041\"}"}}"#;
        // One object, an array (pretty between events), and NDJSON.
        assert_eq!(tails(ev), vec![want.to_string()]);
        assert_eq!(
            tails(&format!("[\n  {ev},\n  {ev}\n]\n")),
            vec![want.to_string(); 2]
        );
        assert_eq!(tails(&format!("{ev}\r\n\n{ev}")), vec![want.to_string(); 2]);
        let p = run(ev).unwrap();
        assert_eq!(p[0].timestamp, 1500);
        assert_eq!(&*p[0].session, "s");
        // Server fields go first, then the producer's members as sent.
        assert_eq!(
            tails(r#"{"type":"T", "swarmId":"w"}"#),
            vec![r#""id":"abc-1","timestamp":1700000000000,"sessionId":"w","type":"T", "swarmId":"w""#.to_string() + "}"]
        );
    }

    #[test]
    fn events_that_cannot_be_kept_as_sent_are_compacted() {
        // Spread over lines (NDJSON history needs one line per event), or dropping a
        // null id: written from the tape instead.
        assert_eq!(
            tails(
                "{\n  \"type\": \"T\",\n  \"sessionId\": \"s\", \"id\": \"i\", \"timestamp\": 2\n}"
            ),
            vec![r#""type":"T","sessionId":"s","id":"i","timestamp":2}"#.to_string()]
        );
        assert_eq!(
            tails(r#"[{"type":"T","sessionId":"s","id":null,"timestamp":2, "x":1.50}]"#),
            vec![r#""id":"abc-1","type":"T","sessionId":"s","timestamp":2,"x":1.5}"#.to_string()]
        );
        // A tab between tokens is compacted away; inside a string it is not JSON.
        assert_eq!(
            tails("{\"type\":\t\"T\",\"sessionId\":\"s\",\"id\":\"i\",\"timestamp\":2}"),
            vec![r#""type":"T","sessionId":"s","id":"i","timestamp":2}"#.to_string()]
        );
        assert!(run("{\"type\":\"T\",\"sessionId\":\"s\",\"x\":\"a\tb\"}").is_err());
    }

    #[test]
    fn ids_are_unique_and_hex() {
        let mut g = IdGenerator::new(255);
        let mut a = Vec::new();
        g.write_next(&mut a);
        a.push(b' ');
        g.write_next(&mut a);
        assert_eq!(a, br#""ff-1" "ff-2""#);
    }
}
