//! One client connection: its socket, read buffer, write queue and protocol phase.
//!
//! A connection starts in the HTTP phase (every client does: plain requests and WebSocket
//! upgrades share the port), and either answers a request and closes or keeps alive, or
//! upgrades to the WebSocket phase for the rest of its life. The socket is registered once
//! for READABLE | WRITABLE (edge-triggered) and never re-registered; the loop tracks what
//! it still owes the socket (unread input, unwritten frames) in user space.

use crate::app::queue::Flush;
use crate::app::{Client, Out};
use crate::hub::ConnId;
use crate::ws::MessageReader;
use mio::net::TcpStream;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Instant;

/// How much one read call asks for: the size of the loop's scratch chunk (one per loop,
/// not per connection). A publisher streaming 13 KB frames filled a 16 KiB chunk on
/// every call, so each frame cost a `recvfrom` and, with it, a window update the
/// loopback peer answers on this core; 64 KiB takes several frames a call
/// (docs/perf-ingest.md, "Through the socket").
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// What a read pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// The socket has nothing more for now.
    WouldBlock,
    /// The per-turn budget ran out with bytes possibly still pending: come back next turn.
    Budget,
    /// The peer closed its side (or reset).
    Closed,
    /// The buffer limit was reached: the peer sent more than any valid message allows.
    Overflow,
}

pub(crate) struct WsState {
    pub reader: MessageReader,
    pub client: Client,
}

pub(crate) enum Phase {
    /// Waiting for (the rest of) a request head or body.
    Http,
    Ws(Box<WsState>),
}

pub(crate) struct Conn {
    pub id: ConnId,
    pub sock: TcpStream,
    pub peer: SocketAddr,
    pub rbuf: Vec<u8>,
    pub out: Out,
    pub phase: Phase,
    /// Input arrived or traffic flowed: stale detection.
    pub last_seen: Instant,
    /// Counted in the per-IP limiter.
    pub ip_counted: bool,
    /// To be removed at the end of the turn (set through [`Conn::kill`] only, which lists
    /// it, so the end of the turn never scans the slab).
    pub dead: bool,
    /// An HTTP answer is held (durability); later pipelined requests wait for it.
    pub http_wait: bool,
    /// Complete messages wait in the read buffer (the per-turn message budget ran out):
    /// the next pass handles them before reading the socket again.
    pub backlog: bool,
    /// When the request in progress must be complete (its head, or once the head is in,
    /// its body): the slowloris bound. `None` once upgraded.
    pub http_deadline: Option<Instant>,
    /// The deadline above is the body's (the head is complete).
    pub awaiting_body: bool,
    /// A chunked request body being decoded, and how many bytes after the head it has
    /// already been fed: each read pass feeds only what is new.
    pub chunked: Option<(crate::http::ChunkedDecoder, usize)>,
    /// Accepted on the `[otlp] port` listener: serves `POST /v1/traces` only.
    pub otlp_only: bool,
    /// The connection's rate limit for OTLP exports, made at its first one.
    pub otlp_rate: Option<crate::limits::RateLimiter>,
}

impl Conn {
    /// Marks the connection for removal at the end of the turn, listing it once.
    pub fn kill(&mut self, dying: &mut Vec<ConnId>) {
        if !self.dead {
            self.dead = true;
            dying.push(self.id);
        }
    }

    /// Reads until the socket would block, the buffer reaches `limit`, or the per-turn
    /// budget is spent. Returns bytes read and why it stopped.
    pub fn read_some(
        &mut self,
        limit: usize,
        budget: usize,
        scratch: &mut [u8],
    ) -> (usize, ReadOutcome) {
        let mut total = 0;
        loop {
            if total >= budget {
                return (total, ReadOutcome::Budget);
            }
            if self.rbuf.len() >= limit {
                return (total, ReadOutcome::Overflow);
            }
            // Read into the loop's scratch chunk and append what came: the buffer grows
            // by the bytes read, never zero-filled ahead of a read that may bring one byte
            // (a trickling client would otherwise cost a chunk's memset per byte).
            let want = scratch.len().min(limit - self.rbuf.len());
            let Some(chunk) = scratch.get_mut(..want) else {
                return (total, ReadOutcome::Overflow);
            };
            match self.sock.read(chunk) {
                Ok(0) => return (total, ReadOutcome::Closed),
                Ok(n) => {
                    self.rbuf
                        .extend_from_slice(chunk.get(..n).unwrap_or_default());
                    total += n;
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => return (total, ReadOutcome::WouldBlock),
                    io::ErrorKind::Interrupted => {}
                    _ => return (total, ReadOutcome::Closed),
                },
            }
        }
    }

    /// Forgets `n` processed bytes at the front of the read buffer (keeping its
    /// allocation: see [`Conn::release_idle_buffer`]).
    pub fn consume(&mut self, n: usize) {
        if n >= self.rbuf.len() {
            self.rbuf.clear();
        } else if n > 0 {
            self.rbuf.drain(..n);
        }
    }

    /// Frees an empty read buffer once the socket is drained: an idle connection holds
    /// no read buffer at all (ten thousand quiet subscribers must not pin ten thousand
    /// read chunks), while one still streaming keeps its buffer from turn to turn
    /// instead of growing a fresh one (and faulting its pages in) every turn.
    pub fn release_idle_buffer(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            self.rbuf = Vec::new();
        }
    }

    /// Writes what the socket takes, adding the bytes written to `sent`. `Ok(true)` when
    /// the queue is empty.
    pub fn flush(&mut self, sent: &mut u64) -> io::Result<bool> {
        let before = self.out.queue.len_bytes();
        let result = self.out.queue.flush(&mut self.sock);
        *sent += (before.saturating_sub(self.out.queue.len_bytes())) as u64;
        Ok(result? == Flush::Drained)
    }
}
