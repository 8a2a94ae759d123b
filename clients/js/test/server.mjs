// Test harness: starts the real `tracecast` binary (target/debug, or $TRACECAST_BIN) on a
// free port with a temp config, like tests/common/mod.rs does for the Rust tests. Every
// wait is bounded; nothing sleeps to synchronise.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';

export { WebSocket };
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = process.env.TRACECAST_BIN || join(root, 'target/debug/tracecast');
export const WAIT = 10000;

if (!existsSync(BIN)) {
  throw new Error(`${BIN} is missing: run \`cargo build --bin tracecast\` first (or set TRACECAST_BIN)`);
}

export class TestServer {
  static async start(extraToml = '', { dir, env = {} } = {}) {
    const own = !dir;
    dir = dir || mkdtempSync(join(tmpdir(), 'tracecast-js-'));
    const s = new TestServer(dir, own);
    await s.launch(extraToml, env);
    return s;
  }

  constructor(dir, own) {
    this.dir = dir;
    this.own = own;
    this.logs = [];
  }

  async launch(extraToml, env, port = 0) {
    const config = join(this.dir, 'tracecast.toml');
    writeFileSync(config, `port = ${port}\ndata_dir = ${JSON.stringify(join(this.dir, 'data'))}\n${extraToml}\n`);
    this.extraToml = extraToml;
    this.env = env;
    const child = spawn(BIN, ['serve', '--config', config, '--log-format', 'json'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, RUST_LOG: '', ...env },
    });
    this.child = child;
    const rl = createInterface({ input: child.stderr });
    this.addr = await new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`server did not start:\n${this.logs.join('\n')}`)), WAIT);
      child.once('exit', (code) => { clearTimeout(timer); rej(new Error(`server exited with ${code}:\n${this.logs.join('\n')}`)); });
      rl.on('line', (line) => {
        this.logs.push(line);
        if (line.includes('listening')) {
          clearTimeout(timer);
          try { res(JSON.parse(line).fields.addr); } catch (e) { rej(e); }
        }
      });
    });
    this.exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  }

  get wsUrl() { return `ws://${this.addr}/ws`; }
  get httpUrl() { return `http://${this.addr}`; }

  /** SIGTERM, wait for exit (it flushes and syncs the log), then start again on the same port and data. */
  async restart() {
    const port = Number(this.addr.split(':').pop());
    await this.stop();
    await this.launch(this.extraToml, this.env, port);
  }

  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), WAIT);
    await this.exited;
    clearTimeout(t);
  }

  async close() {
    await this.stop();
    if (this.own) rmSync(this.dir, { recursive: true, force: true });
  }

  async publish(events, token) {
    const headers = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const r = await fetch(`${this.httpUrl}/v1/events`, { method: 'POST', headers, body: JSON.stringify(events) });
    const body = await r.json();
    if (r.status !== 202) throw new Error(`publish: ${r.status} ${JSON.stringify(body)}`);
    return body;
  }

  token(args) {
    const config = join(this.dir, 'tracecast.toml');
    return execFileSync(BIN, ['token', '--config', config, ...args], { encoding: 'utf8', env: { ...process.env, ...this.env } }).trim();
  }
}

/** Resolves with the first value `pred` returns truthy for, polled on each `name` event. */
export function waitFor(client, name, pred = () => true, ms = WAIT) {
  return new Promise((res, rej) => {
    const timer = setTimeout(() => { off(); rej(new Error(`timed out waiting for ${name}`)); }, ms);
    const off = client.on(name, (...args) => {
      const v = pred(...args);
      if (v) { clearTimeout(timer); off(); res(v === true ? args[0] : v); }
    });
  });
}

/** Collects `trace_event`s into an array; `until(n)` resolves once n have arrived. */
export function collect(client) {
  const events = [];
  const waiters = [];
  client.on('trace_event', (e) => {
    events.push(e);
    for (const w of [...waiters]) if (events.length >= w.n) { clearTimeout(w.t); waiters.splice(waiters.indexOf(w), 1); w.res(events); }
  });
  events.until = (n, ms = WAIT) => new Promise((res, rej) => {
    if (events.length >= n) return res(events);
    const w = { n, res };
    w.t = setTimeout(() => rej(new Error(`got ${events.length} of ${n} events`)), ms);
    waiters.push(w);
  });
  return events;
}

export function ev(i, extra = {}) {
  return { type: 'TASK_START', sessionId: 's1', agentId: `a${i % 3}`, timestamp: 1700000000000 + i * 1000, data: { i }, ...extra };
}
