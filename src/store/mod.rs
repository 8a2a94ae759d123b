//! Where accepted events live, and the reads the protocol makes on them.
//!
//! [`Store`] is the one interface the server talks to. Two implementations sit behind it:
//! [`memory::MemoryStore`], a bounded ring per session (tests, `--ephemeral`), and the
//! durable segmented log in [`log`]. The server assigns nothing itself: `append` hands out
//! `seq`s, so the counter lives with the data that must survive a restart.

mod event_log;
pub(crate) mod fail_points;
mod health;
pub mod index;
pub mod log;
pub mod memory;
mod reads;
pub mod record;
mod sessions;
mod sync;
mod time_travel;

use crate::config::StorageConfig;
use std::collections::VecDeque;
use std::path::Path;

pub use event_log::EventLog;
pub use health::{StorageFault, StorageHealth};
pub use log::{LogStore, RecoveryReport};
pub use memory::MemoryStore;
pub use reads::{SessionPage, SessionReads, MAX_SESSIONS_PAGE};
pub use time_travel::TimeTravel;

/// What [`EventLog::enforce_retention`] removed.
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
/// Allocated at the first deletion: most sessions never see one, and an empty
/// `VecDeque` inline would still cost every session its 32 bytes.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeletedRuns {
    // Boxed on purpose: 8 bytes in every session instead of a 32-byte empty deque.
    #[allow(clippy::box_collection)]
    runs: Option<Box<VecDeque<(u64, u64, u64)>>>,
}

impl DeletedRuns {
    pub(crate) fn record(&mut self, first: u64, last: u64, count: u64) {
        if count == 0 {
            return;
        }
        let runs = self.runs.get_or_insert_with(Box::default);
        runs.push_back((first, last, count));
        if runs.len() > DELETED_RUNS {
            if let (Some((a, _, c1)), Some((_, b, c2))) = (runs.pop_front(), runs.pop_front()) {
                runs.push_front((a, b, c1 + c2));
            }
        }
    }

    /// Every run merged into one, `None` when nothing was deleted.
    pub(crate) fn total(&self) -> Option<(u64, u64, u64)> {
        let runs = self.runs.as_deref()?;
        let (first, _, _) = runs.front()?;
        let (_, last, _) = runs.back()?;
        Some((*first, *last, runs.iter().map(|r| r.2).sum()))
    }

    pub(crate) fn after(&self, since: u64) -> Option<Deleted> {
        let mut out: Option<Deleted> = None;
        let runs = self.runs.as_deref()?;
        for &(first, last, count) in runs.iter().filter(|r| r.1 > since) {
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
/// sync thread whenever [`EventLog::durable_seq`] may have advanced; the loop then calls
/// [`EventLog::poll_sync`].
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
    /// Recovery met a damaged record it may not cut (anything but a torn tail) while
    /// `storage.quarantine_corrupt` is off: the log refuses to open rather than skip
    /// events. The message names the file, the offset and both ways out.
    CorruptAtOpen {
        file: String,
        offset: u64,
        reason: String,
    },
    /// The read asked for something the store cannot answer (unknown session, …).
    NotFound(String),
    /// The batch cannot be stored as given (a string too long to frame); nothing stored.
    Invalid(String),
    /// The batch would start a session beyond `storage.max_sessions`; nothing of it was
    /// stored and no seq was used. Retryable: retention forgets sessions whose events it
    /// deleted entirely, and the count goes down.
    SessionLimit { limit: usize },
    /// The sequencer cannot take batches now (cluster mode: the NATS backbone is
    /// unreachable, or too many publishes are in flight); nothing was stored. Retryable.
    Unavailable(String),
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
            StoreError::CorruptAtOpen {
                file,
                offset,
                reason,
            } => write!(
                f,
                "corrupt record in {file} at offset {offset}: {reason}; nothing on disk was \
                 changed. To start, either set `quarantine_corrupt = true` under [storage] in \
                 the config file (or TRACECAST_STORAGE__QUARANTINE_CORRUPT=true) to move the \
                 rest of that file, from offset {offset}, aside to \
                 {file}.{offset}.quarantine (the events in it leave the store), or restore \
                 {file} from a backup and start again"
            ),
            StoreError::NotFound(what) => write!(f, "not found: {what}"),
            StoreError::Invalid(what) => write!(f, "cannot store batch: {what}"),
            StoreError::SessionLimit { limit } => write!(
                f,
                "the store holds max_sessions ({limit}) sessions and this batch would start \
                 another; nothing of it was stored. Retry later (retention forgets sessions \
                 whose events it deleted) or raise storage.max_sessions"
            ),
            StoreError::Unavailable(why) => {
                write!(f, "ingest unavailable, nothing was stored; retry: {why}")
            }
        }
    }
}

impl std::error::Error for StoreError {}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e)
    }
}

/// The storage interface the loop uses: the write side ([`EventLog`]), the reads
/// ([`SessionReads`]) and time travel ([`TimeTravel`]) in one object, so the server holds
/// a single `Box<dyn Store>` and every method of the three is callable on it. Implement
/// the three traits; `Store` comes with them. All calls are made from the loop thread
/// and must not block for long: appends buffer, reads cost what they return.
pub trait Store: EventLog + SessionReads + TimeTravel {}

impl<T: EventLog + SessionReads + TimeTravel + ?Sized> Store for T {}

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
        assert!(r.runs.as_ref().is_some_and(|r| r.len() <= DELETED_RUNS));
        assert_eq!(r.total(), Some((1, 1000, 1000)));
        assert_eq!(DeletedRuns::default().total(), None);
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
