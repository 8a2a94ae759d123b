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
//! What the protocol does lives in the application core ([`crate::app`]): for each
//! message, timer or job step the loop lends it one connection's state in a
//! [`Call`], never the slab. Accepting and the HTTP phase live in `accept.rs`, the end of
//! a turn in `turn.rs`; both are `impl Server` blocks of this same loop.

mod accept;
pub(crate) mod conn;
pub mod publisher;
mod turn;

/// The write queue moved to the application core with the rest of the per-client state;
/// kept here under its old path for embedders and benches.
pub use crate::app::queue;
pub use crate::app::timer;

use crate::app::dispatch;
use crate::app::timer::{Timer, Timers};
use crate::app::{wall_ms, App, Call, Out};
use crate::auth::Authenticator;
use crate::config::Config;
use crate::http::Response;
use crate::hub::ConnId;
use crate::limits::{AcceptRate, IpLimiter};
use crate::store::StoreError;
use crate::ws::{close_code, close_frame, Read};
use bytes::Bytes;
use conn::{Conn, Phase, ReadOutcome, WsState};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use publisher::{Command, Publisher};
use slab::Slab;
use std::net::SocketAddr;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);
/// The optional `[otlp] port` listener.
const OTLP_LISTENER: Token = Token(usize::MAX - 4);

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Bytes read from one socket per readiness before others get their turn.
const READ_BUDGET: usize = 256 * 1024;
/// Messages handled for one connection per turn before others get theirs: a flood of
/// tiny frames (6-byte pings) costs per message, not per byte, so bytes alone do not
/// bound a turn.
const MESSAGE_BUDGET: usize = 256;
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
    /// Cluster mode could not start (data dir, names).
    Cluster(String),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::Io(e) => write!(f, "I/O error: {e}"),
            ServerError::Store(e) => write!(f, "storage: {e}"),
            ServerError::Auth(e) => write!(f, "auth config: {e}"),
            ServerError::Cluster(e) => write!(f, "cluster: {e}"),
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

/// The server: a bound listener and everything the loop needs.
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    /// `[otlp] port`: a listener serving only `POST /v1/traces`.
    otlp_listener: Option<TcpListener>,
    otlp_addr: Option<SocketAddr>,
    conns: Slab<Conn>,
    next_gen: u32,
    ws_count: usize,
    app: App,
    commands: Receiver<publisher::Command>,
    publisher: Publisher,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    /// Connections whose read stopped early (budget) and must be read again.
    pending_reads: Vec<ConnId>,
    /// Connections with frames to write this turn.
    dirty: Vec<ConnId>,
    /// Connections that died this turn, removed at its end.
    dying: Vec<ConnId>,
    ip_limiter: IpLimiter,
    accept_rate: AcceptRate,
    shutdown_deadline: Option<Instant>,
    /// One descriptor held back so that at the file limit a waiting client can still be
    /// accepted and told 503 instead of waiting unseen in the backlog.
    fd_reserve: Option<std::fs::File>,
    /// Where each socket read lands before it is appended to its connection's buffer.
    read_scratch: Box<[u8]>,
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
    // Pinned before the store starts its fsync thread; helper threads then move to the
    // other allowed cores (`crate::affinity`), so the loop's core holds only the loop.
    if let Some(core) = config.pin_core {
        match crate::affinity::pin_loop(core) {
            Ok(0) => tracing::info!(
                core,
                "pinned to core; no other core allowed, so helper threads share it"
            ),
            Ok(helper_cores) => tracing::info!(core, helper_cores, "pinned to core"),
            Err(e) => {
                tracing::warn!(core, error = %e, "could not pin to that core; running unpinned")
            }
        }
    }
    let mut server = Server::bind(config)?;
    server.handle_signals()?;
    tracing::info!(addr = %server.local_addr(), "listening");
    if let Some(addr) = server.otlp_addr() {
        // Not "listening": that word marks the main port's line.
        tracing::info!(addr = %addr, "OTLP-only port open");
    }
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
        let (otlp_listener, otlp_addr) = match config.otlp.port {
            None => (None, None),
            Some(port) => {
                let mut l = bind_listener(SocketAddr::new(addr.ip(), port), config.reuse_port)?;
                let a = l.local_addr()?;
                poll.registry()
                    .register(&mut l, OTLP_LISTENER, Interest::READABLE)?;
                (Some(l), Some(a))
            }
        };
        let app = App::new(config.clone(), store, auth);
        let app = with_cluster(app, &config, waker.clone())?;
        let server = Server {
            poll,
            listener: Some(listener),
            local_addr,
            otlp_listener,
            otlp_addr,
            conns: Slab::new(),
            next_gen: 0,
            ws_count: 0,
            ip_limiter: IpLimiter::new(config.max_connections_per_ip),
            accept_rate: AcceptRate::new(config.accept_rate_per_sec, 0),
            app,
            commands,
            publisher,
            signals: None,
            pending_reads: Vec::new(),
            dirty: Vec::new(),
            dying: Vec::new(),
            shutdown_deadline: None,
            fd_reserve: std::fs::File::open("/dev/null").ok(),
            read_scratch: vec![0; conn::READ_CHUNK].into_boxed_slice(),
        };
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

    /// Where the `[otlp] port` listener is bound, when configured.
    pub fn otlp_addr(&self) -> Option<SocketAddr> {
        self.otlp_addr
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
            self.app.begin_turn(turn, wall_ms());
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(false),
                    OTLP_LISTENER => self.accept(true),
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
            self.app
                .metrics
                .record_loop(turn.elapsed().as_micros() as u64);
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() || Instant::now() >= deadline {
                    break;
                }
            }
        }
        if let Err(e) = self.app.store.sync() {
            tracing::error!(error = %e, "final sync failed");
        }
        tracing::info!("stopped");
        Ok(())
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.pending_reads.is_empty() || self.app.has_jobs() {
            return Some(Duration::ZERO);
        }
        let mut t = self.app.timers.next_timeout(now);
        if let Some(d) = self.shutdown_deadline {
            let left = d.saturating_duration_since(now);
            t = Some(t.map_or(left, |t| t.min(left)));
        }
        t
    }

    fn on_wake(&mut self) {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Publish { mut body, reply } => self.app.publish_body(&mut body, reply),
                Command::Shutdown => self.begin_shutdown(),
            }
        }
        self.poll_store();
    }

    fn poll_store(&mut self) {
        if let Err(e) = self.app.store.poll_sync() {
            tracing::error!(error = %e, "fsync failed: acknowledged data may not be durable");
        }
        self.app.poll_commits();
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
        if self.app.shutting_down {
            return;
        }
        self.app.shutting_down = true;
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        if let Some(mut l) = self.otlp_listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.app.flush_hub();
        self.apply_outbox();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let id = conn.id;
            if let Phase::Ws(ws) = &mut conn.phase {
                self.app.say_shutdown(&mut ws.client, &mut conn.out);
            }
            conn.out.closing = true;
            self.after_io(id);
        }
        if let Err(e) = self.app.store.sync() {
            tracing::error!(error = %e, "sync at shutdown failed");
        }
        self.shutdown_deadline = Some(self.app.now + SHUTDOWN_GRACE);
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
        let max_msg = self.app.config.max_message_size;
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        if conn.backlog {
            // Messages left over by the message budget go first; reading more now would
            // only grow the buffer toward its limit.
            conn.backlog = false;
            self.process_input(id);
            if let Some(conn) = live(&mut self.conns, id) {
                if !conn.backlog {
                    // Edge-triggered: the socket may hold more that no event will repeat.
                    self.pending_reads.push(id);
                }
            }
            self.after_io(id);
            return;
        }
        let limit = match conn.phase {
            Phase::Http => MAX_HEAD + max_msg,
            Phase::Ws(_) => max_msg + 64 * 1024,
        };
        let (n, outcome) = conn.read_some(limit, READ_BUDGET, &mut self.read_scratch);
        self.app.metrics.bytes_received += n as u64;
        if n > 0 {
            conn.last_seen = self.app.now;
        }
        if conn.out.closing {
            // Draining a closing connection: input is discarded, except that the peer's
            // close frame (its answer to ours) means it is done listening.
            if let Phase::Ws(ws) = &mut conn.phase {
                // Looked for among the first frames only: a peer still flooding after
                // our close is not worth parsing, and the close deadline ends it.
                let mut at = 0;
                let mut looked = 0;
                while let Ok(Read {
                    consumed,
                    message: Some(msg),
                }) = ws.reader.read(conn.rbuf.get_mut(at..).unwrap_or_default())
                {
                    looked += 1;
                    if looked > MESSAGE_BUDGET {
                        break;
                    }
                    if matches!(msg, crate::ws::Message::Close { .. }) {
                        conn.out.peer_closed = true;
                        break;
                    }
                    at += consumed;
                }
            }
            conn.rbuf.clear();
            if conn.out.peer_closed && conn.out.queue.is_empty() {
                conn.kill(&mut self.dying);
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
                    conn.kill(&mut self.dying);
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
        let mut handled = 0usize;
        loop {
            let Some(conn) = self.conns.get_mut(id.key as usize) else {
                return;
            };
            if conn.out.closing || conn.dead {
                conn.consume(done);
                return;
            }
            if handled >= MESSAGE_BUDGET {
                // The rest waits for the next turn, before any more is read.
                conn.consume(done);
                conn.backlog = true;
                self.pending_reads.push(id);
                return;
            }
            handled += 1;
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
                            let mut call = Call {
                                app: &mut self.app,
                                client,
                                out: &mut conn.out,
                                id,
                                rid: None,
                            };
                            dispatch::on_frame_error(&e, &mut call);
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
                            let mut call = Call {
                                app: &mut self.app,
                                client,
                                out: &mut conn.out,
                                id,
                                rid: None,
                            };
                            dispatch::on_message(msg, &mut call);
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
            self.app.now,
            &mut self.dirty,
            &mut self.app.timers,
        );
    }

    fn fire_timers(&mut self) {
        let now = self.app.now;
        while let Some(t) = self.app.timers.pop_due(now) {
            match t {
                Timer::Heartbeat(id) => {
                    if let Some(conn) = live(&mut self.conns, id) {
                        if let Phase::Ws(ws) = &mut conn.phase {
                            self.app
                                .heartbeat(id, &mut ws.client, &mut conn.out, conn.last_seen);
                        }
                    }
                    self.after_io(id);
                }
                Timer::AuthDeadline(id) => {
                    self.with_call(id, dispatch::auth::on_auth_deadline);
                }
                Timer::AuthExpiry(id) => {
                    self.with_call(id, dispatch::auth::on_auth_expiry);
                }
                Timer::HttpDeadline(id) => self.on_http_deadline(id),
                Timer::CloseDeadline(id) => {
                    if let Some(conn) = live(&mut self.conns, id) {
                        conn.kill(&mut self.dying);
                    }
                }
                Timer::Retention => {
                    let report = self.app.store.enforce_retention(self.app.now_ms);
                    if report.segments > 0 {
                        tracing::info!(
                            segments = report.segments,
                            bytes = report.bytes,
                            events = report.events,
                            "retention removed old segments"
                        );
                    }
                    self.app
                        .timers
                        .schedule(now + Duration::from_secs(10), Timer::Retention);
                }
                Timer::BatchDeadline => {}
            }
        }
    }

    /// Runs `f` on a live WebSocket connection's [`Call`], then lists it for flushing.
    fn with_call(&mut self, id: ConnId, f: impl FnOnce(&mut Call<'_>)) {
        if let Some(conn) = live(&mut self.conns, id) {
            if let Phase::Ws(ws) = &mut conn.phase {
                let mut call = Call {
                    app: &mut self.app,
                    client: &mut ws.client,
                    out: &mut conn.out,
                    id,
                    rid: None,
                };
                f(&mut call);
            }
        }
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

/// Cluster mode when `[cluster] nats_url` is set: the stream's sequencer replaces the
/// store's own counter (docs/CLUSTER.md).
#[cfg(feature = "cluster")]
fn with_cluster(app: App, config: &Config, waker: Arc<Waker>) -> Result<App, ServerError> {
    if config.cluster.nats_url.is_empty() {
        return Ok(app);
    }
    let seq = crate::cluster::ClusterSequencer::start(config, &*app.store, waker)
        .map_err(|e| ServerError::Cluster(e.to_string()))?;
    Ok(app.with_sequencer(Box::new(seq)))
}

#[cfg(not(feature = "cluster"))]
fn with_cluster(app: App, config: &Config, _: Arc<Waker>) -> Result<App, ServerError> {
    if config.cluster.nats_url.is_empty() {
        return Ok(app);
    }
    Err(ServerError::Cluster(
        "[cluster] nats_url is set, but this binary was built without the `cluster` feature \
         (build with default features)"
            .into(),
    ))
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
