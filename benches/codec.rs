//! Wire codec costs on the hot paths: inbound frame parse + unmask + UTF-8 check, outbound
//! frame assembly for a fan-out payload, and permessage-deflate of a batch.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use tracecast::ws::{compress, Deflater, FrameBuf, MessageReader, OpCode};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client text frame with a 256-byte JSON-ish payload.
fn client_text_frame() -> Vec<u8> {
    let mut payload = br#"{"type":"publish","event":{"sessionId":"s1","agentId":"a1","type":"task_started","data":{"#.to_vec();
    while payload.len() < 254 {
        payload.push(b'x');
    }
    payload.extend_from_slice(b"}}");
    payload.truncate(256);
    let mut frame = vec![0x81, 0x80 | 126];
    frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// A 12 KB trace_batch-like JSON document.
fn json_batch() -> Vec<u8> {
    let mut s = String::from(r#"{"type":"trace_batch","sessionId":"s1","events":["#);
    let mut i = 0;
    while s.len() < 12 * 1024 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"seq":{i},"timestamp":{},"sessionId":"s1","agentId":"agent-{}","type":"state_changed","data":{{"from":"idle","to":"running","n":{}}}}}"#,
            1_700_000_000_000u64 + i * 7,
            i % 13,
            i * 31
        ));
        i += 1;
    }
    s.push_str("]}");
    s.into_bytes()
}

fn frame_parse(c: &mut Criterion) {
    let frame = client_text_frame();
    let mut g = c.benchmark_group("frame_parse");
    let mut reader = MessageReader::new(1 << 20, false);
    let mut buf = frame.clone();
    g.bench_function("one_256B_text", |b| {
        b.iter(|| {
            // Re-copy each time: unmasking is in place.
            buf.copy_from_slice(&frame);
            let read = reader.read(black_box(&mut buf)).ok();
            black_box(read.map(|r| r.consumed))
        })
    });
    let batch: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * 100)
        .collect();
    let mut buf = batch.clone();
    g.bench_function("batch_100x256B_text", |b| {
        b.iter(|| {
            buf.copy_from_slice(&batch);
            let mut off = 0;
            let mut n = 0;
            while let Ok(read) = reader.read(&mut buf[off..]) {
                if read.message.is_none() {
                    break;
                }
                n += 1;
                off += read.consumed;
            }
            black_box(n)
        })
    });
    g.finish();
}

fn frame_encode(c: &mut Criterion) {
    let payload = json_batch();
    c.bench_function("frame_encode/framebuf_12KB", |b| {
        b.iter(|| {
            let mut fb = FrameBuf::with_capacity(payload.len());
            fb.payload_mut().extend_from_slice(black_box(&payload));
            black_box(fb.finish(OpCode::Text, false))
        })
    });
}

fn deflate(c: &mut Criterion) {
    let payload = json_batch();
    let mut g = c.benchmark_group("deflate");
    g.bench_function("compress_12KB_json_level6_oneshot", |b| {
        b.iter(|| black_box(compress(black_box(&payload), 6)))
    });
    let mut deflater = Deflater::new(6);
    let mut out = Vec::with_capacity(payload.len());
    g.bench_function("compress_12KB_json_level6_reused", |b| {
        b.iter(|| {
            out.clear();
            deflater.compress_into(black_box(&payload), &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, frame_parse, frame_encode, deflate);
criterion_main!(benches);
