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
//! A frame is only processed once it is complete in the buffer, so the caller's buffer must
//! be able to hold one frame: at most `max_message_size` + 14 bytes.

use super::deflate::Inflater;
use super::frame::{apply_mask, parse_header, FrameHeader, FrameRules, OpCode, Status};
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
    /// Prefix of `assembly` known to be valid UTF-8 (uncompressed text only).
    utf8_valid: usize,
}

/// Inbound frames → messages for one connection.
#[derive(Debug)]
pub struct MessageReader {
    rules: FrameRules,
    max_message: usize,
    open: Option<Open>,
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
            if buf.len() < end {
                return Ok(Read {
                    consumed: pos,
                    message: None,
                });
            }
            pos = end;
            let Some(payload) = buf.get_mut(start..end) else {
                return Err(WsError::protocol("frame bounds"));
            };
            if h.masked {
                apply_mask(payload, h.mask);
            }
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
                    if text && std::str::from_utf8(p).is_err() {
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
                    let mut open = Open {
                        text: h.opcode == OpCode::Text,
                        compressed: h.rsv1,
                        utf8_valid: 0,
                    };
                    self.assembly
                        .extend_from_slice(buf.get(start..end).unwrap_or_default());
                    check_utf8_prefix(&mut open, &self.assembly)?;
                    self.open = Some(open);
                }
                OpCode::Continuation => {
                    let Some(mut open) = self.open else {
                        return Err(WsError::protocol("continuation without a message"));
                    };
                    self.assembly
                        .extend_from_slice(buf.get(start..end).unwrap_or_default());
                    check_utf8_prefix(&mut open, &self.assembly)?;
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
                            if open.utf8_valid != self.assembly.len() && open.text {
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

/// Fails fast on invalid UTF-8 in an uncompressed text message as fragments arrive; a
/// character split across fragments is left for the next one to complete.
fn check_utf8_prefix(open: &mut Open, assembly: &[u8]) -> Result<(), WsError> {
    if !open.text || open.compressed {
        return Ok(());
    }
    let tail = assembly.get(open.utf8_valid..).unwrap_or_default();
    match std::str::from_utf8(tail) {
        Ok(_) => open.utf8_valid = assembly.len(),
        Err(e) if e.error_len().is_none() => open.utf8_valid += e.valid_up_to(),
        Err(_) => return Err(WsError::invalid_data("text message is not UTF-8")),
    }
    Ok(())
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
