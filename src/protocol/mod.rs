//! The WebSocket protocol (SPEC §4): client messages in, server messages out.
//!
//! Everything here is a pure core over bytes. [`client`] parses one inbound text frame in
//! place with simd-json into a typed [`client::ClientMessage`]; [`server`] appends complete
//! JSON server messages to a caller's buffer; [`batch`] writes the hot-path `trace_batch`
//! (plain or delta-compressed) and [`binary`] its `tracecast.bin` twin. The connection and
//! hub layers decide *what* to send; this module only knows *how it looks on the wire*.
//! docs/PROTOCOL.md is the user-facing description of the same shapes.

pub mod batch;
pub mod binary;
pub mod client;
pub mod json;
pub mod server;

pub use batch::{encode_trace_batch, BatchCompression};
pub use binary::{
    decode_binary_batch, encode_binary_batch, BinaryError, DecodedBatch, DecodedEvent,
};
pub use client::{parse_client_message, ClientMessage, Parsed};
pub use server::ClientMetrics;

use crate::json::write;
use std::fmt;

/// The `error.code` values a client can receive. Flat and `Copy`, like quiche's error:
/// the loop maps its layer errors onto these in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not a JSON object.
    InvalidMessage,
    /// A field is missing, ill-typed or out of range (also: a rejected `publish`).
    InvalidRequest,
    /// `type` names no message this server knows.
    UnknownMessageType,
    /// The connection has not authenticated yet and auth is required.
    NotAuthenticated,
    /// Authenticated, but the credential lacks the permission or session.
    Forbidden,
    /// Over the connection's message or byte budget; carries `retryAfterMs`.
    RateLimitExceeded,
    /// The message needs a subscription the connection does not have.
    NoSession,
    /// The message is larger than `max_message_size`.
    MessageTooLarge,
    /// A history read failed.
    HistoryError,
    /// A time-travel rebuild failed.
    TimeTravelError,
    /// A breakpoint condition did not compile.
    InvalidCondition,
    /// A bug or an impossible state on the server side.
    InternalError,
    /// The store refused (disk full, I/O error).
    StorageError,
    /// The server knows the message but does not offer the feature (yet); stable, so a
    /// client can tell "not here" from "malformed".
    Unsupported,
    /// Ingest cannot be taken now (cluster mode: the backbone is unreachable); nothing
    /// was stored, retry.
    Unavailable,
}

impl ErrorCode {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnknownMessageType => "unknown_message_type",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimitExceeded => "rate_limit_exceeded",
            ErrorCode::NoSession => "no_session",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::HistoryError => "history_error",
            ErrorCode::TimeTravelError => "time_travel_error",
            ErrorCode::InvalidCondition => "invalid_condition",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::StorageError => "storage_error",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Unavailable => "unavailable",
        }
    }

    /// Every code, for docs and tests.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::InvalidMessage,
        ErrorCode::InvalidRequest,
        ErrorCode::UnknownMessageType,
        ErrorCode::NotAuthenticated,
        ErrorCode::Forbidden,
        ErrorCode::RateLimitExceeded,
        ErrorCode::NoSession,
        ErrorCode::MessageTooLarge,
        ErrorCode::HistoryError,
        ErrorCode::TimeTravelError,
        ErrorCode::InvalidCondition,
        ErrorCode::InternalError,
        ErrorCode::StorageError,
        ErrorCode::Unsupported,
        ErrorCode::Unavailable,
    ];
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client's `requestId`, kept so every reply can echo it exactly (a string stays a
/// string, a number stays a number).
#[derive(Debug, Clone, PartialEq)]
pub enum RequestId {
    Str(Box<str>),
    /// Any integer that fits an `i64`.
    Int(i64),
    /// Integers above `i64::MAX`.
    UInt(u64),
    Float(f64),
}

impl RequestId {
    /// Appends the id as a JSON value.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            RequestId::Str(s) => write::write_str(out, s),
            RequestId::Int(v) => write::write_i64(out, *v),
            RequestId::UInt(v) => write::write_u64(out, *v),
            RequestId::Float(v) => write::write_f64(out, *v),
        }
    }
}

impl From<&str> for RequestId {
    fn from(s: &str) -> Self {
        RequestId::Str(s.into())
    }
}

impl From<i64> for RequestId {
    fn from(v: i64) -> Self {
        RequestId::Int(v)
    }
}

/// Why an inbound message was refused: answered with an `error` message, and the
/// connection stays open.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolError {
    pub code: ErrorCode,
    /// Human-readable, names the offending field or type.
    pub message: String,
    /// The message's `requestId`, when it could be read, so the error echoes it.
    pub request_id: Option<RequestId>,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
            request_id: None,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ProtocolError {}
