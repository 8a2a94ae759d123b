//! The bytes of one stream message: a validated batch, before it has seqs.
//!
//! A node that accepts a batch has already validated it (ids and timestamps filled in), so
//! what travels is exactly what its store would have written minus the seq: per event the
//! timestamp, session, agent, kind and the JSON tail. Every node decodes the same bytes into
//! the same [`Pending`] events, so the delivered JSON is byte-identical everywhere. Pure
//! and sans-IO: the NATS thread decodes, the loop never parses.
//!
//! Layout (little endian): `0x01` (version), `u32` event count, then per event `i64`
//! timestamp, `u16` session length + bytes, `u16` agent length + bytes (`0xFFFF`: no
//! agent), `u16` kind length + bytes, `u32` tail length + tail bytes.

use crate::model::{Pending, SEQ_HEADROOM};
use std::sync::Arc;

const VERSION: u8 = 1;
const NO_AGENT: u16 = u16::MAX;

/// Why a stream message is not a batch this node can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    Empty,
    Version(u8),
    /// The message ends inside the field named.
    Truncated(&'static str),
    /// A name is not UTF-8, or longer than the format allows.
    BadField(&'static str),
    /// Bytes after the last event.
    Trailing(usize),
    /// An empty batch: every message carries at least one event.
    NoEvents,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Empty => f.write_str("empty message"),
            WireError::Version(v) => write!(f, "unknown batch format version {v}"),
            WireError::Truncated(what) => write!(f, "message ends inside {what}"),
            WireError::BadField(what) => write!(f, "{what} is not valid UTF-8 or too long"),
            WireError::Trailing(n) => write!(f, "{n} bytes after the last event"),
            WireError::NoEvents => f.write_str("a batch without events"),
        }
    }
}

impl std::error::Error for WireError {}

/// Appends `batch`'s bytes to `out`. Names longer than `u16::MAX - 1` bytes cannot be
/// written (ingest bounds them far below that); such a batch is refused whole.
pub fn encode(batch: &[Pending], out: &mut Vec<u8>) -> Result<(), WireError> {
    out.push(VERSION);
    out.extend_from_slice(&(batch.len() as u32).to_le_bytes());
    for p in batch {
        let tail = p.json_tail.get(p.headroom..).unwrap_or_default();
        out.extend_from_slice(&p.timestamp.to_le_bytes());
        put_str(out, &p.session, "sessionId")?;
        match &p.agent {
            Some(a) => put_str(out, a, "agentId")?,
            None => out.extend_from_slice(&NO_AGENT.to_le_bytes()),
        }
        put_str(out, &p.kind, "type")?;
        let n = u32::try_from(tail.len()).map_err(|_| WireError::BadField("event"))?;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(tail);
    }
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str, what: &'static str) -> Result<(), WireError> {
    let n = u16::try_from(s.len())
        .ok()
        .filter(|&n| n != NO_AGENT)
        .ok_or(WireError::BadField(what))?;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.b.len() < n {
            return Err(WireError::Truncated(what));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn name(&mut self, len: u16, what: &'static str) -> Result<&'a str, WireError> {
        let b = self.take(len as usize, what)?;
        std::str::from_utf8(b).map_err(|_| WireError::BadField(what))
    }
}

/// Reuses the previous event's `Arc` when a name repeats (a batch is mostly one session
/// and few kinds), so decoding allocates per distinct name, not per event.
fn intern(last: &mut Option<Arc<str>>, s: &str) -> Arc<str> {
    match last {
        Some(a) if &**a == s => a.clone(),
        _ => {
            let a: Arc<str> = Arc::from(s);
            *last = Some(a.clone());
            a
        }
    }
}

/// The batch in `bytes`, each event's tail behind [`SEQ_HEADROOM`] spare bytes so the
/// store writes its seq in place.
pub fn decode(bytes: &[u8]) -> Result<Vec<Pending>, WireError> {
    let mut r = Reader { b: bytes };
    let [version] = r.array::<1>("the version").map_err(|_| WireError::Empty)?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let count = u32::from_le_bytes(r.array("the event count")?) as usize;
    if count == 0 {
        return Err(WireError::NoEvents);
    }
    // Every event takes at least 18 bytes: a count beyond that is a lie, not a reason to
    // reserve memory.
    let mut out = Vec::with_capacity(count.min(bytes.len() / 18 + 1));
    let (mut session, mut agent, mut kind) = (None, None, None);
    for _ in 0..count {
        let timestamp = i64::from_le_bytes(r.array("a timestamp")?);
        let n = u16::from_le_bytes(r.array("a sessionId")?);
        let s = intern(&mut session, r.name(n, "sessionId")?);
        let n = u16::from_le_bytes(r.array("an agentId")?);
        let a = if n == NO_AGENT {
            None
        } else {
            Some(intern(&mut agent, r.name(n, "agentId")?))
        };
        let n = u16::from_le_bytes(r.array("a type")?);
        let k = intern(&mut kind, r.name(n, "type")?);
        let n = u32::from_le_bytes(r.array("an event length")?) as usize;
        let tail = r.take(n, "an event")?;
        let mut json_tail = Vec::with_capacity(SEQ_HEADROOM + tail.len());
        json_tail.resize(SEQ_HEADROOM, b' ');
        json_tail.extend_from_slice(tail);
        out.push(Pending {
            timestamp,
            session: s,
            agent: a,
            kind: k,
            json_tail,
            headroom: SEQ_HEADROOM,
        });
    }
    if !r.b.is_empty() {
        return Err(WireError::Trailing(r.b.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(session: &str, agent: Option<&str>, tail: &str, headroom: usize) -> Pending {
        let mut json_tail = vec![b' '; headroom];
        json_tail.extend_from_slice(tail.as_bytes());
        Pending {
            timestamp: -5,
            session: Arc::from(session),
            agent: agent.map(Arc::from),
            kind: Arc::from("T"),
            json_tail,
            headroom,
        }
    }

    #[test]
    fn a_batch_survives_the_trip_byte_for_byte() {
        let batch = vec![
            pending(
                "s",
                Some("a"),
                "\"type\":\"T\",\"sessionId\":\"s\"}",
                SEQ_HEADROOM,
            ),
            pending("s", None, "}", 0),
            pending("other", Some("b"), "\"x\":1}", 3),
        ];
        let mut b = Vec::new();
        encode(&batch, &mut b).unwrap();
        let back = decode(&b).unwrap();
        assert_eq!(back.len(), 3);
        for (p, q) in batch.iter().zip(&back) {
            assert_eq!(p.timestamp, q.timestamp);
            assert_eq!(p.session, q.session);
            assert_eq!(p.agent, q.agent);
            assert_eq!(p.kind, q.kind);
            assert_eq!(&p.json_tail[p.headroom..], &q.json_tail[q.headroom..]);
        }
        assert!(Arc::ptr_eq(&back[0].session, &back[1].session), "interned");
    }

    #[test]
    fn damaged_messages_are_named_not_panicked_on() {
        let mut b = Vec::new();
        encode(&[pending("s", Some("a"), "}", 0)], &mut b).unwrap();
        assert_eq!(decode(&[]).err(), Some(WireError::Empty));
        assert_eq!(decode(&[9]).err(), Some(WireError::Version(9)));
        assert_eq!(decode(&[1, 0, 0, 0, 0]).err(), Some(WireError::NoEvents));
        for cut in 1..b.len() {
            assert!(
                matches!(decode(&b[..cut]), Err(WireError::Truncated(_))),
                "{cut}"
            );
        }
        let mut long = b.clone();
        long.push(0);
        assert_eq!(decode(&long).err(), Some(WireError::Trailing(1)));
        // A count far beyond what the bytes can hold fails without a huge allocation.
        let mut lie = b.clone();
        lie[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&lie), Err(WireError::Truncated(_))));
    }
}
