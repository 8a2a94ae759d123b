//! Spans → trace events, through the ingest [`EventBuilder`]: the mapping of SPEC §12
//! and docs/OTLP.md, written as tables a reader can check and a test walks row by row.
//!
//! A span becomes a start event at its start time, an end event at its end time, and one
//! event per span event at that event's time, so history and time travel place each at
//! the instant it happened although the span arrives only when it ended. A request's
//! events are ordered by timestamp before they are committed, so within one export the
//! log's order is the order of time. A span that cannot be mapped (no session, a broken
//! id, an event the §2 rules refuse) is rejected on its own: its events are left out and
//! counted in the response's `partial_success`, the others are stored.

use super::proto::{self, text, AnyValue, ExportTraceServiceRequest, KeyValue, Span, Value};
use crate::ingest::{EventBuilder, IngestContext, IngestError};
use crate::json::write::{write_bool, write_f64_stored, write_i64, write_str};
use crate::model::Pending;
use std::borrow::Cow;

/// What a span's `gen_ai.operation.name` makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The `gen_ai.operation.name` value (`""` for the default row).
    pub name: &'static str,
    /// The event at the span's start.
    pub start: &'static str,
    /// The event at its end when its status is not an error; `None`: no end event.
    pub end_ok: Option<&'static str>,
    /// The event at its end when its status is an error.
    pub end_error: &'static str,
}

const fn op(
    name: &'static str,
    start: &'static str,
    end_ok: Option<&'static str>,
    end_error: &'static str,
) -> Operation {
    Operation {
        name,
        start,
        end_ok,
        end_error,
    }
}

/// `gen_ai.operation.name` → events. Any other span (another operation, or none) takes
/// [`DEFAULT_OPERATION`].
pub const OPERATIONS: &[Operation] = &[
    op("create_agent", "AGENT_SPAWN", None, "TASK_FAIL"),
    op(
        "invoke_agent",
        "TASK_START",
        Some("TASK_COMPLETE"),
        "TASK_FAIL",
    ),
    op(
        "execute_tool",
        "TASK_START",
        Some("TASK_COMPLETE"),
        "TASK_FAIL",
    ),
    op(
        "invoke_workflow",
        "TASK_START",
        Some("TASK_COMPLETE"),
        "TASK_FAIL",
    ),
    op("chat", "MESSAGE_SEND", Some("MESSAGE_RECEIVE"), "TASK_FAIL"),
    op(
        "text_completion",
        "MESSAGE_SEND",
        Some("MESSAGE_RECEIVE"),
        "TASK_FAIL",
    ),
    op(
        "generate_content",
        "MESSAGE_SEND",
        Some("MESSAGE_RECEIVE"),
        "TASK_FAIL",
    ),
];

/// Every span whose operation is not in [`OPERATIONS`].
pub const DEFAULT_OPERATION: Operation = op("", "TASK_START", Some("TASK_COMPLETE"), "TASK_FAIL");

/// Where a span event goes: its own event of this type, or folded into the span's end
/// event (`exception`: its attributes become the end event's `data.exception`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanEventRule {
    Own(&'static str),
    IntoEnd,
}

/// Span event name → what it becomes; any other name is [`DEFAULT_SPAN_EVENT`].
pub const SPAN_EVENTS: &[(&str, SpanEventRule)] = &[
    ("gen_ai.system.message", SpanEventRule::Own("MESSAGE_SEND")),
    ("gen_ai.user.message", SpanEventRule::Own("MESSAGE_SEND")),
    ("gen_ai.tool.message", SpanEventRule::Own("MESSAGE_SEND")),
    (
        "gen_ai.assistant.message",
        SpanEventRule::Own("MESSAGE_RECEIVE"),
    ),
    ("gen_ai.choice", SpanEventRule::Own("MESSAGE_RECEIVE")),
    ("exception", SpanEventRule::IntoEnd),
];

/// A span event not in [`SPAN_EVENTS`].
pub const DEFAULT_SPAN_EVENT: &str = "SPAN_EVENT";

/// Span attributes naming the session, first found wins; then the configured resource
/// attribute ([`MapConfig::session_resource_attribute`]), then the resource's
/// `service.name`.
pub const SESSION_SPAN_ATTRIBUTES: &[&str] = &["gen_ai.conversation.id", "session.id"];
/// Span attributes naming the agent, first found wins; then the resource's
/// `service.name`.
pub const AGENT_SPAN_ATTRIBUTES: &[&str] = &["gen_ai.agent.id", "gen_ai.agent.name"];
/// The resource attribute every fallback ends with.
pub const SERVICE_NAME: &str = "service.name";
/// The span attribute naming a tool (`data.tool`).
pub const TOOL_NAME: &str = "gen_ai.tool.name";
/// Span attributes copied to the end event's `data.usage`, under these names.
pub const USAGE: &[(&str, &str)] = &[
    ("gen_ai.usage.input_tokens", "inputTokens"),
    ("gen_ai.usage.output_tokens", "outputTokens"),
];

/// The operation row for a span.
pub fn operation_of(span: &Span) -> &'static Operation {
    let name = string_attr(&span.attributes, "gen_ai.operation.name");
    OPERATIONS
        .iter()
        .find(|o| Some(o.name) == name.as_deref())
        .unwrap_or(&DEFAULT_OPERATION)
}

/// What a span event becomes.
pub fn span_event_rule(name: &str) -> SpanEventRule {
    SPAN_EVENTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, r)| r)
        .unwrap_or(SpanEventRule::Own(DEFAULT_SPAN_EVENT))
}

/// What the mapping takes from the configuration (`[otlp]`).
#[derive(Debug, Clone)]
pub struct MapConfig {
    /// The resource attribute naming the session when no span attribute does.
    pub session_resource_attribute: String,
}

impl Default for MapConfig {
    fn default() -> Self {
        MapConfig {
            session_resource_attribute: "service.instance.id".into(),
        }
    }
}

/// A request's events, and the spans that could not be mapped.
#[derive(Debug, Default)]
pub struct Mapped {
    pub events: Vec<Pending>,
    pub spans: usize,
    pub rejected_spans: usize,
    /// Why the first rejected span was rejected (and how many were).
    pub error_message: String,
}

/// Maps every span of `req`; a span is stored whole or not at all.
pub fn map_request(
    req: &ExportTraceServiceRequest,
    cfg: &MapConfig,
    ctx: &mut IngestContext,
) -> Mapped {
    let mut out = Mapped::default();
    let mut w = Writer::default();
    for rs in &req.resource_spans {
        let resource: &[KeyValue] = rs.resource.as_ref().map_or(&[], |r| &r.attributes);
        for ss in &rs.scope_spans {
            // The resource's attributes and the scope, written once for all its spans.
            w.metadata.clear();
            w.metadata.push(b'{');
            let mut first = true;
            for kv in resource {
                member(
                    &mut w.metadata,
                    &mut first,
                    &text(&kv.key),
                    kv.value.as_ref(),
                );
            }
            if let Some(scope) = &ss.scope {
                for (k, v) in [
                    ("otel.scope.name", &scope.name),
                    ("otel.scope.version", &scope.version),
                ] {
                    if !v.is_empty() {
                        sep(&mut w.metadata, &mut first);
                        write_str(&mut w.metadata, k);
                        w.metadata.push(b':');
                        write_str(&mut w.metadata, &text(v));
                    }
                }
            }
            w.metadata.push(b'}');
            for span in &ss.spans {
                let index = out.spans;
                out.spans += 1;
                let before = out.events.len();
                if let Err(why) = map_span(span, resource, cfg, ctx, &mut w, &mut out.events) {
                    out.events.truncate(before);
                    if out.rejected_spans == 0 {
                        out.error_message = format!("span {index}: {why}");
                    }
                    out.rejected_spans += 1;
                }
            }
        }
    }
    if out.rejected_spans > 1 {
        out.error_message = format!(
            "{} spans rejected; the first: {}",
            out.rejected_spans, out.error_message
        );
    }
    // Spans arrive when they end: ordered by time, a request's events are stored in the
    // order they happened (stable: one span's events keep theirs).
    out.events.sort_by_key(|p| p.timestamp);
    out
}

/// Why a span was rejected.
#[derive(Debug)]
enum Reject {
    Invalid(String),
    Event(IngestError),
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reject::Invalid(m) => f.write_str(m),
            // The index is the event's within the span; the message says the rest.
            Reject::Event(e) => match e.field {
                Some(field) => write!(f, "field \"{field}\": {}", e.message),
                None => f.write_str(&e.message),
            },
        }
    }
}

impl From<IngestError> for Reject {
    fn from(e: IngestError) -> Self {
        Reject::Event(e)
    }
}

/// Buffers reused from span to span.
#[derive(Debug, Default)]
struct Writer {
    metadata: Vec<u8>,
    data: Vec<u8>,
    id: String,
    trace: String,
    span: String,
    parent: String,
}

fn map_span(
    span: &Span,
    resource: &[KeyValue],
    cfg: &MapConfig,
    ctx: &mut IngestContext,
    w: &mut Writer,
    out: &mut Vec<Pending>,
) -> Result<(), Reject> {
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|&b| b == 0) {
        return Err(Reject::Invalid(
            "traceId must be 16 bytes, not all zero".into(),
        ));
    }
    if span.span_id.len() != 8 || span.span_id.iter().all(|&b| b == 0) {
        return Err(Reject::Invalid(
            "spanId must be 8 bytes, not all zero".into(),
        ));
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Err(Reject::Invalid(
            "parentSpanId must be 8 bytes or empty".into(),
        ));
    }
    let session = SESSION_SPAN_ATTRIBUTES
        .iter()
        .find_map(|k| string_attr(&span.attributes, k))
        .or_else(|| string_attr(resource, &cfg.session_resource_attribute))
        .or_else(|| string_attr(resource, SERVICE_NAME))
        .ok_or_else(|| {
            Reject::Invalid(format!(
                "no session: none of {}, the resource's {} or {} is a non-empty string",
                SESSION_SPAN_ATTRIBUTES.join(", "),
                cfg.session_resource_attribute,
                SERVICE_NAME
            ))
        })?;
    let agent = AGENT_SPAN_ATTRIBUTES
        .iter()
        .find_map(|k| string_attr(&span.attributes, k))
        .or_else(|| string_attr(resource, SERVICE_NAME));
    hex_into(&mut w.trace, &span.trace_id);
    hex_into(&mut w.span, &span.span_id);
    hex_into(&mut w.parent, &span.parent_span_id);
    let op = operation_of(span);
    let failed = span.status.as_ref().map(|s| s.code) == Some(proto::STATUS_CODE_ERROR);
    let tool = string_attr(&span.attributes, TOOL_NAME);
    let start_ms = ms(span.start_time_unix_nano);
    let end_ms = ms(span.end_time_unix_nano);
    let mut index = 0;

    let mut event = |w: &mut Writer,
                     kind: &str,
                     suffix: &str,
                     at: Option<i64>,
                     duration: Option<f64>|
     -> Result<(), Reject> {
        w.id.clear();
        w.id.push_str(&w.span);
        w.id.push_str(suffix);
        let mut b = EventBuilder::new(ctx, index);
        index += 1;
        b.id(&w.id)?.kind(kind)?.session_id(&session)?;
        if let Some(a) = &agent {
            b.agent_id(a)?;
        }
        if let Some(at) = at {
            b.timestamp(at)?;
        }
        b.trace_id(&w.trace)?.span_id(&w.span)?;
        if !w.parent.is_empty() {
            b.parent_id(&w.parent)?;
        }
        if let Some(d) = duration {
            b.duration(d)?;
        }
        // Both objects were written just above by the json layer's writer.
        b.written_object("data", &w.data)?
            .written_object("metadata", &w.metadata)?;
        out.push(b.finish()?);
        Ok(())
    };

    // Start: the span as a whole, its attributes included.
    w.data.clear();
    let name = text(&span.name);
    task_head(&mut w.data, &w.span, &name, tool.as_deref());
    w.data.extend_from_slice(b",\"attributes\":");
    attributes(&mut w.data, &span.attributes);
    w.data.push(b'}');
    event(w, op.start, ":start", start_ms, None)?;

    // Span events, each at its own time (an exception goes into the end event).
    let mut exception = None;
    for (i, e) in span.events.iter().enumerate() {
        let event_name = text(&e.name);
        let kind = match span_event_rule(&event_name) {
            SpanEventRule::IntoEnd => {
                exception.get_or_insert(e);
                continue;
            }
            SpanEventRule::Own(kind) => kind,
        };
        w.data.clear();
        w.data.extend_from_slice(b"{\"name\":");
        write_str(&mut w.data, &event_name);
        w.data.extend_from_slice(b",\"attributes\":");
        attributes(&mut w.data, &e.attributes);
        w.data.push(b'}');
        let suffix = format!(":event:{i}");
        event(w, kind, &suffix, ms(e.time_unix_nano), None)?;
    }

    // End: the outcome.
    let kind = if failed {
        op.end_error
    } else if let Some(k) = op.end_ok {
        k
    } else {
        return Ok(());
    };
    w.data.clear();
    task_head(&mut w.data, &w.span, &name, tool.as_deref());
    if let Some(status) = &span.status {
        w.data.extend_from_slice(b",\"status\":");
        write_str(
            &mut w.data,
            match status.code {
                1 => "ok",
                proto::STATUS_CODE_ERROR => "error",
                _ => "unset",
            },
        );
        if !status.message.is_empty() {
            w.data.extend_from_slice(b",\"error\":");
            write_str(&mut w.data, &text(&status.message));
        }
    }
    let mut usage = false;
    for (attr, name) in USAGE {
        if let Some(v) = find(&span.attributes, attr) {
            w.data
                .extend_from_slice(if usage { b"," } else { b",\"usage\":{" });
            usage = true;
            write_str(&mut w.data, name);
            w.data.push(b':');
            any_value(&mut w.data, Some(v));
        }
    }
    if usage {
        w.data.push(b'}');
    }
    if let Some(e) = exception {
        w.data.extend_from_slice(b",\"exception\":");
        attributes(&mut w.data, &e.attributes);
    }
    w.data.push(b'}');
    let duration = match (span.start_time_unix_nano, span.end_time_unix_nano) {
        (s, e) if s > 0 && e >= s => Some((e - s) as f64 / 1e6),
        _ => None,
    };
    event(w, kind, ":end", end_ms.or(start_ms), duration)
}

/// `{"taskId":…,"name":…[,"tool":…]` (left open).
fn task_head(out: &mut Vec<u8>, span_id: &str, name: &str, tool: Option<&str>) {
    out.extend_from_slice(b"{\"taskId\":");
    write_str(out, span_id);
    out.extend_from_slice(b",\"name\":");
    write_str(out, name);
    if let Some(t) = tool {
        out.extend_from_slice(b",\"tool\":");
        write_str(out, t);
    }
}

/// Epoch ms from OTLP's epoch ns; `None` for 0 (unset: the receive time is used).
fn ms(ns: u64) -> Option<i64> {
    (ns > 0).then_some((ns / 1_000_000) as i64)
}

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key.as_bytes())
        .and_then(|kv| kv.value.as_ref())
}

/// A non-empty string attribute.
fn string_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<Cow<'a, str>> {
    match find(attrs, key)?.value.as_ref()? {
        Value::String(s) if !s.is_empty() => Some(text(s)),
        _ => None,
    }
}

fn hex_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.clear();
    for &b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

fn sep(out: &mut Vec<u8>, first: &mut bool) {
    if !*first {
        out.push(b',');
    }
    *first = false;
}

fn member(out: &mut Vec<u8>, first: &mut bool, key: &str, v: Option<&AnyValue>) {
    sep(out, first);
    write_str(out, key);
    out.push(b':');
    any_value(out, v);
}

/// Attributes as one JSON object, key by key (a repeated key keeps its last value
/// only when the reader's JSON does; OTLP forbids repeats).
pub fn attributes(out: &mut Vec<u8>, attrs: &[KeyValue]) {
    out.push(b'{');
    let mut first = true;
    for kv in attrs {
        member(out, &mut first, &text(&kv.key), kv.value.as_ref());
    }
    out.push(b'}');
}

/// An `AnyValue` as JSON, its OTel type kept: string, integer, float (always with a
/// fraction or exponent, `1.0`), bool, array, object (`kvlist`), bytes as base64; an empty
/// value is `null`, and so are NaN and the infinities, which JSON cannot hold.
pub fn any_value(out: &mut Vec<u8>, v: Option<&AnyValue>) {
    match v.and_then(|v| v.value.as_ref()) {
        None => out.extend_from_slice(b"null"),
        Some(Value::String(s)) => write_str(out, &text(s)),
        Some(Value::Bool(b)) => write_bool(out, *b),
        Some(Value::Int(i)) => write_i64(out, *i),
        Some(Value::Double(d)) => write_f64_stored(out, *d),
        Some(Value::Array(a)) => {
            out.push(b'[');
            for (i, v) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                any_value(out, Some(v));
            }
            out.push(b']');
        }
        Some(Value::Kvlist(l)) => attributes(out, &l.values),
        Some(Value::Bytes(b)) => {
            use base64::Engine;
            out.push(b'"');
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(b)
                    .as_bytes(),
            );
            out.push(b'"');
        }
    }
}
