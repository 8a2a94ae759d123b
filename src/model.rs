//! The values that cross layers: what ingest hands the store, what the store hands back,
//! and what the protocol reports about a session.
//!
//! They used to live in `store`, which made every producer of a [`Pending`] (ingest, and
//! soon the OpenTelemetry mapper and the in-process publisher) and every reporter of a
//! [`SessionSummary`] (the protocol) depend on the storage layer, and the storage layer
//! on the protocol for its digit writer. Here they depend only on [`crate::event`] and
//! [`crate::json`], so the layers above can share them without knowing each other.
//!
//! The one piece of logic here is the delivered-bytes trick: ingest leaves
//! [`SEQ_HEADROOM`] spare bytes in front of each event's JSON, and [`delivered`] writes
//! `{"seq":N,` into them once the store has assigned `N`, so the bytes every subscriber
//! receives are made with no copy and no second allocation.

use crate::event::EventRef;
use crate::json::write::u64_digits;
use bytes::{Buf, Bytes};
use std::sync::Arc;

/// Room a [`Pending::json_tail`] may keep in front of the tail for `{"seq":N,` (7 + up
/// to 20 digits + 1), so the delivered bytes are made in place: no copy, no second
/// allocation per event.
pub const SEQ_HEADROOM: usize = 28;

/// The `{"seq":N` prefix (plus the comma the tail needs) for `seq`, right-aligned in a
/// fixed buffer; returns the buffer and where the prefix starts.
fn seq_prefix(seq: u64, tail: &[u8]) -> ([u8; SEQ_HEADROOM], usize) {
    let mut out = [0u8; SEQ_HEADROOM];
    let mut i = out.len();
    // An empty remainder (`}`) must not get a dangling comma.
    if tail.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'}') {
        i -= 1;
        out[i] = b',';
    }
    i = u64_digits(seq, &mut out[..i]);
    i -= 7;
    out[i..i + 7].copy_from_slice(b"{\"seq\":");
    (out, i)
}

/// The delivered bytes of an event: `{"seq":N,` followed by the producer's tail.
pub(crate) fn delivered_json(seq: u64, tail: &[u8]) -> Vec<u8> {
    let (prefix, at) = seq_prefix(seq, tail);
    let mut out = Vec::with_capacity(SEQ_HEADROOM - at + tail.len());
    out.extend_from_slice(&prefix[at..]);
    out.extend_from_slice(tail);
    out
}

/// The delivered bytes of a pending event, written into its own headroom when it has
/// enough (the ingest path always leaves [`SEQ_HEADROOM`]), else copied once.
pub(crate) fn delivered(seq: u64, mut json_tail: Vec<u8>, headroom: usize) -> Bytes {
    let tail = json_tail.get(headroom..).unwrap_or_default();
    let (prefix, at) = seq_prefix(seq, tail);
    let need = SEQ_HEADROOM - at;
    if headroom >= need {
        let start = headroom - need;
        if let Some(dst) = json_tail.get_mut(start..headroom) {
            dst.copy_from_slice(&prefix[at..]);
        }
        let mut bytes = Bytes::from(json_tail);
        // `advance` moves the start without cloning, so no shared header is allocated.
        bytes.advance(start);
        return bytes;
    }
    Bytes::from(delivered_json(seq, tail))
}

/// What `session_info` reports about a session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionSummary {
    pub id: Arc<str>,
    pub event_count: u64,
    pub agent_count: u64,
    pub first_timestamp: Option<i64>,
    pub last_timestamp: Option<i64>,
    pub last_seq: Option<u64>,
}

/// An event validated at ingest but not yet sequenced: everything except `seq`.
///
/// `json_tail` is the producer's object serialized *without* its opening brace and
/// without `seq` (e.g. `"type":"X","sessionId":"s",…}`), so `append` can write
/// `{"seq":N,` in front of it and obtain the delivered bytes in a single copy.
#[derive(Debug, Clone)]
pub struct Pending {
    pub timestamp: i64,
    pub session: Arc<str>,
    pub agent: Option<Arc<str>>,
    pub kind: Arc<str>,
    pub json_tail: Vec<u8>,
    /// Spare bytes at the front of `json_tail` (not part of the event) where `append`
    /// writes `{"seq":N,` in place; 0 when there are none.
    pub headroom: usize,
}

/// The result of a successful append: the seq range given to the batch, in order.
#[derive(Debug, Clone)]
pub struct Appended {
    pub events: Vec<EventRef>,
}

impl Appended {
    pub fn first_seq(&self) -> Option<u64> {
        self.events.first().map(|e| e.seq)
    }
    pub fn last_seq(&self) -> Option<u64> {
        self.events.last().map(|e| e.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_json_writes_every_seq_width() {
        for seq in [0u64, 7, 10, 99, 1_000_001, u64::MAX] {
            let got = delivered_json(seq, b"\"a\":1}");
            assert_eq!(got, format!("{{\"seq\":{seq},\"a\":1}}").into_bytes());
            assert_eq!(got.len(), got.capacity());
        }
        // An empty remainder gets no comma, whitespace before its `}` included.
        assert_eq!(delivered_json(3, b"}"), b"{\"seq\":3}");
        assert_eq!(delivered_json(3, b" }"), b"{\"seq\":3 }");
    }

    #[test]
    fn delivered_writes_in_place_when_there_is_headroom_and_copies_otherwise() {
        for seq in [0u64, 7, 10, 99, 1_000_001, u64::MAX] {
            for tail in [&b"\"a\":1}"[..], b"}"] {
                let want = delivered_json(seq, tail);
                let mut with_room = vec![b' '; SEQ_HEADROOM];
                with_room.extend_from_slice(tail);
                let ptr = with_room.as_ptr() as usize;
                let got = delivered(seq, with_room, SEQ_HEADROOM);
                assert_eq!(&got[..], &want[..]);
                let start = got.as_ptr() as usize;
                assert!(
                    start >= ptr && start < ptr + SEQ_HEADROOM,
                    "written in place"
                );
                assert_eq!(&delivered(seq, tail.to_vec(), 0)[..], &want[..]);
            }
        }
    }

    #[test]
    fn appended_reports_its_seq_range() {
        let ev = |seq| {
            Arc::new(crate::event::Event {
                seq,
                timestamp: 0,
                session: Arc::from("s"),
                agent: None,
                kind: Arc::from("T"),
                json: Bytes::new(),
            })
        };
        let a = Appended {
            events: vec![ev(4), ev(5), ev(6)],
        };
        assert_eq!((a.first_seq(), a.last_seq()), (Some(4), Some(6)));
        let none = Appended { events: Vec::new() };
        assert_eq!((none.first_seq(), none.last_seq()), (None, None));
    }
}
