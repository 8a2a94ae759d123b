//! Paced work on the store: history answers, `sinceSeq` catch-up, time-travel folds.
//!
//! A job produces one chunk per step and the loop steps it only while the client's write
//! queue is below its low water mark, so a ten-million-event replay costs one chunk of
//! memory at a time and never holds the loop for more than one chunk's read.

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
}

impl HistoryJob {
    pub fn new(
        store: &dyn Store,
        request_id: Option<RequestId>,
        session: Arc<str>,
        (start, end): (i64, i64),
        offset: usize,
        limit: usize,
        chunk_size: usize,
    ) -> HistoryJob {
        let total = store.count_time_range(&session, start, end);
        let available = (total as usize).saturating_sub(offset);
        let remaining = available.min(limit);
        let chunk_size = chunk_size.max(1);
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
        }
    }

    /// Reads and encodes the next chunk into `out`; returns true when it was the last.
    pub fn step(&mut self, store: &dyn Store, out: &mut Vec<u8>) -> Result<bool, StoreError> {
        let want = self.remaining.min(self.chunk_size);
        let events: Vec<EventRef> = if want == 0 {
            Vec::new()
        } else {
            store.time_range(&self.session, self.start, self.end, self.offset, want)?
        };
        self.offset += events.len();
        self.remaining = self.remaining.saturating_sub(events.len());
        self.current += 1;
        // A short read means the range holds fewer events than counted (retention ran
        // meanwhile): end the answer rather than loop.
        let is_last =
            self.remaining == 0 || events.len() < want || self.current >= self.total_chunks;
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
        Ok(is_last)
    }
}

/// A `subscribe_session` with `sinceSeq`, catching up before it joins the live stream.
#[derive(Debug)]
pub struct ResumeJob {
    pub session: Arc<str>,
    /// Last seq already sent.
    pub after: u64,
    pub chunk_size: usize,
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
