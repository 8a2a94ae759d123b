//! Fuzz body for the inbound WebSocket codec: frame headers, the message reader, inflate.
//!
//! The first byte picks the reader's options (deflate on/off, a small or large message
//! limit) and how the rest is split into reads; the remainder is the byte stream a client
//! sends. The same stream is fed once whole and once in pieces, and both runs must agree:
//! the reader's answer may not depend on how TCP happened to segment the bytes.

use crate::ws::{Message, MessageReader};

/// Feeds arbitrary bytes to the message reader; must never panic.
pub fn run(data: &[u8]) {
    let Some((&options, stream)) = data.split_first() else {
        return;
    };
    let deflate = options & 1 != 0;
    let max = if options & 2 != 0 { 64 } else { 64 * 1024 };
    let split = usize::from(options >> 2) + 1;
    let whole = drive(
        MessageReader::new(max, deflate),
        stream,
        stream.len().max(1),
    );
    let pieces = drive(MessageReader::new(max, deflate), stream, split);
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

fn drive(mut reader: MessageReader, stream: &[u8], piece: usize) -> Outcome {
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
            out.messages.push(digest(message));
            buf.drain(..consumed);
        }
    }
    out
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
