//! Fuzz body for the client-message parser, and for the other parsers of bytes that
//! reach the protocol layer: the `tracecast.bin` decoder and the delta field splitter.

use crate::event::Event;
use crate::protocol::{self, BatchCompression, ClientMessage};
use std::sync::Arc;

/// Feeds arbitrary bytes to the parsers; must never panic.
pub fn run(data: &[u8]) {
    let mut buf = data.to_vec();
    let mut bufs = crate::ingest::JsonBuffers::default();
    if let Ok(parsed) = protocol::parse_client_message(&mut buf, &mut bufs) {
        if let ClientMessage::Publish { mut events } = parsed.msg {
            super::ingest_body::same_either_way(&mut events);
        }
    }
    if let Ok(batch) = protocol::decode_binary_batch(data) {
        // What decodes must re-encode to the same bytes.
        let events: Vec<Event> = batch
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
            .collect();
        let mut out = Vec::new();
        protocol::encode_binary_batch(
            &mut out,
            batch.session.unwrap_or_default(),
            events.iter(),
            0,
        );
        let _ = protocol::decode_binary_batch(&out);
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
    let mut out = Vec::new();
    protocol::encode_trace_batch(&mut out, "s", pair.iter(), BatchCompression::Delta, 0);
}
