//! Fuzz body for the HTTP side of the port: request heads, the upgrade negotiation,
//! query strings and chunked bodies.
//!
//! The bytes are a request as a client would send it. A complete head goes on through
//! every decision the server makes on it (upgrade, subprotocol, deflate offer, query
//! parameters); whatever follows the head is fed to the chunked decoder.
//!
//! Properties asserted, beyond "no panic": a push parser's verdict is final, so a complete
//! head or an error stays exactly that when more bytes arrive, and every proper prefix of
//! a complete head is `Partial`; the chunked decoder's answer does not depend on how the
//! body is split into reads.

use crate::http::{parse_head, query_param, ChunkedDecoder, ChunkedStatus, Status};
use crate::ws::{negotiate, HandshakeOptions};

/// Bytes a client might send next; they must change nothing already decided.
const MORE: &[u8] = b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// Feeds arbitrary bytes to the parsers and checks what they produce.
pub fn run(data: &[u8]) {
    let mut extended = data.to_vec();
    extended.extend_from_slice(MORE);
    for max in [64, 16 * 1024] {
        let verdict = parse_head(data, max);
        if !matches!(verdict, Ok(Status::Partial)) {
            assert_eq!(
                parse_head(&extended, max),
                verdict,
                "a verdict changed when more bytes arrived"
            );
        }
        let req = match verdict {
            Ok(Status::Complete(req)) => req,
            Ok(Status::Partial) => {
                assert!(data.len() <= max, "partial past max_head");
                continue;
            }
            Err(e) => {
                let _ = e.to_response().to_bytes();
                continue;
            }
        };
        assert!(req.head_len <= data.len() && req.head_len <= max);
        for cut in [req.head_len - 1, req.head_len / 2] {
            let prefix = data.get(..cut).unwrap_or_default();
            assert_eq!(
                parse_head(prefix, max),
                Ok(Status::Partial),
                "a prefix of a complete head is not Partial"
            );
        }
        let _ = (req.is_upgrade(), req.keep_alive());
        for name in ["token", "format", ""] {
            let _ = req.query_param(name);
        }
        for allow_binary in [false, true] {
            for deflate in [false, true] {
                match negotiate(
                    &req,
                    &HandshakeOptions {
                        allow_binary,
                        deflate,
                    },
                ) {
                    Ok(up) => {
                        assert!(up.response.starts_with(b"HTTP/1.1 101 "));
                        assert!(deflate || !up.deflate);
                        assert!(up.deflate || !up.compress);
                    }
                    Err(e) => {
                        let _ = e.to_response().to_bytes();
                    }
                }
            }
        }
        let body = data.get(req.head_len..).unwrap_or_default();
        let whole = dechunk(body, body.len().max(1));
        if let Chunked::Complete {
            consumed,
            body: ref out,
        } = whole
        {
            assert!(consumed <= body.len());
            assert!(out.len() <= 1024);
        }
        for piece in [1, body.len() / 2 + 1] {
            assert_eq!(
                dechunk(body, piece),
                whole,
                "the chunked answer depends on how the body was split"
            );
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = query_param(&text, "token");
}

/// What the chunked decoder made of a whole input.
#[derive(Debug, PartialEq, Eq)]
enum Chunked {
    /// The body, and the input bytes that were framing or body.
    Complete { consumed: usize, body: Vec<u8> },
    /// All input used, body not finished.
    Partial,
    /// The HTTP status of the error.
    Error(u16),
}

/// Feeds `input` to a fresh decoder in `piece`-byte reads.
fn dechunk(input: &[u8], piece: usize) -> Chunked {
    let mut decoder = ChunkedDecoder::new(1024);
    let mut offset = 0;
    for chunk in input.chunks(piece) {
        match decoder.feed(chunk) {
            Ok(ChunkedStatus::Complete { consumed }) => {
                return Chunked::Complete {
                    consumed: offset + consumed,
                    body: decoder.take_body(),
                }
            }
            Ok(ChunkedStatus::Partial) => offset += chunk.len(),
            Err(e) => return Chunked::Error(e.status()),
        }
    }
    Chunked::Partial
}
