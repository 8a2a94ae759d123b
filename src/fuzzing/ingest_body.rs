//! Fuzz body for HTTP ingest: body parsing (object, array, NDJSON) then validation.

/// Feeds arbitrary bytes to the parser and validator; must never panic.
pub fn run(data: &[u8]) {
    let mut buf = data.to_vec();
    let mut bufs = crate::ingest::JsonBuffers::default();
    if let Ok(mut values) = crate::ingest::parse_body(&mut buf, &mut bufs) {
        let mut ctx = crate::ingest::IngestContext::new(4096, 1_700_000_000_000, 7);
        let kept = crate::ingest::validate(&values, &mut ctx);
        // The same batch re-serialized from the tape: same verdict, same values.
        values.compact();
        let mut ctx = crate::ingest::IngestContext::new(4096, 1_700_000_000_000, 7);
        let written = crate::ingest::validate(&values, &mut ctx);
        match (kept, written) {
            (Ok(kept), Ok(written)) => {
                assert_eq!(kept.len(), written.len());
                for (k, w) in kept.iter().zip(&written) {
                    // What ingest stores must be valid JSON, and as sent means as parsed.
                    assert_eq!(stored(k), stored(w));
                }
            }
            (Err(k), Err(w)) => assert_eq!((k.index, k.field), (w.index, w.field)),
            // Only the size limit may tell them apart: compact bytes can be fewer.
            (Err(k), Ok(_)) => assert!(k.field.is_none() && k.message.contains("max_event_bytes")),
            (Ok(_), Err(w)) => panic!("re-serialized event refused: {w}"),
        }
    };
}

/// A stored event, parsed back.
fn stored(p: &crate::store::Pending) -> simd_json::OwnedValue {
    let mut full = b"{\"seq\":1,".to_vec();
    full.extend_from_slice(&p.json_tail);
    match simd_json::to_owned_value(&mut full) {
        Ok(v) => v,
        Err(e) => panic!(
            "stored event is not JSON ({e}): {}",
            String::from_utf8_lossy(&full)
        ),
    }
}
