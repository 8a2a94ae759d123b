//! The application core: everything tracecast does with a connection, minus the socket.
//!
//! [`App`] holds what handlers share — configuration, the hub, the store, the sequencer,
//! metrics, auth, the encoder, timers, held acknowledgements and the outbox of hub
//! deliveries — and is built from a [`Config`] and a [`Store`] without binding anything.
//! The mio shell in [`crate::server`] owns the sockets; for each message, timer or paced
//! job it lends the application one client's protocol state ([`Client`]) and outbound
//! half ([`Out`]) in a [`Call`], and afterwards writes whatever the application queued.
//!
//! - [`dispatch`]: what each client message does, one file per message family.
//! - [`routes`]: the plain-HTTP endpoints.
//! - [`commit`]: the one ingest commit and the sequencer seam every front end shares.
//! - [`jobs`]: paced history, `sinceSeq` catch-up and time-travel work.
//! - [`queue`], [`timer`]: the per-connection write queue and the deadline heap.
//!
//! The in-memory [`pipe`] (tests only) drives dispatch with bytes in and frames out.

pub mod assets;
pub mod client;
pub mod commit;
pub mod dispatch;
pub mod jobs;
pub mod lifecycle;
pub mod otlp;
#[cfg(test)]
pub(crate) mod pipe;
pub mod queue;
pub mod routes;
#[cfg(test)]
mod tests;
pub mod timer;

pub use client::{Client, Job, Out};
pub use commit::{CommitFailure, Origin, PublishAck, PublishError, PublishReply};

use crate::auth::Authenticator;
use crate::condition::Condition;
use crate::config::Config;
use crate::hub::encode::BatchEncoder;
use crate::hub::{ConnId, Hub};
use crate::ingest::{IngestContext, JsonBuffers};
use crate::metrics::{Gauges, Metrics};
use crate::protocol::RequestId;
use crate::store::Store;
use bytes::Bytes;
use commit::{Acks, Sequencer};
use queue::EventSpan;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use timer::{Timer, Timers};

/// The wall clock, epoch ms.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One hub delivery waiting to be queued on its connection by the shell.
#[derive(Debug)]
pub struct Delivery {
    pub conn: ConnId,
    pub frame: Bytes,
    pub span: EventSpan,
    /// A breakpoint hit (or an armed step's event): the frame is never dropped, and
    /// the shell records the pause on the client ([`dispatch::breakpoints::on_hit`]).
    pub hit: Option<dispatch::breakpoints::HitNote>,
}

/// Everything handlers share: configuration, routing, storage, metrics, scratch space.
pub struct App {
    pub config: Arc<Config>,
    pub hub: Hub,
    pub store: Box<dyn Store>,
    pub metrics: Metrics,
    pub auth: Authenticator,
    pub ingest: IngestContext,
    pub buffers: JsonBuffers,
    pub encoder: BatchEncoder,
    /// One serialized control message on its way to a client.
    pub scratch: Vec<u8>,
    pub timers: Timers,
    pub epoch: Instant,
    /// Wall clock of this turn, epoch ms.
    pub now_ms: i64,
    /// Monotonic clock of this turn.
    pub now: Instant,
    pub shutting_down: bool,
    /// Connection gauges, refreshed by the shell before `/metrics` is rendered.
    pub gauges: Gauges,
    sequencer: Box<dyn Sequencer>,
    acks: Acks,
    outbox: Vec<Delivery>,
    /// Connections with paced jobs to step after this turn's fan-out.
    job_conns: Vec<ConnId>,
    /// The first ingest of this turn, for the publish→deliver histogram.
    ingested_at: Option<Instant>,
    batch_deadline: Option<Instant>,
    sessions: crate::hash::Set<Arc<str>>,
    /// Compiled conditions by canonical text, so equal conditions share one `Arc` (the
    /// hub tells them apart by pointer first).
    conditions: crate::hash::Map<Box<str>, Weak<Condition>>,
    /// Pauses the hub recorded since the shell last took the outbox (see
    /// `dispatch::breakpoints`).
    pending_hits: Vec<(ConnId, dispatch::breakpoints::HitNote)>,
}

/// One client message (or timer, or job step) being handled: the application, the
/// client's protocol state, its outbound half, its id, and the request id to echo.
pub struct Call<'a> {
    pub app: &'a mut App,
    pub client: &'a mut Client,
    pub out: &'a mut Out,
    pub id: ConnId,
    pub rid: Option<RequestId>,
}

impl App {
    /// An application over `store`, its clocks started now. Binds nothing.
    pub fn new(config: Arc<Config>, store: Box<dyn Store>, auth: Authenticator) -> App {
        let now = Instant::now();
        let start_ms = wall_ms();
        let mut timers = Timers::new();
        timers.schedule(now + Duration::from_secs(10), Timer::Retention);
        App {
            hub: Hub::new(config.batch_size),
            store,
            metrics: Metrics::new(),
            auth,
            ingest: IngestContext::new(config.max_event_bytes, start_ms, start_ms as u64),
            buffers: JsonBuffers::default(),
            encoder: BatchEncoder::new(config.compression_level, config.compression_min_bytes),
            scratch: Vec::with_capacity(4096),
            timers,
            epoch: now,
            now_ms: start_ms,
            now,
            shutting_down: false,
            gauges: Gauges::default(),
            sequencer: Box::new(commit::Local),
            acks: Acks::default(),
            outbox: Vec::new(),
            job_conns: Vec::new(),
            ingested_at: None,
            batch_deadline: None,
            sessions: crate::hash::Set::default(),
            conditions: crate::hash::Map::default(),
            pending_hits: Vec::new(),
            config,
        }
    }

    /// Replaces the standalone sequencer (cluster mode, tests).
    pub fn with_sequencer(mut self, sequencer: Box<dyn Sequencer>) -> App {
        self.sequencer = sequencer;
        self
    }

    /// Starts a loop turn: both clocks read once for everything the turn does.
    pub fn begin_turn(&mut self, now: Instant, now_ms: i64) {
        self.now = now;
        self.now_ms = now_ms;
    }

    /// Monotonic ms since start, for rate limiters.
    pub fn mono_ms(&self) -> u64 {
        self.now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// One shared `Arc<str>` per session name for the hub's keys and the clients' lists.
    pub fn intern_session(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.sessions.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        if self.sessions.len() < 100_000 {
            self.sessions.insert(a.clone());
        }
        a
    }

    /// One shared `Arc` per canonical condition (filters and breakpoints alike).
    pub fn intern_condition(&mut self, c: Condition) -> Arc<Condition> {
        if let Some(live) = self.conditions.get(c.canonical()).and_then(Weak::upgrade) {
            return live;
        }
        if self.conditions.len() >= 4096 {
            self.conditions.retain(|_, w| w.strong_count() > 0);
        }
        let key: Box<str> = c.canonical().into();
        let a = Arc::new(c);
        if self.conditions.len() < 4096 {
            self.conditions.insert(key, Arc::downgrade(&a));
        }
        a
    }

    /// The pauses the hub recorded this turn for `id`, not yet seen by the shell.
    pub fn pending_hits_for(&self, id: ConnId) -> Vec<dispatch::breakpoints::HitNote> {
        self.pending_hits
            .iter()
            .filter(|(c, _)| *c == id)
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// Whether the hub's batches are due to close this turn.
    pub fn batches_due(&self) -> bool {
        self.config.batch_timeout_ms == 0
            || self.hub.pending() >= self.config.batch_size
            || self.batch_deadline.is_some_and(|d| d <= self.now)
            || self.shutting_down
    }

    /// Closes the current batches and hands their frames to the outbox.
    pub fn flush_hub(&mut self) {
        let now_ms = self.now_ms;
        let App {
            hub,
            encoder,
            outbox,
            metrics,
            pending_hits,
            ..
        } = self;
        // `encode`, `deliver` and `hit` run one at a time; the cells let all three
        // reach the encoder, the outbox and the metrics.
        let encoder = std::cell::RefCell::new(encoder);
        let outbox = std::cell::RefCell::new(outbox);
        let metrics = std::cell::RefCell::new(metrics);
        hub.flush_with(
            |audience, session, events| {
                metrics.borrow_mut().frames_encoded += 1;
                encoder
                    .borrow_mut()
                    .encode(audience, session, events, now_ms)
            },
            |conn, frame: &Bytes, info| {
                outbox.borrow_mut().push(Delivery {
                    conn,
                    frame: frame.clone(),
                    span: EventSpan {
                        session: info.session.clone(),
                        first_seq: info.first_seq,
                        last_seq: info.last_seq,
                        count: info.count,
                    },
                    hit: None,
                })
            },
            |h| {
                let mut m = metrics.borrow_mut();
                let (before, hit) = dispatch::breakpoints::hit_frames(
                    &h,
                    &mut encoder.borrow_mut(),
                    &mut m,
                    now_ms,
                );
                if let Some(note) = &hit.hit {
                    pending_hits.push((h.conn, note.clone()));
                }
                let mut outbox = outbox.borrow_mut();
                outbox.extend(before);
                outbox.push(hit);
            },
        );
        self.batch_deadline = None;
    }

    /// The hub's deliveries since the last call, for the shell to queue. Hand the vector
    /// back with [`App::return_outbox`] to keep its allocation.
    pub fn take_outbox(&mut self) -> Vec<Delivery> {
        // The shell records every pause it finds in the deliveries.
        self.pending_hits.clear();
        std::mem::take(&mut self.outbox)
    }

    pub fn return_outbox(&mut self, mut v: Vec<Delivery>) {
        v.clear();
        if self.outbox.is_empty() {
            self.outbox = v;
        }
    }

    /// Records the publish→deliver latency once this turn's batches went out.
    pub fn note_delivered(&mut self, flushed: bool) {
        if flushed {
            if let Some(t) = self.ingested_at.take() {
                self.metrics.record_deliver(t.elapsed().as_micros() as u64);
            }
        }
    }

    /// Lists `id` for a job step after this turn's fan-out.
    pub fn jobs_pending(&mut self, id: ConnId) {
        if !self.job_conns.contains(&id) {
            self.job_conns.push(id);
        }
    }

    /// Connections with paced jobs; the shell steps each one whose queue has room.
    pub fn take_job_conns(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.job_conns)
    }

    pub fn has_jobs(&self) -> bool {
        !self.job_conns.is_empty()
    }

    pub fn schedule_expiry(&mut self, id: ConnId, exp_secs: i64) {
        let now_secs = crate::auth::unix_now_secs();
        let wait = Duration::from_secs(exp_secs.saturating_sub(now_secs).max(0) as u64);
        self.timers.schedule(self.now + wait, Timer::AuthExpiry(id));
    }

    /// Why storage is failing, while it is: `/healthz` answers 503 with it.
    pub fn storage_fault(&self) -> Option<String> {
        let health = self.store.health();
        let reasons: Vec<&str> = health.faults().map(|f| f.reason.as_str()).collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// Prometheus text; the connection gauges are taken by the shell just before.
    pub fn render_metrics(&mut self) -> String {
        self.metrics.compressed_in_bytes = self.encoder.deflate_in;
        self.metrics.compressed_out_bytes = self.encoder.deflate_out;
        let health = self.store.health();
        let g = Gauges {
            sessions: self.store.session_count(),
            next_seq: self.store.next_seq(),
            storage_failing: !health.is_ok(),
            storage_errors: health.errors(),
            cluster: self.cluster_gauges(),
            ..self.gauges
        };
        self.metrics.render(&g)
    }
}

impl App {
    /// Cluster mode: the sequencer's standing, for `/metrics`.
    fn cluster_gauges(&self) -> Option<crate::metrics::ClusterGauges> {
        self.sequencer_status()
            .map(|s| crate::metrics::ClusterGauges {
                connected: s.connected,
                catching_up: s.catching_up,
                lag: s.lag,
                stream_seq: s.stream_seq,
                in_flight: s.in_flight,
            })
    }
}

impl Call<'_> {
    /// Queues `app.scratch` (one serialized control message) to the client.
    pub fn send_scratch(&mut self) {
        let frame = self
            .app
            .encoder
            .control(self.client.deflate, &self.app.scratch);
        self.client.messages_out += 1;
        self.app.metrics.messages_sent += 1;
        self.out.control(frame);
    }

    /// Answers with an `error` message (echoing the request id).
    pub fn error(&mut self, code: crate::protocol::ErrorCode, message: &str) {
        self.error_retry(code, message, None);
    }

    pub fn error_retry(
        &mut self,
        code: crate::protocol::ErrorCode,
        message: &str,
        retry_after_ms: Option<u64>,
    ) {
        self.app.scratch.clear();
        crate::protocol::server::encode_error(
            &mut self.app.scratch,
            code,
            message,
            retry_after_ms,
            self.app.now_ms,
            self.rid.as_ref(),
        );
        self.send_scratch();
    }
}
