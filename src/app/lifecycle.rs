//! What the application says at a connection's phase changes (docs/LIFECYCLE.md): the
//! upgrade decision and its `connection` message, each heartbeat, and the shutdown
//! notice. The shell calls these at the right moment and writes what they queue.

use super::client::{Client, Out};
use super::dispatch::{client_metrics, system_event};
use super::queue::WriteQueue;
use super::timer::Timer;
use super::App;
use crate::auth::Principal;
use crate::http::{Request, Response};
use crate::hub::ConnId;
use crate::limits::RateLimiter;
use crate::protocol::server as enc;
use crate::ws::{close_code, close_frame, negotiate, ping_frame, HandshakeOptions, WireFormat};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// What `connection.serverInfo.capabilities` lists: what this server answers.
pub const CAPABILITIES: [&str; 10] = [
    "live",
    "history",
    "time_travel",
    "resume",
    "publish",
    "delta",
    "binary",
    "permessage-deflate",
    "breakpoints",
    "filters",
];

/// An accepted upgrade: the 101 answer and the client it starts.
pub struct Upgraded {
    pub response: Vec<u8>,
    pub client: Client,
    pub deflate: bool,
}

/// The most memory (bytes plus each frame's bookkeeping) a connection's queue may hold
/// before it is closed for not reading its replies (1008; an HTTP connection is just
/// closed), derived from the limits: a full event backlog (twice the high water mark
/// plus one batch), two of the largest messages, the largest single reply
/// (`initial_traces`, a history chunk or a catch-up run) and every frame's bookkeeping —
/// about 13 MiB with the defaults.
pub fn control_cap(config: &crate::config::Config) -> usize {
    let events = config.max_event_bytes;
    let largest_reply = config
        .history_chunk_size
        .max(super::dispatch::RECENT)
        .saturating_mul(events);
    config
        .backpressure
        .high_water_mark
        .saturating_mul(2)
        .saturating_add(config.batch_size.saturating_mul(events))
        .saturating_add(config.max_message_size.saturating_mul(2))
        .saturating_add(largest_reply)
        .saturating_add(
            config
                .backpressure
                .max_queue_size
                .saturating_mul(super::queue::FRAME_OVERHEAD),
        )
}

impl App {
    /// A fresh outbound half for a new connection.
    pub fn new_out(&self) -> Out {
        Out::new(
            WriteQueue::new(&self.config.backpressure),
            control_cap(&self.config),
        )
    }

    /// Decides an upgrade request: the connection limit (`ws_count` upgraded now), a
    /// credential presented with it (a bad one gets 401 and never becomes a WebSocket),
    /// then the handshake. `Err` is the HTTP answer to send before closing.
    pub fn upgrade(
        &mut self,
        req: &Request,
        ws_count: usize,
        peer: std::net::SocketAddr,
    ) -> Result<Upgraded, Response> {
        let cfg = self.config.clone();
        if ws_count >= cfg.max_connections || self.shutting_down {
            self.metrics.connections_rejected += 1;
            return Err(
                Response::error(503, "server at its connection limit").header("Retry-After", "1")
            );
        }
        let principal = if !self.auth.is_enabled() {
            Some(Principal::anonymous_full())
        } else {
            match self.auth.extract(&req.headers, &req.query) {
                None => None,
                Some(cred) => match self.auth.authenticate(&cred, crate::auth::unix_now_secs()) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        self.metrics.auth_failures += 1;
                        tracing::info!(reason = e.code(), peer = %peer, "authentication at upgrade failed");
                        return Err(
                            Response::error(401, e.message()).header("WWW-Authenticate", "Bearer")
                        );
                    }
                },
            }
        };
        let opts = HandshakeOptions {
            allow_binary: cfg.binary_protocol,
            deflate: cfg.compression_enabled,
        };
        let upgrade = negotiate(req, &opts).map_err(|e| e.to_response())?;
        let client = Client::new(
            upgrade.format,
            upgrade.compress,
            req.query_param("compression").is_some_and(|c| c == "delta"),
            principal,
            RateLimiter::new(&cfg.rate_limit, self.mono_ms()),
        );
        Ok(Upgraded {
            response: upgrade.response,
            client,
            deflate: upgrade.deflate,
        })
    }

    /// The first message of an upgraded connection, and its timers: heartbeat, and the
    /// auth deadline or the credential's expiry.
    pub fn welcome(&mut self, id: ConnId, client: &mut Client, out: &mut Out) {
        let hb = Duration::from_millis(self.config.heartbeat_interval_ms);
        self.timers.schedule(self.now + hb, Timer::Heartbeat(id));
        if client.echo {
            return;
        }
        self.scratch.clear();
        enc::encode_connection(
            &mut self.scratch,
            &format!("c{}-{}", id.key, id.gen),
            &enc::ServerInfo {
                version: env!("CARGO_PKG_VERSION"),
                capabilities: &CAPABILITIES,
                max_message_size: self.config.max_message_size,
                batch_size: self.config.batch_size,
                max_event_bytes: self.config.max_event_bytes,
                auth_required: self.auth.is_enabled(),
                binary_available: self.config.binary_protocol,
                binary_active: client.format == WireFormat::Binary,
            },
            self.now_ms,
        );
        client.messages_out += 1;
        self.metrics.messages_sent += 1;
        out.control(self.encoder.control(client.deflate, &self.scratch));
        if client.principal.is_none() {
            let at = self.now + Duration::from_millis(self.auth.auth_timeout_ms());
            self.timers.schedule(at, Timer::AuthDeadline(id));
        } else if let Some(exp) = client.principal.as_ref().and_then(|p| p.expires_at) {
            self.schedule_expiry(id, exp);
        }
    }

    /// One heartbeat: a connection silent for `stale_timeout_ms` is closed; otherwise a
    /// ping, and for an authenticated client a `heartbeat` with its own metrics.
    pub fn heartbeat(
        &mut self,
        id: ConnId,
        client: &mut Client,
        out: &mut Out,
        last_seen: Instant,
    ) {
        if out.closing {
            return;
        }
        let now = self.now;
        let stale = Duration::from_millis(self.config.stale_timeout_ms());
        if now.saturating_duration_since(last_seen) >= stale {
            tracing::debug!(conn = id.key, "stale connection closed");
            out.close_with(close_frame(close_code::GOING_AWAY, "stale connection"));
            return;
        }
        if client.ping_out.is_none() {
            client.ping_out = Some(now);
        }
        out.control(ping_frame(b"tc"));
        if client.principal.is_some() && !client.echo {
            let m = client_metrics(client, out);
            self.scratch.clear();
            enc::encode_heartbeat(&mut self.scratch, self.now_ms, &m);
            let frame = self.encoder.control(client.deflate, &self.scratch);
            client.messages_out += 1;
            self.metrics.messages_sent += 1;
            out.control(frame);
        }
        let interval = Duration::from_millis(self.config.heartbeat_interval_ms);
        self.timers.schedule(now + interval, Timer::Heartbeat(id));
    }

    /// Shutdown: tell the client how to come back, then close with 1001.
    pub fn say_shutdown(&mut self, client: &mut Client, out: &mut Out) {
        system_event(
            self,
            client,
            out,
            "shutdown",
            b"{\"reason\":\"server shutting down\",\"reconnect\":true,\"resume\":\"subscribe_session with sinceSeq set to the last seq received\"}",
        );
        out.control(close_frame(close_code::GOING_AWAY, "server shutting down"));
    }
}

/// An HTTP answer as bytes, closing the connection after it.
pub fn closing_response(r: Response) -> Bytes {
    Bytes::from(r.close().to_bytes())
}
