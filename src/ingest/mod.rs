//! Ingest (SPEC §2, §3): turning a publish body into validated, sequencing-ready events.
//!
//! Two steps, both pure. [`parse_body`] parses an HTTP body (one object, an array of
//! objects, or NDJSON) in place with simd-json; a WebSocket `publish` already arrives as
//! values from [`crate::protocol::client`]. [`validate`] then checks every event against
//! the §2 rules and serializes it once into a [`Pending`] whose `json_tail` the store
//! prefixes with `{"seq":N,` — so the delivered bytes are produced here, exactly once.
//! A batch is all-or-nothing: the first bad event fails it, and the error names the
//! event's index and field so the producer can fix it.

use crate::store::Pending;
use simd_json::prelude::Writable;
use simd_json::{BorrowedValue, StaticNode};
use std::fmt;
use std::sync::Arc;

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

/// What [`validate`] needs from the server: limits, the clock, the id source.
#[derive(Debug, Clone)]
pub struct IngestContext {
    /// Largest accepted event, measured as its stored object without `"seq":N,`.
    pub max_event_bytes: usize,
    /// The receive time given to events without a `timestamp` (epoch ms).
    pub now_ms: i64,
    pub ids: IdGenerator,
}

impl IngestContext {
    pub fn new(max_event_bytes: usize, now_ms: i64, id_seed: u64) -> Self {
        IngestContext {
            max_event_bytes,
            now_ms,
            ids: IdGenerator::new(id_seed),
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
    buffers: &mut simd_json::Buffers,
) -> Result<Vec<BorrowedValue<'a>>, IngestError> {
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(first) = first else {
        return Err(IngestError::event(0, "no events: the body is empty"));
    };
    if body.get(first) == Some(&b'{') && is_ndjson(body) {
        let mut values = Vec::new();
        for line in body.split_mut(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let index = values.len();
            let v = simd_json::to_borrowed_value_with_buffers(line, buffers).map_err(|e| {
                IngestError::event(index, format!("malformed JSON on its NDJSON line: {e}"))
            })?;
            values.push(v);
        }
        return Ok(values);
    }
    let v = simd_json::to_borrowed_value_with_buffers(body, buffers)
        .map_err(|e| IngestError::event(0, format!("malformed JSON body: {e}")))?;
    let values = match v {
        BorrowedValue::Array(items) => *items,
        other => vec![other],
    };
    if values.is_empty() {
        return Err(IngestError::event(0, "no events: the array is empty"));
    }
    Ok(values)
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

/// Reuses the previous event's `Arc<str>` when the string repeats, as it nearly always
/// does within a batch (same session, few types and agents).
#[derive(Default)]
struct Recent {
    last: Option<Arc<str>>,
}

impl Recent {
    fn get(&mut self, s: &str) -> Arc<str> {
        match &self.last {
            Some(a) if **a == *s => a.clone(),
            _ => {
                let a: Arc<str> = Arc::from(s);
                self.last = Some(a.clone());
                a
            }
        }
    }
}

fn is_null(v: &BorrowedValue<'_>) -> bool {
    matches!(v, BorrowedValue::Static(StaticNode::Null))
}

fn session_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SESSION_BYTES && !s.chars().any(char::is_control)
}

/// Epoch ms from a JSON number: non-negative, finite, at most [`MAX_TIMESTAMP_MS`];
/// fractions are truncated for the index (the JSON keeps the producer's number).
fn timestamp_ms(v: &BorrowedValue<'_>) -> Option<i64> {
    let ms = match v {
        BorrowedValue::Static(StaticNode::I64(n)) => *n,
        BorrowedValue::Static(StaticNode::U64(n)) => i64::try_from(*n).ok()?,
        BorrowedValue::Static(StaticNode::F64(n))
            if n.is_finite() && *n >= 0.0 && *n <= MAX_TIMESTAMP_MS as f64 =>
        {
            *n as i64
        }
        _ => return None,
    };
    (0..=MAX_TIMESTAMP_MS).contains(&ms).then_some(ms)
}

/// Validates a batch and serializes each event's `json_tail`. All or nothing.
pub fn validate(
    values: &[BorrowedValue<'_>],
    ctx: &mut IngestContext,
) -> Result<Vec<Pending>, IngestError> {
    if values.is_empty() {
        return Err(IngestError::event(0, "no events"));
    }
    let mut out = Vec::with_capacity(values.len());
    let mut scratch: Vec<u8> = Vec::with_capacity(512);
    let (mut sessions, mut agents, mut kinds) =
        (Recent::default(), Recent::default(), Recent::default());
    for (index, value) in values.iter().enumerate() {
        let BorrowedValue::Object(obj) = value else {
            return Err(IngestError::event(index, "must be a JSON object"));
        };
        let mut seen = 0u32;
        let mut kind: Option<&str> = None;
        let mut session: Option<&str> = None;
        let mut swarm: Option<&str> = None;
        let mut agent: Option<&str> = None;
        let mut has_id = false;
        let mut timestamp: Option<i64> = None;
        for (k, v) in obj.iter() {
            let bit = match k.as_ref() {
                "type" => {
                    match v {
                        BorrowedValue::String(s) if !s.is_empty() && s.len() <= MAX_TYPE_BYTES => {
                            kind = Some(s)
                        }
                        BorrowedValue::String(_) => {
                            return Err(IngestError::field(
                                index,
                                "type",
                                "must be a string of 1..64 bytes",
                            ))
                        }
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
                        BorrowedValue::String(s) if session_ok(s) => session = Some(s),
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
                    if let BorrowedValue::String(s) = v {
                        swarm = Some(s);
                    }
                    seen::SWARM
                }
                "id" => {
                    match v {
                        BorrowedValue::String(s) if s.len() <= MAX_ID_BYTES => has_id = true,
                        v if is_null(v) => {}
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
                    if !is_null(v) {
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
                        BorrowedValue::String(s) => agent = Some(s),
                        v if is_null(v) => {}
                        _ => return Err(IngestError::field(index, "agentId", "must be a string")),
                    }
                    seen::AGENT
                }
                f @ ("traceId" | "spanId" | "parentId" | "phase") => {
                    if !matches!(v, BorrowedValue::String(_)) && !is_null(v) {
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
                        BorrowedValue::Static(
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
                    if !matches!(v, BorrowedValue::Object(_)) && !is_null(v) {
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

        scratch.clear();
        // Server-assigned fields first, then the producer's fields in their order.
        let mut first = true;
        if !has_id {
            scratch.extend_from_slice(b"\"id\":");
            ctx.ids.write_next(&mut scratch);
            first = false;
        }
        let ts = match timestamp {
            Some(ts) => ts,
            None => {
                if !first {
                    scratch.push(b',');
                }
                scratch.extend_from_slice(b"\"timestamp\":");
                crate::protocol::json::write_i64(&mut scratch, ctx.now_ms);
                first = false;
                ctx.now_ms
            }
        };
        if let Some(s) = assigned_session {
            if !first {
                scratch.push(b',');
            }
            scratch.extend_from_slice(b"\"sessionId\":");
            crate::protocol::json::write_json_str(&mut scratch, s);
            first = false;
        }
        for (k, v) in obj.iter() {
            // A null id/timestamp was replaced by the assigned one above.
            if is_null(v) && matches!(k.as_ref(), "id" | "timestamp") {
                continue;
            }
            if !first {
                scratch.push(b',');
            }
            first = false;
            crate::protocol::json::write_json_str(&mut scratch, k);
            scratch.push(b':');
            write_value(&mut scratch, v);
        }
        scratch.push(b'}');
        // +1 for the opening brace the store adds.
        let size = scratch.len() + 1;
        if size > ctx.max_event_bytes {
            return Err(IngestError::event(
                index,
                format!(
                    "is {size} bytes, over the limit of {} (max_event_bytes)",
                    ctx.max_event_bytes
                ),
            ));
        }
        out.push(Pending {
            timestamp: ts,
            session: sessions.get(session),
            agent: agent.map(|a| agents.get(a)),
            kind: kinds.get(kind),
            json_tail: scratch.as_slice().to_vec(),
        });
    }
    Ok(out)
}

fn write_value(out: &mut Vec<u8>, v: &BorrowedValue<'_>) {
    match v {
        BorrowedValue::String(s) => crate::protocol::json::write_json_str(out, s),
        // Writing into a Vec cannot fail.
        other => {
            let _ = other.write(out);
        }
    }
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
        let mut buffers = simd_json::Buffers::default();
        let values = parse_body(&mut buf, &mut buffers)?;
        validate(&values, &mut ctx())
    }

    fn stored(p: &Pending, seq: u64) -> Value {
        let mut full = format!("{{\"seq\":{seq},").into_bytes();
        full.extend_from_slice(&p.json_tail);
        serde_json::from_slice(&full)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&full)))
    }

    #[test]
    fn good_events() {
        let p = run(r#"{"type":"TASK_START","sessionId":"s1","agentId":"a","data":{"x":[1,2,"\n"]},"custom":true}"#).unwrap();
        assert_eq!(p.len(), 1);
        let tail = std::str::from_utf8(&p[0].json_tail).unwrap();
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
        let tail = std::str::from_utf8(&p[1].json_tail).unwrap();
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
        let mut buffers = simd_json::Buffers::default();
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
    fn ids_are_unique_and_hex() {
        let mut g = IdGenerator::new(255);
        let mut a = Vec::new();
        g.write_next(&mut a);
        a.push(b' ');
        g.write_next(&mut a);
        assert_eq!(a, br#""ff-1" "ff-2""#);
    }
}
