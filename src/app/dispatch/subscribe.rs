//! `subscribe_session`, `unsubscribe_session` and `filter_agents`: who receives what live.
//!
//! A plain subscribe answers `session_info` and `initial_traces` and joins the hub at
//! once; a `sinceSeq` subscribe stays out of the hub while a catch-up job streams what
//! is stored, and joins the live stream in the turn the job reaches the end of the log.

use super::{may_read, Call, RECENT};
use crate::app::jobs::ResumeJob;
use crate::app::Job;
use crate::hub::agent_filter;
use crate::protocol::server as enc;
use crate::protocol::ErrorCode;
use crate::store::SessionSummary;
use std::borrow::Cow;
use std::sync::Arc;

pub fn on_subscribe(session_id: &str, since_seq: Option<u64>, call: &mut Call<'_>) {
    if !may_read(session_id, call) {
        return;
    }
    if session_id.is_empty() || session_id.len() > 256 {
        call.error(
            ErrorCode::InvalidRequest,
            "field \"sessionId\": must be 1..256 bytes",
        );
        return;
    }
    let limit = call.app.config.max_subscriptions_per_connection;
    if call.client.subs.len() >= limit && !call.client.subs.contains(session_id) {
        call.error(
            ErrorCode::InvalidRequest,
            &format!(
                "this connection already subscribes to {limit} sessions \
                 (max_subscriptions_per_connection): unsubscribe from one first"
            ),
        );
        return;
    }
    // Everything stored so far goes out to existing subscribers first, so the store and
    // the hub agree: what the store returns below will not also arrive live. A catch-up
    // relies on the same: events still pending in the hub are already in the store.
    call.app.flush_hub();
    let session: Arc<str> = call.app.intern_session(session_id);
    call.client.subs.insert(session.clone());
    let summary = call
        .app
        .store
        .session(session_id)
        .unwrap_or_else(|| SessionSummary {
            id: session.clone(),
            ..Default::default()
        });
    call.app.scratch.clear();
    enc::encode_session_info(&mut call.app.scratch, &summary, call.rid.as_ref());
    call.send_scratch();
    match since_seq {
        None => {
            let recent = call.app.store.recent(session_id, RECENT);
            let audience = call.client.audience();
            let filtered: Vec<_> = recent
                .iter()
                .map(|e| &**e)
                .filter(|e| audience.admits(e))
                .collect();
            call.app.scratch.clear();
            enc::encode_initial_traces(
                &mut call.app.scratch,
                session_id,
                filtered,
                call.rid.as_ref(),
            );
            call.send_scratch();
            call.app.hub.subscribe(&session, call.id, audience);
        }
        Some(since) => {
            // Not in the hub until caught up: the catch-up job joins the live stream in
            // the turn it reaches the end of the log (see `history::step_job`).
            call.app.hub.unsubscribe(session_id, call.id);
            call.client
                .jobs
                .retain(|j| !matches!(j, Job::Resume(r) if r.session == session));
            // What retention deleted after `since` can never be caught up: say so first,
            // so the client knows the run that follows starts later than it asked.
            if let Some(d) = call.app.store.deleted_after(session_id, since) {
                call.app.scratch.clear();
                enc::encode_events_dropped(
                    &mut call.app.scratch,
                    session_id,
                    d.count,
                    d.from_seq,
                    d.to_seq,
                    Some("retention"),
                );
                call.send_scratch();
            }
            call.client.jobs.push_back(Job::Resume(ResumeJob {
                session,
                after: since,
                chunk_size: call.app.config.history_chunk_size.max(1),
            }));
            call.app.jobs_pending(call.id);
        }
    }
}

pub fn on_unsubscribe(session_id: &str, call: &mut Call<'_>) {
    // Unsubscribing from a session never subscribed is harmless and still answered.
    call.app.hub.unsubscribe(session_id, call.id);
    call.client.subs.remove(session_id);
    call.client
        .jobs
        .retain(|j| !matches!(j, Job::Resume(r) if *r.session == *session_id));
    call.app.scratch.clear();
    enc::encode_unsubscribed(&mut call.app.scratch, session_id, call.rid.as_ref());
    call.send_scratch();
}

pub fn on_filter_agents(agent_ids: &[Cow<'_, str>], call: &mut Call<'_>) {
    call.client.agents = agent_filter(agent_ids);
    let audience = call.client.audience();
    for s in &call.client.subs {
        if !call.client.resuming(s) {
            call.app.hub.subscribe(s, call.id, audience.clone());
        }
    }
    call.app.scratch.clear();
    enc::encode_filter_applied(&mut call.app.scratch, agent_ids, call.rid.as_ref());
    call.send_scratch();
}
