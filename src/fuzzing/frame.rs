//! Fuzz body for the inbound WebSocket codec: frame headers, the message reader, inflate.
//!
//! The first byte picks the reader's options (deflate on/off, a small or large message
//! limit) and how the rest is split into reads; the remainder is the byte stream a client
//! sends. The same stream is fed once whole and once in pieces, and both runs must agree:
//! the reader's answer may not depend on how TCP happened to segment the bytes. And every
//! message read, written back with the server's own frame encoder, must read back as the
//! same message from exactly that one frame: the two halves of the codec agree.

use crate::ws::{
    close_frame, encode_frame, ping_frame, pong_frame, FrameRules, Message, MessageReader, OpCode,
};

/// Feeds arbitrary bytes to the message reader; must never panic.
pub fn run(data: &[u8]) {
    let Some((&options, stream)) = data.split_first() else {
        return;
    };
    let deflate = options & 1 != 0;
    let max = if options & 2 != 0 { 64 } else { 64 * 1024 };
    let split = usize::from(options >> 2) + 1;
    let whole = drive(max, deflate, stream, stream.len().max(1), true);
    let pieces = drive(max, deflate, stream, split, false);
    assert_eq!(
        whole, pieces,
        "the answer depends on how the stream was split"
    );
}

/// What a connection would have observed: a digest of each message, then the close code.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    messages: Vec<(u8, usize, u8)>,
    error: Option<u16>,
}

/// Feeds `stream` in `piece`-byte reads; with `reencode`, also checks each message with
/// [`reads_back`].
fn drive(max: usize, deflate: bool, stream: &[u8], piece: usize, reencode: bool) -> Outcome {
    let mut reader = MessageReader::new(max, deflate);
    let mut buf = Vec::new();
    let mut out = Outcome {
        messages: Vec::new(),
        error: None,
    };
    for chunk in stream.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            let len = buf.len();
            let read = match reader.read(&mut buf) {
                Ok(r) => r,
                Err(e) => {
                    out.error = Some(e.close_code);
                    return out;
                }
            };
            assert!(read.consumed <= len);
            let consumed = read.consumed;
            let Some(message) = read.message else {
                buf.drain(..consumed);
                break;
            };
            if reencode {
                reads_back(&message, max, deflate);
            }
            out.messages.push(digest(message));
            buf.drain(..consumed);
        }
    }
    out
}

/// A message's kind, bytes and close code, owned.
fn owned(m: &Message<'_>) -> (u8, Vec<u8>, Option<u16>) {
    match m {
        Message::Text(t) => (1, t.to_vec(), None),
        Message::Binary(b) => (2, b.to_vec(), None),
        Message::Ping(p) => (9, p.to_vec(), None),
        Message::Pong(p) => (10, p.to_vec(), None),
        Message::Close { code, reason } => (8, reason.as_bytes().to_vec(), *code),
    }
}

/// Writes `m` as the server would (one unmasked FIN frame, uncompressed) and reads it
/// with a reader that has the same limits but, like a client, takes unmasked frames.
fn reads_back(m: &Message<'_>, max: usize, deflate: bool) {
    let frame = match m {
        Message::Text(t) => encode_frame(OpCode::Text, false, t),
        Message::Binary(b) => encode_frame(OpCode::Binary, false, b),
        Message::Ping(p) => ping_frame(p),
        Message::Pong(p) => pong_frame(p),
        Message::Close {
            code: Some(code),
            reason,
        } => close_frame(*code, reason),
        Message::Close { code: None, .. } => encode_frame(OpCode::Close, false, b""),
    };
    let mut reader = MessageReader::with_rules(FrameRules {
        deflate,
        max_payload: max,
        require_mask: false,
    });
    let mut buf = frame.to_vec();
    let len = buf.len();
    let read = match reader.read(&mut buf) {
        Ok(r) => r,
        Err(e) => panic!("a message re-encoded by the server is refused: {e:?} ({m:?})"),
    };
    assert_eq!(read.consumed, len, "the re-encoded frame is not read whole");
    assert_eq!(
        read.message.as_ref().map(owned),
        Some(owned(m)),
        "a message re-encoded by the server reads back differently"
    );
}

fn digest(m: Message<'_>) -> (u8, usize, u8) {
    let sum = |b: &[u8]| b.iter().fold(0u8, |a, x| a.wrapping_add(*x));
    match m {
        Message::Text(t) => {
            assert!(
                std::str::from_utf8(t).is_ok(),
                "text message that is not UTF-8"
            );
            (1, t.len(), sum(t))
        }
        Message::Binary(b) => (2, b.len(), sum(b)),
        Message::Ping(p) => (9, p.len(), sum(p)),
        Message::Pong(p) => (10, p.len(), sum(p)),
        Message::Close { code, reason } => {
            (8, usize::from(code.unwrap_or(0)), sum(reason.as_bytes()))
        }
    }
}
