//! Publish bodies into batches: which of the three shapes SPEC §3 allows a body has,
//! and each event's place on the tape.
//!
//! Parsing itself is simd-json's, through the shared [`JsonBuffers`]; this file only
//! decides the shape and turns parse failures into [`IngestError`]s that name the event
//! (for NDJSON, the line) at fault. What the values mean is [`super::validate`]'s job.

use super::IngestError;
use crate::json::scan::find_byte;
use crate::json::{Events, JsonBuffers};
use simd_json::Node;

/// Parses an HTTP publish body in place: one JSON object, a JSON array (of objects,
/// checked by [`super::validate`]), or NDJSON.
///
/// NDJSON is recognized without a trial parse (an in-place parse clobbers the buffer):
/// a body is NDJSON when it starts with `{` and some line break has `}` before it and `{`
/// after it (whitespace aside). That sequence can never occur in one valid JSON value —
/// raw line breaks are not allowed inside strings and `}` `{` needs a comma between —
/// so a pretty-printed single object is still parsed as one. Each non-empty line is then
/// one event; its index is its position among the non-empty lines.
pub fn parse_body<'a>(
    body: &'a mut [u8],
    bufs: &mut JsonBuffers,
) -> Result<Events<'a>, IngestError> {
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(first) = first else {
        return Err(IngestError::event(0, "no events: the body is empty"));
    };
    if body.get(first) == Some(&b'{') && is_ndjson(body) {
        // Each non-empty line is one event, parsed on its own.
        return bufs.parse_lines(body).map_err(|(index, e)| {
            IngestError::event(index, format!("malformed JSON on its NDJSON line: {e}"))
        });
    }
    let end = body.len();
    let nodes = bufs
        .parse(body)
        .map_err(|e| IngestError::event(0, format!("malformed JSON body: {e}")))?;
    match nodes.first() {
        Some(Node::Array { len: 0, .. }) => {
            bufs.recycle_nodes(nodes);
            Err(IngestError::event(0, "no events: the array is empty"))
        }
        Some(Node::Array { .. }) => bufs
            .array_events(nodes, 0, Some(end))
            .ok_or_else(|| IngestError::event(0, "malformed JSON body")),
        _ => Ok(bufs.value_event(nodes, 0, Some(end))),
    }
}

/// Parses `body` with [`parse_body`] and hands the batch (or the failure) to `read`,
/// then recycles it. When the parse failed on a number simd-json cannot hold, `body` is
/// parsed again with such numbers masked ([`JsonBuffers::mask_numbers`]): SPEC §2 keeps
/// them as sent where the server does not read them, and [`super::validate`] names them
/// where it does.
///
/// A callback, not a returned batch: the first parse borrows `body` for as long as its
/// result may live, so only while that result stays inside this function can `body` be
/// taken back after a failure.
pub fn with_body<R>(
    body: &mut [u8],
    bufs: &mut JsonBuffers,
    read: impl FnOnce(Result<&Events<'_>, IngestError>) -> R,
) -> R {
    let parsed = match parse_body(&mut *body, bufs) {
        Err(e) => {
            if bufs.mask_numbers(body) {
                parse_body(body, bufs)
            } else {
                Err(e)
            }
        }
        parsed => parsed,
    };
    match parsed {
        Ok(events) => {
            let r = read(Ok(&events));
            bufs.recycle(events);
            r
        }
        Err(e) => read(Err(e)),
    }
}

/// True when some `\n` has `}` before it and `{` after it, whitespace aside.
fn is_ndjson(body: &[u8]) -> bool {
    let mut from = 0;
    while let Some(off) = body.get(from..).and_then(|rest| find_byte(rest, b'\n')) {
        let nl = from + off;
        let before = body
            .get(..nl)
            .and_then(|b| b.iter().rev().find(|c| !c.is_ascii_whitespace()));
        let after = body
            .get(nl + 1..)
            .and_then(|a| a.iter().find(|c| !c.is_ascii_whitespace()));
        if before == Some(&b'}') && after == Some(&b'{') {
            return true;
        }
        from = nl + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(body: &str) -> Result<usize, IngestError> {
        let mut buf = body.as_bytes().to_vec();
        let mut bufs = JsonBuffers::default();
        parse_body(&mut buf, &mut bufs).map(|e| e.len())
    }

    #[test]
    fn body_shapes() {
        let t = r#"{"type":"T","sessionId":"s"}"#;
        let cases: &[(String, Result<usize, usize>)] = &[
            (t.into(), Ok(1)),
            (format!("[{t},{t}]"), Ok(2)),
            (format!("[{t},7,\"x\"]"), Ok(3)),
            (format!("{t}\n\n{t}\r\n{t}\n"), Ok(3)),
            // A pretty-printed single object is not NDJSON.
            (
                "{\n  \"type\": \"T\",\n  \"data\": {\n    \"a\": {}\n  },\n  \"sessionId\": \"s\"\n}\n".into(),
                Ok(1),
            ),
            // A scalar is a batch of one (validation refuses it).
            ("5".into(), Ok(1)),
            // Bad JSON on an NDJSON line names that line's event.
            (format!("{t}\n{{\"type\":\n"), Err(1)),
            (format!("{t}\n\n{t}\n{{\n"), Err(2)),
            ("[]".into(), Err(0)),
            ("  \n ".into(), Err(0)),
            ("".into(), Err(0)),
            ("{\"type\":".into(), Err(0)),
        ];
        for (body, want) in cases {
            assert_eq!(shape(body).map_err(|e| e.index), *want, "{body:?}");
        }
        assert!(is_ndjson(format!("{t}\n{t}").as_bytes()));
        assert!(is_ndjson(format!("{t} \r\n\t {t}").as_bytes()));
        assert!(!is_ndjson(t.as_bytes()));
        assert!(!is_ndjson(format!("[{t},\n{t}]").as_bytes()));
    }

    #[test]
    fn messages_say_what_is_wrong() {
        let e = shape("[]").unwrap_err();
        assert!(e.message.contains("array is empty"), "{e}");
        let e = shape(" ").unwrap_err();
        assert!(e.message.contains("body is empty"), "{e}");
        let e = shape("{\"a\":}").unwrap_err();
        assert!(e.message.starts_with("malformed JSON body"), "{e}");
        let e = shape("{\"a\":1}\n{\"a\":}").unwrap_err();
        assert!(e.message.contains("NDJSON line"), "{e}");
    }
}
