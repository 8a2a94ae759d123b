//! Each distinct condition evaluated at most once per event of a batch.
//!
//! Audiences with filters and members with breakpoints may use the same condition many
//! times over (a thousand dashboards with one filter); [`Memo`] keeps, for the chunk of
//! events being routed, one lazily filled verdict per (distinct condition, event).
//! Conditions are told apart by pointer first, then by canonical text, so equal
//! conditions compiled separately still share a slot. The buffers are kept between
//! batches: routing allocates nothing once they have grown.
//!
//! The conditions also share, per event, the top-level field read last ([`TopProbe`]):
//! ten filters on `data.…` walk an event's top level once between them.

use crate::condition::{Condition, TopProbe};
use std::sync::Arc;

/// Verdict not computed yet.
const UNKNOWN: u8 = 0;
const NO: u8 = 1;
const YES: u8 = 2;

#[derive(Debug, Default)]
pub struct Memo {
    conditions: Vec<Arc<Condition>>,
    /// `conditions.len() × events` verdicts, row per condition.
    verdicts: Vec<u8>,
    events: usize,
    /// One probe per event of the chunk (grown, never shrunk).
    probes: Vec<TopProbe>,
    /// Conditions evaluated (the count a test checks "once per event" with).
    pub evaluations: u64,
}

impl Memo {
    /// Starts a chunk of `events` events: every verdict unknown.
    pub fn start(&mut self, events: usize) {
        self.conditions.clear();
        self.verdicts.clear();
        self.events = events;
        if self.probes.len() < events {
            self.probes.resize_with(events, TopProbe::default);
        }
        for p in self.probes.iter_mut().take(events) {
            p.clear();
        }
    }

    /// The slot of `cond` in this chunk, added on first use.
    pub fn slot(&mut self, cond: &Arc<Condition>) -> usize {
        if let Some(i) = self
            .conditions
            .iter()
            .position(|c| Arc::ptr_eq(c, cond) || **c == **cond)
        {
            return i;
        }
        self.conditions.push(cond.clone());
        self.verdicts
            .resize(self.verdicts.len() + self.events, UNKNOWN);
        self.conditions.len() - 1
    }

    /// Whether the condition in `slot` matches event `i` (whose bytes are `json`).
    pub fn test(&mut self, slot: usize, i: usize, json: &[u8]) -> bool {
        let at = slot * self.events + i;
        match self.verdicts.get(at).copied() {
            Some(YES) => true,
            Some(NO) => false,
            _ => {
                self.evaluations += 1;
                let yes = match (self.conditions.get(slot), self.probes.get_mut(i)) {
                    (Some(c), Some(p)) => c.matches_sharing(json, p),
                    (Some(c), None) => c.matches(json),
                    (None, _) => false,
                };
                if let Some(v) = self.verdicts.get_mut(at) {
                    *v = if yes { YES } else { NO };
                }
                yes
            }
        }
    }
}
