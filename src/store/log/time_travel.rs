//! The lazy time-travel fold over the log: checkpoints are built by the first `state_at`
//! (or `prepare_state`) of a session, not at append or recovery, because probing the JSON
//! of task and state events was the dominant cost of both.
//!
//! The fold streams entries straight from the record bytes in large runs and keeps none.

use super::saved::{self, Saved};
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
        self.tt_dirty.set(true);
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

impl LogStore {
    /// The position just after the saved snapshot `i`'s last event, if the log still
    /// holds that very event (same seq, in this session): only then may the snapshot
    /// stand for the events before it. A read error makes it unusable, not an error.
    fn saved_pos(&self, s: &Session, sv: &Saved, i: usize) -> Option<u64> {
        let snap = sv.snaps.get(i)?;
        let (first, last) = (s.idx.first_seq()?, s.idx.last_seq()?);
        if snap.seq < first || snap.seq > last {
            return None;
        }
        let p = self.pos_after_seq(s, snap.seq.saturating_sub(1)).ok()?;
        let mut hit = false;
        self.fold_range(s, p, p + 1, |_, e| hit = e.seq == snap.seq)
            .ok()?;
        hit.then_some(p + 1)
    }

    /// The latest saved snapshot usable for "state at `at`": its events all have
    /// `timestamp <= at` and the log still holds its last one. `(index, position)`.
    fn saved_for(&self, id: &str, s: &Session, at: i64) -> Option<(usize, u64)> {
        let sv = self.saved.get(id)?;
        let mut i = sv.latest_le(at)?;
        // A snapshot past a torn tail is not held; an earlier one may be. Give up after
        // a few: each look costs a block read.
        for _ in 0..4 {
            if let Some(p) = self.saved_pos(s, sv, i) {
                return Some((i, p));
            }
            i = i.checked_sub(1)?;
        }
        None
    }

    /// A fold not started yet continues from the newest usable saved snapshot instead of
    /// the session's first event.
    fn seed(&self, id: &str, s: &Session, tt: &mut Checkpoints) {
        if tt.live().0 != 0 || !tt.is_empty() {
            return;
        }
        let Some(sv) = self.saved.get(id) else {
            return;
        };
        for i in (0..sv.snaps.len()).rev().take(4) {
            let (Some(pos), Some(snap)) = (self.saved_pos(s, sv, i), sv.snaps.get(i)) else {
                continue;
            };
            if let Some(state) = sv.state(i) {
                tt.resume_from(pos, snap.max_ts, state);
                return;
            }
        }
    }

    /// Saves every session's checkpoints (`saved.rs`) when a fold advanced since the
    /// last save: at `sync` (shutdown) and close. A failure is logged; the file is a
    /// cache, and the next start folds lazily without it.
    pub(super) fn save_checkpoints(&mut self) {
        if !self.tt_dirty.replace(false) {
            return;
        }
        // Saved snapshots are sparser than the in-memory ones: fewer states to write,
        // and the fold after one stays within ~8k events (a few ms).
        let spacing = self
            .checkpoint_every
            .saturating_mul(8)
            .clamp(1, saved::SAVE_EVERY);
        let mut sections: Vec<saved::Section> = Vec::new();
        for (id, s) in &self.sessions {
            let Ok(tt) = s.tt.try_borrow() else { continue };
            let tt = tt.as_deref();
            let first_held = s.idx.first_seq().unwrap_or(u64::MAX);
            let mem_first = tt.and_then(|t| {
                t.snapshots()
                    .chain(std::iter::once(t.live()))
                    .find_map(|(_, _, st)| st.last_seq)
            });
            let mut out: Vec<(u64, i64, u64, Vec<u8>)> = Vec::new();
            let keep =
                |out: &Vec<(u64, i64, u64, Vec<u8>)>, seq: u64, max_ts: i64, n: u64, last: bool| {
                    seq >= first_held
                        && out.last().is_none_or(|l| {
                            seq > l.0 && max_ts >= l.1 && (last || n >= l.2 + spacing)
                        })
                };
            if let Some(sv) = self.saved.get(id) {
                for (i, snap) in sv.snaps.iter().enumerate() {
                    if mem_first.is_some_and(|m| snap.seq >= m) {
                        break;
                    }
                    if keep(&out, snap.seq, snap.max_ts, snap.event_count, false) {
                        if let Some(b) = sv.bytes(i) {
                            out.push((snap.seq, snap.max_ts, snap.event_count, b));
                        }
                    }
                }
            }
            if let Some(t) = tt {
                let live = t.live();
                for (pos, max_ts, st) in t.snapshots().chain(std::iter::once(live)) {
                    let Some(seq) = st.last_seq else { continue };
                    let last = pos == live.0;
                    if keep(&out, seq, max_ts, st.event_count, last) {
                        if let Some(b) = saved::encode_state(st) {
                            out.push((seq, max_ts, st.event_count, b));
                        }
                    }
                }
            }
            if !out.is_empty() {
                sections.push((id.clone(), out));
            }
        }
        if let Err(e) = saved::write(&self.dir, &sections) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "log: cannot save time-travel checkpoints; the next start folds without them");
            return;
        }
        self.saved = saved::load(&self.dir);
    }
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
            self.seed(id, s, &mut tt);
            let saved = self.saved_for(id, s, at);
            let lazy_cost = upper.saturating_sub(tt.live_pos());
            // A saved snapshot closer to `upper` than the lazy fold is answers without
            // bringing the fold forward (the first time travel after a restart).
            let direct = saved
                .filter(|&(_, pos)| upper.saturating_sub(pos) < lazy_cost)
                .and_then(|(i, pos)| Some((self.saved.get(&**id)?.state(i)?, pos)));
            match direct {
                Some(start) => start,
                None => {
                    self.fold_up_to(s, &mut tt, upper, u64::MAX)?;
                    let (st, p) = tt.start_for(at, s.idx.base());
                    match saved {
                        Some((i, pos)) if pos > p => self
                            .saved
                            .get(&**id)
                            .and_then(|sv| sv.state(i))
                            .map_or((st, p), |sv| (sv, pos)),
                        _ => (st, p),
                    }
                }
            }
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
        let Some((id, s)) = self.sessions.get_key_value(session) else {
            return Ok(true);
        };
        let mut tt = borrow_checkpoints(s, self.checkpoint_every)?;
        self.seed(id, s, &mut tt);
        let upper = s.idx.upper_for_ts(at);
        if tt.live_pos() >= upper {
            return Ok(true);
        }
        let budget = budget.max(1) as u64;
        if self
            .saved_for(id, s, at)
            .is_some_and(|(_, pos)| upper.saturating_sub(pos) <= budget)
        {
            return Ok(true);
        }
        self.fold_up_to(s, &mut tt, upper, budget)
    }
}
