//! Small, allocation-free JSON writers shared by every outbound encoder.
//!
//! Server messages are written by hand into a caller's `Vec<u8>` rather than through
//! `serde`: the shapes are fixed, most of the bytes are copied verbatim (event JSON), and
//! the only thing that can go wrong is string escaping, which lives in exactly one place,
//! [`write_json_str`].

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

/// Appends `s` as a quoted JSON string. Runs of plain bytes are copied in one go, so the
/// common case (nothing to escape) is a scan plus one `memcpy`.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    write_json_str_content(out, s.as_bytes());
    out.push(b'"');
}

/// The inside of a JSON string (no quotes). `bytes` must be UTF-8; multi-byte sequences
/// pass through untouched because none of their bytes is below 0x80.
fn write_json_str_content(out: &mut Vec<u8>, bytes: &[u8]) {
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

/// Appends an `f64`; JSON has no NaN or infinity, so those become `null`.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        use std::io::Write;
        // Writing into a Vec cannot fail; Display gives the shortest round-trip form.
        let _ = write!(out, "{v}");
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Appends `"key":` — keys here are our own ASCII names, never escaped.
#[inline]
pub(crate) fn key(out: &mut Vec<u8>, k: &str) {
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Appends `,"key":`.
#[inline]
pub(crate) fn next_key(out: &mut Vec<u8>, k: &str) {
    out.push(b',');
    key(out, k);
}

/// Appends an optional integer, `null` when absent.
pub(crate) fn write_opt_i64(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        Some(v) => write_i64(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends an optional integer, `null` when absent.
pub(crate) fn write_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => write_u64(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends `true` / `false`.
pub(crate) fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.extend_from_slice(if v { b"true" } else { b"false" });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> String {
        let mut out = Vec::new();
        write_json_str(&mut out, v);
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
        ];
        for (input, want) in cases {
            let got = s(input);
            assert_eq!(got, want, "{input:?}");
            let back: String = serde_json::from_str(&got).unwrap();
            assert_eq!(back, input);
        }
    }

    #[test]
    fn numbers() {
        let mut out = Vec::new();
        for v in [0i64, 1, -1, 42, i64::MAX, i64::MIN] {
            out.clear();
            write_i64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
        out.clear();
        write_u64(&mut out, u64::MAX);
        assert_eq!(out, u64::MAX.to_string().as_bytes());
        out.clear();
        write_f64(&mut out, f64::NAN);
        assert_eq!(out, b"null");
        out.clear();
        write_f64(&mut out, 1.5);
        assert_eq!(out, b"1.5");
    }
}
