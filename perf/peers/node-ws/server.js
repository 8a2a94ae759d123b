'use strict';
// Node.js `ws` peer for the tracecast benchmark: the same job as tracecast's live path,
// written the way a competent Node developer would, so the comparison is against good
// Node, not a straw man.
//
// - One batch per session per event-loop turn (setImmediate), at most BATCH_SIZE events
//   per frame, serialized ONCE into a Buffer that every subscriber's ws.send() shares
//   (ws writes header + shared payload with cork/writev; no per-subscriber copy).
// - Each event is the publisher's object with "seq" spliced in as its first field.
// - publish_ack, connection, session_info, initial_traces (last 100 per session),
//   unsubscribe_session, heartbeat; per-subscriber backpressure with high/low water marks
//   on ws.bufferedAmount and an events_dropped notice, like tracecast's defaults.
// - perMessageDeflate off; bufferutil (optional dependency) speeds up unmasking.
//
// Usage: node server.js [PORT]   (or PORT=… HOST=… BATCH_SIZE=… node server.js)

const http = require('http');
const { WebSocketServer } = require('ws');

const PORT = Number(process.argv[2] || process.env.PORT || 8090);
const HOST = process.env.HOST || '127.0.0.1';
const BATCH_SIZE = Number(process.env.BATCH_SIZE || 50);
const HIGH_WATER = Number(process.env.HIGH_WATER_MARK || 65536);
const LOW_WATER = Number(process.env.LOW_WATER_MARK || 16384);
const MAX_MESSAGE_SIZE = 1 << 20;
const MAX_EVENT_BYTES = 65536;
const RECENT = 100;
const VERSION = '0.0.0-node-peer';

let seq = 0;
let nextClientId = 0;
const sessions = new Map();
const dirty = new Set();
let flushScheduled = false;
const SEND_TEXT = { binary: false, compress: false };

function getSession(id) {
  let s = sessions.get(id);
  if (!s) {
    s = {
      id,
      idJson: JSON.stringify(id),
      subs: new Set(),
      pending: [],
      pendingSeq: [],
      recent: new Array(RECENT),
      recentNext: 0,
      recentLen: 0,
      eventCount: 0,
      agents: new Set(),
      firstTimestamp: null,
      lastTimestamp: null,
      lastSeq: 0,
    };
    sessions.set(id, s);
  }
  return s;
}

function recentInOrder(s) {
  const out = [];
  const start = (s.recentNext - s.recentLen + RECENT) % RECENT;
  for (let i = 0; i < s.recentLen; i++) out.push(s.recent[(start + i) % RECENT]);
  return out;
}

function sendJson(ws, obj) {
  ws.send(JSON.stringify(obj), SEND_TEXT);
}

function sendError(ws, code, message, requestId) {
  const m = { type: 'error', error: { code, message }, timestamp: Date.now() };
  if (requestId !== undefined) m.requestId = requestId;
  sendJson(ws, m);
}

function scheduleFlush(s) {
  dirty.add(s);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

function flush() {
  flushScheduled = false;
  const ts = Date.now();
  for (const s of dirty) {
    const events = s.pending;
    const seqs = s.pendingSeq;
    s.pending = [];
    s.pendingSeq = [];
    if (s.subs.size === 0) continue;
    for (let i = 0; i < events.length; i += BATCH_SIZE) {
      const chunk = events.length <= BATCH_SIZE ? events : events.slice(i, i + BATCH_SIZE);
      const buf = Buffer.from(
        `{"type":"trace_batch","sessionId":${s.idJson},"events":[${chunk.join(',')}],"compression":"none","timestamp":${ts}}`
      );
      const firstSeq = seqs[i];
      const lastSeq = seqs[i + chunk.length - 1];
      for (const sub of s.subs) deliver(sub, s, buf, chunk.length, firstSeq, lastSeq);
    }
  }
  dirty.clear();
}

function deliver(ws, s, buf, count, firstSeq, lastSeq) {
  const buffered = ws.bufferedAmount;
  if (ws.dropping) {
    if (buffered < LOW_WATER) {
      ws.dropping = false;
      notifyDrops(ws);
    } else {
      recordDrop(ws, s.id, count, firstSeq, lastSeq);
      return;
    }
  } else if (buffered > HIGH_WATER) {
    ws.dropping = true;
    recordDrop(ws, s.id, count, firstSeq, lastSeq);
    return;
  }
  ws.send(buf, SEND_TEXT);
}

function recordDrop(ws, sessionId, count, fromSeq, toSeq) {
  if (!ws.drops) ws.drops = new Map();
  const d = ws.drops.get(sessionId);
  if (d) {
    d.count += count;
    d.toSeq = toSeq;
  } else {
    ws.drops.set(sessionId, { count, fromSeq, toSeq });
  }
}

function notifyDrops(ws) {
  if (!ws.drops) return;
  for (const [sessionId, d] of ws.drops) {
    sendJson(ws, { type: 'events_dropped', sessionId, count: d.count, fromSeq: d.fromSeq, toSeq: d.toSeq });
  }
  ws.drops = null;
}

function validEvent(e) {
  if (e === null || typeof e !== 'object' || Array.isArray(e)) return 'must be an object';
  if (typeof e.type !== 'string' || e.type.length < 1 || e.type.length > 64) return 'type';
  if (e.sessionId === undefined && typeof e.swarmId === 'string') e.sessionId = e.swarmId;
  if (typeof e.sessionId !== 'string' || e.sessionId.length < 1 || e.sessionId.length > 256) return 'sessionId';
  if (e.seq !== undefined) return 'seq (assigned by the server)';
  return null;
}

function onPublish(ws, msg) {
  const list = Array.isArray(msg.events) ? msg.events : msg.event !== undefined ? [msg.event] : null;
  if (!list || list.length === 0) return sendError(ws, 'invalid_message', 'publish needs event or events', msg.requestId);
  // Validate and serialize everything first: a batch is accepted or rejected whole.
  const now = Date.now();
  const bodies = new Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const e = list[i];
    const bad = validEvent(e);
    if (bad) return sendError(ws, 'invalid_message', `event ${i}: ${bad}`, msg.requestId);
    if (e.timestamp === undefined) e.timestamp = now;
    const json = JSON.stringify(e);
    if (json.length > MAX_EVENT_BYTES) return sendError(ws, 'message_too_large', `event ${i} is too large`, msg.requestId);
    bodies[i] = json;
  }
  const firstSeq = seq + 1;
  for (let i = 0; i < list.length; i++) {
    const e = list[i];
    const n = ++seq;
    const json = bodies[i];
    const line = json.length > 2 ? `{"seq":${n},${json.slice(1)}` : `{"seq":${n}}`;
    const s = getSession(e.sessionId);
    s.pending.push(line);
    s.pendingSeq.push(n);
    s.recent[s.recentNext] = line;
    s.recentNext = (s.recentNext + 1) % RECENT;
    if (s.recentLen < RECENT) s.recentLen++;
    s.eventCount++;
    if (typeof e.agentId === 'string') s.agents.add(e.agentId);
    if (s.firstTimestamp === null) s.firstTimestamp = e.timestamp;
    s.lastTimestamp = e.timestamp;
    s.lastSeq = n;
    scheduleFlush(s);
  }
  const ack = { type: 'publish_ack', count: list.length, firstSeq, lastSeq: seq };
  if (msg.requestId !== undefined) ack.requestId = msg.requestId;
  sendJson(ws, ack);
}

function onSubscribe(ws, msg) {
  if (typeof msg.sessionId !== 'string' || msg.sessionId.length === 0) {
    return sendError(ws, 'invalid_request', 'sessionId required', msg.requestId);
  }
  const s = getSession(msg.sessionId);
  s.subs.add(ws);
  ws.sessions.add(s);
  sendJson(ws, {
    type: 'session_info',
    session: {
      id: s.id,
      eventCount: s.eventCount,
      agentCount: s.agents.size,
      firstTimestamp: s.firstTimestamp,
      lastTimestamp: s.lastTimestamp,
      lastSeq: s.lastSeq,
    },
  });
  ws.send(`{"type":"initial_traces","sessionId":${s.idJson},"traces":[${recentInOrder(s).join(',')}]}`, SEND_TEXT);
}

function onMessage(ws, data) {
  let msg;
  try {
    msg = JSON.parse(data);
  } catch {
    return sendError(ws, 'invalid_message', 'not JSON');
  }
  if (msg === null || typeof msg !== 'object') return sendError(ws, 'invalid_message', 'not an object');
  switch (msg.type) {
    case 'publish':
      return onPublish(ws, msg);
    case 'subscribe_session':
      return onSubscribe(ws, msg);
    case 'unsubscribe_session': {
      const s = sessions.get(msg.sessionId);
      if (s) {
        s.subs.delete(ws);
        ws.sessions.delete(s);
      }
      return sendJson(ws, { type: 'unsubscribed', sessionId: msg.sessionId });
    }
    case 'heartbeat':
      return sendJson(ws, { type: 'heartbeat_response', timestamp: Date.now(), clientMetrics: {} });
    default:
      return sendError(ws, 'unknown_message_type', `unknown type ${String(msg.type)}`, msg.requestId);
  }
}

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    return res.end('ok\n');
  }
  res.writeHead(404);
  res.end();
});

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  clientTracking: false,
  maxPayload: MAX_MESSAGE_SIZE,
});

server.on('upgrade', (req, socket, head) => {
  const path = (req.url || '/').split('?')[0];
  if (path !== '/ws' && path !== '/') {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws));
});

function onConnection(ws) {
  ws.sessions = new Set();
  ws.dropping = false;
  ws.drops = null;
  const clientId = `c-${++nextClientId}`;
  sendJson(ws, {
    type: 'connection',
    clientId,
    serverInfo: {
      version: VERSION,
      capabilities: ['publish', 'subscribe_session'],
      limits: { maxMessageSize: MAX_MESSAGE_SIZE, batchSize: BATCH_SIZE, maxEventBytes: MAX_EVENT_BYTES },
      auth: false,
      binaryProtocol: false,
    },
    timestamp: Date.now(),
  });
  ws.on('message', (data) => onMessage(ws, data));
  ws.on('error', () => {});
  ws.on('close', () => {
    for (const s of ws.sessions) s.subs.delete(ws);
    ws.sessions.clear();
  });
}

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

server.listen(PORT, HOST, () => {
  process.stderr.write(`node-ws peer listening on ws://${HOST}:${PORT}/ws (batch ${BATCH_SIZE})\n`);
});
