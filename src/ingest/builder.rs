//! The one way an event becomes a [`Pending`]: the SPEC §2 rules and the stored bytes.
//!
//! Every ingest front end — JSON bodies and `publish` messages ([`super::validate`]),
//! the OpenTelemetry mapper, an in-process publisher — hands an [`EventBuilder`] the
//! event's fields in the producer's order and gets back a validated [`Pending`], or the
//! [`IngestError`] that names the event's index and the field at fault. So the rules
//! (types, lengths, duplicates, the `swarmId` alias, a producer `seq` refused), the
//! server-assigned `id` / `timestamp`, the size limit and the stored layout
//! (`SEQ_HEADROOM` spare bytes, then the server's fields, then the producer's in their
//! order) exist once, whatever the events arrived as.
//!
//! Cost is the hot path's (issue #3): the builder lives on the stack, writes members
//! into a buffer the [`IngestContext`] keeps between events, takes `type` / `sessionId`
//! / `agentId` from the context's string cache, and allocates exactly one thing per
//! event, its `json_tail`, at its final size.

use super::{
    IngestContext, IngestError, MAX_ID_BYTES, MAX_SESSION_BYTES, MAX_TIMESTAMP_MS, MAX_TYPE_BYTES,
};
use crate::json::scan::Value;
use crate::json::write::{write_f64_stored, write_i64, write_str};
use crate::model::{Pending, SEQ_HEADROOM};
use std::sync::Arc;

/// A field's value as the §2 rules see it: its JSON type, and the value itself where a
/// rule reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum FieldValue<'v> {
    Null,
    Bool,
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'v str),
    Object,
    Array,
}

/// Anything a front end holds a field's value as (a tape node, a typed value). The
/// rules ask for the [`FieldValue`] only in the arm of the field they check, so a
/// front end's own representation is converted where it is read, not for every member.
pub(super) trait Field<'v>: Copy {
    fn value(self) -> FieldValue<'v>;
}

impl<'v> Field<'v> for FieldValue<'v> {
    #[inline(always)]
    fn value(self) -> FieldValue<'v> {
        self
    }
}

/// What becomes of a member once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keep {
    /// Left out of the stored event (a `null` id or timestamp, assigned instead).
    Drop,
    /// Kept under one of our own field names (plain ASCII, written without escaping).
    Named,
    /// Kept under the producer's key, escaped as needed.
    Other,
}

/// Bits for the fields whose duplicates would make the stored event ambiguous.
mod seen {
    pub const TYPE: u32 = 1 << 0;
    pub const SESSION: u32 = 1 << 1;
    pub const SWARM: u32 = 1 << 2;
    pub const ID: u32 = 1 << 3;
    pub const TIMESTAMP: u32 = 1 << 4;
    pub const AGENT: u32 = 1 << 5;
    /// Checked, but may repeat.
    pub const OTHER_KNOWN: u32 = 1 << 6;
}

const SESSION_RULE: &str = "must be a string of 1..256 bytes without control characters";

/// Buffers the builder reuses from one event to the next, kept in the [`IngestContext`].
#[derive(Debug, Clone, Default)]
pub(super) struct Scratch {
    /// The producer's members, each written as `,"key":value` (unless kept as sent).
    body: Vec<u8>,
    /// The server-assigned fields, each written as `,"key":value`.
    head: Vec<u8>,
    /// `,"timestamp":<now>`, formatted once per clock reading ...
    now_field: Vec<u8>,
    /// ... which is this one.
    now_for: Option<i64>,
}

/// Builds one validated event. Create it with [`EventBuilder::new`], set the fields in
/// the order the producer gave them (the stored event keeps that order), then
/// [`EventBuilder::finish`].
///
/// Each setter applies the same rule the JSON front end applies to that field and fails
/// with the same [`IngestError`]; a field set twice where §2 forbids it fails as a
/// duplicate. `id` and `timestamp` are assigned when not set. Strings are taken as Rust
/// strings and escaped here; `data`, `metadata`, `performance` and
/// [`EventBuilder::member`] take JSON bytes, which must be one value on one line
/// (write them with [`crate::json::write`]).
///
/// ```text
/// let mut b = EventBuilder::new(&mut ctx, index);
/// b.kind("TASK_START")?.session_id("s1")?.agent_id("planner")?;
/// b.data(br#"{"taskId":"t1"}"#)?;
/// let pending = b.finish()?;
/// ```
#[derive(Debug)]
pub struct EventBuilder<'c> {
    ctx: &'c mut IngestContext,
    index: usize,
    seen: u32,
    kind: Option<Arc<str>>,
    session: Option<Arc<str>>,
    swarm: Option<Arc<str>>,
    agent: Option<Arc<str>>,
    has_id: bool,
    timestamp: Option<i64>,
    dropped: bool,
}

impl<'c> EventBuilder<'c> {
    /// A builder for the event at `index` of its batch (errors report it).
    pub fn new(ctx: &'c mut IngestContext, index: usize) -> Self {
        ctx.scratch.body.clear();
        EventBuilder {
            ctx,
            index,
            seen: 0,
            kind: None,
            session: None,
            swarm: None,
            agent: None,
            has_id: false,
            timestamp: None,
            dropped: false,
        }
    }

    /// `type`: 1..64 bytes.
    pub fn kind(&mut self, v: &str) -> Result<&mut Self, IngestError> {
        self.set("type", FieldValue::Str(v), |out| write_str(out, v))
    }

    /// `sessionId`: 1..256 bytes, no control characters.
    pub fn session_id(&mut self, v: &str) -> Result<&mut Self, IngestError> {
        self.set("sessionId", FieldValue::Str(v), |out| write_str(out, v))
    }

    /// `swarmId`: kept as given; the session when `sessionId` is not set.
    pub fn swarm_id(&mut self, v: &str) -> Result<&mut Self, IngestError> {
        self.set("swarmId", FieldValue::Str(v), |out| write_str(out, v))
    }

    /// `id`: at most 256 bytes; assigned by the server when not set.
    pub fn id(&mut self, v: &str) -> Result<&mut Self, IngestError> {
        self.set("id", FieldValue::Str(v), |out| write_str(out, v))
    }

    /// `timestamp` in epoch ms, `0..=MAX_TIMESTAMP_MS`; the receive time when not set.
    pub fn timestamp(&mut self, ms: i64) -> Result<&mut Self, IngestError> {
        self.set("timestamp", FieldValue::Int(ms), |out| write_i64(out, ms))
    }

    pub fn agent_id(&mut self, v: &str) -> Result<&mut Self, IngestError> {
        self.set("agentId", FieldValue::Str(v), |out| write_str(out, v))
    }

    pub fn trace_id(&mut self, v: &str) -> Result<&mut Self, IngestError> {
        self.set("traceId", FieldValue::Str(v), |out| write_str(out, v))
    }

    pub fn span_id(&mut self, v: &str) -> Result<&mut Self, IngestError> {
        self.set("spanId", FieldValue::Str(v), |out| write_str(out, v))
    }

    pub fn parent_id(&mut self, v: &str) -> Result<&mut Self, IngestError> {
        self.set("parentId", FieldValue::Str(v), |out| write_str(out, v))
    }

    pub fn phase(&mut self, v: &str) -> Result<&mut Self, IngestError> {
        self.set("phase", FieldValue::Str(v), |out| write_str(out, v))
    }

    /// `duration`, written as a float (`12.0`), as the JSON path stores a float.
    pub fn duration(&mut self, v: f64) -> Result<&mut Self, IngestError> {
        self.set("duration", FieldValue::Float(v), |out| {
            write_f64_stored(out, v)
        })
    }

    /// `data`: the bytes of one JSON object.
    pub fn data(&mut self, object: &[u8]) -> Result<&mut Self, IngestError> {
        self.member("data", object)
    }

    /// `metadata`: the bytes of one JSON object.
    pub fn metadata(&mut self, object: &[u8]) -> Result<&mut Self, IngestError> {
        self.member("metadata", object)
    }

    /// `performance`: the bytes of one JSON object.
    pub fn performance(&mut self, object: &[u8]) -> Result<&mut Self, IngestError> {
        self.member("performance", object)
    }

    /// A member whose value is a JSON object that this process wrote itself with the
    /// `json` layer's writer (a front end mapping a foreign format, such as OTLP): its
    /// grammar and its one-line form hold by construction, so the parse and the
    /// control-byte scan of [`EventBuilder::member`] are skipped (debug builds still run
    /// them). The §2 rule for `key` still applies, and size limits are checked at finish
    /// as for every event. Never for bytes a client sent.
    pub fn written_object(&mut self, key: &str, object: &[u8]) -> Result<&mut Self, IngestError> {
        debug_assert!(
            matches!(Value::of(object), Some(Value::Object(_))) && !super::raw::has_control(object),
            "written_object got bytes that are not one JSON object on one line"
        );
        let keep = self.check(key, FieldValue::Object)?;
        self.push(keep, key, |out| out.extend_from_slice(object));
        Ok(self)
    }

    /// Any member, its value given as the bytes of one JSON value, kept verbatim (SPEC
    /// §2: "anything else"). A §2 field name gets that field's rule, so `seq` is
    /// refused here as from a producer.
    pub fn member(&mut self, key: &str, value: &[u8]) -> Result<&mut Self, IngestError> {
        let at = self.index;
        let Some(parsed) = Value::of(value) else {
            return Err(IngestError::event(
                at,
                format!("member \"{key}\" is not one JSON value"),
            ));
        };
        if super::raw::has_control(value) {
            return Err(IngestError::event(
                at,
                format!("member \"{key}\" must be JSON on one line"),
            ));
        }
        let text;
        let v = match parsed {
            Value::Missing | Value::Null => FieldValue::Null,
            Value::Bool(_) => FieldValue::Bool,
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => FieldValue::Int(i),
                (None, Some(u)) => FieldValue::UInt(u),
                (None, None) => FieldValue::Float(n.as_f64()),
            },
            Value::Str(s) => {
                text = s.to_cow().map_err(|_| {
                    IngestError::event(at, format!("member \"{key}\" is not one JSON value"))
                })?;
                FieldValue::Str(&text)
            }
            Value::Object(_) => FieldValue::Object,
            Value::Array(_) => FieldValue::Array,
        };
        let raw = value.trim_ascii();
        let keep = self.check(key, v)?;
        self.push(keep, key, |out| out.extend_from_slice(raw));
        Ok(self)
    }

    /// Checks a typed field, then writes it.
    fn set(
        &mut self,
        key: &'static str,
        v: FieldValue<'_>,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<&mut Self, IngestError> {
        let keep = self.check(key, v)?;
        self.push(keep, key, write);
        Ok(self)
    }

    /// Applies the §2 rule for `key` to `v` and records what the stored event needs
    /// from it; says whether and how the member is kept. Call once per member, in the
    /// producer's order, then [`EventBuilder::push`] it unless the members are kept as
    /// sent.
    #[inline]
    pub(super) fn check<'v>(&mut self, key: &str, v: impl Field<'v>) -> Result<Keep, IngestError> {
        let index = self.index;
        let wrong = |field: &'static str, what: &str| IngestError::field(index, field, what);
        let mut keep = Keep::Named;
        let bit = match key {
            "type" => {
                match v.value() {
                    FieldValue::Str(s) if !s.is_empty() && s.len() <= MAX_TYPE_BYTES => {
                        self.kind = Some(self.ctx.strings.get(s));
                    }
                    _ => return Err(wrong("type", "must be a string of 1..64 bytes")),
                }
                seen::TYPE
            }
            "sessionId" => {
                match v.value() {
                    FieldValue::Str(s) if session_ok(s) => {
                        self.session = Some(self.ctx.strings.get(s));
                    }
                    _ => return Err(wrong("sessionId", SESSION_RULE)),
                }
                seen::SESSION
            }
            "swarmId" => {
                // Only an alias when sessionId is absent; checked in `finish`.
                if let FieldValue::Str(s) = v.value() {
                    self.swarm = Some(self.ctx.strings.get(s));
                }
                seen::SWARM
            }
            "id" => {
                match v.value() {
                    FieldValue::Str(s) if s.len() <= MAX_ID_BYTES => self.has_id = true,
                    FieldValue::Null => keep = Keep::Drop,
                    _ => return Err(wrong("id", "must be a string of at most 256 bytes")),
                }
                seen::ID
            }
            "timestamp" => {
                if v.value() == FieldValue::Null {
                    keep = Keep::Drop;
                } else {
                    self.timestamp = Some(timestamp_ms(v.value()).ok_or_else(|| {
                        wrong(
                            "timestamp",
                            "must be a non-negative number of epoch milliseconds",
                        )
                    })?);
                }
                seen::TIMESTAMP
            }
            "seq" => {
                return Err(wrong(
                    "seq",
                    "is assigned by the server; producers must not send it",
                ))
            }
            "agentId" => {
                match v.value() {
                    FieldValue::Str(s) => self.agent = Some(self.ctx.strings.get(s)),
                    FieldValue::Null => {}
                    _ => return Err(wrong("agentId", "must be a string")),
                }
                seen::AGENT
            }
            f @ ("traceId" | "spanId" | "parentId" | "phase") => {
                if !matches!(v.value(), FieldValue::Str(_) | FieldValue::Null) {
                    return Err(wrong(static_name(f), "must be a string"));
                }
                seen::OTHER_KNOWN
            }
            "duration" => {
                if !matches!(
                    v.value(),
                    FieldValue::Int(_)
                        | FieldValue::UInt(_)
                        | FieldValue::Float(_)
                        | FieldValue::Null
                ) {
                    return Err(wrong("duration", "must be a number"));
                }
                seen::OTHER_KNOWN
            }
            f @ ("data" | "metadata" | "performance") => {
                if !matches!(v.value(), FieldValue::Object | FieldValue::Null) {
                    return Err(wrong(static_name(f), "must be an object"));
                }
                seen::OTHER_KNOWN
            }
            _ => return Ok(Keep::Other),
        };
        if bit != seen::OTHER_KNOWN {
            if self.seen & bit != 0 {
                return Err(wrong(static_name(key), "appears more than once"));
            }
            self.seen |= bit;
        }
        if keep == Keep::Drop {
            self.dropped = true;
        }
        Ok(keep)
    }

    /// Appends a checked member: `,"key":` then what `write` writes (its value).
    pub(super) fn push(&mut self, keep: Keep, key: &str, write: impl FnOnce(&mut Vec<u8>)) {
        let body = &mut self.ctx.scratch.body;
        match keep {
            Keep::Drop => return,
            Keep::Named => {
                body.extend_from_slice(b",\"");
                body.extend_from_slice(key.as_bytes());
                body.extend_from_slice(b"\":");
            }
            Keep::Other => {
                body.push(b',');
                write_str(body, key);
                body.push(b':');
            }
        }
        write(body);
    }

    /// The validated event, its members as set.
    pub fn finish(self) -> Result<Pending, IngestError> {
        let index = self.index;
        self.build(None)?
            .ok_or_else(|| IngestError::event(index, "cannot be stored"))
    }

    /// The validated event with `members` — the producer's members exactly as sent,
    /// between the braces — as its stored members. The fields must still have been
    /// [`EventBuilder::check`]ed (not pushed). `Ok(None)` when the event drops a member
    /// (a `null` id or timestamp), so the bytes cannot be kept as sent: build it again
    /// from pushed members.
    pub(super) fn finish_as_sent(self, members: &[u8]) -> Result<Option<Pending>, IngestError> {
        self.build(Some(members))
    }

    fn build(self, as_sent: Option<&[u8]>) -> Result<Option<Pending>, IngestError> {
        let EventBuilder {
            ctx,
            index,
            seen,
            kind,
            session,
            swarm,
            agent,
            has_id,
            timestamp,
            dropped,
        } = self;
        let Some(kind) = kind else {
            return Err(IngestError::field(index, "type", "is required"));
        };
        let (session, alias) = match (session, seen & seen::SWARM != 0) {
            (Some(s), _) => (s, false),
            (None, true) => match swarm {
                Some(s) if session_ok(&s) => (s, true),
                _ => return Err(IngestError::field(index, "swarmId", SESSION_RULE)),
            },
            (None, false) => return Err(IngestError::field(index, "sessionId", "is required")),
        };
        let IngestContext {
            max_event_bytes,
            now_ms,
            ids,
            scratch,
            ..
        } = ctx;
        // The producer's members, as sent or as pushed (less the leading comma; never
        // empty: `type` is one of them).
        let members = match as_sent {
            Some(_) if dropped => return Ok(None),
            Some(m) => m,
            None => scratch.body.get(1..).unwrap_or_default(),
        };

        // Server-assigned fields first, then the producer's fields in their order.
        let head = &mut scratch.head;
        head.clear();
        if !has_id {
            head.extend_from_slice(b",\"id\":");
            ids.write_next(head);
        }
        let ts = match timestamp {
            Some(ts) => ts,
            None => {
                if scratch.now_for != Some(*now_ms) {
                    scratch.now_field.clear();
                    scratch.now_field.extend_from_slice(b",\"timestamp\":");
                    write_i64(&mut scratch.now_field, *now_ms);
                    scratch.now_for = Some(*now_ms);
                }
                head.extend_from_slice(&scratch.now_field);
                *now_ms
            }
        };
        if alias {
            head.extend_from_slice(b",\"sessionId\":");
            write_str(head, &session);
        }
        // The stored object: `{`, head without its leading comma, a comma when there is
        // a head, the members, `}`.
        let size = head.len() + members.len() + 2;
        if size > *max_event_bytes {
            return Err(IngestError::too_large(
                index,
                format!("is {size} bytes, over the limit of {max_event_bytes} (max_event_bytes)"),
            ));
        }
        // Exact capacity, headroom included: the store writes `{"seq":N,` into the
        // headroom and hands the same allocation to subscribers.
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
            session,
            agent,
            kind,
            json_tail,
            headroom: SEQ_HEADROOM,
        }))
    }
}

fn session_ok(s: &str) -> bool {
    // Printable ASCII is the common case and needs no UTF-8 decoding.
    !s.is_empty()
        && s.len() <= MAX_SESSION_BYTES
        && (s.bytes().all(|b| (0x20..0x7f).contains(&b)) || !s.chars().any(char::is_control))
}

/// Epoch ms from a JSON number: non-negative, finite, at most [`MAX_TIMESTAMP_MS`];
/// fractions are truncated for the index (the JSON keeps the producer's number).
fn timestamp_ms(v: FieldValue<'_>) -> Option<i64> {
    let ms = match v {
        FieldValue::Int(n) => n,
        FieldValue::UInt(n) => i64::try_from(n).ok()?,
        FieldValue::Float(n) if n.is_finite() && n >= 0.0 && n <= MAX_TIMESTAMP_MS as f64 => {
            n as i64
        }
        _ => return None,
    };
    (0..=MAX_TIMESTAMP_MS).contains(&ms).then_some(ms)
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
    use crate::ingest::{parse_body, validate};
    use crate::json::JsonBuffers;

    fn ctx() -> IngestContext {
        IngestContext::new(65536, 1_700_000_000_000, 0xabc)
    }

    /// The one event of `body` through the JSON front end.
    fn from_json(body: &str, ctx: &mut IngestContext) -> Result<Pending, IngestError> {
        let mut buf = body.as_bytes().to_vec();
        let mut bufs = JsonBuffers::default();
        let events = parse_body(&mut buf, &mut bufs)?;
        let mut p = validate(&events, ctx)?;
        assert_eq!(p.len(), 1, "{body}");
        Ok(p.remove(0))
    }

    type Build = fn(&mut EventBuilder<'_>) -> Result<(), IngestError>;

    /// What a front end other than JSON does: set fields, finish.
    fn from_builder(build: Build, ctx: &mut IngestContext) -> Result<Pending, IngestError> {
        let mut b = EventBuilder::new(ctx, 0);
        build(&mut b)?;
        b.finish()
    }

    fn same(a: &Pending, b: &Pending) -> bool {
        a.json_tail == b.json_tail
            && a.headroom == b.headroom
            && a.timestamp == b.timestamp
            && a.session == b.session
            && a.agent == b.agent
            && a.kind == b.kind
    }

    fn tail(p: &Pending) -> &str {
        std::str::from_utf8(&p.json_tail[p.headroom..]).unwrap_or("<not UTF-8>")
    }

    /// Events built field by field (as the OTLP mapper will) store exactly what the JSON
    /// path stores for the same event written as JSON.
    #[test]
    fn built_events_equal_their_json_twins() {
        let cases: &[(&str, Build)] = &[
            (
                r#"{"type":"TASK_START","sessionId":"s1","agentId":"planner","traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","parentId":"00f067aa0ba902b7","phase":"run","duration":12.5,"data":{"taskId":"t1","attrs":{"gen_ai.system":"openai"}},"metadata":{"k":[1,2]},"performance":{"cpu":0.5},"custom":true}"#,
                |b| {
                    b.kind("TASK_START")?
                        .session_id("s1")?
                        .agent_id("planner")?
                        .trace_id("0af7651916cd43dd8448eb211c80319c")?
                        .span_id("b7ad6b7169203331")?
                        .parent_id("00f067aa0ba902b7")?
                        .phase("run")?
                        .duration(12.5)?
                        .data(br#"{"taskId":"t1","attrs":{"gen_ai.system":"openai"}}"#)?
                        .metadata(br#"{"k":[1,2]}"#)?
                        .performance(br#"{"cpu":0.5}"#)?
                        .member("custom", b"true")?;
                    Ok(())
                },
            ),
            (
                r#"{"id":"e1","timestamp":1234,"type":"T","sessionId":"s"}"#,
                |b| {
                    b.id("e1")?.timestamp(1234)?.kind("T")?.session_id("s")?;
                    Ok(())
                },
            ),
            // The alias: the server writes `sessionId` in front.
            (r#"{"type":"T","swarmId":"w"}"#, |b| {
                b.kind("T")?.swarm_id("w")?;
                Ok(())
            }),
            // Escaping and non-ASCII, in values and in an extra member's key.
            (
                r#"{"type":"T","sessionId":"s\"q\\é","agentId":"a\n","x\"y":"z","duration":12.0}"#,
                |b| {
                    b.kind("T")?
                        .session_id("s\"q\\é")?
                        .agent_id("a\n")?
                        .member("x\"y", br#""z""#)?
                        .duration(12.0)?;
                    Ok(())
                },
            ),
            // A null id is dropped and one is assigned, as from a producer.
            (
                r#"{"type":"T","sessionId":"s","id":null,"n":[1,{"a":null}]}"#,
                |b| {
                    b.kind("T")?
                        .session_id("s")?
                        .member("id", b"null")?
                        .member("n", br#"[1,{"a":null}]"#)?;
                    Ok(())
                },
            ),
        ];
        for (json, build) in cases {
            let want = from_json(json, &mut ctx()).unwrap_or_else(|e| panic!("{json}: {e}"));
            let got = from_builder(*build, &mut ctx()).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert!(
                same(&got, &want),
                "{json}\n got {}\nwant {}",
                tail(&got),
                tail(&want)
            );
        }
    }

    /// A rule broken through the builder fails as the same rule broken in JSON.
    #[test]
    fn built_events_fail_as_their_json_twins() {
        let long = "s".repeat(257);
        let cases: &[(String, Build)] = &[
            (r#"{"sessionId":"s"}"#.into(), |b| {
                b.session_id("s")?;
                Ok(())
            }),
            (r#"{"type":"","sessionId":"s"}"#.into(), |b| {
                b.kind("")?;
                Ok(())
            }),
            (r#"{"type":"T"}"#.into(), |b| {
                b.kind("T")?;
                Ok(())
            }),
            (format!(r#"{{"type":"T","sessionId":"{long}"}}"#), |b| {
                b.kind("T")?.session_id(&"s".repeat(257))?;
                Ok(())
            }),
            (r#"{"type":"T","sessionId":"a\u0001b"}"#.into(), |b| {
                b.kind("T")?.session_id("a\u{1}b")?;
                Ok(())
            }),
            (r#"{"type":"T","swarmId":""}"#.into(), |b| {
                b.kind("T")?.swarm_id("")?;
                Ok(())
            }),
            (r#"{"type":"T","sessionId":"s","seq":3}"#.into(), |b| {
                b.kind("T")?.session_id("s")?.member("seq", b"3")?;
                Ok(())
            }),
            (r#"{"type":"T","type":"U","sessionId":"s"}"#.into(), |b| {
                b.kind("T")?.kind("U")?;
                Ok(())
            }),
            (
                r#"{"type":"T","sessionId":"s","agentId":"a","agentId":"b"}"#.into(),
                |b| {
                    b.kind("T")?.session_id("s")?.agent_id("a")?.agent_id("b")?;
                    Ok(())
                },
            ),
            (
                r#"{"type":"T","sessionId":"s","timestamp":-1}"#.into(),
                |b| {
                    b.kind("T")?.session_id("s")?.timestamp(-1)?;
                    Ok(())
                },
            ),
            (r#"{"type":"T","sessionId":"s","agentId":1}"#.into(), |b| {
                b.kind("T")?.session_id("s")?.member("agentId", b"1")?;
                Ok(())
            }),
            (r#"{"type":"T","sessionId":"s","data":[1]}"#.into(), |b| {
                b.kind("T")?.session_id("s")?.data(b"[1]")?;
                Ok(())
            }),
            (
                r#"{"type":"T","sessionId":"s","duration":"1s"}"#.into(),
                |b| {
                    b.kind("T")?
                        .session_id("s")?
                        .member("duration", br#""1s""#)?;
                    Ok(())
                },
            ),
            (r#"{"type":"T","sessionId":"s","phase":{}}"#.into(), |b| {
                b.kind("T")?.session_id("s")?.member("phase", b"{}")?;
                Ok(())
            }),
        ];
        for (json, build) in cases {
            let want = from_json(json, &mut ctx()).expect_err(json);
            let got = from_builder(*build, &mut ctx()).expect_err(json);
            assert_eq!(got, want, "{json}");
        }
        // The size limit, measured on the same stored bytes.
        let mut small = ctx();
        small.max_event_bytes = 40;
        let json = r#"{"type":"T","sessionId":"s"}"#;
        let want = from_json(json, &mut small).unwrap_err();
        let got = from_builder(
            |b| {
                b.kind("T")?.session_id("s")?;
                Ok(())
            },
            &mut small,
        )
        .unwrap_err();
        assert_eq!(got, want);
        assert!(got.message.contains("max_event_bytes"), "{got}");
    }

    #[test]
    fn members_must_be_one_value_on_one_line() {
        let cases: &[(&str, &[u8])] = &[
            ("x", b""),
            ("x", b"{"),
            ("x", b"1 2"),
            ("x", b"\"\\ud800\""),
            ("data", b"{\"a\":\n1}"),
            ("x", b"[1,\t2]"),
        ];
        for &(key, raw) in cases {
            let mut c = ctx();
            let mut b = EventBuilder::new(&mut c, 4);
            b.kind("T").unwrap();
            let e = b.member(key, raw).expect_err(key);
            assert_eq!((e.index, e.field), (4, None), "{e}");
            assert!(e.message.contains(key), "{e}");
        }
        // Surrounding whitespace is not part of the value.
        let mut c = ctx();
        let mut b = EventBuilder::new(&mut c, 0);
        b.kind("T").unwrap().session_id("s").unwrap();
        b.member("x", b"  [1, 2] ").unwrap();
        let p = b.finish().unwrap();
        assert!(tail(&p).ends_with(r#""x":[1, 2]}"#), "{}", tail(&p));
    }

    #[test]
    fn a_batch_of_built_events_shares_strings_and_numbers_ids() {
        let mut c = ctx();
        let mut out = Vec::new();
        for i in 0..3 {
            let mut b = EventBuilder::new(&mut c, i);
            b.kind("T").unwrap().session_id("s").unwrap();
            out.push(b.finish().unwrap());
        }
        assert!(Arc::ptr_eq(&out[0].session, &out[2].session));
        assert!(Arc::ptr_eq(&out[0].kind, &out[1].kind));
        assert!(tail(&out[2]).starts_with(r#""id":"abc-3","timestamp":1700000000000,"#));
        // The clock moves: the next event gets the new receive time.
        c.now_ms = 5;
        let mut b = EventBuilder::new(&mut c, 0);
        b.kind("T").unwrap().session_id("s").unwrap();
        let p = b.finish().unwrap();
        assert_eq!(p.timestamp, 5);
        assert!(tail(&p).starts_with(r#""id":"abc-4","timestamp":5,"#));
        assert_eq!(p.json_tail.len(), p.json_tail.capacity());
    }
}
