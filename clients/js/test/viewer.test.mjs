// The viewer (`GET /`) in a real headless Chromium — Debian's `chromium`, driven with
// puppeteer-core (which never downloads a browser) — against the real server.
//
// CHROMIUM=/path overrides the browser; SCREENSHOT=path writes the screenshot there
// (docs/viewer.png is made this way); PERF_OUT=path writes the responsiveness figures.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';
import { TestServer, WAIT } from './server.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const T = 1700000000000;
let browser;
let profile;

before(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM)`);
  profile = mkdtempSync(join(tmpdir(), 'tracecast-chromium-'));
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage', '--window-size=1440,900'],
    defaultViewport: { width: 1440, height: 900 },
  });
});

after(async () => {
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** A page that records console errors and uncaught exceptions. */
async function open(server, query) {
  const page = await browser.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  page.setDefaultTimeout(WAIT);
  await page.goto(`${server.httpUrl}/${query}`, { waitUntil: 'load' });
  return { page, problems };
}

const rowCount = (page) => page.$eval('#rows', (b) => Number(b.dataset.total));
const waitRows = (page, n) => page.waitForFunction((n) => Number(document.getElementById('rows').dataset.total) >= n, {}, n);

// A small swarm: two agents, tasks that start, finish and fail at known instants.
function swarm() {
  const e = (dt, type, agentId, data = {}) => ({ type, sessionId: 'demo', agentId, timestamp: T + dt, data });
  return [
    e(0, 'AGENT_SPAWN', 'planner', { role: 'plan' }),
    e(1000, 'AGENT_SPAWN', 'coder', { role: 'code' }),
    e(2000, 'TASK_START', 'planner', { taskId: 'design' }),
    e(10000, 'TASK_COMPLETE', 'planner', { taskId: 'design' }),
    e(20000, 'TASK_START', 'coder', { taskId: 'build' }),
    e(30000, 'MESSAGE_SEND', 'coder', { to: 'planner', text: 'halfway' }),
    e(60000, 'TASK_FAIL', 'coder', { taskId: 'build', error: 'timeout' }),
    e(70000, 'STATE_CHANGE', 'coder', { state: 'idle' }),
    e(100000, 'AGENT_DESTROY', 'planner'),
  ];
}

test('viewer: stored and live events, agent filter, time travel, breakpoints, no console errors', async (t) => {
  const server = await TestServer.start();
  t.after(() => server.close());
  await server.publish(swarm());
  await server.publish([{ type: 'TASK_START', sessionId: 'other', agentId: 'x', timestamp: T }]);

  const { page, problems } = await open(server, '?session=demo');
  t.after(() => page.close());

  // Stored events appear (initial traces), the connection is shown as live.
  await waitRows(page, 9);
  await page.waitForFunction(() => document.getElementById('conn').dataset.state === 'open');
  assert.equal(await rowCount(page), 9);
  // The session list shows both sessions with their counts.
  await page.waitForFunction(() => document.querySelectorAll('#session-list li').length === 2);
  const listed = await page.$$eval('#session-list li', (lis) => lis.map((l) => [l.dataset.session, l.querySelector('.count').textContent]));
  assert.deepEqual(new Map(listed).get('demo'), '9');

  // Live events appear, newest on top.
  await server.publish([
    { type: 'MESSAGE_RECEIVE', sessionId: 'demo', agentId: 'planner', timestamp: T + 80000, data: { n: 1 } },
    { type: 'MESSAGE_SEND', sessionId: 'demo', agentId: 'coder', timestamp: T + 90000, data: { n: 2 } },
  ]);
  await waitRows(page, 11);
  assert.equal(await page.$eval('#rows tr.ev td:nth-child(3)', (td) => td.textContent), 'MESSAGE_SEND');

  // The detail panel shows the whole event as pretty JSON.
  await page.click('#rows tr.ev');
  const detail = JSON.parse(await page.$eval('#detail', (p) => p.textContent));
  assert.equal(detail.type, 'MESSAGE_SEND');
  assert.deepEqual(detail.data, { n: 2 });

  // Pause/live: the table holds still and counts what arrived meanwhile.
  await page.click('#live-toggle');
  await server.publish([{ type: 'TASK_START', sessionId: 'demo', agentId: 'coder', timestamp: T + 91000, data: { taskId: 'later' } }]);
  await page.waitForFunction(() => document.getElementById('pending').textContent.startsWith('1 new'));
  assert.equal(await rowCount(page), 11);
  await page.click('#live-toggle');
  await waitRows(page, 12);

  // The agent filter narrows the table, and the server only sends that agent's events.
  await page.type('#agent-filter', 'planner');
  await page.$eval('#agent-filter', (i) => i.dispatchEvent(new Event('change')));
  await page.waitForFunction(() => [...document.querySelectorAll('#rows tr.ev td:nth-child(4)')].every((td) => td.textContent === 'planner'));
  const planner = await rowCount(page);
  assert.ok(planner >= 4 && planner < 12, `${planner} planner rows`);
  await server.publish([
    { type: 'TASK_START', sessionId: 'demo', agentId: 'coder', timestamp: T + 92000 },
    { type: 'TASK_START', sessionId: 'demo', agentId: 'planner', timestamp: T + 93000, data: { taskId: 'review' } },
  ]);
  await waitRows(page, planner + 1);
  assert.ok(await page.$$eval('#rows tr.ev td:nth-child(4)', (tds) => tds.every((td) => td.textContent === 'planner')));
  await page.$eval('#agent-filter', (i) => { i.value = ''; i.dispatchEvent(new Event('change')); });
  await page.waitForFunction((n) => Number(document.getElementById('rows').dataset.total) > n, {}, planner);

  // The filter-expression bar narrows the table server-side (history and live alike).
  const filtered = await page.evaluate(async () => {
    try { await window.tracecastView.client.filterEvents(''); return 'ok'; } catch (e) { return `${e.code}: ${e.message}`; }
  });
  if (filtered === 'ok') {
    await page.type('#filter-expr', 'data.taskId === "design"');
    await page.click('#filter-form button[type=submit]');
    await page.waitForFunction(() => Number(document.getElementById('rows').dataset.total) === 2);
    assert.deepEqual(await page.$$eval('#rows tr.ev td:nth-child(3)', (tds) => tds.map((td) => td.textContent)), ['TASK_COMPLETE', 'TASK_START']);
    await server.publish([
      { type: 'TASK_START', sessionId: 'demo', agentId: 'coder', timestamp: T + 93500, data: { taskId: 'other' } },
      { type: 'TASK_START', sessionId: 'demo', agentId: 'coder', timestamp: T + 93600, data: { taskId: 'design' } },
    ]);
    await waitRows(page, 3);
    assert.equal(await page.$eval('#rows tr.ev td:nth-child(4)', (td) => td.textContent), 'coder');
    assert.equal(await rowCount(page), 3);
    await page.click('#filter-clear');
    await page.waitForFunction(() => Number(document.getElementById('rows').dataset.total) > 3);
  } else {
    t.diagnostic(`filter-expression part skipped: the server answers ${filtered}`);
  }

  // Time travel: the slider over the session's range, set to a known instant. The range
  // is T .. T+100000, so 450/1000 is T+45000: planner active with `design` completed,
  // coder active with `build` running; at 650/1000 (T+65000) `build` has failed.
  const at = async (v, pred) => {
    await page.$eval('#tt-slider', (s, v) => { s.value = String(v); s.dispatchEvent(new Event('input')); }, v);
    await page.waitForFunction(pred);
  };
  await at(450, () => document.getElementById('tt-time').dataset.ts === String(1700000045000));
  const state = await page.evaluate(() => ({
    agents: Object.fromEntries([...document.querySelectorAll('#tt-agents tr')].map((tr) => [tr.dataset.agent, tr.querySelector('[data-status]').dataset.status])),
    tasks: Object.fromEntries([...document.querySelectorAll('#tt-tasks tr')].map((tr) => [tr.dataset.task, tr.querySelector('[data-status]').dataset.status])),
  }));
  assert.deepEqual(state.agents, { planner: 'active', coder: 'active' });
  assert.deepEqual(state.tasks, { design: 'completed', build: 'running' });
  await at(650, () => document.querySelector('#tt-tasks tr[data-task="build"] [data-status]')?.dataset.status === 'failed');
  // The step key moves the slider by 1 %.
  await page.focus('#tt-slider');
  await page.keyboard.press(']');
  await page.waitForFunction(() => document.getElementById('tt-time').dataset.ts === String(1700000066000));

  // Breakpoints: set one, the hit is highlighted and pauses, resume continues.
  const bp = await page.evaluate(async () => {
    try {
      await window.tracecastView.client.setBreakpoint('probe', 'false');
      await window.tracecastView.client.removeBreakpoint('probe');
      return 'ok';
    } catch (e) { return `${e.code}: ${e.message}`; }
  });
  if (bp === 'ok') {
    await page.type('#bp-name', 'fails');
    await page.type('#bp-cond', 'type === "TASK_FAIL"');
    await page.click('#bp-form button[type=submit]');
    await page.waitForSelector('#bp-list li[data-bp="fails"]');
    const before = await rowCount(page);
    await server.publish([
      { type: 'TASK_FAIL', sessionId: 'demo', agentId: 'coder', timestamp: T + 94000, data: { taskId: 'x' } },
      { type: 'TASK_START', sessionId: 'demo', agentId: 'coder', timestamp: T + 95000, data: { after: 1 } },
    ]);
    await page.waitForSelector('#paused:not([hidden])');
    await page.waitForSelector('#rows tr.hit');
    assert.equal(await page.$eval('#rows tr.hit td:nth-child(3)', (td) => td.textContent), 'TASK_FAIL');
    assert.equal(await rowCount(page), before + 1, 'paused after the hit');
    await page.click('#bp-step');
    await waitRows(page, before + 2);
    assert.equal(await page.$eval('#rows tr.ev td:nth-child(5)', (td) => td.textContent), '{"after":1}');
    await page.click('#bp-resume');
    await server.publish([{ type: 'TASK_START', sessionId: 'demo', agentId: 'coder', timestamp: T + 96000, data: { after: 2 } }]);
    await waitRows(page, before + 3);
    await page.waitForSelector('#paused', { hidden: true });
    await page.click('#bp-list li[data-bp="fails"] button');
    await page.waitForFunction(() => !document.querySelector('#bp-list li[data-bp="fails"]'));
  } else {
    t.diagnostic(`breakpoint part skipped: the server answers ${bp}`);
    assert.match(bp, /^unsupported/);
  }

  if (process.env.SCREENSHOT) {
    await at(450, () => document.getElementById('tt-time').dataset.ts === String(1700000045000));
    await (await page.$$('#rows tr.ev'))[2].click();
    await page.screenshot({ path: process.env.SCREENSHOT });
  }
  assert.deepEqual(problems, []);
});

test('viewer with auth on: the token from ?token=, reconnects shown across a server restart', async (t) => {
  const secret = 'viewer-test-secret-0123456789abcdef0123';
  const server = await TestServer.start('heartbeat_interval_ms = 500\n[auth]\nenabled = true', { env: { TRACECAST_JWT_SECRET: secret } });
  t.after(() => server.close());
  const token = server.token(['--sub', 'viewer', '--permissions', 'read,publish']);
  await server.publish(swarm(), token);
  const { page, problems } = await open(server, `?session=demo&token=${encodeURIComponent(token)}`);
  t.after(() => page.close());
  await waitRows(page, 9);
  await page.waitForFunction(() => document.querySelectorAll('#session-list li').length === 1);
  assert.equal(await page.$eval('#token-box', (b) => b.hidden), false, 'the token field is shown when auth is on');
  await server.restart();
  await page.waitForFunction(() => document.getElementById('conn-text').textContent.includes('1 reconnect'));
  await server.publish([{ type: 'TASK_START', sessionId: 'demo', agentId: 'coder', timestamp: T + 99000, data: { after: 'restart' } }], token);
  await waitRows(page, 10);
  assert.equal(await page.$eval('#rows tr.ev td:nth-child(5)', (td) => td.textContent), '{"after":"restart"}');
  assert.equal(await rowCount(page), 10, 'nothing repeated after the reconnect');
  // The browser reports the refused WebSocket/fetch attempts while the server was down;
  // anything else is a bug.
  assert.deepEqual(problems.filter((p) => !/ERR_CONNECTION_REFUSED|WebSocket connection to .* failed|Failed to fetch|v1\/sessions/.test(p)), []);
});

test('viewer stays responsive while 2,000 events/s stream for 20 s', async (t) => {
  const server = await TestServer.start('[rate_limit]\nenabled = false');
  t.after(() => server.close());
  await server.publish([{ type: 'AGENT_SPAWN', sessionId: 'load', agentId: 'a0', timestamp: Date.now() }]);
  const { page, problems } = await open(server, '?session=load');
  t.after(() => page.close());
  await waitRows(page, 1);
  await page.waitForFunction(() => window.tracecastView.client?.subscriptions.get('load')?.lastSeq != null);
  const cdp = await page.createCDPSession();
  await cdp.send('Performance.enable');
  // Frame intervals measured in the page: every requestAnimationFrame callback's distance
  // to the previous one.
  await page.evaluate(() => {
    const f = (window.__frames = []);
    let last = performance.now();
    const tick = (now) => { f.push(now - last); last = now; if (!window.__stop) requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  });
  const metric = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
  const m0 = await metric();
  const RATE = 2000, SECONDS = Number(process.env.VIEWER_LOAD_SECONDS || 20), BATCH = 100;
  const total = RATE * SECONDS;
  const start = Date.now();
  let sent = 0;
  let heapMax = 0;
  let n = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((Date.now() - start) / 1000) * RATE) + BATCH);
    if (due > sent) {
      const batch = [];
      for (; sent < due && batch.length < 1000; sent++) {
        batch.push({ type: ['TASK_START', 'TASK_COMPLETE', 'MESSAGE_SEND', 'STATE_CHANGE'][sent % 4], sessionId: 'load', agentId: `a${sent % 8}`, timestamp: Date.now(), data: { i: sent, payload: 'x'.repeat(sent % 64) } });
      }
      await server.publish(batch);
    }
    if (++n % 20 === 0) heapMax = Math.max(heapMax, (await metric()).JSHeapUsedSize);
    await new Promise((r) => setTimeout(r, 40));
  }
  const wall = (Date.now() - start) / 1000;
  await page.waitForFunction((n) => window.tracecastView.client.getMetrics().eventsReceived >= n, { timeout: 30000 }, total + 1);
  const m1 = await metric();
  const frames = await page.evaluate(() => { window.__stop = true; return window.__frames; });
  const sorted = [...frames].sort((a, b) => a - b);
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  heapMax = Math.max(heapMax, m1.JSHeapUsedSize);
  const result = {
    events: total, seconds: wall, ratePerSec: Math.round(total / wall),
    frames: frames.length, fps: +(frames.length / wall).toFixed(1),
    frameMsMedian: +pct(0.5).toFixed(1), frameMsP95: +pct(0.95).toFixed(1), frameMsP99: +pct(0.99).toFixed(1), frameMsMax: +sorted[sorted.length - 1].toFixed(1),
    framesOver50ms: frames.filter((f) => f > 50).length,
    scriptMsPerSec: +(((m1.ScriptDuration - m0.ScriptDuration) * 1000) / wall).toFixed(1),
    layoutMsPerSec: +(((m1.LayoutDuration - m0.LayoutDuration) * 1000) / wall).toFixed(1),
    taskMsPerSec: +(((m1.TaskDuration - m0.TaskDuration) * 1000) / wall).toFixed(1),
    jsHeapStartMB: +(m0.JSHeapUsedSize / 1048576).toFixed(1), jsHeapMaxMB: +(heapMax / 1048576).toFixed(1), jsHeapEndMB: +(m1.JSHeapUsedSize / 1048576).toFixed(1),
    nodes: m1.Nodes, rows: await rowCount(page), domRows: await page.$$eval('#rows tr.ev', (r) => r.length),
  };
  t.diagnostic(JSON.stringify(result));
  if (process.env.PERF_OUT) writeFileSync(process.env.PERF_OUT, `${JSON.stringify(result, null, 2)}\n`);
  // What a user checks: every event reached the page, the table stayed bounded, and the
  // page kept painting. (Timings are reported, not asserted: the machine is shared.)
  assert.ok(result.rows <= 2000 && result.domRows < 100, 'the table keeps a bounded number of rows');
  assert.ok(frames.length > 0);
  assert.deepEqual(problems, []);
});
