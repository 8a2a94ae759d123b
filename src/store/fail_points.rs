//! Test-only failure injection for the log's disk calls.
//!
//! A failed write or fsync cannot be provoked on an ordinary filesystem from a unit test,
//! yet what the store does then (cut back, refuse, report unhealthy, recover) is exactly
//! what must not regress. The log and its fsync thread ask [`FailPoints::check`] right
//! before the calls that can fail that way; a test arms it to fail the next few. Outside
//! `cfg(test)` the type has no fields and `check` is `Ok(())`, so release code pays
//! nothing.

#[cfg(test)]
use std::sync::atomic::{AtomicU32, Ordering};
#[cfg(test)]
use std::sync::Arc;

/// The disk calls a test can make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailOp {
    /// The positional write of an appended record.
    Write = 0,
    /// Cutting a segment back to its size after a failed write.
    CutBack = 1,
    /// An fsync (`sync_data`) of a segment by the fsync thread.
    Fsync = 2,
}

/// Shared between the log and its fsync thread (clones see the same counters).
#[derive(Debug, Clone, Default)]
pub(crate) struct FailPoints {
    /// Failures still to inject, per [`FailOp`].
    #[cfg(test)]
    armed: Arc<[AtomicU32; 3]>,
}

impl FailPoints {
    /// Err when a test armed a failure of `op` (using one up); always `Ok` outside tests.
    #[inline]
    pub(crate) fn check(&self, op: FailOp) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some(slot) = self.armed.get(op as usize) {
            if slot
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(std::io::Error::other(format!("injected {op:?} failure")));
            }
        }
        let _ = op;
        Ok(())
    }

    /// Makes the next `n` checks of `op` fail.
    #[cfg(test)]
    pub(crate) fn fail_next(&self, op: FailOp, n: u32) {
        if let Some(slot) = self.armed.get(op as usize) {
            slot.store(n, Ordering::SeqCst);
        }
    }
}
