//! One WebSocket client as the application sees it: protocol state and the outbound half.
//!
//! Nothing here knows the socket. [`Client`] is what the protocol remembers about a peer
//! (format, credential, subscriptions, filters, paced jobs, counters); [`Out`] is its write
//! queue plus the close bookkeeping the loop acts on. The shell owns a `Client` and an
//! `Out` per upgraded connection and lends both to the application for each message,
//! timer or job step, so every handler is testable with no socket at all.

use super::jobs::{HistoryJob, ResumeJob, TimeTravelJob};
use super::queue::WriteQueue;
use crate::auth::Principal;
use crate::condition::Condition;
use crate::hub::{Audience, Watch};
use crate::limits::RateLimiter;
use crate::ws::WireFormat;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// The outbound half: the write queue plus close bookkeeping.
#[derive(Debug)]
pub struct Out {
    pub queue: WriteQueue,
    /// No more input is processed; the socket closes once the queue has drained.
    pub closing: bool,
    /// Listed in the loop's flush list for this turn.
    pub listed: bool,
    /// Close the socket by then even if the peer never drains its queue.
    pub close_deadline: Option<Instant>,
    /// The peer sent its close frame: once our queue is out, nothing more is owed, and
    /// the socket closes at once (RFC 6455 §7.1.1) instead of at the close deadline.
    pub peer_closed: bool,
    /// Upgraded: a close for not reading is a WebSocket close frame. An HTTP connection
    /// never receives WebSocket bytes; it is simply closed.
    pub websocket: bool,
    /// Replies are never dropped, so a client that keeps asking without reading would
    /// grow its queue without bound: past this much queued memory (bytes plus each
    /// frame's bookkeeping, [`WriteQueue::mem_bytes`]) it is closed instead.
    pub hard_cap: usize,
}

impl Out {
    pub fn new(queue: WriteQueue, hard_cap: usize) -> Out {
        Out {
            queue,
            closing: false,
            listed: false,
            close_deadline: None,
            peer_closed: false,
            websocket: false,
            hard_cap,
        }
    }

    /// Queues a control frame (a reply, a close, a pong); never dropped by backpressure.
    pub fn control(&mut self, frame: Bytes) {
        if self.has_room(frame.len()) {
            self.queue.push_control(frame);
        }
    }

    /// Queues the answer to a ping, replacing one not yet written (RFC 6455 §5.5.3).
    pub fn pong(&mut self, frame: Bytes) {
        if self.has_room(frame.len()) {
            self.queue.push_pong(frame);
        }
    }

    /// Queues a catch-up run of `events` stored events: like a reply, never dropped.
    pub fn queue_catch_up(&mut self, frame: Bytes, events: u64) {
        if self.has_room(frame.len()) {
            self.queue.push_control_events(frame, events);
        }
    }

    /// Whether a frame the policy may not drop still fits under the hard cap; a client
    /// past it is closed instead.
    fn has_room(&mut self, len: usize) -> bool {
        if self.closing {
            return false;
        }
        if self.queue.mem_bytes() + len + super::queue::FRAME_OVERHEAD > self.hard_cap {
            // What is queued cannot be delivered to a peer that does not read; the close
            // frame goes after the frame already on the wire, if any.
            self.queue.discard_unsent();
            if self.websocket {
                self.queue.push_control(crate::ws::close_frame(
                    crate::ws::close_code::POLICY,
                    "not reading its replies",
                ));
            }
            self.closing = true;
            return false;
        }
        true
    }

    /// Queues `frame` and then nothing more: the connection closes once it is written.
    pub fn close_with(&mut self, frame: Bytes) {
        self.control(frame);
        self.closing = true;
    }
}

/// A job that works for the client one slice per turn while its queue is below the low
/// water mark (history answers, `sinceSeq` catch-up, a time travel's first fold).
#[derive(Debug)]
pub enum Job {
    History(HistoryJob),
    Resume(ResumeJob),
    TimeTravel(TimeTravelJob),
}

impl Job {
    /// The session the job reads.
    pub fn session(&self) -> &Arc<str> {
        match self {
            Job::History(h) => &h.session,
            Job::Resume(r) => &r.session,
            Job::TimeTravel(t) => &t.session,
        }
    }
}

/// One breakpoint of a connection (SPEC §7).
#[derive(Debug, Clone)]
pub struct Breakpoint {
    /// The client's name for it (`traceId`).
    pub name: Arc<str>,
    pub condition: Arc<Condition>,
    /// `None`: every session the connection subscribes to.
    pub session: Option<Arc<str>>,
    /// Times it paused the stream.
    pub hits: u64,
}

/// Per-WebSocket-client state above the frame layer.
#[derive(Debug)]
pub struct Client {
    pub format: WireFormat,
    pub deflate: bool,
    /// `?compression=delta` at the upgrade: batches carry top-level deltas.
    pub delta: bool,
    /// `None` until authenticated (only when auth is enabled).
    pub principal: Option<Principal>,
    /// Subscribed sessions: a set, so subscribing stays O(1) however many there are.
    pub subs: crate::hash::Set<Arc<str>>,
    pub agents: Option<Arc<[Box<str>]>>,
    /// `filter_events` without `sessionId`: the condition every subscription applies
    /// unless it has its own.
    pub filter_all: Option<Arc<Condition>>,
    /// A subscription's own condition (`subscribe_session.filter`, `filter_events`
    /// with `sessionId`).
    pub filters: crate::hash::Map<Arc<str>, Arc<Condition>>,
    /// In the order they were set (the first set wins when one event hits several).
    pub breakpoints: Vec<Breakpoint>,
    /// Paused subscriptions: session → seq of the last event handled (the hit).
    /// O(1) per subscription however long it stays paused: the log keeps the rest.
    pub paused: crate::hash::Map<Arc<str>, u64>,
    /// Subscriptions paused at the end of the log by a `step`: in the hub, waiting to
    /// deliver the next event and pause at it.
    pub armed: crate::hash::Set<Arc<str>>,
    /// The last pause note recorded (see `dispatch::breakpoints::on_hit`).
    pub last_hit_note: u64,
    pub limiter: RateLimiter,
    /// Payload-time of the outstanding ping, if any.
    pub ping_out: Option<Instant>,
    pub latency_ms: Option<f64>,
    pub messages_in: u64,
    /// Every message sent to the client: replies and event frames alike.
    pub messages_out: u64,
    pub rate_limited: u64,
    pub jobs: VecDeque<Job>,
    /// Upgraded on `[debug] echo_path`: every message is echoed back, nothing else is
    /// said (no `connection`, no JSON heartbeat), for the conformance suite.
    pub echo: bool,
}

impl Client {
    /// A fresh client as the upgrade makes it.
    pub fn new(
        format: WireFormat,
        deflate: bool,
        delta: bool,
        principal: Option<Principal>,
        limiter: RateLimiter,
    ) -> Client {
        Client {
            format,
            deflate,
            delta,
            principal,
            subs: crate::hash::Set::default(),
            agents: None,
            filter_all: None,
            filters: crate::hash::Map::default(),
            breakpoints: Vec::new(),
            paused: crate::hash::Map::default(),
            armed: crate::hash::Set::default(),
            last_hit_note: 0,
            limiter,
            ping_out: None,
            latency_ms: None,
            messages_in: 0,
            messages_out: 0,
            rate_limited: 0,
            jobs: VecDeque::new(),
            echo: false,
        }
    }

    /// Subscribers who would receive identical bytes share an audience (one encode).
    /// This is the connection's shape without any condition; see
    /// [`Client::audience_for`] for a subscription's.
    pub fn audience(&self) -> Audience {
        Audience {
            binary: self.format == WireFormat::Binary,
            deflate: self.deflate,
            delta: self.delta,
            agents: self.agents.clone(),
            filter: None,
        }
    }

    /// The condition `session`'s events pass: its own, else the connection's.
    pub fn filter_for(&self, session: &str) -> Option<&Arc<Condition>> {
        self.filters.get(session).or(self.filter_all.as_ref())
    }

    /// The audience of the subscription to `session`: shape, agent filter, condition.
    pub fn audience_for(&self, session: &str) -> Audience {
        Audience {
            filter: self.filter_for(session).cloned(),
            ..self.audience()
        }
    }

    /// The breakpoints that watch `session`, in the order they were set.
    pub fn breakpoints_for<'a>(&'a self, session: &'a str) -> impl Iterator<Item = &'a Breakpoint> {
        self.breakpoints
            .iter()
            .filter(move |b| b.session.as_deref().is_none_or(|s| s == session))
    }

    /// What the hub watches for this subscription (`None` with no breakpoints and no
    /// armed step).
    pub fn watch_for(&self, session: &str, step: bool) -> Option<Arc<Watch>> {
        let mut w = Watch {
            step,
            ..Watch::default()
        };
        for b in self.breakpoints_for(session) {
            w.conditions.push(b.condition.clone());
            w.names.push(b.name.clone());
        }
        (step || !w.conditions.is_empty()).then(|| Arc::new(w))
    }

    /// Whether a `sinceSeq` catch-up for `session` is still running (the client is then
    /// kept out of the hub for that session until it is caught up).
    pub fn resuming(&self, session: &str) -> bool {
        self.jobs
            .iter()
            .any(|j| matches!(j, Job::Resume(r) if *r.session == *session))
    }
}
