#!/usr/bin/env bash
# ingest_ab.sh — ingest through the socket, the previous build against this one, and the
# one-publisher/one-subscriber case against the Node peer, alternating in one session.
#
# Usage: perf/scripts/ingest_ab.sh OLD_BINARY NEW_BINARY [ROUNDS]
#
# Per round: `ingest` (4 publishers, 50-event frames flat out, no subscribers, durable
# log with fsync = "interval") for old and new; then `pubsub500` (1 publisher sending
# 500-event frames, 1 subscriber of its session, closed loop with at most
# PUBSUB_OUTSTANDING = 2000 deliveries outstanding, so tracecast's 64 KiB water mark
# never has to drop while Node buffers without bound) for old, new and Node. Server on
# SERVER_CORE (0), load on LOADGEN_CORE (1), port PORT (18543). One JSON line per run in
# perf/results/ingest-ab-<time>.jsonl, with "build" and "scenario" prepended, then the
# medians, including events per second of server CPU (the rate the server would reach
# with its core to itself: the figure to compare when other work shares the machine).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OLD="${1:?old binary}"; NEW="${2:?new binary}"; ROUNDS="${3:-3}"
PORT="${PORT:-18543}"; SERVER_CORE="${SERVER_CORE:-0}"; LOADGEN_CORE="${LOADGEN_CORE:-1}"
DURATION="${DURATION:-8}"; WARMUP="${WARMUP:-2}"
LOADGEN="${LOADGEN:-$ROOT/target/release/loadgen}"
OUT="$ROOT/perf/results/ingest-ab-$(date +%Y%m%d-%H%M%S).jsonl"
mkdir -p "$(dirname "$OUT")"
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
printf '[log]\nlevel = "warn"\n[rate_limit]\nenabled = false\n' >"$WORK/norl.toml"

run() { # build scenario command...
  local build="$1" scenario="$2" pid out args; shift 2
  rm -rf "$WORK/data"
  taskset -c "$SERVER_CORE" "$@" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
  case "$scenario" in
    ingest) args="--subscribers 0 --publishers 4 --batch 50" ;;
    pubsub500) args="--subscribers 1 --sessions 1 --publishers 1 --batch 500 --max-outstanding ${PUBSUB_OUTSTANDING:-2000}" ;;
  esac
  # shellcheck disable=SC2086
  out="$(taskset -c "$LOADGEN_CORE" "$LOADGEN" --url "ws://127.0.0.1:$PORT/ws" $args --rate 0 \
    --duration "$DURATION" --warmup "$WARMUP" --server-pid "$pid" 2>/dev/null)" || true
  kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  [ -n "$out" ] && echo "$out" | jq -c --arg b "$build" --arg s "$scenario" '{build: $b, scenario: $s} + .' >>"$OUT"
}

for round in $(seq "$ROUNDS"); do
  for build in old new; do
    bin="$OLD"; [ "$build" = new ] && bin="$NEW"
    echo "== round $round: ingest $build" >&2
    run "$build" ingest "$bin" serve --port "$PORT" --data-dir "$WORK/data" --config "$WORK/norl.toml"
  done
  for build in old new node; do
    echo "== round $round: pubsub500 $build" >&2
    case "$build" in
      node) run node pubsub500 node "$ROOT/perf/peers/node-ws/server.js" "$PORT" ;;
      *) bin="$OLD"; [ "$build" = new ] && bin="$NEW"
         run "$build" pubsub500 "$bin" serve --port "$PORT" --data-dir "$WORK/data" --config "$WORK/norl.toml" ;;
    esac
  done
done

echo "== $OUT" >&2
jq -rs '
  def median: map(select(. != null)) | sort
    | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
      else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  group_by([.scenario, .build]) | map({
    scenario: .[0].scenario, build: .[0].build, runs: length,
    events_per_sec: (map(.published_per_sec) | median),
    deliveries_per_sec: (map(.deliveries_per_sec) | median),
    server_cpu_pct: (map(.server_cpu_pct) | median),
    events_per_cpu_sec: (map(select(.server_cpu_pct > 0) | .published_per_sec * 100 / .server_cpu_pct) | median),
    p50_us: (map(.latency_us.p50) | median), p99_us: (map(.latency_us.p99) | median),
    other_cpu_pct: (map(.other_cpu_pct) | median),
    each_rate: map(.published_per_sec | floor), each_cpu: map(.server_cpu_pct) })
  | .[] | @json' "$OUT"
