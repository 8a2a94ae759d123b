//! Routing: who is subscribed to what, and the per-turn batches fanned out to them.
//!
//! The hub is indexed by session, so publishing an event costs work proportional to that
//! session's subscribers, never to all connections. Within a session, subscribers are kept
//! in *audiences*: groups that would receive byte-identical frames (same wire format, same
//! compression, same agent filter). At the end of each loop turn [`Hub::flush`] cuts each
//! session's pending events into batches of at most `batch_size`, encodes each batch **once
//! per audience**, and hands the same `Bytes` to every member — the zero-copy fan-out.
//!
//! The hub knows nothing of sockets or encoders: the loop passes an `encode` closure and a
//! `deliver` closure. That keeps routing a pure, testable core and lets the benchmark
//! drive it without a network.

pub mod encode;

use crate::event::{Event, EventRef};
use std::sync::Arc;

/// A connection's identity: slab key plus a generation, so a reused slot never receives
/// what was meant for the connection that held it before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub key: u32,
    pub gen: u32,
}

/// The wire shape a subscriber receives. Subscribers with equal `Audience` share frames.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Audience {
    /// `tracecast.bin` instead of JSON text.
    pub binary: bool,
    /// permessage-deflate negotiated.
    pub deflate: bool,
    /// `compression: "delta"` requested.
    pub delta: bool,
    /// `None`: every agent. `Some`: only events whose `agentId` is in the (sorted) list.
    pub agents: Option<Arc<[Box<str>]>>,
}

impl Audience {
    pub fn plain() -> Self {
        Audience {
            binary: false,
            deflate: false,
            delta: false,
            agents: None,
        }
    }

    /// Whether an event passes this audience's agent filter.
    pub fn admits(&self, event: &Event) -> bool {
        match (&self.agents, &event.agent) {
            (None, _) => true,
            (Some(list), Some(agent)) => list.binary_search_by(|a| (**a).cmp(&**agent)).is_ok(),
            (Some(_), None) => false,
        }
    }
}

/// Builds an agent filter from a client's list (empty = no filter).
pub fn agent_filter<S: AsRef<str>>(ids: &[S]) -> Option<Arc<[Box<str>]>> {
    if ids.is_empty() {
        return None;
    }
    let mut v: Vec<Box<str>> = ids.iter().map(|s| Box::from(s.as_ref())).collect();
    v.sort();
    v.dedup();
    Some(v.into())
}

#[derive(Debug)]
struct Group {
    audience: Audience,
    members: Vec<ConnId>,
}

#[derive(Debug, Default)]
struct SessionRoute {
    groups: Vec<Group>,
    pending: Vec<EventRef>,
}

impl SessionRoute {
    fn is_idle(&self) -> bool {
        self.groups.is_empty() && self.pending.is_empty()
    }

    fn remove(&mut self, conn: ConnId) -> bool {
        for gi in 0..self.groups.len() {
            if let Some(pos) = self.groups[gi].members.iter().position(|c| *c == conn) {
                self.groups[gi].members.swap_remove(pos);
                if self.groups[gi].members.is_empty() {
                    self.groups.swap_remove(gi);
                }
                return true;
            }
        }
        false
    }
}

/// One encoded batch handed to `deliver`: the same `frame` for every member.
#[derive(Debug, Clone, Copy)]
pub struct BatchInfo<'a> {
    pub session: &'a Arc<str>,
    pub first_seq: u64,
    pub last_seq: u64,
    pub count: u64,
}

/// Subscriptions and pending batches.
#[derive(Debug, Default)]
pub struct Hub {
    routes: crate::hash::Map<Arc<str>, SessionRoute>,
    /// Sessions with pending events, in the order they first got one this turn.
    dirty: Vec<Arc<str>>,
    batch_size: usize,
    pending_events: usize,
}

impl Hub {
    pub fn new(batch_size: usize) -> Self {
        Hub {
            batch_size: batch_size.max(1),
            ..Default::default()
        }
    }

    /// Adds (or moves) `conn` to `session` with the given audience.
    pub fn subscribe(&mut self, session: &Arc<str>, conn: ConnId, audience: Audience) {
        let route = self.routes.entry(session.clone()).or_default();
        route.remove(conn);
        match route.groups.iter_mut().find(|g| g.audience == audience) {
            Some(g) => g.members.push(conn),
            None => route.groups.push(Group {
                audience,
                members: vec![conn],
            }),
        }
    }

    /// Removes `conn` from `session`; true when it was subscribed.
    pub fn unsubscribe(&mut self, session: &str, conn: ConnId) -> bool {
        let Some(route) = self.routes.get_mut(session) else {
            return false;
        };
        let removed = route.remove(conn);
        if route.is_idle() {
            self.routes.remove(session);
        }
        removed
    }

    /// Number of subscribers of a session.
    pub fn subscribers(&self, session: &str) -> usize {
        self.routes
            .get(session)
            .map_or(0, |r| r.groups.iter().map(|g| g.members.len()).sum())
    }

    /// Queues freshly stored events for the end-of-turn flush. Events of sessions nobody
    /// watches are not even queued.
    pub fn publish(&mut self, events: &[EventRef]) {
        for e in events {
            let Some(route) = self.routes.get_mut(&*e.session) else {
                continue;
            };
            if route.groups.is_empty() {
                continue;
            }
            if route.pending.is_empty() {
                self.dirty.push(e.session.clone());
            }
            route.pending.push(e.clone());
            self.pending_events += 1;
        }
    }

    /// Events waiting for the next flush.
    pub fn pending(&self) -> usize {
        self.pending_events
    }

    /// Cuts pending events into batches, encodes each batch once per audience with
    /// `encode`, and calls `deliver` for every member with the shared frame.
    pub fn flush<F, E, D>(&mut self, mut encode: E, mut deliver: D)
    where
        F: Clone,
        E: FnMut(&Audience, &Arc<str>, &[&Event]) -> F,
        D: FnMut(ConnId, &F, &BatchInfo<'_>),
    {
        for session in self.dirty.drain(..) {
            let Some(route) = self.routes.get_mut(&session) else {
                continue;
            };
            let mut pending = std::mem::take(&mut route.pending);
            let mut selected: Vec<&Event> = Vec::with_capacity(self.batch_size);
            for chunk in pending.chunks(self.batch_size) {
                for group in &route.groups {
                    selected.clear();
                    selected.extend(
                        chunk
                            .iter()
                            .map(|e| &**e)
                            .filter(|e| group.audience.admits(e)),
                    );
                    let (Some(first), Some(last)) = (selected.first(), selected.last()) else {
                        continue;
                    };
                    let info = BatchInfo {
                        session: &session,
                        first_seq: first.seq,
                        last_seq: last.seq,
                        count: selected.len() as u64,
                    };
                    let frame = encode(&group.audience, &session, &selected);
                    for &conn in &group.members {
                        deliver(conn, &frame, &info);
                    }
                }
            }
            drop(selected);
            // Keep the allocation for the next turn.
            pending.clear();
            route.pending = pending;
        }
        self.pending_events = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ev(seq: u64, session: &str, agent: Option<&str>) -> EventRef {
        Arc::new(Event {
            seq,
            timestamp: seq as i64,
            session: session.into(),
            agent: agent.map(Into::into),
            kind: "T".into(),
            json: Bytes::from(format!("{{\"seq\":{seq}}}")),
        })
    }

    fn c(key: u32) -> ConnId {
        ConnId { key, gen: 0 }
    }

    /// Runs a flush, returning (conn, seqs) deliveries and the number of encodes.
    fn run(hub: &mut Hub) -> (Vec<(ConnId, Vec<u64>)>, usize) {
        let mut encodes = 0;
        let mut out = Vec::new();
        hub.flush(
            |_, _, evs: &[&Event]| {
                encodes += 1;
                Arc::new(evs.iter().map(|e| e.seq).collect::<Vec<_>>())
            },
            |conn, frame: &Arc<Vec<u64>>, _| out.push((conn, (**frame).clone())),
        );
        out.sort();
        (out, encodes)
    }

    #[test]
    fn one_encode_per_audience_shared_by_all_members() {
        let mut hub = Hub::new(50);
        let s: Arc<str> = "s".into();
        for k in 0..5 {
            hub.subscribe(&s, c(k), Audience::plain());
        }
        hub.publish(&[ev(1, "s", None), ev(2, "s", None)]);
        let (out, encodes) = run(&mut hub);
        assert_eq!(encodes, 1);
        assert_eq!(out.len(), 5);
        assert!(out.iter().all(|(_, seqs)| seqs == &[1, 2]));
    }

    #[test]
    fn sessions_and_agent_filters_route() {
        let mut hub = Hub::new(50);
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        hub.subscribe(&a, c(1), Audience::plain());
        hub.subscribe(&b, c(2), Audience::plain());
        let filtered = Audience {
            agents: agent_filter(&["x"]),
            ..Audience::plain()
        };
        hub.subscribe(&a, c(3), filtered);
        hub.publish(&[
            ev(1, "a", Some("x")),
            ev(2, "b", Some("x")),
            ev(3, "a", Some("y")),
            ev(4, "z", None),
        ]);
        let (out, _) = run(&mut hub);
        assert_eq!(
            out,
            vec![(c(1), vec![1, 3]), (c(2), vec![2]), (c(3), vec![1])]
        );
    }

    #[test]
    fn batches_respect_batch_size_and_order() {
        let mut hub = Hub::new(4);
        let s: Arc<str> = "s".into();
        hub.subscribe(&s, c(1), Audience::plain());
        let evs: Vec<_> = (1..=10).map(|i| ev(i, "s", None)).collect();
        hub.publish(&evs);
        let (out, encodes) = run(&mut hub);
        assert_eq!(encodes, 3);
        let all: Vec<u64> = out.iter().flat_map(|(_, s)| s.clone()).collect();
        assert_eq!(all, (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn unsubscribe_and_resubscribe_move_between_audiences() {
        let mut hub = Hub::new(50);
        let s: Arc<str> = "s".into();
        hub.subscribe(&s, c(1), Audience::plain());
        hub.subscribe(
            &s,
            c(1),
            Audience {
                delta: true,
                ..Audience::plain()
            },
        );
        assert_eq!(hub.subscribers("s"), 1);
        assert!(hub.unsubscribe("s", c(1)));
        assert!(!hub.unsubscribe("s", c(1)));
        assert_eq!(hub.subscribers("s"), 0);
        hub.publish(&[ev(1, "s", None)]);
        assert_eq!(hub.pending(), 0);
    }
}
