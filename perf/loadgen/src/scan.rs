//! Cheap readers for server messages, so counting a million deliveries a second costs
//! little more than the `read` that brought them in.
//!
//! Nothing here parses JSON in full. The message type is the first `"type":"…"` value
//! (both servers write `type` first); events in a `trace_batch` are found by their
//! leading `{"seq":` marker, and each event's publish time by the loadgen's own
//! `"lg_ns":` field. Rare messages (errors, drop notices) are parsed properly elsewhere.

use memchr::memmem::Finder;
use std::sync::OnceLock;

struct Finders {
    seq: Finder<'static>,
    lg: Finder<'static>,
    typ: Finder<'static>,
}

fn finders() -> &'static Finders {
    static F: OnceLock<Finders> = OnceLock::new();
    F.get_or_init(|| Finders {
        seq: Finder::new(b"{\"seq\":"),
        lg: Finder::new(b"\"lg_ns\":"),
        typ: Finder::new(b"\"type\":\""),
    })
}

/// The value of the first `"type":"…"` in the message, or empty when there is none.
pub fn message_type(msg: &[u8]) -> &[u8] {
    // The type is always near the front; looking further would only find event types.
    let head = &msg[..msg.len().min(256)];
    let Some(p) = finders().typ.find(head) else {
        return b"";
    };
    let rest = &msg[p + 8..];
    match memchr::memchr(b'"', rest) {
        Some(end) => &rest[..end],
        None => b"",
    }
}

/// Leading unsigned decimal digits of `b` as a number (None when there are none or it
/// overflows).
pub fn parse_u64(b: &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    let mut any = false;
    for &c in b {
        if !c.is_ascii_digit() {
            break;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        any = true;
    }
    any.then_some(n)
}

/// The number after the first `"key":` in `msg`.
pub fn number_field(msg: &[u8], key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let p = memchr::memmem::find(msg, pat.as_bytes())?;
    parse_u64(&msg[p + pat.len()..])
}

/// One event found in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub seq: Option<u64>,
    /// The publisher's send time, when the event carries one.
    pub lg_ns: Option<u64>,
}

/// Calls `on_event` for every `{"seq":N,…}` event in a batch payload and returns how
/// many it found. Each event's `lg_ns` is looked for only between its own marker and the
/// next one, so an event without it never borrows its neighbour's.
pub fn scan_batch(msg: &[u8], mut on_event: impl FnMut(Seen)) -> u64 {
    let f = finders();
    let mut count = 0;
    let mut next = f.seq.find(msg);
    while let Some(start) = next {
        let body = start + 7;
        let following = f.seq.find(&msg[body..]).map(|p| body + p);
        let end = following.unwrap_or(msg.len());
        let seg = &msg[body..end];
        let lg_ns = f.lg.find(seg).and_then(|p| parse_u64(&seg[p + 8..]));
        on_event(Seen {
            seq: parse_u64(seg),
            lg_ns,
        });
        count += 1;
        next = following;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_message_types() {
        let cases: &[(&[u8], &[u8])] = &[
            (br#"{"type":"trace_batch","sessionId":"s"}"#, b"trace_batch"),
            (br#"{"type":"connection","clientId":"x"}"#, b"connection"),
            (br#"{"sessionId":"s","type":"publish_ack"}"#, b"publish_ack"),
            (br#"{"count":1}"#, b""),
            (br#"{"type":"unterminated"#, b""),
            (b"", b""),
        ];
        for (msg, want) in cases {
            assert_eq!(message_type(msg), *want, "{}", String::from_utf8_lossy(msg));
        }
    }

    #[test]
    fn parses_numbers() {
        assert_eq!(parse_u64(b"123,"), Some(123));
        assert_eq!(parse_u64(b"x"), None);
        assert_eq!(parse_u64(b"99999999999999999999999"), None);
        let ack = br#"{"type":"publish_ack","count":10,"firstSeq":5,"lastSeq":14}"#;
        assert_eq!(number_field(ack, "count"), Some(10));
        assert_eq!(number_field(ack, "lastSeq"), Some(14));
        assert_eq!(number_field(ack, "missing"), None);
    }

    #[test]
    fn scans_batches() {
        let msg = br#"{"type":"trace_batch","sessionId":"s-1","events":[{"seq":7,"type":"A","data":{"lg_ns":100}},{"seq":8,"type":"B"},{"seq":9,"data":{"x":1,"lg_ns":300}}],"compression":"none","timestamp":1}"#;
        let mut seen = Vec::new();
        let n = scan_batch(msg, |s| seen.push(s));
        assert_eq!(n, 3);
        assert_eq!(
            seen,
            vec![
                Seen {
                    seq: Some(7),
                    lg_ns: Some(100)
                },
                Seen {
                    seq: Some(8),
                    lg_ns: None
                },
                Seen {
                    seq: Some(9),
                    lg_ns: Some(300)
                },
            ]
        );
        assert_eq!(
            scan_batch(br#"{"type":"trace_batch","events":[]}"#, |_| ()),
            0
        );
    }
}
