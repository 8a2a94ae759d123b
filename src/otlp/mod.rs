//! OpenTelemetry ingest (SPEC §12): OTLP/HTTP trace exports in, trace events out.
//!
//! Sans-IO, like every core here: [`decode`] takes a request body with its content type
//! and encoding and returns the `ExportTraceServiceRequest` (protobuf through `prost`,
//! OTLP/JSON through `serde`, gzip inflated under the body limit), [`map::map_request`]
//! turns its spans into validated [`crate::model::Pending`] events through the same
//! [`crate::ingest::EventBuilder`] every front end uses, and [`response`] writes the
//! answers the OTLP specification asks for, in the request's own content type. The route
//! (`app::otlp`) puts the three together around `App::commit`, so an OTLP span is stored,
//! sequenced, fanned out and time-travelled exactly as a native event is: OTLP is one
//! more front end, not a second ingest path.
//!
//! docs/OTLP.md has the mapping table; [`map`] holds the same table in code.

pub mod gzip;
pub mod map;
pub mod proto;

pub use map::{map_request, MapConfig, Mapped};
pub use proto::ExportTraceServiceRequest;

use prost::Message;

/// The request path of trace exports.
pub const TRACES_PATH: &str = "/v1/traces";

/// An OTLP/HTTP body encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json` (OTLP/JSON).
    Json,
}

impl Format {
    /// The format a `Content-Type` names (parameters such as `charset` ignored); `None`
    /// for any other type.
    pub fn of(content_type: &str) -> Option<Format> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Format::Protobuf),
            "application/json" => Some(Format::Json),
            _ => None,
        }
    }

    /// The `Content-Type` of answers in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// Why a request body was refused, with the HTTP status it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtlpError {
    /// A `Content-Encoding` other than `gzip` or `identity` (415).
    UnsupportedEncoding(String),
    /// The body, inflated, passes the limit (413).
    TooLarge { limit: usize },
    /// Not a valid `ExportTraceServiceRequest` (400); the message says what was wrong.
    Malformed(String),
}

impl OtlpError {
    pub fn status(&self) -> u16 {
        match self {
            OtlpError::UnsupportedEncoding(_) => 415,
            OtlpError::TooLarge { .. } => 413,
            OtlpError::Malformed(_) => 400,
        }
    }
}

impl std::fmt::Display for OtlpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OtlpError::UnsupportedEncoding(e) => {
                write!(
                    f,
                    "Content-Encoding \"{e}\" is not supported (gzip or identity)"
                )
            }
            OtlpError::TooLarge { limit } => {
                write!(
                    f,
                    "request body exceeds the limit of {limit} bytes (after decompression)"
                )
            }
            OtlpError::Malformed(m) => write!(f, "malformed ExportTraceServiceRequest: {m}"),
        }
    }
}

impl std::error::Error for OtlpError {}

/// Decodes a body of `format`, inflating it first when `encoding` is `gzip`. `limit`
/// bounds the body as decoded: a compressed body is inflated no further than that.
pub fn decode(
    format: Format,
    encoding: Option<&str>,
    body: &[u8],
    limit: usize,
) -> Result<ExportTraceServiceRequest, OtlpError> {
    let inflated;
    let body = match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "identity") => body,
        Some("gzip" | "x-gzip") => {
            inflated = gzip::gunzip(body, limit).map_err(|e| match e {
                gzip::GzipError::TooLarge { limit } => OtlpError::TooLarge { limit },
                gzip::GzipError::Invalid(m) => OtlpError::Malformed(m.into()),
            })?;
            &inflated[..]
        }
        Some(other) => return Err(OtlpError::UnsupportedEncoding(other.into())),
    };
    if body.len() > limit {
        return Err(OtlpError::TooLarge { limit });
    }
    match format {
        // One copy of the body, so that every string and id is a slice of it.
        Format::Protobuf => ExportTraceServiceRequest::decode(bytes::Bytes::copy_from_slice(body))
            .map_err(|e| OtlpError::Malformed(format!("protobuf: {e}"))),
        Format::Json => {
            serde_json::from_slice(body).map_err(|e| OtlpError::Malformed(format!("JSON: {e}")))
        }
    }
}

/// Count the spans of a request.
pub fn span_count(req: &ExportTraceServiceRequest) -> usize {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

/// The bodies of OTLP/HTTP answers.
pub mod response {
    use super::proto::{ExportTracePartialSuccess, ExportTraceServiceResponse, RpcStatus};
    use super::Format;
    use crate::json::write::{write_i64, write_str};
    use prost::Message;

    /// `google.rpc.Code` values used in `Status` bodies.
    pub mod code {
        pub const INVALID_ARGUMENT: i32 = 3;
        pub const PERMISSION_DENIED: i32 = 7;
        pub const RESOURCE_EXHAUSTED: i32 = 8;
        pub const INTERNAL: i32 = 13;
        pub const UNAVAILABLE: i32 = 14;
        pub const UNAUTHENTICATED: i32 = 16;
        pub const UNIMPLEMENTED: i32 = 12;
    }

    /// The `google.rpc.Code` that goes with an HTTP error status.
    pub fn code_for(status: u16) -> i32 {
        match status {
            400 | 413 => code::INVALID_ARGUMENT,
            401 => code::UNAUTHENTICATED,
            403 => code::PERMISSION_DENIED,
            404 | 405 | 415 => code::UNIMPLEMENTED,
            429 => code::RESOURCE_EXHAUSTED,
            503 => code::UNAVAILABLE,
            _ => code::INTERNAL,
        }
    }

    /// An `ExportTraceServiceResponse`: `partial_success` set only when spans were
    /// rejected (the specification asks to leave it unset on full success).
    pub fn success(format: Format, rejected_spans: usize, error_message: &str) -> Vec<u8> {
        let partial = (rejected_spans > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected_spans as i64,
            error_message: error_message.into(),
        });
        match format {
            Format::Protobuf => ExportTraceServiceResponse {
                partial_success: partial,
            }
            .encode_to_vec(),
            Format::Json => {
                let mut b = Vec::with_capacity(64);
                b.push(b'{');
                if let Some(p) = partial {
                    b.extend_from_slice(b"\"partialSuccess\":{\"rejectedSpans\":");
                    write_i64(&mut b, p.rejected_spans);
                    b.extend_from_slice(b",\"errorMessage\":");
                    write_str(&mut b, &p.error_message);
                    b.push(b'}');
                }
                b.push(b'}');
                b
            }
        }
    }

    /// A `google.rpc.Status` body for an error answer.
    pub fn status(format: Format, code: i32, message: &str) -> Vec<u8> {
        match format {
            Format::Protobuf => RpcStatus {
                code,
                message: message.into(),
            }
            .encode_to_vec(),
            Format::Json => {
                let mut b = Vec::with_capacity(32 + message.len());
                b.extend_from_slice(b"{\"code\":");
                write_i64(&mut b, code.into());
                b.extend_from_slice(b",\"message\":");
                write_str(&mut b, message);
                b.push(b'}');
                b
            }
        }
    }
}

#[cfg(test)]
mod tests;
