#!/usr/bin/env bash
# cluster.sh — standalone against cluster mode (one node + nats-server), alternating
# A B A B … in one session (docs/PERFORMANCE.md, "Cluster mode").
#
# Usage: perf/scripts/cluster.sh [ROUNDS]   (needs nats-server, jq; release builds of
# tracecast and loadgen: cargo build --release -p tracecast -p tracecast-loadgen)
#
# Per round and mode, three loadgen runs against the same binary (cluster mode is only the
# `[cluster] nats_url` line):
#   ingest  — 4 publishers, 50-event frames, flat out, 1 subscriber (closed loop bounded
#             at 25,000 undelivered events, within the node's 1,024 publishes in flight);
#   latency — 20,000 events/s in 50-event frames, 1 subscriber: publish→deliver p50/p99;
#   fanout  — 2,000 events/s in 50-event frames to 200 subscribers of one session
#             (400,000 deliveries/s): server CPU ns per delivery.
# tracecast on core 0; loadgen and nats-server on core 1. nats-server's CPU (utime+stime
# from /proc) is sampled around each run. Results: perf/results/cluster-<time>.jsonl.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
ROUNDS="${1:-3}"
BIN="${BIN:-$ROOT/target/release/tracecast}"
LOADGEN="${LOADGEN:-$ROOT/target/release/loadgen}"
OUT="$ROOT/perf/results/cluster-$(date +%Y%m%d-%H%M%S).jsonl"
mkdir -p "$(dirname "$OUT")"
PORT=18090
NATS_PORT=14222
TICK="$(getconf CLK_TCK)"

cpu_s() { # pid -> CPU seconds so far
  awk -v t="$TICK" '{print ($14 + $15) / t}' "/proc/$1/stat" 2>/dev/null || echo 0
}

wait_port() {
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "port $1 never opened" >&2; return 1
}

wait_healthy() {
  for _ in $(seq 200); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0; sleep 0.05
  done
  echo "node never became current" >&2; return 1
}

run_one() { # mode scenario loadgen-args...
  local mode="$1" scenario="$2"; shift 2
  local dir cfg pid npid="" n0=0 n1=0 out
  dir="$(mktemp -d)"; cfg="$dir/bench.toml"
  printf 'port = %s\n[log]\nlevel = "warn"\n[rate_limit]\nenabled = false\n' "$PORT" >"$cfg"
  if [ "$mode" = cluster ]; then
    taskset -c 1 nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$dir/nats" >/dev/null 2>&1 &
    npid=$!
    wait_port "$NATS_PORT"
    printf '[cluster]\nnats_url = "nats://127.0.0.1:%s"\nnode_id = "bench"\n' "$NATS_PORT" >>"$cfg"
  fi
  taskset -c 0 "$BIN" serve --data-dir "$dir/data" --config "$cfg" >/dev/null 2>&1 &
  pid=$!
  wait_port "$PORT"; wait_healthy
  [ -n "$npid" ] && n0="$(cpu_s "$npid")"
  out="$(taskset -c 1 "$LOADGEN" --url "ws://127.0.0.1:$PORT/ws" --server-pid "$pid" \
    --duration 8 --warmup 2 "$@")" || true
  [ -n "$npid" ] && n1="$(cpu_s "$npid")"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  [ -n "$npid" ] && { kill "$npid"; wait "$npid" 2>/dev/null || true; }
  rm -rf "$dir"
  echo "$out" | jq -c --arg mode "$mode" --arg scenario "$scenario" \
    --argjson nats_cpu_s "$(echo "$n1 - $n0" | bc -l)" \
    '{mode: $mode, scenario: $scenario, nats_cpu_s: $nats_cpu_s,
      nats_ns_per_event: (if .published_total > 0 then ($nats_cpu_s * 1e9 / .published_total) else null end)} + .' \
    | tee -a "$OUT"
}

for r in $(seq "$ROUNDS"); do
  for mode in standalone cluster; do
    run_one "$mode" ingest --subscribers 1 --publishers 4 --rate 0 --batch 50 --max-outstanding 25000
    run_one "$mode" latency --subscribers 1 --publishers 1 --rate 20000 --batch 50
    run_one "$mode" fanout --subscribers 200 --sessions 1 --publishers 1 --rate 2000 --batch 50
  done
done
echo "results: $OUT"
