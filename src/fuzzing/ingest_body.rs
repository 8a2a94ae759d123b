//! Fuzz body for HTTP ingest: body parsing (object, array, NDJSON) then validation.

/// Feeds arbitrary bytes to the parser and validator; must never panic.
pub fn run(data: &[u8]) {
    let mut buf = data.to_vec();
    let mut buffers = simd_json::Buffers::default();
    if let Ok(values) = crate::ingest::parse_body(&mut buf, &mut buffers) {
        let mut ctx = crate::ingest::IngestContext::new(4096, 1_700_000_000_000, 7);
        if let Ok(pending) = crate::ingest::validate(&values, &mut ctx) {
            for p in pending {
                let mut full = b"{\"seq\":1,".to_vec();
                full.extend_from_slice(&p.json_tail);
                // What ingest stores must be valid JSON.
                let mut b2 = simd_json::Buffers::default();
                assert!(simd_json::to_borrowed_value_with_buffers(&mut full, &mut b2).is_ok());
            }
        }
    };
}
