//! Which events keep their members as the producer sent them.
//!
//! SPEC §2 keeps every producer field verbatim, so an event whose bytes the parser
//! located ([`Events::object_bytes`]) can be stored as its own bytes instead of being
//! re-serialized from the tape: that halves what validating costs (issue #3's append
//! target). simd-json parses in place and unescapes strings over the input, so the bytes
//! come from the copy of the input [`crate::json::JsonBuffers`] keeps.
//!
//! Not every located event qualifies. Stored events are one line each (NDJSON history,
//! the log's readers), so an event spread over several lines — or holding any other
//! control byte between its tokens (simd-json refuses them inside strings) — is written
//! from the tape instead, compact. Either way the stored bytes are valid JSON meaning
//! what the producer sent; only their spacing differs.

use crate::json::Events;

/// Event `i`'s members as sent — the bytes between its braces, without the spaces around
/// them — when it can be stored that way: located, on one line, not empty.
pub(super) fn members_as_sent<'e>(events: &'e Events<'_>, i: usize) -> Option<&'e [u8]> {
    let object = events.object_bytes(i)?;
    let inner = object.get(1..object.len().checked_sub(1)?)?;
    if has_control(inner) {
        return None;
    }
    let lead = inner.iter().take_while(|b| **b == b' ').count();
    let trail = inner.iter().rev().take_while(|b| **b == b' ').count();
    inner
        .get(lead..inner.len().checked_sub(trail)?)
        .filter(|m| !m.is_empty())
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
    use crate::json::JsonBuffers;

    fn kept(doc: &str) -> Vec<Option<String>> {
        let mut bufs = JsonBuffers::default();
        let mut buf = doc.as_bytes().to_vec();
        let end = buf.len();
        let nodes = bufs.parse(&mut buf).unwrap();
        let events = bufs.array_events(nodes, 0, Some(end)).unwrap();
        (0..events.len())
            .map(|i| members_as_sent(&events, i).map(|m| String::from_utf8_lossy(m).into_owned()))
            .collect()
    }

    #[test]
    fn one_line_events_are_kept_as_sent() {
        assert_eq!(
            kept(r#"[ {"a":1} , {  "b" : "x\"}" } ,{"c":{"d":[1,{}]}}]"#),
            vec![
                Some(r#""a":1"#.into()),
                Some(r#""b" : "x\"}""#.into()),
                Some(r#""c":{"d":[1,{}]}"#.into()),
            ]
        );
    }

    #[test]
    fn line_breaks_and_odd_shapes_are_not() {
        assert_eq!(
            kept("[{\"a\":1},{\n\"b\":2}]"),
            vec![Some("\"a\":1".into()), None]
        );
        assert_eq!(kept("[{\"a\":\t1}]"), vec![None]);
        assert_eq!(kept("[{\"a\":1 \r}]"), vec![None]);
        assert_eq!(kept(r#"[{"a":1},{}]"#), vec![None, None]);
        assert_eq!(kept("[1]"), vec![None]);
    }

    #[test]
    fn control_bytes_are_found_anywhere() {
        for at in [0, 7, 8, 31, 32, 40, 63, 64, 70] {
            let mut s = vec![b' '; 71];
            s[at] = b'\n';
            assert!(has_control(&s), "{at}");
        }
        assert!(!has_control(&[b' '; 71]));
        assert!(!has_control(b""));
    }
}
