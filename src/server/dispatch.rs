//! What a WebSocket client's messages do: the protocol's effects on the hub and the store.
//!
//! Every function here gets the connection's protocol state ([`Client`]), its outbound
//! half ([`Out`]) and the loop's shared context ([`Ctx`]); none of them touch a socket.

use super::conn::{Client, Job, Out};
use super::history::{refs, HistoryJob, ResumeJob, TimeTravelJob, FOLD_BUDGET};
use super::Ctx;
use crate::event::Event;
use crate::hub::{agent_filter, ConnId};
use crate::limits::Decision;
use crate::protocol::server as enc;
use crate::protocol::{parse_client_message, ClientMessage, ErrorCode, RequestId};
use crate::store::SessionSummary;
use crate::ws::{close_code, close_frame, pong_frame, Message};
use std::sync::Arc;

/// Events in `initial_traces` and time-travel `traces`.
const RECENT: usize = 100;

/// Handles one inbound WebSocket message or control frame.
pub(crate) fn on_message(
    msg: Message<'_>,
    c: &mut Client,
    out: &mut Out,
    ctx: &mut Ctx,
    id: ConnId,
) {
    match msg {
        Message::Text(buf) => on_text(buf, c, out, ctx, id),
        Message::Binary(buf) => {
            ctx.metrics.messages_received += 1;
            let len = buf.len();
            if rate_limited(len, c, out, ctx, None) {
                return;
            }
            error(
                ctx,
                c,
                out,
                ErrorCode::InvalidMessage,
                "binary messages are not accepted: send JSON text",
                None,
                None,
            );
        }
        Message::Ping(payload) => out.control(pong_frame(payload)),
        Message::Pong(_) => {
            if let Some(sent) = c.ping_out.take() {
                c.latency_ms = Some(sent.elapsed().as_secs_f64() * 1000.0);
            }
        }
        Message::Close { code, .. } => {
            // Echo the peer's code (RFC 6455 §5.5.1), then close once it is written.
            let code = code.unwrap_or(close_code::NORMAL);
            out.control(close_frame(code, ""));
            out.closing = true;
            out.peer_closed = true;
        }
    }
}

/// Applies the rate limiter; true when the message must be dropped.
fn rate_limited(
    len: usize,
    c: &mut Client,
    out: &mut Out,
    ctx: &mut Ctx,
    rid: Option<&RequestId>,
) -> bool {
    match c.limiter.check(ctx.mono_ms(), len as u64) {
        Decision::Allow => false,
        Decision::Limited { retry_after_ms } => {
            c.rate_limited += 1;
            ctx.metrics.rate_limit_hits += 1;
            error(
                ctx,
                c,
                out,
                ErrorCode::RateLimitExceeded,
                "rate limit exceeded",
                Some(retry_after_ms),
                rid,
            );
            true
        }
        Decision::Abuse => {
            c.rate_limited += 1;
            ctx.metrics.rate_limit_hits += 1;
            out.control(close_frame(close_code::POLICY, "rate limit abuse"));
            out.closing = true;
            true
        }
    }
}

fn on_text(buf: &mut [u8], c: &mut Client, out: &mut Out, ctx: &mut Ctx, id: ConnId) {
    ctx.metrics.messages_received += 1;
    c.messages_in += 1;
    if rate_limited(buf.len(), c, out, ctx, None) {
        return;
    }
    let mut buffers = std::mem::take(&mut ctx.buffers);
    let parsed = parse_client_message(buf, &mut buffers);
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            ctx.buffers = buffers;
            ctx.scratch.clear();
            enc::encode_protocol_error(&mut ctx.scratch, &e, ctx.now_ms);
            send_scratch(ctx, c, out);
            return;
        }
    };
    let rid = parsed.request_id.as_ref();
    let authed = c.principal.is_some();
    match parsed.msg {
        ClientMessage::Auth { token } => on_auth(&token, c, out, ctx, id, rid),
        _ if !authed => error(
            ctx,
            c,
            out,
            ErrorCode::NotAuthenticated,
            "authenticate first: send {\"type\":\"auth\",\"token\":…}",
            None,
            rid,
        ),
        ClientMessage::SubscribeSession {
            session_id,
            since_seq,
        } => on_subscribe(&session_id, since_seq, c, out, ctx, id, rid),
        ClientMessage::UnsubscribeSession { session_id } => {
            // Unsubscribing from a session never subscribed is harmless and still answered.
            ctx.hub.unsubscribe(&session_id, id);
            c.subs.retain(|s| **s != *session_id);
            c.jobs
                .retain(|j| !matches!(j, Job::Resume(r) if *r.session == *session_id));
            ctx.scratch.clear();
            enc::encode_unsubscribed(&mut ctx.scratch, &session_id, rid);
            send_scratch(ctx, c, out);
        }
        ClientMessage::FilterAgents { agent_ids } => {
            c.agents = agent_filter(&agent_ids);
            let audience = ctx.audience(c);
            for s in &c.subs {
                if !c
                    .jobs
                    .iter()
                    .any(|j| matches!(j, Job::Resume(r) if r.session == *s))
                {
                    ctx.hub.subscribe(s, id, audience.clone());
                }
            }
            ctx.scratch.clear();
            enc::encode_filter_applied(&mut ctx.scratch, &agent_ids, rid);
            send_scratch(ctx, c, out);
        }
        ClientMessage::Publish { events } => {
            if !c.principal.as_ref().is_some_and(|p| p.can_publish()) {
                error(
                    ctx,
                    c,
                    out,
                    ErrorCode::Forbidden,
                    "this credential may not publish",
                    None,
                    rid,
                );
            } else {
                match ctx.ingest_values(&events) {
                    Ok(appended) => {
                        ctx.scratch.clear();
                        let (first, last) = (
                            appended.first_seq().unwrap_or(0),
                            appended.last_seq().unwrap_or(0),
                        );
                        enc::encode_publish_ack(
                            &mut ctx.scratch,
                            appended.events.len(),
                            first,
                            last,
                            rid,
                        );
                        let frame = ctx.encoder.control(c.deflate, &ctx.scratch);
                        ctx.ack_when_durable(super::Ack::Ws { conn: id, frame }, last);
                    }
                    Err(e) => {
                        let (code, msg) = e.to_protocol();
                        error(ctx, c, out, code, &msg, None, rid);
                    }
                }
            }
            buffers.recycle(events);
        }
        ClientMessage::Heartbeat => {
            let metrics = client_metrics(c, out);
            ctx.scratch.clear();
            enc::encode_heartbeat_response(&mut ctx.scratch, ctx.now_ms, &metrics, rid);
            send_scratch(ctx, c, out);
        }
        ClientMessage::RequestHistory {
            start,
            end,
            session_id,
            limit,
            offset,
        } => {
            let Some(session) = pick_session(session_id.as_deref(), c, out, ctx, rid) else {
                return;
            };
            let cap = ctx.config.historical_data_limit;
            let limit = limit.unwrap_or(cap).min(cap);
            let job = HistoryJob::new(
                &*ctx.store,
                rid.cloned(),
                session,
                (start, end),
                offset,
                limit,
                ctx.config.history_chunk_size,
            );
            c.jobs.push_back(Job::History(job));
            ctx.jobs_pending(id);
        }
        ClientMessage::TimeTravel {
            timestamp,
            session_id,
        } => {
            let Some(session) = pick_session(session_id.as_deref(), c, out, ctx, rid) else {
                return;
            };
            // Answered by a job: a first time travel into a long session folds it over
            // several turns instead of stalling the loop.
            c.jobs.push_back(Job::TimeTravel(TimeTravelJob {
                request_id: rid.cloned(),
                session,
                at: timestamp,
            }));
            ctx.jobs_pending(id);
        }
        ClientMessage::SetBreakpoint { .. }
        | ClientMessage::RemoveBreakpoint { .. }
        | ClientMessage::Resume
        | ClientMessage::Step => error(
            ctx,
            c,
            out,
            ErrorCode::InvalidRequest,
            "breakpoints are not available in this version of the server",
            None,
            rid,
        ),
    }
    ctx.buffers = buffers;
}

/// The session a history / time-travel request is about, checked against the scope.
fn pick_session(
    named: Option<&str>,
    c: &mut Client,
    out: &mut Out,
    ctx: &mut Ctx,
    rid: Option<&RequestId>,
) -> Option<Arc<str>> {
    let session: Arc<str> = match (named, c.subs.as_slice()) {
        (Some(s), _) => Arc::from(s),
        (None, [one]) => one.clone(),
        (None, []) => {
            error(
                ctx,
                c,
                out,
                ErrorCode::NoSession,
                "no sessionId given and no session subscribed",
                None,
                rid,
            );
            return None;
        }
        (None, _) => {
            error(
                ctx,
                c,
                out,
                ErrorCode::InvalidRequest,
                "field \"sessionId\": required when several sessions are subscribed",
                None,
                rid,
            );
            return None;
        }
    };
    may_read(&session, c, out, ctx, rid).then_some(session)
}

/// Whether the client may read `session`; answers `forbidden` when not.
fn may_read(
    session: &str,
    c: &mut Client,
    out: &mut Out,
    ctx: &mut Ctx,
    rid: Option<&RequestId>,
) -> bool {
    if c.principal.as_ref().is_some_and(|p| p.can_read(session)) {
        return true;
    }
    error(
        ctx,
        c,
        out,
        ErrorCode::Forbidden,
        "this credential may not read that session",
        None,
        rid,
    );
    false
}

/// One step of a paced job (one history chunk, one catch-up run). True when finished.
pub(crate) fn step_job(
    job: &mut Job,
    c: &mut Client,
    out: &mut Out,
    ctx: &mut Ctx,
    id: ConnId,
) -> bool {
    match job {
        Job::History(h) => {
            ctx.scratch.clear();
            match h.step(&*ctx.store, &mut ctx.scratch) {
                Ok(last) => {
                    send_scratch(ctx, c, out);
                    last
                }
                Err(e) => {
                    let rid = h.request_id.clone();
                    error(
                        ctx,
                        c,
                        out,
                        ErrorCode::HistoryError,
                        &e.to_string(),
                        None,
                        rid.as_ref(),
                    );
                    true
                }
            }
        }
        Job::TimeTravel(t) => {
            let rid = t.request_id.clone();
            let answer = match ctx.store.prepare_state(&t.session, t.at, FOLD_BUDGET) {
                Ok(false) => return false,
                Ok(true) => ctx.store.state_at(&t.session, t.at, RECENT),
                Err(e) => Err(e),
            };
            match answer {
                Ok((state, traces)) => {
                    let mut state_json = Vec::with_capacity(256);
                    state.to_json(&mut state_json);
                    ctx.scratch.clear();
                    enc::encode_time_travel_state(
                        &mut ctx.scratch,
                        &t.session,
                        t.at,
                        &state_json,
                        refs(&traces),
                        rid.as_ref(),
                    );
                    send_scratch(ctx, c, out);
                }
                Err(e) => error(
                    ctx,
                    c,
                    out,
                    ErrorCode::TimeTravelError,
                    &e.to_string(),
                    None,
                    rid.as_ref(),
                ),
            }
            true
        }
        Job::Resume(r) => match r.step(&*ctx.store) {
            Ok(Some(events)) => {
                let audience = ctx.audience(c);
                let chosen: Vec<&Event> = events
                    .iter()
                    .map(|e| &**e)
                    .filter(|e| audience.admits(e))
                    .collect();
                if !chosen.is_empty() {
                    let frame = ctx
                        .encoder
                        .encode(&audience, &r.session, &chosen, ctx.now_ms);
                    out.control(frame);
                    ctx.metrics.events_delivered += chosen.len() as u64;
                }
                false
            }
            Ok(None) => {
                // Caught up, and the hub has nothing pending (the loop runs jobs right
                // after the turn's flush): join live with no gap and no repeat.
                let audience = ctx.audience(c);
                ctx.hub.subscribe(&r.session, id, audience);
                true
            }
            Err(e) => {
                error(
                    ctx,
                    c,
                    out,
                    ErrorCode::HistoryError,
                    &e.to_string(),
                    None,
                    None,
                );
                true
            }
        },
    }
}

fn on_subscribe(
    session_id: &str,
    since_seq: Option<u64>,
    c: &mut Client,
    out: &mut Out,
    ctx: &mut Ctx,
    id: ConnId,
    rid: Option<&RequestId>,
) {
    if !may_read(session_id, c, out, ctx, rid) {
        return;
    }
    if session_id.is_empty() || session_id.len() > 256 {
        error(
            ctx,
            c,
            out,
            ErrorCode::InvalidRequest,
            "field \"sessionId\": must be 1..256 bytes",
            None,
            rid,
        );
        return;
    }
    // Everything stored so far goes out to existing subscribers first, so the store and
    // the hub agree: what `recent` returns below will not also arrive live.
    ctx.flush_hub();
    let session: Arc<str> = ctx.intern_session(session_id);
    if !c.subs.contains(&session) {
        c.subs.push(session.clone());
    }
    let summary = ctx
        .store
        .session(session_id)
        .unwrap_or_else(|| SessionSummary {
            id: session.clone(),
            ..Default::default()
        });
    ctx.scratch.clear();
    enc::encode_session_info(&mut ctx.scratch, &summary, rid);
    send_scratch(ctx, c, out);
    match since_seq {
        None => {
            let recent = ctx.store.recent(session_id, RECENT);
            let audience = ctx.audience(c);
            let filtered: Vec<_> = recent
                .iter()
                .map(|e| &**e)
                .filter(|e| audience.admits(e))
                .collect();
            ctx.scratch.clear();
            enc::encode_initial_traces(&mut ctx.scratch, session_id, filtered, rid);
            send_scratch(ctx, c, out);
            ctx.hub.subscribe(&session, id, audience);
        }
        Some(since) => {
            // Not in the hub until caught up: the catch-up job joins the live stream in
            // the turn it reaches the end of the log (see `Ctx::run_jobs`).
            ctx.hub.unsubscribe(session_id, id);
            c.jobs
                .retain(|j| !matches!(j, Job::Resume(r) if r.session == session));
            // What retention deleted after `since` can never be caught up: say so first,
            // so the client knows the run that follows starts later than it asked.
            if let Some(d) = ctx.store.deleted_after(session_id, since) {
                ctx.scratch.clear();
                enc::encode_events_dropped(
                    &mut ctx.scratch,
                    session_id,
                    d.count,
                    d.from_seq,
                    d.to_seq,
                    Some("retention"),
                );
                send_scratch(ctx, c, out);
            }
            c.jobs.push_back(Job::Resume(ResumeJob {
                session,
                after: since,
                chunk_size: ctx.config.history_chunk_size.max(1),
            }));
            ctx.jobs_pending(id);
        }
    }
}

fn on_auth(
    token: &str,
    c: &mut Client,
    out: &mut Out,
    ctx: &mut Ctx,
    id: ConnId,
    rid: Option<&RequestId>,
) {
    match ctx.auth.authenticate(token, crate::auth::unix_now_secs()) {
        Ok(p) => {
            let perms: Vec<&str> = p.permissions.names().collect();
            ctx.scratch.clear();
            enc::encode_auth_response(
                &mut ctx.scratch,
                &enc::AuthOutcome {
                    authenticated: true,
                    subject: p.subject.as_deref(),
                    permissions: Some(&perms),
                    expires_at: p.expires_at.map(|s| s.saturating_mul(1000)),
                    message: None,
                },
                rid,
            );
            send_scratch(ctx, c, out);
            if let Some(exp) = p.expires_at {
                ctx.schedule_expiry(id, exp);
            }
            // A refreshed credential may read less than the one it replaces: subscriptions
            // it does not allow end here, each one announced, and so do pending history
            // and catch-up jobs for sessions it may not read.
            c.jobs.retain(|j| match j {
                Job::History(h) => p.can_read(&h.session),
                Job::Resume(r) => p.can_read(&r.session),
                Job::TimeTravel(t) => p.can_read(&t.session),
            });
            let dropped: Vec<Arc<str>> =
                c.subs.iter().filter(|s| !p.can_read(s)).cloned().collect();
            for s in &dropped {
                ctx.hub.unsubscribe(s, id);
                c.subs.retain(|x| x != s);
                ctx.scratch.clear();
                enc::encode_unsubscribed(&mut ctx.scratch, s, rid);
                send_scratch(ctx, c, out);
            }
            c.principal = Some(p);
        }
        Err(e) => {
            ctx.metrics.auth_failures += 1;
            tracing::info!(
                conn = id.key,
                reason = e.code(),
                "in-band authentication failed"
            );
            ctx.scratch.clear();
            enc::encode_auth_response(
                &mut ctx.scratch,
                &enc::AuthOutcome {
                    authenticated: false,
                    message: Some(e.message()),
                    ..Default::default()
                },
                rid,
            );
            send_scratch(ctx, c, out);
            out.control(close_frame(close_code::POLICY, e.message()));
            out.closing = true;
        }
    }
}

/// The client's own metrics, as `heartbeat` and `heartbeat_response` report them.
pub(crate) fn client_metrics(c: &Client, out: &Out) -> enc::ClientMetrics {
    enc::ClientMetrics {
        queue_bytes: out.queue.len_bytes() as u64,
        queue_frames: out.queue.len_frames() as u64,
        dropped: out.queue.dropped_events(),
        latency_ms: c.latency_ms,
        rate_limited: c.rate_limited,
        messages_in: c.messages_in,
        messages_out: c.frames_out,
    }
}

/// Queues `ctx.scratch` (one serialized control message) to the client.
pub(crate) fn send_scratch(ctx: &mut Ctx, c: &mut Client, out: &mut Out) {
    let frame = ctx.encoder.control(c.deflate, &ctx.scratch);
    c.frames_out += 1;
    ctx.metrics.messages_sent += 1;
    out.control(frame);
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn error(
    ctx: &mut Ctx,
    c: &mut Client,
    out: &mut Out,
    code: ErrorCode,
    message: &str,
    retry_after_ms: Option<u64>,
    rid: Option<&RequestId>,
) {
    ctx.scratch.clear();
    enc::encode_error(
        &mut ctx.scratch,
        code,
        message,
        retry_after_ms,
        ctx.now_ms,
        rid,
    );
    send_scratch(ctx, c, out);
}
