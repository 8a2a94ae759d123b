//! Retention: deleting whole old segments over the byte or age limit, and trimming every
//! index, cache and checkpoint that pointed into them.
//!
//! Only whole sealed segments go (never the active one), so retention is a file delete
//! plus index pops, and what it deleted is remembered per session for `sinceSeq` resumes.
//! A session whose every event is gone is forgotten, so the session count can go down.

use super::{LogStore, RetentionReport, StoreError};
use crate::store::index::Entry;

impl LogStore {
    /// Deletes old segments over the byte limit, or (with a `cutoff`) whose newest event
    /// is older than it. The active segment always stays.
    pub(super) fn sweep(&mut self, cutoff: Option<i64>) -> RetentionReport {
        let mut rep = RetentionReport::default();
        while self.segments.len() > 1 {
            let Some(oldest) = self.segments.front() else {
                break;
            };
            let over_bytes = self.retention_bytes > 0 && self.total_bytes > self.retention_bytes;
            let too_old = self.retention_ms > 0 && cutoff.is_some_and(|c| oldest.max_ts < c);
            if !(over_bytes || too_old || oldest.events == 0) {
                break;
            }
            let path = oldest.path.clone();
            match self.drop_oldest_segment() {
                Ok((bytes, events)) => {
                    tracing::info!(file = %path.display(), bytes, events, "log: retention deleted segment");
                    rep.segments += 1;
                    rep.bytes += bytes;
                    rep.events += events;
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "log: retention could not delete segment");
                    break;
                }
            }
        }
        rep
    }
}

impl LogStore {
    /// Drops the oldest segment and every index entry pointing into it. A session left
    /// with no event is forgotten: its memory goes back, it leaves the session count and
    /// the listing (so `max_sessions` admits new ones), and what was deleted of it is
    /// remembered (`Forgotten`) for a while.
    fn drop_oldest_segment(&mut self) -> Result<(u64, u64), StoreError> {
        let Some(seg) = self.segments.front() else {
            return Ok((0, 0));
        };
        std::fs::remove_file(&seg.path)?;
        let (no, size, events) = (seg.no, seg.size, seg.events);
        self.segments.pop_front();
        self.total_bytes -= size;
        let mut removed: Vec<u64> = Vec::new();
        let (cache, forgotten) = (&mut self.cache, &mut self.forgotten);
        self.sessions.retain(|id, s| {
            let (mut first, mut last, mut count) = (0, 0, 0);
            while s.idx.front().is_some_and(|l| l.seg == no) {
                if let Some(l) = s.idx.pop_front() {
                    if count == 0 {
                        first = l.seq();
                    }
                    last = l.seq();
                    count += 1;
                }
            }
            if count == 0 {
                return true;
            }
            s.deleted.record(first, last, count);
            if s.idx.is_empty() {
                cache.release(&s.recent);
                forgotten.remember(id.clone(), &s.deleted);
                removed.push(s.created);
                return false;
            }
            if let Some(tt) = s.tt.get_mut() {
                tt.trim(s.idx.base());
            }
            cache.trim(&mut s.recent, s.idx.len());
            true
        });
        if !removed.is_empty() {
            self.at_session_limit = false;
            removed.sort_unstable();
            self.order.remove(&removed);
            self.cache.forget_stale(&self.sessions);
            // A crowd of sessions that aged out should give its memory back, not only
            // its count: shrink once three quarters of the table stand empty (a rehash
            // of what is left, so at most once per as many removals).
            if self.sessions.capacity() > 4 * self.sessions.len().max(1024) {
                self.sessions.shrink_to_fit();
                self.order.shrink();
            }
        }
        Ok((size, events))
    }
}
