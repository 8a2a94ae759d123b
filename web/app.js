// The tracecast viewer: a page on the project's own JavaScript client (served from the
// binary next to this file). Events are buffered as they arrive and drawn once per
// animation frame into a table of at most MAX_ROWS rows, so thousands of events per
// second cost one DOM update per frame, not one per event.
import { TraceStreamingClient } from './tracecast-client.js';

const MAX_ROWS = 2000;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const view = {
  client: null,
  session: params.get('session'),
  token: params.get('token') || sessionStorage.getItem('tracecast.token') || '',
  rows: [], // newest last; what the table shows
  pending: [], // arrived, not drawn yet
  heldCount: 0, // arrived while the table is paused
  live: true,
  selected: null,
  agents: new Set(),
  agentFilter: [],
  filter: '',
  range: { first: null, last: null },
  hitSeq: null,
  rate: new Array(60).fill(0),
  rateNow: 0,
  sessions: new Map(),
  bpHits: new Map(),
};
window.tracecastView = view; // for tests and the console

// ---- helpers -----------------------------------------------------------------------------

function toast(text, kind = '') {
  const el = document.createElement('div');
  el.className = `toast ${kind}`;
  el.textContent = text;
  $('toasts').append(el);
  setTimeout(() => el.remove(), 6000);
}

// Local HH:MM:SS.mmm, by hand: toLocaleTimeString costs tens of microseconds a call,
// and the table formats a time for every row it rewrites.
const pad2 = (n) => (n < 10 ? `0${n}` : `${n}`);
function fmtTime(ms) {
  if (typeof ms !== 'number') return '';
  const d = new Date(ms);
  const m = d.getMilliseconds();
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${m < 10 ? '00' : m < 100 ? '0' : ''}${m}`;
}

function fmtFull(ms) {
  return typeof ms === 'number' ? new Date(ms).toISOString().replace('T', ' ').replace('Z', '') : '—';
}

function summary(e) {
  const d = e.data;
  if (d === undefined || d === null) return '';
  const s = JSON.stringify(d);
  return s.length > 160 ? `${s.slice(0, 160)}…` : s;
}

function esc(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));
}

function prettyJson(v) {
  const json = esc(JSON.stringify(v, null, 2));
  return json.replace(/(&quot;(?:[^&]|&(?!quot;))*?&quot;)(\s*:)?|\b(true|false|null)\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g,
    (m, str, colon, lit) => {
      if (str) return colon ? `<span class="k">${str}</span>${colon}` : `<span class="s">${str}</span>`;
      if (lit) return `<span class="b">${m}</span>`;
      return `<span class="n">${m}</span>`;
    });
}

async function api(path) {
  const headers = view.token ? { Authorization: `Bearer ${view.token}` } : {};
  const r = await fetch(path, { headers });
  if (r.status === 401) throw Object.assign(new Error('authentication required'), { status: 401 });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

// ---- connection ----------------------------------------------------------------------------

function setConn(state, text) {
  $('conn').dataset.state = state;
  $('conn-text').textContent = text;
}

function connect() {
  if (view.client) view.client.disconnect();
  const client = new TraceStreamingClient({ authToken: view.token || null, compression: 'delta' });
  view.client = client;
  setConn('connecting', 'connecting…');
  client.on('connected', ({ reconnected, serverInfo }) => {
    const n = client.getMetrics().reconnects;
    setConn('open', n ? `live · ${n} reconnect${n > 1 ? 's' : ''}` : 'live');
    if (serverInfo?.auth?.required) $('token-box').hidden = false;
    if (reconnected) {
      // A new connection starts unpaused: the server forgot the old connection's pause.
      if (!$('paused').hidden) unpause();
      toast('reconnected; resumed from the last seen event', 'ok');
    }
  });
  client.on('disconnected', () => setConn('reconnecting', 'disconnected'));
  client.on('reconnecting', ({ attempt, delayMs }) => setConn('reconnecting', `reconnecting #${attempt} in ${(delayMs / 1000).toFixed(1)} s`));
  client.on('error', (err) => {
    if (err.code === 'auth_failed' || err.code === 'not_authenticated' || err.code === 'policy_violation') {
      $('token-box').hidden = false;
      setConn('closed', 'auth needed');
    }
    if (err.code !== 'connection_lost') toast(`${err.code}: ${err.message}`, 'bad');
  });
  client.on('system_event', (m) => { if (m.event === 'shutdown') toast('the server is shutting down; reconnecting when it is back'); });
  client.on('trace_event', onEvent);
  client.on('breakpoint_hit', onHit);
  client.on('events_dropped', (d) => toast(`${d.count} events dropped by the server (${d.reason ?? 'backpressure'}); ${d.refetching ? 'refetching from history' : 'not refetched'}`));
  client.on('session_info', (s) => {
    if (s && s.id === view.session) {
      view.range.first = s.firstTimestamp ?? view.range.first;
      view.range.last = s.lastTimestamp ?? view.range.last;
      updateSlider();
    }
  });
  client.connect().then(() => {
    if (view.session) openSession(view.session, true);
  }).catch((err) => {
    setConn('closed', err.code === 'auth_failed' ? 'auth refused' : 'offline');
  });
}

// ---- sessions ------------------------------------------------------------------------------

async function refreshSessions() {
  try {
    const page = await api('/v1/sessions?limit=1000');
    view.sessions = new Map(page.sessions.map((s) => [s.id, s]));
    drawSessions();
  } catch (err) {
    if (err.status === 401) $('token-box').hidden = false;
  }
}

function drawSessions() {
  const q = $('session-search').value.trim().toLowerCase();
  const items = [...view.sessions.values()].filter((s) => !q || s.id.toLowerCase().includes(q));
  $('session-count').textContent = view.sessions.size ? `(${view.sessions.size})` : '';
  const ul = $('session-list');
  ul.replaceChildren(...items.slice(0, 300).map((s) => {
    const li = document.createElement('li');
    li.dataset.session = s.id;
    if (s.id === view.session) li.className = 'active';
    li.innerHTML = `<span class="name">${esc(s.id)}</span><span class="count">${s.eventCount}</span>`;
    li.onclick = () => openSession(s.id);
    return li;
  }));
}

async function openSession(id, initial = false) {
  const client = view.client;
  if (!client || !client.isConnected) { view.session = id; return; }
  if (!initial && view.session && view.session !== id && client.subscriptions.has(view.session)) {
    await client.unsubscribeFromSession(view.session).catch(() => {});
  }
  view.session = id;
  if (!initial) history.replaceState(null, '', `?session=${encodeURIComponent(id)}`);
  view.rows = []; view.pending = []; view.heldCount = 0; view.selected = null; view.hitSeq = null;
  view.agents.clear(); view.range = { first: null, last: null };
  render();
  $('session-title').textContent = id;
  $('empty').hidden = true;
  drawSessions();
  try {
    const info = await client.subscribeToSession(id);
    view.range.first = info?.firstTimestamp ?? null;
    view.range.last = info?.lastTimestamp ?? null;
    updateSlider(true);
  } catch (err) {
    toast(`subscribe failed: ${err.message}`, 'bad');
  }
}

// ---- events --------------------------------------------------------------------------------

function onEvent(e, meta) {
  if (meta.sessionId !== view.session) return;
  view.rateNow++;
  const s = view.sessions.get(meta.sessionId);
  if (s && meta.source !== 'initial') { s.eventCount++; view.sessionsDirty = true; }
  if (typeof e.agentId === 'string' && !view.agents.has(e.agentId)) {
    view.agents.add(e.agentId);
    const opt = document.createElement('option');
    opt.value = e.agentId;
    $('agent-list').append(opt);
  }
  if (typeof e.timestamp === 'number') {
    if (view.range.first === null || e.timestamp < view.range.first) view.range.first = e.timestamp;
    if (view.range.last === null || e.timestamp > view.range.last) view.range.last = e.timestamp;
  }
  view.pending.push(e);
  if (view.pending.length > MAX_ROWS * 2) view.pending.splice(0, view.pending.length - MAX_ROWS);
  if (!view.live) view.heldCount++;
  scheduleDraw();
}

let drawQueued = false;
function scheduleDraw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(draw);
}

// The table is virtual: it keeps the last MAX_ROWS events but only the rows in view (plus
// a margin) exist in the DOM, a fixed pool whose cells are rewritten in place, so a frame
// costs the same at 10 or 10,000 events per second.
const ROW_H = 22;
const pool = [];

function poolRow() {
  const tr = document.createElement('tr');
  tr.className = 'ev';
  for (let i = 0; i < 5; i++) tr.append(document.createElement('td'));
  return tr;
}

function render() {
  const wrap = $('table-wrap');
  const tbody = $('rows');
  const total = view.rows.length;
  const first = Math.max(0, Math.floor(wrap.scrollTop / ROW_H) - 5);
  const want = Math.min(total - first, Math.ceil(wrap.clientHeight / ROW_H) + 10);
  while (pool.length < want) pool.push(poolRow());
  const top = $('spacer-top');
  const bottom = $('spacer-bottom');
  top.style.height = `${first * ROW_H}px`;
  bottom.style.height = `${Math.max(0, total - first - want) * ROW_H}px`;
  const shown = [];
  for (let i = 0; i < want; i++) {
    const e = view.rows[total - 1 - (first + i)];
    const tr = pool[i];
    const seq = String(e.seq);
    if (tr.dataset.seq !== seq || tr.__e !== e) {
      tr.__e = e;
      tr.dataset.seq = seq;
      const type = String(e.type ?? '');
      const c = tr.children;
      c[0].textContent = seq;
      c[1].textContent = fmtTime(e.timestamp);
      c[2].textContent = type;
      c[2].className = `t-${type}`;
      c[3].textContent = e.agentId ?? '';
      c[4].textContent = summary(e);
    }
    tr.className = e.seq === view.hitSeq ? 'ev hit' : e.seq === view.selected ? 'ev selected' : 'ev';
    shown.push(tr);
  }
  const current = tbody.children;
  let same = current.length === shown.length + 2;
  for (let i = 0; same && i < shown.length; i++) same = current[i + 1] === shown[i];
  if (!same) tbody.replaceChildren(top, ...shown, bottom);
  tbody.dataset.total = String(total);
}

function draw() {
  drawQueued = false;
  updatePending();
  if (view.live && view.pending.length > 0) {
    const fresh = view.pending.length > MAX_ROWS ? view.pending.slice(-MAX_ROWS) : view.pending;
    view.pending = [];
    view.rows.push(...fresh);
    if (view.rows.length > MAX_ROWS) view.rows.splice(0, view.rows.length - MAX_ROWS);
    // Reading further down: keep what is being read in place as rows arrive on top.
    const wrap = $('table-wrap');
    if (wrap.scrollTop > 0) wrap.scrollTop += fresh.length * ROW_H;
    updateSlider();
  }
  render();
}

function updatePending() {
  const el = $('pending');
  el.hidden = view.live || view.heldCount === 0;
  el.textContent = `${view.heldCount.toLocaleString()} new while paused`;
}

function setLive(live) {
  view.live = live;
  const b = $('live-toggle');
  b.textContent = live ? '● Live' : '|| Paused';
  b.className = live ? 'live' : 'paused-view';
  if (live) view.heldCount = 0;
  updatePending();
  scheduleDraw();
}

function select(seq) {
  const e = view.rows.find((r) => r.seq === seq);
  if (!e) return;
  view.selected = seq;
  render();
  $('detail-seq').textContent = `seq ${seq}`;
  $('detail').innerHTML = prettyJson(e);
}

// ---- filters -------------------------------------------------------------------------------

async function applyAgentFilter() {
  const ids = $('agent-filter').value.split(',').map((s) => s.trim()).filter(Boolean);
  try {
    await view.client.filterAgents(ids);
    view.agentFilter = ids;
    // Narrow what is already on screen the same way the server narrows what comes next,
    // then refill the table from history under the new filter.
    if (ids.length) {
      const keep = new Set(ids);
      view.rows = view.rows.filter((e) => keep.has(e.agentId));
      view.pending = view.pending.filter((e) => keep.has(e.agentId));
      redrawAll();
    }
    await reload();
    toast(ids.length ? `showing agents ${ids.join(', ')}` : 'showing all agents', 'ok');
  } catch (err) {
    toast(`agent filter: ${err.message}`, 'bad');
  }
}

async function applyFilter(condition) {
  try {
    await view.client.filterEvents(condition, { sessionId: view.session || undefined });
    view.filter = condition || '';
    view.rows = []; view.pending = [];
    redrawAll();
    await reload();
    toast(condition ? `filter applied: ${condition}` : 'filter cleared', 'ok');
  } catch (err) {
    toast(err.code === 'unsupported' ? 'this server does not offer filter expressions yet' : `filter: ${err.message}`, 'bad');
  }
}

/** The last MAX_ROWS stored events under the current filters, merged with what is live. */
async function reload() {
  const client = view.client;
  if (!view.session || !client?.isConnected) return;
  const range = { start: 0, end: 8.64e15 };
  const opts = { sessionId: view.session, filter: view.filter || undefined };
  try {
    const head = await client.requestHistory(range, { ...opts, limit: 1 });
    const r = await client.requestHistory(range, { ...opts, offset: Math.max(0, head.total - MAX_ROWS), limit: MAX_ROWS });
    const keep = view.agentFilter.length ? new Set(view.agentFilter) : null;
    const stored = keep ? r.traces.filter((e) => keep.has(e.agentId)) : r.traces;
    const last = stored.length ? stored[stored.length - 1].seq : -1;
    const later = view.rows.concat(view.pending).filter((e) => e.seq > last);
    view.rows = stored.concat(later).slice(-MAX_ROWS);
    view.pending = [];
    redrawAll();
  } catch (err) {
    toast(`reload: ${err.message}`, 'bad');
  }
}

function redrawAll() {
  render();
}

// ---- breakpoints ---------------------------------------------------------------------------

function drawBreakpoints() {
  const ul = $('bp-list');
  ul.replaceChildren(...[...view.client.breakpoints].map(([name, bp]) => {
    const li = document.createElement('li');
    li.dataset.bp = name;
    li.title = bp.condition;
    li.innerHTML = `<span>${esc(name)}</span><span class="hits">${view.bpHits.get(name) ?? 0}</span><button title="remove">✕</button>`;
    li.querySelector('button').onclick = async () => {
      try { await view.client.removeBreakpoint(name); } catch (err) { toast(err.message, 'bad'); }
      drawBreakpoints();
    };
    return li;
  }));
}

function onHit(msg) {
  view.hitSeq = msg.event?.seq ?? null;
  view.bpHits.set(msg.traceId, (view.bpHits.get(msg.traceId) ?? 0) + 1);
  drawBreakpoints();
  $('paused').hidden = false;
  $('paused-name').textContent = msg.traceId;
  $('paused-seq').textContent = String(view.hitSeq);
  requestAnimationFrame(() => requestAnimationFrame(() => { if (view.hitSeq !== null) select(view.hitSeq); }));
}

// ---- time travel ---------------------------------------------------------------------------

function sliderTime() {
  const { first, last } = view.range;
  if (first === null || last === null) return null;
  const v = Number($('tt-slider').value) / 1000;
  return Math.round(first + (last - first) * v);
}

function updateSlider(reset = false) {
  const s = $('tt-slider');
  s.disabled = view.range.first === null;
  if (reset) s.value = 1000;
  $('tt-time').textContent = fmtFull(sliderTime());
}

let ttTimer = null;
let ttSeq = 0;
function travelSoon() {
  $('tt-time').textContent = fmtFull(sliderTime());
  clearTimeout(ttTimer);
  ttTimer = setTimeout(travel, 80);
}

async function travel() {
  const ts = sliderTime();
  if (ts === null || !view.client?.isConnected) return;
  const mine = ++ttSeq;
  try {
    const r = await view.client.timeTravel(ts, { sessionId: view.session });
    if (mine !== ttSeq) return;
    drawState(r);
  } catch (err) {
    toast(`time travel: ${err.message}`, 'bad');
  }
}

function badge(status) {
  const known = ['active', 'running', 'completed', 'failed', 'destroyed'];
  return `<span class="st st-${known.includes(status) ? status : 'other'}">${esc(status ?? '')}</span>`;
}

function drawState(r) {
  const agents = Object.entries(r.state?.agents ?? {});
  // Most recent tasks first: at an instant, what is running now matters most.
  const tasks = Object.entries(r.state?.tasks ?? {}).sort((a, b) => (b[1].startedAt ?? 0) - (a[1].startedAt ?? 0));
  $('tt-agents').innerHTML = agents.map(([id, a]) => `<tr data-agent="${esc(id)}"><td>${esc(id)}</td><td data-status="${esc(a.status)}">${badge(a.status)}</td><td>${esc(a.lastEventType ?? '')}</td><td>${a.eventCount ?? ''}</td></tr>`).join('');
  $('tt-tasks').innerHTML = tasks.map(([id, t]) => `<tr data-task="${esc(id)}"><td>${esc(id)}</td><td data-status="${esc(t.status)}">${badge(t.status)}</td><td>${esc(t.agentId ?? '')}</td><td>${fmtTime(t.startedAt)}</td></tr>`).join('');
  $('tt-agent-count').textContent = `(${agents.length})`;
  $('tt-task-count').textContent = `(${tasks.length}) · ${r.state?.eventCount ?? 0} events at this instant`;
  $('tt-time').dataset.ts = String(r.timestamp);
}

let playTimer = null;
function togglePlay() {
  if (playTimer) { clearInterval(playTimer); playTimer = null; $('tt-play').textContent = 'Play'; return; }
  const s = $('tt-slider');
  if (Number(s.value) >= 1000) s.value = 0;
  $('tt-play').textContent = 'Pause';
  playTimer = setInterval(() => {
    s.value = Math.min(1000, Number(s.value) + 10);
    travelSoon();
    if (Number(s.value) >= 1000) togglePlay();
  }, 250);
}

function stepSlider(d) {
  const s = $('tt-slider');
  s.value = Math.max(0, Math.min(1000, Number(s.value) + d));
  travelSoon();
}

// ---- events/s chart ------------------------------------------------------------------------

function drawRate() {
  if (view.sessionsDirty) { view.sessionsDirty = false; drawSessions(); }
  view.rate.push(view.rateNow);
  view.rate.shift();
  $('rate-now').textContent = view.rateNow.toLocaleString();
  view.rateNow = 0;
  const c = $('rate-chart');
  const g = c.getContext('2d');
  const w = c.width, h = c.height;
  g.clearRect(0, 0, w, h);
  const max = Math.max(10, ...view.rate);
  g.beginPath();
  view.rate.forEach((v, i) => {
    const x = (i / (view.rate.length - 1)) * w;
    const y = h - 2 - (v / max) * (h - 6);
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.strokeStyle = '#4da3ff';
  g.lineWidth = 1.5;
  g.stroke();
  g.lineTo(w, h); g.lineTo(0, h); g.closePath();
  g.fillStyle = 'rgba(77,163,255,0.15)';
  g.fill();
}

// ---- wiring --------------------------------------------------------------------------------

$('live-toggle').onclick = () => setLive(!view.live);
$('rows').onclick = (ev) => {
  const tr = ev.target.closest('tr.ev');
  if (tr) select(Number(tr.dataset.seq));
};
$('table-wrap').addEventListener('scroll', () => scheduleDraw(), { passive: true });
$('agent-filter').onchange = applyAgentFilter;
$('filter-form').onsubmit = (ev) => { ev.preventDefault(); applyFilter($('filter-expr').value.trim()); };
$('filter-clear').onclick = () => { $('filter-expr').value = ''; applyFilter(''); };
$('bp-form').onsubmit = async (ev) => {
  ev.preventDefault();
  const name = $('bp-name').value.trim() || `bp${view.client.breakpoints.size + 1}`;
  const cond = $('bp-cond').value.trim() || 'true';
  try {
    await view.client.setBreakpoint(name, cond, { sessionId: view.session || undefined });
    $('bp-name').value = ''; $('bp-cond').value = '';
    toast(`breakpoint ${name} set`, 'ok');
  } catch (err) {
    toast(err.code === 'unsupported' ? 'this server does not offer breakpoints yet' : `breakpoint: ${err.message}`, 'bad');
  }
  drawBreakpoints();
};
const unpause = () => {
  $('paused').hidden = true;
  const old = view.hitSeq;
  view.hitSeq = null;
  if (old !== null) render();
};
$('bp-resume').onclick = async () => {
  try { await view.client.resume({ sessionId: view.session || undefined }); unpause(); } catch (err) { toast(`resume: ${err.message}`, 'bad'); }
};
$('bp-step').onclick = async () => {
  try { await view.client.step({ sessionId: view.session || undefined }); } catch (err) { toast(`step: ${err.message}`, 'bad'); }
};
$('tt-slider').oninput = travelSoon;
$('tt-play').onclick = togglePlay;
$('tt-first').onclick = () => stepSlider(-1000);
$('tt-last').onclick = () => stepSlider(1000);
$('tt-prev').onclick = () => stepSlider(-10);
$('tt-next').onclick = () => stepSlider(10);
$('session-search').oninput = drawSessions;
$('token').value = view.token;
$('token').onchange = () => {
  view.token = $('token').value.trim();
  sessionStorage.setItem('tracecast.token', view.token);
  connect();
  refreshSessions();
};
document.addEventListener('keydown', (ev) => {
  if (ev.target instanceof HTMLInputElement && ev.target.type !== 'range') return;
  if (ev.key === '[') stepSlider(-10);
  else if (ev.key === ']') stepSlider(10);
  else if (ev.key === 'p') togglePlay();
  else if (ev.key === ' ') { ev.preventDefault(); setLive(!view.live); }
});

if (view.token) $('token-box').hidden = false;
if (params.has('token')) {
  // Keep the token out of the address bar and the browser's history once read.
  sessionStorage.setItem('tracecast.token', view.token);
  params.delete('token');
  history.replaceState(null, '', `${location.pathname}${params.size ? `?${params}` : ''}`);
}
if (view.session) { $('session-title').textContent = view.session; $('empty').hidden = true; }
connect();
refreshSessions();
setInterval(refreshSessions, 3000);
setInterval(drawRate, 1000);
