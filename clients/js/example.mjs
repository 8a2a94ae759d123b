// example.mjs — node example.mjs [ws://127.0.0.1:8080/ws]
import WebSocket from 'ws';
import { TraceStreamingClient } from './src/index.js';

const client = new TraceStreamingClient({
  serverUrl: process.argv[2] ?? 'ws://127.0.0.1:8080/ws',
  WebSocket, // omit in a browser
  authToken: process.env.TRACECAST_TOKEN, // when auth is on
  reconnectAttempts: Infinity,
});

client.on('connected', ({ reconnected }) => console.log(reconnected ? 'reconnected' : 'connected'));
client.on('reconnecting', ({ attempt, delayMs }) => console.log(`reconnecting #${attempt} in ${delayMs} ms`));
client.on('trace_event', (e) => console.log(e.seq, e.type, e.agentId ?? ''));
client.on('breakpoint_hit', ({ traceId, event }) => console.log('hit', traceId, event.seq));
client.on('error', (err) => console.error(err.code, err.message));

await client.connect();
await client.subscribeToSession('demo');
const failures = client.events({ sessionId: 'demo' }); // an async iterator
await client.publish([
  { type: 'TASK_START', sessionId: 'demo', agentId: 'planner', data: { taskId: 't1' } },
  { type: 'TASK_FAIL', sessionId: 'demo', agentId: 'planner', data: { taskId: 't1', error: 'timeout' } },
]);
for await (const e of failures) {
  if (e.type === 'TASK_FAIL') break;
}

const hour = await client.requestHistory({ start: Date.now() - 3600_000, end: Date.now() });
console.log(`${hour.total} events in the last hour, ${hour.chunks} chunk(s)`);
const now = await client.timeTravel(Date.now());
console.log('tasks now:', now.state.tasks);
client.disconnect();
