//! The WebSocket upgrade (RFC 6455 §4.2, RFC 7692 §5–7): from a parsed request head to
//! the 101 answer, or the HTTP error that refuses it.
//!
//! Besides validating the handshake, this picks the subscriber's wire format
//! (`tracecast.json` / `tracecast.bin`) and whether permessage-deflate is on. Deflate is only
//! accepted in the one shape the hub can share among subscribers: no context takeover in
//! either direction and the full 15-bit server window. An offer asking for anything else
//! is declined (the next offer, or none, is used) rather than failing the upgrade.

use base64::Engine as _;

use super::WireFormat;
use crate::http::{Method, Request, Response};

/// What the server allows at the upgrade (from its config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HandshakeOptions {
    /// `tracecast.bin` may be chosen (`binary_protocol`).
    pub allow_binary: bool,
    /// permessage-deflate may be negotiated (`compression_enabled`).
    pub deflate: bool,
}

/// An accepted upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// The subscriber's wire format.
    pub format: WireFormat,
    /// permessage-deflate is on (no context takeover either way): the client may send
    /// compressed messages.
    pub deflate: bool,
    /// The server compresses what it sends. False when deflate is off, and when the
    /// client limited the server's window below the 15 bits of the frames every
    /// subscriber shares: then everything goes out uncompressed (RSV1 clear), which
    /// RFC 7692 §6 allows message by message.
    pub compress: bool,
    /// The complete `101 Switching Protocols` response to write.
    pub response: Vec<u8>,
}

/// Why an upgrade was refused; each maps to an HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Upgrade attempted with a method other than GET (405).
    NotGet,
    /// `Connection: upgrade` / `Upgrade: websocket` missing (426).
    NotUpgrade,
    /// `Sec-WebSocket-Version` missing or not 13 (426 with `Sec-WebSocket-Version: 13`).
    BadVersion,
    /// `Sec-WebSocket-Key` missing or not base64 of 16 bytes (400).
    BadKey,
}

impl HandshakeError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::NotGet => 405,
            HandshakeError::NotUpgrade | HandshakeError::BadVersion => 426,
            HandshakeError::BadKey => 400,
        }
    }

    /// A message for the client.
    pub fn message(&self) -> &'static str {
        match self {
            HandshakeError::NotGet => "the WebSocket upgrade needs GET",
            HandshakeError::NotUpgrade => "this endpoint needs a WebSocket upgrade",
            HandshakeError::BadVersion => "only WebSocket version 13 is supported",
            HandshakeError::BadKey => "missing or invalid Sec-WebSocket-Key",
        }
    }

    /// The full refusal, with the headers RFC 6455 asks for.
    pub fn to_response(&self) -> Response {
        let r = Response::error(self.status(), self.message()).close();
        match self {
            HandshakeError::NotGet => r.header("Allow", "GET"),
            HandshakeError::NotUpgrade => r.header("Upgrade", "websocket"),
            HandshakeError::BadVersion => r.header("Sec-WebSocket-Version", "13"),
            HandshakeError::BadKey => r,
        }
    }
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "websocket handshake {}: {}",
            self.status(),
            self.message()
        )
    }
}

impl std::error::Error for HandshakeError {}

/// Validates the upgrade request and builds the 101 answer.
pub fn negotiate(req: &Request, opts: &HandshakeOptions) -> Result<Upgrade, HandshakeError> {
    if req.method != Method::Get {
        return Err(HandshakeError::NotGet);
    }
    if !req.is_upgrade() {
        return Err(HandshakeError::NotUpgrade);
    }
    if req.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(HandshakeError::BadVersion);
    }
    let key = req
        .header("sec-websocket-key")
        .map(str::trim)
        .ok_or(HandshakeError::BadKey)?;
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return Err(HandshakeError::BadKey),
    }
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());

    let (format, echo_protocol) = choose_format(req, opts.allow_binary);
    let extension = if opts.deflate {
        negotiate_deflate(req)
    } else {
        None
    };

    let mut response = Response::new(101)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", &accept);
    if echo_protocol {
        response = response.header("Sec-WebSocket-Protocol", format.subprotocol());
    }
    if let Some(ext) = &extension {
        response = response.header("Sec-WebSocket-Extensions", &ext.answer);
    }
    Ok(Upgrade {
        format,
        deflate: extension.is_some(),
        compress: extension.as_ref().is_some_and(|e| e.compress),
        response: response.to_bytes(),
    })
}

/// The wire format, and whether the client offered its name (only then is it echoed:
/// a client must not receive a subprotocol it did not offer).
fn choose_format(req: &Request, allow_binary: bool) -> (WireFormat, bool) {
    let offered = req
        .headers_named("sec-websocket-protocol")
        .flat_map(|v| v.split(','))
        .map(str::trim);
    // The client lists protocols in its order of preference.
    for name in offered {
        if name == WireFormat::Binary.subprotocol() && allow_binary {
            return (WireFormat::Binary, true);
        }
        if name == WireFormat::Json.subprotocol() {
            return (WireFormat::Json, true);
        }
    }
    let asks_binary = req.query_param("format").is_some_and(|f| f == "binary");
    if asks_binary && allow_binary {
        (WireFormat::Binary, false)
    } else {
        (WireFormat::Json, false)
    }
}

/// An accepted permessage-deflate offer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Deflate {
    /// The `Sec-WebSocket-Extensions` answer.
    answer: String,
    /// The server may compress with its full window (see [`Upgrade::compress`]).
    compress: bool,
}

/// The first acceptable permessage-deflate offer that lets the server compress, else the
/// first acceptable one at all.
fn negotiate_deflate(req: &Request) -> Option<Deflate> {
    let mut fallback = None;
    for offer in req
        .headers_named("sec-websocket-extensions")
        .flat_map(|v| v.split(','))
    {
        match accept_offer(offer) {
            Some(d) if d.compress => return Some(d),
            Some(d) => {
                fallback.get_or_insert(d);
            }
            None => {}
        }
    }
    fallback
}

/// One offer (`permessage-deflate; p1; p2=v`), accepted if we can honour every parameter.
fn accept_offer(offer: &str) -> Option<Deflate> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut seen: Vec<String> = Vec::new();
    let mut server_window = None;
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        let name = name.to_ascii_lowercase();
        // RFC 7692 §7: a parameter given twice makes the offer invalid.
        if seen.contains(&name) {
            return None;
        }
        match (name.as_str(), value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {}
            // Shared frames are compressed once with a 15-bit window. A smaller server
            // window is honoured by never compressing for this client (RFC 7692 §6 lets
            // any message go uncompressed); it may still send compressed messages.
            ("server_max_window_bits", Some(v)) => server_window = Some(window_bits(v)?),
            ("client_max_window_bits", None) => {}
            // Our inflater keeps a full window, so any client window is fine.
            ("client_max_window_bits", Some(v)) if window_bits(v).is_some() => {}
            _ => return None,
        }
        seen.push(name);
    }
    let mut answer =
        String::from("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    if let Some(bits) = server_window {
        answer.push_str(&format!("; server_max_window_bits={bits}"));
    }
    Some(Deflate {
        answer,
        compress: server_window.is_none_or(|b| b == 15),
    })
}

/// A window-bits value: 8..=15 written as plain digits (no sign, no leading zero).
fn window_bits(v: &str) -> Option<u8> {
    if v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u8>().ok().filter(|n| (8..=15).contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_head, Status};

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn req(extra: &str, target: &str) -> Request {
        let head = format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n{extra}\r\n"
        );
        match parse_head(head.as_bytes(), 8192) {
            Ok(Status::Complete(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn ok_req(extra: &str) -> Request {
        req(
            &format!("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}"),
            "/ws",
        )
    }

    const ALL: HandshakeOptions = HandshakeOptions {
        allow_binary: true,
        deflate: true,
    };

    fn text(u: &Upgrade) -> String {
        String::from_utf8(u.response.clone()).unwrap()
    }

    #[test]
    fn rfc6455_sample_accept_key() {
        let u = negotiate(&ok_req(""), &ALL).unwrap();
        let t = text(&u);
        assert!(t.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{t}");
        assert!(t.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(!t.contains("Content-Length"));
        assert!(!t.contains("Sec-WebSocket-Protocol"));
        assert!(!t.contains("Sec-WebSocket-Extensions"));
        assert!(t.ends_with("\r\n\r\n"));
        assert_eq!((u.format, u.deflate), (WireFormat::Json, false));
    }

    #[test]
    fn refusals() {
        let cases: &[(&str, Request, u16)] = &[
            (
                "no version",
                req(&format!("Sec-WebSocket-Key: {KEY}\r\n"), "/"),
                426,
            ),
            (
                "version 8",
                req(
                    &format!("Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: {KEY}\r\n"),
                    "/",
                ),
                426,
            ),
            ("no key", req("Sec-WebSocket-Version: 13\r\n", "/"), 400),
            (
                "short key",
                req(
                    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAA\r\n",
                    "/",
                ),
                400,
            ),
            (
                "bad base64",
                req(
                    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!!!\r\n",
                    "/",
                ),
                400,
            ),
        ];
        for (name, r, status) in cases {
            let e = negotiate(r, &ALL).unwrap_err();
            assert_eq!(e.status(), *status, "{name}");
        }
        let e = negotiate(&req("Sec-WebSocket-Version: 9\r\n", "/"), &ALL).unwrap_err();
        let bytes = String::from_utf8(e.to_response().to_bytes()).unwrap();
        assert!(bytes.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(bytes.contains("Sec-WebSocket-Version: 13\r\n"));

        let mut post = ok_req("");
        post.method = Method::Post;
        assert_eq!(negotiate(&post, &ALL).unwrap_err(), HandshakeError::NotGet);
        let plain = match parse_head(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 1024) {
            Ok(Status::Complete(r)) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(negotiate(&plain, &ALL).unwrap_err().status(), 426);
    }

    #[test]
    fn subprotocol_choice() {
        let no_bin = HandshakeOptions {
            allow_binary: false,
            deflate: true,
        };
        let cases: &[(&str, &str, HandshakeOptions, WireFormat, Option<&str>)] = &[
            ("", "/ws", ALL, WireFormat::Json, None),
            (
                "Sec-WebSocket-Protocol: tracecast.bin\r\n",
                "/ws",
                ALL,
                WireFormat::Binary,
                Some("tracecast.bin"),
            ),
            (
                "Sec-WebSocket-Protocol: tracecast.json, tracecast.bin\r\n",
                "/ws",
                ALL,
                WireFormat::Json,
                Some("tracecast.json"),
            ),
            (
                "Sec-WebSocket-Protocol: other, tracecast.bin\r\n",
                "/ws",
                ALL,
                WireFormat::Binary,
                Some("tracecast.bin"),
            ),
            (
                "Sec-WebSocket-Protocol: tracecast.bin\r\n",
                "/ws",
                no_bin,
                WireFormat::Json,
                None,
            ),
            (
                "Sec-WebSocket-Protocol: tracecast.bin, tracecast.json\r\n",
                "/ws",
                no_bin,
                WireFormat::Json,
                Some("tracecast.json"),
            ),
            (
                "Sec-WebSocket-Protocol: chat\r\n",
                "/ws",
                ALL,
                WireFormat::Json,
                None,
            ),
            ("", "/ws?format=binary", ALL, WireFormat::Binary, None),
            (
                "",
                "/ws?token=a&format=binary",
                no_bin,
                WireFormat::Json,
                None,
            ),
            (
                "Sec-WebSocket-Protocol: tracecast.json\r\n",
                "/ws?format=binary",
                ALL,
                WireFormat::Json,
                Some("tracecast.json"),
            ),
        ];
        for (hdr, target, opts, format, echoed) in cases {
            let r = req(
                &format!("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{hdr}"),
                target,
            );
            let u = negotiate(&r, opts).unwrap();
            assert_eq!(u.format, *format, "{hdr} {target}");
            let t = text(&u);
            match echoed {
                Some(p) => assert!(
                    t.contains(&format!("Sec-WebSocket-Protocol: {p}\r\n")),
                    "{t}"
                ),
                None => assert!(!t.contains("Sec-WebSocket-Protocol"), "{t}"),
            }
        }
    }

    #[test]
    fn deflate_offers() {
        let base = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        let cases: &[(&str, Option<String>)] = &[
            ("permessage-deflate", Some(base.into())),
            (
                "permessage-deflate; client_max_window_bits",
                Some(base.into()),
            ),
            (
                "permessage-deflate; client_max_window_bits=10",
                Some(base.into()),
            ),
            (
                "permessage-deflate; client_max_window_bits=\"12\"",
                Some(base.into()),
            ),
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                Some(base.into()),
            ),
            (
                "permessage-deflate; server_max_window_bits=15",
                Some(format!("{base}; server_max_window_bits=15")),
            ),
            (
                "permessage-deflate; server_max_window_bits=10",
                Some(format!("{base}; server_max_window_bits=10")),
            ),
            (
                "permessage-deflate; server_max_window_bits=10, permessage-deflate",
                Some(base.into()),
            ),
            (
                "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
                Some(format!("{base}; server_max_window_bits=8")),
            ),
            ("permessage-deflate; server_max_window_bits", None),
            ("permessage-deflate; client_max_window_bits=16", None),
            ("permessage-deflate; client_max_window_bits=08", None),
            ("permessage-deflate; server_no_context_takeover=1", None),
            (
                "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                None,
            ),
            ("permessage-deflate; mystery", None),
            ("x-webkit-deflate-frame", None),
            (
                "foo, permessage-deflate; client_max_window_bits",
                Some(base.into()),
            ),
        ];
        for (offer, want) in cases {
            let u = negotiate(
                &ok_req(&format!("Sec-WebSocket-Extensions: {offer}\r\n")),
                &ALL,
            )
            .unwrap();
            assert_eq!(u.deflate, want.is_some(), "{offer}");
            // The server compresses unless the chosen offer narrowed its window.
            let narrowed = want.as_ref().is_some_and(|w| {
                w.contains("server_max_window_bits=") && !w.contains("server_max_window_bits=15")
            });
            assert_eq!(u.compress, u.deflate && !narrowed, "{offer}");
            let t = text(&u);
            match want {
                Some(w) => assert!(
                    t.contains(&format!("Sec-WebSocket-Extensions: {w}\r\n")),
                    "{offer}: {t}"
                ),
                None => assert!(!t.contains("Sec-WebSocket-Extensions"), "{offer}: {t}"),
            }
        }
        let off = HandshakeOptions {
            allow_binary: true,
            deflate: false,
        };
        let u = negotiate(
            &ok_req("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            &off,
        )
        .unwrap();
        assert!(!u.deflate);
    }

    #[test]
    fn tungstenite_client_accepts_our_answer() {
        use tungstenite::client::IntoClientRequest as _;
        use tungstenite::handshake::client::generate_key;
        let key = generate_key();
        let mut request = "ws://localhost/ws".into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "tracecast.json".parse().unwrap());
        // Re-render the request head the way a client sends it.
        let mut head =
            format!("GET /ws HTTP/1.1\r\nHost: localhost\r\nSec-WebSocket-Key: {key}\r\n");
        for (n, v) in request.headers() {
            if n != "sec-websocket-key" && n != "host" {
                head.push_str(&format!("{}: {}\r\n", n, v.to_str().unwrap()));
            }
        }
        head.push_str("\r\n");
        let r = match parse_head(head.as_bytes(), 8192) {
            Ok(Status::Complete(r)) => r,
            other => panic!("{other:?} {head}"),
        };
        let u = negotiate(&r, &ALL).unwrap();
        let t = text(&u);
        let want = tungstenite::handshake::derive_accept_key(key.as_bytes());
        assert!(t.contains(&want));
        assert!(t.contains("Sec-WebSocket-Protocol: tracecast.json\r\n"));
    }
}
