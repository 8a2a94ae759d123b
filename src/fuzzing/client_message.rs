//! Fuzz body for the client-message parser, and for the other parsers of bytes that
//! reach the protocol layer: the `tracecast.bin` decoder and the delta field splitter.
//!
//! Properties asserted (a panic is the fuzzer's failure signal):
//! - a published batch validates the same as sent and as re-written from the tape
//!   (`ingest_body::same_either_way`);
//! - a binary frame that decodes re-encodes to a canonical frame that decodes to the same
//!   events, and re-encoding that canonical frame gives the same bytes again;
//! - a `trace_batch` of two JSON events is JSON and carries them verbatim, and with delta
//!   compression a client that applies each delta to the event before rebuilds both.

use crate::event::Event;
use crate::protocol::{self, BatchCompression, ClientMessage, DecodedBatch};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::Arc;

/// Feeds arbitrary bytes to the parsers and checks what they produce.
pub fn run(data: &[u8]) {
    let mut buf = data.to_vec();
    let mut bufs = crate::ingest::JsonBuffers::default();
    if let Ok(parsed) = protocol::parse_client_message(&mut buf, &mut bufs) {
        if let ClientMessage::Publish { mut events } = parsed.msg {
            super::ingest_body::same_either_way(&mut events);
        }
    }
    if let Ok(batch) = protocol::decode_binary_batch(data) {
        binary_round_trip(&batch);
    }
    // Arbitrary bytes as stored events: the delta splitter must cope.
    let mid = data.len() / 2;
    let mk = |json: &[u8]| Event {
        seq: 1,
        timestamp: 0,
        session: Arc::from("s"),
        agent: None,
        kind: Arc::from("t"),
        json: bytes::Bytes::copy_from_slice(json),
    };
    let pair = [
        mk(data.get(..mid).unwrap_or_default()),
        mk(data.get(mid..).unwrap_or_default()),
    ];
    trace_batch_carries_the_events(&pair);
}

/// Events rebuilt as [`Event`]s. The encoder needs a session and a type where the frame
/// may say "none" (`0xFFFF`); the empty string stands in for it.
fn as_events(batch: &DecodedBatch<'_>) -> Vec<Event> {
    batch
        .events
        .iter()
        .map(|e| Event {
            seq: e.seq,
            timestamp: e.timestamp,
            session: Arc::from(e.session.unwrap_or_default()),
            agent: e.agent.map(Arc::from),
            kind: Arc::from(e.kind.unwrap_or_default()),
            json: bytes::Bytes::copy_from_slice(e.json),
        })
        .collect()
}

fn encode(batch: &DecodedBatch<'_>) -> Vec<u8> {
    let events = as_events(batch);
    let mut out = Vec::new();
    protocol::encode_binary_batch(
        &mut out,
        batch.session.unwrap_or_default(),
        events.iter(),
        batch.timestamp,
    );
    out
}

/// The input itself need not re-encode byte for byte (its flags, `first_seq`, string
/// order and unused strings are free), but the encoder's output is canonical: it must
/// decode to the same events and be a fixed point of decode → encode.
fn binary_round_trip(batch: &DecodedBatch<'_>) {
    let canonical = encode(batch);
    let again = match protocol::decode_binary_batch(&canonical) {
        Ok(b) => b,
        Err(e) => panic!("a re-encoded binary batch does not decode: {e}"),
    };
    assert_eq!(
        encode(&again),
        canonical,
        "re-encoding a canonical binary batch changed its bytes"
    );
    assert_eq!(again.timestamp, batch.timestamp);
    assert_eq!(
        again.first_seq,
        batch.events.first().map_or(0, |e| e.seq),
        "first_seq is the first event's seq"
    );
    assert_eq!(again.events.len(), batch.events.len());
    // String indices are u16 and 0xFFFF means "none", so a table holds at most 0xFFFF
    // strings; past that the encoder writes "none". Only a frame whose strings (plus the
    // "" standing in for "none") all fit must keep them.
    let mut strings: HashSet<&str> = HashSet::from([""]);
    strings.extend(batch.session);
    for e in &batch.events {
        strings.extend(e.session.iter().chain(&e.agent).chain(&e.kind).copied());
    }
    let all_fit = strings.len() <= usize::from(u16::MAX);
    if all_fit {
        assert_eq!(again.session, or_empty(batch.session));
    }
    for (a, b) in batch.events.iter().zip(&again.events) {
        assert_eq!((a.seq, a.timestamp, a.json), (b.seq, b.timestamp, b.json));
        if all_fit {
            assert_eq!(
                (or_empty(a.session), a.agent, or_empty(a.kind)),
                (b.session, b.agent, b.kind)
            );
        }
    }
}

/// Both encodings of a two-event `trace_batch`. Without compression the events are copied
/// verbatim, so whenever both are JSON the frame is JSON holding them. With delta, the
/// promise (SPEC §4) is that a client rebuilds each event by applying its delta to the
/// one before, reading keys decoded and a repeated key as its last value, whatever the
/// keys look like. The one exception is an event with its own top-level `$removed`
/// field: that frame goes as `"none"`, every event verbatim.
fn trace_batch_carries_the_events(pair: &[Event; 2]) {
    let parsed: Vec<Option<Value>> = pair.iter().map(|e| as_batch_member(&e.json)).collect();
    let mut plain = Vec::new();
    protocol::encode_trace_batch(&mut plain, "s", pair.iter(), BatchCompression::None, 0);
    if let [Some(first), Some(second)] = parsed.as_slice() {
        let frame: Value = match serde_json::from_slice(&plain) {
            Ok(v) => v,
            Err(e) => panic!("trace_batch of two JSON events is not JSON: {e}"),
        };
        assert_eq!(
            frame["events"],
            Value::Array(vec![first.clone(), second.clone()])
        );
    }

    let mut delta = Vec::new();
    protocol::encode_trace_batch(&mut delta, "s", pair.iter(), BatchCompression::Delta, 0);
    let (Some(Value::Object(first)), Some(Value::Object(second))) = (&parsed[0], &parsed[1]) else {
        return;
    };
    let frame: Value = match serde_json::from_slice(&delta) {
        Ok(v) => v,
        Err(e) => panic!("delta trace_batch of two JSON objects is not JSON: {e}"),
    };
    if pair.iter().any(|e| has_removed_key(&e.json)) {
        assert_eq!(frame["compression"], "none");
        assert_eq!(
            frame["events"],
            Value::Array(vec![
                Value::Object(first.clone()),
                Value::Object(second.clone())
            ])
        );
        return;
    }
    assert_eq!(frame["compression"], "delta");
    let sent = match &frame["events"] {
        Value::Array(events) => events.as_slice(),
        other => panic!("events is not an array: {other}"),
    };
    let [Value::Object(whole), Value::Object(diff)] = sent else {
        panic!("a delta batch of two objects sends two objects: {frame}");
    };
    assert_eq!(
        whole, first,
        "the first event of a delta batch is sent whole"
    );
    assert_eq!(&apply_delta(whole, diff), second, "delta: {diff:?}");
}

/// The event as one JSON value, parsed at the depth it has inside a frame
/// (`{"events":[…]}`), so serde_json's nesting limit judges the event and the frame alike.
/// `None` when it is not exactly one JSON value on its own (wrapped alone, `1,2` would
/// pass as two values and `1],"x":[2` as one).
fn as_batch_member(json: &[u8]) -> Option<Value> {
    serde_json::from_slice::<IgnoredAny>(json).ok()?;
    let mut wrapped = b"{\"events\":[".to_vec();
    wrapped.extend_from_slice(json);
    wrapped.extend_from_slice(b"]}");
    let mut frame: Value = serde_json::from_slice(&wrapped).ok()?;
    let events = frame.get_mut("events")?.as_array_mut()?;
    if events.len() != 1 {
        return None;
    }
    events.pop()
}

/// What a client does with a delta: take the changed fields, drop the `$removed` ones.
fn apply_delta(prev: &Map<String, Value>, delta: &Map<String, Value>) -> Map<String, Value> {
    let mut next = prev.clone();
    for (k, v) in delta {
        if k != "$removed" {
            next.insert(k.clone(), v.clone());
        }
    }
    if let Some(Value::Array(removed)) = delta.get("$removed") {
        for name in removed.iter().filter_map(Value::as_str) {
            next.shift_remove(name);
        }
    }
    next
}

/// True when the object has a top-level key that reads as `$removed` (escaped or not).
fn has_removed_key(json: &[u8]) -> bool {
    match serde_json::from_slice::<TopKeys>(json) {
        Ok(TopKeys(keys)) => keys.iter().any(|k| k == "$removed"),
        Err(_) => false,
    }
}

/// The top-level keys of a JSON object in order, duplicates kept (a map would merge them).
struct TopKeys(Vec<String>);

impl<'de> Deserialize<'de> for TopKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TopKeys, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = TopKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(TopKeys(keys))
            }
        }
        d.deserialize_map(Keys)
    }
}

/// "None" as the encoder writes it back: the empty string standing in for it.
fn or_empty(s: Option<&str>) -> Option<&str> {
    Some(s.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_key_detection() {
        assert!(!has_removed_key(br#"{"a":1,"b":{"$removed":2}}"#));
        assert!(!has_removed_key(b"{}"));
        assert!(has_removed_key(br#"{"$removed":["a"]}"#));
        assert!(has_removed_key(br#"{"\u0024removed":1}"#));
        assert!(!has_removed_key(b"[1]"));
    }

    #[test]
    fn batch_members_are_single_values() {
        assert_eq!(as_batch_member(b" 1 "), Some(Value::from(1)));
        assert_eq!(as_batch_member(b"1,2"), None);
        assert_eq!(as_batch_member(b"]"), None);
        assert_eq!(as_batch_member(b""), None);
        assert_eq!(as_batch_member(br#"1],"x":[2"#), None);
    }

    #[test]
    fn delta_pairs_round_trip() {
        for (a, b) in [
            (r#"{"\u0078":1,"y":2}"#, r#"{"x":1,"y":2}"#),
            (r#"{"a":2}"#, r#"{"a":1,"a":2}"#),
            (r#"{"a":1,"a":2}"#, r#"{"a":2,"b":1,"b":1}"#),
            (r#"{"a":1}"#, r#"{"$removed":["a"],"a":1}"#),
            (r#"{"a":1,"b":2}"#, r#"{"a":1}"#),
            (r#"{"a":1}"#, r#"{"b":[1,2],"a":1.0}"#),
            (r#" { "x" : "y" } "#, r#"{"x":"y","z":null}"#),
        ] {
            let mut data = a.as_bytes().to_vec();
            // `run` splits the input at its middle: pad the shorter half with spaces.
            let width = a.len().max(b.len());
            data.resize(width, b' ');
            data.extend_from_slice(b.as_bytes());
            data.resize(2 * width, b' ');
            run(&data);
        }
    }
}
