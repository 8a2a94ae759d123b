//! Where accepted events live, and the reads the protocol makes on them.
//!
//! [`Store`] is the one interface the server talks to. Two implementations sit behind it:
//! [`memory::MemoryStore`], a bounded ring per session (tests, `--ephemeral`), and the
//! durable segmented log in [`log`]. The server assigns nothing itself: `append` hands out
//! `seq`s, so the counter lives with the data that must survive a restart.

pub mod index;
pub mod log;
pub mod memory;
pub mod record;
mod sync;

use crate::config::StorageConfig;
use crate::event::EventRef;
use std::collections::VecDeque;
use std::path::Path;

pub use log::{LogStore, RecoveryReport};
pub use memory::MemoryStore;

/// What [`Store::enforce_retention`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Segment files deleted.
    pub segments: usize,
    pub bytes: u64,
    pub events: u64,
}

/// Events of one session that retention deleted after a seq: what `events_dropped
/// {reason:"retention"}` tells a resuming client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    pub count: u64,
    pub from_seq: u64,
    pub to_seq: u64,
}

/// Runs kept per session before the oldest two merge; bounds memory on long runs.
const DELETED_RUNS: usize = 64;

/// The seq runs retention deleted from one session, oldest first: one run per deleted
/// segment (log) or per evicted event (memory), each `(first, last, count)`.
///
/// Retention always deletes a session's oldest events, so the runs are a prefix of the
/// session. A `since` before a run's first seq counts that run exactly; a `since` inside
/// a run cannot be resolved without the deleted seqs themselves, so that run counts at
/// most `min(count, last - since)` — an upper bound, documented in docs/STORAGE.md.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeletedRuns {
    runs: VecDeque<(u64, u64, u64)>,
}

impl DeletedRuns {
    pub(crate) fn record(&mut self, first: u64, last: u64, count: u64) {
        if count == 0 {
            return;
        }
        self.runs.push_back((first, last, count));
        if self.runs.len() > DELETED_RUNS {
            if let (Some((a, _, c1)), Some((_, b, c2))) =
                (self.runs.pop_front(), self.runs.pop_front())
            {
                self.runs.push_front((a, b, c1 + c2));
            }
        }
    }

    pub(crate) fn after(&self, since: u64) -> Option<Deleted> {
        let mut out: Option<Deleted> = None;
        for &(first, last, count) in self.runs.iter().filter(|r| r.1 > since) {
            let (from, n) = if first > since {
                (first, count)
            } else {
                (since + 1, count.min(last - since))
            };
            let d = out.get_or_insert(Deleted {
                count: 0,
                from_seq: from,
                to_seq: last,
            });
            d.count += n;
            d.to_seq = last;
        }
        out
    }
}

/// Opens the store the configuration asks for: the durable log under `data_dir` when
/// `persist` is on (running recovery), else a [`MemoryStore`]. `wake` is called from the
/// sync thread whenever [`Store::durable_seq`] may have advanced; the loop then calls
/// [`Store::poll_sync`].
pub fn open(
    config: &StorageConfig,
    data_dir: &Path,
    wake: Box<dyn Fn() + Send>,
) -> Result<(Box<dyn Store>, Option<RecoveryReport>), StoreError> {
    if config.persist {
        let (store, report) = LogStore::open(data_dir, config, wake)?;
        Ok((Box::new(store), Some(report)))
    } else {
        Ok((Box::new(MemoryStore::new(config)), None))
    }
}

// The types ingest hands the store and the store hands back live in `crate::model`, so
// producers and the protocol need not depend on storage; re-exported for `store::X`.
pub(crate) use crate::model::delivered;
#[cfg(test)]
pub(crate) use crate::model::delivered_json;
pub use crate::model::{Appended, Pending, SessionSummary, SEQ_HEADROOM};

/// Errors of the storage layer.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The disk said no (write, fsync, read).
    Io(std::io::Error),
    /// A record failed its checksum or framing where it must not.
    Corrupt {
        file: String,
        offset: u64,
        reason: String,
    },
    /// The read asked for something the store cannot answer (unknown session, …).
    NotFound(String),
    /// The batch cannot be stored as given (a string too long to frame); nothing stored.
    Invalid(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Io(e) => write!(f, "storage I/O error: {e}"),
            StoreError::Corrupt {
                file,
                offset,
                reason,
            } => {
                write!(f, "corrupt record in {file} at offset {offset}: {reason}")
            }
            StoreError::NotFound(what) => write!(f, "not found: {what}"),
            StoreError::Invalid(what) => write!(f, "cannot store batch: {what}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e)
    }
}

/// The storage interface the loop uses. All calls are made from the loop thread and must
/// not block for long: appends buffer, reads cost what they return.
pub trait Store {
    /// Sequences and stores a whole batch, or nothing. Seqs are contiguous within a batch.
    fn append(&mut self, batch: Vec<Pending>) -> Result<Appended, StoreError>;
    /// The next seq `append` will hand out.
    fn next_seq(&self) -> u64;
    /// Summary of one session, `None` when the store has never seen it.
    fn session(&self, id: &str) -> Option<SessionSummary>;
    /// Every known session.
    fn sessions(&self) -> Vec<SessionSummary>;
    /// The last `n` events of a session, oldest first.
    fn recent(&self, session: &str, n: usize) -> Vec<EventRef>;
    /// Events of a session with `seq > after`, oldest first, at most `limit`.
    /// Gaps left by retention are found by comparing with [`Store::first_seq`].
    fn after_seq(
        &self,
        session: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventRef>, StoreError>;
    /// Events of a session with `start <= timestamp <= end`, ordered by seq, skipping
    /// the first `offset` matches, at most `limit`.
    fn time_range(
        &self,
        session: &str,
        start: i64,
        end: i64,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<EventRef>, StoreError>;
    /// How many events of a session have `start <= timestamp <= end`.
    fn count_time_range(&self, session: &str, start: i64, end: i64) -> u64;
    /// The oldest seq still held for a session (after retention), if any.
    fn first_seq(&self, session: &str) -> Option<u64>;
    /// The session's state as of `at` (epoch ms) and its last ≤`traces` events at or
    /// before that instant (SPEC §6). See [`crate::timetravel`].
    fn state_at(
        &self,
        session: &str,
        at: i64,
        traces: usize,
    ) -> Result<(crate::timetravel::SessionState, Vec<EventRef>), StoreError>;
    /// Makes appended data durable now, blocking (shutdown). `fsync = always` acks do
    /// not use this: they wait for [`Store::durable_seq`].
    fn sync(&mut self) -> Result<(), StoreError>;
    /// Every seq `<=` this is on disk (fsynced). A store without a disk reports the last
    /// seq it handed out, so acks are never held for it.
    fn durable_seq(&self) -> u64 {
        self.next_seq().saturating_sub(1)
    }
    /// Collects the sync thread's completions (call after its wake-up, or each turn).
    /// An error means an fsync failed: appended data may not be durable.
    fn poll_sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// What retention deleted of a session with `seq > after`, in this process's life
    /// (a restart forgets it). `None` when nothing was.
    fn deleted_after(&self, _session: &str, _after: u64) -> Option<Deleted> {
        None
    }
    /// Does at most `budget` events of the work `state_at(session, at, …)` would do before
    /// it can answer (the lazy time-travel fold); true when `state_at` is now cheap. The
    /// loop calls it once per turn, so a first time travel into a long session is spread
    /// over many turns instead of stalling every other client.
    fn prepare_state(&self, _session: &str, _at: i64, _budget: usize) -> Result<bool, StoreError> {
        Ok(true)
    }
    /// Deletes whole old segments over the byte or age limit (call from a timer).
    fn enforce_retention(&mut self, _now_ms: i64) -> RetentionReport {
        RetentionReport::default()
    }
}

#[cfg(test)]
mod tests {
    use super::{Deleted, DeletedRuns, DELETED_RUNS};

    #[test]
    fn deleted_runs_answer_what_lies_after_since() {
        let mut r = DeletedRuns::default();
        r.record(10, 20, 5);
        r.record(30, 40, 3);
        r.record(50, 50, 0); // ignored
        let d = |count, from_seq, to_seq| {
            Some(Deleted {
                count,
                from_seq,
                to_seq,
            })
        };
        let cases = [
            (0, d(8, 10, 40)),
            (9, d(8, 10, 40)),
            (10, d(3 + 5, 11, 40)), // inside the first run: at most 5 of it
            (18, d(2 + 3, 19, 40)), // bounded by the seqs left in the run
            (20, d(3, 30, 40)),
            (35, d(3, 36, 40)),
            (40, None),
            (99, None),
        ];
        for (since, want) in cases {
            assert_eq!(r.after(since), want, "since {since}");
        }
    }

    #[test]
    fn deleted_runs_stay_bounded_and_keep_the_total() {
        let mut r = DeletedRuns::default();
        for s in 1..=1000u64 {
            r.record(s, s, 1);
        }
        assert!(r.runs.len() <= DELETED_RUNS);
        assert_eq!(
            r.after(0),
            Some(Deleted {
                count: 1000,
                from_seq: 1,
                to_seq: 1000
            })
        );
        assert_eq!(r.after(999).map(|d| d.count), Some(1));
    }
}
