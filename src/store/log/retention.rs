//! Retention: deleting whole old segments over the byte or age limit, and trimming every
//! index, cache and checkpoint that pointed into them.
//!
//! Only whole sealed segments go (never the active one), so retention is a file delete
//! plus index pops, and what it deleted is remembered per session for `sinceSeq` resumes.
//! A session whose every event is gone is forgotten, so the session count can go down.

use super::{Loc, LogStore, RetentionReport, StoreError};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// The seq and timestamp of the entry at `l`: its first 16 bytes.
fn read_head(file: &File, l: Loc) -> Option<(u64, i64)> {
    let mut b = [0u8; 16];
    file.read_exact_at(&mut b, u64::from(l.off)).ok()?;
    let (seq, ts) = b.split_at(8);
    Some((
        u64::from_le_bytes(seq.try_into().ok()?),
        i64::from_le_bytes(ts.try_into().ok()?),
    ))
}

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
        // Still readable after the unlink: the seqs of the last events removed are read
        // from it (the sparse index does not hold them).
        let dead = seg.file.clone();
        self.segments.pop_front();
        self.total_bytes -= size;
        // Offsets count from the first event held: a page cursor across a deletion
        // would no longer mean the same offset.
        self.time_cursor.set(None);
        let mut removed: Vec<u64> = Vec::new();
        let (cache, forgotten, segments) = (&mut self.cache, &mut self.forgotten, &self.segments);
        let saved = &mut self.saved;
        self.sessions.retain(|id, s| {
            let last_held = s.idx.last_seq().unwrap_or(0);
            let Some(p) = s.idx.pop_segment(no) else {
                return true;
            };
            let (first, count) = (p.first_seq, p.count);
            let last = match p.last {
                None => last_held,
                Some(l) => read_head(&dead, l).map_or(first + count - 1, |(q, _)| q),
            };
            if let Some(l) = p.new_front {
                let cached = s.recent.as_deref().and_then(|r| {
                    let cached_from = s.idx.end() - r.len() as u64;
                    let i = s.idx.base().checked_sub(cached_from)? as usize;
                    r.range(i, i + 1).next().map(|e| (e.seq, e.timestamp))
                });
                let head = cached.or_else(|| {
                    let first_no = segments.front()?.no;
                    let seg = segments.get(l.seg.checked_sub(first_no)? as usize)?;
                    read_head(&seg.file, l)
                });
                match head {
                    Some((seq, ts)) => s.idx.set_front(seq, ts),
                    None => {
                        tracing::warn!(session = %id, "log: cannot read the first retained event; its seq and time are estimated");
                        s.idx.set_front(last + 1, s.idx.first_ts().unwrap_or(0));
                    }
                }
            }
            if count == 0 {
                return true;
            }
            s.deleted.record(first, last, count);
            if s.idx.is_empty() {
                cache.release(&s.recent);
                forgotten.remember(id.clone(), &s.deleted);
                saved.remove(id);
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
