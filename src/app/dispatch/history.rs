//! `request_history` and `time_travel`, and the paced jobs that answer them.
//!
//! Both are answered by jobs (see [`crate::app::jobs`]) that the shell steps once per turn
//! while the client's queue is below its low water mark, so a long answer costs one chunk
//! of memory at a time; `sinceSeq` catch-up is stepped here too.

use super::{pick_session, Call, RECENT};
use crate::app::jobs::{refs, HistoryJob, ResumeJob, ResumeMode, TimeTravelJob, FOLD_BUDGET};
use crate::event::EventRef;
use crate::app::Job;
use crate::event::Event;
use crate::protocol::server as enc;
use crate::protocol::ErrorCode;

pub fn on_request_history(
    range: (i64, i64),
    session_id: Option<&str>,
    limit: Option<usize>,
    offset: usize,
    filter: Option<&str>,
    call: &mut Call<'_>,
) {
    let Some(session) = pick_session(session_id, call) else {
        return;
    };
    let Ok(filter) = super::breakpoints::compile(filter.unwrap_or(""), call) else {
        return;
    };
    let cap = call.app.config.historical_data_limit;
    let limit = limit.unwrap_or(cap).min(cap);
    let job = HistoryJob::new(
        &*call.app.store,
        call.rid.clone(),
        session,
        range,
        offset,
        limit,
        call.app.config.history_chunk_size,
        filter,
    );
    call.client.jobs.push_back(Job::History(job));
    call.app.jobs_pending(call.id);
}

pub fn on_time_travel(timestamp: i64, session_id: Option<&str>, call: &mut Call<'_>) {
    let Some(session) = pick_session(session_id, call) else {
        return;
    };
    // Answered by a job: a first time travel into a long session folds it over several
    // turns instead of stalling the loop.
    call.client.jobs.push_back(Job::TimeTravel(TimeTravelJob {
        request_id: call.rid.clone(),
        session,
        at: timestamp,
    }));
    call.app.jobs_pending(call.id);
}

/// One step of a paced job (one history chunk, one catch-up run). True when finished.
pub fn step_job(job: &mut Job, call: &mut Call<'_>) -> bool {
    match job {
        Job::History(h) => {
            call.rid = h.request_id.clone();
            call.app.scratch.clear();
            match h.step(&*call.app.store, &mut call.app.scratch) {
                Ok(Some(last)) => {
                    call.send_scratch();
                    last
                }
                Ok(None) => false,
                Err(e) => {
                    call.error(ErrorCode::HistoryError, &e.to_string());
                    true
                }
            }
        }
        Job::TimeTravel(t) => {
            call.rid = t.request_id.clone();
            let store = &call.app.store;
            let answer = match store.prepare_state(&t.session, t.at, FOLD_BUDGET) {
                Ok(false) => return false,
                Ok(true) => store.state_at(&t.session, t.at, RECENT),
                Err(e) => Err(e),
            };
            match answer {
                Ok((state, traces)) => {
                    let mut state_json = Vec::with_capacity(256);
                    state.to_json(&mut state_json);
                    call.app.scratch.clear();
                    enc::encode_time_travel_state(
                        &mut call.app.scratch,
                        &t.session,
                        t.at,
                        &state_json,
                        refs(&traces),
                        call.rid.as_ref(),
                    );
                    call.send_scratch();
                }
                Err(e) => call.error(ErrorCode::TimeTravelError, &e.to_string()),
            }
            true
        }
        Job::Resume(r) => match r.step(&*call.app.store) {
            Ok(Some(events)) => catch_up(r, &events, call),
            Ok(None) => {
                // Caught up. Events still pending in the hub (a batch window is open:
                // `batch_timeout_ms > 0`) are already in the store and were just sent, so
                // the open batches close now, before this client joins: it then receives
                // only what is stored after this instant — no gap, no repeat.
                if call.app.hub.pending() > 0 {
                    call.app.flush_hub();
                }
                let audience = call.client.audience_for(&r.session);
                let step = r.mode == ResumeMode::Step;
                if step {
                    call.client.armed.insert(r.session.clone());
                }
                let watch = call.client.watch_for(&r.session, step);
                call.app
                    .hub
                    .subscribe_watching(&r.session, call.id, audience, watch);
                true
            }
            Err(e) => {
                call.rid = None;
                call.error(ErrorCode::HistoryError, &e.to_string());
                true
            }
        },
    }
}

/// One run of stored events for a catching-up subscription: the ones its filters admit
/// go out as one batch, up to the first that hits a breakpoint (or, for a `step`, the
/// first one), where the subscription pauses. True when the job is done (paused).
fn catch_up(r: &mut ResumeJob, events: &[EventRef], call: &mut Call<'_>) -> bool {
    let audience = call.client.audience_for(&r.session);
    let chosen: Vec<&Event> = events
        .iter()
        .map(|e| &**e)
        .filter(|e| audience.admits(e))
        .collect();
    let mut stop: Option<(usize, Option<usize>)> = None;
    for (k, e) in chosen.iter().enumerate() {
        let hit = call
            .client
            .breakpoints
            .iter()
            .position(|b| {
                b.session.as_deref().is_none_or(|s| s == &*r.session)
                    && b.condition.matches(&e.json)
            });
        if hit.is_some() || r.mode == ResumeMode::Step {
            stop = Some((k, hit));
            break;
        }
    }
    let upto = stop.map_or(chosen.len(), |(k, _)| k);
    if upto > 0 {
        let frame = call
            .app
            .encoder
            .encode(&audience, &r.session, &chosen[..upto], call.app.now_ms);
        call.out.queue_catch_up(frame, upto as u64);
        call.client.messages_out += 1;
        call.app.metrics.messages_sent += 1;
    }
    let Some((k, hit)) = stop else {
        return false;
    };
    let event = chosen[k];
    call.rid = None;
    match hit {
        Some(b) => {
            let bp = &mut call.client.breakpoints[b];
            bp.hits += 1;
            call.app.metrics.breakpoint_hits += 1;
            let name = bp.name.clone();
            call.app.scratch.clear();
            enc::encode_breakpoint_hit(&mut call.app.scratch, &name, event);
            call.send_scratch();
        }
        None => {
            let frame = call
                .app
                .encoder
                .encode(&audience, &r.session, &[event], call.app.now_ms);
            call.out.queue_catch_up(frame, 1);
            call.client.messages_out += 1;
            call.app.metrics.messages_sent += 1;
        }
    }
    call.client.paused.insert(r.session.clone(), event.seq);
    true
}
