//! Retention: deleting whole old segments over the byte or age limit, and trimming every
//! index, cache and checkpoint that pointed into them.
//!
//! Only whole sealed segments go (never the active one), so retention is a file delete
//! plus index pops, and what it deleted is remembered per session for `sinceSeq` resumes.

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
    /// Drops the oldest segment and every index entry pointing into it.
    fn drop_oldest_segment(&mut self) -> Result<(u64, u64), StoreError> {
        let Some(seg) = self.segments.front() else {
            return Ok((0, 0));
        };
        std::fs::remove_file(&seg.path)?;
        let (no, size, events) = (seg.no, seg.size, seg.events);
        self.segments.pop_front();
        self.total_bytes -= size;
        for s in self.sessions.values_mut() {
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
            s.deleted.record(first, last, count);
            s.tt.get_mut().trim(s.idx.base());
            let keep = s.idx.len().min(s.recent.len());
            while s.recent.len() > keep {
                s.recent.pop_front();
            }
        }
        Ok((size, events))
    }
}
