// Types for tracecast-client (src/index.js).

/** A stored trace event as delivered: the producer's fields plus `seq` (and any assigned `id`/`timestamp`). */
export interface TraceEvent {
  seq: number;
  type: string;
  sessionId: string;
  id?: string;
  timestamp?: number;
  agentId?: string;
  traceId?: string;
  spanId?: string;
  parentId?: string;
  phase?: string;
  duration?: number;
  data?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  performance?: Record<string, unknown>;
  [field: string]: unknown;
}

export interface SessionInfo {
  id: string;
  eventCount: number;
  agentCount: number;
  firstTimestamp: number | null;
  lastTimestamp: number | null;
  lastSeq: number | null;
}

export interface TimeRange { start: number; end: number }

export interface HistoryResult {
  traces: TraceEvent[];
  total: number;
  timeRange: TimeRange;
  sessionId?: string;
  chunks: number;
}

export interface AgentState {
  status: string;
  lastEventType: string;
  lastEventAt: number;
  eventCount: number;
  spawnedAt?: number;
  destroyedAt?: number;
}

export interface TaskState { status: string; agentId?: string; startedAt?: number; endedAt?: number }

export interface TimeTravelState {
  type: 'time_travel_state';
  timestamp: number;
  sessionId: string;
  state: { agents: Record<string, AgentState>; tasks: Record<string, TaskState>; eventCount: number; lastSeq: number | null };
  traces: TraceEvent[];
}

export interface EventMeta {
  sessionId: string;
  /** `initial` (initial_traces), `live` (trace_batch, also sinceSeq catch-up), `breakpoint` (the hitting event), `recovered` (refetched after events_dropped). */
  source: 'initial' | 'live' | 'breakpoint' | 'recovered';
}

export interface ClientOptions {
  /** `ws://host:port/ws`; in a browser defaults to the page's host. */
  serverUrl?: string;
  /** JWT or API key, sent in-band as `auth` after connecting (or as `?token=` with `tokenInQuery`). */
  authToken?: string | null;
  tokenInQuery?: boolean;
  /** Ask for the `tracecast.bin` subprotocol. Default false. */
  binaryProtocol?: boolean;
  /** `delta` (default) asks for `?compression=delta`; `none` for whole events. */
  compression?: 'delta' | 'none';
  reconnect?: boolean;
  /** Attempts after a lost connection before giving up. Default Infinity. */
  reconnectAttempts?: number;
  /** First backoff delay (ms), doubled per attempt with jitter. Default 250. */
  reconnectDelay?: number;
  maxReconnectDelay?: number;
  /** No message from the server for this long (ms): reconnect. Default 75000. */
  heartbeatTimeout?: number;
  /** Client `heartbeat` requests (latency); 0 turns them off. Default 30000. */
  heartbeatInterval?: number;
  /** Reject a request with no answer after this long (ms). Default 30000. */
  requestTimeout?: number;
  /** `resume()`/`step()` resolve after this long (ms) when no frame or reply came first. Default 1500. */
  ackGrace?: number;
  /** Turn `events_dropped` into a history refetch. Default true. */
  refetchDropped?: boolean;
  /** A WebSocket constructor (Node 20: `import WebSocket from 'ws'`). Defaults to `globalThis.WebSocket`. */
  WebSocket?: unknown;
}

export interface ClientMetrics {
  state: 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';
  connected: boolean;
  clientId: string | null;
  binaryProtocol: boolean;
  paused: { traceId: string; sessionId: string; seq: number | null } | null;
  pendingRequests: number;
  subscriptions: Record<string, { lastSeq: number | null; filter: string | null }>;
  breakpoints: string[];
  connects: number;
  reconnects: number;
  messagesReceived: number;
  bytesReceived: number;
  eventsReceived: number;
  duplicatesSkipped: number;
  eventsDropped: number;
  eventsRecovered: number;
  handlerErrors: number;
  lastMessageAt: number | null;
  lastHeartbeatAt: number | null;
  latencyMs: number | null;
  server: Record<string, unknown> | null;
}

export declare class TracecastError extends Error {
  code: string;
  retryAfterMs?: number;
  requestId?: string | number;
}

export interface ClientEvents {
  connected: (info: { clientId: string; serverInfo: unknown; reconnected: boolean }) => void;
  disconnected: (info: { code: number; reason: string; willReconnect: boolean }) => void;
  reconnecting: (info: { attempt: number; delayMs: number; code: number; reason: string }) => void;
  trace_event: (event: TraceEvent, meta: EventMeta) => void;
  initial_traces: (msg: { sessionId: string; traces: TraceEvent[] }) => void;
  historical_data: (msg: { traces: TraceEvent[]; chunkInfo: { current: number; total: number; isLast: boolean }; total: number }) => void;
  breakpoint_hit: (msg: { traceId: string; sessionId?: string; event: TraceEvent }) => void;
  events_dropped: (msg: { sessionId: string; count: number; fromSeq: number; toSeq: number; reason?: string; refetching: boolean }) => void;
  events_recovered: (msg: { sessionId: string; fromSeq: number; toSeq: number; count: number }) => void;
  session_info: (session: SessionInfo) => void;
  time_travel_state: (msg: TimeTravelState) => void;
  system_event: (msg: { event: string; data: unknown; timestamp: number }) => void;
  heartbeat: (msg: { timestamp: number; metrics: Record<string, unknown> }) => void;
  error: (err: TracecastError) => void;
  message: (msg: { type: string; [k: string]: unknown }) => void;
}

export declare class TraceStreamingClient {
  constructor(options?: ClientOptions);
  readonly isConnected: boolean;
  serverInfo: unknown;
  on<K extends keyof ClientEvents>(name: K, fn: ClientEvents[K]): () => void;
  once<K extends keyof ClientEvents>(name: K, fn: ClientEvents[K]): () => void;
  off<K extends keyof ClientEvents>(name: K, fn: ClientEvents[K]): void;
  connect(): Promise<unknown>;
  disconnect(): void;
  getMetrics(): ClientMetrics;
  subscribeToSession(sessionId: string, opts?: { sinceSeq?: number; filter?: string }): Promise<SessionInfo>;
  unsubscribeFromSession(sessionId: string): Promise<unknown>;
  filterAgents(agentIds: string[]): Promise<unknown>;
  filterEvents(condition: string, opts?: { sessionId?: string }): Promise<unknown>;
  requestHistory(timeRange: TimeRange, opts?: { sessionId?: string; limit?: number; offset?: number; filter?: string; all?: boolean }): Promise<HistoryResult>;
  timeTravel(timestamp: number, opts?: { sessionId?: string }): Promise<TimeTravelState>;
  setBreakpoint(traceId: string, condition?: string, opts?: { sessionId?: string }): Promise<unknown>;
  removeBreakpoint(traceId: string): Promise<unknown>;
  listBreakpoints(): Promise<unknown>;
  resume(opts?: { sessionId?: string }): Promise<unknown>;
  step(opts?: { sessionId?: string }): Promise<unknown>;
  publish(events: Record<string, unknown> | Record<string, unknown>[]): Promise<unknown>;
  events(opts?: { sessionId?: string }): AsyncIterableIterator<TraceEvent>;
  [Symbol.asyncIterator](): AsyncIterableIterator<TraceEvent>;
}

export interface DecodedBinaryBatch {
  version: number;
  kind: number;
  firstSeq: number;
  timestamp: number;
  sessionId: string | null;
  events: { seq: number; timestamp: number; sessionId: string | null; agentId: string | null; type: string | null; event: TraceEvent }[];
}

export declare const BINARY_VERSION: 1;
export declare function decodeBinaryBatch(frame: ArrayBuffer | ArrayBufferView): DecodedBinaryBatch;
export declare function undelta(events: Record<string, unknown>[]): Record<string, unknown>[];
export declare function decodeFrame(data: string | ArrayBuffer | ArrayBufferView): { type: string; [k: string]: unknown };
export default TraceStreamingClient;
