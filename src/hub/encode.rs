//! Turning one batch into the one frame an audience shares.
//!
//! The payload is serialized straight into a [`FrameBuf`], whose header space sits in
//! front of it, so the finished frame is header + payload in one allocation that every
//! member of the audience then references. Deflated audiences get the batch compressed
//! once (no context takeover makes that frame valid for every one of them).

use super::Audience;
use crate::event::Event;
use crate::protocol::{encode_binary_batch, encode_trace_batch, BatchCompression};
use crate::ws::{Deflater, FrameBuf, OpCode};
use bytes::Bytes;

/// Reusable encoder state: the deflater and a scratch buffer for compression input.
#[derive(Debug)]
pub struct BatchEncoder {
    deflater: Deflater,
    scratch: Vec<u8>,
    min_compress: usize,
    /// Bytes given to / produced by the deflater, for the compression-ratio metric.
    pub deflate_in: u64,
    pub deflate_out: u64,
}

impl BatchEncoder {
    pub fn new(level: u8, min_compress: usize) -> Self {
        BatchEncoder {
            deflater: Deflater::new(level),
            scratch: Vec::new(),
            min_compress,
            deflate_in: 0,
            deflate_out: 0,
        }
    }

    /// Encodes `events` of `session` as one frame for `audience`.
    pub fn encode(
        &mut self,
        audience: &Audience,
        session: &str,
        events: &[&Event],
        now_ms: i64,
    ) -> Bytes {
        let estimate = events.iter().map(|e| e.json.len() + 24).sum::<usize>() + 128;
        let opcode = if audience.binary {
            OpCode::Binary
        } else {
            OpCode::Text
        };
        let write = |out: &mut Vec<u8>| {
            if audience.binary {
                encode_binary_batch(out, session, events.iter().copied(), now_ms);
            } else {
                let compression = if audience.delta {
                    BatchCompression::Delta
                } else {
                    BatchCompression::None
                };
                encode_trace_batch(out, session, events.iter().copied(), compression, now_ms);
            }
        };
        if audience.deflate {
            self.scratch.clear();
            write(&mut self.scratch);
            if self.scratch.len() >= self.min_compress {
                let mut frame = FrameBuf::with_capacity(self.scratch.len() / 3 + 16);
                self.deflater.compress_frame(&self.scratch, &mut frame);
                self.deflate_in += self.scratch.len() as u64;
                self.deflate_out += frame.len() as u64;
                return frame.finish(opcode, true);
            }
            let mut frame = FrameBuf::with_capacity(self.scratch.len());
            frame.payload_mut().extend_from_slice(&self.scratch);
            return frame.finish(opcode, false);
        }
        let mut frame = FrameBuf::with_capacity(estimate);
        write(frame.payload_vec());
        frame.finish(opcode, false)
    }

    /// Encodes one control message (already serialized JSON) as a text frame, compressing
    /// it when the client negotiated deflate and it is large enough.
    pub fn control(&mut self, deflate: bool, json: &[u8]) -> Bytes {
        self.message(deflate, true, json)
    }

    /// Encodes one whole message as a text or binary frame, compressed like any reply.
    pub fn message(&mut self, deflate: bool, text: bool, payload: &[u8]) -> Bytes {
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        if deflate && payload.len() >= self.min_compress {
            let mut frame = FrameBuf::with_capacity(payload.len() / 3 + 16);
            self.deflater.compress_frame(payload, &mut frame);
            self.deflate_in += payload.len() as u64;
            self.deflate_out += frame.len() as u64;
            return frame.finish(opcode, true);
        }
        let mut frame = FrameBuf::with_capacity(payload.len());
        frame.payload_mut().extend_from_slice(payload);
        frame.finish(opcode, false)
    }
}
