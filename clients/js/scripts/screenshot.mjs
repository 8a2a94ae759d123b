// Makes docs/viewer.png: a real server, a small simulated swarm streaming for a few
// seconds, the viewer in headless Chromium. `node scripts/screenshot.mjs [out.png]`
// (after `cargo build --bin tracecast`).
import { resolve, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import puppeteer from 'puppeteer-core';
import { TestServer } from '../test/server.mjs';

const out = process.argv[2] || resolve(dirname(fileURLToPath(import.meta.url)), '../../../docs/viewer.png');
const server = await TestServer.start('[rate_limit]\nenabled = false');
const profile = mkdtempSync(join(tmpdir(), 'tracecast-shot-'));
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  userDataDir: profile,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  defaultViewport: { width: 1440, height: 900 },
});
try {
  const agents = ['planner', 'researcher', 'coder-1', 'coder-2', 'reviewer'];
  const t0 = Date.now() - 120000;
  let t = t0;
  let task = 0;
  const open = new Map();
  const history = agents.map((a) => ({ type: 'AGENT_SPAWN', sessionId: 'swarm-7f3a', agentId: a, timestamp: (t += 400), data: { model: 'gpt', role: a.replace(/-\d$/, '') } }));
  const step = () => {
    const a = agents[Math.floor(Math.random() * agents.length)];
    t += 40 + Math.floor(Math.random() * 120);
    const r = Math.random();
    if (!open.has(a) && r < 0.4) {
      const id = `task-${++task}`;
      open.set(a, id);
      return { type: 'TASK_START', sessionId: 'swarm-7f3a', agentId: a, traceId: `tr-${task}`, timestamp: t, data: { taskId: id, goal: ['index repo', 'write tests', 'fix lint', 'summarise PR'][task % 4] } };
    }
    if (open.has(a) && r < 0.55) {
      const id = open.get(a);
      open.delete(a);
      const fail = Math.random() < 0.15;
      return { type: fail ? 'TASK_FAIL' : 'TASK_COMPLETE', sessionId: 'swarm-7f3a', agentId: a, timestamp: t, data: fail ? { taskId: id, error: 'timeout', retries: 3 } : { taskId: id, tokens: 200 + Math.floor(Math.random() * 4000) } };
    }
    if (r < 0.8) {
      const to = agents[Math.floor(Math.random() * agents.length)];
      return { type: 'MESSAGE_SEND', sessionId: 'swarm-7f3a', agentId: a, timestamp: t, data: { to, bytes: Math.floor(Math.random() * 9000) } };
    }
    return { type: 'PERFORMANCE_METRIC', sessionId: 'swarm-7f3a', agentId: a, timestamp: t, data: { latencyMs: +(Math.random() * 900).toFixed(1), queue: Math.floor(Math.random() * 40) } };
  };
  for (let i = 0; i < 400; i++) history.push(step());
  await server.publish(history);
  await server.publish([{ type: 'AGENT_SPAWN', sessionId: 'etl-nightly', agentId: 'loader', timestamp: t0 }, { type: 'AGENT_SPAWN', sessionId: 'support-bot', agentId: 'triage', timestamp: t0 }]);
  const page = await browser.newPage();
  await page.goto(`${server.httpUrl}/?session=swarm-7f3a`, { waitUntil: 'load' });
  await page.waitForFunction(() => Number(document.getElementById('rows').dataset.total) > 50);
  await page.type('#bp-name', 'task-failed');
  await page.type('#bp-cond', 'type === "TASK_FAIL" && data.retries > 2');
  await page.click('#bp-form button[type=submit]');
  await page.waitForSelector('#bp-list li');
  // Live traffic for a few seconds so the events/s chart has a shape.
  const end = Date.now() + 6000;
  while (Date.now() < end) {
    const batch = [];
    const n = 20 + Math.floor(Math.random() * 60);
    t = Date.now();
    for (let i = 0; i < n; i++) { const e = step(); e.timestamp = Date.now(); if (e.type === 'TASK_FAIL') { e.type = 'TASK_COMPLETE'; e.data = { taskId: e.data.taskId, tokens: 1200 }; } batch.push(e); }
    await server.publish(batch);
    await new Promise((r) => setTimeout(r, 100));
  }
  await page.$eval('#tt-slider', (s) => { s.value = '620'; s.dispatchEvent(new Event('input')); });
  await page.waitForFunction(() => document.querySelectorAll('#tt-agents tr').length >= 5);
  await (await page.$$('#rows tr.ev'))[4].click();
  await page.evaluate(() => { document.querySelectorAll('.toast').forEach((t) => t.remove()); });
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
  await server.close();
}
