//! The lazy time-travel fold over the log: checkpoints are built by the first `state_at`
//! (or `prepare_state`) of a session, not at append or recovery, because probing the JSON
//! of task and state events was the dominant cost of both.
//!
//! The fold streams entries straight from the record bytes in large runs and keeps none.

use super::{corrupt, LogStore, Session, StoreError};
use crate::event::EventRef;
use crate::store::record::{self, EntryRef};
use crate::store::TimeTravel;
use crate::timetravel::{Checkpoints, EventFacts, FoldScratch, SessionState};
use std::cell::RefMut;
use std::os::unix::fs::FileExt;

/// The time-travel fold reads larger runs: it streams many events and keeps none.
const FOLD_RUN: u64 = 4 << 20;

pub(super) fn facts<'a>(e: &EntryRef<'a>) -> EventFacts<'a> {
    EventFacts {
        seq: e.seq,
        timestamp: e.ts,
        agent: e.agent,
        kind: e.kind,
        json: e.json,
    }
}

impl LogStore {
    /// Brings the lazy checkpoint fold forward towards `upper`, by at most `budget`
    /// events; true once it has reached `upper`. Nothing at or after `upper` can be at or
    /// before the instant asked for, so folding further would not help. Events the fold
    /// never saw may have been deleted meanwhile: then it starts afresh at the first
    /// retained event, as after a restart.
    pub(super) fn fold_up_to(
        &self,
        s: &Session,
        tt: &mut Checkpoints,
        upper: u64,
        budget: u64,
    ) -> Result<bool, StoreError> {
        if tt.live_pos() < s.idx.base() {
            tt.restart_at(s.idx.base());
        }
        let done = tt.live_pos();
        if done >= upper {
            return Ok(true);
        }
        let end = upper.min(done.saturating_add(budget));
        self.fold_range(s, done, end, |pos, e| tt.push(pos, &facts(e)))?;
        Ok(end >= upper)
    }

    /// Calls `f(position, entry)` for the entries at positions `[from, to)`, in order,
    /// reading them in large runs through one reused buffer; nothing is allocated per
    /// event.
    pub(super) fn fold_range(
        &self,
        s: &Session,
        from: u64,
        to: u64,
        mut f: impl FnMut(u64, &EntryRef<'_>),
    ) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        self.for_each_run(s.idx.locs(from, to), FOLD_RUN, |seg, run| {
            let (Some((_, a)), Some((_, b))) = (run.first(), run.last()) else {
                return Ok(());
            };
            let lo = u64::from(a.off);
            let hi = u64::from(b.off) + u64::from(b.len);
            buf.resize((hi - lo) as usize, 0);
            seg.file.read_exact_at(&mut buf, lo)?;
            let mut at = 0usize;
            for (pos, loc) in run {
                let len = loc.len as usize;
                let ent = buf.get(at..at + len).unwrap_or_default();
                let (e, _) = record::decode_entry(ent)
                    .map_err(|r| corrupt(&seg.path, u64::from(loc.off), r))?;
                f(*pos, &e);
                at += len;
            }
            Ok(())
        })
    }
}

/// The session's checkpoints, mutably, made on first use: reads fold them lazily behind
/// `&self`, and a session never time-travelled into holds none.
pub(super) fn borrow_checkpoints(
    s: &Session,
    every: u64,
) -> Result<RefMut<'_, Checkpoints>, StoreError> {
    let tt =
        s.tt.try_borrow_mut()
            .map_err(|_| StoreError::Io(std::io::Error::other("time travel re-entered")))?;
    Ok(RefMut::map(tt, |tt| {
        &mut **tt.get_or_insert_with(|| Box::new(Checkpoints::new(every)))
    }))
}

impl TimeTravel for LogStore {
    fn state_at(
        &self,
        session: &str,
        at: i64,
        traces: usize,
    ) -> Result<(SessionState, Vec<EventRef>), StoreError> {
        let (id, s) = self
            .sessions
            .get_key_value(session)
            .ok_or_else(|| StoreError::NotFound(format!("session {session}")))?;
        let upper = s.idx.upper_for_ts(at);
        let (mut state, from) = {
            let mut tt = borrow_checkpoints(s, self.checkpoint_every)?;
            self.fold_up_to(s, &mut tt, upper, u64::MAX)?;
            tt.start_for(at, s.idx.base())
        };
        let mut scratch = FoldScratch::default();
        self.fold_range(s, from, upper, |_, e| {
            if e.ts <= at {
                state.fold(&facts(e), &mut scratch)
            }
        })?;
        // The last `traces` events at or before `at`, walking blocks back from `upper`.
        let mut recent: Vec<EventRef> = Vec::new();
        for (lo, hi) in s.idx.blocks_le_rev(at, upper) {
            if recent.len() >= traces {
                break;
            }
            let mut v = self.range(id, s, lo, hi)?;
            v.retain(|e| e.timestamp <= at);
            let keep = v.len().min(traces - recent.len());
            let mut part: Vec<EventRef> = v.split_off(v.len() - keep);
            part.append(&mut recent);
            recent = part;
        }
        Ok((state, recent))
    }

    fn prepare_state(&self, session: &str, at: i64, budget: usize) -> Result<bool, StoreError> {
        // An unknown session is answered (NotFound) by `state_at` itself.
        let Some(s) = self.sessions.get(session) else {
            return Ok(true);
        };
        let mut tt = borrow_checkpoints(s, self.checkpoint_every)?;
        self.fold_up_to(s, &mut tt, s.idx.upper_for_ts(at), budget.max(1) as u64)
    }
}
