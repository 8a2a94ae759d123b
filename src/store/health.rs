//! Whether the store's disk is taking our data, for `/healthz` and `/metrics`.
//!
//! A failed write or fsync used to reach only the log, once, while `/healthz` went on
//! saying ok. [`HealthTracker`] turns those failures into a state the server can show:
//! a fault per kind while it lasts, with a human reason, and counters that only grow, so
//! an alert can fire on a failure that has already cleared. It is a plain state machine
//! (failures and successes in, a [`StorageHealth`] out), unit-tested without a disk; the
//! rules for when a fault clears, and why, are in docs/STORAGE.md (Health).

/// The store's disk as the loop last saw it: what [`super::EventLog::health`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageHealth {
    /// Appends are failing to write (or were refused after a write that could not be
    /// undone). Clears at the next append whose write succeeds, unless `until_restart`.
    pub write: Option<StorageFault>,
    /// An fsync failed: events written may not be durable. Clears once a later fsync
    /// has covered every event written up to the moment the failure was collected.
    pub fsync: Option<StorageFault>,
    /// Failed writes since start (each failed append that reached the disk counts once).
    pub write_errors: u64,
    /// Failed fsync rounds since start (a failing disk under `interval` counts one per
    /// retry, so the rate shows how long it went on).
    pub fsync_errors: u64,
}

impl StorageHealth {
    /// True while nothing is failing.
    pub fn is_ok(&self) -> bool {
        self.write.is_none() && self.fsync.is_none()
    }

    /// The faults in effect, the write fault first.
    pub fn faults(&self) -> impl Iterator<Item = &StorageFault> {
        self.write.iter().chain(self.fsync.iter())
    }

    /// Every storage error since start, for a single `storage_errors` counter.
    pub fn errors(&self) -> u64 {
        self.write_errors + self.fsync_errors
    }
}

/// One kind of failure, while it lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageFault {
    /// For a human: `write failed: <file>: <error>` or `fsync failed: <file>: <error>`,
    /// from the latest failure.
    pub reason: String,
    /// Wall-clock time (Unix epoch ms) of the first failure of this episode.
    pub since_ms: u64,
    /// Failures in this episode (the reason is the latest one's).
    pub count: u64,
    /// Only a restart clears it: a failed write could not be cut back, so the store
    /// refuses every append rather than write after bytes of unknown state.
    pub until_restart: bool,
}

/// Failures and successes in, [`StorageHealth`] out. Lives with the store, on the loop.
#[derive(Debug, Default)]
pub(crate) struct HealthTracker {
    state: StorageHealth,
    /// The fsync fault clears once a sync reports this seq durable.
    fsync_clears_at: u64,
}

/// A fault's new state after one more failure.
fn worsen(fault: &mut Option<StorageFault>, reason: String, now_ms: u64, until_restart: bool) {
    match fault {
        Some(f) => {
            f.reason = reason;
            f.count += 1;
            f.until_restart |= until_restart;
        }
        None => {
            *fault = Some(StorageFault {
                reason,
                since_ms: now_ms,
                count: 1,
                until_restart,
            });
        }
    }
}

impl HealthTracker {
    pub(crate) fn snapshot(&self) -> StorageHealth {
        self.state.clone()
    }

    /// An append's write failed. `until_restart` when the store now refuses appends.
    pub(crate) fn write_failed(&mut self, reason: String, now_ms: u64, until_restart: bool) {
        self.state.write_errors += 1;
        worsen(&mut self.state.write, reason, now_ms, until_restart);
    }

    /// An append was written. True when that ended a write fault.
    pub(crate) fn write_ok(&mut self) -> bool {
        if self.state.write.as_ref().is_some_and(|f| !f.until_restart) {
            self.state.write = None;
            return true;
        }
        false
    }

    /// An fsync failed; `written` is the last seq written when the loop learnt of it:
    /// the fault holds until a sync covers it.
    pub(crate) fn fsync_failed(&mut self, reason: String, now_ms: u64, written: u64) {
        self.state.fsync_errors += 1;
        self.fsync_clears_at = self.fsync_clears_at.max(written);
        worsen(&mut self.state.fsync, reason, now_ms, false);
    }

    /// A sync made every seq `<= upto` durable. True when that ended an fsync fault.
    pub(crate) fn durable(&mut self, upto: u64) -> bool {
        if self.state.fsync.is_some() && upto >= self.fsync_clears_at {
            self.state.fsync = None;
            return true;
        }
        false
    }
}

/// Wall-clock milliseconds for [`StorageFault::since_ms`]; read only when something fails.
pub(crate) fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_fault_lasts_until_the_next_write_succeeds() {
        let mut h = HealthTracker::default();
        assert!(h.snapshot().is_ok());
        assert!(!h.write_ok(), "nothing to clear");
        h.write_failed("write failed: a: full".into(), 100, false);
        h.write_failed("write failed: a: still full".into(), 200, false);
        let s = h.snapshot();
        let f = s.write.clone().unwrap_or_else(|| panic!("no fault"));
        assert_eq!((f.since_ms, f.count), (100, 2));
        assert_eq!(f.reason, "write failed: a: still full");
        assert!(!s.is_ok() && s.fsync.is_none());
        assert!(h.write_ok());
        let s = h.snapshot();
        assert!(s.is_ok());
        // The counters keep what happened.
        assert_eq!((s.write_errors, s.fsync_errors, s.errors()), (2, 0, 2));
    }

    #[test]
    fn a_write_that_could_not_be_undone_clears_only_at_restart() {
        let mut h = HealthTracker::default();
        h.write_failed("write failed: a: io".into(), 1, false);
        h.write_failed("write failed: a: io; cutting back failed".into(), 2, true);
        assert!(!h.write_ok());
        let f = h.snapshot().write.unwrap_or_else(|| panic!("cleared"));
        assert!(f.until_restart && f.count == 2 && f.since_ms == 1);
    }

    #[test]
    fn an_fsync_fault_clears_only_when_a_sync_covers_everything_written() {
        let mut h = HealthTracker::default();
        h.fsync_failed("fsync failed: a: EIO".into(), 10, 50);
        // A sync that covers less (a round that started before, a sealed file) is not
        // proof that what failed is on disk now.
        assert!(!h.durable(49));
        assert!(!h.write_ok(), "a write does not clear an fsync fault");
        h.fsync_failed("fsync failed: a: EIO".into(), 20, 60);
        assert!(!h.durable(59));
        let s = h.snapshot();
        assert_eq!(
            s.fsync.as_ref().map(|f| (f.count, f.since_ms)),
            Some((2, 10))
        );
        assert_eq!(s.faults().count(), 1);
        assert!(h.durable(60));
        assert!(h.snapshot().is_ok());
        assert!(!h.durable(70), "already clear");
        assert_eq!(h.snapshot().errors(), 2);
    }

    #[test]
    fn both_faults_are_reported_write_first() {
        let mut h = HealthTracker::default();
        h.fsync_failed("fsync failed: x".into(), 1, 5);
        h.write_failed("write failed: y".into(), 2, false);
        let s = h.snapshot();
        let reasons: Vec<&str> = s.faults().map(|f| f.reason.as_str()).collect();
        assert_eq!(reasons, vec!["write failed: y", "fsync failed: x"]);
    }
}
