//! The durable store: an append-only, segmented, checksummed log with in-memory indexes.
//!
//! Files under `data_dir`: `NNNNNNNNNNNNNNNNNNNN.log` segments named by the first seq they
//! were created for (20 digits, so names sort by seq), and `seq.hwm`, the seq
//! reservation. Each `append` is one record (see [`super::record`]) written with one
//! positional write, so the OS has the whole batch or, after a failed write is cut back,
//! none of it. fsync happens on the `super::sync` thread. On open the segments are
//! scanned sequentially in large chunks (no JSON parsing), the per-session indexes are
//! rebuilt, a torn tail is truncated, and a damaged record anywhere else stops the open
//! (or is quarantined on request). Time-travel checkpoints are built lazily by the first
//! `state_at` of a session, so neither recovery nor append pays for them.
//! docs/STORAGE.md is the long form.
//!
//! This file holds the store's state and the append path; the rest is split by what it
//! does: `recovery.rs` (open, scan, torn tail, quarantine), `segments.rs` (segment files,
//! disk reservation, names, the seq reservation), `reads.rs` (index walks and range
//! reads), `time_travel.rs` (the lazy checkpoint fold) and `retention.rs`.

mod reads;
mod recent;
mod recovery;
mod retention;
mod saved;
mod segments;
mod sparse;
mod time_travel;

pub use recovery::{Quarantined, RecoveryReport, TornTail};
pub use segments::SEQ_RESERVATION;

use super::fail_points::FailPoints;
use super::health::{wall_ms, HealthTracker};
use super::record;
use super::sessions::{admit, Agents, Forgotten, SessionOrder};
use super::sync::{SyncDone, SyncMsg, SyncThread};
use super::{
    delivered, Appended, DeletedRuns, EventLog, Pending, RetentionReport, SessionSummary,
    StorageHealth, StoreError,
};
use crate::config::FsyncPolicy;
use crate::event::{Event, EventRef};
use crate::timetravel::Checkpoints;
use segments::{write_hwm, Segment};
pub(crate) use sparse::Loc;
use sparse::SparseIndex;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Events per session the recent cache keeps decoded, for `recent` / `initial_traces`.
pub const RECENT_CACHE: usize = 128;

/// Bytes of decoded events the recent caches of all sessions hold together (see
/// `recent.rs`): what a million sessions cost must not be a million tails.
pub const RECENT_BUDGET: usize = 32 << 20;

/// One session's in-memory state, sized for the common session with one event: ~70
/// bytes of index, the agent set inline, and nothing else allocated until a second event
/// (the recent cache), a deletion (its runs) or a time travel (checkpoints) needs it. The
/// id is the map's key, not repeated here. Boxed in the map, so the map's spare slots
/// cost a pointer each, not a whole session.
struct Session {
    /// The seq of the first event this session held when the store created it: its
    /// place in creation order and its `/v1/sessions` cursor.
    created: u64,
    idx: SparseIndex,
    agents: Agents,
    /// The newest events decoded, covering positions `idx.end() - len ..`; only for
    /// sessions with more than one event, within [`RECENT_BUDGET`] for all sessions.
    recent: Option<Box<recent::Recent>>,
    /// What retention deleted, for `sinceSeq` resumes.
    deleted: DeletedRuns,
    /// Built lazily by `state_at` (folding needs the JSON of task and state events, the
    /// one per-event cost too high for recovery and append), and allocated then too; a
    /// `RefCell` because reads take `&self`. Only the loop thread touches it.
    tt: RefCell<Option<Box<Checkpoints>>>,
}

impl Session {
    fn new(created: u64) -> Self {
        Session {
            created,
            idx: SparseIndex::default(),
            agents: Agents::default(),
            recent: None,
            deleted: DeletedRuns::default(),
            tt: RefCell::new(None),
        }
    }

    fn summary(&self, id: &Arc<str>) -> SessionSummary {
        SessionSummary {
            id: id.clone(),
            event_count: self.idx.len() as u64,
            agent_count: self.agents.len() as u64,
            first_timestamp: self.idx.first_ts(),
            last_timestamp: self.idx.max_ts(),
            last_seq: self.idx.last_seq(),
        }
    }
}

/// Where the last `time_range` page ended: the session's creation seq, the range's
/// start and end, the matches returned so far, and the position after the last of them.
type TimeCursor = (u64, i64, i64, u64, u64);

/// The durable segmented log.
pub struct LogStore {
    dir: PathBuf,
    segments: VecDeque<Segment>,
    next_seg_no: u32,
    next_seq: u64,
    reserved: u64,
    durable: u64,
    sessions: crate::hash::Map<Arc<str>, Box<Session>>,
    /// Creation order of `sessions`, for pages of the session list.
    order: SessionOrder,
    /// Sessions retention forgot lately, for `sinceSeq` resumes.
    forgotten: Forgotten,
    /// The decoded tails of busy sessions, within [`RECENT_BUDGET`].
    cache: recent::RecentCache,
    max_sessions: usize,
    /// A batch was refused for `max_sessions` since the count last went down: warn once
    /// per such episode, not once per refused batch.
    at_session_limit: bool,
    kinds: crate::hash::Set<Arc<str>>,
    policy: FsyncPolicy,
    segment_bytes: u64,
    retention_bytes: u64,
    retention_ms: u64,
    checkpoint_every: u64,
    total_bytes: u64,
    buf: Vec<u8>,
    sync: SyncThread,
    /// Set when a failed write could not be cut back: further appends are refused so
    /// nothing is written after bytes of unknown state.
    poisoned: bool,
    /// Failed writes and fsyncs, for [`EventLog::health`].
    health: HealthTracker,
    /// Injected disk failures (tests only; empty otherwise).
    faults: FailPoints,
    /// Where the last `after_seq` page ended: `(session's creation seq, last seq
    /// returned, its position + 1)`, so the next page of a history stream starts there
    /// without decoding a block of the sparse index to find it.
    cursor: Cell<Option<(u64, u64, u64)>>,
    /// Where the last `time_range` page ended: `(session's creation seq, start, end,
    /// matches returned so far, position after the last)`, so the next page of the
    /// same range neither reads nor counts its way past the earlier ones again.
    time_cursor: Cell<Option<TimeCursor>>,
    /// Checkpoints saved by an earlier run (`saved.rs`), per session, checked on use.
    saved: crate::hash::Map<Arc<str>, saved::Saved>,
    /// A lazy fold advanced since the checkpoints were last saved.
    tt_dirty: Cell<bool>,
}

fn corrupt(file: &Path, offset: u64, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        file: file.display().to_string(),
        offset,
        reason: reason.to_string(),
    }
}

impl EventLog for LogStore {
    fn append(&mut self, batch: Vec<Pending>) -> Result<Appended, StoreError> {
        if batch.is_empty() {
            return Ok(Appended { events: Vec::new() });
        }
        if self.poisoned {
            return Err(StoreError::Io(std::io::Error::other(
                "log refused: an earlier failed write could not be undone",
            )));
        }
        if let Err(e) = admit(&batch, self.sessions.len(), self.max_sessions, |id| {
            self.sessions.contains_key(id)
        }) {
            if !self.at_session_limit {
                self.at_session_limit = true;
                tracing::warn!(max_sessions = self.max_sessions, "log: {e}");
            }
            return Err(e);
        }
        let n = batch.len() as u64;
        let first = self.next_seq;
        if first + n > self.reserved {
            let upto = first + n + SEQ_RESERVATION;
            if let Err(e) = write_hwm(&self.dir, upto) {
                let what = format!("seq reservation in {}", self.dir.display());
                self.health
                    .write_failed(format!("write failed: {what}: {e}"), wall_ms(), false);
                return Err(e.into());
            }
            self.reserved = upto;
        }
        let mut buf = std::mem::take(&mut self.buf);
        record::begin_record(&mut buf, batch.len() as u32);
        let mut rel = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        for (i, p) in batch.into_iter().enumerate() {
            let seq = first + i as u64;
            let json = delivered(seq, p.json_tail, p.headroom);
            if !record::fits(&p.session, p.agent.as_deref(), &p.kind, json.len()) {
                self.buf = buf;
                return Err(StoreError::Invalid(format!(
                    "event {i}: a field is too long to store"
                )));
            }
            let at = buf.len();
            record::put_entry(
                &mut buf,
                seq,
                p.timestamp,
                &p.session,
                p.agent.as_deref(),
                &p.kind,
                &json,
            );
            rel.push((at, buf.len() - at));
            events.push(Arc::new(Event {
                seq,
                timestamp: p.timestamp,
                session: p.session,
                agent: p.agent,
                kind: p.kind,
                json,
            }));
        }
        record::finish_record(&mut buf);
        let res = self.write_record(&buf, first);
        let written = match res {
            Ok(w) => w,
            Err(e) => {
                self.buf = buf;
                return Err(e);
            }
        };
        let (seg_no, base, new_file) = written;
        if self.health.write_ok() {
            tracing::info!("log: writes succeed again");
        }
        let last = first + n - 1;
        let max_ts = self.index_appended(&events, &rel, seg_no, base);
        self.next_seq = last + 1;
        if new_file {
            // A roll is when the byte limit can first be exceeded; sweeping here keeps the
            // disk within `retention_bytes` without waiting for the periodic timer. Age
            // stays with the timer: it needs a clock, and nothing ages faster at a roll.
            self.sweep(None);
        }
        if let Some(seg) = self.segments.back_mut() {
            seg.events += n;
            seg.max_ts = seg.max_ts.max(max_ts);
            // The fsync thread learns of a new file by message, of every write by the
            // shared seq alone: no channel send (and no wake-up) per append. The message
            // goes first: the thread reads the seq before draining its queue, so a seq of
            // a new file is never seen without that file.
            if new_file {
                let _ = self.sync.tx.send(SyncMsg::Written {
                    file: seg.file.clone(),
                    path: seg.path.clone(),
                    seq: last,
                    new_file,
                });
            }
            self.sync.note_written(last);
            if self.policy == FsyncPolicy::Always {
                let _ = self.sync.tx.send(SyncMsg::SyncNow);
            }
        }
        self.buf = buf;
        Ok(Appended { events })
    }

    fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The stream fixes the seqs, so there is nothing to reserve ahead of a crash (the
    /// reservation guards seqs the log hands out itself): the reservation is lifted for
    /// this append alone, and the high-water-mark file is left as it was.
    fn append_at(&mut self, batch: Vec<Pending>, first: u64) -> Result<Appended, StoreError> {
        if first < self.next_seq {
            return Err(StoreError::Invalid(format!(
                "seq {first} is below the next free seq {}",
                self.next_seq
            )));
        }
        let (before, reserved) = (self.next_seq, self.reserved);
        self.next_seq = first;
        self.reserved = u64::MAX;
        let r = self.append(batch);
        self.reserved = reserved;
        if r.is_err() {
            self.next_seq = before;
        }
        r
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.save_checkpoints();
        let res = self.sync.barrier();
        // The barrier's own round reported on the done channel too (and perhaps an
        // earlier failure not yet polled): collect them so health and durability agree.
        let earlier = self.collect_sync();
        let upto = res?;
        self.durable = self.durable.max(upto);
        earlier.map_or(Ok(()), |e| Err(StoreError::Io(e)))
    }

    fn durable_seq(&self) -> u64 {
        self.durable
    }

    fn poll_sync(&mut self) -> Result<(), StoreError> {
        self.collect_sync()
            .map_or(Ok(()), |e| Err(StoreError::Io(e)))
    }

    fn enforce_retention(&mut self, now_ms: i64) -> RetentionReport {
        let cutoff = now_ms.saturating_sub(i64::try_from(self.retention_ms).unwrap_or(i64::MAX));
        self.sweep(Some(cutoff))
    }

    fn health(&self) -> StorageHealth {
        self.health.snapshot()
    }
}

impl LogStore {
    /// Takes in the fsync thread's reports, in order: advances `durable`, and raises or
    /// clears the fsync fault. Returns the last failure seen, if any.
    fn collect_sync(&mut self) -> Option<std::io::Error> {
        let mut failed = None;
        while let Ok(d) = self.sync.done.try_recv() {
            match d {
                SyncDone::Durable(s) => {
                    self.durable = self.durable.max(s);
                    if self.health.durable(s) {
                        tracing::info!(durable = s, "log: fsync succeeds again");
                    }
                }
                SyncDone::Failed(e) => {
                    // Everything written so far must be synced again before the fault
                    // can clear: the failed round may have held any of it.
                    let written = self.sync.written();
                    self.health
                        .fsync_failed(format!("fsync failed: {e}"), wall_ms(), written);
                    failed = Some(e);
                }
            }
        }
        failed
    }
}

impl LogStore {
    /// The failure seam, for tests outside the store that need a failing disk.
    #[cfg(test)]
    pub(crate) fn fail_points(&self) -> &FailPoints {
        &self.faults
    }
}

impl LogStore {
    /// Indexes a just-written batch; returns its largest timestamp. The session map is
    /// consulted once per run of events of the same session; a run enters the session's
    /// recent cache when the session has more than one event (see [`recent`]).
    fn index_appended(
        &mut self,
        events: &[EventRef],
        rel: &[(usize, usize)],
        seg_no: u32,
        base: u64,
    ) -> i64 {
        let mut max_ts = i64::MIN;
        let mut last_kind: Option<&Arc<str>> = None;
        let mut i = 0;
        while let Some(first) = events.get(i) {
            let sid = &first.session;
            let len = events
                .get(i..)
                .unwrap_or_default()
                .iter()
                .take_while(|e| Arc::ptr_eq(&e.session, sid) || e.session == *sid)
                .count();
            let run = events.get(i..i + len).unwrap_or_default();
            let locs = rel.get(i..i + len).unwrap_or_default();
            let s = match self.sessions.get_mut(sid) {
                Some(s) => s,
                None => {
                    let mut s = Box::new(Session::new(first.seq));
                    if let Some(d) = self.forgotten.take(sid) {
                        s.deleted = d;
                    }
                    self.order.push(first.seq, sid.clone());
                    self.sessions.entry(sid.clone()).or_insert(s)
                }
            };
            let mut last_agent: Option<&Arc<str>> = None;
            for (ev, (at, elen)) in run.iter().zip(locs) {
                if !last_kind.is_some_and(|k| Arc::ptr_eq(k, &ev.kind)) {
                    if !self.kinds.contains(&*ev.kind) {
                        self.kinds.insert(ev.kind.clone());
                    }
                    last_kind = Some(&ev.kind);
                }
                if let Some(a) = &ev.agent {
                    if !last_agent.is_some_and(|l| Arc::ptr_eq(l, a)) {
                        s.agents.insert(a);
                        last_agent = Some(a);
                    }
                }
                s.idx.push(
                    ev.seq,
                    ev.timestamp,
                    seg_no,
                    (base + *at as u64) as u32,
                    *elen as u32,
                );
                max_ts = max_ts.max(ev.timestamp);
            }
            if s.idx.len() > 1 {
                self.cache.extend(sid, &mut s.recent, run);
            }
            i += len.max(1);
        }
        self.cache.evict(&mut self.sessions);
        max_ts
    }

    /// Where the store lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes held in segment files.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Segment files held (including the active one).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        self.save_checkpoints();
        if let Some(active) = self.segments.back_mut() {
            active.release_spare();
        }
    }
}

#[cfg(test)]
mod tests;
