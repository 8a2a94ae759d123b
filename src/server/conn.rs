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

/// How much one read call asks for.
const READ_CHUNK: usize = 16 * 1024;

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
    /// When the request in progress must be complete (its head, or once the head is in,
    /// its body): the slowloris bound. `None` once upgraded.
    pub http_deadline: Option<Instant>,
    /// The deadline above is the body's (the head is complete).
    pub awaiting_body: bool,
    /// A chunked request body being decoded, and how many bytes after the head it has
    /// already been fed: each read pass feeds only what is new.
    pub chunked: Option<(crate::http::ChunkedDecoder, usize)>,
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
    pub fn read_some(&mut self, limit: usize, budget: usize) -> (usize, ReadOutcome) {
        let mut total = 0;
        loop {
            if total >= budget {
                return (total, ReadOutcome::Budget);
            }
            if self.rbuf.len() >= limit {
                return (total, ReadOutcome::Overflow);
            }
            let start = self.rbuf.len();
            let want = READ_CHUNK.min(limit - start);
            self.rbuf.resize(start + want, 0);
            let res = self.sock.read(&mut self.rbuf[start..]);
            match res {
                Ok(0) => {
                    self.rbuf.truncate(start);
                    return (total, ReadOutcome::Closed);
                }
                Ok(n) => {
                    self.rbuf.truncate(start + n);
                    total += n;
                }
                Err(e) => {
                    self.rbuf.truncate(start);
                    match e.kind() {
                        io::ErrorKind::WouldBlock => return (total, ReadOutcome::WouldBlock),
                        io::ErrorKind::Interrupted => {}
                        _ => return (total, ReadOutcome::Closed),
                    }
                }
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
