//! The per-session seq/time index both stores share.
//!
//! Entries sit in seq order in a `VecDeque` (retention pops the front). Seq lookups are a
//! binary search. Timestamps may arrive out of order, so a plain binary search on `ts`
//! would be wrong; instead every [`BLOCK`] entries carry four numbers — the block's min and
//! max timestamp, the max over everything up to the block's end (`pmax`, non-decreasing)
//! and the min over everything from the block's start to the end of the session (`smin`,
//! non-decreasing). `pmax` bounds where a time range can start, `smin` where it can end,
//! both by binary search; whole blocks whose `[min, max]` lies inside the range are counted
//! or skipped without looking at their entries. With in-order timestamps a time query
//! therefore costs `O(log n + returned / BLOCK)`; disorder only adds the disordered span.
//! Blocks cost 32 bytes per 64 entries (0.5 byte per event).
//!
//! Positions are absolute (counted from the session's first event ever), so they stay
//! valid while the front is trimmed; checkpoints refer to them too.
//!
//! Sized for the many sessions that hold one event: the first entry and the first block
//! are allocated exactly (a `VecDeque` would reserve room for four of each), and the
//! first block's number is derived from `base` rather than stored.

use std::collections::VecDeque;

/// Entries per summary block.
pub const BLOCK: u64 = 64;

/// What the index needs to know about an entry.
pub trait Entry {
    fn seq(&self) -> u64;
    fn ts(&self) -> i64;
}

#[derive(Debug, Clone, Copy)]
struct Block {
    min: i64,
    max: i64,
    pmax: i64,
    smin: i64,
}

/// Seq-ordered entries of one session with time summaries.
///
/// `blocks[0]` is always block number `base / BLOCK`: blocks are popped as `base` leaves
/// them and cleared when the index empties, so the first block's number needs no field.
#[derive(Debug)]
pub struct SeqTimeIndex<E> {
    entries: VecDeque<E>,
    /// Absolute position of `entries[0]`.
    base: u64,
    blocks: VecDeque<Block>,
}

impl<E> Default for SeqTimeIndex<E> {
    fn default() -> Self {
        SeqTimeIndex {
            entries: VecDeque::new(),
            base: 0,
            blocks: VecDeque::new(),
        }
    }
}

/// Pushes onto `q`, reserving exactly one slot for the first element: an index that
/// stays at one entry (most sessions) then holds no spare room. Growth after that is
/// the usual doubling.
fn push_exact<T>(q: &mut VecDeque<T>, x: T) {
    if q.capacity() == 0 {
        q.reserve_exact(1);
    }
    q.push_back(x);
}

impl<E: Entry> SeqTimeIndex<E> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Absolute position of the first retained entry.
    pub fn base(&self) -> u64 {
        self.base
    }
    /// Absolute block number of `blocks[0]`.
    fn block_base(&self) -> u64 {
        self.base / BLOCK
    }
    /// Absolute position one past the last entry.
    pub fn end(&self) -> u64 {
        self.base + self.entries.len() as u64
    }
    pub fn front(&self) -> Option<&E> {
        self.entries.front()
    }
    pub fn back(&self) -> Option<&E> {
        self.entries.back()
    }
    /// The entry at an absolute position, if retained.
    pub fn at(&self, pos: u64) -> Option<&E> {
        let rel = usize::try_from(pos.checked_sub(self.base)?).ok()?;
        self.entries.get(rel)
    }
    /// The largest timestamp ever pushed (including trimmed entries).
    pub fn max_ts(&self) -> Option<i64> {
        self.blocks.back().map(|b| b.pmax)
    }

    /// Appends an entry; its seq must exceed every seq already held.
    pub fn push(&mut self, e: E) {
        debug_assert!(self.entries.back().is_none_or(|b| b.seq() < e.seq()));
        let ts = e.ts();
        let pos = self.end();
        let block_no = pos / BLOCK;
        if block_no >= self.block_base() + self.blocks.len() as u64 {
            let pmax = self.blocks.back().map_or(ts, |b| b.pmax.max(ts));
            push_exact(
                &mut self.blocks,
                Block {
                    min: ts,
                    max: ts,
                    pmax,
                    smin: ts,
                },
            );
        } else if let Some(b) = self.blocks.back_mut() {
            b.min = b.min.min(ts);
            b.max = b.max.max(ts);
            b.pmax = b.pmax.max(ts);
            b.smin = b.smin.min(ts);
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
        push_exact(&mut self.entries, e);
    }

    /// Drops the oldest entry.
    pub fn pop_front(&mut self) -> Option<E> {
        let e = self.entries.pop_front()?;
        self.base += 1;
        if self.base % BLOCK == 0 || self.entries.is_empty() {
            // `base` left its block (or the index emptied, and the next push starts the
            // block `base` is in): keep `blocks[0]` the block `base / BLOCK`.
            if self.entries.is_empty() {
                self.blocks.clear();
            } else {
                self.blocks.pop_front();
            }
        }
        Some(e)
    }

    /// Absolute position of the first entry with `seq > after`.
    pub fn pos_after_seq(&self, after: u64) -> u64 {
        self.base + self.entries.partition_point(|e| e.seq() <= after) as u64
    }

    /// Absolute positions `[lo, hi)` outside of which no entry has `start <= ts <= end`.
    fn candidate_span(&self, start: i64, end: i64) -> (u64, u64) {
        if start > end || self.entries.is_empty() {
            return (self.base, self.base);
        }
        let first_block = self.blocks.partition_point(|b| b.pmax < start) as u64;
        let past_block = self.blocks.partition_point(|b| b.smin <= end) as u64;
        let lo = ((self.block_base() + first_block) * BLOCK).max(self.base);
        let hi = ((self.block_base() + past_block) * BLOCK).min(self.end());
        (lo, hi.max(lo))
    }

    /// Absolute positions `[lo, hi)` inside which *every* entry has `start <= ts <= end`:
    /// from the first block whose suffix minimum is `>= start` to the end of the last block
    /// whose prefix maximum is `<= end` (both bounds monotone, so two binary searches).
    /// With in-order timestamps this is almost the whole answer, so counting it or paging
    /// past an offset in it costs nothing per block.
    fn dense_span(&self, start: i64, end: i64) -> (u64, u64) {
        if start > end || self.entries.is_empty() {
            return (self.base, self.base);
        }
        let first = self.blocks.partition_point(|b| b.smin < start) as u64;
        let past = self.blocks.partition_point(|b| b.pmax <= end) as u64;
        let lo = ((self.block_base() + first) * BLOCK).max(self.base);
        let hi = ((self.block_base() + past) * BLOCK).min(self.end());
        (lo, hi.max(lo))
    }

    /// Absolute position past which every entry has `ts > at`.
    pub fn upper_for_ts(&self, at: i64) -> u64 {
        if self.entries.is_empty() {
            return self.base;
        }
        let past_block = self.blocks.partition_point(|b| b.smin <= at) as u64;
        ((self.block_base() + past_block) * BLOCK).clamp(self.base, self.end())
    }

    /// Walks the candidate span block by block, telling `f` of each run `[lo, hi)` of
    /// matching positions (a whole matching block at once, otherwise single entries);
    /// `f` returns whether to go on.
    fn scan(&self, start: i64, end: i64, mut f: impl FnMut(u64, u64) -> bool) {
        let (lo, hi) = self.candidate_span(start, end);
        let (dense_lo, dense_hi) = self.dense_span(start, end);
        let mut pos = lo;
        while pos < hi {
            if pos >= dense_lo && pos < dense_hi {
                let to = dense_hi.min(hi);
                if !f(pos, to) {
                    return;
                }
                pos = to;
                continue;
            }
            let block_no = pos / BLOCK;
            let block_end = ((block_no + 1) * BLOCK).min(hi);
            let block = usize::try_from(block_no - self.block_base())
                .ok()
                .and_then(|i| self.blocks.get(i));
            match block {
                Some(b) if b.min >= start && b.max <= end => {
                    if !f(pos, block_end) {
                        return;
                    }
                }
                Some(b) if b.max < start || b.min > end => {}
                _ => {
                    for p in pos..block_end {
                        let hit = self.at(p).is_some_and(|e| e.ts() >= start && e.ts() <= end);
                        if hit && !f(p, p + 1) {
                            return;
                        }
                    }
                }
            }
            pos = block_end;
        }
    }

    /// Absolute positions of entries with `start <= ts <= end` in seq order, skipping
    /// `offset` of them, at most `limit`.
    pub fn time_range(&self, start: i64, end: i64, offset: usize, limit: usize) -> Vec<u64> {
        let mut out = Vec::new();
        if limit == 0 {
            return out;
        }
        let mut skip = offset as u64;
        self.scan(start, end, |lo, hi| {
            let jump = skip.min(hi - lo);
            skip -= jump;
            for p in lo + jump..hi {
                out.push(p);
                if out.len() >= limit {
                    return false;
                }
            }
            true
        });
        out
    }

    /// How many entries have `start <= ts <= end`.
    pub fn count_time_range(&self, start: i64, end: i64) -> u64 {
        let mut n = 0u64;
        self.scan(start, end, |lo, hi| {
            n += hi - lo;
            true
        });
        n
    }

    /// The last `n` absolute positions below `upper` whose entry has `ts <= at`, oldest
    /// first. Blocks entirely after `at` are skipped.
    pub fn last_le(&self, at: i64, upper: u64, n: usize) -> Vec<u64> {
        let mut out = Vec::with_capacity(n.min(1024));
        let mut pos = upper.min(self.end());
        while pos > self.base && out.len() < n {
            let block_no = (pos - 1) / BLOCK;
            let block_start = (block_no * BLOCK).max(self.base);
            let block = usize::try_from(block_no - self.block_base())
                .ok()
                .and_then(|i| self.blocks.get(i));
            if block.is_some_and(|b| b.min > at) {
                pos = block_start;
                continue;
            }
            while pos > block_start && out.len() < n {
                pos -= 1;
                if self.at(pos).is_some_and(|e| e.ts() <= at) {
                    out.push(pos);
                }
            }
        }
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy)]
    struct E(u64, i64);
    impl Entry for E {
        fn seq(&self) -> u64 {
            self.0
        }
        fn ts(&self) -> i64 {
            self.1
        }
    }

    fn brute(es: &[E], start: i64, end: i64) -> Vec<u64> {
        es.iter()
            .enumerate()
            .filter(|(_, e)| e.1 >= start && e.1 <= end)
            .map(|(i, _)| i as u64)
            .collect()
    }

    fn build(ts: &[i64]) -> (SeqTimeIndex<E>, Vec<E>) {
        let mut idx = SeqTimeIndex::default();
        let es: Vec<E> = ts
            .iter()
            .enumerate()
            .map(|(i, &t)| E(i as u64 * 2 + 1, t))
            .collect();
        for e in &es {
            idx.push(*e);
        }
        (idx, es)
    }

    #[test]
    fn time_queries_match_brute_force_with_disorder() {
        // Mostly increasing with jitter and a few far-out-of-order stragglers.
        let ts: Vec<i64> = (0..1000i64)
            .map(|i| {
                if i % 97 == 0 {
                    i / 3
                } else {
                    i * 10 + (i * 7919 % 13) - 6
                }
            })
            .collect();
        let (idx, es) = build(&ts);
        for &(s, e) in &[
            (0, 10_000),
            (500, 600),
            (-100, -1),
            (3000, 3000),
            (2000, 9000),
            (100, 50),
        ] {
            let want = brute(&es, s, e);
            assert_eq!(
                idx.count_time_range(s, e),
                want.len() as u64,
                "count {s}..{e}"
            );
            assert_eq!(idx.time_range(s, e, 0, usize::MAX), want, "range {s}..{e}");
            for (off, lim) in [(0, 7), (5, 100), (64, 64), (want.len(), 3)] {
                let got = idx.time_range(s, e, off, lim);
                let exp: Vec<u64> = want.iter().copied().skip(off).take(lim).collect();
                assert_eq!(got, exp, "page {s}..{e} off {off} lim {lim}");
            }
            let last = idx.last_le(e, idx.end(), 10);
            let exp: Vec<u64> = es
                .iter()
                .enumerate()
                .filter(|(_, x)| x.1 <= e)
                .map(|(i, _)| i as u64)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .take(10)
                .rev()
                .collect();
            assert_eq!(last, exp);
            let up = idx.upper_for_ts(e);
            assert!(es.iter().skip(up as usize).all(|x| x.1 > e));
        }
    }

    #[test]
    fn one_entry_reserves_no_spare_room() {
        let mut idx = SeqTimeIndex::default();
        idx.push(E(1, 10));
        assert_eq!((idx.entries.capacity(), idx.blocks.capacity()), (1, 1));
        idx.push(E(2, 11));
        assert_eq!(idx.time_range(0, 20, 0, 10), vec![0, 1]);
        idx.pop_front();
        idx.pop_front();
        assert!(idx.is_empty() && idx.blocks.is_empty());
        idx.push(E(3, 5));
        assert_eq!((idx.base(), idx.max_ts()), (2, Some(5)));
        assert_eq!(idx.time_range(0, 20, 0, 10), vec![2]);
    }

    #[test]
    fn seq_lookup_and_trim() {
        let (mut idx, _) = build(&(0..300).collect::<Vec<_>>());
        assert_eq!(idx.pos_after_seq(0), 0);
        assert_eq!(idx.pos_after_seq(1), 1);
        assert_eq!(idx.pos_after_seq(2), 1);
        assert_eq!(idx.pos_after_seq(10_000), 300);
        for _ in 0..130 {
            idx.pop_front();
        }
        assert_eq!(idx.base(), 130);
        assert_eq!(idx.front().map(|e| e.0), Some(261));
        assert_eq!(idx.pos_after_seq(0), 130);
        assert_eq!(idx.count_time_range(0, 1000), 170);
        assert_eq!(idx.time_range(0, 1000, 0, 3), vec![130, 131, 132]);
        assert_eq!(idx.count_time_range(0, 129), 0);
        while idx.pop_front().is_some() {}
        idx.push(E(10_000, 5));
        assert_eq!(idx.time_range(0, 10, 0, 10), vec![300]);
    }
}
