//! `tracecast.bin`: live batches as binary frames (SPEC §4), and the decoder the Rust
//! client and the tests use.
//!
//! Layout (all integers little-endian; docs/PROTOCOL.md has the full table):
//!
//! ```text
//! magic "TCB1" | version u8 = 1 | kind u8 = 1 (trace_batch) | flags u16 = 0
//! count u32 | first_seq u64 | timestamp i64 | session u16
//! strings u16, then per string: len u16, UTF-8 bytes
//! count × { seq u64 | timestamp i64 | session u16 | agent u16 | type u16 | len u32 | json }
//! ```
//!
//! String indices point into the frame's own table (frames stand alone). `0xFFFF`
//! means "none": no agent, or a string too long to intern (the JSON still has it).
//! The decoder is a small cursor in the style of quiche's `octets`: every read is
//! bounds-checked and a short buffer is a typed [`BinaryError::TooShort`].

use crate::event::Event;
use std::fmt;

/// The four bytes every binary frame starts with.
pub const MAGIC: [u8; 4] = *b"TCB1";
/// The layout version this module writes and reads.
pub const VERSION: u8 = 1;
/// `kind` of a trace batch.
pub const KIND_TRACE_BATCH: u8 = 1;
/// The subprotocol name that selects this format.
pub const SUBPROTOCOL: &str = "tracecast.bin";
/// String index meaning "absent / not interned".
pub const NO_STRING: u16 = 0xFFFF;
/// Fixed header bytes before the string table.
pub const HEADER_LEN: usize = 4 + 1 + 1 + 2 + 4 + 8 + 8 + 2 + 2;
/// Fixed bytes per event before its JSON.
pub const EVENT_HEADER_LEN: usize = 8 + 8 + 2 + 2 + 2 + 4;

/// Why a binary frame could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BinaryError {
    /// The buffer ended: `needed` more bytes at offset `at`.
    TooShort { at: usize, needed: usize },
    /// The frame does not start with [`MAGIC`].
    BadMagic,
    /// A version this decoder does not know.
    UnsupportedVersion(u8),
    /// A kind this decoder does not know.
    UnknownKind(u8),
    /// A string index past the frame's table (and not [`NO_STRING`]).
    BadStringIndex(u16),
    /// A table string is not UTF-8.
    InvalidUtf8 { at: usize },
    /// Bytes left after the last event.
    TrailingBytes(usize),
}

impl fmt::Display for BinaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BinaryError::TooShort { at, needed } => {
                write!(
                    f,
                    "binary frame too short: {needed} more bytes needed at offset {at}"
                )
            }
            BinaryError::BadMagic => f.write_str("binary frame has a bad magic"),
            BinaryError::UnsupportedVersion(v) => write!(f, "unsupported binary version {v}"),
            BinaryError::UnknownKind(k) => write!(f, "unknown binary frame kind {k}"),
            BinaryError::BadStringIndex(i) => write!(f, "string index {i} out of range"),
            BinaryError::InvalidUtf8 { at } => write!(f, "string at offset {at} is not UTF-8"),
            BinaryError::TrailingBytes(n) => write!(f, "{n} trailing bytes after the last event"),
        }
    }
}

impl std::error::Error for BinaryError {}

/// A decoded binary batch; strings and JSON borrow from the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch<'a> {
    pub version: u8,
    pub kind: u8,
    pub first_seq: u64,
    pub timestamp: i64,
    /// The frame's session (`None` only if it was too long to intern).
    pub session: Option<&'a str>,
    pub events: Vec<DecodedEvent<'a>>,
}

/// One event of a [`DecodedBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedEvent<'a> {
    pub seq: u64,
    pub timestamp: i64,
    pub session: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub kind: Option<&'a str>,
    /// The event's JSON, byte for byte what a `tracecast.json` client gets.
    pub json: &'a [u8],
}

/// The per-frame string table, interned by content (Arcs of one stream are usually
/// the same allocation, so the pointer test settles most lookups).
struct Interner<'e> {
    strings: Vec<&'e str>,
}

impl<'e> Interner<'e> {
    fn index(&mut self, s: &'e str) -> u16 {
        if s.len() > usize::from(u16::MAX) {
            return NO_STRING;
        }
        if let Some(i) = self
            .strings
            .iter()
            .position(|t| std::ptr::eq(*t, s) || *t == s)
        {
            return i as u16;
        }
        if self.strings.len() >= usize::from(NO_STRING) {
            return NO_STRING;
        }
        self.strings.push(s);
        (self.strings.len() - 1) as u16
    }
}

/// Appends one binary trace batch.
pub fn encode_binary_batch<'e>(
    out: &mut Vec<u8>,
    session: &'e str,
    events: impl IntoIterator<Item = &'e Event>,
    timestamp: i64,
) {
    let mut table = Interner {
        strings: Vec::new(),
    };
    let session_idx = table.index(session);
    let mut rows: Vec<(&'e Event, u16, u16, u16)> = Vec::new();
    for e in events {
        let s = table.index(&e.session);
        let a = e.agent.as_deref().map_or(NO_STRING, |a| table.index(a));
        let k = table.index(&e.kind);
        rows.push((e, s, a, k));
    }
    let json_bytes: usize = rows.iter().map(|(e, ..)| e.json.len()).sum();
    let table_bytes: usize = table.strings.iter().map(|s| 2 + s.len()).sum();
    out.reserve(HEADER_LEN + table_bytes + rows.len() * EVENT_HEADER_LEN + json_bytes);

    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(KIND_TRACE_BATCH);
    out.extend_from_slice(&0u16.to_le_bytes());
    // A frame is bounded by batch/chunk sizes, far below u32::MAX events.
    out.extend_from_slice(&u32::try_from(rows.len()).unwrap_or(u32::MAX).to_le_bytes());
    let first_seq = rows.first().map_or(0, |(e, ..)| e.seq);
    out.extend_from_slice(&first_seq.to_le_bytes());
    out.extend_from_slice(&timestamp.to_le_bytes());
    out.extend_from_slice(&session_idx.to_le_bytes());
    out.extend_from_slice(&(table.strings.len() as u16).to_le_bytes());
    for s in &table.strings {
        out.extend_from_slice(&(s.len() as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    for (e, s, a, k) in rows {
        out.extend_from_slice(&e.seq.to_le_bytes());
        out.extend_from_slice(&e.timestamp.to_le_bytes());
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&k.to_le_bytes());
        out.extend_from_slice(
            &u32::try_from(e.json.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        out.extend_from_slice(&e.json);
    }
}

/// A bounds-checked little-endian cursor.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], BinaryError> {
        let short = BinaryError::TooShort {
            at: self.pos,
            needed: n.saturating_sub(self.buf.len().saturating_sub(self.pos)),
        };
        let end = self.pos.checked_add(n).ok_or(short)?;
        let b = self.buf.get(self.pos..end).ok_or(short)?;
        self.pos = end;
        Ok(b)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], BinaryError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, BinaryError> {
        Ok(u8::from_le_bytes(self.array()?))
    }
    fn u16(&mut self) -> Result<u16, BinaryError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, BinaryError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, BinaryError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, BinaryError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

fn lookup<'a>(table: &[&'a str], i: u16) -> Result<Option<&'a str>, BinaryError> {
    if i == NO_STRING {
        return Ok(None);
    }
    table
        .get(usize::from(i))
        .copied()
        .map(Some)
        .ok_or(BinaryError::BadStringIndex(i))
}

/// Decodes one binary frame. Never panics; a truncated frame is [`BinaryError::TooShort`].
pub fn decode_binary_batch(buf: &[u8]) -> Result<DecodedBatch<'_>, BinaryError> {
    let mut r = Reader { buf, pos: 0 };
    if r.array::<4>()? != MAGIC {
        return Err(BinaryError::BadMagic);
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(BinaryError::UnsupportedVersion(version));
    }
    let kind = r.u8()?;
    if kind != KIND_TRACE_BATCH {
        return Err(BinaryError::UnknownKind(kind));
    }
    let _flags = r.u16()?;
    let count = r.u32()?;
    let first_seq = r.u64()?;
    let timestamp = r.i64()?;
    let session_idx = r.u16()?;
    let n_strings = r.u16()?;
    let mut table = Vec::with_capacity(usize::from(n_strings).min(r.remaining() / 2));
    for _ in 0..n_strings {
        let len = r.u16()?;
        let at = r.pos;
        let bytes = r.bytes(usize::from(len))?;
        table.push(std::str::from_utf8(bytes).map_err(|_| BinaryError::InvalidUtf8 { at })?);
    }
    let session = lookup(&table, session_idx)?;
    // `count` is untrusted: never reserve more than the bytes left could hold.
    let cap = usize::try_from(count)
        .unwrap_or(usize::MAX)
        .min(r.remaining() / EVENT_HEADER_LEN);
    let mut events = Vec::with_capacity(cap);
    for _ in 0..count {
        let seq = r.u64()?;
        let ts = r.i64()?;
        let s = lookup(&table, r.u16()?)?;
        let a = lookup(&table, r.u16()?)?;
        let k = lookup(&table, r.u16()?)?;
        let len = r.u32()?;
        let json = r.bytes(usize::try_from(len).unwrap_or(usize::MAX))?;
        events.push(DecodedEvent {
            seq,
            timestamp: ts,
            session: s,
            agent: a,
            kind: k,
            json,
        });
    }
    if r.remaining() > 0 {
        return Err(BinaryError::TrailingBytes(r.remaining()));
    }
    Ok(DecodedBatch {
        version,
        kind,
        first_seq,
        timestamp,
        session,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;

    fn events() -> Vec<Event> {
        let s: Arc<str> = Arc::from("sess-1");
        let a: Arc<str> = Arc::from("agent-é");
        (0..5u64)
            .map(|i| Event {
                seq: 100 + i,
                timestamp: 1_700_000_000_000 + i as i64,
                session: s.clone(),
                agent: (i % 2 == 0).then(|| a.clone()),
                kind: Arc::from(if i < 3 { "TASK_START" } else { "TASK_COMPLETE" }),
                json: Bytes::from(format!("{{\"seq\":{},\"type\":\"X\"}}", 100 + i)),
            })
            .collect()
    }

    #[test]
    fn round_trip() {
        let evs = events();
        let mut out = Vec::new();
        encode_binary_batch(&mut out, "sess-1", evs.iter(), 99);
        assert_eq!(&out[..4], b"TCB1");
        let d = decode_binary_batch(&out).unwrap();
        assert_eq!(
            (d.version, d.kind, d.first_seq, d.timestamp),
            (1, 1, 100, 99)
        );
        assert_eq!(d.session, Some("sess-1"));
        assert_eq!(d.events.len(), evs.len());
        for (e, got) in evs.iter().zip(&d.events) {
            assert_eq!(got.seq, e.seq);
            assert_eq!(got.timestamp, e.timestamp);
            assert_eq!(got.session, Some(&*e.session));
            assert_eq!(got.agent, e.agent.as_deref());
            assert_eq!(got.kind, Some(&*e.kind));
            assert_eq!(got.json, &e.json[..]);
        }
        // sess-1, agent-é, TASK_START, TASK_COMPLETE: each interned once.
        assert_eq!(u16::from_le_bytes([out[30], out[31]]), 4);
    }

    #[test]
    fn empty_batch_round_trips() {
        let mut out = Vec::new();
        encode_binary_batch(&mut out, "s", std::iter::empty(), 1);
        let d = decode_binary_batch(&out).unwrap();
        assert!(d.events.is_empty());
        assert_eq!(d.first_seq, 0);
    }

    #[test]
    fn every_truncation_is_too_short() {
        let evs = events();
        let mut out = Vec::new();
        encode_binary_batch(&mut out, "sess-1", evs.iter(), 99);
        for n in 0..out.len() {
            match decode_binary_batch(&out[..n]) {
                Err(BinaryError::TooShort { needed, .. }) => assert!(needed > 0),
                other => panic!("prefix {n}: {other:?}"),
            }
        }
        let mut longer = out.clone();
        longer.push(0);
        assert_eq!(
            decode_binary_batch(&longer),
            Err(BinaryError::TrailingBytes(1))
        );
    }

    #[test]
    fn bad_headers() {
        let mut out = Vec::new();
        encode_binary_batch(&mut out, "s", events().iter(), 1);
        let mut bad = out.clone();
        bad[0] = b'X';
        assert_eq!(decode_binary_batch(&bad), Err(BinaryError::BadMagic));
        let mut bad = out.clone();
        bad[4] = 9;
        assert_eq!(
            decode_binary_batch(&bad),
            Err(BinaryError::UnsupportedVersion(9))
        );
        let mut bad = out.clone();
        bad[5] = 7;
        assert_eq!(decode_binary_batch(&bad), Err(BinaryError::UnknownKind(7)));
        let mut bad = out.clone();
        bad[28] = 200; // session index
        assert_eq!(
            decode_binary_batch(&bad),
            Err(BinaryError::BadStringIndex(200))
        );
        // A huge count with no bytes behind it must fail cleanly, not allocate.
        let mut bad = out[..HEADER_LEN].to_vec();
        bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        bad[30..32].copy_from_slice(&0u16.to_le_bytes());
        bad[28..30].copy_from_slice(&NO_STRING.to_le_bytes());
        assert!(matches!(
            decode_binary_batch(&bad),
            Err(BinaryError::TooShort { .. })
        ));
    }
}
