//! The thin mio shell: the one place that owns the poll, the sockets and the clock.
//!
//! [`Server::run`] is the whole loop. Each turn it
//! 1. polls (sleeping until the next timer at most),
//! 2. dispatches readiness by token — the listener, the waker (publisher commands, sync
//!    completions), the signal pipe, or a connection (`key | generation << 32`, so an
//!    event for a connection that is gone never reaches the one now in its slot),
//! 3. fires due timers (heartbeats, auth deadlines, close deadlines, retention),
//! 4. ends the turn: releases acks that became durable, closes the hub's batches and
//!    fans them out (each batch encoded once per audience), steps paced history jobs for
//!    clients whose queues drained, flushes every connection that got frames in one
//!    vectored write each, and finally removes the connections that died this turn.
//!
//! Everything a handler needs besides its own connection lives in [`Ctx`], so the
//! protocol code in [`dispatch`] and [`routes`] borrows one connection and the context,
//! never the slab. Accepting and the HTTP phase live in `accept.rs`, the end of a turn
//! in `turn.rs`; both are `impl Server` blocks of this same loop.

mod accept;
pub(crate) mod conn;
pub(crate) mod dispatch;
pub(crate) mod history;
pub mod publisher;
pub mod queue;
pub(crate) mod routes;
pub mod timer;
mod turn;

use crate::auth::Authenticator;
use crate::config::{Config, FsyncPolicy};
use crate::http::Response;
use crate::hub::encode::BatchEncoder;
use crate::hub::{Audience, ConnId, Hub};
use crate::ingest::{IngestContext, IngestError};
use crate::limits::{AcceptRate, IpLimiter};
use crate::metrics::{Gauges, Metrics};
use crate::protocol::server as enc;
use crate::protocol::ErrorCode;
use crate::store::{Appended, Store, StoreError};
use crate::ws::{close_code, close_frame, ping_frame, Read, WireFormat};
use bytes::Bytes;
use conn::{Client, Conn, Out, Phase, ReadOutcome, WsState};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use publisher::{Command, PublishAck, PublishError, Publisher};
use queue::{EventSpan, WriteQueue};
use slab::Slab;
use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use timer::{Timer, Timers};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Bytes read from one socket per readiness before others get their turn.
const READ_BUDGET: usize = 256 * 1024;
/// How long a closing connection may take to drain and say goodbye.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long shutdown waits for clients to take their close frames.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Connections accepted beyond `max_connections` only to be told 503.
const OVERFLOW_SLACK: usize = 64;

/// Errors that stop the server.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// Binding or polling failed.
    Io(std::io::Error),
    /// The store could not be opened or recovered.
    Store(StoreError),
    /// The auth configuration is unusable.
    Auth(String),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::Io(e) => write!(f, "I/O error: {e}"),
            ServerError::Store(e) => write!(f, "storage: {e}"),
            ServerError::Auth(e) => write!(f, "auth config: {e}"),
        }
    }
}

impl std::error::Error for ServerError {}

impl From<std::io::Error> for ServerError {
    fn from(e: std::io::Error) -> Self {
        ServerError::Io(e)
    }
}

impl From<StoreError> for ServerError {
    fn from(e: StoreError) -> Self {
        ServerError::Store(e)
    }
}

/// Why a batch was not stored.
pub(crate) enum IngestFailure {
    Invalid(IngestError),
    Store(StoreError),
}

impl IngestFailure {
    pub fn to_protocol(&self) -> (ErrorCode, String) {
        match self {
            IngestFailure::Invalid(e) => (ErrorCode::InvalidRequest, e.to_string()),
            IngestFailure::Store(e) => (ErrorCode::StorageError, e.to_string()),
        }
    }
}

/// An acknowledgement waiting for its batch to be durable.
pub(crate) enum Ack {
    Ws {
        conn: ConnId,
        frame: Bytes,
    },
    /// `close`: the request did not keep the connection alive, so it ends after this.
    Http {
        conn: ConnId,
        response: Vec<u8>,
        close: bool,
    },
}

/// One hub delivery waiting to be queued on its connection.
struct Delivery {
    conn: ConnId,
    frame: Bytes,
    span: EventSpan,
}

/// Everything handlers share: configuration, routing, storage, metrics, scratch space.
pub(crate) struct Ctx {
    pub config: Arc<Config>,
    pub hub: Hub,
    pub store: Box<dyn Store>,
    pub metrics: Metrics,
    pub auth: Authenticator,
    pub ingest: IngestContext,
    pub buffers: crate::ingest::JsonBuffers,
    pub encoder: BatchEncoder,
    pub scratch: Vec<u8>,
    pub timers: Timers,
    pub epoch: Instant,
    /// Wall clock of this turn, epoch ms.
    pub now_ms: i64,
    pub now: Instant,
    pub shutting_down: bool,
    /// Connection gauges, refreshed by the loop before `/metrics` is rendered.
    pub gauges: Gauges,
    outbox: Vec<Delivery>,
    held: VecDeque<(u64, Ack)>,
    /// Connections with history/resume jobs.
    job_conns: Vec<ConnId>,
    /// The first ingest of this turn, for the publish→deliver histogram.
    ingested_at: Option<Instant>,
    batch_deadline: Option<Instant>,
    sessions: HashSet<Arc<str>>,
}

impl Ctx {
    /// Monotonic ms since start, for rate limiters.
    pub fn mono_ms(&self) -> u64 {
        self.now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    pub fn audience(&self, c: &Client) -> Audience {
        Audience {
            binary: c.format == WireFormat::Binary,
            deflate: c.deflate,
            delta: c.delta,
            agents: c.agents.clone(),
        }
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

    /// Validates, stores and routes one batch — the single ingest path for WebSocket,
    /// HTTP and in-process publishers.
    pub fn ingest_values(
        &mut self,
        values: &crate::ingest::Events<'_>,
    ) -> Result<Appended, IngestFailure> {
        self.ingest.now_ms = self.now_ms;
        let pending = match crate::ingest::validate(values, &mut self.ingest) {
            Ok(p) => p,
            Err(e) => {
                self.metrics.events_rejected += values.len() as u64;
                return Err(IngestFailure::Invalid(e));
            }
        };
        let appended = self.store.append(pending).map_err(|e| {
            tracing::error!(error = %e, "append failed; batch refused");
            IngestFailure::Store(e)
        })?;
        self.metrics.events_ingested += appended.events.len() as u64;
        self.hub.publish(&appended.events);
        if self.ingested_at.is_none() {
            self.ingested_at = Some(self.now);
        }
        let timeout = self.config.batch_timeout_ms;
        if timeout > 0 && self.batch_deadline.is_none() {
            let at = self.now + Duration::from_millis(timeout);
            self.batch_deadline = Some(at);
            self.timers.schedule(at, Timer::BatchDeadline);
        }
        Ok(appended)
    }

    /// Queues `ack` now, or holds it until `seq` is on disk under `fsync = "always"`.
    /// Returns true when held.
    pub fn ack_when_durable(&mut self, ack: Ack, seq: u64) -> bool {
        if self.config.storage.fsync == FsyncPolicy::Always && self.store.durable_seq() < seq {
            self.held.push_back((seq, ack));
            return true;
        }
        self.held.push_front((0, ack));
        // Released at the end of this turn, in order with other control frames.
        false
    }

    /// Closes the current batches and hands their frames to the outbox.
    pub fn flush_hub(&mut self) {
        let now_ms = self.now_ms;
        let Ctx {
            hub,
            encoder,
            outbox,
            metrics,
            ..
        } = self;
        hub.flush(
            |audience, session, events| {
                metrics.frames_encoded += 1;
                encoder.encode(audience, session, events, now_ms)
            },
            |conn, frame: &Bytes, info| {
                outbox.push(Delivery {
                    conn,
                    frame: frame.clone(),
                    span: EventSpan {
                        session: info.session.clone(),
                        first_seq: info.first_seq,
                        last_seq: info.last_seq,
                        count: info.count,
                    },
                })
            },
        );
        self.batch_deadline = None;
    }

    pub fn jobs_pending(&mut self, id: ConnId) {
        if !self.job_conns.contains(&id) {
            self.job_conns.push(id);
        }
    }

    pub fn schedule_expiry(&mut self, id: ConnId, exp_secs: i64) {
        let now_secs = crate::auth::unix_now_secs();
        let wait = Duration::from_secs(exp_secs.saturating_sub(now_secs).max(0) as u64);
        self.timers.schedule(self.now + wait, Timer::AuthExpiry(id));
    }

    /// Prometheus text; the connection gauges are taken by the loop just before.
    pub fn render_metrics(&self) -> String {
        let g = Gauges {
            sessions: self.store.sessions().len(),
            next_seq: self.store.next_seq(),
            ..self.gauges
        };
        self.metrics.render(&g)
    }
}

/// The server: a bound listener and everything the loop needs.
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    conns: Slab<Conn>,
    next_gen: u32,
    ws_count: usize,
    ctx: Ctx,
    commands: Receiver<publisher::Command>,
    publisher: Publisher,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    /// Connections whose read stopped early (budget) and must be read again.
    pending_reads: Vec<ConnId>,
    /// Connections with frames to write this turn.
    dirty: Vec<ConnId>,
    ip_limiter: IpLimiter,
    accept_rate: AcceptRate,
    shutdown_deadline: Option<Instant>,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn token_of(id: ConnId) -> Token {
    Token(id.key as usize | ((id.gen as usize) << 32))
}

fn id_of(t: Token) -> ConnId {
    ConnId {
        key: (t.0 & 0xffff_ffff) as u32,
        gen: (t.0 >> 32) as u32,
    }
}

/// Runs the daemon until SIGTERM/SIGINT: the `tracecast serve` entry point.
pub fn serve(config: Config) -> Result<(), ServerError> {
    if let Some(core) = config.pin_core {
        let ids = core_affinity::get_core_ids().unwrap_or_default();
        match ids.into_iter().find(|c| c.id == core) {
            Some(id) if core_affinity::set_for_current(id) => {
                tracing::info!(core, "pinned to core")
            }
            _ => tracing::warn!(core, "could not pin to that core; running unpinned"),
        }
    }
    let mut server = Server::bind(config)?;
    server.handle_signals()?;
    tracing::info!(addr = %server.local_addr(), "listening");
    server.run()
}

impl Server {
    /// Opens the store, binds the listener and prepares the loop (does not run it).
    pub fn bind(config: Config) -> Result<Server, ServerError> {
        let config = Arc::new(config);
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (publisher, commands) = Publisher::new(waker.clone());
        let (store, recovery) =
            crate::store::open(&config.storage, std::path::Path::new(&config.data_dir), {
                let waker = waker.clone();
                Box::new(move || {
                    let _ = waker.wake();
                })
            })?;
        if let Some(r) = recovery {
            tracing::info!(report = ?r, "log recovered");
        }
        let auth = Authenticator::from_config(&config.auth)
            .map_err(|e| ServerError::Auth(e.to_string()))?;
        let addr: SocketAddr =
            format!("{}:{}", config.bind, config.port)
                .parse()
                .map_err(|_| {
                    ServerError::Io(std::io::Error::other(format!(
                        "bad bind address {}:{}",
                        config.bind, config.port
                    )))
                })?;
        let mut listener = bind_listener(addr, config.reuse_port)?;
        let local_addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let now = Instant::now();
        let start_ms = wall_ms();
        let ctx = Ctx {
            hub: Hub::new(config.batch_size),
            store,
            metrics: Metrics::new(),
            auth,
            ingest: IngestContext::new(config.max_event_bytes, start_ms, start_ms as u64),
            buffers: crate::ingest::JsonBuffers::default(),
            encoder: BatchEncoder::new(config.compression_level, config.compression_min_bytes),
            scratch: Vec::with_capacity(4096),
            timers: Timers::new(),
            epoch: now,
            now_ms: start_ms,
            now,
            shutting_down: false,
            gauges: Gauges::default(),
            outbox: Vec::new(),
            held: VecDeque::new(),
            job_conns: Vec::new(),
            ingested_at: None,
            batch_deadline: None,
            sessions: HashSet::new(),
            config: config.clone(),
        };
        let mut server = Server {
            poll,
            listener: Some(listener),
            local_addr,
            conns: Slab::new(),
            next_gen: 0,
            ws_count: 0,
            ip_limiter: IpLimiter::new(config.max_connections_per_ip),
            accept_rate: AcceptRate::new(config.accept_rate_per_sec, 0),
            ctx,
            commands,
            publisher,
            signals: None,
            pending_reads: Vec::new(),
            dirty: Vec::new(),
            shutdown_deadline: None,
        };
        server
            .ctx
            .timers
            .schedule(now + Duration::from_secs(10), Timer::Retention);
        Ok(server)
    }

    /// Stops gracefully on SIGTERM / SIGINT.
    pub fn handle_signals(&mut self) -> Result<(), ServerError> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook_mio::v1_0::Signals::new([SIGTERM, SIGINT])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A cloneable handle for publishing from other threads (and stopping the server).
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// Runs the loop until shutdown completes.
    pub fn run(mut self) -> Result<(), ServerError> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let timeout = self.poll_timeout(now);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            let turn = Instant::now();
            self.ctx.now = turn;
            self.ctx.now_ms = wall_ms();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => self.on_wake(),
                    SIGNALS => self.on_signals(),
                    t => self.on_conn_event(
                        id_of(t),
                        ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                        ev.is_writable(),
                    ),
                }
            }
            for id in std::mem::take(&mut self.pending_reads) {
                self.read_conn(id);
            }
            self.fire_timers();
            self.end_turn();
            self.ctx
                .metrics
                .record_loop(turn.elapsed().as_micros() as u64);
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() || Instant::now() >= deadline {
                    break;
                }
            }
        }
        if let Err(e) = self.ctx.store.sync() {
            tracing::error!(error = %e, "final sync failed");
        }
        tracing::info!("stopped");
        Ok(())
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.pending_reads.is_empty() || !self.ctx.job_conns.is_empty() {
            return Some(Duration::ZERO);
        }
        let mut t = self.ctx.timers.next_timeout(now);
        if let Some(d) = self.shutdown_deadline {
            let left = d.saturating_duration_since(now);
            t = Some(t.map_or(left, |t| t.min(left)));
        }
        t
    }

    fn on_wake(&mut self) {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Publish { mut body, reply } => {
                    let mut buffers = std::mem::take(&mut self.ctx.buffers);
                    let result = match crate::ingest::parse_body(&mut body, &mut buffers) {
                        Ok(values) => {
                            let r = self.ctx.ingest_values(&values);
                            buffers.recycle(values);
                            r
                        }
                        Err(e) => Err(IngestFailure::Invalid(e)),
                    };
                    self.ctx.buffers = buffers;
                    if let Some(reply) = reply {
                        let answer = match result {
                            Ok(a) => Ok(PublishAck {
                                accepted: a.events.len(),
                                first_seq: a.first_seq(),
                                last_seq: a.last_seq(),
                            }),
                            Err(e) => Err(PublishError::Rejected(e.to_protocol().1)),
                        };
                        let _ = reply.try_send(answer);
                    }
                }
                Command::Shutdown => self.begin_shutdown(),
            }
        }
        self.poll_store();
    }

    fn poll_store(&mut self) {
        if let Err(e) = self.ctx.store.poll_sync() {
            tracing::error!(error = %e, "fsync failed: acknowledged data may not be durable");
        }
    }

    fn on_signals(&mut self) {
        let mut stop = false;
        if let Some(signals) = &mut self.signals {
            for sig in signals.pending() {
                tracing::info!(signal = sig, "shutdown requested");
                stop = true;
            }
        }
        if stop {
            self.begin_shutdown();
        }
    }

    /// Stop accepting, tell every client, close with 1001, sync the log.
    fn begin_shutdown(&mut self) {
        if self.ctx.shutting_down {
            return;
        }
        self.ctx.shutting_down = true;
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.ctx.flush_hub();
        self.apply_outbox();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let id = conn.id;
            if let Phase::Ws(ws) = &mut conn.phase {
                self.ctx.scratch.clear();
                enc::encode_system_event(
                    &mut self.ctx.scratch,
                    "shutdown",
                    b"{\"reason\":\"server shutting down\",\"reconnect\":true,\"resume\":\"subscribe_session with sinceSeq set to the last seq received\"}",
                    self.ctx.now_ms,
                );
                let frame = self
                    .ctx
                    .encoder
                    .control(ws.client.deflate, &self.ctx.scratch);
                conn.out.control(frame);
                conn.out
                    .control(close_frame(close_code::GOING_AWAY, "server shutting down"));
            }
            conn.out.closing = true;
            self.after_io(id);
        }
        if let Err(e) = self.ctx.store.sync() {
            tracing::error!(error = %e, "sync at shutdown failed");
        }
        self.shutdown_deadline = Some(self.ctx.now + SHUTDOWN_GRACE);
    }

    fn on_conn_event(&mut self, id: ConnId, readable: bool, writable: bool) {
        if writable {
            if let Some(conn) = live(&mut self.conns, id) {
                if !conn.out.queue.is_empty() {
                    self.flush_conn(id);
                }
            }
        }
        if readable {
            self.read_conn(id);
        }
    }

    fn read_conn(&mut self, id: ConnId) {
        let max_msg = self.ctx.config.max_message_size;
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        let limit = match conn.phase {
            Phase::Http => MAX_HEAD + max_msg,
            Phase::Ws(_) => max_msg + 64 * 1024,
        };
        let (n, outcome) = conn.read_some(limit, READ_BUDGET);
        self.ctx.metrics.bytes_received += n as u64;
        if n > 0 {
            conn.last_seen = self.ctx.now;
        }
        if conn.out.closing {
            // Draining a closing connection: input is discarded, except that the peer's
            // close frame (its answer to ours) means it is done listening.
            if let Phase::Ws(ws) = &mut conn.phase {
                while let Ok(Read {
                    consumed,
                    message: Some(msg),
                }) = ws.reader.read(&mut conn.rbuf)
                {
                    if matches!(msg, crate::ws::Message::Close { .. }) {
                        conn.out.peer_closed = true;
                    }
                    conn.rbuf.drain(..consumed.min(conn.rbuf.len()));
                }
            }
            conn.rbuf.clear();
            if conn.out.peer_closed && conn.out.queue.is_empty() {
                conn.dead = true;
            }
        } else {
            self.process_input(id);
        }
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        match outcome {
            ReadOutcome::WouldBlock => conn.release_idle_buffer(),
            ReadOutcome::Budget => self.pending_reads.push(id),
            ReadOutcome::Overflow => {
                if conn.rbuf.len() >= limit {
                    // Nothing could be made of a full buffer: no valid input is this big.
                    let frame = match conn.phase {
                        Phase::Http => Bytes::from(
                            Response::error(413, "request too large").close().to_bytes(),
                        ),
                        Phase::Ws(_) => close_frame(close_code::TOO_BIG, "message too large"),
                    };
                    conn.rbuf.clear();
                    conn.out.control(frame);
                    conn.out.closing = true;
                } else {
                    self.pending_reads.push(id);
                }
            }
            ReadOutcome::Closed => {
                // The peer is gone (or half-closed after its close frame): nothing more
                // can be written usefully once the queue is out.
                if conn.out.queue.is_empty() || conn.out.closing {
                    conn.dead = true;
                } else {
                    conn.out.closing = true;
                }
            }
        }
        self.after_io(id);
    }

    /// Handles everything complete in the connection's read buffer. WebSocket messages are
    /// taken from an advancing offset and the buffer is cut once at the end: cutting after
    /// each message moved the rest of a 256 KiB read forward once per message.
    fn process_input(&mut self, id: ConnId) {
        let mut done = 0usize;
        loop {
            let Some(conn) = self.conns.get_mut(id.key as usize) else {
                return;
            };
            if conn.out.closing || conn.dead {
                conn.consume(done);
                return;
            }
            match &mut conn.phase {
                Phase::Http => {
                    if conn.http_wait || !self.process_http(id) {
                        return;
                    }
                }
                Phase::Ws(ws) => {
                    let WsState { reader, client } = &mut **ws;
                    let rest = conn.rbuf.get_mut(done..).unwrap_or_default();
                    let read: Result<Read<'_>, _> = reader.read(rest);
                    match read {
                        Err(e) => {
                            tracing::debug!(
                                conn = id.key,
                                code = e.close_code(),
                                reason = e.reason,
                                "protocol violation"
                            );
                            conn.out.control(close_frame(e.close_code(), e.reason));
                            conn.out.closing = true;
                            conn.rbuf.clear();
                            return;
                        }
                        Ok(Read {
                            consumed,
                            message: None,
                        }) => {
                            conn.consume(done + consumed);
                            return;
                        }
                        Ok(Read {
                            consumed,
                            message: Some(msg),
                        }) => {
                            dispatch::on_message(msg, client, &mut conn.out, &mut self.ctx, id);
                            done += consumed;
                        }
                    }
                }
            }
        }
    }

    /// Bookkeeping after anything touched a connection: list it for flushing, and give a
    /// newly closing connection its deadline.
    fn after_io(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id.key as usize) else {
            return;
        };
        if conn.id.gen != id.gen {
            return;
        }
        note_io(
            &mut conn.out,
            id,
            self.ctx.now,
            &mut self.dirty,
            &mut self.ctx.timers,
        );
    }

    fn fire_timers(&mut self) {
        let now = self.ctx.now;
        while let Some(t) = self.ctx.timers.pop_due(now) {
            match t {
                Timer::Heartbeat(id) => self.heartbeat(id),
                Timer::AuthDeadline(id) => {
                    if let Some(conn) = live(&mut self.conns, id) {
                        if let Phase::Ws(ws) = &mut conn.phase {
                            if ws.client.principal.is_none() && !conn.out.closing {
                                self.ctx.metrics.auth_failures += 1;
                                dispatch::error(
                                    &mut self.ctx,
                                    &mut ws.client,
                                    &mut conn.out,
                                    ErrorCode::NotAuthenticated,
                                    "authentication timed out",
                                    None,
                                    None,
                                );
                                conn.out.control(close_frame(
                                    close_code::POLICY,
                                    "authentication timed out",
                                ));
                                conn.out.closing = true;
                            }
                        }
                    }
                    self.after_io(id);
                }
                Timer::AuthExpiry(id) => {
                    if let Some(conn) = live(&mut self.conns, id) {
                        if let Phase::Ws(ws) = &mut conn.phase {
                            let expired = ws
                                .client
                                .principal
                                .as_ref()
                                .is_some_and(|p| p.is_expired(crate::auth::unix_now_secs()));
                            if expired && !conn.out.closing {
                                conn.out
                                    .control(close_frame(close_code::POLICY, "token expired"));
                                conn.out.closing = true;
                            }
                        }
                    }
                    self.after_io(id);
                }
                Timer::CloseDeadline(id) => {
                    if let Some(conn) = live(&mut self.conns, id) {
                        conn.dead = true;
                    }
                }
                Timer::Retention => {
                    let report = self.ctx.store.enforce_retention(self.ctx.now_ms);
                    if report.segments > 0 {
                        tracing::info!(
                            segments = report.segments,
                            bytes = report.bytes,
                            events = report.events,
                            "retention removed old segments"
                        );
                    }
                    self.ctx
                        .timers
                        .schedule(now + Duration::from_secs(10), Timer::Retention);
                }
                Timer::BatchDeadline => {}
            }
        }
    }

    fn heartbeat(&mut self, id: ConnId) {
        let stale = Duration::from_millis(self.ctx.config.stale_timeout_ms());
        let interval = Duration::from_millis(self.ctx.config.heartbeat_interval_ms);
        let now = self.ctx.now;
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        let Phase::Ws(ws) = &mut conn.phase else {
            return;
        };
        if conn.out.closing {
            return;
        }
        if now.saturating_duration_since(conn.last_seen) >= stale {
            tracing::debug!(conn = id.key, "stale connection closed");
            conn.out
                .control(close_frame(close_code::GOING_AWAY, "stale connection"));
            conn.out.closing = true;
            self.after_io(id);
            return;
        }
        let c = &mut ws.client;
        if c.ping_out.is_none() {
            c.ping_out = Some(now);
        }
        conn.out.control(ping_frame(b"tc"));
        if c.principal.is_some() {
            let m = dispatch::client_metrics(c, &conn.out);
            self.ctx.scratch.clear();
            enc::encode_heartbeat(&mut self.ctx.scratch, self.ctx.now_ms, &m);
            dispatch::send_scratch(&mut self.ctx, c, &mut conn.out);
        }
        self.ctx
            .timers
            .schedule(now + interval, Timer::Heartbeat(id));
        self.after_io(id);
    }
}

/// What `after_io` does once the connection is in hand (the fan-out path has it already):
/// list it for this turn's flush, and give a newly closing connection its deadline.
fn note_io(out: &mut Out, id: ConnId, now: Instant, dirty: &mut Vec<ConnId>, timers: &mut Timers) {
    if out.closing && out.close_deadline.is_none() {
        let at = now + CLOSE_GRACE;
        out.close_deadline = Some(at);
        timers.schedule(at, Timer::CloseDeadline(id));
    }
    if !out.listed && (!out.queue.is_empty() || out.closing) {
        out.listed = true;
        dirty.push(id);
    }
}

/// The connection `id` names, if it is still the one in that slot and alive.
fn live(conns: &mut Slab<Conn>, id: ConnId) -> Option<&mut Conn> {
    conns
        .get_mut(id.key as usize)
        .filter(|c| c.id.gen == id.gen && !c.dead)
}

fn bind_listener(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(TcpListener::from_std(socket.into()))
}
