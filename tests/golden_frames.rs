//! The golden-frame corpus shared with the JavaScript client (`tests/golden/`, also read by
//! `clients/js/test/golden.test.mjs`), so the Rust and JavaScript decoders cannot drift.
//!
//! From `events.ndjson` (stored events) the server's encoders must produce exactly the
//! committed frames — `plain.json`, `delta.json`, `binary.bin` — and the project's Rust
//! decoders must turn every frame, including the permessage-deflate payloads
//! `delta.deflate` / `binary.deflate`, back into `expected.json`. `bad/*.bin` are frames
//! every decoder must refuse. `TRACECAST_BLESS=1 cargo test --test golden_frames`
//! rewrites the corpus after a deliberate format change.

use bytes::Bytes;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracecast::cli::tail::undelta;
use tracecast::event::Event;
use tracecast::protocol::binary::{decode_binary_batch, encode_binary_batch};
use tracecast::protocol::{encode_trace_batch, BatchCompression};
use tracecast::ws::deflate::{compress, Inflater};

const FRAME_TS: i64 = 1_700_000_009_999;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn bless() -> bool {
    std::env::var_os("TRACECAST_BLESS").is_some()
}

fn events() -> Vec<Event> {
    let text = std::fs::read_to_string(dir().join("events.ndjson")).expect("events.ndjson");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("a JSON event");
            Event {
                seq: v["seq"].as_u64().expect("seq"),
                timestamp: v["timestamp"].as_f64().expect("timestamp") as i64,
                session: Arc::from(v["sessionId"].as_str().expect("sessionId")),
                agent: v["agentId"].as_str().map(Arc::from),
                kind: Arc::from(v["type"].as_str().expect("type")),
                json: Bytes::copy_from_slice(line.as_bytes()),
            }
        })
        .collect()
}

/// Compares `bytes` with the committed file (or writes it when blessing).
fn check_file(name: &str, bytes: &[u8]) {
    let path = dir().join(name);
    if bless() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write golden file");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        committed == bytes,
        "{name}: the encoder's output differs from the committed golden frame \
         (if the wire format changed on purpose, rerun with TRACECAST_BLESS=1)"
    );
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn expected() -> Vec<Value> {
    serde_json::from_slice(&read("expected.json")).expect("expected.json")
}

fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Inflater::new()
        .decompress(payload, 1 << 20, &mut out)
        .expect("inflate");
    out
}

/// A JSON `trace_batch` as a client sees it: events rebuilt when delta-compressed.
fn decode_json_frame(frame: &[u8]) -> Vec<Value> {
    let v: Value = serde_json::from_slice(frame).expect("frame is JSON");
    assert_eq!(v["type"], "trace_batch");
    assert_eq!(v["sessionId"], "golden");
    assert_eq!(v["timestamp"], FRAME_TS);
    let events = v["events"].as_array().expect("events").clone();
    match v["compression"].as_str() {
        Some("delta") => undelta(events),
        Some("none") => events,
        other => panic!("compression {other:?}"),
    }
}

fn decode_binary_frame(frame: &[u8]) -> Vec<Value> {
    let b = decode_binary_batch(frame).expect("binary frame decodes");
    assert_eq!(b.timestamp, FRAME_TS);
    assert_eq!(b.session, Some("golden"));
    b.events
        .iter()
        .map(|e| {
            let v: Value = serde_json::from_slice(e.json).expect("event JSON");
            // The header fields say what the JSON says.
            assert_eq!(Some(e.seq), v["seq"].as_u64());
            assert_eq!(Some(e.timestamp), v["timestamp"].as_f64().map(|t| t as i64));
            assert_eq!(e.session, v["sessionId"].as_str());
            assert_eq!(e.agent, v["agentId"].as_str());
            assert_eq!(e.kind, v["type"].as_str());
            v
        })
        .collect()
}

#[test]
fn encoders_produce_the_committed_frames() {
    let events = events();
    let mut plain = Vec::new();
    encode_trace_batch(
        &mut plain,
        "golden",
        &events,
        BatchCompression::None,
        FRAME_TS,
    );
    check_file("plain.json", &plain);
    let mut delta = Vec::new();
    encode_trace_batch(
        &mut delta,
        "golden",
        &events,
        BatchCompression::Delta,
        FRAME_TS,
    );
    check_file("delta.json", &delta);
    let mut binary = Vec::new();
    encode_binary_batch(&mut binary, "golden", &events, FRAME_TS);
    check_file("binary.bin", &binary);

    if bless() {
        // Deflate output may differ between library versions; the committed payloads are
        // checked by inflating them, never by re-compressing.
        check_file("delta.deflate", &compress(&delta, 6));
        check_file("binary.deflate", &compress(&binary, 6));
        let expected: Vec<Value> = events
            .iter()
            .map(|e| serde_json::from_slice(&e.json).expect("event JSON"))
            .collect();
        let mut text = serde_json::to_vec_pretty(&expected).expect("expected");
        text.push(b'\n');
        check_file("expected.json", &text);
        for (name, frame) in bad_frames(&binary) {
            check_file(&format!("bad/{name}.bin"), &frame);
        }
    }
}

#[test]
fn rust_decoders_agree_with_expected_events() {
    let expected = expected();
    assert_eq!(expected.len(), 7);
    assert_eq!(decode_json_frame(&read("plain.json")), expected);
    assert_eq!(decode_json_frame(&read("delta.json")), expected);
    assert_eq!(decode_binary_frame(&read("binary.bin")), expected);
    assert_eq!(
        decode_json_frame(&inflate(&read("delta.deflate"))),
        expected
    );
    assert_eq!(
        decode_binary_frame(&inflate(&read("binary.deflate"))),
        expected
    );
    // The delta frame really is one: it is shorter, and repeats neither the session nor
    // the event that equals the one before it.
    let delta: Value = serde_json::from_slice(&read("delta.json")).expect("delta");
    assert!(read("delta.json").len() < read("plain.json").len());
    assert_eq!(
        delta["events"][2],
        serde_json::json!({"seq": 43, "id": "e-3"})
    );
    assert!(delta["events"][4]["$removed"]
        .as_array()
        .is_some_and(|r| r.iter().any(|n| n == "agentId")));
}

#[test]
fn rust_decoder_refuses_every_bad_frame() {
    let mut seen = 0;
    for entry in std::fs::read_dir(dir().join("bad")).expect("bad/") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        assert!(
            decode_binary_batch(&bytes).is_err(),
            "{} must be refused",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 5);
}

/// Corruptions of a good frame that a decoder must refuse.
fn bad_frames(good: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut magic = good.to_vec();
    magic[0] = b'X';
    let mut version = good.to_vec();
    version[4] = 2;
    let mut kind = good.to_vec();
    kind[5] = 9;
    let mut trailing = good.to_vec();
    trailing.push(0);
    let truncated = good[..good.len() - 3].to_vec();
    let mut index = good.to_vec();
    index[28..30].copy_from_slice(&500u16.to_le_bytes());
    let mut count = good.to_vec();
    count[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    vec![
        ("magic", magic),
        ("version", version),
        ("kind", kind),
        ("trailing", trailing),
        ("truncated", truncated),
        ("string-index", index),
        ("count", count),
        ("empty", Vec::new()),
    ]
}
