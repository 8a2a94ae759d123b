//! Numbers simd-json cannot hold, made parseable without losing them.
//!
//! JSON puts no bound on a number, but simd-json's tape does: an integer beyond
//! `i64`/`u64`, or a float that rounds to infinity, fails the whole parse with
//! `InvalidNumber`. SPEC §2 keeps every field the server does not interpret verbatim,
//! so such a number inside `data` is valid input and must be stored as sent.
//!
//! [`mask_out_of_range`] is the cold path for that: after a parse failed on a number,
//! it overwrites each out-of-range number token with `0` and spaces (JSON whitespace),
//! so the buffer parses and every offset stays where it was. The caller remembers the
//! masked ranges and reads the original bytes from its copy of the input; the
//! placeholder itself must never be stored or interpreted.

use super::scan::{is_ws, string_end, Number};

/// Whether simd-json (0.19, default features) refuses this number token: an integer
/// above `u64::MAX` or below `i64::MIN`, or a float whose nearest `f64` is infinite.
/// Tiny floats (`1e-999999`) are not refused: they round to zero.
pub fn out_of_range(n: &Number<'_>) -> bool {
    if n.is_integer() {
        match n.raw().strip_prefix('-') {
            Some(_) => n.raw().parse::<i64>().is_err(),
            None => n.raw().parse::<u64>().is_err(),
        }
    } else {
        n.as_f64().is_infinite()
    }
}

/// Replaces every out-of-range number token in `buf` (outside strings) by `0` padded
/// with spaces to the token's length, and appends each token's `(offset, len)` to
/// `masked`. Total on any bytes: a token that is not a JSON number (or runs into other bytes), or an unterminated
/// string, is left alone (the parse that follows reports it).
pub fn mask_out_of_range(buf: &mut [u8], masked: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while let Some(&b) = buf.get(i) {
        match b {
            b'"' => match string_end(buf, i) {
                Some(end) => i = end,
                None => return,
            },
            b'-' | b'0'..=b'9' => {
                let len = buf.get(i..).map_or(0, |rest| {
                    rest.iter()
                        .take_while(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                        .count()
                });
                let token = buf.get(i..i + len).unwrap_or_default();
                let ends = buf
                    .get(i + len)
                    .is_none_or(|c| matches!(c, b',' | b']' | b'}' | b':') || is_ws(*c));
                if ends && Number::parse(token).is_some_and(|n| out_of_range(&n)) {
                    if let Some(t) = buf.get_mut(i..i + len) {
                        t.fill(b' ');
                        if let Some(first) = t.first_mut() {
                            *first = b'0';
                        }
                    }
                    masked.push((i, len));
                }
                i += len.max(1);
            }
            _ => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(doc: &str) -> (String, Vec<(usize, usize)>) {
        let mut buf = doc.as_bytes().to_vec();
        let mut masked = Vec::new();
        mask_out_of_range(&mut buf, &mut masked);
        (String::from_utf8(buf).unwrap(), masked)
    }

    /// A document, what masking makes of it, and the `(offset, len)` it reports.
    type Case = (&'static str, &'static str, &'static [(usize, usize)]);

    #[test]
    fn out_of_range_tokens_are_masked_in_place() {
        let cases: &[Case] = &[
            // In range: untouched, including the edges.
            (
                "[18446744073709551615,-9223372036854775808,1.7976931348623157e308,1e-999999,-1e-999999,0e999999]",
                "[18446744073709551615,-9223372036854775808,1.7976931348623157e308,1e-999999,-1e-999999,0e999999]",
                &[],
            ),
            ("18446744073709551616", "0                   ", &[(0, 20)]),
            ("-9223372036854775809", "0                   ", &[(0, 20)]),
            ("[1e309,-1e999999]", "[0    ,0        ]", &[(1, 5), (7, 9)]),
            ("1.8e308", "0      ", &[(0, 7)]),
            (
                r#"{"a":{"b":[123456789012345678901234567890,{"c":1E+400}]}}"#,
                r#"{"a":{"b":[0                             ,{"c":0     }]}}"#,
                &[(11, 30), (47, 6)],
            ),
            // Inside strings (keys or values, escaped quotes too) nothing changes.
            (
                r#"{"1e999":"123456789012345678901234567890","q":"\"1e999"}"#,
                r#"{"1e999":"123456789012345678901234567890","q":"\"1e999"}"#,
                &[],
            ),
            // Not a JSON number: left for the parser to refuse.
            ("[01e999,1e999x,--1e999]", "[01e999,1e999x,--1e999]", &[]),
        ];
        for (doc, want, at) in cases {
            let (got, masked) = mask(doc);
            assert_eq!(got, *want, "{doc}");
            assert_eq!(masked, *at, "{doc}");
            if !at.is_empty() {
                let mut b = got.into_bytes();
                assert!(simd_json::to_tape(&mut b).is_ok(), "{doc}");
            }
        }
    }

    #[test]
    fn masks_what_simd_json_refuses() {
        for doc in [
            "1e309",
            "99999999999999999999",
            "-9223372036854775809",
            "[1.5e99999]",
        ] {
            let mut b = doc.as_bytes().to_vec();
            assert!(simd_json::to_tape(&mut b).is_err(), "{doc}");
            assert_eq!(mask(doc).1.len(), 1, "{doc}");
        }
    }

    #[test]
    fn nothing_panics_on_any_bytes() {
        let doc = r#"{"a":[1e999,"x\"9",-99999999999999999999],"b":1.}"#;
        for n in 0..=doc.len() {
            for tail in ["", "\"", "-", "e", "\\"] {
                let _ = mask(&format!("{}{tail}", &doc[..n]));
            }
        }
    }
}
