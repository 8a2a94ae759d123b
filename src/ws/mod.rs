//! The WebSocket codec (RFC 6455 + RFC 7692), sans IO.
//!
//! tungstenite rejects RSV1 and has no permessage-deflate, so the frame layer is ours both
//! ways. Inbound: [`frame`] validates one frame header at a time and [`message`] turns frames
//! in the connection's read buffer into messages, unmasking in place so a single-frame text
//! message reaches `simd-json` as a slice of that buffer. Outbound: server frames are
//! unmasked, so a header is the same for every subscriber; [`frame::FrameBuf`] builds one
//! contiguous `Bytes` that the hub shares. [`deflate`] is permessage-deflate without context
//! takeover (each compressed frame is made once), [`handshake`] answers the upgrade.
//!
//! Every rule violation is a [`WsError`] carrying the close code the connection must send.

pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod message;
mod utf8;

pub use deflate::{compress, Deflater, Inflater};
pub use frame::{
    close_frame, encode_frame, parse_header, ping_frame, pong_frame, FrameBuf, FrameHeader,
    FrameRules, OpCode, Payload, Status,
};
pub use handshake::{negotiate, HandshakeError, HandshakeOptions, Upgrade};
pub use message::{Message, MessageReader, Read};

use std::fmt;

/// The payload format a subscriber chose at the upgrade (the hub encodes per format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WireFormat {
    /// `tracecast.json`: every server message is a JSON text frame (the default).
    #[default]
    Json,
    /// `tracecast.bin`: live batches as binary frames, control messages stay JSON text.
    Binary,
}

impl WireFormat {
    /// The `Sec-WebSocket-Protocol` token naming this format.
    pub fn subprotocol(self) -> &'static str {
        match self {
            WireFormat::Json => "tracecast.json",
            WireFormat::Binary => "tracecast.bin",
        }
    }
}

/// Close codes this layer sends (RFC 6455 §7.4.1).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Server going away (shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error: a frame or message broke RFC 6455 / RFC 7692.
    pub const PROTOCOL: u16 = 1002;
    /// Text that is not UTF-8, or a compressed payload that does not inflate.
    pub const INVALID_DATA: u16 = 1007;
    /// Policy violation (auth, abuse).
    pub const POLICY: u16 = 1008;
    /// Message larger than `max_message_size`.
    pub const TOO_BIG: u16 = 1009;
    /// Unexpected server condition.
    pub const INTERNAL: u16 = 1011;
    /// Backpressure `disconnect` policy: the client fell too far behind (SPEC §8).
    pub const BACKPRESSURE: u16 = 4008;
}

/// Why an inbound stream must be closed: the close code to send and a short reason
/// (≤123 bytes, so it always fits a close frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WsError {
    /// The close code for the close frame the server answers with.
    pub close_code: u16,
    /// A static, human-readable reason (also fits the close frame).
    pub reason: &'static str,
}

impl WsError {
    pub(crate) const fn protocol(reason: &'static str) -> Self {
        WsError {
            close_code: close_code::PROTOCOL,
            reason,
        }
    }
    pub(crate) const fn invalid_data(reason: &'static str) -> Self {
        WsError {
            close_code: close_code::INVALID_DATA,
            reason,
        }
    }
    pub(crate) const fn too_big(reason: &'static str) -> Self {
        WsError {
            close_code: close_code::TOO_BIG,
            reason,
        }
    }

    /// The close code to send.
    pub fn close_code(&self) -> u16 {
        self.close_code
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "websocket close {}: {}", self.close_code, self.reason)
    }
}

impl std::error::Error for WsError {}
