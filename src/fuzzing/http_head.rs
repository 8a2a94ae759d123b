//! Fuzz body for the HTTP side of the port: request heads, the upgrade negotiation,
//! query strings and chunked bodies.
//!
//! The bytes are a request as a client would send it. A complete head goes on through
//! every decision the server makes on it (upgrade, subprotocol, deflate offer, query
//! parameters); whatever follows the head is fed to the chunked decoder.

use crate::http::{parse_head, query_param, ChunkedDecoder, ChunkedStatus, Status};
use crate::ws::{negotiate, HandshakeOptions};

/// Feeds arbitrary bytes to the parsers; must never panic.
pub fn run(data: &[u8]) {
    for max in [64, 16 * 1024] {
        let req = match parse_head(data, max) {
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
                    }
                    Err(e) => {
                        let _ = e.to_response().to_bytes();
                    }
                }
            }
        }
        let body = data.get(req.head_len..).unwrap_or_default();
        let mut chunked = ChunkedDecoder::new(1024);
        if let Ok(ChunkedStatus::Complete { consumed }) = chunked.feed(body) {
            assert!(consumed <= body.len());
            assert!(chunked.body().len() <= 1024);
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = query_param(&text, "token");
}
