//! Fuzz body for OTLP ingest: both decoders (protobuf and OTLP/JSON, either gzipped),
//! then the span mapping.
//!
//! The first byte picks the format (bit 0: JSON) and the encoding (bit 1: gzip, the rest
//! deflated here so the inflater sees real streams as well as garbage). Properties: no
//! panic; whatever decodes re-encodes as protobuf to bytes that decode to the same bytes
//! again (so JSON and protobuf reach the same message); every mapped event is one valid
//! JSON object; spans are either mapped or counted as rejected.

use crate::otlp::{self, Format};
use prost::Message;

/// Runs one input; must never panic.
pub fn run(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let format = if mode & 1 == 1 {
        Format::Json
    } else {
        Format::Protobuf
    };
    let zipped;
    let (encoding, body) = if mode & 2 == 2 {
        if mode & 4 == 4 {
            // Raw bytes as a "gzip" body: the header and inflater see garbage.
            (Some("gzip"), body)
        } else {
            let mut z = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
            z.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(body, 1));
            z.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
            z.extend_from_slice(&(body.len() as u32).to_le_bytes());
            zipped = z;
            (Some("gzip"), &zipped[..])
        }
    } else {
        (None, body)
    };
    let Ok(req) = otlp::decode(format, encoding, body, 1 << 20) else {
        return;
    };
    let once = req.encode_to_vec();
    let again = otlp::decode(Format::Protobuf, None, &once, usize::MAX)
        .expect("our own encoding decodes")
        .encode_to_vec();
    assert_eq!(once, again, "protobuf round trip");
    let mut ctx = crate::ingest::IngestContext::new(4096, 1_700_000_000_000, 7);
    let mapped = otlp::map_request(&req, &otlp::MapConfig::default(), &mut ctx);
    assert_eq!(mapped.spans, otlp::span_count(&req));
    assert!(mapped.rejected_spans <= mapped.spans);
    if mapped.rejected_spans < mapped.spans {
        assert!(!mapped.events.is_empty(), "a mapped span makes events");
    }
    for p in &mapped.events {
        let mut full = b"{\"seq\":1,".to_vec();
        full.extend_from_slice(&p.json_tail[p.headroom..]);
        let v: serde_json::Value = serde_json::from_slice(&full).expect("stored JSON is valid");
        assert!(v.is_object());
    }
    let mut last = i64::MIN;
    for p in &mapped.events {
        assert!(p.timestamp >= last, "events in time order");
        last = p.timestamp;
    }
}
