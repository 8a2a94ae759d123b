//! HTTP/1.1 request heads in, responses out: the plain-HTTP half of tracecast's one port.
//!
//! Every connection starts here. [`parse_head`] reads the request head from the front of the
//! read buffer with `httparse` (push-style: complete, partial, or an error with a status);
//! the server then routes it to the WebSocket upgrade (`ws::handshake`), to ingest, or to a
//! health/metrics answer built with [`Response`]. Request bodies are framed by
//! `Content-Length` or by [`ChunkedDecoder`]. No I/O happens here.

mod chunked;
mod request;
mod response;

pub use chunked::{ChunkedDecoder, ChunkedStatus};
pub use request::{parse_head, query_param, Method, Request};
pub use response::{reason, Response};

use std::fmt;

/// Default cap on request head bytes when the config gives none.
pub const DEFAULT_MAX_HEAD: usize = 16 * 1024;

/// Most headers a request may carry (more → 431).
pub const MAX_HEADERS: usize = 64;

/// What a push parser says about the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status<T> {
    /// Parsed.
    Complete(T),
    /// Valid so far; read more bytes.
    Partial,
}

/// Why a request cannot be served; each maps to the status the server answers with
/// (then it closes the connection, as the framing can no longer be trusted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpError {
    /// Malformed request line or header (400).
    BadHead(&'static str),
    /// `Content-Length` invalid or conflicting, or both it and `Transfer-Encoding` (400).
    BadLength(&'static str),
    /// Malformed chunked body (400).
    BadChunk(&'static str),
    /// Head over `max_head` bytes or too many headers (431).
    HeadTooLarge,
    /// Body over the configured maximum (413).
    BodyTooLarge,
    /// A transfer coding other than `chunked` (501).
    UnsupportedEncoding,
}

impl HttpError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadHead(_) | HttpError::BadLength(_) | HttpError::BadChunk(_) => 400,
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::UnsupportedEncoding => 501,
        }
    }

    /// A message safe to show the client.
    pub fn message(&self) -> &'static str {
        match self {
            HttpError::BadHead(m) | HttpError::BadLength(m) | HttpError::BadChunk(m) => m,
            HttpError::HeadTooLarge => "request head too large",
            HttpError::BodyTooLarge => "request body too large",
            HttpError::UnsupportedEncoding => "only the chunked transfer coding is supported",
        }
    }

    /// The full error response (JSON body, `Connection: close`).
    pub fn to_response(&self) -> Response {
        Response::error(self.status(), self.message()).close()
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http {}: {}", self.status(), self.message())
    }
}

impl std::error::Error for HttpError {}
