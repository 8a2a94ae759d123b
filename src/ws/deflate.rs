//! permessage-deflate (RFC 7692) without context takeover, both ways, on `miniz_oxide`.
//!
//! No context takeover means every message is a self-contained raw-deflate stream: a
//! compressed frame can be built once and sent to every subscriber that negotiated the
//! extension, and the inflater needs no per-connection window between messages. Each
//! direction still keeps its (de)compressor allocated and resets it per message, because
//! the compressor's tables are large enough that allocating per frame would show.
//!
//! Outbound: raw deflate, ended by a sync flush whose trailing `00 00 FF FF` is removed
//! (§7.2.1). Inbound: the same four bytes are appended before inflating (§7.2.2), and the
//! output is bounded so a small "zip bomb" frame cannot exceed `max_message_size`.

use miniz_oxide::deflate::core::{compress_to_output, CompressorOxide, TDEFLFlush, TDEFLStatus};
use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZError, MZFlush, MZStatus};

use super::frame::FrameBuf;
use super::WsError;

/// The tail a sync flush ends with; removed on the wire, restored before inflating.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// Output grows in steps of this many bytes while inflating.
const INFLATE_STEP: usize = 16 * 1024;

/// A reusable raw-deflate compressor producing permessage-deflate payloads.
pub struct Deflater {
    comp: Box<CompressorOxide>,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater").finish_non_exhaustive()
    }
}

impl Deflater {
    /// A compressor at `level` (clamped to 0..=9; 0 stores, 9 squeezes hardest).
    pub fn new(level: u8) -> Self {
        let mut comp = Box::<CompressorOxide>::default();
        comp.set_format_and_level(DataFormat::Raw, level.min(9));
        Deflater { comp }
    }

    /// Appends the compressed form of `input` to `out` (tail already removed).
    pub fn compress_into(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.comp.reset();
        let start = out.len();
        let (status, consumed) =
            compress_to_output(&mut self.comp, input, TDEFLFlush::Sync, |chunk| {
                out.extend_from_slice(chunk);
                true
            });
        // With an unbounded sink the compressor always takes all input in one call; if that
        // ever changed, falling back to a stored copy keeps the frame valid.
        if status == TDEFLStatus::Okay && consumed == input.len() {
            if out.ends_with(&SYNC_TAIL) && out.len() - start >= SYNC_TAIL.len() {
                out.truncate(out.len() - SYNC_TAIL.len());
            }
        } else {
            out.truncate(start);
            stored_block(input, out);
        }
    }

    /// Appends the compressed form of `input` to a frame's payload, so the caller can
    /// `finish(opcode, true)` it into a shared compressed frame.
    pub fn compress_frame(&mut self, input: &[u8], frame: &mut FrameBuf) {
        self.compress_into(input, frame.payload_mut().vec());
    }
}

/// Writes `input` as non-final stored blocks (a valid deflate stream that never fails).
fn stored_block(input: &[u8], out: &mut Vec<u8>) {
    for chunk in input.chunks(usize::from(u16::MAX)) {
        let len = chunk.len() as u16;
        out.push(0x00);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    if input.is_empty() {
        out.push(0x00);
    }
}

/// One-shot compression of a whole message payload (tail removed).
pub fn compress(payload: &[u8], level: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() / 2 + 16);
    Deflater::new(level).compress_into(payload, &mut out);
    out
}

/// A reusable raw-deflate decompressor for inbound compressed messages.
pub struct Inflater {
    state: Box<InflateState>,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater").finish_non_exhaustive()
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    /// A decompressor with a full 32 KiB window (any client window size fits).
    pub fn new() -> Self {
        Inflater {
            state: InflateState::new_boxed(DataFormat::Raw),
        }
    }

    /// Inflates one whole message payload (without its tail) and appends it to `out`.
    ///
    /// More than `max` bytes of output → 1009; a corrupt stream → 1007. A stream that simply
    /// stops mid-block yields what it decoded, like zlib's sync-flush readers do.
    pub fn decompress(
        &mut self,
        input: &[u8],
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), WsError> {
        self.state.reset(DataFormat::Raw);
        let start = out.len();
        let mut filled = start;
        let result = self.run(&[input, &SYNC_TAIL], start, max, out, &mut filled);
        out.truncate(filled);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn run(
        &mut self,
        pieces: &[&[u8]],
        start: usize,
        max: usize,
        out: &mut Vec<u8>,
        filled: &mut usize,
    ) -> Result<(), WsError> {
        for piece in pieces {
            let mut input: &[u8] = piece;
            loop {
                if *filled == out.len() {
                    out.resize(*filled + INFLATE_STEP, 0);
                }
                let Some(space) = out.get_mut(*filled..) else {
                    return Err(WsError::invalid_data("inflate buffer"));
                };
                let room = space.len();
                let res = inflate(&mut self.state, input, space, MZFlush::None);
                input = input.get(res.bytes_consumed..).unwrap_or_default();
                *filled += res.bytes_written;
                if *filled - start > max {
                    return Err(WsError::too_big(
                        "inflated message larger than max_message_size",
                    ));
                }
                match res.status {
                    // A final block ends the stream; whatever follows (our tail) is ignored.
                    Ok(MZStatus::StreamEnd) => return Ok(()),
                    Ok(_) => {}
                    // No progress possible: fine only when this piece is used up.
                    Err(MZError::Buf) if input.is_empty() => break,
                    Err(_) => return Err(WsError::invalid_data("invalid compressed data")),
                }
                let output_full = res.bytes_written == room;
                if input.is_empty() && !output_full {
                    break;
                }
                if res.bytes_consumed == 0 && res.bytes_written == 0 && !output_full {
                    return Err(WsError::invalid_data("inflate made no progress"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO_RFC: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

    #[test]
    fn rfc7692_hello_inflates() {
        let mut out = Vec::new();
        Inflater::new()
            .decompress(&HELLO_RFC, 1024, &mut out)
            .unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn rfc7692_hello_with_bfinal_and_stored_blocks() {
        // §7.2.3.1 final-block variant and §7.2.3.3 stored (uncompressed) block.
        let cases: [&[u8]; 2] = [
            &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            &[
                0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
            ],
        ];
        for input in cases {
            let mut out = Vec::new();
            Inflater::new().decompress(input, 1024, &mut out).unwrap();
            assert_eq!(out, b"Hello", "{input:02x?}");
        }
    }

    #[test]
    fn compress_hello_matches_rfc() {
        // miniz picks the same fixed-Huffman block as the RFC example.
        let c = compress(b"Hello", 6);
        let mut out = Vec::new();
        Inflater::new().decompress(&c, 1024, &mut out).unwrap();
        assert_eq!(out, b"Hello");
        assert!(!c.ends_with(&SYNC_TAIL));
    }

    #[test]
    fn round_trip_sizes_and_levels() {
        let mut inf = Inflater::new();
        let mut def = Deflater::new(6);
        for len in [0usize, 1, 100, 4096, 70_000, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ (i / 7) as u8).collect();
            for level in [0u8, 1, 6, 9] {
                let c = compress(&data, level);
                let mut out = Vec::new();
                inf.decompress(&c, len, &mut out).unwrap();
                assert_eq!(out, data, "len {len} level {level}");
            }
            let mut c = Vec::new();
            def.compress_into(&data, &mut c);
            let mut out = vec![1, 2, 3];
            inf.decompress(&c, len, &mut out).unwrap();
            assert_eq!(&out[3..], &data[..]);
        }
    }

    #[test]
    fn output_bound_is_1009() {
        let data = vec![b'a'; 100_000];
        let c = compress(&data, 9);
        assert!(c.len() < 1000);
        let mut out = Vec::new();
        let err = Inflater::new()
            .decompress(&c, 99_999, &mut out)
            .unwrap_err();
        assert_eq!(err.close_code, 1009);
        assert!(out.is_empty());
        Inflater::new().decompress(&c, 100_000, &mut out).unwrap();
        assert_eq!(out.len(), 100_000);
    }

    #[test]
    fn garbage_is_1007_and_inflater_recovers() {
        let mut inf = Inflater::new();
        let mut out = Vec::new();
        // BTYPE=11 is reserved.
        let err = inf
            .decompress(&[0xff, 0xff, 0xff], 1024, &mut out)
            .unwrap_err();
        assert_eq!(err.close_code, 1007);
        inf.decompress(&HELLO_RFC, 1024, &mut out).unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn compress_frame_builds_rsv1_frame() {
        let mut frame = FrameBuf::new();
        Deflater::new(6).compress_frame(b"Hello", &mut frame);
        let bytes = frame.finish(super::super::OpCode::Text, true);
        assert_eq!(bytes[0], 0xC1);
        let mut out = Vec::new();
        Inflater::new()
            .decompress(&bytes[2..], 64, &mut out)
            .unwrap();
        assert_eq!(out, b"Hello");
    }
}
