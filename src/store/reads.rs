//! The read side of a store: session summaries, history pages and counts, as the
//! protocol asks for them.
//!
//! Separate from the write side so the history and catch-up code can be handed a store
//! that can only be read, and so the cost promise below has one place to live.

use super::{Deleted, SessionSummary, StoreError};
use crate::event::EventRef;

/// What the protocol reads of the stored events.
///
/// Contract (every implementation):
/// - **Reads see every successful append at once**, and return the very events `append`
///   returned: same seqs, same delivered bytes.
/// - **Seq order.** Every list is ordered by seq, oldest first; retention only ever
///   removes a session's oldest events, so what is held is a suffix of the session.
/// - **Cost is what is returned**, not the size of the log or the session (the
///   per-session seq/time index; docs/STORAGE.md, Indexes).
/// - **An unknown session is empty**, not an error; an `Err` means the store could not
///   read what it holds (I/O, a damaged record).
/// - Reads take `&self` and are made from the loop thread.
pub trait SessionReads {
    /// Summary of one session, `None` when the store has never seen it.
    fn session(&self, id: &str) -> Option<SessionSummary>;
    /// Every known session.
    fn sessions(&self) -> Vec<SessionSummary>;
    /// The last `n` events of a session, oldest first.
    fn recent(&self, session: &str, n: usize) -> Vec<EventRef>;
    /// Events of a session with `seq > after`, oldest first, at most `limit`.
    /// Gaps left by retention are found by comparing with [`SessionReads::first_seq`].
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
    /// What retention deleted of a session with `seq > after`, in this process's life
    /// (a restart forgets it). `None` when nothing was.
    fn deleted_after(&self, _session: &str, _after: u64) -> Option<Deleted> {
        None
    }
}
