//! `subscribe_session`, `unsubscribe_session`, `filter_agents` and `filter_events`: who
//! receives what live.
//!
//! A plain subscribe answers `session_info` and `initial_traces` and joins the hub at
//! once; a `sinceSeq` subscribe stays out of the hub while a catch-up job streams what
//! is stored, and joins the live stream in the turn the job reaches the end of the log.
//! A subscription's condition (its own `filter`, else the connection's `filter_events`)
//! is part of its hub audience, and applies to `initial_traces` and catch-up alike.

use super::breakpoints::{compile, rejoin};
use super::{may_read, Call, RECENT};
use crate::app::jobs::{ResumeJob, ResumeMode};
use crate::app::Job;
use crate::hub::agent_filter;
use crate::protocol::server as enc;
use crate::protocol::ErrorCode;
use crate::store::SessionSummary;
use std::borrow::Cow;
use std::sync::Arc;

/// With a filter, `initial_traces` holds the matching events among this many of the
/// session's most recent ones (so the answer stays one bounded read).
pub const RECENT_SCAN: usize = 1000;

pub fn on_subscribe(
    session_id: &str,
    since_seq: Option<u64>,
    filter: Option<&str>,
    call: &mut Call<'_>,
) {
    super::breakpoints::apply_pending(call);
    if !may_read(session_id, call) {
        return;
    }
    let Ok(filter) = compile(filter.unwrap_or(""), call) else {
        return;
    };
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
    super::breakpoints::flush(call);
    let session: Arc<str> = call.app.intern_session(session_id);
    call.client.subs.insert(session.clone());
    // A subscribe starts the subscription afresh: not paused, its own filter (or none).
    call.client.paused.remove(session_id);
    call.client.armed.remove(session_id);
    match filter {
        Some(f) => {
            call.client.filters.insert(session.clone(), f);
        }
        None => {
            call.client.filters.remove(session_id);
        }
    }
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
            let audience = call.client.audience_for(session_id);
            let scan = if audience.filter.is_some() {
                RECENT_SCAN
            } else {
                RECENT
            };
            let recent = call.app.store.recent(session_id, scan);
            let mut filtered: Vec<_> = recent
                .iter()
                .map(|e| &**e)
                .filter(|e| audience.admits(e))
                .collect();
            let extra = filtered.len().saturating_sub(RECENT);
            filtered.drain(..extra);
            call.app.scratch.clear();
            enc::encode_initial_traces(
                &mut call.app.scratch,
                session_id,
                filtered,
                call.rid.as_ref(),
            );
            call.send_scratch();
            let watch = call.client.watch_for(&session, false);
            call.app
                .hub
                .subscribe_watching(&session, call.id, audience, watch);
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
                mode: ResumeMode::CatchUp,
            }));
            call.app.jobs_pending(call.id);
        }
    }
}

pub fn on_unsubscribe(session_id: &str, call: &mut Call<'_>) {
    // Unsubscribing from a session never subscribed is harmless and still answered.
    call.app.hub.unsubscribe(session_id, call.id);
    call.client.subs.remove(session_id);
    call.client.paused.remove(session_id);
    call.client.armed.remove(session_id);
    call.client.filters.remove(session_id);
    call.client
        .jobs
        .retain(|j| !matches!(j, Job::Resume(r) if *r.session == *session_id));
    call.app.scratch.clear();
    enc::encode_unsubscribed(&mut call.app.scratch, session_id, call.rid.as_ref());
    call.send_scratch();
}

pub fn on_filter_agents(agent_ids: &[Cow<'_, str>], call: &mut Call<'_>) {
    super::breakpoints::apply_pending(call);
    call.client.agents = agent_filter(agent_ids);
    let subs: Vec<Arc<str>> = call.client.subs.iter().cloned().collect();
    for s in &subs {
        rejoin(s, call);
    }
    call.app.scratch.clear();
    enc::encode_filter_applied(&mut call.app.scratch, agent_ids, call.rid.as_ref());
    call.send_scratch();
}

/// `filter_events {condition, sessionId?}`: a condition on one subscription, or (no
/// `sessionId`) on every subscription of the connection, present and future, replacing
/// their own; an empty condition clears it.
pub fn on_filter_events(condition: &str, session_id: Option<&str>, call: &mut Call<'_>) {
    super::breakpoints::apply_pending(call);
    if let Some(s) = session_id {
        if !call.client.subs.contains(s) {
            call.error(
                ErrorCode::NoSession,
                &format!("not subscribed to {s:?}: subscribe_session first"),
            );
            return;
        }
    }
    let Ok(filter) = compile(condition, call) else {
        return;
    };
    // What the hub holds was routed under the old filter: close it first.
    super::breakpoints::flush(call);
    let canonical: String = filter
        .as_ref()
        .map_or(String::new(), |f| f.canonical().to_string());
    match session_id.and_then(|s| call.client.subs.get(s).cloned()) {
        Some(s) => {
            match filter {
                Some(f) => call.client.filters.insert(s.clone(), f),
                None => call.client.filters.remove(&s),
            };
            rejoin(&s, call);
        }
        None => {
            call.client.filters.clear();
            call.client.filter_all = filter;
            let subs: Vec<Arc<str>> = call.client.subs.iter().cloned().collect();
            for s in &subs {
                rejoin(s, call);
            }
        }
    }
    call.app.scratch.clear();
    enc::encode_condition_applied(
        &mut call.app.scratch,
        &canonical,
        session_id,
        call.rid.as_ref(),
    );
    call.send_scratch();
}
