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
//!
//! Conditions (SPEC §7): an audience's `filter` is part of its identity (equal canonical
//! conditions share frames; the agent filter is one more test in the same audience), and
//! a member may carry a [`Watch`] — its breakpoints for this session. While a batch is
//! routed, each distinct condition (by canonical text) is evaluated at most once per
//! event, whatever number of audiences and watchers use it ([`memo`]). A watcher whose
//! breakpoint hits gets the events before the hit through `hit` instead of the shared
//! frame, and leaves the route: it is paused, and catches up from the store later.

pub mod memo;

pub mod encode;

use crate::condition::Condition;
use crate::event::{Event, EventRef};
use memo::Memo;
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
    /// `None`: every event. `Some`: only events the condition matches (compared by its
    /// canonical text).
    pub filter: Option<Arc<Condition>>,
}

impl Audience {
    pub fn plain() -> Self {
        Audience {
            binary: false,
            deflate: false,
            delta: false,
            agents: None,
            filter: None,
        }
    }

    /// Whether an event passes this audience's agent filter.
    pub fn admits_agent(&self, event: &Event) -> bool {
        match (&self.agents, &event.agent) {
            (None, _) => true,
            (Some(list), Some(agent)) => list.binary_search_by(|a| (**a).cmp(&**agent)).is_ok(),
            (Some(_), None) => false,
        }
    }

    /// Whether an event passes both filters (agent, then condition).
    pub fn admits(&self, event: &Event) -> bool {
        self.admits_agent(event) && self.filter.as_ref().is_none_or(|f| f.matches(&event.json))
    }
}

/// A member's breakpoints for one session, in the order they were set; `step` asks
/// to pause after the next admitted event even when nothing hits (an armed `step`).
#[derive(Debug, Clone, Default)]
pub struct Watch {
    pub conditions: Vec<Arc<Condition>>,
    /// The breakpoints' names, beside their conditions (the hub only hands them back).
    pub names: Vec<Arc<str>>,
    pub step: bool,
}

/// Why a watcher left the route: the breakpoint (index into its [`Watch`]) the event
/// hit, or `None` for an armed step that reached its event.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    pub conn: ConnId,
    pub session: &'a Arc<str>,
    pub audience: &'a Audience,
    /// The member's events of this batch before the hitting one (to deliver first).
    pub before: &'a [&'a Event],
    pub event: &'a Event,
    pub breakpoint: Option<usize>,
    pub watch: &'a Watch,
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
    /// Each member's breakpoints for this session, beside it (`members[i]`).
    watches: Vec<Option<Arc<Watch>>>,
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
                self.groups[gi].watches.swap_remove(pos);
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
    memo: Memo,
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
        self.subscribe_watching(session, conn, audience, None);
    }

    /// Adds (or moves) `conn` to `session` with the given audience and breakpoints.
    pub fn subscribe_watching(
        &mut self,
        session: &Arc<str>,
        conn: ConnId,
        audience: Audience,
        watch: Option<Arc<Watch>>,
    ) {
        let route = self.routes.entry(session.clone()).or_default();
        route.remove(conn);
        let watch = watch.filter(|w| w.step || !w.conditions.is_empty());
        let group = match route.groups.iter().position(|g| g.audience == audience) {
            Some(i) => &mut route.groups[i],
            None => {
                route.groups.push(Group {
                    audience,
                    members: Vec::new(),
                    watches: Vec::new(),
                });
                let last = route.groups.len() - 1;
                &mut route.groups[last]
            }
        };
        group.members.push(conn);
        group.watches.push(watch);
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

    /// Conditions evaluated while routing so far (each distinct condition once per
    /// event of a batch).
    pub fn evaluations(&self) -> u64 {
        self.memo.evaluations
    }

    /// Events waiting for the next flush.
    pub fn pending(&self) -> usize {
        self.pending_events
    }

    /// Cuts pending events into batches, encodes each batch once per audience with
    /// `encode`, and calls `deliver` for every member with the shared frame.
    pub fn flush<F, E, D>(&mut self, encode: E, deliver: D)
    where
        F: Clone,
        E: FnMut(&Audience, &Arc<str>, &[&Event]) -> F,
        D: FnMut(ConnId, &F, &BatchInfo<'_>),
    {
        self.flush_with(encode, deliver, |_| {});
    }

    /// [`Hub::flush`], plus breakpoints: a watcher whose breakpoint (or armed step) an
    /// event of the batch reaches gets `hit` instead of the shared frame, and leaves
    /// the session's route (paused).
    pub fn flush_with<F, E, D, H>(&mut self, mut encode: E, mut deliver: D, mut hit: H)
    where
        F: Clone,
        E: FnMut(&Audience, &Arc<str>, &[&Event]) -> F,
        D: FnMut(ConnId, &F, &BatchInfo<'_>),
        H: FnMut(Hit<'_>),
    {
        let memo = &mut self.memo;
        let mut paused: Vec<ConnId> = Vec::new();
        // Per group: each condition's first hit among the group's selected events,
        // found once however many members watch with it.
        let mut firsts: Vec<(*const Condition, Option<usize>)> = Vec::new();
        for session in self.dirty.drain(..) {
            let Some(route) = self.routes.get_mut(&session) else {
                continue;
            };
            let mut pending = std::mem::take(&mut route.pending);
            let mut selected: Vec<&Event> = Vec::with_capacity(self.batch_size);
            let mut at: Vec<usize> = Vec::with_capacity(self.batch_size);
            for chunk in pending.chunks(self.batch_size) {
                memo.start(chunk.len());
                for group in &route.groups {
                    selected.clear();
                    at.clear();
                    let slot = group.audience.filter.as_ref().map(|f| memo.slot(f));
                    for (i, e) in chunk.iter().enumerate() {
                        if group.audience.admits_agent(e)
                            && slot.is_none_or(|s| memo.test(s, i, &e.json))
                        {
                            selected.push(&**e);
                            at.push(i);
                        }
                    }
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
                    firsts.clear();
                    for (&conn, watch) in group.members.iter().zip(&group.watches) {
                        let Some(watch) = watch else {
                            deliver(conn, &frame, &info);
                            continue;
                        };
                        match first_hit(memo, &mut firsts, watch, chunk, &at) {
                            None => deliver(conn, &frame, &info),
                            Some((k, breakpoint)) => {
                                hit(Hit {
                                    conn,
                                    session: &session,
                                    audience: &group.audience,
                                    before: &selected[..k],
                                    event: selected[k],
                                    breakpoint,
                                    watch,
                                });
                                paused.push(conn);
                            }
                        }
                    }
                }
                for conn in paused.drain(..) {
                    route.remove(conn);
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

/// The first of the member's selected events (`at`: their indexes in `chunk`) that one
/// of its breakpoints matches, with the breakpoint's index; an armed step stops at the
/// first event whatever matches.
fn first_hit(
    memo: &mut Memo,
    firsts: &mut Vec<(*const Condition, Option<usize>)>,
    watch: &Watch,
    chunk: &[EventRef],
    at: &[usize],
) -> Option<(usize, Option<usize>)> {
    let mut best: Option<(usize, Option<usize>)> =
        watch.step.then_some((0, None)).filter(|_| !at.is_empty());
    for (b, cond) in watch.conditions.iter().enumerate() {
        let ptr = Arc::as_ptr(cond);
        let first = match firsts.iter().find(|(p, _)| *p == ptr) {
            Some(&(_, k)) => k,
            None => {
                let slot = memo.slot(cond);
                let k = at.iter().position(|&i| memo.test(slot, i, &chunk[i].json));
                firsts.push((ptr, k));
                k
            }
        };
        if let Some(k) = first {
            // Earlier breakpoints win ties (the one set first is named).
            if best.is_none_or(|(bk, bb)| k < bk || (k == bk && bb.is_none())) {
                best = Some((k, Some(b)));
            }
        }
    }
    best
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
