//! Minimal WebSocket client framing for the load generator.
//!
//! The load generator must not be the bottleneck, so it speaks RFC 6455 itself: one
//! hand-written upgrade request, the response checked with `httparse` and tungstenite's
//! accept-key derivation, then raw frames — masked on the way out, parsed in place on the
//! way in (server frames are never masked). No allocation per inbound frame.

use tungstenite::handshake::derive_accept_key;

/// Opcodes this client cares about.
pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// A fixed client key is fine: the key only proves the server speaks WebSocket.
pub const CLIENT_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Inbound frames above this are treated as a protocol error (a runaway length field).
const MAX_FRAME: u64 = 64 << 20;

/// The HTTP/1.1 upgrade request for `path` on `host` (host includes the port).
pub fn handshake_request(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {CLIENT_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Outcome of looking at the bytes received so far during the upgrade.
#[derive(Debug, PartialEq, Eq)]
pub enum Handshake {
    /// The response head is not complete yet.
    Partial,
    /// Upgrade accepted; the head is this many bytes long (frames may follow it).
    Done(usize),
    /// The server refused or answered nonsense.
    Failed(String),
}

/// Checks the server's upgrade response: status 101 and the right accept key.
pub fn parse_handshake_response(buf: &[u8]) -> Handshake {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Partial) => Handshake::Partial,
        Err(e) => Handshake::Failed(format!("bad HTTP response: {e}")),
        Ok(httparse::Status::Complete(n)) => {
            if resp.code != Some(101) {
                return Handshake::Failed(format!(
                    "upgrade refused: HTTP {} {}",
                    resp.code.unwrap_or(0),
                    resp.reason.unwrap_or("")
                ));
            }
            let want = derive_accept_key(CLIENT_KEY.as_bytes());
            let ok = resp.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("sec-websocket-accept") && h.value == want.as_bytes()
            });
            if ok {
                Handshake::Done(n)
            } else {
                Handshake::Failed("missing or wrong Sec-WebSocket-Accept".into())
            }
        }
    }
}

/// One inbound frame, borrowed from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub fin: bool,
    pub opcode: u8,
    pub payload: &'a [u8],
}

/// Result of trying to parse one frame at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse<'a> {
    /// A whole frame, and how many bytes it used.
    Complete(Frame<'a>, usize),
    /// Need more bytes.
    Partial,
    /// The server broke the protocol; the connection should be dropped.
    Invalid(&'static str),
}

/// Parses one server-to-client frame at the start of `buf`.
pub fn parse_frame(buf: &[u8]) -> Parse<'_> {
    let (b0, b1) = match buf {
        [a, b, ..] => (*a, *b),
        _ => return Parse::Partial,
    };
    if b0 & 0x70 != 0 {
        return Parse::Invalid("RSV bits set without an extension");
    }
    if b1 & 0x80 != 0 {
        return Parse::Invalid("server frame is masked");
    }
    let (len, head) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4usize),
            None => return Parse::Partial,
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                (u64::from_be_bytes(a), 10usize)
            }
            None => return Parse::Partial,
        },
        n => (u64::from(n), 2usize),
    };
    if len > MAX_FRAME {
        return Parse::Invalid("frame too large");
    }
    // MAX_FRAME keeps this within usize on every supported target.
    let len = len as usize;
    match buf.get(head..head + len) {
        Some(payload) => Parse::Complete(
            Frame {
                fin: b0 & 0x80 != 0,
                opcode: b0 & 0x0f,
                payload,
            },
            head + len,
        ),
        None => Parse::Partial,
    }
}

/// Appends one complete, masked client frame to `out`.
pub fn encode_masked(opcode: u8, payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
    out.push(0x80 | (opcode & 0x0f));
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
}

/// XORs `data` with the repeating 4-byte key, a word at a time.
fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = data.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(if fin { 0x80 } else { 0 }) | op];
        let n = payload.len();
        if n < 126 {
            v.push(n as u8);
        } else if n <= 65535 {
            v.push(126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            v.push(127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn parses_all_length_forms_and_partials() {
        for size in [0usize, 5, 125, 126, 300, 65535, 65536, 200_000] {
            let payload = vec![b'x'; size];
            let f = server_frame(true, OP_TEXT, &payload);
            for cut in [0, 1, f.len().saturating_sub(1)] {
                if cut < f.len() {
                    assert_eq!(
                        parse_frame(&f[..cut]),
                        Parse::Partial,
                        "size {size} cut {cut}"
                    );
                }
            }
            let mut with_tail = f.clone();
            with_tail.extend_from_slice(b"\x81");
            match parse_frame(&with_tail) {
                Parse::Complete(fr, used) => {
                    assert_eq!(used, f.len());
                    assert!(fr.fin);
                    assert_eq!(fr.opcode, OP_TEXT);
                    assert_eq!(fr.payload.len(), size);
                }
                other => panic!("size {size}: {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_bad_frames() {
        let cases: &[(&[u8], &str)] = &[
            (&[0xC1, 0x00], "RSV bits set without an extension"),
            (&[0x81, 0x80, 0, 0, 0, 0], "server frame is masked"),
            (&[0x82, 127, 0xff, 0, 0, 0, 0, 0, 0, 0], "frame too large"),
        ];
        for (bytes, why) in cases {
            assert_eq!(parse_frame(bytes), Parse::Invalid(why));
        }
    }

    #[test]
    fn masking_round_trips() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for n in [0usize, 1, 3, 4, 7, 125, 126, 70_000] {
            let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let mut out = Vec::new();
            encode_masked(OP_TEXT, &payload, mask, &mut out);
            assert_eq!(out[0], 0x81);
            assert!(out[1] & 0x80 != 0);
            let head = match out[1] & 0x7f {
                126 => 4,
                127 => 10,
                _ => 2,
            };
            assert_eq!(&out[head..head + 4], &mask);
            let mut body = out[head + 4..].to_vec();
            apply_mask(&mut body, mask);
            assert_eq!(body, payload);
        }
    }

    #[test]
    fn handshake_checks_status_and_accept() {
        let accept = derive_accept_key(CLIENT_KEY.as_bytes());
        let good = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        let mut with_frame = good.clone().into_bytes();
        with_frame.extend_from_slice(&[0x81, 0x00]);
        assert_eq!(
            parse_handshake_response(&with_frame),
            Handshake::Done(good.len())
        );
        assert_eq!(
            parse_handshake_response(&good.as_bytes()[..20]),
            Handshake::Partial
        );
        let refused = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            parse_handshake_response(refused),
            Handshake::Failed(m) if m.contains("503")
        ));
        let wrong = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n";
        assert!(matches!(
            parse_handshake_response(wrong),
            Handshake::Failed(_)
        ));
    }
}
