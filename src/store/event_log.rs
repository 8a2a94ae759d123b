//! The write side of a store: handing out seqs, writing batches, making them durable and
//! letting old ones go.
//!
//! Kept apart from the reads because it is the half with side effects on the disk and
//! the half whose failures the operator must hear about; a reader of the history or of
//! time travel needs none of it.

use super::{Appended, Pending, RetentionReport, StorageHealth, StoreError};

/// Sequencing, durability and retention.
///
/// Contract (every implementation):
/// - **All or nothing.** `append` stores the whole batch or none of it. On `Ok` the
///   batch got `next_seq() .. next_seq() + n`, contiguous, in batch order, and every read
///   sees it at once; on `Err` nothing of it is visible and `next_seq` has not moved.
/// - **Seqs are never reused** for the store's lifetime — for the durable log, across
///   restarts too (a seq handed out before a crash is skipped, not handed out again).
/// - **Durability is a watermark.** `durable_seq` never decreases, and every seq `<=` it
///   survives a power loss. A store without a disk reports the last seq it handed out,
///   so acks are never held for it.
/// - **Failures are visible while they last.** `health` reports a failing write or fsync
///   with a reason until the rule in docs/STORAGE.md (Health) clears it, and counts
///   every failure; `append` and `poll_sync` still return the error itself.
/// - **No long blocking.** Every call is made from the loop thread; only `sync` waits
///   for the disk, and it is meant for shutdown.
pub trait EventLog {
    /// Sequences and stores a whole batch, or nothing. Seqs are contiguous within a batch.
    fn append(&mut self, batch: Vec<Pending>) -> Result<Appended, StoreError>;
    /// The next seq `append` will hand out.
    fn next_seq(&self) -> u64;
    /// Makes appended data durable now, blocking (shutdown). `fsync = always` acks do
    /// not use this: they wait for [`EventLog::durable_seq`]. An error is this sync's
    /// failure, or an earlier one `poll_sync` had not yet returned.
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
    /// Deletes whole old segments over the byte or age limit (call from a timer).
    fn enforce_retention(&mut self, _now_ms: i64) -> RetentionReport {
        RetentionReport::default()
    }
    /// Whether the disk is taking our data, as of the last `append`, `poll_sync` or
    /// `sync` (the loop polls every turn, so it is at most a turn old): the faults in
    /// effect, each with a human reason, and the failure counters since start. For
    /// `/healthz` (unhealthy while [`StorageHealth::is_ok`] is false) and `/metrics`
    /// ([`StorageHealth::errors`]). A store without a disk is always healthy.
    fn health(&self) -> StorageHealth {
        StorageHealth::default()
    }
    /// Stores a whole batch, or nothing, at seqs the caller chose: `first ..
    /// first + n`, with `first >= next_seq()` (cluster mode, where the stream fixes the
    /// seqs; docs/CLUSTER.md). On `Ok`, `next_seq` is `first + n`. Skipped seqs are simply
    /// never used. A store that cannot place seqs says so.
    fn append_at(&mut self, batch: Vec<Pending>, first: u64) -> Result<Appended, StoreError> {
        let _ = (batch, first);
        Err(StoreError::Invalid(
            "this store cannot append at given seqs".into(),
        ))
    }
}
