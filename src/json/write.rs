//! The one JSON writer: strings, numbers, keys and literals appended to a caller's
//! `Vec<u8>`.
//!
//! Every outbound byte of JSON the server makes by hand goes through here — server
//! messages, stored events, time-travel states — so escaping is decided in exactly one
//! place and the bytes of a value do not depend on which layer wrote it. Nothing here
//! allocates beyond growing `out`.

/// What a byte turns into inside a JSON string: 0 = itself, `b'u'` = `\u00XX`, else `\<c>`.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a quoted JSON string, escaping what JSON requires (control bytes, `"`,
/// `\`) and nothing else.
///
/// The string is first checked eight bytes at a time: nearly every string (ids, types,
/// names) needs no escaping and is then copied whole, with no per-byte branch. One that
/// does goes through the escaping loop, so the bytes are the same either way.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if is_clean(bytes) {
        out.extend_from_slice(bytes);
    } else {
        write_escaped(out, bytes);
    }
    out.push(b'"');
}

/// Whether no byte of `bytes` needs escaping, checked a word at a time.
fn is_clean(bytes: &[u8]) -> bool {
    let word = |w: &[u8]| u64::from_le_bytes(<[u8; 8]>::try_from(w).unwrap_or([0; 8]));
    match bytes.len().checked_sub(8) {
        Some(last) => {
            let mut i = 0;
            let mut hit = false;
            while let Some(w) = bytes.get(i..i + 8) {
                hit |= needs_escape(word(w));
                i += 8;
            }
            // The tail as one word that overlaps the last full one.
            !hit && !bytes.get(last..).is_some_and(|w| needs_escape(word(w)))
        }
        None => {
            // Fewer than 8 bytes: gather them into one word without a byte loop, from
            // (overlapping) 4-byte halves or, below 4, the first, middle and last byte.
            // Unfilled lanes are spaces, which never need escaping.
            let n = bytes.len();
            let w = if n >= 4 {
                let half = |w: Option<&[u8]>| {
                    u64::from(u32::from_le_bytes(
                        w.and_then(|w| <[u8; 4]>::try_from(w).ok())
                            .unwrap_or([0; 4]),
                    ))
                };
                half(bytes.get(..4)) | (half(bytes.get(n - 4..)) << 32)
            } else {
                let at = |i: usize| u64::from(bytes.get(i).copied().unwrap_or(b' '));
                (0x2020_2020_2020_2020 & !0xff_ffff)
                    | at(0)
                    | (at(n / 2) << 8)
                    | (at(n.wrapping_sub(1)) << 16)
            };
            !needs_escape(w)
        }
    }
}

/// Whether any byte of the word is below 0x20, `"` or `\\` — the bytes JSON escapes.
/// Uses the exact "some byte is zero / below n" word tests (valid for n <= 0x80).
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    let zero = |w: u64| w.wrapping_sub(ONES) & !w;
    let hits = (w.wrapping_sub(ONES * 0x20) & !w)
        | zero(w ^ (ONES * u64::from(b'"')))
        | zero(w ^ (ONES * u64::from(b'\\')));
    hits & HIGH != 0
}

/// The inside of a JSON string (no quotes), escaped. Runs of plain bytes are copied in
/// one go; multi-byte UTF-8 sequences pass through untouched because none of their
/// bytes is below 0x80.
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            continue;
        }
        if start < i {
            out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        }
        if esc == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', esc]);
        }
        start = i + 1;
    }
    if start < bytes.len() {
        out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    }
}

/// Writes the decimal digits of `v` at the end of `buf` (20 bytes always suffice) and
/// returns where they start. By hand: the formatting machinery costs more than the copy
/// the digits are for.
pub fn u64_digits(mut v: u64, buf: &mut [u8]) -> usize {
    let mut i = buf.len();
    while let Some(d) = i.checked_sub(1).and_then(|at| buf.get_mut(at)) {
        i -= 1;
        *d = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    i
}

/// Appends a decimal `u64`.
pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 20];
    let i = u64_digits(v, &mut buf);
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// Appends a decimal `i64`.
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

/// Appends an `f64` as a server message field (`latencyMs`): the shortest form that
/// reads back as the same value, integers without a fraction (`12`, not `12.0`). JSON
/// has no NaN or infinity, so those become `null`.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        use std::io::Write;
        // Writing into a Vec cannot fail; Display gives the shortest round-trip form.
        let _ = write!(out, "{v}");
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Appends an `f64` inside a stored event, exactly as simd-json (ryu) prints it: always
/// with a fraction or an exponent (`12.0`, `1e300`), so it reads back as a float, and so
/// an event's bytes are the same whether ingest kept them from the tape or a front end
/// built them from typed values. NaN and infinity become `null`.
pub fn write_f64_stored(out: &mut Vec<u8>, v: f64) {
    if !write_short_f64(out, v) {
        use simd_json::prelude::Writable;
        // Writing into a Vec cannot fail.
        let _ = simd_json::BorrowedValue::Static(simd_json::StaticNode::F64(v)).write(out);
    }
}

/// Writes the floats producers mostly send (durations, percentages: at most three
/// decimals, magnitude in 1e-3..1e12) exactly as ryu would, without ryu's general
/// algorithm; returns false, writing nothing, for any other value.
///
/// Why it matches: the k-decimal string of integer `n` denotes n/10^k, and both are
/// exact doubles, so IEEE division yields what parsing that string yields; when that is
/// `v` the string round-trips. Below 1e12 a double's round-trip interval is narrower
/// than 10^-3, so that string is the only k-decimal one, and trying k = 0, 1, 2, 3 in
/// order finds the fewest digits — ryu's choice. In this range ryu prints plain decimal
/// notation (`12.0`, `0.05`), as below.
fn write_short_f64(out: &mut Vec<u8>, v: f64) -> bool {
    let a = v.abs();
    if !(1e-3..1e12).contains(&a) {
        return false;
    }
    let mut scale = 1u64;
    for digits in 0..=3usize {
        // Truncating `+ 0.5` rounds a positive value to the nearest integer.
        let n = (a * scale as f64 + 0.5) as u64;
        if n as f64 / scale as f64 == a {
            if v < 0.0 {
                out.push(b'-');
            }
            write_u64(out, n / scale);
            out.push(b'.');
            if digits == 0 {
                out.push(b'0');
            } else {
                let mut frac = [b'0'; 3];
                let mut f = n % scale;
                for d in frac.iter_mut().take(digits).rev() {
                    *d = b'0' + (f % 10) as u8;
                    f /= 10;
                }
                out.extend_from_slice(frac.get(..digits).unwrap_or_default());
            }
            return true;
        }
        scale *= 10;
    }
    false
}

/// Appends `"key":` — keys passed here are our own ASCII names, never escaped.
#[inline]
pub fn key(out: &mut Vec<u8>, k: &str) {
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Appends `,"key":`.
#[inline]
pub fn next_key(out: &mut Vec<u8>, k: &str) {
    out.push(b',');
    key(out, k);
}

/// Appends `null`.
#[inline]
pub fn write_null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"null");
}

/// Appends `true` / `false`.
pub fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.extend_from_slice(if v { b"true" } else { b"false" });
}

/// Appends an optional integer, `null` when absent.
pub fn write_opt_i64(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        Some(v) => write_i64(out, v),
        None => write_null(out),
    }
}

/// Appends an optional integer, `null` when absent.
pub fn write_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => write_u64(out, v),
        None => write_null(out),
    }
}

/// Appends an optional string, `null` when absent.
pub fn write_opt_str(out: &mut Vec<u8>, v: Option<&str>) {
    match v {
        Some(v) => write_str(out, v),
        None => write_null(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simd_json::prelude::Writable;
    use simd_json::{BorrowedValue, StaticNode};

    fn s(v: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_what_json_requires_and_nothing_else() {
        let cases = [
            ("", r#""""#),
            ("plain", r#""plain""#),
            ("a\"b", r#""a\"b""#),
            ("a\\b", r#""a\\b""#),
            ("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#),
            ("\u{0}\u{1f}", r#""\u0000\u001f""#),
            ("\u{7f}é✓😀", "\"\u{7f}é✓😀\""),
            ("</script>", r#""</script>""#),
            (
                "a long string with a quote \" past eight",
                r#""a long string with a quote \" past eight""#,
            ),
        ];
        for (input, want) in cases {
            let got = s(input);
            assert_eq!(got, want, "{input:?}");
            let back: String = serde_json::from_str(&got).unwrap();
            assert_eq!(back, input);
            // serde_json is the reference escaper.
            assert_eq!(got, serde_json::to_string(input).unwrap(), "{input:?}");
        }
    }

    /// The word-at-a-time check must see a byte to escape at every offset of every
    /// length (full words, the overlapping tail, the short gathers).
    #[test]
    fn word_check_agrees_with_the_byte_loop() {
        let mut cases: Vec<String> = vec!["é\"x\u{1}".into(), "😀 ok".into(), String::new()];
        for len in 0..20 {
            for pos in 0..len {
                for c in ['\0', '\u{1f}', '"', '\\', ' ', '~', '\u{7f}', 'é', '\n'] {
                    let mut s: Vec<char> = vec!['a'; len];
                    s[pos] = c;
                    cases.push(s.into_iter().collect());
                }
            }
        }
        for s in cases {
            let (mut got, mut want) = (b"x".to_vec(), b"x\"".to_vec());
            write_str(&mut got, &s);
            write_escaped(&mut want, s.as_bytes());
            want.push(b'"');
            assert_eq!(got, want, "{s:?}");
        }
    }

    #[test]
    fn integers() {
        let mut out = Vec::new();
        for v in [0i64, 1, -1, 9, 10, 42, i64::MAX, i64::MIN] {
            out.clear();
            write_i64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
        for v in [0u64, 7, 10, 99, 1_000_001, u64::MAX] {
            out.clear();
            write_u64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
            let mut buf = [0u8; 20];
            let at = u64_digits(v, &mut buf);
            assert_eq!(&buf[at..], v.to_string().as_bytes());
        }
        // A buffer too short keeps the low digits and never panics.
        let mut buf = [0u8; 2];
        assert_eq!(u64_digits(12345, &mut buf), 0);
        assert_eq!(&buf, b"45");
    }

    #[test]
    fn literals_and_options() {
        let mut out = Vec::new();
        write_bool(&mut out, true);
        out.push(b' ');
        write_bool(&mut out, false);
        out.push(b' ');
        write_opt_i64(&mut out, None);
        out.push(b' ');
        write_opt_i64(&mut out, Some(-3));
        out.push(b' ');
        write_opt_u64(&mut out, Some(3));
        out.push(b' ');
        write_opt_str(&mut out, Some("a\""));
        out.push(b' ');
        write_opt_str(&mut out, None);
        out.push(b' ');
        key(&mut out, "k");
        next_key(&mut out, "n");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"true false null -3 3 "a\"" null "k":,"n":"#
        );
    }

    #[test]
    fn message_floats() {
        let mut out = Vec::new();
        for (v, want) in [
            (f64::NAN, "null"),
            (f64::INFINITY, "null"),
            (1.5, "1.5"),
            (12.0, "12"),
            (-0.25, "-0.25"),
        ] {
            out.clear();
            write_f64(&mut out, v);
            assert_eq!(out, want.as_bytes(), "{v}");
        }
    }

    #[test]
    fn stored_floats_match_ryu() {
        let mut vals = vec![
            0.001,
            0.002,
            0.01,
            0.1,
            0.5,
            1.0,
            2.5,
            12.25,
            99.999,
            1e11,
            999_999_999_999.0,
            1e300,
            5e-324,
            -0.0,
            0.0,
            1e-7,
        ];
        // A spread of magnitudes and decimal counts, plus their float neighbours.
        let mut x = 0.000_7_f64;
        while x < 2e12 {
            for d in [1.0, 10.0, 100.0, 1000.0, 10000.0] {
                let r = (x * d).round() / d;
                vals.extend([
                    r,
                    -r,
                    f64::from_bits(r.to_bits() + 1),
                    f64::from_bits(r.to_bits().saturating_sub(1)),
                ]);
            }
            x = x * 1.37 + 0.0013;
        }
        for v in vals {
            let want = BorrowedValue::Static(StaticNode::F64(v)).encode();
            let mut got = Vec::new();
            write_f64_stored(&mut got, v);
            assert_eq!(String::from_utf8(got).unwrap(), want, "{v:?}");
        }
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut got = Vec::new();
            write_f64_stored(&mut got, v);
            assert_eq!(got, b"null", "{v:?}");
        }
    }
}
