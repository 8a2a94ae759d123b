//! Deadlines the loop must wake for, kept in one min-heap.
//!
//! Timers are never cancelled: a fired timer whose connection is gone (or whose slot now
//! belongs to a newer generation) is simply ignored by the loop, which is cheaper than
//! finding and removing heap entries and makes stale wake-ups harmless by construction.

use crate::hub::ConnId;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// Ping, `heartbeat` push and stale check for one connection.
    Heartbeat(ConnId),
    /// Close the connection if it has not authenticated by now.
    AuthDeadline(ConnId),
    /// The connection's credential expires now unless refreshed.
    AuthExpiry(ConnId),
    /// A closing connection gets no more time to drain.
    CloseDeadline(ConnId),
    /// A connection in the HTTP phase must have sent its request head (or body) by now.
    HttpDeadline(ConnId),
    /// Retention sweep of the store.
    Retention,
    /// Close the batch window (`batch_timeout_ms > 0`).
    BatchDeadline,
}

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    counter: u64,
}

impl Timers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn schedule(&mut self, at: Instant, timer: Timer) {
        self.counter += 1;
        self.heap.push(Reverse((at, self.counter, timer)));
    }

    /// How long the loop may sleep, `None` when nothing is scheduled.
    pub fn next_timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse((at, _, _))| at.saturating_duration_since(now))
    }

    /// Pops the next timer due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse((_, _, t))| t),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_then_fifo() {
        let mut t = Timers::new();
        let now = Instant::now();
        let c = |k| ConnId { key: k, gen: 0 };
        t.schedule(now + Duration::from_millis(20), Timer::Heartbeat(c(1)));
        t.schedule(now + Duration::from_millis(10), Timer::Retention);
        t.schedule(now + Duration::from_millis(10), Timer::Heartbeat(c(2)));
        assert_eq!(t.next_timeout(now), Some(Duration::from_millis(10)));
        assert_eq!(t.pop_due(now), None);
        let later = now + Duration::from_millis(15);
        assert_eq!(t.pop_due(later), Some(Timer::Retention));
        assert_eq!(t.pop_due(later), Some(Timer::Heartbeat(c(2))));
        assert_eq!(t.pop_due(later), None);
        assert_eq!(t.len(), 1);
    }
}
