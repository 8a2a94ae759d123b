//! `trace_batch`, the hot path: one frame per session per loop turn, encoded once and
//! shared by every subscriber that receives the same bytes.
//!
//! With [`BatchCompression::None`] the events' stored JSON is copied verbatim. With
//! [`BatchCompression::Delta`] (SPEC §4) the first event is whole and each next one carries
//! only the top-level fields whose value bytes differ from the event before it, plus
//! `"$removed":[names]` for fields that disappeared. Frames stand alone: nothing is kept
//! across calls, so a client that joins mid-stream or drops a frame loses nothing else.
//!
//! The delta is computed on the raw bytes: the same bytes are always the same value, and
//! a value a producer spells differently from one event to the next (ingest keeps
//! one-line events as sent) is merely sent again, so the shared scanner's top-level
//! field split ([`split_fields`]) is all the parsing needed (no copy, no DOM). Should an
//! event ever not split (it cannot come from ingest), it is sent whole, which is always
//! a correct delta.

use crate::event::Event;
use crate::json::scan::{split_fields, RawField};
use crate::json::write::{next_key, write_i64, write_str};

/// How the `events` of a `trace_batch` are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchCompression {
    /// Every event whole.
    #[default]
    None,
    /// First event whole, the rest as differences from their predecessor.
    Delta,
}

impl BatchCompression {
    /// The wire value of `compression`.
    pub const fn as_str(self) -> &'static str {
        match self {
            BatchCompression::None => "none",
            BatchCompression::Delta => "delta",
        }
    }
}

/// Appends `{"type":"trace_batch","sessionId":…,"events":[…],"compression":…,"timestamp":…}`.
pub fn encode_trace_batch<'e>(
    out: &mut Vec<u8>,
    session: &str,
    events: impl IntoIterator<Item = &'e Event>,
    compression: BatchCompression,
    timestamp: i64,
) {
    out.extend_from_slice(b"{\"type\":\"trace_batch\"");
    next_key(out, "sessionId");
    write_str(out, session);
    next_key(out, "events");
    match compression {
        BatchCompression::None => super::server::write_events(out, events),
        BatchCompression::Delta => write_delta_events(out, events),
    }
    next_key(out, "compression");
    out.push(b'"');
    out.extend_from_slice(compression.as_str().as_bytes());
    out.push(b'"');
    next_key(out, "timestamp");
    write_i64(out, timestamp);
    out.push(b'}');
}

fn write_delta_events<'e>(out: &mut Vec<u8>, events: impl IntoIterator<Item = &'e Event>) {
    let mut prev: Vec<RawField<'e>> = Vec::new();
    let mut cur: Vec<RawField<'e>> = Vec::new();
    let mut have_prev = false;
    out.push(b'[');
    for (i, e) in events.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        cur.clear();
        let split = split_fields(&e.json, &mut cur);
        if !(split && have_prev) {
            out.extend_from_slice(&e.json);
        } else {
            write_diff(out, &prev, &cur);
        }
        have_prev = split;
        std::mem::swap(&mut prev, &mut cur);
    }
    out.push(b']');
}

/// Writes `cur` as a difference from `prev`.
fn write_diff(out: &mut Vec<u8>, prev: &[RawField<'_>], cur: &[RawField<'_>]) {
    out.push(b'{');
    let mut first = true;
    for (i, (k, v)) in cur.iter().enumerate() {
        // Events of one stream usually share their field order: try the same slot first.
        let same = match prev.get(i) {
            Some((pk, pv)) if pk == k => pv == v,
            _ => prev.iter().any(|(pk, pv)| pk == k && pv == v),
        };
        if same {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(k);
        out.push(b':');
        out.extend_from_slice(v);
    }
    let mut removed = false;
    for (i, (pk, _)) in prev.iter().enumerate() {
        let present = match cur.get(i) {
            Some((k, _)) if k == pk => true,
            _ => cur.iter().any(|(k, _)| k == pk),
        };
        if present {
            continue;
        }
        if removed {
            out.push(b',');
        } else {
            if !first {
                out.push(b',');
            }
            out.extend_from_slice(b"\"$removed\":[");
            removed = true;
        }
        out.extend_from_slice(pk);
    }
    if removed {
        out.push(b']');
    }
    out.push(b'}');
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::{Map, Value};
    use std::sync::Arc;

    pub(crate) fn ev(seq: u64, json: &str) -> Event {
        Event {
            seq,
            timestamp: 1,
            session: Arc::from("s"),
            agent: None,
            kind: Arc::from("T"),
            json: Bytes::copy_from_slice(json.as_bytes()),
        }
    }

    /// The client's side of delta compression: merge, then drop `$removed`.
    pub(crate) fn apply_delta(
        prev: &Map<String, Value>,
        delta: &Map<String, Value>,
    ) -> Map<String, Value> {
        let mut next = prev.clone();
        for (k, v) in delta {
            if k != "$removed" {
                next.insert(k.clone(), v.clone());
            }
        }
        if let Some(Value::Array(removed)) = delta.get("$removed") {
            for r in removed {
                if let Value::String(name) = r {
                    next.remove(name);
                }
            }
        }
        next
    }

    fn decode(frame: &[u8]) -> Vec<Map<String, Value>> {
        let v: Value = serde_json::from_slice(frame).unwrap();
        let mut out: Vec<Map<String, Value>> = Vec::new();
        for e in v["events"].as_array().unwrap() {
            let e = e.as_object().unwrap().clone();
            let whole = match out.last() {
                None => e,
                Some(prev) if v["compression"] == "delta" => apply_delta(prev, &e),
                Some(_) => e,
            };
            out.push(whole);
        }
        out
    }

    fn sample() -> Vec<Event> {
        [
            r#"{"seq":1,"type":"A","sessionId":"s","agentId":"x","data":{"n":1,"s":"a,}]\"{"}}"#,
            r#"{"seq":2,"type":"A","sessionId":"s","agentId":"x","data":{"n":1,"s":"a,}]\"{"}}"#,
            r#"{"seq":3,"type":"B","sessionId":"s","data":{"n":2},"extra":[1,{"a":"}"}]}"#,
            r#"{"seq":4,"sessionId":"s","type":"B","data":{"n":2},"w\"eird":null}"#,
            r#"{ "seq" : 5 , "type":"C" , "sessionId":"s" , "v":-1.5e3 }"#,
            r#"{"seq":6,"type":"C","sessionId":"s","v":true}"#,
            "not json at all",
            r#"{"seq":8,"type":"C","sessionId":"s","v":true}"#,
        ]
        .iter()
        .enumerate()
        .map(|(i, j)| ev(i as u64 + 1, j))
        .collect()
    }

    #[test]
    fn none_copies_events_verbatim() {
        let events = sample();
        let mut out = Vec::new();
        encode_trace_batch(
            &mut out,
            "s\"1",
            events.iter().take(6),
            BatchCompression::None,
            42,
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["type"], "trace_batch");
        assert_eq!(v["sessionId"], "s\"1");
        assert_eq!(v["compression"], "none");
        assert_eq!(v["timestamp"], 42);
        assert_eq!(v["events"].as_array().unwrap().len(), 6);
        assert!(out
            .windows(events[0].json.len())
            .any(|w| w == &events[0].json[..]));
    }

    #[test]
    fn delta_round_trips() {
        let events: Vec<Event> = sample().into_iter().take(6).collect();
        let mut out = Vec::new();
        encode_trace_batch(&mut out, "s", events.iter(), BatchCompression::Delta, 7);
        let rebuilt = decode(&out);
        assert_eq!(rebuilt.len(), events.len());
        for (e, r) in events.iter().zip(&rebuilt) {
            let want: Value = serde_json::from_slice(&e.json).unwrap();
            assert_eq!(&Value::Object(r.clone()), &want);
        }
        // The second event only differs by seq.
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["events"][1], serde_json::json!({"seq": 2}));
        assert_eq!(v["events"][3]["$removed"], serde_json::json!(["extra"]));
        assert_eq!(v["compression"], "delta");
    }

    #[test]
    fn delta_sends_unsplittable_events_whole_and_restarts() {
        let events: Vec<Event> = sample().into_iter().skip(5).collect();
        let mut out = Vec::new();
        encode_trace_batch(&mut out, "s", events.iter(), BatchCompression::Delta, 7);
        // The middle event is not JSON: the frame is not JSON either, but the event
        // after it must be whole (no delta against garbage).
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.contains(r#"not json at all,{"seq":8,"type":"C","sessionId":"s","v":true}"#),
            "{s}"
        );
    }

    #[test]
    fn split_fields_rejects_garbage_without_panicking() {
        for bad in [
            "",
            "{",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":1",
            "{\"a\":1,}",
            "[1]",
            "{\"a\":[1}",
            "{\"a\":\"\\",
            "{\"a\":1}x",
            "{}x",
        ] {
            let mut f = Vec::new();
            assert!(!split_fields(bad.as_bytes(), &mut f), "{bad:?}");
        }
        let mut f = Vec::new();
        assert!(split_fields(b"{}", &mut f));
        assert!(f.is_empty());
    }
}
