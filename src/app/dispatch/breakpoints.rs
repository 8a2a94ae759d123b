//! Breakpoints (SPEC §7): `set_breakpoint`, `remove_breakpoint`, `list_breakpoints`,
//! `resume`, `step`, and what happens when one hits.
//!
//! A subscription's breakpoints ride with it in the hub as a [`crate::hub::Watch`]. When
//! a live event hits one, the hub hands the member's events before it to
//! [`hit_frames`] (delivered as an ordinary batch), the hitting event goes out in
//! `breakpoint_hit` only, and the member leaves the session's route: the subscription
//! is paused at that seq and holds nothing but the seq ([`Client::paused`]). `resume`
//! and `step` start a catch-up from the log ([`ResumeJob`], the `sinceSeq` machinery)
//! that evaluates the breakpoints on the way and rejoins the live stream at the end of
//! the log, with no gap and no duplicate. A `step` at the end of the log arms the hub:
//! the next admitted event is delivered alone and pauses the subscription again.
//!
//! The pause is recorded twice on purpose: in the delivery the shell applies
//! ([`on_hit`]) and in [`App::pending_hits`] for messages the same client sends in the
//! same turn before the shell gets there; a note's id makes the second one a no-op.

use super::{may_read, Call};
use crate::app::jobs::{ResumeJob, ResumeMode};
use crate::app::{Client, Delivery, Job};
use crate::condition::{Condition, ConditionError};
use crate::hub::encode::BatchEncoder;
use crate::hub::Hit;
use crate::metrics::Metrics;
use crate::protocol::server::{self as enc, BreakpointItem};
use crate::protocol::ErrorCode;
use crate::app::queue::EventSpan;
use std::sync::Arc;

/// Breakpoints one connection may hold.
pub const MAX_BREAKPOINTS: usize = 64;

/// A pause to record on a client: which subscription, at which seq, and the breakpoint
/// that caused it (`None`: an armed step reached its event).
#[derive(Debug, Clone)]
pub struct HitNote {
    pub id: u64,
    pub session: Arc<str>,
    pub seq: u64,
    pub breakpoint: Option<Arc<str>>,
}

/// Answers a condition that did not compile.
pub fn condition_error(e: &ConditionError, call: &mut Call<'_>) {
    call.app.scratch.clear();
    enc::encode_condition_error(
        &mut call.app.scratch,
        &e.message,
        e.position,
        call.app.now_ms,
        call.rid.as_ref(),
    );
    call.send_scratch();
}

/// Compiles `src` (interned, so equal conditions share one `Arc`); `Ok(None)` for an
/// empty or blank source.
pub fn compile(src: &str, call: &mut Call<'_>) -> Result<Option<Arc<Condition>>, ()> {
    if src.trim().is_empty() {
        return Ok(None);
    }
    match Condition::compile(src) {
        Ok(c) => Ok(Some(call.app.intern_condition(c))),
        Err(e) => {
            condition_error(&e, call);
            Err(())
        }
    }
}

/// Closes the hub's open batches (routed under the settings they were published with)
/// and records any pause that caused for this client at once, so what follows in the
/// same message sees it.
pub fn flush(call: &mut Call<'_>) {
    call.app.flush_hub();
    apply_pending(call);
}

/// Puts the subscription to `session` back in the hub with its current audience and
/// breakpoints — unless it is catching up or paused (it rejoins by itself then).
pub fn rejoin(session: &Arc<str>, call: &mut Call<'_>) {
    let c = &*call.client;
    if c.resuming(session) || c.paused.contains_key(session) || !c.subs.contains(session) {
        return;
    }
    let audience = c.audience_for(session);
    let watch = c.watch_for(session, c.armed.contains(session));
    call.app
        .hub
        .subscribe_watching(session, call.id, audience, watch);
}

fn rejoin_all(call: &mut Call<'_>) {
    let subs: Vec<Arc<str>> = call.client.subs.iter().cloned().collect();
    for s in &subs {
        rejoin(s, call);
    }
}

pub fn on_set(trace_id: &str, condition: Option<&str>, session: Option<&str>, call: &mut Call<'_>) {
    apply_pending(call);
    if let Some(s) = session {
        if !may_read(s, call) {
            return;
        }
    }
    if trace_id.is_empty() || trace_id.len() > 256 {
        call.error(ErrorCode::InvalidRequest, "field \"traceId\": must be 1..256 bytes");
        return;
    }
    let exists = call.client.breakpoints.iter().any(|b| &*b.name == trace_id);
    if !exists && call.client.breakpoints.len() >= MAX_BREAKPOINTS {
        call.error(
            ErrorCode::InvalidRequest,
            &format!(
                "this connection already has {MAX_BREAKPOINTS} breakpoints (the limit): \
                 remove one first"
            ),
        );
        return;
    }
    let Ok(cond) = compile(condition.unwrap_or("true"), call) else {
        return;
    };
    let cond = match cond {
        Some(c) => c,
        None => match Condition::compile("true") {
            Ok(c) => call.app.intern_condition(c),
            Err(_) => return,
        },
    };
    let session = session.map(|s| call.app.intern_session(s));
    let bp = crate::app::client::Breakpoint {
        name: Arc::from(trace_id),
        condition: cond,
        session,
        hits: 0,
    };
    // Replacing keeps the breakpoint's place (and so its precedence); hits restart.
    match call.client.breakpoints.iter_mut().find(|b| &*b.name == trace_id) {
        Some(old) => *old = bp,
        None => call.client.breakpoints.push(bp),
    }
    // Events already routed this turn were judged by the old set: close the batch
    // first, then route with the new one.
    flush(call);
    rejoin_all(call);
    let b = call
        .client
        .breakpoints
        .iter()
        .find(|b| &*b.name == trace_id)
        .cloned();
    if let Some(b) = b {
        call.app.scratch.clear();
        enc::encode_breakpoint_set(
            &mut call.app.scratch,
            &b.name,
            b.condition.canonical(),
            b.session.as_deref(),
            call.rid.as_ref(),
        );
        call.send_scratch();
    }
}

pub fn on_remove(trace_id: &str, call: &mut Call<'_>) {
    apply_pending(call);
    let before = call.client.breakpoints.len();
    call.client.breakpoints.retain(|b| &*b.name != trace_id);
    if call.client.breakpoints.len() == before {
        call.error(
            ErrorCode::InvalidRequest,
            &format!("no breakpoint named {trace_id:?}"),
        );
        return;
    }
    flush(call);
    rejoin_all(call);
    call.app.scratch.clear();
    enc::encode_breakpoint_removed(&mut call.app.scratch, trace_id, call.rid.as_ref());
    call.send_scratch();
}

pub fn on_list(call: &mut Call<'_>) {
    apply_pending(call);
    call.app.scratch.clear();
    let items = call.client.breakpoints.iter().map(|b| BreakpointItem {
        trace_id: &b.name,
        condition: b.condition.canonical(),
        session: b.session.as_deref(),
        hits: b.hits,
    });
    enc::encode_breakpoints(&mut call.app.scratch, items, call.rid.as_ref());
    call.send_scratch();
}

/// The paused subscription `resume`/`step` is about: the named one, or the only one.
fn pick_paused(named: Option<&str>, verb: &str, call: &mut Call<'_>) -> Option<Arc<str>> {
    let c = &*call.client;
    let is_paused = |s: &str| c.paused.contains_key(s) || c.armed.contains(s);
    if let Some(s) = named {
        if let Some(found) = c.subs.get(s).filter(|s| is_paused(s)) {
            return Some(found.clone());
        }
        let msg = format!("nothing to {verb}: the subscription to {s:?} is not paused");
        call.error(ErrorCode::InvalidRequest, &msg);
        return None;
    }
    let mut paused: Vec<Arc<str>> = c
        .paused
        .keys()
        .chain(c.armed.iter())
        .cloned()
        .collect();
    paused.sort();
    paused.dedup();
    match paused.len() {
        1 => paused.pop(),
        0 => {
            call.error(
                ErrorCode::InvalidRequest,
                &format!("nothing to {verb}: no subscription is paused"),
            );
            None
        }
        n => {
            let msg = format!(
                "field \"sessionId\": required to {verb} when {n} subscriptions are paused"
            );
            call.error(ErrorCode::InvalidRequest, &msg);
            None
        }
    }
}

pub fn on_resume(session: Option<&str>, call: &mut Call<'_>) {
    go(session, ResumeMode::Resume, call);
}

pub fn on_step(session: Option<&str>, call: &mut Call<'_>) {
    go(session, ResumeMode::Step, call);
}

fn go(session: Option<&str>, mode: ResumeMode, call: &mut Call<'_>) {
    apply_pending(call);
    let verb = if mode == ResumeMode::Step { "step" } else { "resume" };
    let Some(session) = pick_paused(session, verb, call) else {
        return;
    };
    if call.client.armed.contains(&session) {
        // Paused at the end of the log, waiting for the next event: `resume` disarms
        // the step; another `step` changes nothing.
        if mode == ResumeMode::Resume {
            call.client.armed.remove(&session);
            flush(call);
            rejoin(&session, call);
        }
        return;
    }
    let Some(after) = call.client.paused.remove(&session) else {
        return;
    };
    call.client.jobs.push_back(Job::Resume(ResumeJob {
        session,
        after,
        chunk_size: call.app.config.history_chunk_size.max(1),
        mode,
    }));
    call.app.jobs_pending(call.id);
}

/// The frames a hit in the hub sends: the member's events before the hitting one (an
/// ordinary, droppable batch), then `breakpoint_hit` — or, for an armed step, the
/// event alone as a batch — carrying the pause for the shell to record.
pub fn hit_frames(
    h: &Hit<'_>,
    encoder: &mut BatchEncoder,
    metrics: &mut Metrics,
    now_ms: i64,
) -> (Option<Delivery>, Delivery) {
    let before = h.before.first().zip(h.before.last()).map(|(first, last)| {
        metrics.frames_encoded += 1;
        Delivery {
            conn: h.conn,
            frame: encoder.encode(h.audience, h.session, h.before, now_ms),
            span: EventSpan {
                session: h.session.clone(),
                first_seq: first.seq,
                last_seq: last.seq,
                count: h.before.len() as u64,
            },
            hit: None,
        }
    });
    let name = h.breakpoint.and_then(|b| h.watch.names.get(b)).cloned();
    let frame = match &name {
        Some(name) => {
            metrics.breakpoint_hits += 1;
            let mut buf = Vec::with_capacity(h.event.json.len() + 96);
            enc::encode_breakpoint_hit(&mut buf, name, h.event);
            encoder.control(h.audience.deflate, &buf)
        }
        None => {
            metrics.frames_encoded += 1;
            encoder.encode(h.audience, h.session, &[h.event], now_ms)
        }
    };
    let note = HitNote {
        id: next_note_id(),
        session: h.session.clone(),
        seq: h.event.seq,
        breakpoint: name,
    };
    let hit = Delivery {
        conn: h.conn,
        frame,
        span: EventSpan {
            session: h.session.clone(),
            first_seq: h.event.seq,
            last_seq: h.event.seq,
            count: 1,
        },
        hit: Some(note),
    };
    (before, hit)
}

fn next_note_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Records a pause on the client (idempotent: a note is applied once).
pub fn on_hit(client: &mut Client, note: &HitNote) {
    if note.id <= client.last_hit_note {
        return;
    }
    client.last_hit_note = note.id;
    if !client.subs.contains(&note.session) {
        return;
    }
    client.armed.remove(&note.session);
    client.paused.insert(note.session.clone(), note.seq);
    if let Some(name) = &note.breakpoint {
        if let Some(b) = client.breakpoints.iter_mut().find(|b| b.name == *name) {
            b.hits += 1;
        }
    }
}

/// Applies the pauses the hub recorded for this client this turn, before its message
/// is handled (the shell applies them too, later; see the module docs).
pub fn apply_pending(call: &mut Call<'_>) {
    let notes = call.app.pending_hits_for(call.id);
    for n in &notes {
        on_hit(call.client, n);
    }
}
