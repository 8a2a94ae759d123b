//! The log's per-session index: sparse, about 3.5 bytes per event instead of a 28-byte
//! entry each (docs/STORAGE.md, Indexes).
//!
//! Kafka keeps one index entry per block of a partition and reads forward from it. Here
//! sessions share one log, so reading forward from a block start would walk every other
//! session's bytes too; instead each event keeps where it is, compressed: per event a
//! varint *gap* (bytes from the end of the session's previous event; 0 when a batch is
//! one session, so one byte) and a varint *length* (two bytes for typical events), plus,
//! when the session moves to a new segment, the segment step and the offset. Every
//! [`BLOCK`] events carry a 64-byte header: where the block's first event is, its seq and
//! timestamp, and the four time summaries the dense index had (min/max of the block, max
//! from the start, min to the end). Seqs and timestamps of the other events are not held:
//! a read that needs them (the exact position of a seq, time filters inside a block that
//! straddles a bound) decodes the block's entries from the log, at most one block beyond
//! what it returns.
//!
//! Positions are absolute (counted from the session's first event ever), so they stay
//! valid while retention trims the front; checkpoints refer to them too. `blocks[0]`
//! always starts exactly at `base`: when retention cuts into it, the caller tells it the
//! new first event's seq and timestamp ([`SparseIndex::pop_segment`]).

/// Events per block.
pub(crate) const BLOCK: u64 = 64;

/// Where an event is: decoded from the index, not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub seg: u32,
    pub off: u32,
    pub len: u32,
}

/// 72 bytes per [`BLOCK`] events.
#[derive(Debug, Clone, Copy)]
struct Block {
    first_seq: u64,
    first_ts: i64,
    pmax: i64,
    smin: i64,
    /// The block's min and max timestamp relative to `first_ts` (see [`Block::min`]).
    min_d: i32,
    max_d: i32,
    /// Offset in `codes` of the code of the block's second event.
    at: u32,
    /// Where the block's first event is.
    seg: u32,
    off: u32,
    len: u32,
    /// Events in the block (its first position is `block_start`).
    count: u32,
    /// Length of the block's last event, which the next code's length is relative to.
    last_len: u32,
    /// The gap before the block's last event, which the next gap is relative to
    /// (offsets stay below 2^31, so gaps fit).
    last_gap: u32,
    /// The gap the code after the block's first event is relative to: 0 for a block
    /// that began there, the gap before its new first event once retention moved it.
    first_gap: u32,
}

impl Block {
    /// A lower bound of the block's timestamps: exact unless it lies more than 2^31 ms
    /// (24 days) before the first one, then unbounded (the block is then filtered event
    /// by event, never wrongly counted whole).
    fn min(&self) -> i64 {
        if self.min_d == i32::MIN {
            i64::MIN
        } else {
            self.first_ts + i64::from(self.min_d)
        }
    }
    /// An upper bound, likewise.
    fn max(&self) -> i64 {
        if self.max_d == i32::MAX {
            i64::MAX
        } else {
            self.first_ts + i64::from(self.max_d)
        }
    }
    fn widen(&mut self, ts: i64) {
        // `i32::MIN` / `i32::MAX` stand for "unbounded", so a difference that reaches
        // them saturates there (an unbounded side stays unbounded).
        let d = ts.saturating_sub(self.first_ts);
        if d < i64::from(self.min_d) {
            self.min_d = i32::try_from(d).unwrap_or(i32::MIN);
        }
        if d > i64::from(self.max_d) {
            self.max_d = i32::try_from(d).unwrap_or(i32::MAX);
        }
        self.pmax = self.pmax.max(ts);
        self.smin = self.smin.min(ts);
    }
}

/// Makes room for one more element, growing by a quarter instead of doubling: the index
/// is most of what a long session costs, and doubling would leave up to half of it idle.
fn room<T>(v: &mut Vec<T>, min: usize) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 4).max(min));
    }
}

/// One session's sparse seq/time index.
#[derive(Debug, Default)]
pub(crate) struct SparseIndex {
    blocks: Vec<Block>,
    /// Per-event codes of every event but a block's first.
    codes: Vec<u8>,
    /// Absolute position of the first retained event.
    base: u64,
    last_seq: u64,
    last_seg: u32,
    last_end: u32,
}

/// Zigzag: small negative and positive differences as small unsigned numbers.
fn zigzag(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some(&x) = b.get(*at) {
        *at += 1;
        v |= u64::from(x & 0x7f) << shift;
        if x < 0x80 || shift >= 63 {
            break;
        }
        shift += 7;
    }
    v
}

/// What [`SparseIndex::pop_segment`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Popped {
    pub count: u64,
    pub first_seq: u64,
    /// The last removed event's place (its seq is read from the log by the caller), or
    /// `None` when the index emptied (the last seq is then [`SparseIndex::last_seq`]).
    pub last: Option<Loc>,
    /// The new first event's place, when events remain and it is not a block start.
    pub new_front: Option<Loc>,
}

impl SparseIndex {
    pub(crate) fn len(&self) -> usize {
        (self.end() - self.base) as usize
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
    pub(crate) fn base(&self) -> u64 {
        self.base
    }
    /// One past the last position.
    pub(crate) fn end(&self) -> u64 {
        match self.blocks.len() {
            0 => self.base,
            n => self.block_start(n - 1) + self.blocks.get(n - 1).map_or(0, |b| u64::from(b.count)),
        }
    }
    pub(crate) fn first_seq(&self) -> Option<u64> {
        self.blocks.first().map(|b| b.first_seq)
    }
    pub(crate) fn first_ts(&self) -> Option<i64> {
        self.blocks.first().map(|b| b.first_ts)
    }
    pub(crate) fn last_seq(&self) -> Option<u64> {
        (!self.is_empty()).then_some(self.last_seq)
    }
    /// The largest timestamp ever pushed (including trimmed events).
    pub(crate) fn max_ts(&self) -> Option<i64> {
        self.blocks.last().map(|b| b.pmax)
    }

    /// Heap bytes held (capacity), for the memory figures.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.blocks.capacity() * std::mem::size_of::<Block>() + self.codes.capacity()
    }

    fn block_base(&self) -> u64 {
        self.base / BLOCK
    }
    /// First position of `blocks[i]`.
    fn block_start(&self, i: usize) -> u64 {
        if i == 0 {
            self.base
        } else {
            (self.block_base() + i as u64) * BLOCK
        }
    }
    /// One past the last position of `blocks[i]`.
    fn block_end(&self, i: usize) -> u64 {
        self.block_start(i) + self.blocks.get(i).map_or(0, |b| u64::from(b.count))
    }
    fn block_of(&self, pos: u64) -> usize {
        (pos / BLOCK - self.block_base()) as usize
    }

    /// Appends an event; its seq must exceed every seq already held, and it must lie
    /// after the session's previous event in the log.
    pub(crate) fn push(&mut self, seq: u64, ts: i64, seg: u32, off: u32, len: u32) {
        debug_assert!(self.is_empty() || self.last_seq < seq);
        let pos = self.end();
        if self.blocks.is_empty() || pos % BLOCK == 0 {
            let pmax = self.blocks.last().map_or(ts, |b| b.pmax.max(ts));
            room(&mut self.blocks, 1);
            self.blocks.push(Block {
                first_seq: seq,
                first_ts: ts,
                min_d: 0,
                max_d: 0,
                pmax,
                smin: ts,
                at: self.codes.len() as u32,
                seg,
                off,
                len,
                count: 1,
                last_len: len,
                last_gap: 0,
                first_gap: 0,
            });
        } else {
            let codes = &mut self.codes;
            // At most 15 bytes per code (two varints of u32 and one of a length step).
            if codes.capacity() - codes.len() < 15 {
                codes.reserve_exact((codes.len() / 4).max(16));
            }
            if let Some(b) = self.blocks.last_mut() {
                if seg == self.last_seg && off >= self.last_end {
                    // The gap relative to the previous one: 0 both when a batch is one
                    // session and when sessions take turns with events of similar size.
                    let gap = off - self.last_end;
                    put_varint(codes, zigzag(i64::from(gap) - i64::from(b.last_gap)) << 1);
                    b.last_gap = gap;
                } else {
                    put_varint(codes, (u64::from(seg.wrapping_sub(self.last_seg)) << 1) | 1);
                    put_varint(codes, u64::from(off));
                    b.last_gap = 0;
                }
                put_varint(codes, zigzag(i64::from(len) - i64::from(b.last_len)));
                b.widen(ts);
                b.count += 1;
                b.last_len = len;
            }
        }
        // `smin` is a suffix minimum: a late timestamp lowers it for every earlier block
        // still above it, which is a suffix of the (non-decreasing) array.
        for b in self.blocks.iter_mut().rev().skip(1) {
            if b.smin > ts {
                b.smin = ts;
            } else {
                break;
            }
        }
        self.last_seq = seq;
        self.last_seg = seg;
        self.last_end = off.saturating_add(len);
    }

    /// The places of positions `[from, to)` (clamped to what is held), in order.
    pub(crate) fn locs(&self, from: u64, to: u64) -> Locs<'_> {
        let from = from.max(self.base);
        let to = to.min(self.end());
        let mut it = Locs {
            idx: self,
            pos: from,
            to: from,
            cursor: 0,
            seg: 0,
            next: 0,
            len: 0,
            gap: 0,
        };
        if from < to {
            it.pos = self.block_start(self.block_of(from));
            // Walk to `from` inside the block.
            while it.pos < from {
                it.step();
            }
            it.to = to;
        }
        it
    }

    /// Removes the leading events that sit in segment `seg` (retention deleted it).
    pub(crate) fn pop_segment(&mut self, seg: u32) -> Option<Popped> {
        let first_seq = self.first_seq()?;
        let end = self.end();
        let (mut count, mut last, mut new_front) = (0u64, None, None);
        let (mut front_at, mut front_gap) = (0usize, 0u32);
        {
            let mut it = self.locs(self.base, end);
            while let Some((p, l)) = it.next() {
                if l.seg != seg {
                    if p != self.block_start(self.block_of(p)) {
                        new_front = Some(l);
                        front_at = it.cursor;
                        front_gap = it.gap.clamp(0, i64::from(u32::MAX)) as u32;
                    }
                    break;
                }
                count += 1;
                last = Some(l);
            }
        }
        if count == 0 {
            return None;
        }
        if count == end - self.base {
            self.base = end;
            self.blocks = Vec::new();
            self.codes = Vec::new();
            return Some(Popped {
                count,
                first_seq,
                last: None,
                new_front: None,
            });
        }
        let new_base = self.base + count;
        let mut k = 0;
        while k + 1 < self.blocks.len() && self.block_end(k) <= new_base {
            k += 1;
        }
        let kept_end = self.block_end(k);
        self.blocks.drain(..k);
        self.base = new_base;
        if let Some(b) = self.blocks.first_mut() {
            b.count = (kept_end - new_base) as u32;
            if let Some(l) = new_front {
                b.at = front_at as u32;
                b.first_gap = front_gap;
                b.seg = l.seg;
                b.off = l.off;
                b.len = l.len;
            }
        }
        // Give back the codes of events gone, once they are most of the buffer.
        let dead = self.blocks.first().map_or(0, |b| b.at as usize);
        if dead > self.codes.len() / 2 {
            self.codes.drain(..dead);
            for b in &mut self.blocks {
                b.at -= dead as u32;
            }
            if self.codes.capacity() > 2 * self.codes.len() + 64 {
                self.codes.shrink_to_fit();
            }
        }
        Some(Popped {
            count,
            first_seq,
            last,
            new_front,
        })
    }

    /// After [`SparseIndex::pop_segment`] cut into the first block: the new first
    /// event's seq and timestamp, read from the log.
    pub(crate) fn set_front(&mut self, seq: u64, ts: i64) {
        if let Some(b) = self.blocks.first_mut() {
            // min and max are kept relative to the first timestamp: carry them over.
            let (min, max) = (b.min(), b.max());
            b.first_seq = seq;
            b.first_ts = ts;
            b.min_d = 0;
            b.max_d = 0;
            let (pmax, smin) = (b.pmax, b.smin);
            b.widen(min);
            b.widen(max);
            (b.pmax, b.smin) = (pmax, smin);
        }
    }

    /// Positions `[lo, hi]`: the first position whose seq exceeds `after` is in it.
    /// `lo == hi` means it is exactly known.
    pub(crate) fn seq_bounds(&self, after: u64) -> (u64, u64) {
        if self.is_empty() || after >= self.last_seq {
            return (self.end(), self.end());
        }
        let i = self.blocks.partition_point(|b| b.first_seq <= after);
        if i == 0 {
            return (self.base, self.base);
        }
        // Block i-1 starts at or before `after`; the answer is after its first event and
        // at most the next block's start.
        (self.block_start(i - 1) + 1, self.block_end(i - 1))
    }

    /// Absolute positions `[lo, hi)` outside of which no event has `start <= ts <= end`.
    fn candidate_span(&self, start: i64, end: i64) -> (u64, u64) {
        if start > end || self.is_empty() {
            return (self.base, self.base);
        }
        let first_block = self.blocks.partition_point(|b| b.pmax < start);
        let past_block = self.blocks.partition_point(|b| b.smin <= end);
        let lo = if first_block >= self.blocks.len() {
            self.end()
        } else {
            self.block_start(first_block)
        };
        let hi = if past_block >= self.blocks.len() {
            self.end()
        } else {
            self.block_start(past_block)
        };
        (lo, hi.max(lo))
    }

    /// Absolute positions `[lo, hi)` inside which *every* event has `start <= ts <= end`
    /// (two binary searches on the monotone summaries).
    fn dense_span(&self, start: i64, end: i64) -> (u64, u64) {
        if start > end || self.is_empty() {
            return (self.base, self.base);
        }
        let first = self.blocks.partition_point(|b| b.smin < start);
        let past = self.blocks.partition_point(|b| b.pmax <= end);
        let at = |i: usize| {
            if i >= self.blocks.len() {
                self.end()
            } else {
                self.block_start(i)
            }
        };
        let (lo, hi) = (at(first), at(past));
        (lo, hi.max(lo))
    }

    /// Absolute position past which every event has `ts > at`.
    pub(crate) fn upper_for_ts(&self, at: i64) -> u64 {
        if self.is_empty() {
            return self.base;
        }
        let past = self.blocks.partition_point(|b| b.smin <= at);
        if past >= self.blocks.len() {
            self.end()
        } else {
            self.block_start(past)
        }
    }

    /// Walks the candidate span of `[start, end]`, telling `f` of each run `[lo, hi)` of
    /// positions and whether every event in it matches (`true`) or it must be filtered
    /// by timestamp (`false`); runs that cannot match are left out. `f` returns whether
    /// to go on.
    pub(crate) fn scan(&self, start: i64, end: i64, mut f: impl FnMut(u64, u64, bool) -> bool) {
        let (lo, hi) = self.candidate_span(start, end);
        let (dense_lo, dense_hi) = self.dense_span(start, end);
        let mut pos = lo;
        while pos < hi {
            if pos >= dense_lo && pos < dense_hi {
                let to = dense_hi.min(hi);
                if !f(pos, to, true) {
                    return;
                }
                pos = to;
                continue;
            }
            let i = self.block_of(pos);
            let block_end = self.block_end(i).min(hi);
            let go = match self.blocks.get(i) {
                Some(b) if b.min() >= start && b.max() <= end => f(pos, block_end, true),
                Some(b) if b.max() < start || b.min() > end => true,
                _ => f(pos, block_end, false),
            };
            if !go {
                return;
            }
            pos = block_end;
        }
    }

    /// The blocks below `upper`, newest first, as `[lo, hi)` with hi clamped to `upper`,
    /// leaving out those whose every event has `ts > at`.
    pub(crate) fn blocks_le_rev(
        &self,
        at: i64,
        upper: u64,
    ) -> impl Iterator<Item = (u64, u64)> + '_ {
        let upper = upper.min(self.end());
        let n = if upper <= self.base {
            0
        } else {
            self.block_of(upper - 1) + 1
        };
        (0..n.min(self.blocks.len())).rev().filter_map(move |i| {
            let b = self.blocks.get(i)?;
            (b.min() <= at).then(|| (self.block_start(i), self.block_end(i).min(upper)))
        })
    }
}

/// Decodes places in order: see [`SparseIndex::locs`].
pub(crate) struct Locs<'a> {
    idx: &'a SparseIndex,
    pos: u64,
    to: u64,
    /// Offset in `idx.codes` of the next code.
    cursor: usize,
    seg: u32,
    /// Where the previous event ended.
    next: u32,
    /// The previous event's length.
    len: u32,
    /// The previous gap in this block.
    gap: i64,
}

impl Locs<'_> {
    /// Decodes the event at `pos` and moves on.
    fn step(&mut self) -> Loc {
        let idx = self.idx;
        let i = idx.block_of(self.pos);
        let loc = match idx.blocks.get(i) {
            Some(b) if self.pos == idx.block_start(i) => {
                self.cursor = b.at as usize;
                self.gap = i64::from(b.first_gap);
                Loc {
                    seg: b.seg,
                    off: b.off,
                    len: b.len,
                }
            }
            _ => {
                let codes = &idx.codes;
                let g = get_varint(codes, &mut self.cursor);
                let (seg, off) = if g & 1 == 0 {
                    self.gap = self.gap.saturating_add(unzigzag(g >> 1));
                    let off = i64::from(self.next).saturating_add(self.gap);
                    (self.seg, off.clamp(0, i64::from(u32::MAX)) as u32)
                } else {
                    self.gap = 0;
                    let seg = self.seg.wrapping_add((g >> 1) as u32);
                    (seg, get_varint(codes, &mut self.cursor) as u32)
                };
                let d = unzigzag(get_varint(codes, &mut self.cursor));
                let len = (i64::from(self.len) + d).clamp(0, i64::from(u32::MAX)) as u32;
                Loc { seg, off, len }
            }
        };
        self.seg = loc.seg;
        self.next = loc.off.saturating_add(loc.len);
        self.len = loc.len;
        self.pos += 1;
        loc
    }
}

impl Iterator for Locs<'_> {
    type Item = (u64, Loc);
    fn next(&mut self) -> Option<(u64, Loc)> {
        if self.pos >= self.to {
            return None;
        }
        let p = self.pos;
        Some((p, self.step()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (seq, ts, seg, off, len) of a synthetic session interleaved with others.
    fn events(n: u64) -> Vec<(u64, i64, u32, u32, u32)> {
        let (mut seg, mut off) = (0u32, 0u32);
        (0..n)
            .map(|i| {
                let len = 100 + (i * 37 % 400) as u32;
                if i % 300 == 299 {
                    seg += 1 + (i % 2) as u32;
                    off = (i % 7) as u32 * 1000;
                } else if i % 5 == 0 {
                    off += (i * 13 % 70_000) as u32; // other sessions' bytes between
                }
                let e = (
                    i * 3 + 1,
                    if i % 97 == 0 {
                        i as i64 / 3
                    } else {
                        i as i64 * 10 + (i * 7919 % 13) as i64 - 6
                    },
                    seg,
                    off,
                    len,
                );
                off += len;
                e
            })
            .collect()
    }

    fn build(es: &[(u64, i64, u32, u32, u32)]) -> SparseIndex {
        let mut idx = SparseIndex::default();
        for &(s, t, g, o, l) in es {
            idx.push(s, t, g, o, l);
        }
        idx
    }

    #[test]
    fn places_decode_as_pushed_from_any_position() {
        let es = events(1000);
        let idx = build(&es);
        let all: Vec<Loc> = idx.locs(0, 1000).map(|(_, l)| l).collect();
        let want: Vec<Loc> = es
            .iter()
            .map(|&(_, _, seg, off, len)| Loc { seg, off, len })
            .collect();
        assert_eq!(all, want);
        for from in [0u64, 1, 127, 128, 129, 500, 999] {
            let got: Vec<(u64, Loc)> = idx.locs(from, from + 5).collect();
            let exp: Vec<(u64, Loc)> = (from..(from + 5).min(1000))
                .map(|p| (p, want[p as usize]))
                .collect();
            assert_eq!(got, exp, "from {from}");
        }
        assert!(idx.heap_bytes() < 6 * 1000, "{} bytes", idx.heap_bytes());
    }

    #[test]
    fn time_scan_and_seq_bounds_match_brute_force() {
        let es = events(1000);
        let idx = build(&es);
        for &(s, e) in &[
            (0, 10_000),
            (500, 600),
            (-100, -1),
            (3000, 3000),
            (2000, 9000),
            (100, 50),
        ] {
            let want: Vec<u64> = es
                .iter()
                .enumerate()
                .filter(|(_, x)| x.1 >= s && x.1 <= e)
                .map(|(i, _)| i as u64)
                .collect();
            let mut got = Vec::new();
            idx.scan(s, e, |lo, hi, exact| {
                for p in lo..hi {
                    let t = es[p as usize].1;
                    if exact {
                        assert!(t >= s && t <= e, "exact run holds {t} outside {s}..{e}");
                    }
                    if t >= s && t <= e {
                        got.push(p);
                    }
                }
                true
            });
            assert_eq!(got, want, "{s}..{e}");
            let up = idx.upper_for_ts(e);
            assert!(es.iter().skip(up as usize).all(|x| x.1 > e));
            let mut seen = Vec::new();
            for (lo, hi) in idx.blocks_le_rev(e, 1000) {
                seen.extend((lo..hi).filter(|&p| es[p as usize].1 <= e));
            }
            seen.sort_unstable();
            let le: Vec<u64> = (0..1000).filter(|&p| es[p as usize].1 <= e).collect();
            assert_eq!(seen, le);
        }
        for after in [0u64, 1, 2, 3, 4, 383, 384, 385, 2998, 2999, 3000, 5000] {
            let exact = es.iter().position(|x| x.0 > after).unwrap_or(1000) as u64;
            let (lo, hi) = idx.seq_bounds(after);
            assert!(
                lo <= exact && exact <= hi,
                "after {after}: {exact} not in {lo}..={hi}"
            );
        }
    }

    #[test]
    fn popping_segments_keeps_places_and_front() {
        let es = events(1000);
        let mut idx = build(&es);
        let mut gone = 0usize;
        for seg in 0..3u32 {
            let Some(p) = idx.pop_segment(seg) else {
                continue;
            };
            assert_eq!(p.first_seq, es[gone].0);
            gone += p.count as usize;
            assert_eq!(p.last.map(|l| l.off), Some(es[gone - 1].3));
            assert_eq!(idx.base(), gone as u64);
            if p.new_front.is_some() {
                idx.set_front(es[gone].0, es[gone].1);
            }
            assert_eq!(idx.first_seq(), Some(es[gone].0));
            assert_eq!(idx.first_ts(), Some(es[gone].1));
            let got: Vec<Loc> = idx.locs(0, 1000).map(|(_, l)| l).collect();
            let want: Vec<Loc> = es[gone..]
                .iter()
                .map(|&(_, _, seg, off, len)| Loc { seg, off, len })
                .collect();
            assert_eq!(got, want, "after popping segment {seg}");
        }
        assert!(gone > 0);
        while let Some(seg) = idx
            .locs(idx.base(), idx.base() + 1)
            .next()
            .map(|(_, l)| l.seg)
        {
            idx.pop_segment(seg);
        }
        assert!(idx.is_empty() && idx.first_seq().is_none());
        idx.push(10_000, 5, 9, 0, 10);
        assert_eq!(
            idx.locs(0, u64::MAX).collect::<Vec<_>>(),
            vec![(
                1000,
                Loc {
                    seg: 9,
                    off: 0,
                    len: 10
                }
            )]
        );
    }
}
