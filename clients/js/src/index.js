// tracecast JavaScript client: an ES module with no runtime dependencies, for browsers and
// Node >= 20. It speaks the tracecast WebSocket protocol (docs/PROTOCOL.md), reconnects by
// itself and resumes every subscription from its last seen `seq`, so a reconnect — even
// across a server restart — loses and repeats nothing. Names follow the original
// `TraceStreamingClient` so its users can switch.

/** Protocol version of `tracecast.bin` this decoder understands. */
export const BINARY_VERSION = 1;
const MAGIC = [0x54, 0x43, 0x42, 0x31]; // "TCB1"
const KIND_TRACE_BATCH = 1;
const NO_STRING = 0xffff;
const EVENT_HEADER_LEN = 26;

/** An error from the server (`error` message) or from the client itself, with a `code`. */
export class TracecastError extends Error {
  constructor(code, message, details = {}) {
    super(message);
    this.name = 'TracecastError';
    this.code = code;
    Object.assign(this, details);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes one `tracecast.bin` frame (version 1, docs/PROTOCOL.md). Rejects a wrong magic,
 * an unknown version or kind, an index past the string table, non-UTF-8 strings, a
 * truncated frame and trailing bytes; never trusts `count` for allocation.
 * @param {ArrayBuffer|ArrayBufferView} input
 */
export function decodeBinaryBatch(input) {
  const bytes = input instanceof ArrayBuffer
    ? new Uint8Array(input)
    : new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  const need = (n) => {
    if (pos + n > bytes.length) throw new TracecastError('binary_decode', `frame truncated at byte ${pos}`);
  };
  const u8 = () => { need(1); return view.getUint8(pos++); };
  const u16 = () => { need(2); const v = view.getUint16(pos, true); pos += 2; return v; };
  const u32 = () => { need(4); const v = view.getUint32(pos, true); pos += 4; return v; };
  const u64 = () => { need(8); const v = view.getBigUint64(pos, true); pos += 8; return toNumber(v); };
  const i64 = () => { need(8); const v = view.getBigInt64(pos, true); pos += 8; return toNumber(v); };
  const text = (n) => {
    need(n);
    const at = pos;
    pos += n;
    try {
      return utf8.decode(bytes.subarray(at, at + n));
    } catch {
      throw new TracecastError('binary_decode', `invalid UTF-8 at byte ${at}`);
    }
  };
  need(4);
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== MAGIC[i]) throw new TracecastError('binary_decode', 'bad magic (not a tracecast.bin frame)');
  }
  pos = 4;
  const version = u8();
  if (version !== BINARY_VERSION) throw new TracecastError('binary_decode', `unsupported version ${version}`);
  const kind = u8();
  if (kind !== KIND_TRACE_BATCH) throw new TracecastError('binary_decode', `unknown kind ${kind}`);
  u16(); // flags, reserved
  const count = u32();
  const firstSeq = u64();
  const timestamp = i64();
  const sessionIdx = u16();
  const nStrings = u16();
  const table = [];
  for (let i = 0; i < nStrings; i++) table.push(text(u16()));
  const lookup = (i) => {
    if (i === NO_STRING) return null;
    if (i >= table.length) throw new TracecastError('binary_decode', `string index ${i} past the table of ${table.length}`);
    return table[i];
  };
  const session = lookup(sessionIdx);
  const events = [];
  for (let i = 0; i < count; i++) {
    if (bytes.length - pos < EVENT_HEADER_LEN) throw new TracecastError('binary_decode', `frame truncated at byte ${pos}`);
    const seq = u64();
    const ts = i64();
    const s = lookup(u16());
    const agent = lookup(u16());
    const type = lookup(u16());
    const json = text(u32());
    let event;
    try {
      event = JSON.parse(json);
    } catch {
      throw new TracecastError('binary_decode', `event ${i} is not JSON`);
    }
    events.push({ seq, timestamp: ts, sessionId: s, agentId: agent, type, event });
  }
  if (pos !== bytes.length) throw new TracecastError('binary_decode', `${bytes.length - pos} trailing bytes`);
  return { version, kind, firstSeq, timestamp, sessionId: session, events };
}

function toNumber(big) {
  const n = Number(big);
  return Number.isSafeInteger(n) ? n : big;
}

/**
 * Rebuilds the events of a `compression:"delta"` batch: the first is whole, each next one
 * is merged onto the one before it, minus the names in `$removed`.
 * @param {object[]} events
 */
export function undelta(events) {
  const out = [];
  let prev = null;
  for (const delta of events) {
    if (delta === null || typeof delta !== 'object' || Array.isArray(delta)) {
      out.push(delta);
      prev = null;
      continue;
    }
    const whole = prev === null ? { ...delta } : Object.assign({}, prev, delta);
    const removed = delta.$removed;
    delete whole.$removed;
    if (prev !== null && Array.isArray(removed)) {
      for (const name of removed) delete whole[name];
    }
    out.push(whole);
    prev = whole;
  }
  return out;
}

/**
 * Decodes any frame the server sends into `{type, ...}`: a JSON text frame as parsed, a
 * binary batch as a `trace_batch` message, delta batches rebuilt (`compression:"none"`).
 * @param {string|ArrayBuffer|ArrayBufferView} data
 */
export function decodeFrame(data) {
  if (typeof data === 'string') {
    const msg = JSON.parse(data);
    if (msg && msg.type === 'trace_batch' && msg.compression === 'delta' && Array.isArray(msg.events)) {
      return { ...msg, events: undelta(msg.events), compression: 'none' };
    }
    return msg;
  }
  const b = decodeBinaryBatch(data);
  return {
    type: 'trace_batch',
    sessionId: b.sessionId,
    events: b.events.map((e) => e.event),
    compression: 'none',
    timestamp: b.timestamp,
    binary: true,
  };
}

function defaultServerUrl() {
  const loc = globalThis.location;
  if (loc && loc.host) return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/ws`;
  return 'ws://127.0.0.1:8080/ws';
}

const DEFAULTS = {
  authToken: null,
  binaryProtocol: false,
  compression: 'delta',
  reconnect: true,
  reconnectAttempts: Infinity,
  reconnectDelay: 250,
  maxReconnectDelay: 15000,
  heartbeatTimeout: 75000,
  heartbeatInterval: 30000,
  requestTimeout: 30000,
  refetchDropped: true,
};

/**
 * A tracecast client. Events: `connected`, `disconnected`, `reconnecting`, `trace_event`,
 * `initial_traces`, `historical_data`, `breakpoint_hit`, `events_dropped`,
 * `events_recovered`, `session_info`, `time_travel_state`, `system_event`, `heartbeat`,
 * `error`, `message` (every decoded server message).
 */
export class TraceStreamingClient {
  constructor(options = {}) {
    this.options = { ...DEFAULTS, ...options };
    this.serverUrl = this.options.serverUrl || defaultServerUrl();
    this.WebSocketImpl = this.options.WebSocket || globalThis.WebSocket;
    if (!this.WebSocketImpl) {
      throw new TracecastError('no_websocket', 'no WebSocket implementation: pass one as options.WebSocket (e.g. from the "ws" package)');
    }
    this.listeners = new Map();
    this.ws = null;
    this.state = 'idle'; // idle | connecting | open | reconnecting | closed
    this.serverInfo = null;
    this.clientId = null;
    this.authInfo = null;
    this.subscriptions = new Map(); // sessionId -> {lastSeq, lastTimestamp, filter, info}
    this.breakpoints = new Map(); // traceId -> {condition, sessionId}
    this.agentFilter = [];
    this.paused = null; // {traceId, sessionId, seq} after a breakpoint_hit
    this.pending = new Map(); // requestId -> {resolve, reject, collect?, timer}
    this.nextRequest = 1;
    this.attempt = 0;
    this.wantOpen = false;
    this.timers = { reconnect: null, watchdog: null, heartbeat: null };
    this.iterators = new Set();
    this.metrics = {
      connects: 0, reconnects: 0, messagesReceived: 0, bytesReceived: 0,
      eventsReceived: 0, duplicatesSkipped: 0, eventsDropped: 0, eventsRecovered: 0,
      handlerErrors: 0, lastMessageAt: null, lastHeartbeatAt: null, latencyMs: null,
      server: null,
    };
    this.firstConnect = null;
  }

  // ---- events -------------------------------------------------------------------------

  /** Adds a listener; returns a function that removes it. */
  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
    return () => this.off(name, fn);
  }

  off(name, fn) {
    this.listeners.get(name)?.delete(fn);
  }

  once(name, fn) {
    const off = this.on(name, (...args) => { off(); fn(...args); });
    return off;
  }

  /** Calls every listener of `name`; an exception in one is caught and reported as `error`. */
  emit(name, ...args) {
    const set = this.listeners.get(name);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        this.metrics.handlerErrors++;
        if (name === 'error') {
          console.error('tracecast: an "error" handler threw', err);
        } else {
          this.emit('error', new TracecastError('handler_error', `a "${name}" handler threw: ${err?.message ?? err}`, { cause: err, event: name }));
        }
      }
    }
  }

  /**
   * An async iterator over live events (`for await (const e of client.events())`). It ends
   * when the client is disconnected by `disconnect()`.
   * @param {{sessionId?: string}} [opts]
   */
  events(opts = {}) {
    const queue = [];
    let wake = null;
    let done = false;
    const client = this;
    const it = {
      push(event, meta) {
        if (opts.sessionId && meta.sessionId !== opts.sessionId) return;
        queue.push(event);
        if (wake) { const w = wake; wake = null; w(); }
      },
      end() {
        done = true;
        if (wake) { const w = wake; wake = null; w(); }
      },
    };
    this.iterators.add(it);
    return {
      [Symbol.asyncIterator]() { return this; },
      async next() {
        while (queue.length === 0 && !done) await new Promise((r) => { wake = r; });
        if (queue.length > 0) return { value: queue.shift(), done: false };
        return { value: undefined, done: true };
      },
      async return() {
        done = true;
        client.iterators.delete(it);
        return { value: undefined, done: true };
      },
    };
  }

  [Symbol.asyncIterator]() {
    return this.events()[Symbol.asyncIterator]();
  }

  // ---- connection ---------------------------------------------------------------------

  /** Opens the connection; resolves once connected (and authenticated when a token is set). */
  connect() {
    if (this.state === 'open') return Promise.resolve(this.serverInfo);
    if (this.firstConnect) return this.firstConnect.promise;
    let resolve, reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    promise.catch(() => {});
    this.firstConnect = { promise, resolve, reject };
    // Already (re)connecting: wait for that attempt instead of opening a second socket.
    if (!this.wantOpen || this.state === 'idle' || this.state === 'closed') {
      this.wantOpen = true;
      this.attempt = 0;
      this.open();
    }
    return promise;
  }

  /** Closes the connection and stops reconnecting. Pending requests are rejected. */
  disconnect() {
    this.wantOpen = false;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try { ws.close(1000, 'client disconnect'); } catch { /* already closed */ }
    }
    this.failPending(new TracecastError('disconnected', 'the client was disconnected'));
    if (this.firstConnect) {
      this.firstConnect.reject(new TracecastError('disconnected', 'the client was disconnected'));
      this.firstConnect = null;
    }
    const was = this.state;
    this.state = 'closed';
    for (const it of this.iterators) it.end();
    this.iterators.clear();
    if (was === 'open') this.emit('disconnected', { code: 1000, reason: 'client disconnect', willReconnect: false });
  }

  get isConnected() {
    return this.state === 'open';
  }

  url() {
    const u = new URL(this.serverUrl);
    if (this.options.compression === 'delta' && !this.options.binaryProtocol) u.searchParams.set('compression', 'delta');
    if (this.options.tokenInQuery && this.options.authToken) u.searchParams.set('token', this.options.authToken);
    return u.toString();
  }

  open() {
    this.state = this.metrics.connects === 0 && this.attempt === 0 ? 'connecting' : 'reconnecting';
    let ws;
    try {
      const protocols = this.options.binaryProtocol ? ['tracecast.bin'] : ['tracecast.json'];
      ws = new this.WebSocketImpl(this.url(), protocols);
    } catch (err) {
      this.emit('error', new TracecastError('connect_failed', `cannot open ${this.serverUrl}: ${err?.message ?? err}`, { cause: err }));
      this.scheduleReconnect(1006, 'open failed');
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    let ready = false;
    ws.onmessage = (m) => {
      if (this.ws !== ws) return;
      this.onFrame(m.data, () => { ready = true; });
    };
    ws.onerror = () => { /* the close that follows says what happened */ };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearTimers();
      const wasOpen = ready && this.state === 'open';
      this.failPending(new TracecastError('connection_lost', `connection closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})`));
      if (this.paused) this.paused = null;
      if (wasOpen) this.emit('disconnected', { code: ev.code, reason: ev.reason, willReconnect: this.willReconnect(ev.code) });
      this.scheduleReconnect(ev.code, ev.reason);
    };
    this.armWatchdog();
  }

  willReconnect(code) {
    return this.wantOpen && this.options.reconnect && code !== 1008 && this.attempt < this.options.reconnectAttempts;
  }

  scheduleReconnect(code, reason) {
    if (!this.wantOpen) { this.state = 'closed'; return; }
    if (code === 1008 || !this.options.reconnect || this.attempt >= this.options.reconnectAttempts) {
      this.state = 'closed';
      this.wantOpen = false;
      const err = new TracecastError(code === 1008 ? 'policy_violation' : 'reconnect_failed',
        code === 1008 ? `the server closed the connection: ${reason || 'policy violation'}` : `gave up after ${this.attempt} reconnect attempts`);
      this.emit('error', err);
      if (this.firstConnect) { this.firstConnect.reject(err); this.firstConnect = null; }
      for (const it of this.iterators) it.end();
      return;
    }
    // Exponential backoff with full jitter over the upper half, so a restarted server is
    // not met by every client at the same instant.
    const base = Math.min(this.options.maxReconnectDelay, this.options.reconnectDelay * 2 ** this.attempt);
    const delay = Math.round(base / 2 + Math.random() * base / 2);
    this.attempt++;
    this.state = 'reconnecting';
    this.emit('reconnecting', { attempt: this.attempt, delayMs: delay, code, reason });
    this.timers.reconnect = setTimeout(() => { this.timers.reconnect = null; this.open(); }, delay);
  }

  clearTimers() {
    for (const k of Object.keys(this.timers)) {
      if (this.timers[k]) { clearTimeout(this.timers[k]); clearInterval(this.timers[k]); this.timers[k] = null; }
    }
  }

  /** No message from the server for `heartbeatTimeout` ms: the link is dead, reconnect. */
  armWatchdog() {
    if (this.timers.watchdog) clearTimeout(this.timers.watchdog);
    this.timers.watchdog = setTimeout(() => {
      this.timers.watchdog = null;
      const ws = this.ws;
      if (!ws) return;
      this.emit('error', new TracecastError('heartbeat_timeout', `no message from the server for ${this.options.heartbeatTimeout} ms; reconnecting`));
      this.ws = null;
      try { ws.close(4000, 'heartbeat timeout'); } catch { /* ignore */ }
      this.failPending(new TracecastError('connection_lost', 'heartbeat timeout'));
      if (this.state === 'open') this.emit('disconnected', { code: 4000, reason: 'heartbeat timeout', willReconnect: this.willReconnect(4000) });
      this.scheduleReconnect(4000, 'heartbeat timeout');
    }, this.options.heartbeatTimeout);
  }

  send(msg) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) throw new TracecastError('not_connected', 'not connected');
    ws.send(JSON.stringify(msg));
  }

  /** Sends `msg` with a fresh `requestId` and resolves with the matching reply. */
  request(msg, collect) {
    return new Promise((resolve, reject) => {
      const requestId = `c${this.nextRequest++}`;
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new TracecastError('timeout', `no answer to ${msg.type} within ${this.options.requestTimeout} ms`));
      }, this.options.requestTimeout);
      this.pending.set(requestId, { resolve, reject, collect, timer, type: msg.type });
      try {
        this.send({ ...msg, requestId });
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(requestId);
        reject(err);
      }
    });
  }

  failPending(err) {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
  }

  // ---- inbound ------------------------------------------------------------------------

  onFrame(data, markReady) {
    this.armWatchdog();
    this.metrics.messagesReceived++;
    this.metrics.lastMessageAt = Date.now();
    this.metrics.bytesReceived += typeof data === 'string' ? data.length : data.byteLength;
    let msg;
    try {
      msg = decodeFrame(data);
    } catch (err) {
      this.emit('error', new TracecastError(err.code || 'invalid_frame', `undecodable frame from the server: ${err.message}`, { cause: err }));
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    this.emit('message', msg);
    switch (msg.type) {
      case 'connection':
        this.clientId = msg.clientId;
        this.serverInfo = msg.serverInfo;
        this.onOpen(markReady);
        return;
      case 'trace_batch':
        this.deliver(msg.sessionId, msg.events || [], 'live');
        return;
      case 'initial_traces':
        this.settle(msg);
        this.emit('initial_traces', msg);
        this.deliver(msg.sessionId, msg.traces || [], 'initial');
        {
          // Nothing seen yet: resume from the session's end as it was when subscribing.
          const sub = this.subscriptions.get(msg.sessionId);
          if (sub && sub.lastSeq === null) sub.lastSeq = sub.info?.lastSeq ?? 0;
        }
        return;
      case 'breakpoint_hit':
        this.onBreakpointHit(msg);
        return;
      case 'events_dropped':
        this.onDropped(msg);
        return;
      case 'heartbeat':
        this.metrics.lastHeartbeatAt = Date.now();
        this.metrics.server = msg.metrics ?? null;
        this.emit('heartbeat', msg);
        return;
      case 'system_event':
        this.emit('system_event', msg);
        return;
      case 'error':
        this.onError(msg);
        return;
      default:
        this.settle(msg);
    }
  }

  /** Resolves the pending request a reply belongs to (by `requestId`). */
  settle(msg) {
    const id = msg.requestId;
    if (id === undefined || id === null) {
      if (msg.type === 'historical_data') this.emit('historical_data', msg);
      else if (msg.type === 'time_travel_state') this.emit('time_travel_state', msg);
      else if (msg.type === 'session_info') this.emit('session_info', msg.session);
      return;
    }
    const p = this.pending.get(id);
    if (msg.type === 'historical_data') this.emit('historical_data', msg);
    if (msg.type === 'time_travel_state') this.emit('time_travel_state', msg);
    if (msg.type === 'session_info') this.emit('session_info', msg.session);
    if (!p) return;
    if (p.collect) {
      const done = p.collect(msg);
      if (!done) return;
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.resolve(done === true ? msg : done);
      return;
    }
    clearTimeout(p.timer);
    this.pending.delete(id);
    p.resolve(msg);
  }

  onError(msg) {
    const e = msg.error || {};
    const err = new TracecastError(e.code || 'error', e.message || 'server error', { retryAfterMs: e.retryAfterMs, requestId: msg.requestId });
    const p = msg.requestId !== undefined ? this.pending.get(msg.requestId) : undefined;
    if (p) {
      clearTimeout(p.timer);
      this.pending.delete(msg.requestId);
      p.reject(err);
      return;
    }
    this.emit('error', err);
  }

  async onOpen(markReady) {
    try {
      if (this.options.authToken && !this.options.tokenInQuery) {
        const r = await this.request({ type: 'auth', token: this.options.authToken });
        if (!r.authenticated) throw new TracecastError('auth_failed', r.message || 'authentication refused');
        this.authInfo = r;
      }
      // Restore what the connection had: filters, breakpoints, then every subscription
      // from its last seen seq, so nothing is lost and nothing repeats.
      if (this.agentFilter.length > 0) await this.request({ type: 'filter_agents', agentIds: this.agentFilter });
      for (const [traceId, bp] of this.breakpoints) {
        await this.request(bpMessage(traceId, bp)).catch((err) => this.emit('error', err));
      }
      const reconnected = this.metrics.connects > 0;
      for (const [sessionId, sub] of this.subscriptions) {
        if (sub.lastSeq === null && !reconnected) continue;
        await this.resubscribe(sessionId, sub);
      }
      this.metrics.connects++;
      if (reconnected) this.metrics.reconnects++;
      this.attempt = 0;
      this.state = 'open';
      markReady();
      this.startHeartbeats();
      this.emit('connected', { clientId: this.clientId, serverInfo: this.serverInfo, reconnected });
      if (this.firstConnect) { this.firstConnect.resolve(this.serverInfo); this.firstConnect = null; }
    } catch (err) {
      if (err.code === 'auth_failed' || err.code === 'not_authenticated' || err.code === 'forbidden') {
        this.wantOpen = false;
        this.emit('error', err);
        if (this.firstConnect) { this.firstConnect.reject(err); this.firstConnect = null; }
        try { this.ws?.close(1000, 'auth failed'); } catch { /* ignore */ }
        return;
      }
      if (err.code !== 'connection_lost') this.emit('error', err);
    }
  }

  async resubscribe(sessionId, sub) {
    const msg = { type: 'subscribe_session', sessionId };
    if (sub.lastSeq !== null) msg.sinceSeq = sub.lastSeq;
    if (sub.filter) msg.filter = sub.filter;
    const info = await this.request(msg);
    sub.info = info.session;
    if (sub.eventFilter !== undefined) {
      await this.request({ type: 'filter_events', condition: sub.eventFilter, sessionId }).catch((err) => this.emit('error', err));
    }
  }

  startHeartbeats() {
    if (!this.options.heartbeatInterval) return;
    this.timers.heartbeat = setInterval(() => {
      const t0 = Date.now();
      this.request({ type: 'heartbeat' }).then((r) => {
        this.metrics.latencyMs = Date.now() - t0;
        this.metrics.server = r.clientMetrics ?? this.metrics.server;
      }).catch(() => {});
    }, this.options.heartbeatInterval);
  }

  /** Emits `trace_event` for each event past the session's last seen seq, in order. */
  deliver(sessionId, events, source) {
    const sub = this.sub(sessionId);
    for (const event of events) {
      if (!event || typeof event !== 'object') continue;
      const seq = event.seq;
      if (typeof seq === 'number' && sub.lastSeq !== null && seq <= sub.lastSeq) {
        this.metrics.duplicatesSkipped++;
        continue;
      }
      if (typeof seq === 'number') sub.lastSeq = seq;
      if (typeof event.timestamp === 'number') sub.lastTimestamp = event.timestamp;
      this.metrics.eventsReceived++;
      this.emitEvent(event, { sessionId, source });
    }
  }

  emitEvent(event, meta) {
    this.emit('trace_event', event, meta);
    for (const it of this.iterators) it.push(event, meta);
  }

  sub(sessionId) {
    let sub = this.subscriptions.get(sessionId);
    if (!sub) {
      sub = { lastSeq: null, lastTimestamp: null, firstTimestamp: null, filter: undefined, info: null, implicit: true };
      this.subscriptions.set(sessionId, sub);
    }
    return sub;
  }

  onBreakpointHit(msg) {
    const sessionId = msg.sessionId ?? msg.event?.sessionId;
    this.paused = { traceId: msg.traceId, sessionId, seq: msg.event?.seq ?? null };
    const bp = this.breakpoints.get(msg.traceId);
    if (bp) bp.hits = (bp.hits || 0) + 1;
    this.emit('breakpoint_hit', msg);
    // The hitting event travels only here: it still belongs to the stream, in order.
    if (msg.event) this.deliver(sessionId, [msg.event], 'breakpoint');
  }

  async onDropped(msg) {
    this.metrics.eventsDropped += msg.count || 0;
    let refetch = this.options.refetchDropped && msg.reason !== 'retention' && this.subscriptions.has(msg.sessionId);
    const detail = { ...msg, refetching: refetch };
    this.emit('events_dropped', detail);
    if (!refetch) return;
    try {
      const got = await this.refetch(msg);
      this.metrics.eventsRecovered += got.length;
      for (const e of got) this.emitEvent(e, { sessionId: msg.sessionId, source: 'recovered' });
      this.emit('events_recovered', { sessionId: msg.sessionId, fromSeq: msg.fromSeq, toSeq: msg.toSeq, count: got.length });
    } catch (err) {
      this.emit('error', new TracecastError(err.code || 'refetch_failed', `could not refetch dropped events ${msg.fromSeq}..${msg.toSeq}: ${err.message}`, { cause: err }));
    }
  }

  /** Fetches the events of a dropped seq range with `request_history`, paging by offset. */
  async refetch({ sessionId, fromSeq, toSeq, count }) {
    const found = new Map();
    const sub = this.subscriptions.get(sessionId);
    const ranges = [];
    if (sub?.firstTimestamp != null && sub?.lastTimestamp != null) {
      ranges.push({ start: Math.max(0, sub.firstTimestamp - 60000), end: Math.max(sub.lastTimestamp, Date.now()) + 60000 });
    }
    ranges.push({ start: 0, end: 8.64e15 });
    for (const range of ranges) {
      let offset = 0;
      for (;;) {
        const r = await this.requestHistory(range, { sessionId, offset, filter: sub?.filter });
        for (const e of r.traces) if (e.seq >= fromSeq && e.seq <= toSeq) found.set(e.seq, e);
        offset += r.traces.length;
        if (r.traces.length === 0 || offset >= r.total || found.size >= (count ?? toSeq - fromSeq + 1)) break;
      }
      if (found.size >= (count ?? toSeq - fromSeq + 1)) break;
    }
    return [...found.values()].sort((a, b) => a.seq - b.seq);
  }

  // ---- requests -----------------------------------------------------------------------

  /**
   * Subscribes to a session. Resolves with its `session_info` summary. Without `sinceSeq`
   * the server sends the last <= 100 events first (`initial_traces`); with it, every
   * stored event after that seq, then live.
   */
  async subscribeToSession(sessionId, opts = {}) {
    if (this.state !== 'open') await this.connect();
    const sub = this.sub(sessionId);
    sub.implicit = false;
    sub.filter = opts.filter || undefined;
    if (opts.sinceSeq !== undefined && opts.sinceSeq !== null) sub.lastSeq = opts.sinceSeq;
    const msg = { type: 'subscribe_session', sessionId };
    if (opts.sinceSeq !== undefined && opts.sinceSeq !== null) msg.sinceSeq = opts.sinceSeq;
    if (opts.filter) msg.filter = opts.filter;
    const r = await this.request(msg);
    sub.info = r.session;
    if (sub.firstTimestamp === null) sub.firstTimestamp = r.session?.firstTimestamp ?? null;
    return r.session;
  }

  async unsubscribeFromSession(sessionId) {
    this.subscriptions.delete(sessionId);
    if (this.paused?.sessionId === sessionId) this.paused = null;
    return this.request({ type: 'unsubscribe_session', sessionId });
  }

  /** Only events of these agents (empty: all). Kept across reconnects. */
  async filterAgents(agentIds = []) {
    this.agentFilter = [...agentIds];
    return this.request({ type: 'filter_agents', agentIds: this.agentFilter });
  }

  /** A server-side filter expression (SPEC §7); empty clears it. Kept across reconnects. */
  async filterEvents(condition, opts = {}) {
    const targets = opts.sessionId ? [opts.sessionId] : [...this.subscriptions.keys()];
    const msg = { type: 'filter_events', condition: condition || '' };
    if (opts.sessionId) msg.sessionId = opts.sessionId;
    const r = await this.request(msg);
    for (const id of targets) {
      const sub = this.subscriptions.get(id);
      if (sub) sub.eventFilter = condition || undefined;
    }
    return r;
  }

  /**
   * History of a time range; resolves with every chunk assembled:
   * `{traces, total, timeRange, chunks}`. With `opts.all`, pages by offset until `total`.
   */
  async requestHistory(timeRange, opts = {}) {
    const one = (offset) => {
      const traces = [];
      let chunks = 0;
      const msg = { type: 'request_history', timeRange: { start: timeRange.start, end: timeRange.end } };
      const sessionId = opts.sessionId ?? this.onlySession();
      if (sessionId) msg.sessionId = sessionId;
      if (opts.limit !== undefined) msg.limit = opts.limit;
      if (offset) msg.offset = offset;
      if (opts.filter) msg.filter = opts.filter;
      return this.request(msg, (chunk) => {
        chunks++;
        for (const t of chunk.traces || []) traces.push(t);
        if (!chunk.chunkInfo || chunk.chunkInfo.isLast) {
          return { traces, total: chunk.total ?? traces.length, timeRange: chunk.timeRange, sessionId: chunk.sessionId, chunks };
        }
        return false;
      });
    };
    let r = await one(opts.offset || 0);
    if (!opts.all) return r;
    let offset = (opts.offset || 0) + r.traces.length;
    while (offset < r.total && (opts.limit === undefined || r.traces.length < opts.limit)) {
      const next = await one(offset);
      if (next.traces.length === 0) break;
      r = { ...next, traces: r.traces.concat(next.traces), chunks: r.chunks + next.chunks };
      offset += next.traces.length;
    }
    return r;
  }

  onlySession() {
    const explicit = [...this.subscriptions].filter(([, s]) => !s.implicit);
    return explicit.length === 1 ? explicit[0][0] : undefined;
  }

  /** The session's state at `timestamp` (SPEC §6): `{timestamp, sessionId, state, traces}`. */
  async timeTravel(timestamp, opts = {}) {
    const msg = { type: 'time_travel', timestamp };
    const sessionId = opts.sessionId ?? this.onlySession();
    if (sessionId) msg.sessionId = sessionId;
    return this.request(msg);
  }

  /** Sets (or replaces) a breakpoint; re-set after every reconnect. */
  async setBreakpoint(traceId, condition = 'true', opts = {}) {
    const bp = { condition, sessionId: opts.sessionId, hits: 0 };
    const r = await this.request(bpMessage(traceId, bp));
    this.breakpoints.set(traceId, bp);
    return r;
  }

  async removeBreakpoint(traceId) {
    const r = await this.request({ type: 'remove_breakpoint', traceId });
    this.breakpoints.delete(traceId);
    return r;
  }

  async listBreakpoints() {
    return this.request({ type: 'list_breakpoints' });
  }

  /** Resumes a subscription paused at a breakpoint. */
  async resume(opts = {}) {
    const msg = { type: 'resume' };
    const sessionId = opts.sessionId ?? this.paused?.sessionId;
    if (sessionId) msg.sessionId = sessionId;
    const r = await this.requestAck(msg);
    this.paused = null;
    return r;
  }

  /** Delivers exactly the next event of a paused subscription and stays paused. */
  async step(opts = {}) {
    const msg = { type: 'step' };
    const sessionId = opts.sessionId ?? this.paused?.sessionId;
    if (sessionId) msg.sessionId = sessionId;
    return this.requestAck(msg);
  }

  /**
   * A request whose success may have no reply of its own: it resolves on a reply with its
   * `requestId`, on the next stream frame, or after a short grace; an `error` rejects it.
   */
  requestAck(msg) {
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (fn, v) => { if (!settled) { settled = true; offs.forEach((o) => o()); clearTimeout(grace); fn(v); } };
      const offs = [
        this.on('message', (m) => {
          if (m.type === 'trace_batch' || m.type === 'breakpoint_hit') finish(resolve, { type: 'ack', via: m.type });
        }),
      ];
      const grace = setTimeout(() => finish(resolve, { type: 'ack', via: 'timeout' }), this.options.ackGrace ?? 1500);
      this.request(msg).then((r) => finish(resolve, r), (err) => finish(reject, err));
    });
  }

  /** Publishes events over the socket (needs the `publish` permission). */
  async publish(events) {
    return this.request(Array.isArray(events) ? { type: 'publish', events } : { type: 'publish', event: events });
  }

  getMetrics() {
    const subscriptions = {};
    for (const [id, s] of this.subscriptions) subscriptions[id] = { lastSeq: s.lastSeq, filter: s.filter ?? null };
    return {
      state: this.state,
      connected: this.state === 'open',
      clientId: this.clientId,
      binaryProtocol: !!this.options.binaryProtocol,
      paused: this.paused,
      pendingRequests: this.pending.size,
      subscriptions,
      breakpoints: [...this.breakpoints.keys()],
      ...this.metrics,
    };
  }
}

function bpMessage(traceId, bp) {
  const msg = { type: 'set_breakpoint', traceId, condition: bp.condition };
  if (bp.sessionId) msg.sessionId = bp.sessionId;
  return msg;
}

export default TraceStreamingClient;
