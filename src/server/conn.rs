//! One client connection: its socket, read buffer, write queue and protocol phase.
//!
//! A connection starts in the HTTP phase (every client does: plain requests and WebSocket
//! upgrades share the port), and either answers a request and closes or keeps alive, or
//! upgrades to the WebSocket phase for the rest of its life. The socket is registered once
//! for READABLE | WRITABLE (edge-triggered) and never re-registered; the loop tracks what
//! it still owes the socket (unread input, unwritten frames) in user space.

use super::queue::{Flush, WriteQueue};
use crate::auth::Principal;
use crate::hub::ConnId;
use crate::limits::RateLimiter;
use crate::ws::{MessageReader, WireFormat};
use bytes::Bytes;
use mio::net::TcpStream;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;
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

/// The outbound half: the write queue plus close bookkeeping.
#[derive(Debug)]
pub(crate) struct Out {
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
    /// Replies are never dropped, so a client that keeps asking without reading would
    /// grow its queue without bound: past this many queued bytes it is closed instead.
    pub hard_cap: usize,
}

impl Out {
    pub fn control(&mut self, frame: Bytes) {
        if self.closing {
            return;
        }
        if self.queue.len_bytes() + frame.len() > self.hard_cap {
            // What is queued cannot be delivered to a peer that does not read; the close
            // frame goes after the frame already on the wire, if any.
            self.queue.discard_unsent();
            self.queue.push_control(crate::ws::close_frame(
                crate::ws::close_code::POLICY,
                "not reading its replies",
            ));
            self.closing = true;
            return;
        }
        self.queue.push_control(frame);
    }
}

/// A job that works for the client one slice per turn while its queue is below the low
/// water mark (history answers, `sinceSeq` catch-up, a time travel's first fold).
#[derive(Debug)]
pub(crate) enum Job {
    History(super::history::HistoryJob),
    Resume(super::history::ResumeJob),
    TimeTravel(super::history::TimeTravelJob),
}

/// Per-WebSocket-client state above the frame layer.
#[derive(Debug)]
pub(crate) struct Client {
    pub format: WireFormat,
    pub deflate: bool,
    /// `?compression=delta` at the upgrade: batches carry top-level deltas.
    pub delta: bool,
    /// `None` until authenticated (only when auth is enabled).
    pub principal: Option<Principal>,
    pub subs: Vec<Arc<str>>,
    pub agents: Option<Arc<[Box<str>]>>,
    pub limiter: RateLimiter,
    /// Payload-time of the outstanding ping, if any.
    pub ping_out: Option<Instant>,
    pub latency_ms: Option<f64>,
    pub messages_in: u64,
    pub frames_out: u64,
    pub rate_limited: u64,
    pub jobs: VecDeque<Job>,
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
    /// To be removed at the end of the turn.
    pub dead: bool,
    /// An HTTP answer is held (durability); later pipelined requests wait for it.
    pub http_wait: bool,
}

impl Conn {
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
        *sent += (before - self.out.queue.len_bytes()) as u64;
        Ok(result? == Flush::Drained)
    }
}
