//! Request heads: `httparse` does the byte-level work; this file turns its borrowed view
//! into an owned [`Request`] and applies the framing rules that keep one port safe to
//! share (a body length everyone agrees on, no request smuggling through
//! `Content-Length` + `Transfer-Encoding`).

use super::{HttpError, Status, MAX_HEADERS};

/// Request methods tracecast routes on; the rest are answered 405.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET (pages, health, the WebSocket upgrade).
    Get,
    /// POST (ingest).
    Post,
    /// HEAD (like GET, no body).
    Head,
    /// Anything else.
    Other,
}

/// An owned, validated request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// Path of the request target, without the query (raw, not percent-decoded).
    pub path: String,
    /// The query string without `?` (empty when absent).
    pub query: String,
    /// Minor HTTP version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Bytes of the head including the blank line; the body starts there.
    pub head_len: usize,
    /// The agreed `Content-Length`, if any.
    pub content_length: Option<usize>,
    /// The body uses the chunked transfer coding.
    pub chunked: bool,
}

impl Request {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header, in order (for list headers sent on several lines).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Some `name` header lists `token` (comma-separated, case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers_named(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// `Connection` lists `upgrade` and `Upgrade` names `websocket`.
    pub fn is_upgrade(&self) -> bool {
        self.has_token("connection", "upgrade") && self.has_token("upgrade", "websocket")
    }

    /// The connection may carry another request after this one.
    pub fn keep_alive(&self) -> bool {
        if self.has_token("connection", "close") {
            false
        } else if self.version == 0 {
            self.has_token("connection", "keep-alive")
        } else {
            true
        }
    }

    /// A query parameter, percent-decoded (see [`query_param`]).
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_param(&self.query, name)
    }
}

/// Parses the request head at the front of `buf`.
///
/// `Partial` means the head is not complete yet; once `buf` holds more than `max_head`
/// bytes without a complete head, the answer is [`HttpError::HeadTooLarge`].
pub fn parse_head(buf: &[u8], max_head: usize) -> Result<Status<Request>, HttpError> {
    let window = buf.get(..max_head).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            return Err(HttpError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(Status::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(httparse::Error::Version) => {
            return Err(HttpError::BadHead("unsupported HTTP version"))
        }
        Err(_) => return Err(HttpError::BadHead("malformed request head")),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HttpError::BadHead("malformed request line"));
    };
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "HEAD" => Method::Head,
        _ => Method::Other,
    };
    if !target.starts_with('/') {
        return Err(HttpError::BadHead("request target must be a path"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value).trim().to_owned();
            (h.name.to_ascii_lowercase(), value)
        })
        .collect();
    let mut request = Request {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        version,
        headers,
        head_len,
        content_length: None,
        chunked: false,
    };
    request.content_length = content_length(&request)?;
    request.chunked = transfer_chunked(&request)?;
    if request.chunked && request.content_length.is_some() {
        // RFC 9112 §6.1: a request with both is a smuggling attempt until proven otherwise.
        return Err(HttpError::BadLength(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if version == 1 && request.header("host").is_none() {
        return Err(HttpError::BadHead("missing Host header"));
    }
    Ok(Status::Complete(request))
}

/// The one `Content-Length` all its lines and list members agree on.
fn content_length(req: &Request) -> Result<Option<usize>, HttpError> {
    let mut agreed: Option<usize> = None;
    for member in req
        .headers_named("content-length")
        .flat_map(|v| v.split(','))
    {
        let member = member.trim();
        if member.is_empty() || !member.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HttpError::BadLength("invalid Content-Length"));
        }
        let n: usize = member.parse().map_err(|_| HttpError::BodyTooLarge)?;
        match agreed {
            Some(prev) if prev != n => {
                return Err(HttpError::BadLength("conflicting Content-Length"))
            }
            _ => agreed = Some(n),
        }
    }
    Ok(agreed)
}

/// Whether the body is chunked; any other coding is unsupported.
fn transfer_chunked(req: &Request) -> Result<bool, HttpError> {
    let codings: Vec<&str> = req
        .headers_named("transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    match codings.as_slice() {
        [] => Ok(false),
        [only] if only.eq_ignore_ascii_case("chunked") => Ok(true),
        _ if req.version == 0 => Err(HttpError::BadHead("Transfer-Encoding in HTTP/1.0")),
        _ => Err(HttpError::UnsupportedEncoding),
    }
}

/// The first value of `name` in a query string (`a=1&b=2`), percent-decoded with `+` as a
/// space. Malformed escapes are kept literally; invalid UTF-8 becomes U+FFFD.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1)
                    .and_then(|h| hex_val(*h))
                    .zip(bytes.get(i + 2).and_then(|l| hex_val(*l)));
                if let Some((h, l)) = hex {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(head: &str) -> Request {
        match parse_head(head.as_bytes(), 4096) {
            Ok(Status::Complete(r)) => r,
            other => panic!("{other:?}: {head:?}"),
        }
    }

    fn status(head: &str, max: usize) -> Result<bool, u16> {
        match parse_head(head.as_bytes(), max) {
            Ok(Status::Complete(_)) => Ok(true),
            Ok(Status::Partial) => Ok(false),
            Err(e) => Err(e.status()),
        }
    }

    #[test]
    fn parses_a_full_head() {
        let raw = "POST /ingest?x=1&y=%20z HTTP/1.1\r\nHost: h\r\nX-API-Key: k\r\nContent-Length: 5\r\n\r\nhello";
        let r = complete(raw);
        assert_eq!(r.method, Method::Post);
        assert_eq!(
            (r.path.as_str(), r.query.as_str()),
            ("/ingest", "x=1&y=%20z")
        );
        assert_eq!(r.head_len, raw.len() - 5);
        assert_eq!(r.content_length, Some(5));
        assert!(!r.chunked);
        assert_eq!(r.header("x-api-key"), Some("k"));
        assert_eq!(r.header("X-Api-KEY"), Some("k"));
        assert_eq!(r.headers[1].0, "x-api-key");
        assert_eq!(r.query_param("y").as_deref(), Some(" z"));
        assert!(r.keep_alive());
    }

    #[test]
    fn partial_and_limits_table() {
        let full = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(status(&full[..cut], 4096), Ok(false), "cut {cut}");
        }
        let cases: &[(&str, &str, usize, Result<bool, u16>)] = &[
            ("complete", full, 4096, Ok(true)),
            ("exactly max", full, full.len(), Ok(true)),
            ("over max", full, full.len() - 1, Err(431)),
            ("partial under max", "GET / HTTP/1.1\r\nHost: h\r\n", 100, Ok(false)),
            ("partial over max", "GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 20, Err(431)),
            ("bad request line", "GET\r\n\r\n", 4096, Err(400)),
            ("garbage", "\x00\x01\x02\r\n\r\n", 4096, Err(400)),
            ("bad version", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 4096, Err(400)),
            ("absolute target", "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 4096, Err(400)),
            ("missing host 1.1", "GET / HTTP/1.1\r\n\r\n", 4096, Err(400)),
            ("no host 1.0 ok", "GET / HTTP/1.0\r\n\r\n", 4096, Ok(true)),
            ("bad header name", "GET / HTTP/1.1\r\nHo st: h\r\n\r\n", 4096, Err(400)),
            ("cl ok", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n", 4096, Ok(true)),
            ("cl repeated same", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 4096, Ok(true)),
            ("cl list same", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\n", 4096, Ok(true)),
            ("cl conflict", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 4096, Err(400)),
            ("cl negative", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 4096, Err(400)),
            ("cl plus sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n", 4096, Err(400)),
            ("cl huge", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", 4096, Err(413)),
            ("chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 4096, Ok(true)),
            ("gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 4096, Err(501)),
            ("te and cl", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 4096, Err(400)),
        ];
        for (name, head, max, want) in cases {
            assert_eq!(status(head, *max), *want, "{name}");
        }
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        assert_eq!(
            status(&format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n"), 1 << 20),
            Err(431)
        );
    }

    #[test]
    fn upgrade_and_keep_alive() {
        let r = complete("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, UPGRADE\r\nUpgrade: WebSocket\r\n\r\n");
        assert!(r.is_upgrade());
        assert_eq!(r.method, Method::Get);
        let r = complete(
            "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgraded\r\nUpgrade: websocket\r\n\r\n",
        );
        assert!(!r.is_upgrade());
        let r =
            complete("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n");
        assert!(!r.is_upgrade());
        assert!(!complete("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(!complete("GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(complete("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        assert_eq!(
            complete("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n").method,
            Method::Head
        );
        assert_eq!(
            complete("DELETE / HTTP/1.1\r\nHost: h\r\n\r\n").method,
            Method::Other
        );
    }

    #[test]
    fn query_params() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("token=abc&format=binary", "format", Some("binary")),
            ("token=abc&format=binary", "token", Some("abc")),
            ("a=1&a=2", "a", Some("1")),
            ("a", "a", Some("")),
            ("a=", "a", Some("")),
            ("", "a", None),
            ("b=1", "a", None),
            ("t=a%2Bb+c", "t", Some("a+b c")),
            ("t=%zz%4", "t", Some("%zz%4")),
            ("t=%ff", "t", Some("\u{fffd}")),
            ("%74oken=x", "token", Some("x")),
            ("t=%C3%A9", "t", Some("é")),
            ("t=a=b", "t", Some("a=b")),
        ];
        for (q, name, want) in cases {
            assert_eq!(query_param(q, name).as_deref(), *want, "{q} {name}");
        }
    }
}
