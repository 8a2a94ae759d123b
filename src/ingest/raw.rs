//! Where each event of a parsed batch sits in the bytes the producer sent.
//!
//! SPEC §2 keeps every producer field verbatim, so an event written on one line can be
//! stored as its own bytes instead of being re-serialized from the tape: that halves
//! what validating costs (issue #3's append target). simd-json parses in place and
//! unescapes strings over the input, so the bytes are taken from a copy made before the
//! parse ([`super::JsonBuffers`] keeps it). The tape has no offsets, but every string it
//! holds points into the parsed buffer at the string's own position, so an event's
//! first key locates its `{`; its `}` is the last byte before the next event's `{` (or
//! the container's end), whitespace and a comma aside.
//!
//! Everything here is a cross-check, not an assumption: a byte that is not what the
//! grammar puts there, or an offset outside the copy, yields no span and that event is
//! re-serialized as before — the stored bytes are then compact, never wrong.

use simd_json::Node;

/// JSON's four whitespace bytes.
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The last non-whitespace byte before `end`, with its offset.
pub(super) fn last_before(raw: &[u8], end: usize) -> Option<(usize, u8)> {
    let head = raw.get(..end)?;
    head.iter()
        .rposition(|b| !is_ws(*b))
        .and_then(|i| Some((i, *head.get(i)?)))
}

/// The offset of `s` in the parsed buffer that started at address `base`, when `s`
/// points into it (simd-json's in-place strings do).
pub(super) fn offset_of(s: &str, base: usize, len: usize) -> Option<usize> {
    let off = (s.as_ptr() as usize).checked_sub(base)?;
    (off + s.len() <= len).then_some(off)
}

/// The offset of the `{` that opens the object at `nodes[at]`, found from its first key.
fn open_of(nodes: &[Node<'_>], at: usize, raw: &[u8], base: usize) -> Option<usize> {
    let Some(Node::Object { len, .. }) = nodes.get(at) else {
        return None;
    };
    if *len == 0 {
        return None;
    }
    let Some(Node::String(key)) = nodes.get(at + 1) else {
        return None;
    };
    let quote = offset_of(key, base, raw.len())?.checked_sub(1)?;
    if raw.get(quote) != Some(&b'"') {
        return None;
    }
    match last_before(raw, quote)? {
        (open, b'{') => Some(open),
        _ => None,
    }
}

/// Appends to `spans` each event's members — the bytes between its braces, trimmed —
/// as offsets into `raw`, or `None` for an event that must be re-serialized (not found,
/// or holding a control byte: a raw line break must not reach NDJSON history; simd-json
/// refuses them inside strings, so they are whitespace). `tail` is an offset whose last
/// non-whitespace byte before it is the last event's `}`. `controls` says whether `raw`
/// may hold control bytes at all; when it does not, events are not checked one by one.
pub(super) fn event_spans(
    nodes: &[Node<'_>],
    starts: &[usize],
    raw: &[u8],
    base: usize,
    tail: usize,
    controls: bool,
    spans: &mut Vec<Option<(usize, usize)>>,
) {
    let from = spans.len();
    let mut close_limit = Some(tail);
    // Walk backwards: each event's `}` comes from where the following one opens.
    for &start in starts.iter().rev() {
        let close = close_limit.and_then(|end| match last_before(raw, end) {
            Some((c, b'}')) => Some(c),
            _ => None,
        });
        let open = open_of(nodes, start, raw, base);
        let span = match (open, close) {
            (Some(o), Some(c)) if o < c => trimmed(raw, o + 1, c, controls),
            _ => None,
        };
        spans.push(span);
        // The previous event ends at the comma before this one's `{`.
        close_limit = open.and_then(|o| match last_before(raw, o) {
            Some((comma, b',')) => Some(comma),
            _ => None,
        });
    }
    if let Some(added) = spans.get_mut(from..) {
        added.reverse();
    }
}

/// `raw[from..to]` without surrounding whitespace, unless it holds a control byte.
fn trimmed(raw: &[u8], from: usize, to: usize, controls: bool) -> Option<(usize, usize)> {
    let inner = raw.get(from..to)?;
    if controls && has_control(inner) {
        return None;
    }
    let lead = inner.iter().take_while(|b| **b == b' ').count();
    let trail = inner.iter().rev().take_while(|b| **b == b' ').count();
    (lead + trail < inner.len()).then(|| (from + lead, to - trail))
}

/// Whether any byte is below 0x20, eight bytes at a time ("some byte is below n", exact
/// for n <= 0x80), without an early exit so the loop stays branch-free.
pub(super) fn has_control(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let below = |w: u64| w.wrapping_sub(ONES * 0x20) & !w & (ONES * 0x80);
    let mut words = b.chunks_exact(8);
    let mut hits = 0;
    for w in words.by_ref() {
        hits |= below(u64::from_le_bytes(
            <[u8; 8]>::try_from(w).unwrap_or_default(),
        ));
    }
    hits != 0 || words.remainder().iter().any(|x| *x < 0x20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans_of(doc: &str) -> Vec<Option<String>> {
        let raw = doc.as_bytes().to_vec();
        let mut buf = raw.clone();
        let base = buf.as_ptr() as usize;
        let tape = simd_json::to_tape(&mut buf).unwrap();
        let nodes = tape.0;
        let (starts, tail) = match nodes.first() {
            Some(Node::Array { len, .. }) => {
                let mut s = Vec::new();
                let mut i = 1;
                for _ in 0..*len {
                    s.push(i);
                    i += crate::ingest::span(nodes.get(i));
                }
                (s, last_before(&raw, raw.len()).unwrap().0)
            }
            _ => (vec![0], raw.len()),
        };
        let mut spans = Vec::new();
        event_spans(&nodes, &starts, &raw, base, tail, true, &mut spans);
        spans
            .into_iter()
            .map(|s| s.map(|(a, b)| doc[a..b].to_string()))
            .collect()
    }

    #[test]
    fn finds_each_event_verbatim() {
        assert_eq!(
            spans_of(r#"[ {"a":1} , { "b" : "x\"}" } ,{"c":{"d":[1,{}]}}]"#),
            vec![
                Some(r#""a":1"#.into()),
                Some(r#""b" : "x\"}""#.into()),
                Some(r#""c":{"d":[1,{}]}"#.into()),
            ]
        );
        assert_eq!(
            spans_of(r#" {"t\u0079pe":"é","n":1e3} "#),
            vec![Some(r#""t\u0079pe":"é","n":1e3"#.into())]
        );
    }

    #[test]
    fn line_breaks_and_odd_shapes_fall_back() {
        assert_eq!(
            spans_of("[{\"a\":1},{\n\"b\":2}]"),
            vec![Some("\"a\":1".into()), None]
        );
        assert_eq!(spans_of("[{\"a\":\t1}]"), vec![None]);
        // An empty object has no key to find it by; neither can its neighbour end.
        assert_eq!(spans_of(r#"[{"a":1},{}]"#), vec![None, None]);
        assert_eq!(
            spans_of(r#"[{},{"a":1}]"#),
            vec![None, Some(r#""a":1"#.into())]
        );
        assert_eq!(spans_of("[1]"), vec![None]);
        // A control byte anywhere, in a chunk or the remainder.
        for at in [0, 7, 8, 31, 32, 40, 63, 64, 70] {
            let mut s = vec![b' '; 71];
            s[at] = b'\n';
            assert!(has_control(&s), "{at}");
        }
        assert!(!has_control(&[b' '; 71]));
    }
}
