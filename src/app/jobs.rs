//! Paced work on the store: history answers, `sinceSeq` catch-up, time-travel folds.
//!
//! A job produces one chunk per step and the loop steps it only while the client's write
//! queue is below its low water mark, so a ten-million-event replay costs one chunk of
//! memory at a time and never holds the loop for more than one chunk's read.

use crate::condition::Condition;
use crate::event::{Event, EventRef};
use crate::protocol::server::{encode_historical_data, HistoryChunk};
use crate::protocol::RequestId;
use crate::store::{Store, StoreError};
use std::sync::Arc;

/// A `request_history` answer in progress.
#[derive(Debug)]
pub struct HistoryJob {
    pub request_id: Option<RequestId>,
    pub session: Arc<str>,
    pub start: i64,
    pub end: i64,
    /// Next match to read (absolute, within the range).
    pub offset: usize,
    /// Events still to send under the answer's limit.
    pub remaining: usize,
    pub chunk_size: usize,
    /// Matches in the whole range.
    pub total: u64,
    pub current: u64,
    pub total_chunks: u64,
    /// `request_history.filter`: only matching events count, are skipped by `offset`
    /// and are sent. The job then first counts the matches (paced, [`SCAN_STEP`] stored
    /// events per step), so `total` and `chunkInfo.total` are exact.
    pub filter: Option<Arc<Condition>>,
    /// Filtered: still counting.
    counting: bool,
    /// Filtered: next stored event of the range to look at, and matches still to skip.
    scan: usize,
    skip: usize,
    /// Filtered: matches found for the chunk being filled.
    carry: Vec<EventRef>,
}

/// Stored events a filtered history answer reads per step (counting or filling).
pub const SCAN_STEP: usize = 4096;

impl HistoryJob {
    pub fn new(
        store: &dyn Store,
        request_id: Option<RequestId>,
        session: Arc<str>,
        (start, end): (i64, i64),
        offset: usize,
        limit: usize,
        chunk_size: usize,
        filter: Option<Arc<Condition>>,
    ) -> HistoryJob {
        let chunk_size = chunk_size.max(1);
        if filter.is_some() {
            return HistoryJob {
                request_id,
                session,
                start,
                end,
                offset,
                remaining: limit,
                chunk_size,
                total: 0,
                current: 0,
                total_chunks: 1,
                filter,
                counting: true,
                scan: 0,
                skip: offset,
                carry: Vec::new(),
            };
        }
        let total = store.count_time_range(&session, start, end);
        let available = (total as usize).saturating_sub(offset);
        let remaining = available.min(limit);
        let total_chunks = (remaining.div_ceil(chunk_size)).max(1) as u64;
        HistoryJob {
            request_id,
            session,
            start,
            end,
            offset,
            remaining,
            chunk_size,
            total,
            current: 0,
            total_chunks,
            filter: None,
            counting: false,
            scan: 0,
            skip: 0,
            carry: Vec::new(),
        }
    }

    /// Reads and encodes the next chunk into `out`: `Some(true)` when it was the last,
    /// `None` when this step only counted or looked for matches (nothing to send yet).
    pub fn step(
        &mut self,
        store: &dyn Store,
        out: &mut Vec<u8>,
    ) -> Result<Option<bool>, StoreError> {
        if let Some(filter) = self.filter.clone() {
            return self.step_filtered(&filter, store, out);
        }
        let want = self.remaining.min(self.chunk_size);
        let events: Vec<EventRef> = if want == 0 {
            Vec::new()
        } else {
            store.time_range(&self.session, self.start, self.end, self.offset, want)?
        };
        self.offset += events.len();
        self.remaining = self.remaining.saturating_sub(events.len());
        // A short read means the range holds fewer events than counted (retention ran
        // meanwhile): end the answer rather than loop.
        let short = events.len() < want;
        Ok(Some(self.emit(&events, short, out)))
    }

    fn step_filtered(
        &mut self,
        filter: &Condition,
        store: &dyn Store,
        out: &mut Vec<u8>,
    ) -> Result<Option<bool>, StoreError> {
        let (s, e) = (self.start, self.end);
        if self.counting {
            let run = store.time_range(&self.session, s, e, self.scan, SCAN_STEP)?;
            self.scan += run.len();
            self.total += run.iter().filter(|ev| filter.matches(&ev.json)).count() as u64;
            if run.len() == SCAN_STEP {
                return Ok(None);
            }
            self.counting = false;
            self.scan = 0;
            self.remaining = (self.total as usize)
                .saturating_sub(self.offset)
                .min(self.remaining);
            self.total_chunks = (self.remaining.div_ceil(self.chunk_size)).max(1) as u64;
        }
        let want = self.remaining.min(self.chunk_size);
        let mut exhausted = want == 0;
        if self.carry.len() < want {
            let run = store.time_range(&self.session, s, e, self.scan, SCAN_STEP)?;
            exhausted = run.len() < SCAN_STEP;
            for ev in &run {
                self.scan += 1;
                if !filter.matches(&ev.json) {
                    continue;
                }
                if self.skip > 0 {
                    self.skip -= 1;
                    continue;
                }
                self.carry.push(ev.clone());
                if self.carry.len() == want {
                    exhausted = false;
                    break;
                }
            }
            if self.carry.len() < want && !exhausted {
                return Ok(None);
            }
        }
        let events = std::mem::take(&mut self.carry);
        self.remaining = self.remaining.saturating_sub(events.len());
        Ok(Some(self.emit(&events, exhausted, out)))
    }

    /// Encodes one chunk; true when it is the last.
    fn emit(&mut self, events: &[EventRef], short: bool, out: &mut Vec<u8>) -> bool {
        self.current += 1;
        let is_last = self.remaining == 0 || short || self.current >= self.total_chunks;
        if is_last {
            self.total_chunks = self.current;
        }
        let chunk = HistoryChunk {
            session: &self.session,
            start: self.start,
            end: self.end,
            current: self.current,
            total_chunks: self.total_chunks,
            is_last,
            total: self.total,
        };
        encode_historical_data(
            out,
            &chunk,
            events.iter().map(|e| &**e),
            self.request_id.as_ref(),
        );
        is_last
    }
}

/// Why a subscription is catching up from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeMode {
    /// `subscribe_session` with `sinceSeq`.
    CatchUp,
    /// `resume` after a breakpoint: until the next hit, else into the live stream.
    Resume,
    /// `step`: exactly the next admitted event, then paused again.
    Step,
}

/// A subscription catching up from the log before it joins the live stream
/// (`sinceSeq`, `resume`, `step`); breakpoints are evaluated on the way.
#[derive(Debug)]
pub struct ResumeJob {
    pub session: Arc<str>,
    /// Last seq already sent.
    pub after: u64,
    pub chunk_size: usize,
    pub mode: ResumeMode,
}

impl ResumeJob {
    /// The next run of stored events. `Ok(None)` when caught up: the caller then joins
    /// the live stream in the same turn, so no event falls between the two.
    pub fn step(&mut self, store: &dyn Store) -> Result<Option<Vec<EventRef>>, StoreError> {
        let events = store.after_seq(&self.session, self.after, self.chunk_size)?;
        match events.last() {
            None => Ok(None),
            Some(last) => {
                self.after = last.seq;
                Ok(Some(events))
            }
        }
    }
}

/// A `time_travel` waiting for the store's lazy fold to reach its instant.
#[derive(Debug)]
pub struct TimeTravelJob {
    pub request_id: Option<RequestId>,
    pub session: Arc<str>,
    pub at: i64,
}

/// Events folded per loop turn while a time travel prepares (about 10 ms of work).
pub const FOLD_BUDGET: usize = 20_000;

/// Borrowed view of a run of events, for encoders that take `&[&Event]`.
pub fn refs(events: &[EventRef]) -> Vec<&Event> {
    events.iter().map(|e| &**e).collect()
}
