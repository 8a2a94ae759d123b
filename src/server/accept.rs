//! Accepting connections and their HTTP phase, up to the WebSocket upgrade.
//!
//! Limits are applied as early as they can be answered: per-IP and accept-rate refusals
//! right after `accept` (the response is queued before any byte is read), the connection
//! limit and credentials at the upgrade, so a refused client never becomes a WebSocket.

use super::conn::{Client, Conn, Out, Phase, WsState};
use super::timer::Timer;
use super::*;
use crate::auth::Principal;
use crate::http::{parse_head, ChunkedDecoder, ChunkedStatus, Response, Status};
use crate::limits::RateLimiter;
use crate::metrics::Gauges;
use crate::protocol::server as enc;
use crate::ws::{negotiate, HandshakeOptions, MessageReader, WireFormat};
use bytes::Bytes;
use mio::Interest;
use std::collections::VecDeque;
use std::time::Duration;

/// The most a connection may have queued before it is closed for not reading: room for
/// a full event backlog plus its largest possible replies.
pub(super) fn control_cap(config: &crate::config::Config) -> usize {
    (config.backpressure.high_water_mark.saturating_mul(4))
        .saturating_add(config.max_message_size.saturating_mul(2))
        .saturating_add(
            config
                .historical_data_limit
                .saturating_mul(config.max_event_bytes)
                .min(64 << 20),
        )
}

impl Server {
    pub(super) fn accept(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let (mut sock, peer) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: log and try again on the next readiness.
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            };
            let _ = sock.set_nodelay(true);
            if self.conns.len() >= self.ctx.config.max_connections + OVERFLOW_SLACK {
                self.ctx.metrics.connections_rejected += 1;
                continue; // dropped: not even room to say 503
            }
            let mono = self.ctx.mono_ms();
            let refusal = if !self.accept_rate.try_accept(mono) {
                Some(
                    Response::error(503, "too many new connections; retry shortly")
                        .header("Retry-After", "1"),
                )
            } else if !self.ip_limiter.try_acquire(peer.ip()) {
                Some(Response::error(
                    429,
                    "too many connections from this address",
                ))
            } else {
                None
            };
            let ip_counted = refusal.is_none();
            let entry = self.conns.vacant_entry();
            self.next_gen = (self.next_gen + 1) & 0x7fff_ffff;
            let id = ConnId {
                key: entry.key() as u32,
                gen: self.next_gen,
            };
            if let Err(e) = self.poll.registry().register(
                &mut sock,
                token_of(id),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                tracing::warn!(error = %e, "register failed");
                if ip_counted {
                    self.ip_limiter.release(peer.ip());
                }
                continue;
            }
            let mut conn = Conn {
                id,
                sock,
                peer,
                rbuf: Vec::new(),
                out: Out {
                    queue: WriteQueue::new(&self.ctx.config.backpressure),
                    closing: false,
                    listed: false,
                    close_deadline: None,
                    peer_closed: false,
                    hard_cap: control_cap(&self.ctx.config),
                },
                phase: Phase::Http,
                last_seen: self.ctx.now,
                ip_counted,
                dead: false,
                http_wait: false,
            };
            self.ctx.metrics.connections_accepted += 1;
            if let Some(r) = refusal {
                self.ctx.metrics.connections_rejected += 1;
                conn.out
                    .queue
                    .push_control(Bytes::from(r.close().to_bytes()));
                conn.out.closing = true;
            }
            entry.insert(conn);
            self.after_io(id);
            // Read what may already be there (edge-triggered: no event will repeat it).
            self.pending_reads.push(id);
        }
    }

    /// Parses and answers one HTTP request; true when another may follow in the buffer.
    pub(super) fn process_http(&mut self, id: ConnId) -> bool {
        let Some(conn) = self.conns.get_mut(id.key as usize) else {
            return false;
        };
        let req = match parse_head(&conn.rbuf, MAX_HEAD) {
            Ok(Status::Complete(req)) => req,
            Ok(Status::Partial) => return false,
            Err(e) => {
                conn.out
                    .control(Bytes::from(e.to_response().close().to_bytes()));
                conn.out.closing = true;
                return false;
            }
        };
        let is_ws_path = req.path == "/ws" || req.path == "/";
        if is_ws_path && req.is_upgrade() {
            self.upgrade(id, req);
            return true;
        }
        // The body: by Content-Length, or chunked (decoded from the start of the body on
        // each pass until complete; bounded by max_message_size).
        let max = self.ctx.config.max_message_size;
        let refuse = |conn: &mut Conn, r: Response| {
            conn.out.control(Bytes::from(r.close().to_bytes()));
            conn.out.closing = true;
        };
        let rest = conn.rbuf.get(req.head_len..).unwrap_or_default();
        // A chunked body is decoded into its own buffer; a Content-Length body is parsed
        // in place in the read buffer (SPEC §1), then consumed.
        let (mut decoded, total) = if req.chunked {
            let mut decoder = ChunkedDecoder::new(max);
            match decoder.feed(rest) {
                Ok(ChunkedStatus::Complete { consumed }) => {
                    (Some(decoder.take_body()), req.head_len + consumed)
                }
                Ok(ChunkedStatus::Partial) => return false,
                Err(e) => {
                    refuse(conn, e.to_response());
                    return false;
                }
            }
        } else {
            let len = req.content_length.unwrap_or(0);
            if len > max {
                let msg = format!("body of {len} bytes exceeds max_message_size ({max})");
                refuse(conn, Response::error(413, &msg));
                return false;
            }
            if rest.len() < len {
                return false;
            }
            (None, req.head_len + len)
        };
        let keep_alive = req.keep_alive() && !self.ctx.shutting_down;
        if req.path == "/metrics" {
            self.ctx.gauges = Gauges {
                connections: self.conns.len(),
                websocket_connections: self.ws_count,
                queue_bytes: self
                    .conns
                    .iter()
                    .map(|(_, c)| c.out.queue.len_bytes())
                    .sum(),
                ..Gauges::default()
            };
        }
        let Some(conn) = self.conns.get_mut(id.key as usize) else {
            return false;
        };
        let body: &mut [u8] = match &mut decoded {
            Some(v) => v,
            None => conn.rbuf.get_mut(req.head_len..total).unwrap_or_default(),
        };
        let routed = routes::route(&req, body, &mut self.ctx, id);
        conn.consume(total);
        match routed {
            routes::Routed::Respond(r) => {
                let r = if keep_alive { r } else { r.close() };
                let closes = r.closes();
                conn.out.control(Bytes::from(r.to_bytes()));
                if closes {
                    conn.out.closing = true;
                    return false;
                }
                true
            }
            routes::Routed::Held => {
                conn.http_wait = true;
                false
            }
        }
    }

    pub(super) fn upgrade(&mut self, id: ConnId, req: crate::http::Request) {
        let cfg = self.ctx.config.clone();
        let Some(conn) = self.conns.get_mut(id.key as usize) else {
            return;
        };
        let refuse = |conn: &mut Conn, r: Response| {
            conn.out.control(Bytes::from(r.close().to_bytes()));
            conn.out.closing = true;
        };
        if self.ws_count >= cfg.max_connections || self.ctx.shutting_down {
            self.ctx.metrics.connections_rejected += 1;
            refuse(
                conn,
                Response::error(503, "server at its connection limit").header("Retry-After", "1"),
            );
            return;
        }
        // A credential presented at the upgrade is checked before the upgrade: a bad one
        // gets a 401 and never becomes a WebSocket.
        let principal = if !self.ctx.auth.is_enabled() {
            Some(Principal::anonymous_full())
        } else {
            match self.ctx.auth.extract(&req.headers, &req.query) {
                None => None,
                Some(cred) => match self
                    .ctx
                    .auth
                    .authenticate(&cred, crate::auth::unix_now_secs())
                {
                    Ok(p) => Some(p),
                    Err(e) => {
                        self.ctx.metrics.auth_failures += 1;
                        tracing::info!(reason = e.code(), peer = %conn.peer, "authentication at upgrade failed");
                        refuse(
                            conn,
                            Response::error(401, e.message()).header("WWW-Authenticate", "Bearer"),
                        );
                        return;
                    }
                },
            }
        };
        let opts = HandshakeOptions {
            allow_binary: cfg.binary_protocol,
            deflate: cfg.compression_enabled,
        };
        let upgrade = match negotiate(&req, &opts) {
            Ok(u) => u,
            Err(e) => {
                refuse(conn, e.to_response());
                return;
            }
        };
        conn.consume(req.head_len);
        conn.out.control(Bytes::from(upgrade.response));
        let now = self.ctx.now;
        let mono = self.ctx.mono_ms();
        let mut client = Client {
            format: upgrade.format,
            deflate: upgrade.deflate,
            delta: req.query_param("compression").is_some_and(|c| c == "delta"),
            principal,
            subs: Vec::new(),
            agents: None,
            limiter: RateLimiter::new(&cfg.rate_limit, mono),
            ping_out: None,
            latency_ms: None,
            messages_in: 0,
            frames_out: 0,
            rate_limited: 0,
            jobs: VecDeque::new(),
        };
        let capabilities = [
            "live",
            "history",
            "time_travel",
            "resume",
            "publish",
            "delta",
            "binary",
            "permessage-deflate",
        ];
        self.ctx.scratch.clear();
        enc::encode_connection(
            &mut self.ctx.scratch,
            &format!("c{}-{}", id.key, id.gen),
            &enc::ServerInfo {
                version: env!("CARGO_PKG_VERSION"),
                capabilities: &capabilities,
                max_message_size: cfg.max_message_size,
                batch_size: cfg.batch_size,
                max_event_bytes: cfg.max_event_bytes,
                auth_required: self.ctx.auth.is_enabled(),
                binary_available: cfg.binary_protocol,
                binary_active: upgrade.format == WireFormat::Binary,
            },
            self.ctx.now_ms,
        );
        client.frames_out += 1;
        conn.out
            .control(self.ctx.encoder.control(client.deflate, &self.ctx.scratch));
        if client.principal.is_none() {
            let at = now + Duration::from_millis(self.ctx.auth.auth_timeout_ms());
            self.ctx.timers.schedule(at, Timer::AuthDeadline(id));
        } else if let Some(exp) = client.principal.as_ref().and_then(|p| p.expires_at) {
            self.ctx.schedule_expiry(id, exp);
        }
        conn.phase = Phase::Ws(Box::new(WsState {
            reader: MessageReader::new(cfg.max_message_size, upgrade.deflate),
            client,
        }));
        self.ws_count += 1;
        let hb = Duration::from_millis(cfg.heartbeat_interval_ms);
        self.ctx.timers.schedule(now + hb, Timer::Heartbeat(id));
    }
}
