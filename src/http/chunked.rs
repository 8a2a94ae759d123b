//! A push decoder for `Transfer-Encoding: chunked` request bodies (RFC 9112 §7.1).
//!
//! Bytes arrive in whatever pieces the socket gives; [`ChunkedDecoder::feed`] takes each
//! piece, says how much of it belongs to the body framing, and accumulates the de-chunked
//! body up to a maximum (413 beyond it). Anything after the final CRLF is the next request
//! on the connection and is left unconsumed. Chunk extensions and trailers are skipped but
//! bounded, so a client cannot make the server buffer an endless line.

use super::HttpError;

/// Longest chunk-size line (size, extensions) accepted.
const MAX_LINE: usize = 4096;
/// Most trailer bytes accepted.
const MAX_TRAILERS: usize = 8192;

/// Progress after one [`ChunkedDecoder::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedStatus {
    /// The body is complete; `consumed` bytes of the input were framing or body, the rest
    /// belongs to the next request.
    Complete {
        /// Bytes of the input used.
        consumed: usize,
    },
    /// All input was used; feed more.
    Partial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size { value: usize, digits: usize },
    Extension { value: usize },
    SizeLf { value: usize },
    Data { remaining: usize },
    DataCr,
    DataLf,
    TrailerLineStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

/// De-chunks one request body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    body: Vec<u8>,
    max_body: usize,
    line: usize,
    trailers: usize,
}

impl ChunkedDecoder {
    /// A decoder refusing bodies larger than `max_body` bytes.
    pub fn new(max_body: usize) -> Self {
        ChunkedDecoder {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            body: Vec::new(),
            max_body,
            line: 0,
            trailers: 0,
        }
    }

    /// The body decoded so far (whole once `feed` said `Complete`).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body out, e.g. to parse it in place.
    pub fn take_body(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.body)
    }

    /// The final chunk and trailers have been read.
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds the next bytes of the connection.
    pub fn feed(&mut self, input: &[u8]) -> Result<ChunkedStatus, HttpError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Done {
                return Ok(ChunkedStatus::Complete { consumed: i });
            }
            if let State::Data { remaining } = self.state {
                let take = remaining.min(input.len() - i);
                self.body
                    .extend_from_slice(input.get(i..i + take).unwrap_or_default());
                i += take;
                self.state = if take == remaining {
                    State::DataCr
                } else {
                    State::Data {
                        remaining: remaining - take,
                    }
                };
                continue;
            }
            let b = input.get(i).copied().unwrap_or_default();
            i += 1;
            self.state = self.step(b)?;
        }
        if self.state == State::Done {
            Ok(ChunkedStatus::Complete { consumed: i })
        } else {
            Ok(ChunkedStatus::Partial)
        }
    }

    /// One byte of framing (everything but chunk data).
    fn step(&mut self, b: u8) -> Result<State, HttpError> {
        let bad = |m| Err(HttpError::BadChunk(m));
        Ok(match self.state {
            State::Size { value, digits } => {
                self.bump_line()?;
                match (b as char).to_digit(16) {
                    Some(d) => {
                        let value = value
                            .checked_mul(16)
                            .and_then(|v| v.checked_add(d as usize))
                            .ok_or(HttpError::BodyTooLarge)?;
                        State::Size {
                            value,
                            digits: digits + 1,
                        }
                    }
                    None if digits == 0 => return bad("missing chunk size"),
                    None => match b {
                        b';' | b' ' | b'\t' => State::Extension { value },
                        b'\r' => State::SizeLf { value },
                        _ => return bad("invalid chunk size"),
                    },
                }
            }
            // Extensions (and whitespace before them) are skipped; none is understood.
            State::Extension { value } => {
                self.bump_line()?;
                match b {
                    b'\r' => State::SizeLf { value },
                    b'\n' => return bad("bare LF in chunk extension"),
                    _ => State::Extension { value },
                }
            }
            State::SizeLf { value } => {
                if b != b'\n' {
                    return bad("chunk size line not ended by CRLF");
                }
                self.line = 0;
                if value == 0 {
                    State::TrailerLineStart
                } else if self.body.len().saturating_add(value) > self.max_body {
                    return Err(HttpError::BodyTooLarge);
                } else {
                    State::Data { remaining: value }
                }
            }
            State::Data { remaining } => State::Data { remaining },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return bad("chunk data not followed by CRLF"),
            },
            State::DataLf => match b {
                b'\n' => State::Size {
                    value: 0,
                    digits: 0,
                },
                _ => return bad("chunk data not followed by CRLF"),
            },
            State::TrailerLineStart => match b {
                b'\r' => State::FinalLf,
                _ => {
                    self.bump_trailers()?;
                    State::TrailerLine
                }
            },
            State::TrailerLine => {
                self.bump_trailers()?;
                match b {
                    b'\r' => State::TrailerLf,
                    _ => State::TrailerLine,
                }
            }
            State::TrailerLf => match b {
                b'\n' => State::TrailerLineStart,
                _ => return bad("trailer line not ended by CRLF"),
            },
            State::FinalLf => match b {
                b'\n' => State::Done,
                _ => return bad("chunked body not ended by CRLF"),
            },
            State::Done => State::Done,
        })
    }

    fn bump_line(&mut self) -> Result<(), HttpError> {
        self.line += 1;
        if self.line > MAX_LINE {
            return Err(HttpError::BadChunk("chunk size line too long"));
        }
        Ok(())
    }

    fn bump_trailers(&mut self) -> Result<(), HttpError> {
        self.trailers += 1;
        if self.trailers > MAX_TRAILERS {
            return Err(HttpError::BadChunk("trailers too long"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &[u8], piece: usize, max: usize) -> Result<(Vec<u8>, usize), u16> {
        let mut d = ChunkedDecoder::new(max);
        let mut offset = 0;
        while offset < input.len() {
            let end = (offset + piece).min(input.len());
            match d.feed(&input[offset..end]).map_err(|e| e.status())? {
                ChunkedStatus::Complete { consumed } => {
                    return Ok((d.take_body(), offset + consumed))
                }
                ChunkedStatus::Partial => offset = end,
            }
        }
        Err(0) // incomplete
    }

    /// (name, input, Ok((body, consumed)) or Err(status); status 0 = incomplete).
    type Case<'a> = (&'a str, &'a [u8], Result<(&'a [u8], usize), u16>);

    #[test]
    fn chunked_table() {
        let cases: &[Case] = &[
            ("simple", b"5\r\nhello\r\n0\r\n\r\n", Ok((b"hello", 15))),
            (
                "two chunks",
                b"2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
                Ok((b"hello", 20)),
            ),
            (
                "hex upper",
                b"A\r\n0123456789\r\n0\r\n\r\n",
                Ok((b"0123456789", 20)),
            ),
            (
                "extension",
                b"5;name=val\r\nhello\r\n0\r\n\r\n",
                Ok((b"hello", 24)),
            ),
            ("trailers", b"1\r\nx\r\n0\r\nX-T: 1\r\n\r\n", Ok((b"x", 19))),
            (
                "pipelined rest",
                b"1\r\nx\r\n0\r\n\r\nGET /",
                Ok((b"x", 11)),
            ),
            ("empty body", b"0\r\n\r\n", Ok((b"", 5))),
            ("no size", b"\r\n", Err(400)),
            ("bad size", b"g\r\n", Err(400)),
            ("bare lf", b"1\nx", Err(400)),
            ("data not crlf", b"1\r\nxy\r\n", Err(400)),
            ("over max", b"11\r\n", Err(413)),
            ("overflow", b"ffffffffffffffffffff\r\n", Err(413)),
            ("incomplete", b"5\r\nhel", Err(0)),
        ];
        for (name, input, want) in cases {
            for piece in [1, 2, 5, 1000] {
                let got = decode_in_pieces(input, piece, 16);
                let want = want.map(|(b, n)| (b.to_vec(), n));
                assert_eq!(got, want, "{name} piece {piece}");
            }
        }
        let mut long = b"1;".to_vec();
        long.extend(vec![b'a'; MAX_LINE]);
        assert_eq!(decode_in_pieces(&long, 100, 16), Err(400));
    }

    #[test]
    fn body_limit_across_chunks() {
        assert_eq!(decode_in_pieces(b"8\r\n12345678\r\n9\r\n", 3, 16), Err(413));
        assert!(decode_in_pieces(b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n", 3, 16).is_ok());
    }
}
