//! The per-connection write queue: shared, fully encoded frames in the order they were
//! queued.
//!
//! Frames arrive here already encoded (header and payload in one `Bytes` that every
//! subscriber of the same audience shares), so queuing costs a reference-count bump, and
//! a flush hands the kernel up to [`MAX_IOVECS`] frames in one vectored write.
//!
//! Backpressure lives here because only the queue knows its byte count. Event frames are
//! admitted while the queue is under `high_water_mark` bytes and `max_queue_size` frames;
//! past that the policy decides (drop the oldest unsent event frames, drop the new one, or
//! ask for a disconnect). Control frames are never dropped and never refused. Every
//! dropped event frame is remembered per session as a seq range, and [`WriteQueue::take_drops`]
//! hands those ranges out once the queue has drained below `low_water_mark`, so the client
//! can be told exactly what it missed (`events_dropped`) and fetch it again.
//!
//! Control frames and event frames wait in two rings, each frame stamped with its place
//! in the one order they were queued in; a flush merges them by stamp, so the client sees
//! exactly that order. Keeping them apart is what makes eviction cost what it evicts: a
//! client that piled up thousands of replies does not make every fan-out walk them. Pongs
//! are coalesced (RFC 6455 §5.5.3): an unsent pong is replaced by the newer one, so a
//! ping flood costs one frame, not one per ping.

use crate::config::{BackpressureConfig, BackpressurePolicy};
use bytes::Bytes;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// How many frames one vectored write may carry.
pub const MAX_IOVECS: usize = 64;

/// Unanswered pings each get their pong up to this many queued; past it the newest
/// unsent pong is replaced (RFC 6455 §5.5.3 lets a server answer only the most recent),
/// so a ping flood holds a bounded number of frames while a client that pings a few
/// times in a row still gets every answer.
pub const MAX_UNSENT_PONGS: usize = 16;

/// What a queued frame costs in memory beyond its bytes (the ring slot, the shared
/// buffer's header and allocation): what [`WriteQueue::mem_bytes`] charges per frame, so
/// a cap on it bounds real memory even for floods of tiny frames.
pub const FRAME_OVERHEAD: usize = 160;

/// What an event frame carries, so a drop can be reported precisely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpan {
    pub session: Arc<str>,
    pub first_seq: u64,
    pub last_seq: u64,
    pub count: u64,
}

#[derive(Debug)]
struct Queued {
    /// Place in the order frames were queued (both rings share one counter).
    stamp: u64,
    bytes: Bytes,
    /// `last_seq` of the frame offered for the same session just before this one, so a
    /// drop can tell whether it continues the previous drop range.
    prev: Option<u64>,
    /// `None` for control frames, which are never dropped.
    events: Option<EventSpan>,
    /// Events the frame carries (live batches and catch-up runs alike), counted as
    /// delivered once its last byte is written.
    delivers: u64,
}

/// What happened to a queue's frames since the last [`WriteQueue::take_tally`]: the
/// source of the delivered and dropped metrics, so "delivered" means written to the
/// socket and "dropped" is exactly what the drop notices (or a disconnect) account for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Frames whose last byte was written.
    pub frames_written: u64,
    /// Events in those frames.
    pub events_written: u64,
    /// Events dropped by the policy or discarded before a disconnect.
    pub events_dropped: u64,
}

/// The outcome of offering an event frame to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Queued (possibly after dropping older event frames).
    Queued,
    /// Refused and recorded as dropped (`drop_newest`).
    Dropped,
    /// The policy is `disconnect` and the queue is full: close the client with 4008.
    Disconnect,
}

/// What one flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Everything queued was written.
    Drained,
    /// The socket would block with bytes still queued: wait for writability.
    WouldBlock,
}

/// Which ring holds the next frame to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ring {
    Control,
    Events,
}

/// Two rings of frames with a byte count and water marks.
#[derive(Debug)]
pub struct WriteQueue {
    control: VecDeque<Queued>,
    events: VecDeque<Queued>,
    next_stamp: u64,
    /// Bytes of the front frame (the lower stamp of the two fronts) already written.
    front_written: usize,
    /// Unsent bytes across all frames.
    bytes: usize,
    high_water: usize,
    low_water: usize,
    max_frames: usize,
    policy: BackpressurePolicy,
    /// Set when the queue crossed the high water mark; cleared below the low one.
    congested: bool,
    drops: Vec<EventSpan>,
    dropped_events: u64,
    /// Per session, the `last_seq` of the latest event frame offered (kept or dropped).
    last_offered: Vec<(Arc<str>, u64)>,
    /// Stamps of the queued pongs not yet written, oldest first: at most
    /// [`MAX_UNSENT_PONGS`]; past that the newest is replaced.
    pongs: VecDeque<u64>,
    tally: Tally,
}

impl WriteQueue {
    pub fn new(cfg: &BackpressureConfig) -> Self {
        WriteQueue {
            control: VecDeque::new(),
            events: VecDeque::new(),
            next_stamp: 0,
            front_written: 0,
            bytes: 0,
            high_water: cfg.high_water_mark,
            low_water: cfg.low_water_mark,
            max_frames: cfg.max_queue_size.max(1),
            policy: cfg.policy,
            congested: false,
            drops: Vec::new(),
            dropped_events: 0,
            last_offered: Vec::new(),
            pongs: VecDeque::new(),
            tally: Tally::default(),
        }
    }

    /// Unsent bytes.
    pub fn len_bytes(&self) -> usize {
        self.bytes
    }

    /// Queued frames (including a partly written one).
    pub fn len_frames(&self) -> usize {
        self.control.len() + self.events.len()
    }

    /// What the queue holds in memory, frames' bookkeeping included.
    pub fn mem_bytes(&self) -> usize {
        self.bytes + self.len_frames() * FRAME_OVERHEAD
    }

    pub fn is_empty(&self) -> bool {
        self.control.is_empty() && self.events.is_empty()
    }

    /// Below the low water mark: room for history chunks and drop notices.
    pub fn below_low_water(&self) -> bool {
        self.bytes < self.low_water
    }

    /// Events dropped over the queue's life.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    /// The ring whose front is the next frame to write.
    fn front_ring(&self) -> Option<Ring> {
        match (self.control.front(), self.events.front()) {
            (Some(c), Some(e)) if e.stamp < c.stamp => Some(Ring::Events),
            (Some(_), _) => Some(Ring::Control),
            (None, Some(_)) => Some(Ring::Events),
            (None, None) => None,
        }
    }

    /// Queues a control frame. Never refused, never dropped later.
    pub fn push_control(&mut self, bytes: Bytes) {
        self.push_control_events(bytes, 0);
    }

    /// Queues a frame of `events` stored events that must not be dropped (a catch-up
    /// run, which the client asked for and cannot be told about again).
    pub fn push_control_events(&mut self, bytes: Bytes, events: u64) {
        self.bytes += bytes.len();
        let stamp = self.stamp();
        self.control.push_back(Queued {
            stamp,
            bytes,
            prev: None,
            events: None,
            delivers: events,
        });
    }

    /// Queues a pong. Past [`MAX_UNSENT_PONGS`] unsent ones, the newest is replaced
    /// instead (never one already partly written), so a ping flood holds a bounded number.
    pub fn push_pong(&mut self, bytes: Bytes) {
        if self.pongs.len() >= MAX_UNSENT_PONGS {
            if let Some(&stamp) = self.pongs.back() {
                let in_flight = self.front_written > 0
                    && self.front_ring() == Some(Ring::Control)
                    && self.control.front().is_some_and(|q| q.stamp == stamp);
                if !in_flight {
                    if let Ok(i) = self.control.binary_search_by_key(&stamp, |q| q.stamp) {
                        if let Some(q) = self.control.get_mut(i) {
                            self.bytes = self.bytes - q.bytes.len() + bytes.len();
                            q.bytes = bytes;
                            return;
                        }
                    }
                }
            }
        }
        self.push_control(bytes);
        self.pongs.push_back(self.next_stamp);
    }

    /// What is written and dropped since the last call.
    pub fn take_tally(&mut self) -> Tally {
        std::mem::take(&mut self.tally)
    }

    /// True when an event frame of `len` bytes would meet the backpressure policy as
    /// things stand: the moment to hand the kernel what is queued first, so a burst
    /// bigger than the high water mark (one large ingest, fanned out within one loop
    /// turn) does not drop events for a client that is keeping up.
    pub fn would_congest(&self, len: usize) -> bool {
        self.congested || self.bytes + len > self.high_water || self.len_frames() >= self.max_frames
    }

    fn fits(&self, len: usize) -> bool {
        self.bytes + len <= self.high_water && self.len_frames() < self.max_frames
    }

    /// Offers an event frame; the backpressure policy decides whether it is queued.
    pub fn push_events(&mut self, bytes: Bytes, span: EventSpan) -> Admit {
        let prev = match self
            .last_offered
            .iter_mut()
            .find(|(s, _)| *s == span.session)
        {
            Some((_, last)) => Some(std::mem::replace(last, span.last_seq)),
            None => {
                self.last_offered
                    .push((span.session.clone(), span.last_seq));
                None
            }
        };
        if self.congested && self.bytes < self.low_water {
            self.congested = false;
        }
        if !self.congested && self.fits(bytes.len()) {
            self.enqueue(bytes, span, prev);
            return Admit::Queued;
        }
        self.congested = true;
        match self.policy {
            BackpressurePolicy::Disconnect => {
                // The refused frame is never sent: it counts as dropped like the unsent
                // frames the caller discards before closing.
                self.dropped_events += span.count;
                self.tally.events_dropped += span.count;
                Admit::Disconnect
            }
            BackpressurePolicy::DropNewest => {
                self.record_drop(span, prev);
                Admit::Dropped
            }
            BackpressurePolicy::DropOldest => {
                // Evict the oldest unsent event frames (never the one being written) until
                // the new frame fits, or none is left. Only the event ring is walked.
                let skip =
                    usize::from(self.front_written > 0 && self.front_ring() == Some(Ring::Events));
                while !self.fits(bytes.len()) && self.events.len() > skip {
                    if let Some(q) = self.events.remove(skip) {
                        self.bytes -= q.bytes.len();
                        if let Some(s) = q.events {
                            self.record_drop(s, q.prev);
                        }
                    }
                }
                if self.fits(bytes.len()) || self.is_empty() {
                    self.enqueue(bytes, span, prev);
                    Admit::Queued
                } else {
                    // Only control frames left and still no room: the new frame goes.
                    self.record_drop(span, prev);
                    Admit::Dropped
                }
            }
        }
    }

    /// Forgets every unsent frame except one already partly written (which must finish,
    /// or the stream would be corrupt): used before a backpressure disconnect.
    pub fn discard_unsent(&mut self) {
        let keep = if self.front_written > 0 {
            self.front_ring()
        } else {
            None
        };
        let keep_c = usize::from(keep == Some(Ring::Control));
        let keep_e = usize::from(keep == Some(Ring::Events));
        let mut dropped = 0;
        for q in self
            .control
            .drain(keep_c..)
            .chain(self.events.drain(keep_e..))
        {
            self.bytes -= q.bytes.len();
            if let Some(s) = q.events {
                dropped += s.count;
            }
        }
        self.dropped_events += dropped;
        self.tally.events_dropped += dropped;
        // Only a pong already partly written can remain.
        let kept = self.control.front().map(|q| q.stamp);
        self.pongs.retain(|s| Some(*s) == kept);
    }

    fn enqueue(&mut self, bytes: Bytes, span: EventSpan, prev: Option<u64>) {
        self.bytes += bytes.len();
        let delivers = span.count;
        let stamp = self.stamp();
        self.events.push_back(Queued {
            stamp,
            bytes,
            prev,
            events: Some(span),
            delivers,
        });
    }

    /// Records a dropped frame. It extends an unreported range only when it is that
    /// range's direct successor among the session's frames (`prev` is the range's last
    /// seq), so a range never spans an event the client did receive.
    fn record_drop(&mut self, span: EventSpan, prev: Option<u64>) {
        self.dropped_events += span.count;
        self.tally.events_dropped += span.count;
        let next = self
            .drops
            .iter_mut()
            .rev()
            .find(|d| d.session == span.session && Some(d.last_seq) == prev);
        match next {
            Some(d) => {
                d.last_seq = span.last_seq;
                d.count += span.count;
            }
            None => self.drops.push(span),
        }
    }

    /// Drop ranges not yet reported, per session — only once the queue has room again,
    /// so the notice is not itself stuck behind the backlog that caused it.
    pub fn take_drops(&mut self) -> Option<Vec<EventSpan>> {
        if self.drops.is_empty() || !self.below_low_water() {
            return None;
        }
        Some(std::mem::take(&mut self.drops))
    }

    /// Writes as much as the socket takes, in vectored writes, in queue order.
    pub fn flush<W: Write>(&mut self, w: &mut W) -> io::Result<Flush> {
        while !self.is_empty() {
            let mut slices: [IoSlice<'_>; MAX_IOVECS] = [IoSlice::new(&[]); MAX_IOVECS];
            let mut n = 0;
            let (mut c, mut e) = (
                self.control.iter().peekable(),
                self.events.iter().peekable(),
            );
            while n < MAX_IOVECS {
                let q = match (c.peek(), e.peek()) {
                    (Some(a), Some(b)) if b.stamp < a.stamp => e.next(),
                    (Some(_), _) => c.next(),
                    (None, Some(_)) => e.next(),
                    (None, None) => None,
                };
                let Some(q) = q else { break };
                let start = if n == 0 { self.front_written } else { 0 };
                slices[n] = IoSlice::new(q.bytes.get(start..).unwrap_or_default());
                n += 1;
            }
            match w.write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => self.advance(written),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flush::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Flush::Drained)
    }

    fn advance(&mut self, mut written: usize) {
        self.bytes -= written;
        while written > 0 {
            let Some(ring) = self.front_ring() else {
                break;
            };
            let ring = match ring {
                Ring::Control => &mut self.control,
                Ring::Events => &mut self.events,
            };
            let Some(front) = ring.front() else {
                break;
            };
            let left = front.bytes.len() - self.front_written;
            if written >= left {
                written -= left;
                self.front_written = 0;
                if let Some(q) = ring.pop_front() {
                    self.tally.frames_written += 1;
                    self.tally.events_written += q.delivers;
                    if self.pongs.front() == Some(&q.stamp) {
                        self.pongs.pop_front();
                    }
                }
            } else {
                self.front_written += written;
                written = 0;
            }
        }
        debug_assert!(
            self.control
                .iter()
                .chain(self.events.iter())
                .map(|q| q.bytes.len())
                .sum::<usize>()
                >= self.bytes
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(policy: BackpressurePolicy) -> BackpressureConfig {
        BackpressureConfig {
            high_water_mark: 100,
            low_water_mark: 40,
            max_queue_size: 10,
            policy,
        }
    }

    fn span(first: u64, last: u64) -> EventSpan {
        EventSpan {
            session: "s".into(),
            first_seq: first,
            last_seq: last,
            count: last - first + 1,
        }
    }

    /// A writer that accepts at most `cap` bytes per call, then blocks after `calls`.
    struct Trickle {
        out: Vec<u8>,
        cap: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.calls == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls -= 1;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.cap - n);
                self.out.extend_from_slice(&b[..take]);
                n += take;
                if n == self.cap {
                    break;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_order_and_count() {
        let mut q = WriteQueue::new(&cfg(BackpressurePolicy::DropOldest));
        q.push_control(Bytes::from_static(b"abc"));
        assert_eq!(
            q.push_events(Bytes::from_static(b"defgh"), span(1, 2)),
            Admit::Queued
        );
        q.push_control(Bytes::from_static(b"ij"));
        let mut w = Trickle {
            out: Vec::new(),
            cap: 4,
            calls: 2,
        };
        assert_eq!(q.flush(&mut w).unwrap(), Flush::WouldBlock);
        assert_eq!(w.out, b"abcdefgh");
        assert_eq!(q.len_bytes(), 2);
        w.calls = 5;
        assert_eq!(q.flush(&mut w).unwrap(), Flush::Drained);
        assert_eq!(w.out, b"abcdefghij");
        assert!(q.is_empty());
    }

    #[test]
    fn drop_oldest_evicts_unsent_events_but_not_control_or_the_frame_in_flight() {
        let mut q = WriteQueue::new(&cfg(BackpressurePolicy::DropOldest));
        q.push_events(Bytes::from(vec![b'a'; 30]), span(1, 1));
        q.push_control(Bytes::from(vec![b'c'; 10]));
        q.push_events(Bytes::from(vec![b'b'; 30]), span(2, 2));
        q.push_events(Bytes::from(vec![b'd'; 30]), span(3, 3));
        // Start writing the first frame so it is in flight.
        let mut w = Trickle {
            out: Vec::new(),
            cap: 5,
            calls: 1,
        };
        q.flush(&mut w).unwrap();
        assert_eq!(
            q.push_events(Bytes::from(vec![b'e'; 30]), span(4, 4)),
            Admit::Queued
        );
        // Frame 2 (seq 2) was evicted; the in-flight one and the control frame stay.
        assert_eq!(q.len_frames(), 4);
        assert_eq!(q.dropped_events(), 1);
        assert!(
            q.take_drops().is_none(),
            "no notice while above the low water mark"
        );
        w.calls = 100;
        w.cap = 1000;
        q.flush(&mut w).unwrap();
        let drops = q.take_drops().unwrap();
        assert_eq!(drops, vec![span(2, 2)]);
        let out = String::from_utf8(w.out).unwrap();
        assert!(out.contains("cccccccccc") && !out.contains('b'));
    }

    #[test]
    fn drop_newest_refuses_until_below_low_water() {
        let mut q = WriteQueue::new(&cfg(BackpressurePolicy::DropNewest));
        assert_eq!(
            q.push_events(Bytes::from(vec![0; 90]), span(1, 5)),
            Admit::Queued
        );
        assert_eq!(
            q.push_events(Bytes::from(vec![0; 20]), span(6, 7)),
            Admit::Dropped
        );
        assert_eq!(
            q.push_events(Bytes::from(vec![0; 5]), span(8, 8)),
            Admit::Dropped
        );
        let mut w = Trickle {
            out: Vec::new(),
            cap: 60,
            calls: 1,
        };
        q.flush(&mut w).unwrap();
        assert_eq!(
            q.push_events(Bytes::from(vec![0; 5]), span(9, 9)),
            Admit::Queued
        );
        let drops = q.take_drops().unwrap();
        assert_eq!(
            drops,
            vec![EventSpan {
                session: "s".into(),
                first_seq: 6,
                last_seq: 8,
                count: 3
            }]
        );
    }

    #[test]
    fn drop_ranges_never_span_a_delivered_frame() {
        let mut q = WriteQueue::new(&cfg(BackpressurePolicy::DropOldest));
        let mut w = Trickle {
            out: Vec::new(),
            cap: 1000,
            calls: 0,
        };
        // Frames of 40 bytes: two fit under the high water mark of 100.
        for seq in 1..=3 {
            q.push_events(Bytes::from(vec![b'x'; 40]), span(seq, seq));
        }
        // Seq 1 was evicted by seq 3. Deliver seq 2 and 3, then overflow again.
        w.calls = 1;
        q.flush(&mut w).unwrap();
        for seq in 4..=6 {
            q.push_events(Bytes::from(vec![b'x'; 40]), span(seq, seq));
        }
        let drops = q.take_drops().unwrap_or_default();
        w.calls = 1;
        q.flush(&mut w).unwrap();
        let drops2 = q.take_drops().unwrap_or_default();
        let all: Vec<_> = drops.into_iter().chain(drops2).collect();
        // Seq 1 and seq 4 are missing, 2, 3, 5, 6 were delivered: two separate ranges.
        assert_eq!(
            all.iter()
                .map(|d| (d.first_seq, d.last_seq, d.count))
                .collect::<Vec<_>>(),
            vec![(1, 1, 1), (4, 4, 1)]
        );
    }

    #[test]
    fn consecutive_drops_merge_into_one_range() {
        let mut q = WriteQueue::new(&cfg(BackpressurePolicy::DropNewest));
        q.push_events(Bytes::from(vec![0; 90]), span(1, 1));
        for seq in 2..=5 {
            assert_eq!(
                q.push_events(Bytes::from(vec![0; 20]), span(seq, seq)),
                Admit::Dropped
            );
        }
        let mut w = Trickle {
            out: Vec::new(),
            cap: 1000,
            calls: 1,
        };
        q.flush(&mut w).unwrap();
        let drops = q.take_drops().unwrap();
        assert_eq!(
            drops,
            vec![EventSpan {
                session: "s".into(),
                first_seq: 2,
                last_seq: 5,
                count: 4
            }]
        );
    }

    #[test]
    fn disconnect_policy_asks_to_close() {
        let mut q = WriteQueue::new(&cfg(BackpressurePolicy::Disconnect));
        assert_eq!(
            q.push_events(Bytes::from(vec![0; 100]), span(1, 1)),
            Admit::Queued
        );
        assert_eq!(
            q.push_events(Bytes::from(vec![0; 1]), span(2, 2)),
            Admit::Disconnect
        );
    }

    #[test]
    fn frame_count_limit_applies() {
        let mut q = WriteQueue::new(&cfg(BackpressurePolicy::DropNewest));
        for i in 0..10 {
            assert_eq!(
                q.push_events(Bytes::from_static(b"x"), span(i, i)),
                Admit::Queued
            );
        }
        assert_eq!(
            q.push_events(Bytes::from_static(b"x"), span(10, 10)),
            Admit::Dropped
        );
        // Control frames are never refused.
        q.push_control(Bytes::from_static(b"ctl"));
        assert_eq!(q.len_frames(), 11);
    }

    #[test]
    fn pongs_coalesce_past_the_bound_but_never_the_one_in_flight() {
        let mut q = WriteQueue::new(&cfg(BackpressurePolicy::DropOldest));
        for i in 0..1000u32 {
            q.push_pong(Bytes::from(i.to_be_bytes().to_vec()));
        }
        assert_eq!(q.len_frames(), MAX_UNSENT_PONGS);
        let mut w = Trickle {
            out: Vec::new(),
            cap: 2,
            calls: 1,
        };
        assert_eq!(q.flush(&mut w).unwrap(), Flush::WouldBlock);
        // Half of the first pong is on the wire; the bound still holds behind it.
        q.push_pong(Bytes::from_static(b"zz"));
        assert_eq!(q.len_frames(), MAX_UNSENT_PONGS);
        w.calls = 100;
        q.flush(&mut w).unwrap();
        let words: Vec<u32> = w.out[..(MAX_UNSENT_PONGS - 1) * 4]
            .chunks(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        // Every early ping answered in order; the last slot holds the newest payload.
        assert_eq!(words, (0..MAX_UNSENT_PONGS as u32 - 1).collect::<Vec<_>>());
        assert_eq!(&w.out[(MAX_UNSENT_PONGS - 1) * 4..], b"zz");
        assert!(q.pongs.is_empty());
    }

    #[test]
    fn control_and_event_frames_keep_their_order_and_eviction_skips_control() {
        let mut q = WriteQueue::new(&BackpressureConfig {
            high_water_mark: 1 << 20,
            low_water_mark: 10,
            max_queue_size: 100_000,
            policy: BackpressurePolicy::DropOldest,
        });
        q.push_control(Bytes::from_static(b"a"));
        q.push_events(Bytes::from_static(b"B"), span(1, 1));
        q.push_control(Bytes::from_static(b"c"));
        q.push_events(Bytes::from_static(b"D"), span(2, 2));
        q.push_control(Bytes::from_static(b"e"));
        let mut w = Vec::new();
        q.flush(&mut w).unwrap();
        assert_eq!(w, b"aBcDe");
        // Many queued replies: evicting events walks only the event ring.
        for _ in 0..50_000 {
            q.push_control(Bytes::from_static(b"r"));
        }
        q.high_water = q.len_bytes() + 1;
        assert_eq!(
            q.push_events(Bytes::from_static(b"X"), span(3, 3)),
            Admit::Queued
        );
        assert_eq!(
            q.push_events(Bytes::from_static(b"Y"), span(4, 4)),
            Admit::Queued
        );
        assert_eq!(q.dropped_events(), 1);
        let mut w = Vec::new();
        q.flush(&mut w).unwrap();
        assert_eq!(w.len(), 50_001);
        assert_eq!(w.last(), Some(&b'Y'));
        assert_eq!(q.take_tally().events_dropped, 1);
    }
}
