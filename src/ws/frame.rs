//! One WebSocket frame header at a time, inbound and outbound (RFC 6455 §5.2).
//!
//! Inbound, [`parse_header`] looks at the front of the read buffer and says
//! `Complete(header)`, `Partial` (read more) or the [`WsError`] to close with. Every rule
//! that can be judged from the header alone is judged here, before the payload arrives, so a
//! hostile length is refused without buffering it. Rules that need the message context
//! (fragmentation, cumulative size, UTF-8) live in [`super::message`].
//!
//! Outbound, server frames are never masked, so the header only depends on opcode, RSV1 and
//! length: [`FrameBuf`] reserves the largest header in front of the payload, and `finish`
//! writes the real header right before the payload and hands back one contiguous `Bytes`
//! without copying the payload. That `Bytes` is what the hub shares among subscribers.

use bytes::Bytes;

use super::WsError;

/// Largest header of an unmasked (server) frame: 2 + 8-byte extended length.
pub const MAX_SERVER_HEADER: usize = 10;

/// Largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcodes that RFC 6455 defines; the reserved ones are a protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: the next fragment of the open data message.
    Continuation,
    /// 0x1: UTF-8 text.
    Text,
    /// 0x2: binary.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// The opcode for a wire nibble, `None` for the reserved ones.
    pub fn from_u8(n: u8) -> Option<OpCode> {
        match n {
            0x0 => Some(OpCode::Continuation),
            0x1 => Some(OpCode::Text),
            0x2 => Some(OpCode::Binary),
            0x8 => Some(OpCode::Close),
            0x9 => Some(OpCode::Ping),
            0xA => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// The wire nibble.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: ≤125 bytes, never fragmented, may arrive between fragments.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// What a push parser says about the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// Parsed; the value says how many bytes it used.
    Complete(T),
    /// Valid so far, but more bytes are needed.
    Partial,
}

/// The per-connection rules the header parser applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRules {
    /// permessage-deflate was negotiated, so RSV1 may mark the first frame of a data message.
    pub deflate: bool,
    /// Largest payload accepted in one frame (`max_message_size`); bigger → 1009.
    pub max_payload: usize,
    /// Client frames must be masked (RFC 6455 §5.1). Only tests of a client would turn it off.
    pub require_mask: bool,
}

impl FrameRules {
    /// Rules for frames a server receives from a client.
    pub fn server(deflate: bool, max_payload: usize) -> Self {
        FrameRules {
            deflate,
            max_payload,
            require_mask: true,
        }
    }
}

/// A validated inbound frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Last frame of the message.
    pub fin: bool,
    /// Set: the message is compressed (permessage-deflate).
    pub rsv1: bool,
    /// Always false once validated (no extension defines it).
    pub rsv2: bool,
    /// Always false once validated (no extension defines it).
    pub rsv3: bool,
    /// The frame's opcode.
    pub opcode: OpCode,
    /// The payload is masked with `mask`.
    pub masked: bool,
    /// The masking key (zeros when unmasked).
    pub mask: [u8; 4],
    /// Payload length in bytes, already checked against `max_payload`.
    pub payload_len: usize,
    /// Bytes of header before the payload (2..=14).
    pub header_len: usize,
}

impl FrameHeader {
    /// Header plus payload: the bytes this frame occupies in the buffer.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// Parses and validates the frame header at the front of `buf`.
///
/// Errors are judged as early as the bytes allow: the first two bytes are checked even
/// when the extended length has not arrived yet.
pub fn parse_header(buf: &[u8], rules: &FrameRules) -> Result<Status<FrameHeader>, WsError> {
    let (b0, b1) = match buf {
        [b0, b1, ..] => (*b0, *b1),
        _ => return Ok(Status::Partial),
    };
    let fin = b0 & 0x80 != 0;
    let rsv1 = b0 & 0x40 != 0;
    let rsv2 = b0 & 0x20 != 0;
    let rsv3 = b0 & 0x10 != 0;
    let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(WsError::protocol("reserved opcode"))?;
    if rsv2 || rsv3 {
        return Err(WsError::protocol("RSV2/RSV3 set without an extension"));
    }
    // RFC 7692 §6: RSV1 marks a compressed message on its first frame only; Text/Binary
    // are exactly the first frames (continuations carry opcode 0, controls are never
    // compressed).
    if rsv1 && !(rules.deflate && matches!(opcode, OpCode::Text | OpCode::Binary)) {
        return Err(WsError::protocol(
            "RSV1 set on a frame that cannot be compressed",
        ));
    }
    let masked = b1 & 0x80 != 0;
    if rules.require_mask && !masked {
        return Err(WsError::protocol("client frame not masked"));
    }
    let len7 = b1 & 0x7F;
    if opcode.is_control() {
        if !fin {
            return Err(WsError::protocol("fragmented control frame"));
        }
        if len7 > 125 {
            return Err(WsError::protocol("control frame longer than 125 bytes"));
        }
    }
    let ext_len = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask_len = if masked { 4 } else { 0 };
    let header_len = 2 + ext_len + mask_len;
    let Some(ext) = buf.get(2..2 + ext_len) else {
        return Ok(Status::Partial);
    };
    let payload_len: u64 = match *ext {
        [] => u64::from(len7),
        [a, b] => {
            let n = u16::from_be_bytes([a, b]);
            if n < 126 {
                return Err(WsError::protocol("non-minimal 16-bit length"));
            }
            u64::from(n)
        }
        [a, b, c, d, e, f, g, h] => {
            let n = u64::from_be_bytes([a, b, c, d, e, f, g, h]);
            if n >> 63 != 0 {
                return Err(WsError::protocol("64-bit length with the top bit set"));
            }
            if n <= u64::from(u16::MAX) {
                return Err(WsError::protocol("non-minimal 64-bit length"));
            }
            n
        }
        _ => return Err(WsError::protocol("bad length encoding")),
    };
    let payload_len = match usize::try_from(payload_len) {
        Ok(n) if n <= rules.max_payload => n,
        _ => return Err(WsError::too_big("frame larger than max_message_size")),
    };
    let mut mask = [0u8; 4];
    if masked {
        let Some(key) = buf.get(2 + ext_len..header_len) else {
            return Ok(Status::Partial);
        };
        mask.copy_from_slice(key);
    }
    Ok(Status::Complete(FrameHeader {
        fin,
        rsv1,
        rsv2,
        rsv3,
        opcode,
        masked,
        mask,
        payload_len,
        header_len,
    }))
}

/// XORs `data` with the masking key in place (masking and unmasking are the same).
///
/// Works eight bytes at a time through `u64`, which the compiler vectorises; no `unsafe`.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        if let Ok(arr) = <[u8; 8]>::try_from(&*chunk) {
            chunk.copy_from_slice(&(u64::from_ne_bytes(arr) ^ wide).to_ne_bytes());
        }
    }
    // Chunks of 8 keep the key aligned, so the tail restarts at key byte 0.
    for (byte, k) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= k;
    }
}

/// Length of the minimal unmasked header for this payload length.
fn server_header_len(payload_len: usize) -> usize {
    if payload_len < 126 {
        2
    } else if payload_len <= usize::from(u16::MAX) {
        4
    } else {
        10
    }
}

/// Writes a FIN frame header into `out`, whose length [`server_header_len`] chose.
fn write_server_header(out: &mut [u8], opcode: OpCode, rsv1: bool, payload_len: usize) {
    let b0 = 0x80 | if rsv1 { 0x40 } else { 0 } | opcode.as_u8();
    match out {
        [h0, h1] => {
            *h0 = b0;
            // Guarded by server_header_len: < 126 fits the 7-bit field.
            *h1 = payload_len as u8;
        }
        [h0, h1, rest @ ..] if rest.len() == 2 => {
            *h0 = b0;
            *h1 = 126;
            rest.copy_from_slice(&(payload_len as u16).to_be_bytes());
        }
        [h0, h1, rest @ ..] => {
            *h0 = b0;
            *h1 = 127;
            rest.copy_from_slice(&(payload_len as u64).to_be_bytes());
        }
        _ => {}
    }
}

/// An outbound frame under construction: header space reserved in front, payload appended
/// behind it, so `finish` never moves the payload.
#[derive(Debug, Clone)]
pub struct FrameBuf {
    buf: Vec<u8>,
}

impl Default for FrameBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameBuf {
    /// An empty frame with [`MAX_SERVER_HEADER`] bytes reserved.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// Like [`FrameBuf::new`], with room for `payload` bytes before it reallocates.
    pub fn with_capacity(payload: usize) -> Self {
        let mut buf = Vec::with_capacity(MAX_SERVER_HEADER.saturating_add(payload));
        buf.resize(MAX_SERVER_HEADER, 0);
        FrameBuf { buf }
    }

    /// Append-only access to the payload (implements `std::io::Write` for serializers).
    pub fn payload_mut(&mut self) -> Payload<'_> {
        Payload { buf: &mut self.buf }
    }

    /// The payload written so far.
    pub fn payload(&self) -> &[u8] {
        self.buf.get(MAX_SERVER_HEADER..).unwrap_or_default()
    }

    /// Payload length so far.
    pub fn len(&self) -> usize {
        self.buf.len() - MAX_SERVER_HEADER
    }

    /// No payload yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the payload but keeps the allocation, to build another frame.
    pub fn clear(&mut self) {
        self.buf.truncate(MAX_SERVER_HEADER);
    }

    /// Writes the FIN frame header right before the payload and returns header + payload as
    /// one `Bytes`, without copying the payload. Control opcodes are the caller's duty to
    /// keep ≤125 bytes (use [`ping_frame`] and friends).
    pub fn finish(self, opcode: OpCode, rsv1: bool) -> Bytes {
        let mut buf = self.buf;
        let payload_len = buf.len() - MAX_SERVER_HEADER;
        let hlen = server_header_len(payload_len);
        let start = MAX_SERVER_HEADER - hlen;
        if let Some(head) = buf.get_mut(start..MAX_SERVER_HEADER) {
            write_server_header(head, opcode, rsv1, payload_len);
        }
        Bytes::from(buf).slice(start..)
    }
}

/// The payload half of a [`FrameBuf`]: grows like a `Vec<u8>`, but cannot touch the
/// reserved header bytes.
#[derive(Debug)]
pub struct Payload<'a> {
    buf: &'a mut Vec<u8>,
}

impl Payload<'_> {
    /// Appends bytes.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }
    /// Appends one byte.
    pub fn push(&mut self, byte: u8) {
        self.buf.push(byte);
    }
    /// Reserves room for `additional` more payload bytes.
    pub fn reserve(&mut self, additional: usize) {
        self.buf.reserve(additional);
    }
    /// Shortens the payload to `len` bytes (no-op if it is shorter).
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(MAX_SERVER_HEADER.saturating_add(len));
    }
    /// Payload length.
    pub fn len(&self) -> usize {
        self.buf.len() - MAX_SERVER_HEADER
    }
    /// No payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The backing vector, so the deflater can append straight into the frame.
    pub(crate) fn vec(&mut self) -> &mut Vec<u8> {
        self.buf
    }
}

impl std::ops::Deref for Payload<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buf.get(MAX_SERVER_HEADER..).unwrap_or_default()
    }
}

impl std::ops::DerefMut for Payload<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buf.get_mut(MAX_SERVER_HEADER..).unwrap_or_default()
    }
}

impl std::io::Write for Payload<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One FIN frame holding a copy of `payload` (for small or one-off frames).
pub fn encode_frame(opcode: OpCode, rsv1: bool, payload: &[u8]) -> Bytes {
    let mut frame = FrameBuf::with_capacity(payload.len());
    frame.payload_mut().extend_from_slice(payload);
    frame.finish(opcode, rsv1)
}

/// A close frame; the reason is cut to 123 bytes on a character boundary so the frame stays
/// a valid control frame.
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut frame = FrameBuf::with_capacity(2 + end);
    let mut p = frame.payload_mut();
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(reason.as_bytes().get(..end).unwrap_or_default());
    frame.finish(OpCode::Close, false)
}

/// A ping frame; the payload is cut to 125 bytes.
pub fn ping_frame(payload: &[u8]) -> Bytes {
    control(OpCode::Ping, payload)
}

/// A pong frame; the payload is cut to 125 bytes.
pub fn pong_frame(payload: &[u8]) -> Bytes {
    control(OpCode::Pong, payload)
}

fn control(opcode: OpCode, payload: &[u8]) -> Bytes {
    let end = payload.len().min(MAX_CONTROL_PAYLOAD);
    encode_frame(opcode, false, payload.get(..end).unwrap_or_default())
}

/// Builds client (masked) frames for tests, with a chosen length encoding.
#[cfg(test)]
pub(crate) mod testing {
    use super::apply_mask;

    /// Length forms a client may pick (non-minimal ones are protocol errors).
    #[derive(Clone, Copy)]
    pub enum Len {
        Minimal,
        Force16,
        Force64,
    }

    pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked frame: `b0` is FIN/RSV/opcode as on the wire.
    pub fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        client_frame_len(b0, payload, Len::Minimal)
    }

    pub fn client_frame_len(b0: u8, payload: &[u8], len: Len) -> Vec<u8> {
        let n = payload.len();
        let mut out = vec![b0];
        match len {
            Len::Minimal if n < 126 => out.push(0x80 | n as u8),
            Len::Minimal if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            Len::Force16 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&MASK);
        let mut p = payload.to_vec();
        apply_mask(&mut p, MASK);
        out.extend_from_slice(&p);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{client_frame, client_frame_len, Len};
    use super::*;

    const MAX: usize = 1 << 20;

    fn parse(buf: &[u8], deflate: bool) -> Result<Status<FrameHeader>, u16> {
        parse_header(buf, &FrameRules::server(deflate, MAX)).map_err(|e| e.close_code)
    }

    fn code(buf: &[u8], deflate: bool) -> Option<u16> {
        parse(buf, deflate).err()
    }

    #[test]
    fn header_rules_table() {
        let long = vec![b'x'; 200];
        let cases: &[(&str, Vec<u8>, bool, Option<u16>)] = &[
            ("masked text", client_frame(0x81, b"hi"), false, None),
            (
                "unmasked text",
                vec![0x81, 0x02, b'h', b'i'],
                false,
                Some(1002),
            ),
            (
                "rsv1 without deflate",
                client_frame(0xC1, b"x"),
                false,
                Some(1002),
            ),
            (
                "rsv1 text with deflate",
                client_frame(0xC1, b"x"),
                true,
                None,
            ),
            (
                "rsv1 binary with deflate",
                client_frame(0xC2, b"x"),
                true,
                None,
            ),
            (
                "rsv1 continuation",
                client_frame(0xC0, b"x"),
                true,
                Some(1002),
            ),
            ("rsv1 ping", client_frame(0xC9, b"x"), true, Some(1002)),
            ("rsv2", client_frame(0xA1, b"x"), true, Some(1002)),
            ("rsv3", client_frame(0x91, b"x"), true, Some(1002)),
            ("control 125", client_frame(0x89, &long[..125]), false, None),
            (
                "control 126",
                client_frame(0x89, &long[..126]),
                false,
                Some(1002),
            ),
            (
                "close 126",
                client_frame(0x88, &long[..126]),
                false,
                Some(1002),
            ),
            (
                "fragmented ping",
                client_frame(0x09, b""),
                false,
                Some(1002),
            ),
            (
                "fragmented close",
                client_frame(0x08, b""),
                false,
                Some(1002),
            ),
            ("unfinished text ok", client_frame(0x01, b"a"), false, None),
            (
                "16-bit for 125",
                client_frame_len(0x82, &long[..125], Len::Force16),
                false,
                Some(1002),
            ),
            (
                "16-bit for 126",
                client_frame_len(0x82, &long[..126], Len::Force16),
                false,
                None,
            ),
            (
                "64-bit for 200",
                client_frame_len(0x82, &long, Len::Force64),
                false,
                Some(1002),
            ),
        ];
        for (name, frame, deflate, want) in cases {
            assert_eq!(code(frame, *deflate), *want, "{name}");
        }
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                code(&client_frame(0x80 | op, b""), false),
                Some(1002),
                "opcode {op:#x}"
            );
        }
        for op in [0u8, 1, 2, 8, 9, 0xA] {
            let b0 = if op == 0 { 0x80 } else { 0x80 | op };
            assert_eq!(code(&client_frame(b0, b""), false), None, "opcode {op:#x}");
        }
    }

    #[test]
    fn sixty_four_bit_lengths() {
        let mut f = vec![0x82, 0x80 | 127];
        f.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(code(&f, false), Some(1002));
        let mut f = vec![0x82, 0x80 | 127];
        f.extend_from_slice(&0x1_0000u64.to_be_bytes());
        f.extend_from_slice(&[0; 4]);
        match parse(&f, false) {
            Ok(Status::Complete(h)) => {
                assert_eq!((h.payload_len, h.header_len), (0x1_0000, 14));
            }
            other => panic!("{other:?}"),
        }
        let mut f = vec![0x82, 0x80 | 127];
        f.extend_from_slice(&((MAX as u64) + 1).to_be_bytes());
        assert_eq!(code(&f, false), Some(1009));
    }

    #[test]
    fn too_big_is_1009_before_the_payload() {
        let rules = FrameRules::server(false, 100);
        let f = client_frame(0x82, &[0; 101]);
        assert_eq!(parse_header(&f[..8], &rules).unwrap_err().close_code, 1009);
        assert!(parse_header(&client_frame(0x82, &[0; 100]), &rules).is_ok());
    }

    #[test]
    fn partial_at_every_prefix() {
        let f = client_frame_len(0x82, &[7; 300], Len::Minimal);
        for cut in 0..8 {
            assert_eq!(parse(&f[..cut], false), Ok(Status::Partial), "cut {cut}");
        }
        match parse(&f[..8], false) {
            Ok(Status::Complete(h)) => {
                assert!(h.fin && h.masked && !h.rsv1);
                assert_eq!(h.opcode, OpCode::Binary);
                assert_eq!((h.payload_len, h.header_len, h.frame_len()), (300, 8, 308));
            }
            other => panic!("{other:?}"),
        }
        // A bad first byte is refused before the rest arrives.
        assert_eq!(code(&[0x83, 0x80], false), Some(1002));
    }

    #[test]
    fn mask_round_trip_all_lengths() {
        for n in 0..40 {
            let data: Vec<u8> = (0..n as u8).collect();
            let mut d = data.clone();
            apply_mask(&mut d, [1, 2, 3, 4]);
            for (i, (a, b)) in d.iter().zip(&data).enumerate() {
                assert_eq!(*a, b ^ [1, 2, 3, 4][i % 4]);
            }
            apply_mask(&mut d, [1, 2, 3, 4]);
            assert_eq!(d, data);
        }
    }

    #[test]
    fn framebuf_header_forms() {
        for (n, hlen) in [
            (0usize, 2usize),
            (125, 2),
            (126, 4),
            (65_535, 4),
            (65_536, 10),
            (12_000, 4),
        ] {
            let mut fb = FrameBuf::with_capacity(n);
            fb.payload_mut().extend_from_slice(&vec![9; n]);
            let ptr = fb.payload().as_ptr();
            let bytes = fb.finish(OpCode::Binary, false);
            assert_eq!(bytes.len(), n + hlen, "len {n}");
            // Zero copy: the payload did not move.
            assert_eq!(bytes[hlen..].as_ptr(), ptr);
            let rules = FrameRules {
                deflate: false,
                max_payload: MAX,
                require_mask: false,
            };
            match parse_header(&bytes, &rules) {
                Ok(Status::Complete(h)) => {
                    assert_eq!((h.payload_len, h.header_len, h.fin), (n, hlen, true));
                    assert!(!h.masked);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn framebuf_write_and_rsv1() {
        use std::io::Write as _;
        let mut fb = FrameBuf::new();
        write!(fb.payload_mut(), "{{\"a\":{}}}", 1).unwrap();
        fb.payload_mut().push(b' ');
        fb.payload_mut().truncate(7);
        assert_eq!(fb.payload(), b"{\"a\":1}");
        let b = fb.finish(OpCode::Text, true);
        assert_eq!(&b[..], b"\xC1\x07{\"a\":1}");
    }

    #[test]
    fn control_frame_helpers() {
        assert_eq!(&close_frame(1000, "")[..], &[0x88, 0x02, 0x03, 0xE8]);
        let long = "é".repeat(100);
        let c = close_frame(1001, &long);
        assert!(c.len() - 2 <= 125);
        assert!(std::str::from_utf8(&c[4..]).is_ok());
        assert_eq!(&ping_frame(b"p")[..], &[0x89, 0x01, b'p']);
        assert_eq!(pong_frame(&[0; 300]).len(), 127);
        assert_eq!(&encode_frame(OpCode::Text, false, b"hi")[..], b"\x81\x02hi");
    }
}
