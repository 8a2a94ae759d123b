// The client against the real server, started on a free port by each test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TraceStreamingClient } from '../src/index.js';
import { TestServer, WebSocket, waitFor, collect, ev } from './server.mjs';

const make = (server, opts = {}) => new TraceStreamingClient({ serverUrl: server.wsUrl, WebSocket, reconnectDelay: 50, maxReconnectDelay: 400, ...opts });
const seqs = (events) => events.map((e) => e.seq);
const increasing = (list) => list.every((s, i) => i === 0 || s > list[i - 1]);

test('live: stored events arrive as initial traces, then live ones, one trace_event each, in seq order', async (t) => {
  const server = await TestServer.start();
  t.after(() => server.close());
  await server.publish([ev(0), ev(1), ev(2)]);
  const client = make(server);
  t.after(() => client.disconnect());
  const got = collect(client);
  await client.connect();
  const info = await client.subscribeToSession('s1');
  assert.equal(info.eventCount, 3);
  await got.until(3);
  const ack = await server.publish([ev(3), ev(4)]);
  await got.until(5);
  assert.deepEqual(got.map((e) => e.data.i), [0, 1, 2, 3, 4]);
  assert.ok(increasing(seqs(got)));
  assert.equal(got[4].seq, ack.lastSeq);
  assert.equal(client.getMetrics().eventsReceived, 5);
  assert.equal(client.getMetrics().connected, true);
});

test('delta batches are rebuilt into whole events, identical to a plain client', async (t) => {
  const server = await TestServer.start('batch_timeout_ms = 50');
  t.after(() => server.close());
  const plain = make(server, { compression: 'none' });
  const delta = make(server, { compression: 'delta' });
  t.after(() => { plain.disconnect(); delta.disconnect(); });
  const a = collect(plain);
  const b = collect(delta);
  let deltaFrames = 0;
  delta.on('message', (m) => { if (m.type === 'trace_batch') deltaFrames++; });
  let rawDelta = false;
  await Promise.all([plain.connect(), delta.connect()]);
  delta.ws.addEventListener('message', (m) => { if (typeof m.data === 'string' && m.data.includes('"compression":"delta"')) rawDelta = true; });
  await plain.subscribeToSession('s1');
  await delta.subscribeToSession('s1');
  const batch = [];
  for (let i = 0; i < 40; i++) batch.push(ev(i, i % 4 === 0 ? { extra: 'x' } : { phase: 'p' }));
  await server.publish(batch);
  await a.until(40);
  await b.until(40);
  assert.ok(rawDelta, 'the server really sent delta frames');
  assert.ok(deltaFrames > 0);
  assert.deepEqual([...b], [...a]);
  assert.ok(!b.some((e) => '$removed' in e));
});

test('binary protocol: tracecast.bin frames decode to the same events', async (t) => {
  const server = await TestServer.start();
  t.after(() => server.close());
  const json = make(server);
  const bin = make(server, { binaryProtocol: true });
  t.after(() => { json.disconnect(); bin.disconnect(); });
  const a = collect(json);
  const b = collect(bin);
  let binaryFrames = 0;
  bin.on('message', (m) => { if (m.binary) binaryFrames++; });
  await Promise.all([json.connect(), bin.connect()]);
  assert.equal(bin.serverInfo.binaryProtocol.active, true);
  await json.subscribeToSession('s1');
  await bin.subscribeToSession('s1');
  await server.publish([ev(0), ev(1, { agentId: undefined, data: { nested: { ü: 'ñ' } } }), ev(2)]);
  await a.until(3);
  await b.until(3);
  assert.ok(binaryFrames > 0, 'live batches came as binary frames');
  assert.deepEqual([...b], [...a]);
});

test('reconnect across a real server restart loses and repeats nothing', async (t) => {
  const server = await TestServer.start('heartbeat_interval_ms = 500');
  t.after(() => server.close());
  const client = make(server);
  t.after(() => client.disconnect());
  const got = collect(client);
  const states = [];
  for (const name of ['connected', 'disconnected', 'reconnecting']) client.on(name, () => states.push(name));
  await client.connect();
  await client.subscribeToSession('s1');
  await server.publish([ev(0), ev(1), ev(2)]);
  await got.until(3);
  const reconnected = waitFor(client, 'connected', (c) => c.reconnected);
  await server.stop();
  // Published while the client is away: only the log has them.
  await server.launch(server.extraToml, server.env, Number(server.addr.split(':').pop()));
  await server.publish([ev(3), ev(4)]);
  await reconnected;
  await server.publish([ev(5)]);
  await got.until(6);
  assert.deepEqual(got.map((e) => e.data.i), [0, 1, 2, 3, 4, 5]);
  assert.equal(new Set(seqs(got)).size, 6, 'no event twice');
  assert.ok(increasing(seqs(got)));
  assert.ok(states.includes('disconnected') && states.includes('reconnecting'));
  assert.equal(client.getMetrics().reconnects, 1);
});

test('history: every chunk assembled, historical_data per chunk; empty range answers once', async (t) => {
  const server = await TestServer.start('history_chunk_size = 7');
  t.after(() => server.close());
  const events = [];
  for (let i = 0; i < 30; i++) events.push(ev(i));
  await server.publish(events);
  const client = make(server);
  t.after(() => client.disconnect());
  await client.connect();
  await client.subscribeToSession('s1');
  let chunks = 0;
  client.on('historical_data', () => chunks++);
  const r = await client.requestHistory({ start: 1700000000000, end: 1700000000000 + 19 * 1000 });
  assert.equal(r.traces.length, 20);
  assert.equal(r.total, 20);
  assert.equal(r.chunks, 3);
  assert.equal(chunks, 3);
  assert.deepEqual(r.traces.map((e) => e.data.i), [...Array(20).keys()]);
  const paged = await client.requestHistory({ start: 0, end: 1800000000000 }, { limit: 8, all: true, sessionId: 's1' });
  assert.equal(paged.traces.length, 8);
  const all = await client.requestHistory({ start: 0, end: 1800000000000 }, { all: true });
  assert.equal(all.traces.length, 30);
  const none = await client.requestHistory({ start: 1, end: 2 });
  assert.equal(none.traces.length, 0);
  assert.equal(none.total, 0);
});

test('time travel: state of agents and tasks at an instant', async (t) => {
  const server = await TestServer.start();
  t.after(() => server.close());
  const T = 1700000000000;
  await server.publish([
    { type: 'AGENT_SPAWN', sessionId: 'tt', agentId: 'planner', timestamp: T },
    { type: 'TASK_START', sessionId: 'tt', agentId: 'planner', timestamp: T + 1000, data: { taskId: 'plan' } },
    { type: 'TASK_COMPLETE', sessionId: 'tt', agentId: 'planner', timestamp: T + 2000, data: { taskId: 'plan' } },
    { type: 'AGENT_DESTROY', sessionId: 'tt', agentId: 'planner', timestamp: T + 3000 },
  ]);
  const client = make(server);
  t.after(() => client.disconnect());
  await client.connect();
  await client.subscribeToSession('tt');
  const mid = await client.timeTravel(T + 1500);
  assert.equal(mid.state.agents.planner.status, 'active');
  assert.equal(mid.state.tasks.plan.status, 'running');
  assert.equal(mid.state.eventCount, 2);
  const end = await client.timeTravel(T + 5000, { sessionId: 'tt' });
  assert.equal(end.state.agents.planner.status, 'destroyed');
  assert.equal(end.state.tasks.plan.status, 'completed');
});

test('auth with a token from `tracecast token`; a bad token is refused, not retried', async (t) => {
  const secret = 'js-client-test-secret-0123456789abcdef';
  const server = await TestServer.start('[auth]\nenabled = true', { env: { TRACECAST_JWT_SECRET: secret } });
  t.after(() => server.close());
  const token = server.token(['--sub', 'js', '--permissions', 'read,publish']);
  await server.publish([ev(0)], token);
  const client = make(server, { authToken: token });
  t.after(() => client.disconnect());
  const got = collect(client);
  await client.connect();
  assert.equal(client.authInfo.subject, 'js');
  await client.subscribeToSession('s1');
  await got.until(1);

  const anon = make(server);
  t.after(() => anon.disconnect());
  await anon.connect();
  await assert.rejects(anon.subscribeToSession('s1'), (e) => e.code === 'not_authenticated' || e.code === 'forbidden');

  const bad = make(server, { authToken: `${token}x` });
  t.after(() => bad.disconnect());
  const errors = [];
  bad.on('error', (e) => errors.push(e.code));
  await assert.rejects(bad.connect(), (e) => e.code === 'auth_failed');
  assert.ok(errors.includes('auth_failed'));
});

test('an exception in a user handler is caught and reported; the stream goes on', async (t) => {
  const server = await TestServer.start();
  t.after(() => server.close());
  const client = make(server);
  t.after(() => client.disconnect());
  const errors = [];
  client.on('error', (e) => errors.push(e));
  client.on('trace_event', (e) => { if (e.data.i === 1) throw new Error('boom'); });
  const got = collect(client);
  await client.connect();
  await client.subscribeToSession('s1');
  await server.publish([ev(0), ev(1), ev(2)]);
  await got.until(3);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 'handler_error');
  assert.match(errors[0].message, /boom/);
  assert.equal(client.getMetrics().handlerErrors, 1);
});

test('async iterator yields live events in order', async (t) => {
  const server = await TestServer.start();
  t.after(() => server.close());
  const client = make(server);
  t.after(() => client.disconnect());
  await client.connect();
  await client.subscribeToSession('s1');
  const it = client.events({ sessionId: 's1' });
  await server.publish([ev(0), ev(1), ev(2)]);
  const seen = [];
  for await (const e of it) {
    seen.push(e.data.i);
    if (seen.length === 3) break;
  }
  assert.deepEqual(seen, [0, 1, 2]);
});

test('sinceSeq resumes after a given seq, with no initial_traces', async (t) => {
  const server = await TestServer.start();
  t.after(() => server.close());
  const ack = await server.publish([ev(0), ev(1), ev(2), ev(3)]);
  const client = make(server);
  t.after(() => client.disconnect());
  let initial = 0;
  client.on('initial_traces', () => initial++);
  const got = collect(client);
  await client.connect();
  await client.subscribeToSession('s1', { sinceSeq: ack.firstSeq + 1 });
  await got.until(2);
  assert.deepEqual(got.map((e) => e.data.i), [2, 3]);
  assert.equal(initial, 0);
});

// Breakpoints and filter expressions (SPEC §4, §7). A server that does not offer them yet
// answers `unsupported`; then these tests skip and say so.
async function breakpointsOrSkip(t, client) {
  try {
    await client.setBreakpoint('probe', 'false');
    await client.removeBreakpoint('probe');
    return true;
  } catch (err) {
    if (err.code === 'unsupported') { t.skip(`server answers unsupported: ${err.message}`); return false; }
    throw err;
  }
}

test('breakpoints: a hit pauses, step delivers one, resume continues; nothing lost or repeated', async (t) => {
  const server = await TestServer.start();
  t.after(() => server.close());
  const client = make(server);
  t.after(() => client.disconnect());
  await client.connect();
  await client.subscribeToSession('s1');
  if (!(await breakpointsOrSkip(t, client))) return;
  const got = collect(client);
  await client.setBreakpoint('fail', 'type === "TASK_FAIL"');
  const hit = waitFor(client, 'breakpoint_hit');
  await server.publish([ev(0), ev(1, { type: 'TASK_FAIL' }), ev(2), ev(3)]);
  const h = await hit;
  assert.equal(h.traceId, 'fail');
  assert.equal(h.event.data.i, 1);
  await got.until(2);
  assert.deepEqual(got.map((e) => e.data.i), [0, 1]);
  await client.step();
  await got.until(3);
  assert.equal(got[2].data.i, 2);
  await client.resume();
  await got.until(4);
  assert.deepEqual(got.map((e) => e.data.i), [0, 1, 2, 3]);
  await client.removeBreakpoint('fail');
});

test('filters: filter_events narrows the stream server-side; a bad condition is refused', async (t) => {
  const server = await TestServer.start();
  t.after(() => server.close());
  const client = make(server);
  t.after(() => client.disconnect());
  await client.connect();
  await client.subscribeToSession('s1');
  try {
    await client.filterEvents('data.i >= 2');
  } catch (err) {
    if (err.code === 'unsupported' || err.code === 'unknown_message_type') return t.skip(`server does not offer filter_events: ${err.message}`);
    throw err;
  }
  const got = collect(client);
  await server.publish([ev(0), ev(1), ev(2), ev(3)]);
  await got.until(2);
  assert.deepEqual(got.map((e) => e.data.i), [2, 3]);
  await assert.rejects(client.filterEvents('data.i >>'), (e) => e.code === 'invalid_condition');
});

test('filterAgents narrows the live stream', async (t) => {
  const server = await TestServer.start();
  t.after(() => server.close());
  const client = make(server);
  t.after(() => client.disconnect());
  const got = collect(client);
  await client.connect();
  await client.subscribeToSession('s1');
  await client.filterAgents(['a1']);
  await server.publish([ev(0), ev(1), ev(2), ev(3), ev(4)]);
  await got.until(2);
  assert.deepEqual(got.map((e) => e.data.i), [1, 4]);
});

test('events_dropped under backpressure is refetched from history: every event exactly once', async (t) => {
  const server = await TestServer.start('[backpressure]\nhigh_water_mark = 65536\nlow_water_mark = 16384\nmax_queue_size = 64\n[rate_limit]\nenabled = false');
  t.after(() => server.close());
  const client = make(server, { compression: 'none', heartbeatInterval: 0 });
  t.after(() => client.disconnect());
  const got = collect(client);
  const dropped = [];
  client.on('events_dropped', (d) => dropped.push(d));
  await client.connect();
  await client.subscribeToSession('s1');
  // Stop reading: once the kernel's buffers are full (several MB on loopback) the server's
  // queue for this client fills and it drops the oldest frames. Publish until it says so.
  client.ws.pause();
  let last;
  let N = 0;
  client.on('error', (e) => t.diagnostic(`client error ${e.code}: ${e.message}`));
  const droppedTotal = async () => {
    const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('tracecast_events_dropped_total'));
    return line ? Number(line.split(/\s+/).pop()) : 0;
  };
  while (N < 6000 && (N === 0 || (await droppedTotal()) === 0)) {
    const batch = [];
    // Random padding: permessage-deflate would shrink a repeated one to nothing.
    for (let i = 0; i < 100; i++, N++) batch.push(ev(N, { data: { i: N, pad: randomBytes(6000).toString('base64') } }));
    last = await server.publish(batch);
  }
  if ((await droppedTotal()) === 0) {
    // Loopback can buffer tens of MB for a socket that is not read; then nothing drops.
    client.ws.resume();
    await got.until(N, 30000);
    return t.skip(`no backpressure drop after ${N} events of 8 KB: the kernel buffered them all`);
  }
  const recovered = waitFor(client, 'events_recovered', () => true, 30000);
  client.ws.resume();
  await recovered.catch((err) => {
    throw new Error(`${err.message}; published ${N}, dropped notices ${JSON.stringify(dropped)}, received ${got.length}`);
  });
  await got.until(N, 30000);
  assert.ok(dropped.length > 0, 'the server dropped something');
  assert.ok(dropped.every((d) => d.refetching));
  const seen = got.map((e) => e.seq);
  assert.equal(new Set(seen).size, N, 'no event twice');
  assert.equal(Math.max(...seen), last.lastSeq);
  assert.equal(client.getMetrics().eventsRecovered, dropped.reduce((n, d) => n + d.count, 0));
});

test('heartbeat watchdog: a silent link is dropped and resumed from the last seq', async (t) => {
  const server = await TestServer.start('heartbeat_interval_ms = 100\nstale_timeout_ms = 60000');
  t.after(() => server.close());
  const client = make(server, { heartbeatTimeout: 600, heartbeatInterval: 0 });
  t.after(() => client.disconnect());
  const got = collect(client);
  const errors = [];
  client.on('error', (e) => errors.push(e.code));
  await client.connect();
  await client.subscribeToSession('s1');
  await server.publish([ev(0)]);
  await got.until(1);
  const back = waitFor(client, 'connected', (c) => c.reconnected);
  client.ws._socket.pause(); // the link goes silent
  await server.publish([ev(1)]);
  await back;
  await got.until(2);
  assert.ok(errors.includes('heartbeat_timeout'));
  assert.deepEqual(got.map((e) => e.data.i), [0, 1]);
});

test('breakpoints and filters are set again after a reconnect across a server restart', async (t) => {
  const server = await TestServer.start();
  t.after(() => server.close());
  const client = make(server);
  t.after(() => client.disconnect());
  await client.connect();
  await client.subscribeToSession('s1');
  if (!(await breakpointsOrSkip(t, client))) return;
  const got = collect(client);
  await client.filterAgents(['a0', 'a1']);
  await client.setBreakpoint('big', 'data.i >= 4');
  await server.publish([ev(0)]);
  await got.until(1);
  const back = waitFor(client, 'connected', (c) => c.reconnected);
  await server.restart();
  await back;
  const hit = waitFor(client, 'breakpoint_hit');
  await server.publish([ev(1), ev(2), ev(3), ev(4), ev(5)]);
  const h = await hit;
  assert.equal(h.event.data.i, 4);
  await got.until(3);
  assert.deepEqual(got.map((e) => e.data.i), [0, 1, 3, 4], 'a2 filtered out, paused at 4');
  const bps = await client.listBreakpoints();
  assert.deepEqual(bps.items.map((b) => b.traceId), ['big']);
});
