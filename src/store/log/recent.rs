//! The recent cache: the newest events of busy sessions kept decoded, so `initial_traces`
//! and a resume near the live end cost no disk read — within one budget for the whole
//! store, so a million sessions do not each pin a decoded tail.
//!
//! A session's cache holds at most [`RECENT_CACHE`] of its newest events, always a suffix
//! of it (every append of the session extends it; retention trims it with the index). A
//! session enters the cache with its second event: a session seen once is one positional
//! read away anyway, and the many one-event sessions a probe or a crowd of short jobs
//! creates would otherwise fill the budget with tails nobody asks for. When the caches
//! together exceed [`RECENT_BUDGET`] bytes, whole caches are dropped in the order they
//! were made, except that one used since its last turn (appended to or read from) is
//! passed over once — the CLOCK approximation of least-recently-used, with a queue of
//! session ids instead of a list threaded through the sessions. A dropped cache is
//! rebuilt by the session's next append; reads meanwhile go to the log.

use super::{Session, RECENT_BUDGET, RECENT_CACHE};
use crate::event::{Event, EventRef};
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;

/// What an event held in a cache is charged: its bytes, the `Event` and its `Arc`
/// counts, the slot, and the headroom the delivered bytes were written into.
fn cost(e: &Event) -> usize {
    e.json.len() + std::mem::size_of::<Event>() + 64
}

/// One session's cached tail.
#[derive(Debug, Default)]
pub(super) struct Recent {
    events: VecDeque<EventRef>,
    bytes: usize,
    /// Appended to or read since the eviction scan last passed it.
    used: Cell<bool>,
}

impl Recent {
    pub(super) fn len(&self) -> usize {
        self.events.len()
    }

    /// Bytes charged for this cache.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The cached events at offsets `[a, b)` of the cache, marking it used.
    pub(super) fn range(&self, a: usize, b: usize) -> impl Iterator<Item = &EventRef> {
        self.used.set(true);
        let b = b.min(self.events.len());
        self.events.range(a.min(b)..b)
    }
}

/// The budget and the eviction queue shared by every session's [`Recent`].
#[derive(Debug)]
pub(super) struct RecentCache {
    budget: usize,
    /// Bytes charged to every session's cache together.
    bytes: usize,
    /// Sessions that have a cache, in the order it was made (second chances go to the
    /// back).
    queue: VecDeque<Arc<str>>,
}

impl Default for RecentCache {
    fn default() -> Self {
        RecentCache::new(RECENT_BUDGET)
    }
}

impl RecentCache {
    pub(super) fn new(budget: usize) -> Self {
        RecentCache {
            budget,
            bytes: 0,
            queue: VecDeque::new(),
        }
    }

    /// Bytes held by all caches.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Appends the last events of `run` (just appended to session `id`) to its cache,
    /// making the cache if it has none.
    pub(super) fn extend(
        &mut self,
        id: &Arc<str>,
        slot: &mut Option<Box<Recent>>,
        run: &[EventRef],
    ) {
        let r = slot.get_or_insert_with(|| {
            self.queue.push_back(id.clone());
            Box::default()
        });
        let skip = run.len().saturating_sub(RECENT_CACHE);
        for e in run.iter().skip(skip) {
            let c = cost(e);
            r.bytes += c;
            self.bytes += c;
            r.events.push_back(e.clone());
        }
        while r.events.len() > RECENT_CACHE {
            if let Some(e) = r.events.pop_front() {
                let c = cost(&e);
                r.bytes -= c;
                self.bytes -= c;
            }
        }
        r.used.set(true);
    }

    /// Keeps at most the last `retained` events of a cache (retention popped the rest
    /// from the index).
    pub(super) fn trim(&mut self, slot: &mut Option<Box<Recent>>, retained: usize) {
        let Some(r) = slot else { return };
        while r.events.len() > retained {
            if let Some(e) = r.events.pop_front() {
                let c = cost(&e);
                r.bytes -= c;
                self.bytes -= c;
            }
        }
    }

    /// Gives back the bytes of a session's cache that is going away with the session.
    pub(super) fn release(&mut self, slot: &Option<Box<Recent>>) {
        if let Some(r) = slot {
            self.bytes -= r.bytes;
        }
    }

    /// Drops queue entries of sessions that no longer have a cache (after sessions were
    /// forgotten), so the queue stays as long as the caches are many.
    pub(super) fn forget_stale(&mut self, sessions: &crate::hash::Map<Arc<str>, Box<Session>>) {
        self.queue
            .retain(|id| sessions.get(id).is_some_and(|s| s.recent.is_some()));
    }

    /// Drops whole caches, oldest first with a second chance for used ones, until the
    /// total is within the budget.
    pub(super) fn evict(&mut self, sessions: &mut crate::hash::Map<Arc<str>, Box<Session>>) {
        while self.bytes > self.budget {
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            let Some(s) = sessions.get_mut(&id) else {
                continue;
            };
            let Some(r) = &s.recent else {
                continue;
            };
            if r.used.replace(false) {
                self.queue.push_back(id);
                continue;
            }
            self.bytes -= r.bytes;
            s.recent = None;
        }
    }
}
