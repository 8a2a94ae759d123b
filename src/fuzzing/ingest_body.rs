//! Fuzz body for HTTP ingest: body parsing (object, array, NDJSON) then validation.

/// Feeds arbitrary bytes to the parser and validator; must never panic.
pub fn run(data: &[u8]) {
    let mut buf = data.to_vec();
    let mut bufs = crate::ingest::JsonBuffers::default();
    if let Ok(mut values) = crate::ingest::parse_body(&mut buf, &mut bufs) {
        same_either_way(&mut values);
    };
}

/// Validates a batch as it is (members kept as sent where located), then again written
/// from the tape: same verdict, same stored values — unless one form is over the size
/// limit and the other not (compact bytes can be fewer, `"\u0041"` → `"A"`, or more,
/// `1E5` → `100000.0`); validation errors come before the size check, so the other form
/// then fails no earlier, or not at all.
pub(crate) fn same_either_way(values: &mut crate::ingest::Events<'_>) {
    let mut ctx = crate::ingest::IngestContext::new(4096, 1_700_000_000_000, 7);
    let kept = crate::ingest::validate(values, &mut ctx);
    values.compact();
    let mut ctx = crate::ingest::IngestContext::new(4096, 1_700_000_000_000, 7);
    let written = crate::ingest::validate(values, &mut ctx);
    let too_big =
        |e: &crate::ingest::IngestError| e.field.is_none() && e.message.contains("max_event_bytes");
    match (kept, written) {
        (Ok(kept), Ok(written)) => {
            assert_eq!(kept.len(), written.len());
            for (k, w) in kept.iter().zip(&written) {
                // What ingest stores must be valid JSON, and as sent means as parsed.
                assert_eq!(stored(k), stored(w));
            }
        }
        (Err(k), Err(w)) => match (too_big(&k), too_big(&w)) {
            (false, false) => assert_eq!((k.index, k.field), (w.index, w.field)),
            (true, false) => assert!(w.index >= k.index, "{k} / {w}"),
            (false, true) => assert!(k.index >= w.index, "{k} / {w}"),
            (true, true) => {}
        },
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => assert!(too_big(&e), "only one form refused: {e}"),
    }
}

/// A stored event, parsed back to a tape (not a map: an object with a duplicate key is
/// not equal to itself as a map, and key order matters here).
fn stored(p: &crate::store::Pending) -> Vec<Value> {
    let mut full = b"{\"seq\":1,".to_vec();
    full.extend_from_slice(&p.json_tail);
    let tape = match simd_json::to_tape(&mut full) {
        Ok(t) => t,
        Err(e) => panic!(
            "stored event is not JSON ({e}): {}",
            String::from_utf8_lossy(&full)
        ),
    };
    tape.0.iter().map(Value::of).collect()
}

/// One tape node, owned, with numbers compared by value (`1e3` and `1000.0` are the
/// same float; an integer is never equal to a float).
#[derive(Debug, PartialEq)]
enum Value {
    Str(String),
    Int(i128),
    Float(f64),
    Bool(bool),
    Null,
    Object(usize),
    Array(usize),
}

impl Value {
    fn of(n: &simd_json::Node<'_>) -> Value {
        use simd_json::{Node, StaticNode};
        match *n {
            Node::String(s) => Value::Str(s.to_string()),
            Node::Object { len, .. } => Value::Object(len),
            Node::Array { len, .. } => Value::Array(len),
            Node::Static(StaticNode::I64(v)) => Value::Int(i128::from(v)),
            Node::Static(StaticNode::U64(v)) => Value::Int(i128::from(v)),
            Node::Static(StaticNode::F64(v)) => Value::Float(v),
            Node::Static(StaticNode::Bool(b)) => Value::Bool(b),
            Node::Static(StaticNode::Null) => Value::Null,
        }
    }
}
