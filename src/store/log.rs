//! The durable store: an append-only, segmented, checksummed log with in-memory indexes.
//!
//! Files under `data_dir`: `NNNNNNNNNNNNNNNNNNNN.log` segments named by the first seq they
//! were created for (20 digits, so names sort by seq), and `seq.hwm`, the seq
//! reservation. Each `append` is one record (see [`super::record`]) written with one
//! positional write, so the OS has the whole batch or, after a failed write is cut back,
//! none of it. fsync happens on the [`super::sync`] thread. On open the segments are
//! scanned sequentially in large chunks (no JSON parsing), the per-session indexes are
//! rebuilt, a torn tail is truncated, and a damaged record anywhere else stops the open
//! (or is quarantined on request). Time-travel checkpoints are built lazily by the first
//! `state_at` of a session, so neither recovery nor append pays for them.
//! docs/STORAGE.md is the long form.

use super::index::{Entry, SeqTimeIndex};
use super::record::{self, DecodeError, EntryRef};
use super::sync::{SyncDone, SyncMsg, SyncThread};
use super::{
    delivered, Appended, Deleted, DeletedRuns, Pending, RetentionReport, SessionSummary, Store,
    StoreError,
};
use crate::config::{FsyncPolicy, StorageConfig};
use crate::event::{Event, EventRef};
use crate::timetravel::{Checkpoints, EventFacts, FoldScratch, SessionState};
use bytes::Bytes;
use std::cell::RefCell;
use std::cell::RefMut;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Events per session kept decoded in memory for `recent` / `initial_traces`.
pub const RECENT_CACHE: usize = 128;
/// Seqs reserved on disk at a time: a restart resumes after the reservation, so a seq
/// handed out (and perhaps delivered live) before a crash is never handed out again.
pub const SEQ_RESERVATION: u64 = 1 << 20;
/// Offsets in the index are `u32`: segments stay below this.
const MAX_SEGMENT_BYTES: u64 = 1 << 31;
const HWM_FILE: &str = "seq.hwm";
/// Recovery reads segments in chunks of this size: few syscalls, and a chunk still fits
/// comfortably in the last-level cache's neighbourhood.
const SCAN_CHUNK: usize = 8 << 20;
/// A history read coalesces back-to-back entries into one positional read up to this size.
const READ_RUN: u64 = 1 << 20;
/// The time-travel fold reads larger runs: it streams many events and keeps none.
const FOLD_RUN: u64 = 4 << 20;

/// A torn tail found and cut at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub file: String,
    pub offset: u64,
    pub dropped_bytes: u64,
    pub reason: String,
}

/// A damaged segment remainder moved aside at open (`quarantine_corrupt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    pub file: String,
    pub offset: u64,
    pub bytes: u64,
    pub moved_to: String,
    pub reason: String,
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub events: u64,
    pub bytes: u64,
    pub sessions: usize,
    pub next_seq: u64,
    pub truncated: Option<TornTail>,
    pub quarantined: Vec<Quarantined>,
    pub elapsed_ms: u64,
}

/// Where an event lives: 28 bytes per indexed event. Packed to 4-byte alignment (the
/// `u64`s would otherwise pad it to 32): read `seq`/`ts` through [`Entry`], by value.
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
struct Loc {
    seq: u64,
    ts: i64,
    seg: u32,
    off: u32,
    len: u32,
}

impl Entry for Loc {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn ts(&self) -> i64 {
        self.ts
    }
}

/// Disk reserved ahead of the active segment's end, in one `fallocate` call.
///
/// Appending to a file grows it page by page, and on ext4 the block reservation for each
/// new page is a good part of what a write costs; reserving the blocks ahead with
/// `FALLOC_FL_KEEP_SIZE` leaves the file's size (all readers and recovery see) alone
/// and cut the kernel's share of an append by about a third here (docs/STORAGE.md).
/// The spare blocks are given back when the segment is sealed or the log closed.
const PREALLOCATE: u64 = 8 << 20;

struct Segment {
    no: u32,
    path: PathBuf,
    file: Arc<File>,
    size: u64,
    /// Bytes of disk reserved for the file (beyond `size`, invisible to readers).
    allocated: u64,
    events: u64,
    max_ts: i64,
}

impl Segment {
    /// Makes sure the disk behind the next `len` bytes is reserved. A filesystem that
    /// cannot (no `fallocate`) is simply written to as it is.
    fn reserve(&mut self, len: u64) {
        if self.size + len <= self.allocated {
            return;
        }
        let ahead = PREALLOCATE.max(len);
        let flags = rustix::fs::FallocateFlags::KEEP_SIZE;
        self.allocated = match rustix::fs::fallocate(&*self.file, flags, self.size, ahead) {
            Ok(()) => self.size + ahead,
            Err(e) => {
                tracing::debug!(file = %self.path.display(), error = %e, "log: cannot reserve disk ahead; writing without");
                u64::MAX
            }
        };
    }

    /// Gives back the disk reserved past the end: truncating to the same size frees
    /// blocks beyond it.
    fn release_spare(&mut self) {
        if self.allocated > self.size && self.allocated != u64::MAX {
            if let Err(e) = self.file.set_len(self.size) {
                tracing::warn!(file = %self.path.display(), error = %e, "log: cannot give back reserved disk");
            }
        }
        self.allocated = self.size;
    }
}

struct Session {
    id: Arc<str>,
    idx: SeqTimeIndex<Loc>,
    /// Built lazily by `state_at` (folding needs the JSON of task and state events, the
    /// one per-event cost too high for recovery and append); a `RefCell` because reads
    /// take `&self`. Only the loop thread touches it.
    tt: RefCell<Checkpoints>,
    agents: HashSet<Arc<str>>,
    /// The newest events, decoded; covers positions `idx.end() - recent.len() ..`.
    recent: VecDeque<EventRef>,
    /// What retention deleted, for `sinceSeq` resumes.
    deleted: DeletedRuns,
}

impl Session {
    fn new(id: Arc<str>, every: u64) -> Self {
        Session {
            id,
            idx: SeqTimeIndex::default(),
            tt: RefCell::new(Checkpoints::new(every)),
            agents: HashSet::new(),
            recent: VecDeque::new(),
            deleted: DeletedRuns::default(),
        }
    }

    fn summary(&self) -> SessionSummary {
        SessionSummary {
            id: self.id.clone(),
            event_count: self.idx.len() as u64,
            agent_count: self.agents.len() as u64,
            first_timestamp: self.idx.front().map(|e| e.ts()),
            last_timestamp: self.idx.max_ts(),
            last_seq: self.idx.back().map(|e| e.seq),
        }
    }

    /// Indexes one recovered entry.
    fn index(&mut self, loc: Loc, agent: Option<&str>) {
        if let Some(a) = agent {
            if !self.agents.contains(a) {
                self.agents.insert(Arc::from(a));
            }
        }
        self.idx.push(loc);
    }
}

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

fn facts<'a>(e: &EntryRef<'a>) -> EventFacts<'a> {
    EventFacts {
        seq: e.seq,
        timestamp: e.ts,
        agent: e.agent,
        kind: e.kind,
        json: e.json,
    }
}

/// The durable segmented log.
pub struct LogStore {
    dir: PathBuf,
    segments: VecDeque<Segment>,
    next_seg_no: u32,
    next_seq: u64,
    reserved: u64,
    durable: u64,
    sessions: HashMap<Arc<str>, Session>,
    kinds: HashSet<Arc<str>>,
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
}

fn seg_name(first_seq: u64) -> String {
    format!("{first_seq:020}.log")
}

fn parse_seg_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn read_hwm(dir: &Path) -> Option<u64> {
    let b = std::fs::read(dir.join(HWM_FILE)).ok()?;
    let (v, c) = (b.get(0..8)?, b.get(8..12)?);
    let crc = u32::from_le_bytes(c.try_into().ok()?);
    if crc32fast::hash(v) != crc {
        tracing::warn!(
            file = HWM_FILE,
            "seq reservation file damaged; using the log alone"
        );
        return None;
    }
    Some(u64::from_le_bytes(v.try_into().ok()?))
}

fn write_hwm(dir: &Path, value: u64) -> std::io::Result<()> {
    let tmp = dir.join("seq.hwm.tmp");
    let mut b = value.to_le_bytes().to_vec();
    b.extend_from_slice(&crc32fast::hash(&value.to_le_bytes()).to_le_bytes());
    {
        let f = File::create(&tmp)?;
        f.write_all_at(&b, 0)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(HWM_FILE))?;
    File::open(dir)?.sync_all()
}

fn corrupt(file: &Path, offset: u64, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        file: file.display().to_string(),
        offset,
        reason: reason.to_string(),
    }
}

/// One problem found while scanning a segment.
struct Bad {
    offset: u64,
    kind: DecodeError,
}

impl LogStore {
    /// Opens (creating if needed) the log under `dir` and recovers it.
    pub fn open(
        dir: &Path,
        config: &StorageConfig,
        wake: Box<dyn Fn() + Send>,
    ) -> Result<(Self, RecoveryReport), StoreError> {
        let started = Instant::now();
        std::fs::create_dir_all(dir)?;
        let mut names: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name();
                parse_seg_name(name.to_str()?).map(|s| (s, e.path()))
            })
            .collect();
        names.sort_unstable_by_key(|(s, _)| *s);

        let mut st = LogStore {
            dir: dir.to_path_buf(),
            segments: VecDeque::new(),
            next_seg_no: 0,
            next_seq: 1,
            reserved: 0,
            durable: 0,
            sessions: HashMap::new(),
            kinds: HashSet::new(),
            policy: config.fsync,
            segment_bytes: config.segment_bytes.clamp(4096, MAX_SEGMENT_BYTES),
            retention_bytes: config.retention_bytes,
            retention_ms: config.retention_ms,
            checkpoint_every: config.checkpoint_every,
            total_bytes: 0,
            buf: Vec::new(),
            // Replaced below once the durable seq is known; a placeholder thread would
            // cost a spawn, so start it here with 0 and tell it the truth afterwards.
            sync: SyncThread::start(
                dir.to_path_buf(),
                config.fsync,
                config.fsync_interval_ms,
                config.page_cache_bytes,
                0,
                wake,
            )?,
            poisoned: false,
        };
        let mut report = RecoveryReport::default();
        let mut last_seq = 0u64;
        let mut highest_name = 0u64;
        let count = names.len();
        let mut scratch = Vec::new();
        for (i, (first, path)) in names.into_iter().enumerate() {
            highest_name = highest_name.max(first);
            let is_last = i + 1 == count;
            let no = st.next_seg_no;
            st.next_seg_no += 1;
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            let (end, events, max_ts, bad) =
                st.scan_segment(&file, no, &mut last_seq, &mut scratch)?;
            let mut size = end;
            if let Some(bad) = bad {
                let file_len = file.metadata()?.len();
                let torn = is_last && is_torn(&file, &bad, file_len)?;
                if torn {
                    tracing::warn!(file = %path.display(), offset = bad.offset, reason = %bad.kind, "log: truncating torn tail");
                    file.set_len(bad.offset)?;
                    report.truncated = Some(TornTail {
                        file: path.display().to_string(),
                        offset: bad.offset,
                        dropped_bytes: file_len - bad.offset,
                        reason: bad.kind.to_string(),
                    });
                } else if config.quarantine_corrupt {
                    let moved = quarantine(&file, &path, bad.offset, file_len)?;
                    tracing::warn!(file = %path.display(), offset = bad.offset, reason = %bad.kind, moved_to = %moved.display(), "log: quarantined corrupt remainder");
                    report.quarantined.push(Quarantined {
                        file: path.display().to_string(),
                        offset: bad.offset,
                        bytes: file_len - bad.offset,
                        moved_to: moved.display().to_string(),
                        reason: bad.kind.to_string(),
                    });
                } else {
                    return Err(corrupt(&path, bad.offset, bad.kind));
                }
                size = bad.offset;
            }
            report.events += events;
            st.total_bytes += size;
            st.segments.push_back(Segment {
                no,
                path,
                file: Arc::new(file),
                size,
                allocated: size,
                events,
                max_ts,
            });
        }
        report.segments = st.segments.len();
        report.bytes = st.total_bytes;
        st.reserved = read_hwm(dir).unwrap_or(0);
        st.next_seq = (last_seq + 1).max(highest_name).max(st.reserved).max(1);
        st.durable = last_seq;
        if st.segments.is_empty() {
            st.create_segment(st.next_seq)?;
        }
        st.sync
            .tx
            .send(SyncMsg::Written {
                file: st.active()?.file.clone(),
                path: st.active()?.path.clone(),
                seq: last_seq,
                new_file: false,
            })
            .map_err(|_| std::io::Error::other("fsync thread gone"))?;
        st.fill_recent_caches()?;
        report.sessions = st.sessions.len();
        report.next_seq = st.next_seq;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            segments = report.segments,
            events = report.events,
            bytes = report.bytes,
            next_seq = report.next_seq,
            ms = report.elapsed_ms,
            "log recovered"
        );
        Ok((st, report))
    }

    /// Reads one segment front to back in large chunks, indexing every whole record in
    /// place (no copy of the body, no JSON). Returns the end of the last good record, the
    /// events and max timestamp in it, and the first problem.
    fn scan_segment(
        &mut self,
        file: &File,
        no: u32,
        last_seq: &mut u64,
        buf: &mut Vec<u8>,
    ) -> Result<(u64, u64, i64, Option<Bad>), StoreError> {
        let file_len = file.metadata()?.len();
        // `buf[start..filled]` holds the file from `off` (the next record) to `read_to`.
        let (mut off, mut read_to) = (0u64, 0u64);
        let (mut start, mut filled) = (0usize, 0usize);
        let mut events = 0u64;
        let mut max_ts = i64::MIN;
        while off < file_len {
            let bad = |kind| Ok((off, events, max_ts, Some(Bad { offset: off, kind })));
            let have = buf.get(start..filled).unwrap_or_default();
            let need = match record::frame_header(have) {
                Some((len, _)) => {
                    if let Err(e) = record::check_body_len(len) {
                        return bad(e);
                    }
                    record::FRAME_HEADER + len
                }
                None => record::FRAME_HEADER,
            };
            if need as u64 > file_len - off {
                return bad(DecodeError::Short);
            }
            if have.len() < need {
                // Move the partial record to the front and read the next chunk after it;
                // the check above guarantees the file holds at least `need` more bytes.
                buf.copy_within(start..filled, 0);
                filled -= start;
                start = 0;
                let want = need.max(SCAN_CHUNK);
                if buf.len() < want {
                    buf.resize(want, 0);
                }
                let n = ((buf.len() - filled) as u64).min(file_len - read_to) as usize;
                let dst = buf.get_mut(filled..filled + n).unwrap_or_default();
                file.read_exact_at(dst, read_to)?;
                filled += n;
                read_to += n as u64;
                continue;
            }
            if off + need as u64 > u64::from(u32::MAX) {
                return bad(DecodeError::Malformed("segment larger than 4 GiB"));
            }
            let rec = have.get(..need).unwrap_or_default();
            let crc = record::frame_header(rec).map_or(0, |(_, c)| c);
            let body = rec.get(record::FRAME_HEADER..).unwrap_or_default();
            if crc32fast::hash(body) != crc {
                return bad(DecodeError::Crc);
            }
            // Validate the whole batch before indexing any of it.
            let mut prev = *last_seq;
            let mut list = Vec::new();
            if let Err(e) = record::for_each_entry(body, |at, elen, e| {
                if e.seq <= prev {
                    return Err(DecodeError::Malformed("seq not increasing"));
                }
                prev = e.seq;
                list.push((at, elen, e));
                Ok(())
            }) {
                return bad(e);
            }
            let base = off + record::FRAME_HEADER as u64;
            max_ts = max_ts.max(self.index_recovered(no, base, &list));
            events += list.len() as u64;
            *last_seq = prev;
            start += need;
            off += need as u64;
        }
        Ok((off, events, max_ts, None))
    }

    /// Indexes the checked entries of one record; returns their largest timestamp. The
    /// session map is consulted once per run of entries of the same session.
    fn index_recovered(
        &mut self,
        seg: u32,
        base: u64,
        list: &[(usize, usize, EntryRef<'_>)],
    ) -> i64 {
        let every = self.checkpoint_every;
        let mut max_ts = i64::MIN;
        let mut last_kind = "";
        let mut i = 0;
        while let Some((_, _, first)) = list.get(i) {
            let sid = first.session;
            let s = match self.sessions.get_mut(sid) {
                Some(s) => s,
                None => self
                    .sessions
                    .entry(Arc::from(sid))
                    .or_insert_with_key(|k| Session::new(k.clone(), every)),
            };
            for (at, elen, e) in list.get(i..).unwrap_or_default() {
                if e.session != sid {
                    break;
                }
                if e.kind != last_kind {
                    if !self.kinds.contains(e.kind) {
                        self.kinds.insert(Arc::from(e.kind));
                    }
                    last_kind = e.kind;
                }
                let loc = Loc {
                    seq: e.seq,
                    ts: e.ts,
                    seg,
                    off: (base + *at as u64) as u32,
                    len: *elen as u32,
                };
                s.index(loc, e.agent);
                max_ts = max_ts.max(e.ts);
                i += 1;
            }
        }
        max_ts
    }

    fn fill_recent_caches(&mut self) -> Result<(), StoreError> {
        let ids: Vec<Arc<str>> = self.sessions.keys().cloned().collect();
        for id in ids {
            let Some(s) = self.sessions.get(&id) else {
                continue;
            };
            let from = s
                .idx
                .end()
                .saturating_sub(RECENT_CACHE as u64)
                .max(s.idx.base());
            let evs = self.read_positions(s, from..s.idx.end())?;
            if let Some(s) = self.sessions.get_mut(&id) {
                s.recent = evs.into();
            }
        }
        Ok(())
    }

    fn active(&self) -> Result<&Segment, StoreError> {
        self.segments
            .back()
            .ok_or_else(|| StoreError::Io(std::io::Error::other("no active segment")))
    }

    fn create_segment(&mut self, first_seq: u64) -> Result<(), StoreError> {
        if let Some(sealed) = self.segments.back_mut() {
            sealed.release_spare();
        }
        let path = self.dir.join(seg_name(first_seq));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let no = self.next_seg_no;
        self.next_seg_no += 1;
        self.segments.push_back(Segment {
            no,
            path,
            file: Arc::new(file),
            size: 0,
            allocated: 0,
            events: 0,
            max_ts: i64::MIN,
        });
        Ok(())
    }

    fn segment(&self, no: u32) -> Option<&Segment> {
        let first = self.segments.front()?.no;
        self.segments.get(no.checked_sub(first)? as usize)
    }

    /// Groups the entries at `positions` of a session into runs that sit back to back in
    /// one segment (at most `max_run` bytes each) and calls `f(segment, run)` for each, a
    /// run listing `(position, loc)` in order. Positions no longer held are skipped.
    fn for_each_run(
        &self,
        s: &Session,
        positions: impl IntoIterator<Item = u64>,
        max_run: u64,
        mut f: impl FnMut(&Segment, &[(u64, Loc)]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut run: Vec<(u64, Loc)> = Vec::new();
        let (mut run_lo, mut run_hi) = (0u64, 0u64);
        let mut flush = |run: &mut Vec<(u64, Loc)>| -> Result<(), StoreError> {
            let Some((_, first)) = run.first() else {
                return Ok(());
            };
            let seg = self.segment(first.seg).ok_or_else(|| {
                StoreError::NotFound(format!("segment {} of seq {}", { first.seg }, first.seq()))
            })?;
            f(seg, run)?;
            run.clear();
            Ok(())
        };
        for p in positions {
            let Some(&l) = s.idx.at(p) else { continue };
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

    /// Reads the events at absolute positions of a session, in order: one positional read
    /// per run of back-to-back entries, into a buffer the run's events then share (each
    /// event's `json` is a slice of it, so no per-event copy). The buffer holds only the
    /// run's own entries, so a kept event pins little more than itself.
    fn read_positions(
        &self,
        s: &Session,
        positions: impl IntoIterator<Item = u64>,
    ) -> Result<Vec<EventRef>, StoreError> {
        let positions = positions.into_iter();
        let mut out = Vec::with_capacity(positions.size_hint().0.min(1 << 16));
        let mut agent: Option<Arc<str>> = None;
        let mut kind: Option<Arc<str>> = None;
        self.for_each_run(s, positions, READ_RUN, |seg, run| {
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
                    session: s.id.clone(),
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

    /// Brings the lazy checkpoint fold forward towards `upper`, by at most `budget`
    /// events; true once it has reached `upper`. Nothing at or after `upper` can be at or
    /// before the instant asked for, so folding further would not help. Events the fold
    /// never saw may have been deleted meanwhile: then it starts afresh at the first
    /// retained event, as after a restart.
    fn fold_up_to(
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
        self.fold_positions(s, done..end, |pos, e| tt.push(pos, &facts(e)))?;
        Ok(end >= upper)
    }

    /// Calls `f(position, entry)` for the entries at `positions`, in order, reading them in
    /// large runs through one reused buffer; nothing is allocated per event.
    fn fold_positions(
        &self,
        s: &Session,
        positions: impl IntoIterator<Item = u64>,
        mut f: impl FnMut(u64, &EntryRef<'_>),
    ) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        self.for_each_run(s, positions, FOLD_RUN, |seg, run| {
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

    /// Events at positions `[from, to)`, from the recent cache when it covers them.
    fn range(&self, s: &Session, from: u64, to: u64) -> Result<Vec<EventRef>, StoreError> {
        let cached_from = s.idx.end() - s.recent.len() as u64;
        if from >= cached_from {
            let a = (from - cached_from) as usize;
            let b = (to - cached_from) as usize;
            return Ok(s.recent.range(a..b.min(s.recent.len())).cloned().collect());
        }
        self.read_positions(s, from..to)
    }

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

/// A bad record at the end of the last segment is a torn write when nothing after it
/// could be data: its declared extent runs past the end, or everything after it is
/// zero (a crash after the size grew but before the pages were written), or it is the
/// very last record and only its checksum fails.
fn is_torn(file: &File, bad: &Bad, file_len: u64) -> Result<bool, StoreError> {
    if matches!(bad.kind, DecodeError::Short) {
        return Ok(true);
    }
    if matches!(bad.kind, DecodeError::Crc) {
        let mut head = [0u8; record::FRAME_HEADER];
        file.read_exact_at(&mut head, bad.offset)?;
        if let Some((len, _)) = record::frame_header(&head) {
            if bad.offset + (record::FRAME_HEADER + len) as u64 == file_len {
                return Ok(true);
            }
        }
    }
    let mut pos = bad.offset;
    let mut buf = vec![0u8; 1 << 16];
    while pos < file_len {
        let n = ((file_len - pos) as usize).min(buf.len());
        let chunk = buf.get_mut(..n).unwrap_or_default();
        file.read_exact_at(chunk, pos)?;
        if chunk.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

/// Copies `[offset, len)` of a segment to `<name>.<offset>.quarantine`, then cuts it off.
fn quarantine(file: &File, path: &Path, offset: u64, file_len: u64) -> Result<PathBuf, StoreError> {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{offset}.quarantine"));
    let dest = path.with_file_name(name);
    let out = File::create(&dest)?;
    let mut pos = offset;
    let mut buf = vec![0u8; 1 << 20];
    while pos < file_len {
        let n = ((file_len - pos) as usize).min(buf.len());
        let chunk = buf.get_mut(..n).unwrap_or_default();
        file.read_exact_at(chunk, pos)?;
        out.write_all_at(chunk, pos - offset)?;
        pos += n as u64;
    }
    out.sync_all()?;
    file.set_len(offset)?;
    file.sync_all()?;
    Ok(dest)
}

impl Store for LogStore {
    fn append(&mut self, batch: Vec<Pending>) -> Result<Appended, StoreError> {
        if batch.is_empty() {
            return Ok(Appended { events: Vec::new() });
        }
        if self.poisoned {
            return Err(StoreError::Io(std::io::Error::other(
                "log refused: an earlier failed write could not be undone",
            )));
        }
        let n = batch.len() as u64;
        let first = self.next_seq;
        if first + n > self.reserved {
            let upto = first + n + SEQ_RESERVATION;
            write_hwm(&self.dir, upto)?;
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

    fn session(&self, id: &str) -> Option<SessionSummary> {
        self.sessions.get(id).map(Session::summary)
    }

    fn sessions(&self) -> Vec<SessionSummary> {
        self.sessions.values().map(Session::summary).collect()
    }

    fn recent(&self, session: &str, n: usize) -> Vec<EventRef> {
        let Some(s) = self.sessions.get(session) else {
            return Vec::new();
        };
        let from = s.idx.end().saturating_sub(n as u64).max(s.idx.base());
        self.range(s, from, s.idx.end()).unwrap_or_else(|e| {
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
        let Some(s) = self.sessions.get(session) else {
            return Ok(Vec::new());
        };
        let from = s.idx.pos_after_seq(after);
        let to = from.saturating_add(limit as u64).min(s.idx.end());
        self.range(s, from, to)
    }

    fn time_range(
        &self,
        session: &str,
        start: i64,
        end: i64,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<EventRef>, StoreError> {
        let Some(s) = self.sessions.get(session) else {
            return Ok(Vec::new());
        };
        let positions = s.idx.time_range(start, end, offset, limit);
        self.read_positions(s, positions)
    }

    fn count_time_range(&self, session: &str, start: i64, end: i64) -> u64 {
        self.sessions
            .get(session)
            .map_or(0, |s| s.idx.count_time_range(start, end))
    }

    fn first_seq(&self, session: &str) -> Option<u64> {
        self.sessions
            .get(session)
            .and_then(|s| s.idx.front())
            .map(|l| l.seq())
    }

    fn deleted_after(&self, session: &str, after: u64) -> Option<Deleted> {
        self.sessions.get(session)?.deleted.after(after)
    }

    fn prepare_state(&self, session: &str, at: i64, budget: usize) -> Result<bool, StoreError> {
        // An unknown session is answered (NotFound) by `state_at` itself.
        let Some(s) = self.sessions.get(session) else {
            return Ok(true);
        };
        let mut tt = borrow_checkpoints(s)?;
        self.fold_up_to(s, &mut tt, s.idx.upper_for_ts(at), budget.max(1) as u64)
    }

    fn state_at(
        &self,
        session: &str,
        at: i64,
        traces: usize,
    ) -> Result<(SessionState, Vec<EventRef>), StoreError> {
        let s = self
            .sessions
            .get(session)
            .ok_or_else(|| StoreError::NotFound(format!("session {session}")))?;
        let upper = s.idx.upper_for_ts(at);
        let (mut state, from) = {
            let mut tt = borrow_checkpoints(s)?;
            self.fold_up_to(s, &mut tt, upper, u64::MAX)?;
            tt.start_for(at, s.idx.base())
        };
        let wanted = (from..upper).filter(|&p| s.idx.at(p).is_some_and(|l| l.ts() <= at));
        let mut scratch = FoldScratch::default();
        self.fold_positions(s, wanted, |_, e| state.fold(&facts(e), &mut scratch))?;
        let last = s.idx.last_le(at, upper, traces);
        let recent = match (last.first(), last.last()) {
            (Some(&a), Some(&b)) if b + 1 - a == last.len() as u64 => self.range(s, a, b + 1)?,
            _ => self.read_positions(s, last)?,
        };
        Ok((state, recent))
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        let upto = self.sync.barrier()?;
        self.durable = self.durable.max(upto);
        Ok(())
    }

    fn durable_seq(&self) -> u64 {
        self.durable
    }

    fn poll_sync(&mut self) -> Result<(), StoreError> {
        let mut failed = None;
        while let Ok(d) = self.sync.done.try_recv() {
            match d {
                SyncDone::Durable(s) => self.durable = self.durable.max(s),
                SyncDone::Failed(e) => failed = Some(e),
            }
        }
        failed.map_or(Ok(()), |e| Err(StoreError::Io(e)))
    }

    fn enforce_retention(&mut self, now_ms: i64) -> RetentionReport {
        let cutoff = now_ms.saturating_sub(i64::try_from(self.retention_ms).unwrap_or(i64::MAX));
        self.sweep(Some(cutoff))
    }
}

impl LogStore {
    /// Deletes old segments over the byte limit, or (with a `cutoff`) whose newest event
    /// is older than it. The active segment always stays.
    fn sweep(&mut self, cutoff: Option<i64>) -> RetentionReport {
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
    /// Indexes a just-written batch; returns its largest timestamp. The session map is
    /// consulted once per run of events of the same session, and only the last
    /// [`RECENT_CACHE`] events of a run enter the recent cache.
    fn index_appended(
        &mut self,
        events: &[EventRef],
        rel: &[(usize, usize)],
        seg_no: u32,
        base: u64,
    ) -> i64 {
        let every = self.checkpoint_every;
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
                None => self
                    .sessions
                    .entry(sid.clone())
                    .or_insert_with(|| Session::new(sid.clone(), every)),
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
                        if !s.agents.contains(a) {
                            s.agents.insert(a.clone());
                        }
                        last_agent = Some(a);
                    }
                }
                s.idx.push(Loc {
                    seq: ev.seq,
                    ts: ev.timestamp,
                    seg: seg_no,
                    off: (base + *at as u64) as u32,
                    len: *elen as u32,
                });
                max_ts = max_ts.max(ev.timestamp);
            }
            let keep = run.len().min(RECENT_CACHE);
            let skip = run.len() - keep;
            while s.recent.len() + keep > RECENT_CACHE {
                if s.recent.pop_front().is_none() {
                    break;
                }
            }
            s.recent.extend(run.iter().skip(skip).cloned());
            i += len.max(1);
        }
        max_ts
    }

    /// Writes one finished record, rolling the segment first when it would overflow.
    /// Returns the segment number, the record's offset and whether the segment is new.
    /// On failure nothing of the record remains visible.
    fn write_record(&mut self, rec: &[u8], first_seq: u64) -> Result<(u32, u64, bool), StoreError> {
        let mut new_file = false;
        let active = self.active()?;
        let would = active.size + rec.len() as u64;
        if active.size > 0 && (would > self.segment_bytes || would > u64::from(u32::MAX)) {
            self.create_segment(first_seq)?;
            new_file = true;
        }
        let Some(seg) = self.segments.back_mut() else {
            return Err(std::io::Error::other("no active segment").into());
        };
        seg.reserve(rec.len() as u64);
        if let Err(e) = seg.file.write_all_at(rec, seg.size) {
            if let Err(e2) = seg.file.set_len(seg.size) {
                tracing::error!(file = %seg.path.display(), error = %e2, "log: cannot cut back a failed write; refusing further appends");
                self.poisoned = true;
            }
            return Err(e.into());
        }
        let base = seg.size;
        seg.size += rec.len() as u64;
        self.total_bytes += rec.len() as u64;
        Ok((seg.no, base, new_file))
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
        if let Some(active) = self.segments.back_mut() {
            active.release_spare();
        }
    }
}

/// The session's checkpoints, mutably: reads fold them lazily behind `&self`.
fn borrow_checkpoints(s: &Session) -> Result<RefMut<'_, Checkpoints>, StoreError> {
    s.tt.try_borrow_mut()
        .map_err(|_| StoreError::Io(std::io::Error::other("time travel re-entered")))
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
