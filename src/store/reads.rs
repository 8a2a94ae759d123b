//! The read side of a store: session summaries, history pages and counts, as the
//! protocol asks for them.
//!
//! Separate from the write side so the history and catch-up code can be handed a store
//! that can only be read, and so the cost promise below has one place to live.

use super::{Deleted, SessionSummary, StoreError};
use crate::event::EventRef;

/// The largest page [`SessionReads::sessions_page`] returns: the configuration's bound on
/// a `GET /v1/sessions` page, so a page is one response built in one turn of the loop.
pub const MAX_SESSIONS_PAGE: usize = crate::config::Config::MAX_SESSIONS_PAGE;

/// One page of the session list: [`SessionReads::sessions_page`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionPage {
    /// The sessions of the page that passed the caller's filter, in creation order.
    pub sessions: Vec<SessionSummary>,
    /// The cursor of the next page (`after` for the next call); `None` on the last page.
    /// Present whenever sessions follow, even if this page kept none of those it looked
    /// at, so a caller that may read few sessions still gets through the list.
    pub next: Option<u64>,
}

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
    /// Summary of one session, `None` when the store has never seen it (or retention
    /// deleted all of its events and the store forgot it).
    fn session(&self, id: &str) -> Option<SessionSummary>;
    /// How many sessions the store holds, in O(1) (for `/metrics`).
    fn session_count(&self) -> usize;
    /// The sessions created after the cursor `after` (0: from the start), in creation
    /// order: `limit` of them looked at (at most [`MAX_SESSIONS_PAGE`]), those for which
    /// `keep(id)` holds summarised. Costs `O(log sessions + limit)`. The cursor is the
    /// seq of the first event a session held when the store created it, so it stays
    /// valid while retention removes sessions and across restarts (docs/STORAGE.md).
    fn sessions_page(&self, after: u64, limit: usize, keep: &dyn Fn(&str) -> bool) -> SessionPage;
    /// Every known session: all pages in a row, so `O(sessions)`. For tests and tools;
    /// the server lists sessions only page by page.
    fn sessions(&self) -> Vec<SessionSummary> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self.sessions_page(after, MAX_SESSIONS_PAGE, &|_| true);
            out.extend(page.sessions);
            match page.next {
                Some(next) => after = next,
                None => return out,
            }
        }
    }
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
