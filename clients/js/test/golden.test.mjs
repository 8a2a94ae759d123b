// The golden-frame corpus in tests/golden/, shared with the Rust decoders
// (tests/golden_frames.rs): both must turn every frame into expected.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateRawSync, constants } from 'node:zlib';
import { decodeFrame, decodeBinaryBatch, undelta } from '../src/index.js';

const dir = resolve(dirname(fileURLToPath(import.meta.url)), '../../../tests/golden');
const read = (name) => readFileSync(join(dir, name));
const expected = JSON.parse(read('expected.json'));
// permessage-deflate payloads lack the 00 00 ff ff tail (RFC 7692 §7.2.2).
const inflate = (buf) => inflateRawSync(Buffer.concat([buf, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH });
const asBuffer = (b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);

function checkBatch(msg) {
  assert.equal(msg.type, 'trace_batch');
  assert.equal(msg.sessionId, 'golden');
  assert.equal(msg.timestamp, 1700000009999);
  assert.deepEqual(msg.events, expected);
}

test('plain frame', () => checkBatch(decodeFrame(read('plain.json').toString('utf8'))));

test('delta frame is rebuilt into whole events', () => {
  const raw = JSON.parse(read('delta.json'));
  assert.equal(raw.compression, 'delta');
  assert.notDeepEqual(raw.events, expected);
  checkBatch(decodeFrame(read('delta.json').toString('utf8')));
  assert.deepEqual(undelta(raw.events), expected);
});

test('binary frame, as a Buffer and as an ArrayBuffer', () => {
  checkBatch(decodeFrame(read('binary.bin')));
  const b = decodeBinaryBatch(asBuffer(read('binary.bin')));
  assert.equal(b.firstSeq, 41);
  assert.deepEqual(b.events.map((e) => [e.seq, e.timestamp, e.sessionId, e.agentId, e.type]), expected.map((e) => [e.seq, Math.trunc(e.timestamp), e.sessionId, e.agentId ?? null, e.type]));
});

test('deflated frames (permessage-deflate payloads)', () => {
  checkBatch(decodeFrame(inflate(read('delta.deflate')).toString('utf8')));
  checkBatch(decodeFrame(asBuffer(inflate(read('binary.deflate')))));
});

test('every bad binary frame is refused with a binary_decode error', () => {
  const bad = readdirSync(join(dir, 'bad'));
  assert.ok(bad.length >= 5);
  for (const name of bad) {
    assert.throws(() => decodeBinaryBatch(read(join('bad', name))), (e) => e.code === 'binary_decode', name);
  }
});

test('random corruptions of the binary frame decode or fail cleanly, never otherwise', () => {
  const good = read('binary.bin');
  let seed = 12345;
  const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    let buf = Buffer.from(good);
    const kind = rand(3);
    if (kind === 0) buf = buf.subarray(0, rand(buf.length));
    else if (kind === 1) for (let k = 0; k <= rand(4); k++) buf[rand(buf.length)] = rand(256);
    else buf = Buffer.concat([buf, Buffer.from([rand(256)])]);
    try {
      const b = decodeBinaryBatch(buf);
      assert.ok(Array.isArray(b.events));
    } catch (e) {
      assert.equal(e.code, 'binary_decode', `corruption ${i}: ${e.stack}`);
      refused++;
    }
  }
  assert.ok(refused > 1000);
});
