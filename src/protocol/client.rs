//! Inbound client messages (SPEC §4): one JSON text frame in, one typed message out.
//!
//! The frame is parsed in place in the connection's read buffer with simd-json, reusing
//! the loop's [`JsonBuffers`] (tape included), so strings borrow from the buffer and a
//! message allocates nothing once the buffers have grown. Fields are top level. Every failure is a [`ProtocolError`] that names
//! the field or type at fault and carries the `requestId` when it could be read, so the
//! loop can answer with an `error` and keep the connection open. Nothing here panics on
//! client input.

use super::{ErrorCode, ProtocolError, RequestId};
use crate::json::tape::{span, Events, JsonBuffers};
use simd_json::prelude::{ValueAsMutObject, ValueBuilder};
use simd_json::{BorrowedValue, Node, StaticNode};
use std::borrow::Cow;

/// Longest `sessionId` accepted anywhere (SPEC §2).
const MAX_SESSION_ID: usize = 256;

/// One parsed client message and its `requestId`.
#[derive(Debug)]
pub struct Parsed<'a> {
    pub request_id: Option<RequestId>,
    pub msg: ClientMessage<'a>,
}

/// The client → server messages. Strings borrow from the frame buffer.
#[derive(Debug)]
pub enum ClientMessage<'a> {
    /// `auth {token}`.
    Auth {
        token: Cow<'a, str>,
    },
    /// `subscribe_session {sessionId, sinceSeq?, filter?}`.
    SubscribeSession {
        session_id: Cow<'a, str>,
        since_seq: Option<u64>,
        /// A SPEC §7 condition; `None` (or empty) keeps every event.
        filter: Option<Cow<'a, str>>,
    },
    /// `unsubscribe_session {sessionId}`.
    UnsubscribeSession {
        session_id: Cow<'a, str>,
    },
    /// `filter_agents {agentIds}`; empty clears the filter.
    FilterAgents {
        agent_ids: Vec<Cow<'a, str>>,
    },
    /// `filter_events {condition, sessionId?}`; an empty condition clears the filter.
    FilterEvents {
        condition: Cow<'a, str>,
        session_id: Option<Cow<'a, str>>,
    },
    /// `request_history {timeRange:{start,end}, sessionId?, limit?, offset?, filter?}`.
    /// `offset` skips that many matching events (paging past one answer's `limit`).
    RequestHistory {
        start: i64,
        end: i64,
        session_id: Option<Cow<'a, str>>,
        limit: Option<usize>,
        offset: usize,
        filter: Option<Cow<'a, str>>,
    },
    /// `time_travel {timestamp, sessionId?}`.
    TimeTravel {
        timestamp: i64,
        session_id: Option<Cow<'a, str>>,
    },
    /// `set_breakpoint {traceId, condition?, sessionId?}`; a missing condition means
    /// `true`.
    SetBreakpoint {
        trace_id: Cow<'a, str>,
        condition: Option<Cow<'a, str>>,
        session_id: Option<Cow<'a, str>>,
    },
    /// `remove_breakpoint {traceId}`.
    RemoveBreakpoint {
        trace_id: Cow<'a, str>,
    },
    ListBreakpoints,
    /// `resume {sessionId?}`.
    Resume {
        session_id: Option<Cow<'a, str>>,
    },
    /// `step {sessionId?}`.
    Step {
        session_id: Option<Cow<'a, str>>,
    },
    Heartbeat,
    /// `publish {event}` or `publish {events:[…]}`; the values go to ingest's
    /// validation unchanged, still as simd-json tape.
    Publish {
        events: Events<'a>,
    },
}

impl ClientMessage<'_> {
    /// The wire `type` of the message.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMessage::Auth { .. } => "auth",
            ClientMessage::SubscribeSession { .. } => "subscribe_session",
            ClientMessage::UnsubscribeSession { .. } => "unsubscribe_session",
            ClientMessage::FilterAgents { .. } => "filter_agents",
            ClientMessage::RequestHistory { .. } => "request_history",
            ClientMessage::TimeTravel { .. } => "time_travel",
            ClientMessage::SetBreakpoint { .. } => "set_breakpoint",
            ClientMessage::RemoveBreakpoint { .. } => "remove_breakpoint",
            ClientMessage::FilterEvents { .. } => "filter_events",
            ClientMessage::ListBreakpoints => "list_breakpoints",
            ClientMessage::Resume { .. } => "resume",
            ClientMessage::Step { .. } => "step",
            ClientMessage::Heartbeat => "heartbeat",
            ClientMessage::Publish { .. } => "publish",
        }
    }
}

/// The top-level fields a non-publish message may carry.
struct Fields<'a> {
    ty: Option<BorrowedValue<'a>>,
    token: Option<BorrowedValue<'a>>,
    session_id: Option<BorrowedValue<'a>>,
    since_seq: Option<BorrowedValue<'a>>,
    agent_ids: Option<BorrowedValue<'a>>,
    time_range: Option<BorrowedValue<'a>>,
    limit: Option<BorrowedValue<'a>>,
    offset: Option<BorrowedValue<'a>>,
    timestamp: Option<BorrowedValue<'a>>,
    trace_id: Option<BorrowedValue<'a>>,
    condition: Option<BorrowedValue<'a>>,
    filter: Option<BorrowedValue<'a>>,
}

/// Parses one client text frame in place. `buf` is clobbered (simd-json unescapes
/// strings into it); the returned message borrows from it.
///
/// The frame is parsed to simd-json's flat tape, not a value tree: a `publish` hands its
/// events to ingest as that tape ([`Events`]), with no per-object maps
/// to build and drop; the other (small) messages convert the fields they read.
pub fn parse_client_message<'a>(
    buf: &'a mut [u8],
    bufs: &mut JsonBuffers,
) -> Result<Parsed<'a>, ProtocolError> {
    let nodes = bufs.parse(buf).map_err(|e| {
        ProtocolError::new(ErrorCode::InvalidMessage, format!("malformed JSON: {e}"))
    })?;
    let Some(&Node::Object { len, .. }) = nodes.first() else {
        return Err(ProtocolError::new(
            ErrorCode::InvalidMessage,
            "message must be a JSON object",
        ));
    };
    // Where each top-level field's value starts; last occurrence wins, as in
    // JavaScript's JSON.parse.
    let mut at: [Option<usize>; FIELDS.len()] = [None; FIELDS.len()];
    let mut i = 1;
    for _ in 0..len {
        let key = match nodes.get(i) {
            Some(Node::String(k)) => *k,
            _ => break,
        };
        let value = i + 1;
        i = value + span(nodes.get(value));
        if let Some(slot) = FIELDS
            .iter()
            .position(|f| *f == key)
            .and_then(|n| at.get_mut(n))
        {
            *slot = Some(value);
        }
    }
    let field = |name: &str| {
        FIELDS
            .iter()
            .position(|f| *f == name)
            .and_then(|n| at.get(n).copied().flatten())
    };
    let request_id = match field("requestId").map(|v| to_value(&nodes, v)) {
        None | Some(BorrowedValue::Static(StaticNode::Null)) => None,
        Some(v) => Some(request_id(v)?),
    };
    let with_id = |mut e: ProtocolError| {
        e.request_id = request_id.clone();
        e
    };
    let is_publish = matches!(
        field("type").and_then(|t| nodes.get(t)),
        Some(Node::String("publish"))
    );
    if is_publish {
        let events =
            publish_events(bufs, nodes, field("event"), field("events")).map_err(with_id)?;
        return Ok(Parsed {
            request_id,
            msg: ClientMessage::Publish { events },
        });
    }
    let get = |name: &str| field(name).map(|v| to_value(&nodes, v));
    let f = Fields {
        ty: get("type"),
        token: get("token"),
        session_id: get("sessionId"),
        since_seq: get("sinceSeq"),
        agent_ids: get("agentIds"),
        time_range: get("timeRange"),
        limit: get("limit"),
        offset: get("offset"),
        timestamp: get("timestamp"),
        trace_id: get("traceId"),
        condition: get("condition"),
        filter: get("filter"),
    };
    bufs.recycle_nodes(nodes);
    let msg = message(f).map_err(with_id)?;
    Ok(Parsed { request_id, msg })
}

/// The top-level fields any message may carry.
const FIELDS: [&str; 15] = [
    "type",
    "requestId",
    "token",
    "sessionId",
    "sinceSeq",
    "agentIds",
    "timeRange",
    "limit",
    "offset",
    "timestamp",
    "traceId",
    "condition",
    "event",
    "events",
    "filter",
];

/// The value at `nodes[at]` as a [`BorrowedValue`] (for the small, non-publish
/// messages). Recursion depth is bounded by simd-json's nesting limit, as it is when
/// simd-json builds values itself.
fn to_value<'a>(nodes: &[Node<'a>], at: usize) -> BorrowedValue<'a> {
    match nodes.get(at) {
        Some(Node::String(s)) => BorrowedValue::String(Cow::Borrowed(s)),
        Some(Node::Static(n)) => BorrowedValue::Static(*n),
        Some(&Node::Array { len, .. }) => {
            let mut items = Vec::with_capacity(len);
            let mut i = at + 1;
            for _ in 0..len {
                items.push(to_value(nodes, i));
                i += span(nodes.get(i));
            }
            BorrowedValue::Array(Box::new(items))
        }
        Some(&Node::Object { len, .. }) => {
            let mut obj = BorrowedValue::object_with_capacity(len);
            let mut i = at + 1;
            for _ in 0..len {
                let Some(Node::String(k)) = nodes.get(i) else {
                    break;
                };
                if let Some(o) = obj.as_object_mut() {
                    o.insert(Cow::Borrowed(*k), to_value(nodes, i + 1));
                }
                i += 1 + span(nodes.get(i + 1));
            }
            obj
        }
        None => BorrowedValue::Static(StaticNode::Null),
    }
}

/// The top-level `requestId` of a message, found with the raw scanner without parsing
/// the rest: what a reply to a message that is not parsed (a rate-limited one) echoes.
/// `None` when absent or not a string or number (or the bytes are not an object).
pub fn probe_request_id(raw: &[u8]) -> Option<RequestId> {
    use crate::json::scan::{probe, Value};
    match probe(raw, &["requestId"])? {
        Value::Str(s) => Some(RequestId::Str(s.to_cow().ok()?.as_ref().into())),
        Value::Number(n) => Some(if let Some(i) = n.as_i64() {
            RequestId::Int(i)
        } else if let Some(u) = n.as_u64() {
            RequestId::UInt(u)
        } else {
            RequestId::Float(n.as_f64())
        }),
        _ => None,
    }
}

fn request_id(v: BorrowedValue<'_>) -> Result<RequestId, ProtocolError> {
    match v {
        BorrowedValue::String(s) => Ok(RequestId::Str(s.as_ref().into())),
        BorrowedValue::Static(StaticNode::I64(n)) => Ok(RequestId::Int(n)),
        BorrowedValue::Static(StaticNode::U64(n)) => {
            // simd-json reads non-negative integers as u64; keep one spelling per value.
            Ok(i64::try_from(n).map_or(RequestId::UInt(n), RequestId::Int))
        }
        BorrowedValue::Static(StaticNode::F64(n)) => Ok(RequestId::Float(n)),
        _ => Err(invalid("requestId", "must be a string or a number")),
    }
}

fn message<'a>(mut f: Fields<'a>) -> Result<ClientMessage<'a>, ProtocolError> {
    let ty = match f.ty.take() {
        Some(BorrowedValue::String(s)) => s,
        Some(_) => return Err(invalid("type", "must be a string")),
        None => return Err(invalid("type", "is required")),
    };
    Ok(match ty.as_ref() {
        "auth" => ClientMessage::Auth {
            token: req_str(f.token, "token")?,
        },
        "subscribe_session" => ClientMessage::SubscribeSession {
            session_id: session_id(f.session_id)?,
            since_seq: opt_u64(f.since_seq, "sinceSeq")?,
            filter: opt_str(f.filter, "filter")?,
        },
        "unsubscribe_session" => ClientMessage::UnsubscribeSession {
            session_id: session_id(f.session_id)?,
        },
        "filter_agents" => ClientMessage::FilterAgents {
            agent_ids: agent_ids(f.agent_ids)?,
        },
        "request_history" => {
            let (start, end) = time_range(f.time_range)?;
            ClientMessage::RequestHistory {
                start,
                end,
                session_id: opt_session_id(f.session_id)?,
                limit: opt_usize(f.limit, "limit")?,
                offset: opt_usize(f.offset, "offset")?.unwrap_or(0),
                filter: opt_str(f.filter, "filter")?,
            }
        }
        "time_travel" => ClientMessage::TimeTravel {
            timestamp: req_time(f.timestamp, "timestamp")?,
            session_id: opt_session_id(f.session_id)?,
        },
        "set_breakpoint" => ClientMessage::SetBreakpoint {
            trace_id: req_str(f.trace_id, "traceId")?,
            condition: opt_str(f.condition, "condition")?,
            session_id: opt_session_id(f.session_id)?,
        },
        "remove_breakpoint" => ClientMessage::RemoveBreakpoint {
            trace_id: req_str(f.trace_id, "traceId")?,
        },
        "filter_events" => ClientMessage::FilterEvents {
            condition: req_str(f.condition, "condition")?,
            session_id: opt_session_id(f.session_id)?,
        },
        "list_breakpoints" => ClientMessage::ListBreakpoints,
        "resume" => ClientMessage::Resume {
            session_id: opt_session_id(f.session_id)?,
        },
        "step" => ClientMessage::Step {
            session_id: opt_session_id(f.session_id)?,
        },
        "heartbeat" => ClientMessage::Heartbeat,
        other => {
            let mut shown = String::new();
            // Echo at most 64 characters of an unknown type back.
            shown.extend(other.chars().take(64));
            return Err(ProtocolError::new(
                ErrorCode::UnknownMessageType,
                format!("unknown message type \"{shown}\""),
            ));
        }
    })
}

fn invalid(field: &str, what: &str) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::InvalidRequest,
        format!("field \"{field}\" {what}"),
    )
}

fn is_null(v: &Option<BorrowedValue<'_>>) -> bool {
    matches!(v, None | Some(BorrowedValue::Static(StaticNode::Null)))
}

fn req_str<'a>(v: Option<BorrowedValue<'a>>, field: &str) -> Result<Cow<'a, str>, ProtocolError> {
    match v {
        Some(BorrowedValue::String(s)) => Ok(s),
        Some(BorrowedValue::Static(StaticNode::Null)) | None => Err(invalid(field, "is required")),
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

fn opt_str<'a>(
    v: Option<BorrowedValue<'a>>,
    field: &str,
) -> Result<Option<Cow<'a, str>>, ProtocolError> {
    if is_null(&v) {
        return Ok(None);
    }
    req_str(v, field).map(Some)
}

fn session_id(v: Option<BorrowedValue<'_>>) -> Result<Cow<'_, str>, ProtocolError> {
    let s = req_str(v, "sessionId")?;
    if s.is_empty() || s.len() > MAX_SESSION_ID || s.chars().any(char::is_control) {
        return Err(invalid(
            "sessionId",
            "must be a string of 1..256 bytes without control characters",
        ));
    }
    Ok(s)
}

fn opt_session_id(v: Option<BorrowedValue<'_>>) -> Result<Option<Cow<'_, str>>, ProtocolError> {
    if is_null(&v) {
        return Ok(None);
    }
    session_id(v).map(Some)
}

/// A non-negative integer; a float with no fractional part is accepted because
/// JavaScript clients cannot tell the two apart.
fn as_u64(v: &BorrowedValue<'_>) -> Option<u64> {
    match v {
        BorrowedValue::Static(StaticNode::U64(n)) => Some(*n),
        BorrowedValue::Static(StaticNode::I64(n)) => u64::try_from(*n).ok(),
        BorrowedValue::Static(StaticNode::F64(n))
            if n.fract() == 0.0 && *n >= 0.0 && *n < 18_446_744_073_709_551_616.0 =>
        {
            Some(*n as u64)
        }
        _ => None,
    }
}

fn opt_u64(v: Option<BorrowedValue<'_>>, field: &str) -> Result<Option<u64>, ProtocolError> {
    match v {
        None | Some(BorrowedValue::Static(StaticNode::Null)) => Ok(None),
        Some(v) => as_u64(&v)
            .map(Some)
            .ok_or_else(|| invalid(field, "must be a non-negative integer")),
    }
}

fn opt_usize(v: Option<BorrowedValue<'_>>, field: &str) -> Result<Option<usize>, ProtocolError> {
    Ok(opt_u64(v, field)?.map(|n| usize::try_from(n).unwrap_or(usize::MAX)))
}

/// An epoch-millisecond instant: any finite number in i64 range, fractions truncated.
fn as_time(v: &BorrowedValue<'_>) -> Option<i64> {
    match v {
        BorrowedValue::Static(StaticNode::I64(n)) => Some(*n),
        BorrowedValue::Static(StaticNode::U64(n)) => i64::try_from(*n).ok(),
        BorrowedValue::Static(StaticNode::F64(n))
            if n.is_finite() && n.abs() < 9_223_372_036_854_775_807.0 =>
        {
            Some(*n as i64)
        }
        _ => None,
    }
}

fn req_time(v: Option<BorrowedValue<'_>>, field: &str) -> Result<i64, ProtocolError> {
    match v {
        None | Some(BorrowedValue::Static(StaticNode::Null)) => Err(invalid(field, "is required")),
        Some(v) => as_time(&v).ok_or_else(|| invalid(field, "must be a number (epoch ms)")),
    }
}

fn time_range(v: Option<BorrowedValue<'_>>) -> Result<(i64, i64), ProtocolError> {
    let obj = match v {
        Some(BorrowedValue::Object(o)) => o,
        None | Some(BorrowedValue::Static(StaticNode::Null)) => {
            return Err(invalid("timeRange", "is required"))
        }
        Some(_) => return Err(invalid("timeRange", "must be an object {start, end}")),
    };
    let start = req_time(obj.get("start").cloned(), "timeRange.start")?;
    let end = req_time(obj.get("end").cloned(), "timeRange.end")?;
    if start > end {
        return Err(invalid("timeRange", "must have start <= end"));
    }
    Ok((start, end))
}

fn agent_ids(v: Option<BorrowedValue<'_>>) -> Result<Vec<Cow<'_, str>>, ProtocolError> {
    match v {
        Some(BorrowedValue::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                BorrowedValue::String(s) => Ok(s),
                _ => Err(invalid("agentIds", "must be an array of strings")),
            })
            .collect(),
        None | Some(BorrowedValue::Static(StaticNode::Null)) => Err(invalid(
            "agentIds",
            "is required (an empty array clears the filter)",
        )),
        Some(_) => Err(invalid("agentIds", "must be an array of strings")),
    }
}

/// `events: [...]` wins over `event: {...}`; a `null` counts as absent.
/// The events keep their bytes as sent when [`JsonBuffers::member_end`] can say where
/// the value ends in the frame.
fn publish_events<'a>(
    bufs: &mut JsonBuffers,
    nodes: Vec<Node<'a>>,
    event: Option<usize>,
    events: Option<usize>,
) -> Result<Events<'a>, ProtocolError> {
    let present = |at: Option<usize>| {
        at.filter(|i| !matches!(nodes.get(*i), None | Some(Node::Static(StaticNode::Null))))
    };
    let end = |at: usize| bufs.member_end(&nodes, at + span(nodes.get(at)));
    match (present(events), present(event)) {
        (Some(at), _) => {
            let end = end(at);
            bufs.array_events(nodes, at, end)
                .ok_or_else(|| invalid("events", "must be an array of event objects"))
        }
        (None, Some(at)) => {
            let end = end(at);
            Ok(bufs.value_event(nodes, at, end))
        }
        (None, None) => Err(invalid("event", "is required (or \"events\": [...])")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<String, ProtocolError> {
        let mut buf = s.as_bytes().to_vec();
        let mut buffers = JsonBuffers::default();
        parse_client_message(&mut buf, &mut buffers)
            .map(|p| format!("{:?} {:?}", p.request_id, p.msg))
    }

    #[test]
    fn every_message_type_parses() {
        let cases = [
            (
                r#"{"type":"auth","token":"abc"}"#,
                r#"None Auth { token: "abc" }"#,
            ),
            (
                r#"{"type":"subscribe_session","sessionId":"s1","requestId":"r1"}"#,
                r#"Some(Str("r1")) SubscribeSession { session_id: "s1", since_seq: None, filter: None }"#,
            ),
            (
                r#"{"sinceSeq":42,"sessionId":"s1","type":"subscribe_session","requestId":7}"#,
                r#"Some(Int(7)) SubscribeSession { session_id: "s1", since_seq: Some(42), filter: None }"#,
            ),
            (
                r#"{"type":"unsubscribe_session","sessionId":"s"}"#,
                r#"None UnsubscribeSession { session_id: "s" }"#,
            ),
            (
                r#"{"type":"filter_agents","agentIds":["a","b"]}"#,
                r#"None FilterAgents { agent_ids: ["a", "b"] }"#,
            ),
            (
                r#"{"type":"filter_agents","agentIds":[]}"#,
                r#"None FilterAgents { agent_ids: [] }"#,
            ),
            (
                r#"{"type":"request_history","timeRange":{"start":1,"end":2.5},"limit":10,"offset":20,"sessionId":"s","requestId":1.5}"#,
                r#"Some(Float(1.5)) RequestHistory { start: 1, end: 2, session_id: Some("s"), limit: Some(10), offset: 20, filter: None }"#,
            ),
            (
                r#"{"type":"request_history","timeRange":{"start":1,"end":2}}"#,
                r#"None RequestHistory { start: 1, end: 2, session_id: None, limit: None, offset: 0, filter: None }"#,
            ),
            (
                r#"{"type":"time_travel","timestamp":123}"#,
                r#"None TimeTravel { timestamp: 123, session_id: None }"#,
            ),
            (
                r#"{"type":"set_breakpoint","traceId":"bp","condition":"type == \"X\""}"#,
                r#"None SetBreakpoint { trace_id: "bp", condition: Some("type == \"X\""), session_id: None }"#,
            ),
            (
                r#"{"type":"set_breakpoint","traceId":"bp"}"#,
                r#"None SetBreakpoint { trace_id: "bp", condition: None, session_id: None }"#,
            ),
            (
                r#"{"type":"remove_breakpoint","traceId":"bp"}"#,
                r#"None RemoveBreakpoint { trace_id: "bp" }"#,
            ),
            (r#"{"type":"resume"}"#, "None Resume { session_id: None }"),
            (r#"{"type":"step","sessionId":"s"}"#, r#"None Step { session_id: Some("s") }"#),
            (r#"{"type":"list_breakpoints"}"#, "None ListBreakpoints"),
            (
                r#"{"type":"filter_events","condition":"a == 1","sessionId":"s"}"#,
                r#"None FilterEvents { condition: "a == 1", session_id: Some("s") }"#,
            ),
            (
                r#"{"type":"subscribe_session","sessionId":"s1","filter":"seq > 2"}"#,
                r#"None SubscribeSession { session_id: "s1", since_seq: None, filter: Some("seq > 2") }"#,
            ),
            (r#"{"type":"heartbeat","requestId":null}"#, "None Heartbeat"),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse(input).unwrap_or_else(|e| panic!("{input}: {e}")),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn publish_single_and_many() {
        let mut buf = br#"{"type":"publish","event":{"type":"T","sessionId":"s"}}"#.to_vec();
        let mut b = JsonBuffers::default();
        let p = parse_client_message(&mut buf, &mut b).unwrap();
        assert!(matches!(&p.msg, ClientMessage::Publish { events } if events.len() == 1));
        assert_eq!(p.msg.type_name(), "publish");
        let mut buf = br#"{"type":"publish","events":[{"type":"T"},{"type":"U"},3]}"#.to_vec();
        let p = parse_client_message(&mut buf, &mut b).unwrap();
        assert!(matches!(&p.msg, ClientMessage::Publish { events } if events.len() == 3));
        // A null `events` counts as absent; the last `events` wins.
        let mut buf =
            br#"{"events":[1],"type":"publish","event":{"type":"T"},"events":null}"#.to_vec();
        let p = parse_client_message(&mut buf, &mut b).unwrap();
        assert!(matches!(&p.msg, ClientMessage::Publish { events } if events.len() == 1));
        let mut buf = br#"{"type":"publish","events":[],"requestId":4}"#.to_vec();
        let p = parse_client_message(&mut buf, &mut b).unwrap();
        assert!(matches!(&p.msg, ClientMessage::Publish { events } if events.is_empty()));
        let mut buf = br#"{"type":"publish","event":null,"requestId":"q"}"#.to_vec();
        let e = parse_client_message(&mut buf, &mut b).unwrap_err();
        assert_eq!(e.request_id, Some(RequestId::from("q")));
        assert!(e.message.contains("\"event\""), "{}", e.message);
    }

    /// Published events are located as sent, wherever the field sits, so ingest can
    /// keep their members verbatim.
    #[test]
    fn published_events_are_located_as_sent() {
        let mut b = JsonBuffers::default();
        let ev = r#"{"type":"T", "sessionId":"s","id":"i","timestamp":1}"#;
        let frames = [
            format!(r#"{{"type":"publish","events":[ {ev} ,{ev}],"requestId":7}}"#),
            format!(r#"{{"requestId":7, "type":"publish", "events" : [{ev}, {ev}] }}"#),
            format!(r#"{{"type":"publish","event":{ev},"requestId":7}}"#),
            format!(r#"{{"type":"publish","requestId":7,"event": {ev} }}"#),
        ];
        for frame in frames {
            let mut buf = frame.as_bytes().to_vec();
            let p = parse_client_message(&mut buf, &mut b).unwrap();
            let ClientMessage::Publish { events } = p.msg else {
                panic!("not a publish: {frame}");
            };
            assert!(!events.is_empty());
            for i in 0..events.len() {
                assert_eq!(events.object_bytes(i), Some(ev.as_bytes()), "{frame}");
            }
            b.recycle(events);
        }
    }

    #[test]
    fn bad_messages_name_the_field() {
        use ErrorCode::*;
        let cases = [
            ("not json", InvalidMessage, "malformed"),
            ("[1,2]", InvalidMessage, "object"),
            ("", InvalidMessage, "malformed"),
            (r#"{"token":"x"}"#, InvalidRequest, "\"type\""),
            (r#"{"type":5}"#, InvalidRequest, "\"type\""),
            (r#"{"type":"dance"}"#, UnknownMessageType, "\"dance\""),
            (r#"{"type":"auth"}"#, InvalidRequest, "\"token\""),
            (r#"{"type":"auth","token":1}"#, InvalidRequest, "\"token\""),
            (
                r#"{"type":"subscribe_session"}"#,
                InvalidRequest,
                "\"sessionId\"",
            ),
            (
                r#"{"type":"subscribe_session","sessionId":""}"#,
                InvalidRequest,
                "\"sessionId\"",
            ),
            (
                r#"{"type":"subscribe_session","sessionId":"s","sinceSeq":-1}"#,
                InvalidRequest,
                "\"sinceSeq\"",
            ),
            (
                r#"{"type":"subscribe_session","sessionId":"s","sinceSeq":"5"}"#,
                InvalidRequest,
                "\"sinceSeq\"",
            ),
            (
                r#"{"type":"unsubscribe_session","sessionId":3}"#,
                InvalidRequest,
                "\"sessionId\"",
            ),
            (
                r#"{"type":"filter_agents"}"#,
                InvalidRequest,
                "\"agentIds\"",
            ),
            (
                r#"{"type":"filter_agents","agentIds":[1]}"#,
                InvalidRequest,
                "\"agentIds\"",
            ),
            (
                r#"{"type":"request_history"}"#,
                InvalidRequest,
                "\"timeRange\"",
            ),
            (
                r#"{"type":"request_history","timeRange":[1,2]}"#,
                InvalidRequest,
                "\"timeRange\"",
            ),
            (
                r#"{"type":"request_history","timeRange":{"end":2}}"#,
                InvalidRequest,
                "\"timeRange.start\"",
            ),
            (
                r#"{"type":"request_history","timeRange":{"start":1,"end":"x"}}"#,
                InvalidRequest,
                "\"timeRange.end\"",
            ),
            (
                r#"{"type":"request_history","timeRange":{"start":3,"end":2}}"#,
                InvalidRequest,
                "\"timeRange\"",
            ),
            (
                r#"{"type":"request_history","timeRange":{"start":1,"end":2},"limit":-5}"#,
                InvalidRequest,
                "\"limit\"",
            ),
            (
                r#"{"type":"request_history","timeRange":{"start":1,"end":2},"offset":0.5}"#,
                InvalidRequest,
                "\"offset\"",
            ),
            (
                r#"{"type":"request_history","timeRange":{"start":1,"end":2},"sessionId":4}"#,
                InvalidRequest,
                "\"sessionId\"",
            ),
            (r#"{"type":"time_travel"}"#, InvalidRequest, "\"timestamp\""),
            (
                r#"{"type":"time_travel","timestamp":"yesterday"}"#,
                InvalidRequest,
                "\"timestamp\"",
            ),
            (
                r#"{"type":"set_breakpoint"}"#,
                InvalidRequest,
                "\"traceId\"",
            ),
            (
                r#"{"type":"set_breakpoint","traceId":"b","condition":5}"#,
                InvalidRequest,
                "\"condition\"",
            ),
            (
                r#"{"type":"remove_breakpoint","traceId":[]}"#,
                InvalidRequest,
                "\"traceId\"",
            ),
            (r#"{"type":"publish"}"#, InvalidRequest, "\"event\""),
            (
                r#"{"type":"publish","events":{}}"#,
                InvalidRequest,
                "\"events\"",
            ),
            (
                r#"{"type":"heartbeat","requestId":true}"#,
                InvalidRequest,
                "\"requestId\"",
            ),
        ];
        for (input, code, needle) in cases {
            let e = parse(input).expect_err(input);
            assert_eq!(e.code, code, "{input}: {e}");
            assert!(e.message.contains(needle), "{input}: {}", e.message);
        }
    }

    #[test]
    fn errors_keep_the_request_id() {
        let e = parse(r#"{"type":"auth","requestId":"abc"}"#).unwrap_err();
        assert_eq!(e.request_id, Some(RequestId::from("abc")));
        let e = parse(r#"{"type":"nope","requestId":12}"#).unwrap_err();
        assert_eq!(e.request_id, Some(RequestId::Int(12)));
    }
}
