//! Segment files and the seq reservation: how the log's files are named, created,
//! grown and written.
//!
//! A segment is written only at its end, one whole record per positional write; the disk
//! behind the next writes is reserved ahead (`fallocate`) so an append does not pay for
//! block allocation page by page. `seq.hwm` records how far seqs have been handed out, so
//! a restart never hands one out twice.

use super::{LogStore, StoreError};
use crate::store::fail_points::FailOp;
use crate::store::health::wall_ms;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Seqs reserved on disk at a time: a restart resumes after the reservation, so a seq
/// handed out (and perhaps delivered live) before a crash is never handed out again.
pub const SEQ_RESERVATION: u64 = 1 << 20;
/// Offsets in the index are `u32`: segments stay below this.
pub(super) const MAX_SEGMENT_BYTES: u64 = 1 << 31;
const HWM_FILE: &str = "seq.hwm";

/// Disk reserved ahead of the active segment's end, in one `fallocate` call.
///
/// Appending to a file grows it page by page, and on ext4 the block reservation for each
/// new page is a good part of what a write costs; reserving the blocks ahead with
/// `FALLOC_FL_KEEP_SIZE` leaves the file's size (all readers and recovery see) alone
/// and cut the kernel's share of an append by about a third here (docs/STORAGE.md).
/// The spare blocks are given back when the segment is sealed or the log closed.
const PREALLOCATE: u64 = 8 << 20;

pub(super) struct Segment {
    pub(super) no: u32,
    pub(super) path: PathBuf,
    pub(super) file: Arc<File>,
    pub(super) size: u64,
    /// Bytes of disk reserved for the file (beyond `size`, invisible to readers).
    pub(super) allocated: u64,
    pub(super) events: u64,
    pub(super) max_ts: i64,
}

impl Segment {
    /// Makes sure the disk behind the next `len` bytes is reserved. A filesystem that
    /// cannot (no `fallocate`) is simply written to as it is.
    pub(super) fn reserve(&mut self, len: u64) {
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
    pub(super) fn release_spare(&mut self) {
        if self.allocated > self.size && self.allocated != u64::MAX {
            if let Err(e) = self.file.set_len(self.size) {
                tracing::warn!(file = %self.path.display(), error = %e, "log: cannot give back reserved disk");
            }
        }
        self.allocated = self.size;
    }
}

pub(super) fn seg_name(first_seq: u64) -> String {
    format!("{first_seq:020}.log")
}

pub(super) fn parse_seg_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(super) fn read_hwm(dir: &Path) -> Option<u64> {
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

pub(super) fn write_hwm(dir: &Path, value: u64) -> std::io::Result<()> {
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

impl LogStore {
    pub(super) fn active(&self) -> Result<&Segment, StoreError> {
        self.segments
            .back()
            .ok_or_else(|| StoreError::Io(std::io::Error::other("no active segment")))
    }

    pub(super) fn create_segment(&mut self, first_seq: u64) -> std::io::Result<()> {
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

    pub(super) fn segment(&self, no: u32) -> Option<&Segment> {
        let first = self.segments.front()?.no;
        self.segments.get(no.checked_sub(first)? as usize)
    }

    /// Writes one finished record, rolling the segment first when it would overflow.
    /// Returns the segment number, the record's offset and whether the segment is new.
    /// On failure nothing of the record remains visible.
    pub(super) fn write_record(
        &mut self,
        rec: &[u8],
        first_seq: u64,
    ) -> Result<(u32, u64, bool), StoreError> {
        let mut new_file = false;
        let active = self.active()?;
        let would = active.size + rec.len() as u64;
        if active.size > 0 && (would > self.segment_bytes || would > u64::from(u32::MAX)) {
            if let Err(e) = self.create_segment(first_seq) {
                let reason = format!("write failed: new segment in {}: {e}", self.dir.display());
                self.health.write_failed(reason, wall_ms(), false);
                return Err(e.into());
            }
            new_file = true;
        }
        let Some(seg) = self.segments.back_mut() else {
            return Err(std::io::Error::other("no active segment").into());
        };
        seg.reserve(rec.len() as u64);
        let wrote = self
            .faults
            .check(FailOp::Write)
            .and_then(|()| seg.file.write_all_at(rec, seg.size));
        if let Err(e) = wrote {
            let mut reason = format!("write failed: {}: {e}", seg.path.display());
            let cut = self
                .faults
                .check(FailOp::CutBack)
                .and_then(|()| seg.file.set_len(seg.size));
            if let Err(e2) = cut {
                tracing::error!(file = %seg.path.display(), error = %e2, "log: cannot cut back a failed write; refusing further appends");
                self.poisoned = true;
                reason.push_str(&format!(
                    "; cutting it back failed too ({e2}), so appends are refused until a restart"
                ));
            }
            self.health.write_failed(reason, wall_ms(), self.poisoned);
            return Err(e.into());
        }
        let base = seg.size;
        seg.size += rec.len() as u64;
        self.total_bytes += rec.len() as u64;
        Ok((seg.no, base, new_file))
    }
}
