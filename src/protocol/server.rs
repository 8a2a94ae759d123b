//! Outbound control messages (SPEC §4): each function appends one complete JSON server
//! message to a caller's buffer.
//!
//! Hand-written rather than derived: the shapes are fixed, event JSON is copied verbatim,
//! and the loop reuses one buffer per turn. Every reply to a message that carried a
//! `requestId` takes it as `Option<&RequestId>` and echoes it as the last field. The
//! hot-path `trace_batch` lives in [`super::batch`].

use super::{ErrorCode, ProtocolError, RequestId};
use crate::event::Event;
use crate::json::write::{
    key, next_key, write_bool, write_f64, write_i64, write_opt_i64, write_opt_u64, write_str,
    write_u64,
};
use crate::model::SessionSummary;

/// What the server tells a client about one connection (`heartbeat`,
/// `heartbeat_response`): its own queue, drops, latency and rate-limit counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClientMetrics {
    /// Bytes waiting in the connection's write queue.
    pub queue_bytes: u64,
    /// Frames waiting in the connection's write queue.
    pub queue_frames: u64,
    /// Events dropped for this client by backpressure so far.
    pub dropped: u64,
    /// Last measured ping→pong round trip.
    pub latency_ms: Option<f64>,
    /// Messages refused by the rate limiter so far.
    pub rate_limited: u64,
    /// Client messages received.
    pub messages_in: u64,
    /// Frames sent to the client.
    pub messages_out: u64,
}

impl ClientMetrics {
    /// Appends the metrics as a JSON object.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        key(out, "queueBytes");
        write_u64(out, self.queue_bytes);
        next_key(out, "queueFrames");
        write_u64(out, self.queue_frames);
        next_key(out, "dropped");
        write_u64(out, self.dropped);
        next_key(out, "latencyMs");
        match self.latency_ms {
            Some(v) => write_f64(out, v),
            None => out.extend_from_slice(b"null"),
        }
        next_key(out, "rateLimited");
        write_u64(out, self.rate_limited);
        next_key(out, "messagesIn");
        write_u64(out, self.messages_in);
        next_key(out, "messagesOut");
        write_u64(out, self.messages_out);
        out.push(b'}');
    }
}

/// `serverInfo` of the `connection` message.
#[derive(Debug, Clone, Copy)]
pub struct ServerInfo<'a> {
    pub version: &'a str,
    pub capabilities: &'a [&'a str],
    pub max_message_size: usize,
    pub batch_size: usize,
    pub max_event_bytes: usize,
    /// Whether the server requires authentication.
    pub auth_required: bool,
    /// Whether `tracecast.bin` may be negotiated at all.
    pub binary_available: bool,
    /// Whether this connection receives binary batches.
    pub binary_active: bool,
}

/// Starts `{"type":"<ty>"`.
fn open(out: &mut Vec<u8>, ty: &str) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(ty.as_bytes());
    out.push(b'"');
}

/// Ends a reply: `,"requestId":…` when there is one, then `}`.
fn close(out: &mut Vec<u8>, request_id: Option<&RequestId>) {
    if let Some(id) = request_id {
        next_key(out, "requestId");
        id.write_json(out);
    }
    out.push(b'}');
}

/// Appends a JSON array of event bytes, copied verbatim.
pub(crate) fn write_events<'e>(out: &mut Vec<u8>, events: impl IntoIterator<Item = &'e Event>) {
    out.push(b'[');
    let mut first = true;
    for e in events {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(&e.json);
    }
    out.push(b']');
}

fn write_str_array<S: AsRef<str>>(out: &mut Vec<u8>, items: &[S]) {
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, s.as_ref());
    }
    out.push(b']');
}

/// `connection {clientId, serverInfo, timestamp}`: the first message after the upgrade.
pub fn encode_connection(
    out: &mut Vec<u8>,
    client_id: &str,
    info: &ServerInfo<'_>,
    timestamp: i64,
) {
    open(out, "connection");
    next_key(out, "clientId");
    write_str(out, client_id);
    next_key(out, "serverInfo");
    out.push(b'{');
    key(out, "version");
    write_str(out, info.version);
    next_key(out, "capabilities");
    write_str_array(out, info.capabilities);
    next_key(out, "limits");
    out.push(b'{');
    key(out, "maxMessageSize");
    write_u64(out, info.max_message_size as u64);
    next_key(out, "batchSize");
    write_u64(out, info.batch_size as u64);
    next_key(out, "maxEventBytes");
    write_u64(out, info.max_event_bytes as u64);
    out.push(b'}');
    next_key(out, "auth");
    out.push(b'{');
    key(out, "required");
    write_bool(out, info.auth_required);
    out.push(b'}');
    next_key(out, "binaryProtocol");
    out.push(b'{');
    key(out, "available");
    write_bool(out, info.binary_available);
    next_key(out, "active");
    write_bool(out, info.binary_active);
    next_key(out, "subprotocol");
    write_str(out, super::binary::SUBPROTOCOL);
    next_key(out, "version");
    write_u64(out, u64::from(super::binary::VERSION));
    out.extend_from_slice(b"}}");
    next_key(out, "timestamp");
    write_i64(out, timestamp);
    out.push(b'}');
}

/// The outcome of an authentication attempt, as `auth_response` reports it.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthOutcome<'a> {
    pub authenticated: bool,
    pub subject: Option<&'a str>,
    pub permissions: Option<&'a [&'a str]>,
    /// Epoch ms the credential expires at, when it does.
    pub expires_at: Option<i64>,
    /// Why authentication failed (never echoes the secret).
    pub message: Option<&'a str>,
}

/// `auth_response {authenticated, subject?, permissions?, expiresAt?, message?}`.
pub fn encode_auth_response(
    out: &mut Vec<u8>,
    outcome: &AuthOutcome<'_>,
    request_id: Option<&RequestId>,
) {
    open(out, "auth_response");
    next_key(out, "authenticated");
    write_bool(out, outcome.authenticated);
    if let Some(s) = outcome.subject {
        next_key(out, "subject");
        write_str(out, s);
    }
    if let Some(p) = outcome.permissions {
        next_key(out, "permissions");
        write_str_array(out, p);
    }
    if let Some(t) = outcome.expires_at {
        next_key(out, "expiresAt");
        write_i64(out, t);
    }
    if let Some(m) = outcome.message {
        next_key(out, "message");
        write_str(out, m);
    }
    close(out, request_id);
}

/// `session_info {session:{id,eventCount,agentCount,firstTimestamp,lastTimestamp,lastSeq}}`;
/// the optional fields are `null` for a session with no events yet.
pub fn encode_session_info(out: &mut Vec<u8>, s: &SessionSummary, request_id: Option<&RequestId>) {
    open(out, "session_info");
    next_key(out, "session");
    write_session_summary(out, s);
    close(out, request_id);
}

/// One session as `session_info` and `GET /v1/sessions` describe it:
/// `{id, eventCount, agentCount, firstTimestamp, lastTimestamp, lastSeq}`.
pub fn write_session_summary(out: &mut Vec<u8>, s: &SessionSummary) {
    out.push(b'{');
    key(out, "id");
    write_str(out, &s.id);
    next_key(out, "eventCount");
    write_u64(out, s.event_count);
    next_key(out, "agentCount");
    write_u64(out, s.agent_count);
    next_key(out, "firstTimestamp");
    write_opt_i64(out, s.first_timestamp);
    next_key(out, "lastTimestamp");
    write_opt_i64(out, s.last_timestamp);
    next_key(out, "lastSeq");
    write_opt_u64(out, s.last_seq);
    out.push(b'}');
}

/// `initial_traces {sessionId, traces:[…]}`, events oldest first.
pub fn encode_initial_traces<'e>(
    out: &mut Vec<u8>,
    session: &str,
    traces: impl IntoIterator<Item = &'e Event>,
    request_id: Option<&RequestId>,
) {
    open(out, "initial_traces");
    next_key(out, "sessionId");
    write_str(out, session);
    next_key(out, "traces");
    write_events(out, traces);
    close(out, request_id);
}

/// `unsubscribed {sessionId}`.
pub fn encode_unsubscribed(out: &mut Vec<u8>, session: &str, request_id: Option<&RequestId>) {
    open(out, "unsubscribed");
    next_key(out, "sessionId");
    write_str(out, session);
    close(out, request_id);
}

/// `filter_applied {agentIds}`.
pub fn encode_filter_applied<S: AsRef<str>>(
    out: &mut Vec<u8>,
    agent_ids: &[S],
    request_id: Option<&RequestId>,
) {
    open(out, "filter_applied");
    next_key(out, "agentIds");
    write_str_array(out, agent_ids);
    close(out, request_id);
}

/// `publish_ack {count, firstSeq, lastSeq}`.
pub fn encode_publish_ack(
    out: &mut Vec<u8>,
    count: usize,
    first_seq: u64,
    last_seq: u64,
    request_id: Option<&RequestId>,
) {
    open(out, "publish_ack");
    next_key(out, "count");
    write_u64(out, count as u64);
    next_key(out, "firstSeq");
    write_u64(out, first_seq);
    next_key(out, "lastSeq");
    write_u64(out, last_seq);
    close(out, request_id);
}

/// `heartbeat_response {timestamp, clientMetrics}`: the answer to a client `heartbeat`.
pub fn encode_heartbeat_response(
    out: &mut Vec<u8>,
    timestamp: i64,
    metrics: &ClientMetrics,
    request_id: Option<&RequestId>,
) {
    open(out, "heartbeat_response");
    next_key(out, "timestamp");
    write_i64(out, timestamp);
    next_key(out, "clientMetrics");
    metrics.write_json(out);
    close(out, request_id);
}

/// `heartbeat {timestamp, metrics}`: the server's periodic beat.
pub fn encode_heartbeat(out: &mut Vec<u8>, timestamp: i64, metrics: &ClientMetrics) {
    open(out, "heartbeat");
    next_key(out, "timestamp");
    write_i64(out, timestamp);
    next_key(out, "metrics");
    metrics.write_json(out);
    out.push(b'}');
}

/// `events_dropped {sessionId, count, fromSeq, toSeq, reason?}` (`reason` is
/// `"backpressure"` or `"retention"`).
pub fn encode_events_dropped(
    out: &mut Vec<u8>,
    session: &str,
    count: u64,
    from_seq: u64,
    to_seq: u64,
    reason: Option<&str>,
) {
    open(out, "events_dropped");
    next_key(out, "sessionId");
    write_str(out, session);
    next_key(out, "count");
    write_u64(out, count);
    next_key(out, "fromSeq");
    write_u64(out, from_seq);
    next_key(out, "toSeq");
    write_u64(out, to_seq);
    if let Some(r) = reason {
        next_key(out, "reason");
        write_str(out, r);
    }
    out.push(b'}');
}

/// Where one `historical_data` chunk sits in its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryChunk<'a> {
    pub session: &'a str,
    pub start: i64,
    pub end: i64,
    /// Counting from 1.
    pub current: u64,
    /// Number of chunks in the whole answer (at least 1).
    pub total_chunks: u64,
    pub is_last: bool,
    /// Matching events in the range (before `limit`/`offset`).
    pub total: u64,
}

/// `historical_data {sessionId, timeRange, traces, chunkInfo{current,total,isLast}, total}`.
pub fn encode_historical_data<'e>(
    out: &mut Vec<u8>,
    chunk: &HistoryChunk<'_>,
    traces: impl IntoIterator<Item = &'e Event>,
    request_id: Option<&RequestId>,
) {
    open(out, "historical_data");
    next_key(out, "sessionId");
    write_str(out, chunk.session);
    next_key(out, "timeRange");
    out.push(b'{');
    key(out, "start");
    write_i64(out, chunk.start);
    next_key(out, "end");
    write_i64(out, chunk.end);
    out.push(b'}');
    next_key(out, "traces");
    write_events(out, traces);
    next_key(out, "chunkInfo");
    out.push(b'{');
    key(out, "current");
    write_u64(out, chunk.current);
    next_key(out, "total");
    write_u64(out, chunk.total_chunks);
    next_key(out, "isLast");
    write_bool(out, chunk.is_last);
    out.push(b'}');
    next_key(out, "total");
    write_u64(out, chunk.total);
    close(out, request_id);
}

/// `time_travel_state {timestamp, sessionId, state, traces}`; `state_json` is the
/// already-serialized state object (SPEC §6), copied verbatim.
pub fn encode_time_travel_state<'e>(
    out: &mut Vec<u8>,
    session: &str,
    timestamp: i64,
    state_json: &[u8],
    traces: impl IntoIterator<Item = &'e Event>,
    request_id: Option<&RequestId>,
) {
    open(out, "time_travel_state");
    next_key(out, "timestamp");
    write_i64(out, timestamp);
    next_key(out, "sessionId");
    write_str(out, session);
    next_key(out, "state");
    out.extend_from_slice(state_json);
    next_key(out, "traces");
    write_events(out, traces);
    close(out, request_id);
}

/// `breakpoint_set {traceId, condition, sessionId?}` (the condition's canonical text).
pub fn encode_breakpoint_set(
    out: &mut Vec<u8>,
    trace_id: &str,
    condition: &str,
    session: Option<&str>,
    request_id: Option<&RequestId>,
) {
    open(out, "breakpoint_set");
    next_key(out, "traceId");
    write_str(out, trace_id);
    next_key(out, "condition");
    write_str(out, condition);
    if let Some(s) = session {
        next_key(out, "sessionId");
        write_str(out, s);
    }
    close(out, request_id);
}

/// One row of `breakpoints.items`.
#[derive(Debug, Clone, Copy)]
pub struct BreakpointItem<'a> {
    pub trace_id: &'a str,
    pub condition: &'a str,
    pub session: Option<&'a str>,
    pub hits: u64,
}

/// `breakpoints {items:[{traceId, condition, sessionId?, hits}]}`.
pub fn encode_breakpoints<'a>(
    out: &mut Vec<u8>,
    items: impl Iterator<Item = BreakpointItem<'a>>,
    request_id: Option<&RequestId>,
) {
    open(out, "breakpoints");
    next_key(out, "items");
    out.push(b'[');
    for (i, it) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        key(out, "traceId");
        write_str(out, it.trace_id);
        next_key(out, "condition");
        write_str(out, it.condition);
        if let Some(s) = it.session {
            next_key(out, "sessionId");
            write_str(out, s);
        }
        next_key(out, "hits");
        write_u64(out, it.hits);
        out.push(b'}');
    }
    out.push(b']');
    close(out, request_id);
}

/// `filter_applied {condition, sessionId?}`: the answer to `filter_events` (the
/// condition's canonical text, `""` when the filter was cleared).
pub fn encode_condition_applied(
    out: &mut Vec<u8>,
    condition: &str,
    session: Option<&str>,
    request_id: Option<&RequestId>,
) {
    open(out, "filter_applied");
    next_key(out, "condition");
    write_str(out, condition);
    if let Some(s) = session {
        next_key(out, "sessionId");
        write_str(out, s);
    }
    close(out, request_id);
}

/// `error {code:"invalid_condition", message, position}`: a condition that does not
/// compile, with the byte offset of the fault.
pub fn encode_condition_error(
    out: &mut Vec<u8>,
    message: &str,
    position: usize,
    timestamp: i64,
    request_id: Option<&RequestId>,
) {
    open(out, "error");
    next_key(out, "error");
    out.push(b'{');
    key(out, "code");
    write_str(out, ErrorCode::InvalidCondition.as_str());
    next_key(out, "message");
    write_str(out, message);
    next_key(out, "position");
    write_u64(out, position as u64);
    out.push(b'}');
    next_key(out, "timestamp");
    write_i64(out, timestamp);
    close(out, request_id);
}

/// `breakpoint_removed {traceId}`.
pub fn encode_breakpoint_removed(
    out: &mut Vec<u8>,
    trace_id: &str,
    request_id: Option<&RequestId>,
) {
    open(out, "breakpoint_removed");
    next_key(out, "traceId");
    write_str(out, trace_id);
    close(out, request_id);
}

/// `breakpoint_hit {traceId, sessionId, event}`: the hitting event travels only here.
pub fn encode_breakpoint_hit(out: &mut Vec<u8>, trace_id: &str, event: &Event) {
    open(out, "breakpoint_hit");
    next_key(out, "traceId");
    write_str(out, trace_id);
    next_key(out, "sessionId");
    write_str(out, &event.session);
    next_key(out, "event");
    out.extend_from_slice(&event.json);
    out.push(b'}');
}

/// `system_event {event, data, timestamp}`; `data_json` is a serialized JSON value.
pub fn encode_system_event(out: &mut Vec<u8>, event: &str, data_json: &[u8], timestamp: i64) {
    open(out, "system_event");
    next_key(out, "event");
    write_str(out, event);
    next_key(out, "data");
    out.extend_from_slice(if data_json.is_empty() {
        b"null"
    } else {
        data_json
    });
    next_key(out, "timestamp");
    write_i64(out, timestamp);
    out.push(b'}');
}

/// `error {error:{code, message, retryAfterMs?}, timestamp, requestId?}`.
pub fn encode_error(
    out: &mut Vec<u8>,
    code: ErrorCode,
    message: &str,
    retry_after_ms: Option<u64>,
    timestamp: i64,
    request_id: Option<&RequestId>,
) {
    open(out, "error");
    next_key(out, "error");
    out.push(b'{');
    key(out, "code");
    write_str(out, code.as_str());
    next_key(out, "message");
    write_str(out, message);
    if let Some(ms) = retry_after_ms {
        next_key(out, "retryAfterMs");
        write_u64(out, ms);
    }
    out.push(b'}');
    next_key(out, "timestamp");
    write_i64(out, timestamp);
    close(out, request_id);
}

/// The `error` answer to a message [`super::parse_client_message`] refused.
pub fn encode_protocol_error(out: &mut Vec<u8>, err: &ProtocolError, timestamp: i64) {
    encode_error(
        out,
        err.code,
        &err.message,
        None,
        timestamp,
        err.request_id.as_ref(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::tests::ev;
    use serde_json::{json, Value};

    fn v(out: &[u8]) -> Value {
        serde_json::from_slice(out)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(out)))
    }

    #[test]
    fn every_message_is_valid_json_with_its_fields() {
        let rid = RequestId::from("r\"1");
        let rid = Some(&rid);
        let e1 = ev(1, r#"{"seq":1,"type":"A"}"#);
        let e2 = ev(2, r#"{"seq":2,"type":"B"}"#);
        let m = ClientMetrics {
            queue_bytes: 10,
            latency_ms: Some(1.25),
            ..Default::default()
        };
        let mut out = Vec::new();
        let info = ServerInfo {
            version: "0.1.0",
            capabilities: &["history", "time_travel"],
            max_message_size: 1 << 20,
            batch_size: 50,
            max_event_bytes: 65536,
            auth_required: false,
            binary_available: true,
            binary_active: false,
        };
        let summary = SessionSummary {
            id: "s".into(),
            event_count: 2,
            agent_count: 1,
            first_timestamp: Some(5),
            last_timestamp: None,
            last_seq: Some(2),
        };
        let chunk = HistoryChunk {
            session: "s",
            start: 1,
            end: 9,
            current: 1,
            total_chunks: 2,
            is_last: false,
            total: 150,
        };
        let auth = AuthOutcome {
            authenticated: true,
            subject: Some("me"),
            permissions: Some(&["read"]),
            expires_at: Some(99),
            message: None,
        };
        type Case<'a> = (Box<dyn Fn(&mut Vec<u8>) + 'a>, Value);
        let cases: Vec<Case> = vec![
            (
                Box::new(|o| encode_connection(o, "c1", &info, 5)),
                json!({"type":"connection","clientId":"c1","serverInfo":{"version":"0.1.0","capabilities":["history","time_travel"],"limits":{"maxMessageSize":1048576,"batchSize":50,"maxEventBytes":65536},"auth":{"required":false},"binaryProtocol":{"available":true,"active":false,"subprotocol":"tracecast.bin","version":1}},"timestamp":5}),
            ),
            (
                Box::new(|o| encode_auth_response(o, &auth, rid)),
                json!({"type":"auth_response","authenticated":true,"subject":"me","permissions":["read"],"expiresAt":99,"requestId":"r\"1"}),
            ),
            (
                Box::new(|o| encode_session_info(o, &summary, None)),
                json!({"type":"session_info","session":{"id":"s","eventCount":2,"agentCount":1,"firstTimestamp":5,"lastTimestamp":null,"lastSeq":2}}),
            ),
            (
                Box::new(|o| encode_initial_traces(o, "s", [&e1, &e2], rid)),
                json!({"type":"initial_traces","sessionId":"s","traces":[{"seq":1,"type":"A"},{"seq":2,"type":"B"}],"requestId":"r\"1"}),
            ),
            (
                Box::new(|o| encode_unsubscribed(o, "s", None)),
                json!({"type":"unsubscribed","sessionId":"s"}),
            ),
            (
                Box::new(|o| encode_filter_applied(o, &["a", "b"], None)),
                json!({"type":"filter_applied","agentIds":["a","b"]}),
            ),
            (
                Box::new(|o| encode_publish_ack(o, 2, 10, 11, rid)),
                json!({"type":"publish_ack","count":2,"firstSeq":10,"lastSeq":11,"requestId":"r\"1"}),
            ),
            (
                Box::new(|o| encode_heartbeat_response(o, 3, &m, None)),
                json!({"type":"heartbeat_response","timestamp":3,"clientMetrics":{"queueBytes":10,"queueFrames":0,"dropped":0,"latencyMs":1.25,"rateLimited":0,"messagesIn":0,"messagesOut":0}}),
            ),
            (
                Box::new(|o| encode_heartbeat(o, 3, &ClientMetrics::default())),
                json!({"type":"heartbeat","timestamp":3,"metrics":{"queueBytes":0,"queueFrames":0,"dropped":0,"latencyMs":null,"rateLimited":0,"messagesIn":0,"messagesOut":0}}),
            ),
            (
                Box::new(|o| encode_events_dropped(o, "s", 3, 4, 6, Some("retention"))),
                json!({"type":"events_dropped","sessionId":"s","count":3,"fromSeq":4,"toSeq":6,"reason":"retention"}),
            ),
            (
                Box::new(|o| encode_historical_data(o, &chunk, [&e1], rid)),
                json!({"type":"historical_data","sessionId":"s","timeRange":{"start":1,"end":9},"traces":[{"seq":1,"type":"A"}],"chunkInfo":{"current":1,"total":2,"isLast":false},"total":150,"requestId":"r\"1"}),
            ),
            (
                Box::new(|o| {
                    encode_time_travel_state(o, "s", 8, br#"{"eventCount":1}"#, [&e1], None)
                }),
                json!({"type":"time_travel_state","timestamp":8,"sessionId":"s","state":{"eventCount":1},"traces":[{"seq":1,"type":"A"}]}),
            ),
            (
                Box::new(|o| encode_breakpoint_set(o, "bp", "a == 1", None, None)),
                json!({"type":"breakpoint_set","traceId":"bp","condition":"a == 1"}),
            ),
            (
                Box::new(|o| encode_breakpoint_removed(o, "bp", Some(&RequestId::Int(4)))),
                json!({"type":"breakpoint_removed","traceId":"bp","requestId":4}),
            ),
            (
                Box::new(|o| encode_breakpoint_hit(o, "bp", &e2)),
                json!({"type":"breakpoint_hit","traceId":"bp","sessionId":"s","event":{"seq":2,"type":"B"}}),
            ),
            (
                Box::new(|o| encode_system_event(o, "shutdown", br#"{"reconnect":true}"#, 9)),
                json!({"type":"system_event","event":"shutdown","data":{"reconnect":true},"timestamp":9}),
            ),
            (
                Box::new(|o| {
                    encode_error(
                        o,
                        ErrorCode::RateLimitExceeded,
                        "slow down",
                        Some(250),
                        9,
                        rid,
                    )
                }),
                json!({"type":"error","error":{"code":"rate_limit_exceeded","message":"slow down","retryAfterMs":250},"timestamp":9,"requestId":"r\"1"}),
            ),
            (
                Box::new(|o| {
                    encode_protocol_error(
                        o,
                        &ProtocolError {
                            code: ErrorCode::InvalidRequest,
                            message: "field \"x\"\n".into(),
                            request_id: Some(RequestId::UInt(u64::MAX)),
                        },
                        1,
                    )
                }),
                json!({"type":"error","error":{"code":"invalid_request","message":"field \"x\"\n"},"timestamp":1,"requestId":u64::MAX}),
            ),
        ];
        for (f, want) in cases {
            out.clear();
            f(&mut out);
            assert_eq!(v(&out), want);
        }
    }

    #[test]
    fn error_codes_spelled_as_in_the_spec() {
        let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        for want in [
            "invalid_message",
            "invalid_request",
            "unknown_message_type",
            "not_authenticated",
            "forbidden",
            "rate_limit_exceeded",
            "no_session",
            "message_too_large",
            "history_error",
            "time_travel_error",
            "invalid_condition",
            "internal_error",
            "storage_error",
        ] {
            assert!(all.contains(&want), "{want}");
        }
    }
}
