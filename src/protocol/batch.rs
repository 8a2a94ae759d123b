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
//! one-line events as sent) is merely sent again. Keys are compared as a client reads
//! them: decoded (`"\u0078"` is `"x"`), and a repeated key stands for its last value, as
//! `JSON.parse` reads it.
//!
//! Speed comes from the shape of a stream: consecutive events usually have the same keys
//! in the same order. Each event is walked against the previous one's fields: a member
//! whose bytes (`"key":value`) are the previous one's is skipped with one comparison, and
//! only a changed value is scanned to find its end. Runs of changed members are copied in
//! one piece. An event whose keys differ takes the general path (a full split and a
//! lookup per key).
//!
//! A frame that delta cannot carry faithfully is sent with `"compression":"none"` (every
//! event whole), which every client already reads since the field is per frame: a
//! producer's own top-level `$removed` field (it would read as a removal list), and an
//! event that does not split as one JSON object (it cannot come from ingest).

use crate::event::Event;
use crate::json::scan::{members, skip_ws, value_end, JsonStr};
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
///
/// `compression` is what the client asked for; the frame says what it got (see the module
/// docs for when a delta request gets `"none"`).
pub fn encode_trace_batch<'e, I>(
    out: &mut Vec<u8>,
    session: &str,
    events: I,
    compression: BatchCompression,
    timestamp: i64,
) where
    I: IntoIterator<Item = &'e Event>,
    I::IntoIter: Clone,
{
    out.extend_from_slice(b"{\"type\":\"trace_batch\"");
    next_key(out, "sessionId");
    write_str(out, session);
    next_key(out, "events");
    let events = events.into_iter();
    let sent = match compression {
        BatchCompression::None => BatchCompression::None,
        BatchCompression::Delta => {
            let start = out.len();
            if DeltaWriter::default().write(out, events.clone()) {
                BatchCompression::Delta
            } else {
                out.truncate(start);
                BatchCompression::None
            }
        }
    };
    if sent == BatchCompression::None {
        super::server::write_events(out, events);
    }
    next_key(out, "compression");
    out.push(b'"');
    out.extend_from_slice(sent.as_str().as_bytes());
    out.push(b'"');
    next_key(out, "timestamp");
    write_i64(out, timestamp);
    out.push(b'}');
}

/// One top-level member of an event, as offsets into that event's bytes.
#[derive(Debug, Clone, Copy)]
struct Field<'e> {
    /// The key as a client reads it (for a member matched against the previous event,
    /// that event's identical key token).
    key: JsonStr<'e>,
    /// The member's first byte (the key's opening quote) and one past its value.
    start: usize,
    end: usize,
    /// Offset of the value from `start`.
    value_at: usize,
    /// False for a repeated key's earlier occurrences: the last one is what a client reads.
    live: bool,
}

impl Field<'_> {
    fn value<'j>(&self, json: &'j [u8]) -> &'j [u8] {
        json.get(self.start + self.value_at..self.end)
            .unwrap_or_default()
    }
}

fn same_key(a: &JsonStr<'_>, b: &JsonStr<'_>) -> bool {
    if !a.has_escapes() && !b.has_escapes() {
        return a.token() == b.token();
    }
    a.chars().eq(b.chars())
}

/// The state of one delta frame: the previous event's fields, and whether they are
/// *simple* (no escaped and no repeated key), which the fast path needs.
#[derive(Default)]
struct DeltaWriter<'e> {
    prev: Vec<Field<'e>>,
    cur: Vec<Field<'e>>,
    prev_simple: bool,
}

impl<'e> DeltaWriter<'e> {
    /// Writes `[events…]` as deltas; false when the frame must go as `"none"` (`out` then
    /// holds garbage past its old length, which the caller cuts).
    fn write(&mut self, out: &mut Vec<u8>, events: impl Iterator<Item = &'e Event>) -> bool {
        let mut prev_json: &'e [u8] = &[];
        out.push(b'[');
        for (i, e) in events.enumerate() {
            let json: &'e [u8] = &e.json;
            self.cur.clear();
            if i == 0 {
                if !self.split(json) {
                    return false;
                }
                out.extend_from_slice(json);
            } else {
                out.push(b',');
                let mark = out.len();
                let fast = self.prev_simple && self.diff_same_keys(out, prev_json, json);
                if !fast {
                    out.truncate(mark);
                    self.cur.clear();
                    if !self.split(json) {
                        return false;
                    }
                    self.diff_general(out, prev_json, json);
                }
            }
            std::mem::swap(&mut self.prev, &mut self.cur);
            prev_json = json;
        }
        out.push(b']');
        true
    }

    /// Splits `json` into `self.cur`, marks repeated keys and sets `prev_simple` for the
    /// next event. False when it is not one object, or has a `$removed` key.
    fn split(&mut self, json: &'e [u8]) -> bool {
        let base = json.as_ptr() as usize;
        let mut m = members(json);
        let mut escaped = false;
        for member in m.by_ref() {
            let key = member.key;
            if key.eq_str("$removed") {
                return false;
            }
            escaped |= key.has_escapes();
            let start = key.token().as_ptr() as usize - base;
            let value_at = member.value.as_ptr() as usize - base - start;
            self.cur.push(Field {
                key,
                start,
                end: start + value_at + member.value.len(),
                value_at,
                live: true,
            });
        }
        if !m.finish() {
            return false;
        }
        let mut repeated = false;
        for i in 1..self.cur.len() {
            let (before, rest) = self.cur.split_at_mut(i);
            let Some(f) = rest.first() else { break };
            for b in before.iter_mut().filter(|b| b.live) {
                if same_key(&b.key, &f.key) {
                    b.live = false;
                    repeated = true;
                }
            }
        }
        self.prev_simple = !escaped && !repeated;
        true
    }

    /// The fast path: `json` has exactly the previous (simple) event's keys in the same
    /// order. Writes the delta and fills `self.cur`; false (with `out` and `cur` to be
    /// discarded) as soon as the keys differ.
    ///
    /// One comparison finds where `json` stops repeating the previous event; every member
    /// that ends (delimiter included) before that point is unchanged, and the member the
    /// difference falls in has a new value if its key and colon still matched. Only that
    /// value is scanned, then the comparison resumes after it.
    fn diff_same_keys(&mut self, out: &mut Vec<u8>, pj: &'e [u8], json: &'e [u8]) -> bool {
        let mut p = skip_ws(json, 0);
        if json.get(p) != Some(&b'{') || self.prev.is_empty() {
            return false;
        }
        p = skip_ws(json, p + 1);
        out.push(b'{');
        let mut wrote = false;
        // The run of changed members being gathered: `json[run.0..run.1]`, and the index
        // of its last member.
        let mut run: Option<(usize, usize, usize)> = None;
        let n = self.prev.len();
        let mut j = 0;
        // Where the last member seen ends in `json`.
        let mut last_end = p;
        while j < n {
            let Some(f) = self.prev.get(j).copied() else {
                return false;
            };
            let same = common_prefix(
                pj.get(f.start..).unwrap_or_default(),
                json.get(p..).unwrap_or_default(),
            );
            // Members j.. that lie wholly inside the repeated bytes are unchanged.
            let mut k = j;
            while let Some(g) = self.prev.get(k) {
                if g.end - f.start >= same {
                    break;
                }
                self.cur.push(Field {
                    start: g.start - f.start + p,
                    end: g.end - f.start + p,
                    ..*g
                });
                k += 1;
            }
            if k > j {
                if let Some((s, e, _)) = run.take() {
                    push_run(out, &mut wrote, json, s, e);
                }
                if let Some(c) = self.cur.last() {
                    last_end = c.end;
                }
            }
            let Some(g) = self.prev.get(k).copied() else {
                break;
            };
            // Member k changed: its key, colon and the spaces around must be the same.
            let at = g.start - f.start + p;
            if g.start - f.start + g.value_at > same {
                return false;
            }
            let v = at + g.value_at;
            let Some(end) = value_end(json, v) else {
                return false;
            };
            self.cur.push(Field {
                start: at,
                end,
                ..g
            });
            run = Some(match run {
                Some((s, _, last)) if last + 1 == k => (s, end, k),
                Some((s, e, _)) => {
                    push_run(out, &mut wrote, json, s, e);
                    (at, end, k)
                }
                None => (at, end, k),
            });
            last_end = end;
            let after = skip_ws(json, end);
            if k + 1 == n {
                j = n;
                p = after;
            } else {
                if json.get(after) != Some(&b',') {
                    return false;
                }
                j = k + 1;
                p = skip_ws(json, after + 1);
            }
        }
        let close = skip_ws(json, last_end);
        if json.get(close) != Some(&b'}') || skip_ws(json, close + 1) != json.len() {
            return false;
        }
        if let Some((s, e, _)) = run {
            push_run(out, &mut wrote, json, s, e);
        }
        out.push(b'}');
        let _ = p;
        true
    }

    /// The general path: `self.cur` holds the split of `json`; keys are looked up in the
    /// previous event's (same slot first), decoded, last occurrence winning.
    fn diff_general(&self, out: &mut Vec<u8>, pj: &[u8], json: &[u8]) {
        let find = |fields: &[Field<'_>], i: usize, key: &JsonStr<'_>| -> Option<usize> {
            match fields.get(i) {
                Some(f) if f.live && same_key(&f.key, key) => Some(i),
                _ => fields.iter().position(|f| f.live && same_key(&f.key, key)),
            }
        };
        out.push(b'{');
        let mut first = true;
        for (i, f) in self.cur.iter().enumerate().filter(|(_, f)| f.live) {
            let value = f.value(json);
            if let Some(j) = find(&self.prev, i, &f.key) {
                if self.prev.get(j).map(|p| p.value(pj)) == Some(value) {
                    continue;
                }
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(f.key.token());
            out.push(b':');
            out.extend_from_slice(value);
        }
        let mut removed = false;
        for (i, p) in self.prev.iter().enumerate().filter(|(_, p)| p.live) {
            if find(&self.cur, i, &p.key).is_some() {
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
            out.extend_from_slice(p.key.token());
        }
        if removed {
            out.push(b']');
        }
        out.push(b'}');
    }
}

/// How many leading bytes `a` and `b` share, eight at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (
        a.get(..n).unwrap_or_default(),
        b.get(..n).unwrap_or_default(),
    );
    let mut at = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let x = u64::from_le_bytes(<[u8; 8]>::try_from(x).unwrap_or_default());
        let y = u64::from_le_bytes(<[u8; 8]>::try_from(y).unwrap_or_default());
        let d = x ^ y;
        if d != 0 {
            return at + (d.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + a
        .get(at..)
        .unwrap_or_default()
        .iter()
        .zip(b.get(at..).unwrap_or_default())
        .take_while(|(x, y)| x == y)
        .count()
}

/// Copies the changed members `json[start..end]` (commas between them included).
fn push_run(out: &mut Vec<u8>, wrote: &mut bool, json: &[u8], start: usize, end: usize) {
    if *wrote {
        out.push(b',');
    }
    *wrote = true;
    out.extend_from_slice(json.get(start..end).unwrap_or_default());
}
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::json::scan::split_fields;
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
    fn delta_frame_with_an_unsplittable_event_goes_whole() {
        let events: Vec<Event> = sample().into_iter().skip(5).collect();
        let mut delta = Vec::new();
        encode_trace_batch(&mut delta, "s", events.iter(), BatchCompression::Delta, 7);
        let mut plain = Vec::new();
        encode_trace_batch(&mut plain, "s", events.iter(), BatchCompression::None, 7);
        // The middle event is not JSON: no delta against garbage, the frame is the plain
        // one, which says so.
        assert_eq!(delta, plain);
        let s = String::from_utf8(delta).unwrap();
        assert!(s.contains(r#""compression":"none""#), "{s}");
    }

    /// Encodes `jsons` with delta and rebuilds them as a client would.
    fn round_trip(jsons: &[&str]) -> (Value, Vec<Map<String, Value>>) {
        let events: Vec<Event> = jsons
            .iter()
            .enumerate()
            .map(|(i, j)| ev(i as u64 + 1, j))
            .collect();
        let mut out = Vec::new();
        encode_trace_batch(&mut out, "s", events.iter(), BatchCompression::Delta, 7);
        let frame: Value = serde_json::from_slice(&out).unwrap();
        let rebuilt = decode(&out);
        for (j, r) in jsons.iter().zip(&rebuilt) {
            let want: Value = serde_json::from_str(j).unwrap();
            assert_eq!(&Value::Object(r.clone()), &want, "frame {frame}");
        }
        (frame, rebuilt)
    }

    #[test]
    fn escaped_key_then_the_same_key_plain_is_one_key() {
        let (frame, _) = round_trip(&[
            r#"{"seq":1,"\u0078":1,"y":2}"#,
            r#"{"seq":2,"x":1,"y":2}"#,
            r#"{"seq":3,"x":1,"\u0079":3}"#,
        ]);
        assert_eq!(frame["compression"], "delta");
        assert_eq!(frame["events"][1], serde_json::json!({"seq": 2}));
        assert_eq!(frame["events"][2], serde_json::json!({"seq": 3, "y": 3}));
    }

    #[test]
    fn a_repeated_key_stands_for_its_last_value() {
        let (frame, _) = round_trip(&[
            r#"{"seq":1,"a":2,"b":0}"#,
            r#"{"seq":2,"a":1,"a":2,"b":0}"#,
            r#"{"seq":3,"a":2,"a":5,"b":0}"#,
            r#"{"seq":4,"a":5,"b":0}"#,
            r#"{"seq":5,"b":0,"b":1}"#,
        ]);
        assert_eq!(frame["compression"], "delta");
        assert_eq!(frame["events"][1], serde_json::json!({"seq": 2}));
        assert_eq!(frame["events"][2], serde_json::json!({"seq": 3, "a": 5}));
        assert_eq!(frame["events"][3], serde_json::json!({"seq": 4}));
        assert_eq!(
            frame["events"][4],
            serde_json::json!({"seq": 5, "b": 1, "$removed": ["a"]})
        );
    }

    #[test]
    fn a_producer_field_named_removed_sends_the_frame_whole() {
        for second in [
            r#"{"seq":2,"$removed":["a"],"a":1}"#,
            r#"{"seq":2,"\u0024removed":["a"],"a":1}"#,
        ] {
            let (frame, rebuilt) = round_trip(&[r#"{"seq":1,"a":1}"#, second]);
            assert_eq!(frame["compression"], "none");
            assert_eq!(rebuilt[1]["a"], 1);
        }
        let (frame, _) = round_trip(&[r#"{"seq":1,"$removed":1}"#, r#"{"seq":2}"#]);
        assert_eq!(frame["compression"], "none");
    }

    #[test]
    fn same_keys_fast_path_matches_the_general_one() {
        // Same keys in the same order: changed members are copied as runs; whitespace as
        // sent; a number that grew past its old digits is a change, not a match.
        let (frame, _) = round_trip(&[
            r#"{"seq":1,"a":1,"b":"x","c":{"d":[1,2]},"e":true}"#,
            r#"{"seq":2,"a":12,"b":"x","c":{"d":[1,2]},"e":true}"#,
            r#"{"seq":3 , "a":12,"b":"y","c":{"d":[1,3]},"e":true}"#,
            r#"{"seq":4,"a":12,"b":"y","c":{"d":[1,3]},"e":true,"f":0}"#,
            r#"{"seq":5,"a":12,"b":"y","c":{"d":[1,3]}}"#,
            r#"{"seq":6,"b":"y","a":12,"c":{"d":[1,3]}}"#,
        ]);
        assert_eq!(frame["events"][1], serde_json::json!({"seq": 2, "a": 12}));
        assert_eq!(
            frame["events"][2],
            serde_json::json!({"seq": 3, "b": "y", "c": {"d": [1, 3]}})
        );
        assert_eq!(frame["events"][3], serde_json::json!({"seq": 4, "f": 0}));
        assert_eq!(
            frame["events"][4],
            serde_json::json!({"seq": 5, "$removed": ["e", "f"]})
        );
        assert_eq!(frame["events"][5], serde_json::json!({"seq": 6}));
    }

    #[test]
    fn every_pair_of_same_key_events_round_trips() {
        // Values that are prefixes of each other, containers, whitespace around members:
        // every ordered pair of these events must rebuild (the fast path's ground).
        let a = ["1", "12", r#""x""#, r#""x,y""#, "{\"q\":[1]}", "[]", "null"];
        let mut jsons = Vec::new();
        for x in a {
            for y in a {
                jsons.push(format!(r#"{{"seq":1,"a":{x},"b":{y}}}"#));
                jsons.push(format!(r#"{{"seq":1, "a":{x} ,"b": {y} }}"#));
            }
        }
        for x in &jsons {
            for y in &jsons {
                round_trip(&[x, y, x]);
            }
        }
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
