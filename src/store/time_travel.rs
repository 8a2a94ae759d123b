//! Time travel as a store service: a session's state as of an instant (SPEC §6).
//!
//! Its own trait because it is the one read that folds rather than fetches: the first
//! answer for a long session can cost seconds, so the loop spreads that work over turns
//! with `prepare_state`. The derivation rules live in [`crate::timetravel`]; each store
//! keeps its fold beside its data (the log's in `log/time_travel.rs`).

use super::StoreError;
use crate::event::EventRef;
use crate::timetravel::SessionState;

/// The state of a session at an instant.
///
/// Contract (every implementation):
/// - `state_at(s, at, n)` is the fold, in seq order, over exactly the session's held
///   events with `timestamp <= at` (arrival order decides between events, the timestamp
///   only membership), plus its last `≤ n` such events, oldest first. Under retention a
///   checkpoint may still count deleted events (docs/STORAGE.md, Time travel).
/// - An unknown session is `StoreError::NotFound`.
/// - `prepare_state` changes only the cost of the next `state_at`, never its answer, and
///   does at most about `budget` events of work per call.
pub trait TimeTravel {
    /// The session's state as of `at` (epoch ms) and its last ≤`traces` events at or
    /// before that instant (SPEC §6). See [`crate::timetravel`].
    fn state_at(
        &self,
        session: &str,
        at: i64,
        traces: usize,
    ) -> Result<(SessionState, Vec<EventRef>), StoreError>;
    /// Does at most `budget` events of the work `state_at(session, at, …)` would do before
    /// it can answer (the lazy time-travel fold); true when `state_at` is now cheap. The
    /// loop calls it once per turn, so a first time travel into a long session is spread
    /// over many turns instead of stalling every other client.
    fn prepare_state(&self, _session: &str, _at: i64, _budget: usize) -> Result<bool, StoreError> {
        Ok(true)
    }
}
