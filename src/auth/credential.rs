//! Finding the credential in an upgrade request: `Authorization: Bearer`, the configured
//! API-key header, or `?token=` (browsers can't set headers on a WebSocket).
//!
//! Works on plain values (lower-cased header names, the raw query string) so it stays a
//! pure function the HTTP layer calls; it never judges the credential, only finds it.

use std::borrow::Cow;

/// The first credential found, in this order: `Authorization: Bearer <x>` (scheme
/// case-insensitive), the `api_key_header` header (name compared case-insensitively),
/// then the first `token=` query parameter (percent- and `+`-decoded as a browser's
/// `URLSearchParams` encodes it). Values are trimmed of surrounding whitespace. A
/// present-but-empty value is returned as `""` so it is refused (401) rather than
/// silently treated as "no credential".
pub fn extract_credential<'a>(
    headers: &'a [(String, String)],
    query: &'a str,
    api_key_header: &str,
) -> Option<Cow<'a, str>> {
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("authorization") {
            let value = value.trim();
            let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
            if scheme.eq_ignore_ascii_case("bearer") {
                return Some(Cow::Borrowed(rest.trim()));
            }
        }
    }
    if !api_key_header.is_empty() {
        if let Some((_, v)) = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(api_key_header))
        {
            return Some(Cow::Borrowed(v.trim()));
        }
    }
    let query = query.strip_prefix('?').unwrap_or(query);
    query
        .split('&')
        .find_map(|pair| {
            pair.strip_prefix("token=")
                .or((pair == "token").then_some(""))
        })
        .map(percent_decode)
}

/// `%XX` and `+` decoding. Malformed escapes or a non-UTF-8 result give the raw text
/// back: it will then fail authentication, which is the right outcome for garbage.
fn percent_decode(raw: &str) -> Cow<'_, str> {
    if !raw.contains(['%', '+']) {
        return Cow::Borrowed(raw);
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = |j: usize| bytes.get(j).and_then(|&c| char::from(c).to_digit(16));
                match (hex(i + 1), hex(i + 2)) {
                    (Some(hi), Some(lo)) => out.push(u8::try_from(hi * 16 + lo).unwrap_or(0)),
                    _ => return Cow::Borrowed(raw),
                }
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .unwrap_or(Cow::Borrowed(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn extraction_table() {
        /// (headers, query, expected credential)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<&'a str>);
        let cases: &[Case<'_>] = &[
            (
                &[("authorization", "Bearer abc.def.ghi")],
                "",
                Some("abc.def.ghi"),
            ),
            (&[("authorization", "bearer   tok  ")], "", Some("tok")),
            (&[("authorization", "Bearer")], "", Some("")),
            (&[("authorization", "Basic dXNlcjpwdw==")], "", None),
            (
                &[("authorization", "Basic x"), ("x-api-key", "k1")],
                "",
                Some("k1"),
            ),
            (&[("x-api-key", " k1 ")], "", Some("k1")),
            (&[("X-Api-Key", "k1")], "", Some("k1")),
            (
                &[("authorization", "Bearer b"), ("x-api-key", "k")],
                "token=q",
                Some("b"),
            ),
            (&[("x-api-key", "k")], "token=q", Some("k")),
            (&[], "token=q", Some("q")),
            (
                &[],
                "?session=s&token=a%2Eb%2Bc+d&token=second",
                Some("a.b+c d"),
            ),
            (&[], "tokens=x&xtoken=y", None),
            (&[], "token", Some("")),
            (&[], "token=%zz", Some("%zz")),
            (&[], "token=%ff", Some("%ff")),
            (&[], "token=%4", Some("%4")),
            (&[], "", None),
        ];
        for (headers, query, want) in cases {
            let headers_owned = h(headers);
            let got = extract_credential(&headers_owned, query, "x-api-key");
            assert_eq!(got.as_deref(), *want, "{headers:?} {query:?}");
        }
    }

    #[test]
    fn custom_header_name() {
        let headers = h(&[("x-tracecast-key", "k")]);
        assert_eq!(
            extract_credential(&headers, "", "X-Tracecast-Key").as_deref(),
            Some("k")
        );
        assert_eq!(
            extract_credential(&headers, "", "x-api-key").as_deref(),
            None
        );
    }
}
