//! The per-connection inbound state machine: frames in the read buffer → messages.
//!
//! The connection owns a `Vec<u8>` read buffer and loops on [`MessageReader::read`]: each
//! call walks the complete frames at the front of the buffer, unmasks them in place, and
//! stops at the first finished message (or when the next frame is incomplete). It returns
//! the message plus how many bytes of the buffer it has used; the caller handles the
//! message, then drains (or skips) that many bytes and calls again.
//!
//! A single-frame, uncompressed data message is handed out as a `&mut [u8]` slice of the
//! caller's buffer, so `simd-json` parses it in place with no copy. Fragmented or
//! compressed messages are assembled in buffers owned by the reader and reused from one
//! message to the next. Control frames may arrive between fragments and are returned at
//! once; the open message keeps its state.
//!
//! A frame is handed out only once it is complete in the buffer, so the caller's buffer
//! must be able to hold one frame: at most `max_message_size` + 14 bytes. The part of an
//! uncompressed text frame that has arrived is unmasked and checked for UTF-8 at once, so
//! invalid text fails as soon as its bad byte arrives ("fail fast", RFC 6455 §8.1), even in
//! the middle of a frame. That progress is kept for the frame at the front of the next call's
//! buffer: after a call that returns no message, the caller passes the buffer again starting
//! at `consumed` (as it does anyway).

use super::deflate::Inflater;
use super::frame::{apply_mask, parse_header, FrameHeader, FrameRules, OpCode, Status};
use super::utf8::Utf8Stream;
use super::WsError;

/// Internal buffers keep at most this much capacity between messages, so one large
/// message does not pin memory on an idle connection.
const RETAIN_CAPACITY: usize = 64 * 1024;

/// One inbound message or control frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message, already checked to be UTF-8 (mutable so it can be parsed in place).
    Text(&'a mut [u8]),
    /// A binary message.
    Binary(&'a mut [u8]),
    /// A ping; answer with a pong carrying the same bytes.
    Ping(&'a [u8]),
    /// A pong (the heartbeat's answer).
    Pong(&'a [u8]),
    /// The peer closes; `code` is `None` for an empty close payload.
    Close {
        /// The validated close code.
        code: Option<u16>,
        /// The UTF-8 reason.
        reason: &'a str,
    },
}

/// What one [`MessageReader::read`] call produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Read<'a> {
    /// Bytes at the front of the buffer this call is done with (whole frames only); drain
    /// them once the message is handled.
    pub consumed: usize,
    /// The finished message, or `None` when more bytes are needed.
    pub message: Option<Message<'a>>,
}

/// A fragmented message in progress.
#[derive(Debug, Clone, Copy)]
struct Open {
    text: bool,
    compressed: bool,
}

/// Inbound frames → messages for one connection.
#[derive(Debug)]
pub struct MessageReader {
    rules: FrameRules,
    max_message: usize,
    open: Option<Open>,
    /// Validation of the uncompressed text message being read (one frame or fragments).
    utf8: Utf8Stream,
    /// Payload bytes of the frame at the front of the buffer already unmasked and
    /// validated by an earlier call that found the frame incomplete.
    seen: usize,
    assembly: Vec<u8>,
    inflated: Vec<u8>,
    // Allocated on the first compressed message: most clients never send one.
    inflater: Option<Inflater>,
}

impl MessageReader {
    /// A reader for a client connection; `deflate` says whether permessage-deflate was
    /// negotiated, `max_message_size` bounds every message (wire and inflated) → 1009.
    pub fn new(max_message_size: usize, deflate: bool) -> Self {
        Self::with_rules(FrameRules::server(deflate, max_message_size))
    }

    /// A reader with explicit frame rules (tests of unmasked peers).
    pub fn with_rules(rules: FrameRules) -> Self {
        MessageReader {
            rules,
            max_message: rules.max_payload,
            open: None,
            utf8: Utf8Stream::default(),
            seen: 0,
            assembly: Vec::new(),
            inflated: Vec::new(),
            inflater: None,
        }
    }

    /// A fragmented message is open (its fragments so far are held by the reader).
    pub fn in_message(&self) -> bool {
        self.open.is_some()
    }

    /// Walks the frames at the front of `buf` up to the next finished message.
    ///
    /// After an error the connection must be closed with the error's code; the reader's
    /// state is then unspecified.
    pub fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> Result<Read<'a>, WsError> {
        let mut pos = 0;
        loop {
            // Progress from an earlier call belongs to the frame at the front only.
            let seen = if pos == 0 {
                std::mem::take(&mut self.seen)
            } else {
                0
            };
            let rest = buf.get(pos..).unwrap_or_default();
            let h = match parse_header(rest, &self.rules)? {
                Status::Complete(h) => h,
                Status::Partial => {
                    return Ok(Read {
                        consumed: pos,
                        message: None,
                    })
                }
            };
            // Judge the frame against the message context before waiting for its payload.
            self.check_context(&h)?;
            let start = pos + h.header_len;
            let end = pos + h.frame_len();
            let arrived = buf.len().min(end);
            let checked = self.checks_utf8(&h);
            if checked || arrived == end {
                let seen = seen.min(arrived.saturating_sub(start));
                if seen == 0 && h.opcode == OpCode::Text {
                    self.utf8 = Utf8Stream::default();
                }
                let Some(fresh) = buf.get_mut(start + seen..arrived) else {
                    return Err(WsError::protocol("frame bounds"));
                };
                if h.masked {
                    apply_mask_from(fresh, h.mask, seen);
                }
                if checked && self.utf8.feed(fresh).is_err() {
                    return Err(WsError::invalid_data("text message is not UTF-8"));
                }
            }
            if arrived < end {
                // Only text frames are worked on before they are complete; the rest of
                // this one is unmasked and checked when it arrives.
                if checked {
                    self.seen = arrived - start;
                }
                return Ok(Read {
                    consumed: pos,
                    message: None,
                });
            }
            pos = end;
            match h.opcode {
                OpCode::Ping => {
                    let p = buf.get(start..end).unwrap_or_default();
                    return Ok(Read {
                        consumed: pos,
                        message: Some(Message::Ping(p)),
                    });
                }
                OpCode::Pong => {
                    let p = buf.get(start..end).unwrap_or_default();
                    return Ok(Read {
                        consumed: pos,
                        message: Some(Message::Pong(p)),
                    });
                }
                OpCode::Close => {
                    let (code, reason) = parse_close(buf.get(start..end).unwrap_or_default())?;
                    return Ok(Read {
                        consumed: pos,
                        message: Some(Message::Close { code, reason }),
                    });
                }
                OpCode::Text | OpCode::Binary if h.fin && !h.rsv1 => {
                    let text = h.opcode == OpCode::Text;
                    let Some(p) = buf.get_mut(start..end) else {
                        return Err(WsError::protocol("frame bounds"));
                    };
                    if text && self.utf8.finish().is_err() {
                        return Err(WsError::invalid_data("text message is not UTF-8"));
                    }
                    let message = if text {
                        Message::Text(p)
                    } else {
                        Message::Binary(p)
                    };
                    return Ok(Read {
                        consumed: pos,
                        message: Some(message),
                    });
                }
                OpCode::Text | OpCode::Binary if h.fin => {
                    let text = h.opcode == OpCode::Text;
                    let input = buf.get(start..end).unwrap_or_default();
                    inflate_into(
                        &mut self.inflater,
                        input,
                        self.max_message,
                        &mut self.inflated,
                    )?;
                    return Ok(Read {
                        consumed: pos,
                        message: Some(finish(text, &mut self.inflated)?),
                    });
                }
                OpCode::Text | OpCode::Binary => {
                    recycle(&mut self.assembly);
                    self.open = Some(Open {
                        text: h.opcode == OpCode::Text,
                        compressed: h.rsv1,
                    });
                    self.assembly
                        .extend_from_slice(buf.get(start..end).unwrap_or_default());
                }
                OpCode::Continuation => {
                    let Some(open) = self.open else {
                        return Err(WsError::protocol("continuation without a message"));
                    };
                    self.assembly
                        .extend_from_slice(buf.get(start..end).unwrap_or_default());
                    self.open = if h.fin { None } else { Some(open) };
                    if h.fin {
                        let message = if open.compressed {
                            inflate_into(
                                &mut self.inflater,
                                &self.assembly,
                                self.max_message,
                                &mut self.inflated,
                            )?;
                            finish(open.text, &mut self.inflated)?
                        } else {
                            if open.text && self.utf8.finish().is_err() {
                                return Err(WsError::invalid_data("text message is not UTF-8"));
                            }
                            if open.text {
                                Message::Text(&mut self.assembly)
                            } else {
                                Message::Binary(&mut self.assembly)
                            }
                        };
                        return Ok(Read {
                            consumed: pos,
                            message: Some(message),
                        });
                    }
                }
            }
        }
    }

    /// Whether this data frame's bytes are uncompressed text, validated as they arrive.
    fn checks_utf8(&self, h: &FrameHeader) -> bool {
        match h.opcode {
            OpCode::Text => !h.rsv1,
            OpCode::Continuation => self.open.is_some_and(|o| o.text && !o.compressed),
            _ => false,
        }
    }

    /// Fragmentation and cumulative-size rules (RFC 6455 §5.4, spec §8).
    fn check_context(&self, h: &FrameHeader) -> Result<(), WsError> {
        match (h.opcode, self.open) {
            (OpCode::Continuation, None) => {
                Err(WsError::protocol("continuation without a message"))
            }
            (OpCode::Continuation, Some(_)) => {
                if self.assembly.len().saturating_add(h.payload_len) > self.max_message {
                    Err(WsError::too_big("message larger than max_message_size"))
                } else {
                    Ok(())
                }
            }
            (OpCode::Text | OpCode::Binary, Some(_)) => Err(WsError::protocol(
                "new data frame inside a fragmented message",
            )),
            _ => Ok(()),
        }
    }
}

/// Clears a reused buffer, giving back memory a large message left behind.
fn recycle(buf: &mut Vec<u8>) {
    buf.clear();
    if buf.capacity() > RETAIN_CAPACITY {
        buf.shrink_to(RETAIN_CAPACITY);
    }
}

/// Inflates a compressed message into the reader's reused output buffer.
fn inflate_into(
    inflater: &mut Option<Inflater>,
    input: &[u8],
    max: usize,
    out: &mut Vec<u8>,
) -> Result<(), WsError> {
    recycle(out);
    inflater
        .get_or_insert_with(Inflater::new)
        .decompress(input, max, out)
}

/// Wraps an assembled (inflated) payload, validating text.
fn finish(text: bool, data: &mut [u8]) -> Result<Message<'_>, WsError> {
    if text {
        if std::str::from_utf8(data).is_err() {
            return Err(WsError::invalid_data("text message is not UTF-8"));
        }
        Ok(Message::Text(data))
    } else {
        Ok(Message::Binary(data))
    }
}

/// Unmasks `data`, the part of a payload that starts `offset` bytes into it.
fn apply_mask_from(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let r = offset % 4;
    apply_mask(
        data,
        [
            mask[r],
            mask[(r + 1) % 4],
            mask[(r + 2) % 4],
            mask[(r + 3) % 4],
        ],
    );
}

/// Close payload rules (RFC 6455 §5.5.1, §7.4): empty, or a valid code plus UTF-8 reason.
fn parse_close(payload: &[u8]) -> Result<(Option<u16>, &str), WsError> {
    match payload {
        [] => Ok((None, "")),
        [_] => Err(WsError::protocol("close payload of one byte")),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            if !close_code_allowed(code) {
                return Err(WsError::protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(reason)
                .map_err(|_| WsError::invalid_data("close reason is not UTF-8"))?;
            Ok((Some(code), reason))
        }
    }
}

/// Codes a peer may send: the defined ones except those reserved for local use
/// (1004–1006, 1015), plus the registered (3000–3999) and private (4000–4999) ranges.
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Owned copies of messages, and a driver that feeds a reader like a connection does.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Message, MessageReader};
    use crate::ws::WsError;

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Ev {
        Text(Vec<u8>),
        Binary(Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<u16>, String),
    }

    impl From<Message<'_>> for Ev {
        fn from(m: Message<'_>) -> Ev {
            match m {
                Message::Text(t) => Ev::Text(t.to_vec()),
                Message::Binary(b) => Ev::Binary(b.to_vec()),
                Message::Ping(p) => Ev::Ping(p.to_vec()),
                Message::Pong(p) => Ev::Pong(p.to_vec()),
                Message::Close { code, reason } => Ev::Close(code, reason.to_owned()),
            }
        }
    }

    /// Appends `input` to the connection buffer in pieces of the given sizes (cycled),
    /// reading after each piece; stops at the first error.
    pub fn drive(
        reader: &mut MessageReader,
        input: &[u8],
        splits: &[usize],
    ) -> (Vec<Ev>, Option<WsError>) {
        let mut buf: Vec<u8> = Vec::new();
        let mut events = Vec::new();
        let mut fed = 0;
        let mut sizes = splits.iter().copied().filter(|s| *s > 0).cycle();
        while fed < input.len() {
            let n = sizes.next().unwrap_or(input.len()).min(input.len() - fed);
            buf.extend_from_slice(input.get(fed..fed + n).unwrap_or_default());
            fed += n;
            loop {
                match reader.read(&mut buf) {
                    Err(e) => return (events, Some(e)),
                    Ok(r) => {
                        let consumed = r.consumed;
                        let done = r.message.is_none();
                        if let Some(m) = r.message {
                            events.push(Ev::from(m));
                        }
                        buf.drain(..consumed.min(buf.len()));
                        if done {
                            break;
                        }
                    }
                }
            }
        }
        (events, None)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{drive, Ev};
    use super::*;
    use crate::ws::deflate::compress;
    use crate::ws::frame::testing::client_frame;

    const MAX: usize = 1000;

    fn run(input: &[u8], deflate: bool, max: usize) -> (Vec<Ev>, Option<u16>) {
        let mut whole = MessageReader::new(max, deflate);
        let (ev, err) = drive(&mut whole, input, &[]);
        let code = err.map(|e| e.close_code);
        // Any split of the same bytes must give the same answer.
        for splits in [&[1usize][..], &[3, 7], &[2, 1, 13]] {
            let mut r = MessageReader::new(max, deflate);
            let (ev2, err2) = drive(&mut r, input, splits);
            assert_eq!(
                (&ev2, err2.map(|e| e.close_code)),
                (&ev, code),
                "splits {splits:?}"
            );
        }
        (ev, code)
    }

    fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
        frames.concat()
    }

    fn text(s: &[u8]) -> Ev {
        Ev::Text(s.to_vec())
    }

    /// (name, client bytes, messages delivered, close code).
    type Case = (&'static str, Vec<u8>, Vec<Ev>, Option<u16>);

    #[test]
    fn message_rules_table() {
        let bad_utf8 = b"caf\xc3".to_vec();
        let euro = "€".as_bytes(); // e2 82 ac
        let cases: Vec<Case> = vec![
            (
                "single text",
                client_frame(0x81, b"hello"),
                vec![text(b"hello")],
                None,
            ),
            (
                "single binary",
                client_frame(0x82, &[0, 255]),
                vec![Ev::Binary(vec![0, 255])],
                None,
            ),
            ("empty text", client_frame(0x81, b""), vec![text(b"")], None),
            (
                "fragmented text",
                cat(&[
                    client_frame(0x01, b"he"),
                    client_frame(0x00, b"ll"),
                    client_frame(0x80, b"o"),
                ]),
                vec![text(b"hello")],
                None,
            ),
            (
                "ping between fragments",
                cat(&[
                    client_frame(0x01, b"he"),
                    client_frame(0x89, b"p"),
                    client_frame(0x80, b"y"),
                ]),
                vec![Ev::Ping(b"p".to_vec()), text(b"hey")],
                None,
            ),
            (
                "pong and close between fragments",
                cat(&[
                    client_frame(0x02, b"a"),
                    client_frame(0x8A, b""),
                    client_frame(0x88, &[3, 232]),
                ]),
                vec![Ev::Pong(vec![]), Ev::Close(Some(1000), String::new())],
                None,
            ),
            (
                "utf8 char split across fragments",
                cat(&[
                    client_frame(0x01, &euro[..1]),
                    client_frame(0x00, &euro[1..2]),
                    client_frame(0x80, &euro[2..]),
                ]),
                vec![text(euro)],
                None,
            ),
            (
                "invalid utf8 single",
                client_frame(0x81, b"\xff"),
                vec![],
                Some(1007),
            ),
            (
                "truncated utf8 single",
                client_frame(0x81, &bad_utf8),
                vec![],
                Some(1007),
            ),
            (
                "invalid utf8 in first fragment fails fast",
                cat(&[client_frame(0x01, b"a\xffb")]),
                vec![],
                Some(1007),
            ),
            (
                "utf8 left incomplete at the end",
                cat(&[client_frame(0x01, b"caf"), client_frame(0x80, b"\xc3")]),
                vec![],
                Some(1007),
            ),
            (
                "binary is not utf8 checked",
                cat(&[client_frame(0x02, b"\xff"), client_frame(0x80, b"\xfe")]),
                vec![Ev::Binary(vec![0xff, 0xfe])],
                None,
            ),
            (
                "continuation without start",
                client_frame(0x80, b"x"),
                vec![],
                Some(1002),
            ),
            (
                "new text inside fragmented",
                cat(&[client_frame(0x01, b"a"), client_frame(0x81, b"b")]),
                vec![],
                Some(1002),
            ),
            (
                "new binary inside fragmented",
                cat(&[client_frame(0x01, b"a"), client_frame(0x02, b"b")]),
                vec![],
                Some(1002),
            ),
            (
                "fragmented ping",
                client_frame(0x09, b""),
                vec![],
                Some(1002),
            ),
            (
                "close empty",
                client_frame(0x88, b""),
                vec![Ev::Close(None, String::new())],
                None,
            ),
            (
                "close one byte",
                client_frame(0x88, &[3]),
                vec![],
                Some(1002),
            ),
            (
                "close with reason",
                client_frame(0x88, b"\x0f\xa0bye"),
                vec![Ev::Close(Some(4000), "bye".into())],
                None,
            ),
            (
                "close bad reason utf8",
                client_frame(0x88, b"\x03\xe8\xff"),
                vec![],
                Some(1007),
            ),
            (
                "text over max",
                client_frame(0x81, &[b'a'; MAX + 1]),
                vec![],
                Some(1009),
            ),
            (
                "text at max",
                client_frame(0x82, &[1; MAX]),
                vec![Ev::Binary(vec![1; MAX])],
                None,
            ),
            (
                "max across fragments",
                cat(&[client_frame(0x02, &[0; 600]), client_frame(0x80, &[0; 401])]),
                vec![],
                Some(1009),
            ),
            (
                "two messages in one buffer",
                cat(&[client_frame(0x81, b"a"), client_frame(0x81, b"b")]),
                vec![text(b"a"), text(b"b")],
                None,
            ),
            ("unmasked", vec![0x81, 0x01, b'a'], vec![], Some(1002)),
            (
                "rsv1 without deflate",
                client_frame(0xC1, b"a"),
                vec![],
                Some(1002),
            ),
        ];
        for (name, input, want_ev, want_code) in cases {
            let (ev, code) = run(&input, false, MAX);
            assert_eq!((ev, code), (want_ev, want_code), "{name}");
        }
    }

    #[test]
    fn close_codes() {
        for (c, ok) in [
            (999u16, false),
            (1000, true),
            (1003, true),
            (1004, false),
            (1005, false),
            (1006, false),
            (1007, true),
            (1011, true),
            (1014, true),
            (1015, false),
            (1016, false),
            (2999, false),
            (3000, true),
            (4999, true),
            (5000, false),
            (0, false),
        ] {
            let (_, code) = run(&client_frame(0x88, &c.to_be_bytes()), false, MAX);
            assert_eq!(code.is_none(), ok, "close code {c}");
        }
    }

    #[test]
    fn compressed_messages() {
        let body = br#"{"type":"subscribe_session","sessionId":"s1"}"#.repeat(5);
        let z = compress(&body, 6);
        let (ev, code) = run(&client_frame(0xC1, &z), true, MAX);
        assert_eq!((ev, code), (vec![text(&body)], None));

        // Fragmented compressed: RSV1 on the first frame only, control in between.
        let (a, b) = z.split_at(z.len() / 2);
        let input = cat(&[
            client_frame(0x41, a),
            client_frame(0x89, b"x"),
            client_frame(0x80, b),
        ]);
        let (ev, code) = run(&input, true, MAX);
        assert_eq!(
            (ev, code),
            (vec![Ev::Ping(b"x".to_vec()), text(&body)], None)
        );

        // RSV1 on a continuation is a protocol error even with deflate.
        let input = cat(&[client_frame(0x41, a), client_frame(0xC0, b)]);
        assert_eq!(run(&input, true, MAX).1, Some(1002));

        // Inflated size bounded by max_message_size.
        let big = vec![b'a'; MAX + 1];
        assert_eq!(
            run(&client_frame(0xC2, &compress(&big, 9)), true, MAX).1,
            Some(1009)
        );

        // Compressed text that inflates to invalid UTF-8.
        assert_eq!(
            run(&client_frame(0xC1, &compress(b"\xff\xfe", 6)), true, MAX).1,
            Some(1007)
        );

        // Garbage deflate data.
        assert_eq!(
            run(&client_frame(0xC2, &[0xff, 0xff]), true, MAX).1,
            Some(1007)
        );

        // Uncompressed messages still work on a deflate connection, and the RFC example.
        let input = cat(&[
            client_frame(0x81, b"plain"),
            client_frame(0xC1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
        ]);
        assert_eq!(
            run(&input, true, MAX),
            (vec![text(b"plain"), text(b"Hello")], None)
        );
    }

    #[test]
    fn single_frame_is_a_slice_of_the_callers_buffer() {
        let mut buf = client_frame(0x81, br#"{"a":1}"#);
        buf.extend_from_slice(&client_frame(0x81, b"next")[..3]);
        let range = buf.as_ptr_range();
        let mut r = MessageReader::new(MAX, false);
        let read = r.read(&mut buf).unwrap();
        assert_eq!(read.consumed, 6 + 7);
        match read.message {
            Some(Message::Text(t)) => {
                assert_eq!(t, br#"{"a":1}"#);
                assert!(range.contains(&t.as_ptr()));
                t[0] = b'['; // mutable in place, as simd-json needs
            }
            other => panic!("{other:?}"),
        }
        let read = r.read(&mut buf[13..]).unwrap();
        assert_eq!(
            read,
            Read {
                consumed: 0,
                message: None
            }
        );
    }

    #[test]
    fn fragments_are_consumed_as_they_arrive() {
        let mut buf = cat(&[client_frame(0x01, b"ab"), client_frame(0x00, b"cd")]);
        let len = buf.len();
        let mut r = MessageReader::new(MAX, false);
        let read = r.read(&mut buf).unwrap();
        assert_eq!(
            read,
            Read {
                consumed: len,
                message: None
            }
        );
        assert!(r.in_message());
        let mut last = client_frame(0x80, b"e");
        let read = r.read(&mut last).unwrap();
        assert_eq!(read.message, Some(Message::Text(&mut b"abcde".to_vec())));
        assert!(!r.in_message());
    }

    /// Autobahn 6.4.3 and 6.4.4: one text frame arrives in reads; the read holding its first
    /// impossible byte fails with 1007 at once, before the rest of the frame is there.
    #[test]
    fn invalid_text_fails_before_its_frame_is_complete() {
        let part1: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
        let bad = b"\xf4\x90\x80\x80";
        // 6.4.3 sends the four bad bytes in one read; 6.4.4 cuts after the lead byte, which
        // alone could still begin a character.
        for valid in [0, 1] {
            let payload = [part1, bad, b"\xce\xba\xe1\xbd\xb9\xcf\x83edited"].concat();
            let frame = client_frame(0x81, &payload);
            let header = frame.len() - payload.len();
            let upto = header + part1.len() + bad.len();
            let mut r = MessageReader::new(MAX, false);
            let mut buf = frame[..header + part1.len() + valid].to_vec();
            let read = r.read(&mut buf).expect("a valid prefix is no error");
            assert_eq!(read.message, None);
            buf.extend_from_slice(&frame[header + part1.len() + valid..upto]);
            let err = r.read(&mut buf).expect_err("the bad byte is there");
            assert_eq!(err.close_code, crate::ws::close_code::INVALID_DATA);
        }
        // The same bytes arriving one at a time still read back whole when valid, so the
        // progress kept between reads unmasks each byte exactly once.
        let frame = client_frame(0x81, "κόσμε and more than eight bytes".as_bytes());
        let mut r = MessageReader::new(MAX, false);
        let mut buf = Vec::new();
        for b in &frame[..frame.len() - 1] {
            buf.push(*b);
            assert_eq!(r.read(&mut buf).unwrap().message, None);
        }
        buf.push(frame[frame.len() - 1]);
        assert_eq!(
            r.read(&mut buf).unwrap().message,
            Some(Message::Text(
                &mut "κόσμε and more than eight bytes".as_bytes().to_vec()
            ))
        );
    }

    #[test]
    fn internal_buffers_are_reused_and_bounded() {
        let mut r = MessageReader::new(1 << 20, false);
        let big = cat(&[
            client_frame(0x02, &vec![1; 200_000]),
            client_frame(0x80, b""),
        ]);
        assert_eq!(drive(&mut r, &big, &[]).0.len(), 1);
        let small = cat(&[client_frame(0x02, b"a"), client_frame(0x80, b"b")]);
        assert_eq!(
            drive(&mut r, &small, &[]).0,
            vec![Ev::Binary(b"ab".to_vec())]
        );
        assert!(r.assembly.capacity() <= RETAIN_CAPACITY);
    }
}
