//! Opening the log: the sequential scan that rebuilds the indexes, and the rules for a
//! damaged record — a torn tail is cut, anything else stops the open unless
//! `storage.quarantine_corrupt` moves the damaged remainder aside.
//!
//! The scan reads each segment in large chunks and checks records in place (no copy of
//! the body, no JSON), because recovery time is start-up time.

use super::segments::{parse_seg_name, read_hwm, Segment, MAX_SEGMENT_BYTES};
use super::{LogStore, Session, StoreError};
use crate::config::StorageConfig;
use crate::store::fail_points::FailPoints;
use crate::store::health::HealthTracker;
use crate::store::record::{self, DecodeError, EntryRef};
use crate::store::sync::{SyncMsg, SyncThread};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Recovery reads segments in chunks of this size: few syscalls, and a chunk still fits
/// comfortably in the last-level cache's neighbourhood.
const SCAN_CHUNK: usize = 8 << 20;

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

        let faults = FailPoints::default();
        let mut st = LogStore {
            dir: dir.to_path_buf(),
            segments: VecDeque::new(),
            next_seg_no: 0,
            next_seq: 1,
            reserved: 0,
            durable: 0,
            sessions: crate::hash::Map::default(),
            order: Default::default(),
            forgotten: Default::default(),
            cache: Default::default(),
            max_sessions: config.max_sessions.max(1),
            at_session_limit: false,
            kinds: crate::hash::Set::default(),
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
                faults.clone(),
            )?,
            poisoned: false,
            health: HealthTracker::default(),
            faults,
            cursor: Default::default(),
            time_cursor: Default::default(),
            saved: crate::hash::Map::default(),
            tt_dirty: Default::default(),
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
                    return Err(StoreError::CorruptAtOpen {
                        file: path.display().to_string(),
                        offset: bad.offset,
                        reason: bad.kind.to_string(),
                    });
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
        st.sync.note_written(last_seq);
        // Saved checkpoints: only their heads are read here; states are read and
        // checked when a time travel uses them.
        st.saved = super::saved::load(dir);
        st.saved.retain(|id, _| st.sessions.contains_key(id));
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
        let mut max_ts = i64::MIN;
        let mut last_kind = "";
        let mut i = 0;
        while let Some((_, _, first)) = list.get(i) {
            let sid = first.session;
            let s = match self.sessions.get_mut(sid) {
                Some(s) => s,
                None => {
                    // Sessions are met in seq order, so this is their creation order.
                    let id: Arc<str> = Arc::from(sid);
                    self.order.push(first.seq, id.clone());
                    self.sessions
                        .entry(id)
                        .or_insert_with(|| Box::new(Session::new(first.seq)))
                }
            };
            let mut last_agent = None;
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
                if e.agent.is_some() && e.agent != last_agent {
                    if let Some(a) = e.agent {
                        s.agents.insert_str(a);
                    }
                    last_agent = e.agent;
                }
                s.idx
                    .push(e.seq, e.ts, seg, (base + *at as u64) as u32, *elen as u32);
                max_ts = max_ts.max(e.ts);
                i += 1;
            }
        }
        max_ts
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
