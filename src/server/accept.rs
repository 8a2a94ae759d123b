//! Accepting connections and their HTTP phase, up to the WebSocket upgrade.
//!
//! Limits are applied as early as they can be answered: per-IP and accept-rate refusals
//! right after `accept` (the response is queued before any byte is read), the connection
//! limit and credentials at the upgrade, so a refused client never becomes a WebSocket.

use super::conn::{Conn, Phase, WsState};
use super::*;
use crate::app::routes;
use crate::http::{parse_head, ChunkedDecoder, ChunkedStatus, Response, Status};
use crate::limits::RateLimiter;
use crate::metrics::Gauges;
use crate::ws::MessageReader;
use bytes::Bytes;
use mio::Interest;

impl Server {
    /// Accepts until `WouldBlock` on the main listener, or (`otlp`) the `[otlp] port` one.
    pub(super) fn accept(&mut self, otlp: bool) {
        loop {
            let listener = if otlp {
                &self.otlp_listener
            } else {
                &self.listener
            };
            let Some(listener) = listener else {
                return;
            };
            let (mut sock, peer) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if is_fd_limit(&e) => {
                    // At the descriptor limit the backlog would wait unseen: spend the
                    // reserved descriptor to tell each waiting client 503 instead.
                    if !self.shed_at_fd_limit() {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            };
            let _ = sock.set_nodelay(true);
            if self.conns.len() >= self.app.config.max_connections + OVERFLOW_SLACK {
                self.app.metrics.connections_rejected += 1;
                continue; // dropped: not even room to say 503
            }
            let mono = self.app.mono_ms();
            let refusal = if !self.accept_rate.try_accept(mono) {
                Some(
                    Response::error(503, "too many new connections; retry shortly")
                        .header("Retry-After", "1"),
                )
            } else if self.conns.len().saturating_sub(self.ws_count)
                >= self.app.config.max_http_connections
            {
                Some(
                    Response::error(503, "too many connections still sending their request")
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
                out: self.app.new_out(),
                phase: Phase::Http,
                last_seen: self.app.now,
                ip_counted,
                dead: false,
                http_wait: false,
                backlog: false,
                http_deadline: None,
                awaiting_body: false,
                chunked: None,
                otlp_only: otlp,
                otlp_rate: None,
            };
            self.app.metrics.connections_accepted += 1;
            if let Some(r) = refusal {
                self.app.metrics.connections_rejected += 1;
                conn.out
                    .queue
                    .push_control(Bytes::from(r.close().to_bytes()));
                conn.out.closing = true;
            }
            entry.insert(conn);
            self.arm_http_deadline(id, false);
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
        let echo_path = &self.app.config.debug.echo_path;
        let is_echo = !echo_path.is_empty() && req.path == *echo_path;
        let is_ws_path = req.path == "/ws" || req.path == "/" || is_echo;
        let is_otlp = req.path == crate::otlp::TRACES_PATH;
        if is_ws_path && req.is_upgrade() && !conn.otlp_only {
            self.upgrade(id, req, is_echo);
            return true;
        }
        // The body: by Content-Length, or chunked (decoded from the start of the body on
        // each pass until complete; bounded by max_message_size).
        // OTLP bodies have their own limit (20 MiB by default, the OTLP convention), which
        // the route applies again after decompression.
        let max = if is_otlp {
            self.app.config.otlp.max_body_bytes
        } else {
            self.app.config.max_message_size
        };
        let refuse = |conn: &mut Conn, r: Response| {
            conn.out.control(Bytes::from(r.close().to_bytes()));
            conn.out.closing = true;
        };
        let rest = conn.rbuf.get(req.head_len..).unwrap_or_default();
        // A chunked body is decoded into its own buffer; a Content-Length body is parsed
        // in place in the read buffer (SPEC §1), then consumed.
        let (mut decoded, total) = if req.chunked {
            // Fed incrementally: a body trickled a byte at a time costs its bytes, not
            // its size once per byte.
            let (decoder, fed) = conn
                .chunked
                .get_or_insert_with(|| (ChunkedDecoder::new(max), 0));
            let new = rest.get(*fed..).unwrap_or_default();
            match decoder.feed(new) {
                Ok(ChunkedStatus::Complete { consumed }) => {
                    let body = decoder.take_body();
                    let total = req.head_len + *fed + consumed;
                    conn.chunked = None;
                    (Some(body), total)
                }
                Ok(ChunkedStatus::Partial) => {
                    *fed += new.len();
                    self.arm_http_deadline(id, true);
                    return false;
                }
                Err(e) => {
                    conn.chunked = None;
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
                self.arm_http_deadline(id, true);
                return false;
            }
            (None, req.head_len + len)
        };
        let keep_alive = req.keep_alive() && !self.app.shutting_down;
        if req.path == "/metrics" {
            self.app.gauges = Gauges {
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
        let routed = if is_otlp {
            let mono = self.app.mono_ms();
            let limiter = conn
                .otlp_rate
                .get_or_insert_with(|| RateLimiter::new(&self.app.config.rate_limit, mono));
            crate::app::otlp::route(&req, body, &mut self.app, id, limiter)
        } else if conn.otlp_only {
            routes::Routed::Respond(Response::error(
                404,
                "this port serves only OTLP (POST /v1/traces)",
            ))
        } else {
            routes::route(&req, body, &mut self.app, id)
        };
        conn.consume(total);
        conn.awaiting_body = false;
        match routed {
            routes::Routed::Respond(r) => {
                let r = if keep_alive { r } else { r.close() };
                let closes = r.closes();
                conn.out.control(Bytes::from(r.to_bytes()));
                if closes {
                    conn.out.closing = true;
                    return false;
                }
                // The next request on this connection gets its own head deadline.
                self.arm_http_deadline(id, false);
                true
            }
            routes::Routed::Held => {
                conn.http_wait = true;
                false
            }
        }
    }

    pub(super) fn upgrade(&mut self, id: ConnId, req: crate::http::Request, echo: bool) {
        let Some(conn) = self.conns.get_mut(id.key as usize) else {
            return;
        };
        let mut up = match self.app.upgrade(&req, self.ws_count, conn.peer) {
            Ok(up) => up,
            Err(refusal) => {
                conn.out.close_with(Bytes::from(refusal.close().to_bytes()));
                return;
            }
        };
        up.client.echo = echo;
        conn.consume(req.head_len);
        conn.http_deadline = None;
        conn.out.websocket = true;
        conn.out
            .control(Bytes::from(std::mem::take(&mut up.response)));
        self.app.welcome(id, &mut up.client, &mut conn.out);
        conn.phase = Phase::Ws(Box::new(WsState {
            reader: MessageReader::new(self.app.config.max_message_size, up.deflate),
            client: up.client,
        }));
        self.ws_count += 1;
    }

    /// Gives the request in progress its deadline: the head's from now, or (`body`)
    /// the body's once the head is in (set once per request, so a trickle cannot renew it).
    pub(super) fn arm_http_deadline(&mut self, id: ConnId, body: bool) {
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        if body && conn.awaiting_body {
            return;
        }
        conn.awaiting_body = body;
        let cfg = &self.app.config;
        let ms = if body {
            cfg.http_body_timeout_ms
        } else {
            cfg.http_header_timeout_ms
        };
        let at = self.app.now + Duration::from_millis(ms);
        conn.http_deadline = Some(at);
        self.app.timers.schedule(at, Timer::HttpDeadline(id));
    }

    /// An HTTP deadline fired: a request still incomplete gets 408 and the connection
    /// closes; an idle keep-alive connection is closed quietly.
    pub(super) fn on_http_deadline(&mut self, id: ConnId) {
        let now = self.app.now;
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        let due = conn.http_deadline.is_some_and(|d| d <= now);
        if !due || conn.out.closing || conn.http_wait || !matches!(conn.phase, Phase::Http) {
            return;
        }
        conn.http_deadline = None;
        conn.chunked = None;
        if conn.rbuf.is_empty() && !conn.awaiting_body {
            conn.out.closing = true;
        } else {
            let what = if conn.awaiting_body { "body" } else { "head" };
            let r = Response::error(408, &format!("request {what} not received in time"));
            conn.rbuf.clear();
            conn.out.close_with(Bytes::from(r.close().to_bytes()));
        }
        self.after_io(id);
    }

    /// Accepts one connection with the reserved descriptor, answers 503 and closes it,
    /// then takes the reserve back. False when nothing could be done (retry later).
    fn shed_at_fd_limit(&mut self) -> bool {
        let Some(listener) = &self.listener else {
            return false;
        };
        if self.fd_reserve.take().is_none() {
            tracing::warn!("accept failed at the descriptor limit and no reserve is left");
            return false;
        }
        let shed = match listener.accept() {
            Ok((sock, _)) => {
                let mut sock: std::net::TcpStream = sock.into();
                let r = Response::error(503, "server at its file descriptor limit")
                    .header("Retry-After", "1")
                    .close();
                let _ = std::io::Write::write_all(&mut sock, &r.to_bytes());
                self.app.metrics.connections_rejected += 1;
                true
            }
            Err(_) => false,
        };
        self.fd_reserve = std::fs::File::open("/dev/null").ok();
        if shed {
            tracing::warn!("at the file descriptor limit: a new connection was told 503");
        }
        shed && self.fd_reserve.is_some()
    }
}

fn is_fd_limit(e: &std::io::Error) -> bool {
    // EMFILE (the process's limit) and ENFILE (the system's).
    matches!(e.raw_os_error(), Some(24) | Some(23))
}
