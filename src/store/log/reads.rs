//! Reads from the log: walking a session's index and reading the entries it points at,
//! in as few positional reads as the layout allows.
//!
//! Entries that sit back to back in one segment are read with one call into a buffer the
//! run's events then share, so a read costs what it returns, not the log's size.

use super::segments::Segment;
use super::{corrupt, Loc, LogStore, Session, StoreError};
use crate::event::{Event, EventRef};
use crate::store::record::{self, DecodeError};
use crate::store::{Deleted, SessionPage, SessionReads, SessionSummary};
use bytes::Bytes;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// A history read coalesces back-to-back entries into one positional read up to this size.
const READ_RUN: u64 = 1 << 20;

/// The shared `Arc` for a string read back from disk: the previous one when equal (runs
/// of one agent or type are common), else the interned one, else a new one.
fn intern<'a>(
    last: &mut Option<Arc<str>>,
    x: &str,
    lookup: impl FnOnce(&str) -> Option<&'a Arc<str>>,
) -> Arc<str> {
    if let Some(l) = last.as_ref().filter(|l| &***l == x) {
        return l.clone();
    }
    let a = lookup(x).cloned().unwrap_or_else(|| Arc::from(x));
    *last = Some(a.clone());
    a
}

impl LogStore {
    /// Groups the places `locs` of a session's events into runs that sit back to back in
    /// one segment (at most `max_run` bytes each) and calls `f(segment, run)` for each, a
    /// run listing `(position, loc)` in order.
    pub(super) fn for_each_run(
        &self,
        locs: impl IntoIterator<Item = (u64, Loc)>,
        max_run: u64,
        mut f: impl FnMut(&Segment, &[(u64, Loc)]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut run: Vec<(u64, Loc)> = Vec::new();
        let (mut run_lo, mut run_hi) = (0u64, 0u64);
        let mut flush = |run: &mut Vec<(u64, Loc)>| -> Result<(), StoreError> {
            let Some((pos, first)) = run.first() else {
                return Ok(());
            };
            let seg = self.segment(first.seg).ok_or_else(|| {
                StoreError::NotFound(format!("segment {} of position {pos}", first.seg))
            })?;
            f(seg, run)?;
            run.clear();
            Ok(())
        };
        for (p, l) in locs {
            let lo = u64::from(l.off);
            let hi = lo + u64::from(l.len);
            let joins = run.first().is_some_and(|(_, r)| r.seg == l.seg)
                && lo == run_hi
                && hi - run_lo <= max_run;
            if !joins {
                flush(&mut run)?;
                run_lo = lo;
            }
            run_hi = hi;
            run.push((p, l));
        }
        flush(&mut run)
    }

    /// Reads the events at the places `locs` of a session, in order: one positional read
    /// per run of back-to-back entries, into a buffer the run's events then share (each
    /// event's `json` is a slice of it, so no per-event copy). The buffer holds only the
    /// run's own entries, so a kept event pins little more than itself.
    pub(super) fn read_locs(
        &self,
        id: &Arc<str>,
        s: &Session,
        locs: impl IntoIterator<Item = (u64, Loc)>,
        hint: usize,
    ) -> Result<Vec<EventRef>, StoreError> {
        let mut out = Vec::with_capacity(hint.min(1 << 16));
        let mut agent: Option<Arc<str>> = None;
        let mut kind: Option<Arc<str>> = None;
        self.for_each_run(locs, READ_RUN, |seg, run| {
            let (Some((_, a)), Some((_, b))) = (run.first(), run.last()) else {
                return Ok(());
            };
            let lo = u64::from(a.off);
            let hi = u64::from(b.off) + u64::from(b.len);
            let mut v = vec![0u8; (hi - lo) as usize];
            seg.file.read_exact_at(&mut v, lo)?;
            let bytes = Bytes::from(v);
            let mut at = 0usize;
            for (_, loc) in run {
                let len = loc.len as usize;
                let bad = |r| corrupt(&seg.path, u64::from(loc.off), r);
                let ent = bytes
                    .get(at..at + len)
                    .ok_or_else(|| bad(DecodeError::Short))?;
                let (e, total) = record::decode_entry(ent).map_err(bad)?;
                if total != len {
                    return Err(bad(DecodeError::Malformed(
                        "entry length differs from index",
                    )));
                }
                let json_at = at + len - e.json.len();
                out.push(Arc::new(Event {
                    seq: e.seq,
                    timestamp: e.ts,
                    session: id.clone(),
                    agent: e.agent.map(|x| intern(&mut agent, x, |x| s.agents.get(x))),
                    kind: intern(&mut kind, e.kind, |x| self.kinds.get(x)),
                    json: bytes.slice(json_at..at + len),
                }));
                at += len;
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Events at positions `[from, to)`: the part the session's recent cache covers
    /// from there, the rest from the log.
    pub(super) fn range(
        &self,
        id: &Arc<str>,
        s: &Session,
        from: u64,
        to: u64,
    ) -> Result<Vec<EventRef>, StoreError> {
        let from = from.max(s.idx.base());
        let to = to.min(s.idx.end());
        if from >= to {
            return Ok(Vec::new());
        }
        let hint = (to - from) as usize;
        let Some(r) = s.recent.as_deref() else {
            return self.read_locs(id, s, s.idx.locs(from, to), hint);
        };
        let cached_from = s.idx.end() - r.len() as u64;
        let mut out = if from < cached_from {
            let upto = to.min(cached_from);
            self.read_locs(id, s, s.idx.locs(from, upto), hint)?
        } else {
            Vec::new()
        };
        if to > cached_from {
            let a = from.saturating_sub(cached_from) as usize;
            let b = (to - cached_from) as usize;
            out.extend(r.range(a, b).cloned());
        }
        Ok(out)
    }

    /// The position of the first event with `seq > after`: exact from the index or the
    /// last history read's cursor when it can tell, else found by reading the one block
    /// that holds it (its seqs are not kept in memory).
    pub(super) fn pos_after_seq(&self, s: &Session, after: u64) -> Result<u64, StoreError> {
        let (lo, hi) = s.idx.seq_bounds(after);
        if lo == hi {
            return Ok(lo);
        }
        if let Some((created, seq, pos)) = self.cursor.get() {
            if created == s.created && seq == after && pos >= lo && pos <= hi {
                return Ok(pos);
            }
        }
        if let Some(r) = s.recent.as_deref() {
            let cached_from = s.idx.end() - r.len() as u64;
            if lo >= cached_from {
                let a = (lo - cached_from) as usize;
                let b = (hi - cached_from) as usize;
                let n = r.range(a, b).take_while(|e| e.seq <= after).count();
                return Ok(lo + n as u64);
            }
        }
        let mut found = hi;
        self.fold_range(s, lo, hi, |p, e| {
            if e.seq > after && found == hi {
                found = p;
            }
        })?;
        Ok(found)
    }
}

impl SessionReads for LogStore {
    fn session(&self, id: &str) -> Option<SessionSummary> {
        self.sessions.get_key_value(id).map(|(k, s)| s.summary(k))
    }

    fn session_count(&self) -> usize {
        self.sessions.len()
    }

    fn sessions_page(&self, after: u64, limit: usize, keep: &dyn Fn(&str) -> bool) -> SessionPage {
        self.order.summaries(after, limit, keep, |id| {
            self.sessions.get(id).map(|s| s.summary(id))
        })
    }

    fn recent(&self, session: &str, n: usize) -> Vec<EventRef> {
        let Some((id, s)) = self.sessions.get_key_value(session) else {
            return Vec::new();
        };
        let from = s.idx.end().saturating_sub(n as u64).max(s.idx.base());
        self.range(id, s, from, s.idx.end()).unwrap_or_else(|e| {
            tracing::warn!(session, error = %e, "log: recent read failed");
            Vec::new()
        })
    }

    fn after_seq(
        &self,
        session: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventRef>, StoreError> {
        let Some((id, s)) = self.sessions.get_key_value(session) else {
            return Ok(Vec::new());
        };
        let from = self.pos_after_seq(s, after)?;
        let to = from.saturating_add(limit as u64).min(s.idx.end());
        let out = self.range(id, s, from, to)?;
        // A history stream asks next for what follows the last event returned: remember
        // where that is, so the next page starts without decoding its block.
        if let Some(last) = out.last() {
            self.cursor
                .set(Some((s.created, last.seq, from + out.len() as u64)));
        }
        Ok(out)
    }

    fn time_range(
        &self,
        session: &str,
        start: i64,
        end: i64,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<EventRef>, StoreError> {
        let Some((id, s)) = self.sessions.get_key_value(session) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<EventRef> = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        // Paging on through the same range: the previous page said where its matches
        // ended, so nothing before that is read (or counted) again.
        let (mut skip, from) = match self.time_cursor.get() {
            Some((c, a, b, off, pos))
                if (c, a, b, off) == (s.created, start, end, offset as u64) =>
            {
                (0u64, pos)
            }
            _ => (offset as u64, 0),
        };
        let mut next = from;
        let mut failed = None;
        s.idx.scan(start, end, |lo, hi, exact| {
            let lo = lo.max(from);
            if lo >= hi {
                return true;
            }
            let want = (limit - out.len()) as u64;
            if exact {
                let jump = skip.min(hi - lo);
                skip -= jump;
                let a = lo + jump;
                let b = hi.min(a + want);
                match self.range(id, s, a, b) {
                    Ok(v) => {
                        next = next.max(b);
                        out.extend(v);
                    }
                    Err(e) => failed = Some(e),
                }
            } else {
                match self.range(id, s, lo, hi) {
                    Ok(v) => {
                        for (i, e) in v.into_iter().enumerate() {
                            if e.timestamp < start || e.timestamp > end {
                                continue;
                            }
                            if skip > 0 {
                                skip -= 1;
                                continue;
                            }
                            next = next.max(lo + i as u64 + 1);
                            out.push(e);
                            if out.len() >= limit {
                                break;
                            }
                        }
                    }
                    Err(e) => failed = Some(e),
                }
            }
            failed.is_none() && out.len() < limit
        });
        if let Some(e) = failed {
            return Err(e);
        }
        if !out.is_empty() {
            let reached = (offset + out.len()) as u64;
            self.time_cursor
                .set(Some((s.created, start, end, reached, next)));
        }
        Ok(out)
    }

    fn count_time_range(&self, session: &str, start: i64, end: i64) -> u64 {
        let Some(s) = self.sessions.get(session) else {
            return 0;
        };
        let mut n = 0u64;
        s.idx.scan(start, end, |lo, hi, exact| {
            if exact {
                n += hi - lo;
            } else if let Err(e) = self.fold_range(s, lo, hi, |_, e| {
                n += u64::from(e.ts >= start && e.ts <= end);
            }) {
                tracing::warn!(session, error = %e, "log: count read failed; the count is short");
            }
            true
        });
        n
    }

    fn first_seq(&self, session: &str) -> Option<u64> {
        self.sessions.get(session).and_then(|s| s.idx.first_seq())
    }

    fn deleted_after(&self, session: &str, after: u64) -> Option<Deleted> {
        match self.sessions.get(session) {
            Some(s) => s.deleted.after(after),
            None => self.forgotten.after(session, after),
        }
    }
}
