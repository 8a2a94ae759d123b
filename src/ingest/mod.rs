//! Ingest (SPEC §2, §3): turning what producers publish into validated,
//! sequencing-ready events.
//!
//! - [`parse_body`] (`parse.rs`) parses an HTTP body — one object, an array of objects,
//!   or NDJSON — in place with simd-json into [`Events`]: the flat tape plus the node
//!   where each event starts. A WebSocket `publish` arrives as [`Events`] too, cut out of
//!   the frame's tape by the client-message parser.
//! - [`validate`] (`validate.rs`) is the JSON front end: it reads each event off the tape
//!   and feeds its members to the [`EventBuilder`].
//! - [`EventBuilder`] (`builder.rs`) is where the §2 rules and the stored bytes live, for
//!   every front end (JSON today; the OpenTelemetry mapper and the in-process publisher
//!   build events through it too). It yields a [`Pending`](crate::model::Pending) whose `json_tail` the store
//!   prefixes with `{"seq":N,` — so the delivered bytes are produced here, exactly once.
//! - `raw.rs` decides which events keep their members as sent; `intern.rs` caches the
//!   strings every event repeats.
//!
//! A batch is all-or-nothing: the first bad event fails it, and the [`IngestError`] names
//! the event's index and field so the producer can fix it.
//!
//! This is the hot half of the 1M events/s target (issue #3), hence the shape: the tape
//! is one allocation per batch where a value tree costs a hash map and a `Vec` per
//! object; one-line events keep their bytes, the others are written straight from the
//! tape; `type`/`sessionId`/`agentId` strings come from a small cache that lives as long
//! as the [`IngestContext`]; and each `json_tail` is allocated once at its exact size,
//! with [`SEQ_HEADROOM`](crate::model::SEQ_HEADROOM) spare bytes in front where the store writes `{"seq":N,` in
//! place. docs/perf-ingest.md has the numbers.

mod builder;
mod intern;
mod parse;
mod raw;
mod validate;

use crate::json::tape::TapeWriter;
use std::fmt;

pub use crate::json::tape::{span, Events, JsonBuffers};
pub use builder::EventBuilder;
pub use parse::{parse_body, with_body};
pub use validate::validate;

/// Longest `type` (bytes).
pub const MAX_TYPE_BYTES: usize = 64;
/// Longest `sessionId` / `swarmId` (bytes).
pub const MAX_SESSION_BYTES: usize = 256;
/// Longest producer `id` (bytes).
pub const MAX_ID_BYTES: usize = 256;
/// Latest accepted `timestamp`: JavaScript's `Date` maximum (year 275760), in ms.
pub const MAX_TIMESTAMP_MS: i64 = 8_640_000_000_000_000;

/// Why a batch was refused. `index` counts events from 0 (for NDJSON, non-empty lines);
/// errors about the body as a whole (not JSON, no events) report index 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestError {
    pub index: usize,
    pub field: Option<&'static str>,
    pub message: String,
    pub kind: IngestErrorKind,
}

/// What kind of refusal, for the front ends that answer differently
/// (`message_too_large` over WebSocket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestErrorKind {
    /// The event or body breaks a rule of SPEC §2.
    Invalid,
    /// The event is larger than `max_event_bytes`.
    TooLarge,
}

impl IngestError {
    fn field(index: usize, field: &'static str, message: impl Into<String>) -> Self {
        IngestError {
            index,
            field: Some(field),
            message: message.into(),
            kind: IngestErrorKind::Invalid,
        }
    }
    fn event(index: usize, message: impl Into<String>) -> Self {
        IngestError {
            index,
            field: None,
            message: message.into(),
            kind: IngestErrorKind::Invalid,
        }
    }
    fn too_large(index: usize, message: impl Into<String>) -> Self {
        IngestError {
            kind: IngestErrorKind::TooLarge,
            ..IngestError::event(index, message)
        }
    }
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(
                f,
                "event {}: field \"{field}\": {}",
                self.index, self.message
            ),
            None => write!(f, "event {}: {}", self.index, self.message),
        }
    }
}

impl std::error::Error for IngestError {}

/// Server-assigned event ids: `"<seed hex>-<counter hex>"`. The seed is the server's
/// start time in ms (the caller may mix in more), so ids stay unique across restarts
/// without persisting the counter.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    prefix: Box<str>,
    counter: u64,
}

impl IdGenerator {
    pub fn new(seed: u64) -> Self {
        IdGenerator {
            prefix: format!("{seed:x}-").into(),
            counter: 0,
        }
    }

    /// Appends the next id as a JSON string (it needs no escaping).
    fn write_next(&mut self, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.counter = self.counter.wrapping_add(1);
        out.push(b'"');
        out.extend_from_slice(self.prefix.as_bytes());
        let mut buf = [0u8; 16];
        let mut i = buf.len();
        let mut v = self.counter;
        loop {
            i -= 1;
            buf[i] = HEX[(v & 0xf) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        out.extend_from_slice(buf.get(i..).unwrap_or_default());
        out.push(b'"');
    }
}

/// What ingest needs from the server: limits, the clock, the id source (and the
/// caches and buffers that make repeated batches cheaper).
#[derive(Debug, Clone)]
pub struct IngestContext {
    /// Largest accepted event, measured as its stored object without `"seq":N,`.
    pub max_event_bytes: usize,
    /// The receive time given to events without a `timestamp` (epoch ms).
    pub now_ms: i64,
    pub ids: IdGenerator,
    strings: intern::Interner,
    scratch: builder::Scratch,
    tape: TapeWriter,
}

impl IngestContext {
    pub fn new(max_event_bytes: usize, now_ms: i64, id_seed: u64) -> Self {
        IngestContext {
            max_event_bytes,
            now_ms,
            ids: IdGenerator::new(id_seed),
            strings: intern::Interner::default(),
            scratch: builder::Scratch::default(),
            tape: TapeWriter::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_hex() {
        let mut g = IdGenerator::new(255);
        let mut a = Vec::new();
        g.write_next(&mut a);
        a.push(b' ');
        g.write_next(&mut a);
        assert_eq!(a, br#""ff-1" "ff-2""#);
        let mut g = IdGenerator::new(0);
        g.counter = u64::MAX - 1;
        a.clear();
        g.write_next(&mut a);
        g.write_next(&mut a);
        assert_eq!(a, br#""0-ffffffffffffffff""0-0""#);
    }

    #[test]
    fn errors_display_index_and_field() {
        let e = IngestError::field(3, "type", "is required");
        assert_eq!(e.to_string(), r#"event 3: field "type": is required"#);
        let e = IngestError::event(0, "no events");
        assert_eq!(e.to_string(), "event 0: no events");
    }
}
