//! What a WebSocket client's messages do: the protocol's effects on the hub and the store.
//!
//! [`on_message`] takes one message the frame layer assembled and a [`Call`] (the
//! application, the client's state, its outbound half). It answers control frames, applies
//! the rate limit, parses the JSON, holds everything but `auth` back until the client is
//! authenticated, and hands each message family to its own file:
//!
//! - [`subscribe`]: `subscribe_session`, `unsubscribe_session`, `filter_agents`;
//! - [`publish`]: the `publish` message;
//! - [`history`]: `request_history`, `time_travel` and the paced jobs that answer them;
//! - [`auth`]: `auth`, the auth deadline, credential expiry;
//! - [`breakpoints`]: `set_breakpoint`, `remove_breakpoint`, `list_breakpoints`,
//!   `resume`, `step`, and the pause a hit leaves behind.
//!
//! None of them touch a socket.

pub mod auth;
pub mod breakpoints;
pub mod history;
pub mod publish;
pub mod subscribe;

use super::{App, Call, Client, Out};
use crate::limits::Decision;
use crate::protocol::server as enc;
use crate::protocol::{parse_client_message, ClientMessage, ErrorCode, RequestId};
use crate::ws::{close_code, close_frame, pong_frame, Message};
use std::sync::Arc;

/// Events in `initial_traces` and time-travel `traces`.
pub const RECENT: usize = 100;

/// Handles one inbound WebSocket message or control frame.
pub fn on_message(msg: Message<'_>, call: &mut Call<'_>) {
    if call.client.echo {
        if let Message::Text(buf) | Message::Binary(buf) = &msg {
            echo(buf, matches!(msg, Message::Text(_)), call);
            return;
        }
    }
    match msg {
        Message::Text(buf) => on_text(buf, call),
        Message::Binary(buf) => {
            call.app.metrics.messages_received += 1;
            call.client.messages_in += 1;
            if rate_limited(buf, call) {
                return;
            }
            call.error(
                ErrorCode::InvalidMessage,
                "binary messages are not accepted: send JSON text",
            );
        }
        Message::Ping(payload) => {
            if !control_limited(payload.len(), call) {
                call.out.pong(pong_frame(payload));
            }
        }
        Message::Pong(payload) => {
            if control_limited(payload.len(), call) {
                return;
            }
            if let Some(sent) = call.client.ping_out.take() {
                call.client.latency_ms = Some(sent.elapsed().as_secs_f64() * 1000.0);
            }
        }
        Message::Close { code, .. } => {
            // Echo the peer's code (RFC 6455 §5.5.1), then close once it is written.
            let code = code.unwrap_or(close_code::NORMAL);
            call.out.close_with(close_frame(code, ""));
            call.out.peer_closed = true;
        }
    }
}

/// `[debug] echo_path`: the message goes back as it came (text or binary), through the
/// same limits and encoder as any reply; the frame layer already checked it.
fn echo(buf: &[u8], text: bool, call: &mut Call<'_>) {
    call.app.metrics.messages_received += 1;
    call.client.messages_in += 1;
    if rate_limited(buf, call) {
        return;
    }
    let frame = call.app.encoder.message(call.client.deflate, text, buf);
    call.client.messages_out += 1;
    call.app.metrics.messages_sent += 1;
    call.out.control(frame);
}

/// Applies the rate limiter; true when the message must be dropped. A refused message is
/// not parsed, but its `requestId` is still found and echoed (SPEC §4: every reply to a
/// message that carried one echoes it).
fn rate_limited(buf: &[u8], call: &mut Call<'_>) -> bool {
    let now = call.app.mono_ms();
    match call.client.limiter.check(now, buf.len() as u64) {
        Decision::Allow => false,
        Decision::Limited { retry_after_ms } => {
            call.client.rate_limited += 1;
            call.app.metrics.rate_limit_hits += 1;
            call.rid = request_id_of(buf);
            call.error_retry(
                ErrorCode::RateLimitExceeded,
                "rate limit exceeded",
                Some(retry_after_ms),
            );
            true
        }
        Decision::Abuse => {
            call.client.rate_limited += 1;
            call.app.metrics.rate_limit_hits += 1;
            call.out
                .close_with(close_frame(close_code::POLICY, "rate limit abuse"));
            true
        }
    }
}

/// Pings and pongs count against the message rate limit too. One over the limit is
/// ignored without a reply (an error per ping would be a flood of its own); a client
/// hammering at many times the limit is closed like any other.
fn control_limited(len: usize, call: &mut Call<'_>) -> bool {
    let now = call.app.mono_ms();
    match call.client.limiter.check(now, len as u64) {
        Decision::Allow => false,
        Decision::Limited { .. } => {
            call.client.rate_limited += 1;
            call.app.metrics.rate_limit_hits += 1;
            true
        }
        Decision::Abuse => {
            call.client.rate_limited += 1;
            call.app.metrics.rate_limit_hits += 1;
            call.out
                .close_with(close_frame(close_code::POLICY, "rate limit abuse"));
            true
        }
    }
}

/// The top-level `requestId` of a message, found without parsing the rest of it.
fn request_id_of(buf: &[u8]) -> Option<RequestId> {
    crate::protocol::client::probe_request_id(buf)
}

fn on_text(buf: &mut [u8], call: &mut Call<'_>) {
    call.app.metrics.messages_received += 1;
    call.client.messages_in += 1;
    if rate_limited(buf, call) {
        return;
    }
    let mut buffers = std::mem::take(&mut call.app.buffers);
    // A frame that failed on a number simd-json cannot hold is parsed again with such
    // numbers masked; ingest keeps or names them (see `JsonBuffers::mask_numbers`).
    let parsed = match parse_client_message(&mut *buf, &mut buffers) {
        Err(e) => {
            if buffers.mask_numbers(buf) {
                // Only a publish's events keep such numbers (as sent); any other field
                // would read the placeholder, so other messages are refused.
                match parse_client_message(buf, &mut buffers) {
                    Ok(p) if !matches!(p.msg, ClientMessage::Publish { .. }) => {
                        Err(crate::protocol::ProtocolError::new(
                            ErrorCode::InvalidMessage,
                            "number out of range (beyond 64-bit integers or floats)",
                        ))
                    }
                    parsed => parsed,
                }
            } else {
                Err(e)
            }
        }
        parsed => parsed,
    };
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            call.app.buffers = buffers;
            call.app.scratch.clear();
            enc::encode_protocol_error(&mut call.app.scratch, &e, call.app.now_ms);
            call.send_scratch();
            return;
        }
    };
    call.rid = parsed.request_id;
    let authed = call.client.principal.is_some();
    match parsed.msg {
        ClientMessage::Auth { token } => auth::on_auth(&token, call),
        _ if !authed => call.error(
            ErrorCode::NotAuthenticated,
            "authenticate first: send {\"type\":\"auth\",\"token\":…}",
        ),
        ClientMessage::SubscribeSession {
            session_id,
            since_seq,
            filter,
        } => subscribe::on_subscribe(&session_id, since_seq, filter.as_deref(), call),
        ClientMessage::FilterEvents {
            condition,
            session_id,
        } => subscribe::on_filter_events(&condition, session_id.as_deref(), call),
        ClientMessage::UnsubscribeSession { session_id } => {
            subscribe::on_unsubscribe(&session_id, call)
        }
        ClientMessage::FilterAgents { agent_ids } => subscribe::on_filter_agents(&agent_ids, call),
        ClientMessage::Publish { events } => {
            publish::on_publish(&events, call);
            buffers.recycle(events);
        }
        ClientMessage::Heartbeat => {
            let metrics = client_metrics(call.client, call.out);
            call.app.scratch.clear();
            enc::encode_heartbeat_response(
                &mut call.app.scratch,
                call.app.now_ms,
                &metrics,
                call.rid.as_ref(),
            );
            call.send_scratch();
        }
        ClientMessage::RequestHistory {
            start,
            end,
            session_id,
            limit,
            offset,
            filter,
        } => history::on_request_history(
            (start, end),
            session_id.as_deref(),
            limit,
            offset,
            filter.as_deref(),
            call,
        ),
        ClientMessage::TimeTravel {
            timestamp,
            session_id,
        } => history::on_time_travel(timestamp, session_id.as_deref(), call),
        ClientMessage::SetBreakpoint {
            trace_id,
            condition,
            session_id,
        } => breakpoints::on_set(&trace_id, condition.as_deref(), session_id.as_deref(), call),
        ClientMessage::RemoveBreakpoint { trace_id } => breakpoints::on_remove(&trace_id, call),
        ClientMessage::ListBreakpoints => breakpoints::on_list(call),
        ClientMessage::Resume { session_id } => {
            breakpoints::on_resume(session_id.as_deref(), call)
        }
        ClientMessage::Step { session_id } => breakpoints::on_step(session_id.as_deref(), call),
    }
    call.app.buffers = buffers;
}

/// The session a history / time-travel request is about, checked against the scope.
fn pick_session(named: Option<&str>, call: &mut Call<'_>) -> Option<Arc<str>> {
    let only = match call.client.subs.len() {
        1 => call.client.subs.iter().next().cloned(),
        _ => None,
    };
    let session: Arc<str> = match (named, only, call.client.subs.len()) {
        (Some(s), _, _) => Arc::from(s),
        (None, Some(one), _) => one,
        (None, None, 0) => {
            call.error(
                ErrorCode::NoSession,
                "no sessionId given and no session subscribed",
            );
            return None;
        }
        (None, _, _) => {
            call.error(
                ErrorCode::InvalidRequest,
                "field \"sessionId\": required when several sessions are subscribed",
            );
            return None;
        }
    };
    may_read(&session, call).then_some(session)
}

/// Whether the client may read `session`; answers `forbidden` when not.
fn may_read(session: &str, call: &mut Call<'_>) -> bool {
    if call
        .client
        .principal
        .as_ref()
        .is_some_and(|p| p.can_read(session))
    {
        return true;
    }
    call.error(
        ErrorCode::Forbidden,
        "this credential may not read that session",
    );
    false
}

/// The client's own metrics, as `heartbeat` and `heartbeat_response` report them.
pub fn client_metrics(c: &Client, out: &Out) -> enc::ClientMetrics {
    enc::ClientMetrics {
        queue_bytes: out.queue.len_bytes() as u64,
        queue_frames: out.queue.len_frames() as u64,
        dropped: out.queue.dropped_events(),
        latency_ms: c.latency_ms,
        rate_limited: c.rate_limited,
        messages_in: c.messages_in,
        messages_out: c.messages_out,
    }
}

/// A server notice (`system_event`) to one client, e.g. `shutdown`.
pub fn system_event(app: &mut App, client: &mut Client, out: &mut Out, event: &str, data: &[u8]) {
    app.scratch.clear();
    enc::encode_system_event(&mut app.scratch, event, data, app.now_ms);
    let frame = app.encoder.control(client.deflate, &app.scratch);
    client.messages_out += 1;
    app.metrics.messages_sent += 1;
    out.control(frame);
}

/// A frame-layer violation: the peer is closed with the error's code (RFC 6455). A message
/// over `max_message_size` is first answered with `message_too_large` naming the limit,
/// so a client learns which of its limits it crossed before the 1009 close.
pub fn on_frame_error(e: &crate::ws::WsError, call: &mut Call<'_>) {
    if e.close_code() == close_code::TOO_BIG {
        let limit = call.app.config.max_message_size;
        call.error(
            ErrorCode::MessageTooLarge,
            &format!("message exceeds max_message_size ({limit} bytes)"),
        );
    }
    call.out.close_with(close_frame(e.close_code(), e.reason));
}
