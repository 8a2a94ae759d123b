//! The JSON front end of ingest: each event of a parsed batch, read off simd-json's
//! tape, through the [`EventBuilder`].
//!
//! [`validate`] walks each event's members once, in the producer's order, and lets the
//! builder check them. What it stores depends on where the event came from: an event
//! located in the input and on one line keeps its members as sent (see [`super::raw`]),
//! so nothing is written but the server's fields; any other event has its members
//! written compactly from the tape. A batch is all-or-nothing: the first bad event fails
//! it, and the error names the event's index and field so the producer can fix it.

use super::builder::{EventBuilder, Field, FieldValue};
use super::{raw, IngestContext, IngestError};
use crate::json::numbers::out_of_range;
use crate::json::scan::{members, Number};
use crate::json::tape::{span, write_static, TapeWriter};
use crate::json::write::write_str;
use crate::json::{Events, Masked};
use crate::model::Pending;
use simd_json::{Node, StaticNode};

const NULL: Node<'static> = Node::Static(StaticNode::Null);

/// Validates a batch and builds each event's `json_tail`. All or nothing.
///
/// An event whose bytes the parser located keeps the producer's members verbatim, as
/// SPEC §2 asks; one it did not, or one whose `id`/`timestamp` is `null` (dropped, then
/// assigned), is re-serialized compactly from the tape.
pub fn validate(events: &Events<'_>, ctx: &mut IngestContext) -> Result<Vec<Pending>, IngestError> {
    if events.is_empty() {
        return Err(IngestError::event(0, "no events"));
    }
    let mut out = Vec::with_capacity(events.len());
    let mut tape = std::mem::take(&mut ctx.tape);
    let nodes = events.nodes();
    let result = events
        .starts()
        .iter()
        .enumerate()
        .try_for_each(|(index, &start)| {
            let as_sent = raw::members_as_sent(events, index);
            let masked = match events.masked(index) {
                Masked::No => false,
                Masked::Located(object) => {
                    interpreted_out_of_range(object, index)?;
                    true
                }
                Masked::Unlocated => holds_zero(nodes, start),
            };
            if masked && as_sent.is_none() {
                return Err(IngestError::event(index, CANNOT_KEEP));
            }
            let p = match validate_one(nodes, start, index, as_sent, ctx, &mut tape)? {
                Some(p) => p,
                None if masked => return Err(IngestError::event(index, CANNOT_KEEP)),
                None => validate_one(nodes, start, index, None, ctx, &mut tape)?
                    .ok_or_else(|| IngestError::event(index, "cannot be stored"))?,
            };
            out.push(p);
            Ok(())
        });
    ctx.tape = tape;
    result.map(|()| out)
}

/// Why an event holding a number beyond 64 bits is refused although other fields keep
/// it: only its bytes as sent hold the number (the tape has a placeholder), so it must be
/// storable as sent.
const CANNOT_KEEP: &str = "holds a number out of range (beyond 64-bit integers or \
     floats), which is kept only when the event is stored as sent: send the event on \
     one line, without a null `id` or `timestamp`";

/// Refuses an event whose `timestamp` or `duration` (the numbers the server reads) is a
/// number simd-json could not hold: masked, it reads as a placeholder `0`, so it must
/// be named here, from the event's bytes as sent.
fn interpreted_out_of_range(object: &[u8], index: usize) -> Result<(), IngestError> {
    for m in members(object) {
        let Some(field) = ["timestamp", "duration"]
            .into_iter()
            .find(|f| m.key.eq_str(f))
        else {
            continue;
        };
        if Number::parse(m.value).is_some_and(|n| out_of_range(&n)) {
            return Err(IngestError::field(
                index,
                field,
                "number out of range (beyond 64-bit integers or floats)",
            ));
        }
    }
    Ok(())
}

/// Whether the value at `nodes[start]` has a `0` anywhere, which is what a masked
/// number looks like on the tape.
fn holds_zero(nodes: &[Node<'_>], start: usize) -> bool {
    nodes
        .get(start..start + span(nodes.get(start)))
        .unwrap_or_default()
        .iter()
        .any(|n| matches!(n, Node::Static(StaticNode::U64(0))))
}

/// Validates one event and builds its `json_tail`, from `as_sent` (its members as sent)
/// when given, else from the tape. `Ok(None)` asks for the tape: the event drops a
/// member, so its bytes cannot be kept as sent.
fn validate_one(
    nodes: &[Node<'_>],
    start: usize,
    index: usize,
    as_sent: Option<&[u8]>,
    ctx: &mut IngestContext,
    tape: &mut TapeWriter,
) -> Result<Option<Pending>, IngestError> {
    let Some(&Node::Object { len, .. }) = nodes.get(start) else {
        return Err(IngestError::event(index, "must be a JSON object"));
    };
    let mut b = EventBuilder::new(ctx, index);
    let mut i = start + 1;
    for _ in 0..len {
        let k = match nodes.get(i) {
            Some(Node::String(k)) => *k,
            // simd-json always puts a string key here.
            _ => return Err(IngestError::event(index, "must be a JSON object")),
        };
        let at = i + 1;
        let v = nodes.get(at).copied().unwrap_or(NULL);
        i = at + span(Some(&v));
        let keep = b.check(k, v)?;
        if as_sent.is_none() {
            b.push(keep, k, |out| match v {
                Node::String(s) => write_str(out, s),
                Node::Static(n) => write_static(out, n),
                _ => tape.write_value(out, nodes.get(at..i).unwrap_or_default()),
            });
        }
    }
    match as_sent {
        Some(members) => b.finish_as_sent(members),
        None => b.finish().map(Some),
    }
}

/// A tape value as the builder's rules see it.
impl<'v> Field<'v> for Node<'v> {
    #[inline(always)]
    fn value(self) -> FieldValue<'v> {
        match self {
            Node::String(s) => FieldValue::Str(s),
            Node::Static(StaticNode::Null) => FieldValue::Null,
            Node::Static(StaticNode::Bool(_)) => FieldValue::Bool,
            Node::Static(StaticNode::I64(n)) => FieldValue::Int(n),
            Node::Static(StaticNode::U64(n)) => FieldValue::UInt(n),
            Node::Static(StaticNode::F64(n)) => FieldValue::Float(n),
            Node::Object { .. } => FieldValue::Object,
            Node::Array { .. } => FieldValue::Array,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::parse_body;
    use crate::json::JsonBuffers;
    use serde_json::Value;
    use std::sync::Arc;

    fn ctx() -> IngestContext {
        IngestContext::new(65536, 1_700_000_000_000, 0xabc)
    }

    fn run(body: &str) -> Result<Vec<Pending>, IngestError> {
        let mut buf = body.as_bytes().to_vec();
        let mut buffers = JsonBuffers::default();
        let values = parse_body(&mut buf, &mut buffers)?;
        validate(&values, &mut ctx())
    }

    fn stored(p: &Pending, seq: u64) -> Value {
        let mut full = format!("{{\"seq\":{seq},").into_bytes();
        full.extend_from_slice(&p.json_tail[p.headroom..]);
        serde_json::from_slice(&full)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&full)))
    }

    #[test]
    fn good_events() {
        let p = run(r#"{"type":"TASK_START","sessionId":"s1","agentId":"a","data":{"x":[1,2,"\n"]},"custom":true}"#).unwrap();
        assert_eq!(p.len(), 1);
        let tail = std::str::from_utf8(&p[0].json_tail[p[0].headroom..]).unwrap();
        assert_eq!(
            tail,
            r#""id":"abc-1","timestamp":1700000000000,"type":"TASK_START","sessionId":"s1","agentId":"a","data":{"x":[1,2,"\n"]},"custom":true}"#
        );
        assert_eq!(&*p[0].session, "s1");
        assert_eq!(p[0].agent.as_deref(), Some("a"));
        assert_eq!(&*p[0].kind, "TASK_START");
        assert_eq!(p[0].timestamp, 1_700_000_000_000);

        // Producer id and timestamp kept, swarmId aliased, float timestamp truncated.
        let p = run(r#"[{"id":"e1","type":"T","swarmId":"sw","timestamp":1234.9},{"type":"T","sessionId":"s","timestamp":null,"agentId":null}]"#).unwrap();
        let v = stored(&p[0], 7);
        assert_eq!(v["seq"], 7);
        assert_eq!(v["id"], "e1");
        assert_eq!(v["sessionId"], "sw");
        assert_eq!(v["swarmId"], "sw");
        assert_eq!(p[0].timestamp, 1234);
        assert_eq!(&*p[0].session, "sw");
        let tail = std::str::from_utf8(&p[1].json_tail[p[1].headroom..]).unwrap();
        assert_eq!(
            tail,
            r#""id":"abc-1","timestamp":1700000000000,"type":"T","sessionId":"s","agentId":null}"#
        );
        assert_eq!(p[1].agent, None);
        // Strings repeated across a batch share one allocation.
        let p = run(r#"[{"type":"T","sessionId":"s"},{"type":"T","sessionId":"s"}]"#).unwrap();
        assert!(Arc::ptr_eq(&p[0].session, &p[1].session));
        assert!(Arc::ptr_eq(&p[0].kind, &p[1].kind));
    }

    #[test]
    fn bad_events_name_index_and_field() {
        let t = r#""type":"T","sessionId":"s""#;
        let long_type = "x".repeat(65);
        let long_session = "s".repeat(257);
        let long_id = "i".repeat(257);
        let cases: Vec<(String, usize, Option<&str>)> = vec![
            (format!("[{{{t}}},1]"), 1, None),
            (r#"{"sessionId":"s"}"#.into(), 0, Some("type")),
            (r#"{"type":"","sessionId":"s"}"#.into(), 0, Some("type")),
            (
                format!(r#"{{"type":"{long_type}","sessionId":"s"}}"#),
                0,
                Some("type"),
            ),
            (r#"{"type":5,"sessionId":"s"}"#.into(), 0, Some("type")),
            (r#"{"type":"T"}"#.into(), 0, Some("sessionId")),
            (
                r#"{"type":"T","sessionId":""}"#.into(),
                0,
                Some("sessionId"),
            ),
            (
                r#"{"type":"T","sessionId":"a\u0001b"}"#.into(),
                0,
                Some("sessionId"),
            ),
            (
                format!(r#"{{"type":"T","sessionId":"{long_session}"}}"#),
                0,
                Some("sessionId"),
            ),
            (r#"{"type":"T","swarmId":7}"#.into(), 0, Some("swarmId")),
            (format!(r#"[{{{t}}},{{{t},"seq":3}}]"#), 1, Some("seq")),
            (format!(r#"{{{t},"id":5}}"#), 0, Some("id")),
            (format!(r#"{{{t},"id":"{long_id}"}}"#), 0, Some("id")),
            (format!(r#"{{{t},"timestamp":-1}}"#), 0, Some("timestamp")),
            (
                format!(r#"{{{t},"timestamp":"now"}}"#),
                0,
                Some("timestamp"),
            ),
            (
                format!(r#"{{{t},"timestamp":1e300}}"#),
                0,
                Some("timestamp"),
            ),
            (format!(r#"{{{t},"agentId":1}}"#), 0, Some("agentId")),
            (format!(r#"{{{t},"traceId":{{}}}}"#), 0, Some("traceId")),
            (format!(r#"{{{t},"phase":true}}"#), 0, Some("phase")),
            (format!(r#"{{{t},"duration":"1s"}}"#), 0, Some("duration")),
            (format!(r#"{{{t},"data":[1]}}"#), 0, Some("data")),
            (format!(r#"{{{t},"metadata":"x"}}"#), 0, Some("metadata")),
            (
                format!(r#"{{{t},"performance":1}}"#),
                0,
                Some("performance"),
            ),
            (format!(r#"{{{t},"type":"U"}}"#), 0, Some("type")),
            (
                format!("{{{t}}}\n{{{t}}}\n{{\"type\":\"T\"}}\n"),
                2,
                Some("sessionId"),
            ),
            ("[]".into(), 0, None),
            ("  ".into(), 0, None),
            ("{\"type\":".into(), 0, None),
        ];
        for (body, index, field) in cases {
            let e = run(&body).expect_err(&body);
            assert_eq!((e.index, e.field), (index, field), "{body}: {e}");
        }
    }

    #[test]
    fn error_display() {
        let e = run(r#"[{"type":"T","sessionId":"s"},{"type":"T","sessionId":"s"},{"type":"T","sessionId":"s"},{"type":"T","sessionId":""}]"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"event 3: field "sessionId": must be a string of 1..256 bytes without control characters"#
        );
    }

    #[test]
    fn size_limit() {
        let big = "x".repeat(100);
        let mut buf =
            format!(r#"{{"type":"T","sessionId":"s","id":"i","timestamp":1,"p":"{big}"}}"#)
                .into_bytes();
        let mut buffers = JsonBuffers::default();
        let values = parse_body(&mut buf, &mut buffers).unwrap();
        let mut c = ctx();
        // The stored object without seq: exactly what the producer sent here.
        let exact = r#"{"id":"i","timestamp":1,"type":"T","sessionId":"s","p":""}"#.len() + 100;
        c.max_event_bytes = exact;
        assert!(validate(&values, &mut c).is_ok());
        c.max_event_bytes = exact - 1;
        let e = validate(&values, &mut c).unwrap_err();
        assert_eq!((e.index, e.field), (0, None));
    }

    #[test]
    fn key_order_kept_beyond_32_keys() {
        let fields: String = (0..40).map(|i| format!(",\"k{i}\":{i}")).collect();
        let p = run(&format!(
            r#"{{"type":"T","sessionId":"s","id":"i","timestamp":1{fields}}}"#
        ))
        .unwrap();
        let tail = String::from_utf8(p[0].json_tail[p[0].headroom..].to_vec()).unwrap();
        assert_eq!(
            tail,
            format!(r#""type":"T","sessionId":"s","id":"i","timestamp":1{fields}}}"#)
        );
    }

    #[test]
    fn strings_are_cached_across_batches() {
        let mut c = ctx();
        let mut pending = Vec::new();
        for _ in 0..2 {
            let mut buf = br#"{"type":"T","sessionId":"s","agentId":"a"}"#.to_vec();
            let mut buffers = JsonBuffers::default();
            let values = parse_body(&mut buf, &mut buffers).unwrap();
            pending.extend(validate(&values, &mut c).unwrap());
        }
        assert!(Arc::ptr_eq(&pending[0].session, &pending[1].session));
        assert!(Arc::ptr_eq(
            pending[0].agent.as_ref().unwrap(),
            pending[1].agent.as_ref().unwrap()
        ));
    }

    fn tails(body: &str) -> Vec<String> {
        run(body)
            .unwrap()
            .iter()
            .map(|p| String::from_utf8(p.json_tail[p.headroom..].to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn members_on_one_line_are_kept_as_sent() {
        let ev = r#"{ "type" : "T", "sessionId":"s","id":"i","timestamp":1.5e3, "data":{"q":"a\u0041\"}"} }"#;
        let want = r#""type" : "T", "sessionId":"s","id":"i","timestamp":1.5e3, "data":{"q":"a\u0041\"}"}}"#;
        // One object, an array (pretty between events), and NDJSON.
        assert_eq!(tails(ev), vec![want.to_string()]);
        assert_eq!(
            tails(&format!("[\n  {ev},\n  {ev}\n]\n")),
            vec![want.to_string(); 2]
        );
        assert_eq!(tails(&format!("{ev}\r\n\n{ev}")), vec![want.to_string(); 2]);
        let p = run(ev).unwrap();
        assert_eq!(p[0].timestamp, 1500);
        assert_eq!(&*p[0].session, "s");
        // Server fields go first, then the producer's members as sent.
        assert_eq!(
            tails(r#"{"type":"T", "swarmId":"w"}"#),
            vec![r#""id":"abc-1","timestamp":1700000000000,"sessionId":"w","type":"T", "swarmId":"w""#.to_string() + "}"]
        );
    }

    #[test]
    fn events_that_cannot_be_kept_as_sent_are_compacted() {
        // Spread over lines (NDJSON history needs one line per event), or dropping a
        // null id: written from the tape instead.
        assert_eq!(
            tails(
                "{\n  \"type\": \"T\",\n  \"sessionId\": \"s\", \"id\": \"i\", \"timestamp\": 2\n}"
            ),
            vec![r#""type":"T","sessionId":"s","id":"i","timestamp":2}"#.to_string()]
        );
        assert_eq!(
            tails(r#"[{"type":"T","sessionId":"s","id":null,"timestamp":2, "x":1.50}]"#),
            vec![r#""id":"abc-1","type":"T","sessionId":"s","timestamp":2,"x":1.5}"#.to_string()]
        );
        // A tab between tokens is compacted away; inside a string it is not JSON.
        assert_eq!(
            tails("{\"type\":\t\"T\",\"sessionId\":\"s\",\"id\":\"i\",\"timestamp\":2}"),
            vec![r#""type":"T","sessionId":"s","id":"i","timestamp":2}"#.to_string()]
        );
        assert!(run("{\"type\":\"T\",\"sessionId\":\"s\",\"x\":\"a\tb\"}").is_err());
    }

    /// Through [`crate::ingest::with_body`], as the server parses.
    fn run_masked(body: &str) -> Result<Vec<String>, IngestError> {
        let mut buf = body.as_bytes().to_vec();
        let mut buffers = JsonBuffers::default();
        crate::ingest::with_body(&mut buf, &mut buffers, |parsed| {
            let p = validate(parsed?, &mut ctx())?;
            Ok(p.iter()
                .map(|p| String::from_utf8_lossy(&p.json_tail[p.headroom..]).into_owned())
                .collect())
        })
    }

    #[test]
    fn out_of_range_numbers_are_kept_as_sent_or_named() {
        let e = r#""type":"T","sessionId":"s","id":"i","timestamp":1"#;
        let kept = [
            format!(r#"{{{e},"data":{{"big":123456789012345678901234567890,"huge":-1e999999}}}}"#),
            format!(r#"[{{{e},"x":[1E400]}},{{{e},"y":0}}]"#),
            format!("{{{e},\"z\":99999999999999999999}}\n{{{e}}}\n"),
        ];
        for body in kept {
            let got = run_masked(&body).unwrap_or_else(|err| panic!("{body}: {err}"));
            assert!(!got.is_empty(), "{body}");
        }
        let got = run_masked(&format!(
            r#"[{{{e},"data":{{"n":123456789012345678901234567890, "f":1e999}}}}]"#
        ));
        assert_eq!(
            got.unwrap(),
            vec![format!(
                r#"{e},"data":{{"n":123456789012345678901234567890, "f":1e999}}}}"#
            )]
        );
        for (body, field) in [
            (
                r#"{"type":"T","sessionId":"s","timestamp":1e999999}"#,
                Some("timestamp"),
            ),
            (
                r#"{"type":"T","sessionId":"s","duration":-1e400}"#,
                Some("duration"),
            ),
            (
                r#"{"type":"T","sessionId":"s","t\u0069mestamp":99999999999999999999}"#,
                Some("timestamp"),
            ),
            // Only its bytes as sent hold the number: spread over lines, it cannot be kept.
            ("{\"type\":\"T\",\n\"sessionId\":\"s\",\"x\":1e999}", None),
            (r#"{"type":"T","sessionId":"s","id":null,"x":1e999}"#, None),
        ] {
            let err = run_masked(body).unwrap_err();
            assert_eq!(err.field, field, "{body}: {err}");
            assert!(err.message.contains("out of range"), "{body}: {err}");
            assert!(!err.message.contains("malformed"), "{body}: {err}");
        }
        // Still malformed: masking does not hide another fault.
        let err = run_masked(r#"{"type":"T","x":1e999,}"#).unwrap_err();
        assert!(err.message.contains("malformed"), "{err}");
    }

    #[test]
    fn buffers_are_reused_across_batches() {
        let mut bufs = JsonBuffers::default();
        let mut c = ctx();
        for body in [
            r#"[{"type":"T","sessionId":"s"},{"type":"U","sessionId":"s"}]"#,
            "{\"type\":\"T\",\"sessionId\":\"s\"}\n{\"type\":\"V\",\"sessionId\":\"s\"}",
            r#"{"type":"W","sessionId":"s"}"#,
        ] {
            let mut buf = body.as_bytes().to_vec();
            let values = parse_body(&mut buf, &mut bufs).unwrap();
            let p = validate(&values, &mut c).unwrap();
            assert!(
                p.iter()
                    .all(|p| p.json_tail.ends_with(b"\"sessionId\":\"s\"}")),
                "{body}"
            );
            bufs.recycle(values);
        }
    }
}
