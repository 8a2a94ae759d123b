#!/usr/bin/env bash
# ab.sh — the previous build against this one, alternating in the same session.
#
# Usage: perf/scripts/ab.sh OLD_BINARY NEW_BINARY [fixed|flat|ingest] [ROUNDS]
#
# fixed / flat: one compare.sh round (tracecast vs the Node peer) per build, A B A B …,
# so every tracecast figure has a Node figure from the same minute beside it.
# ingest: the server alone, 4 publishers sending 50-event frames flat out over
# WebSocket, no subscribers (docs/PERFORMANCE.md, "Through the server").
# Server on core 0, load on core 1. Results go to perf/results/ab-<scenario>-<time>.jsonl;
# each line carries "build": "old" or "new".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OLD="${1:?old binary}"; NEW="${2:?new binary}"; SCENARIO="${3:-fixed}"; ROUNDS="${4:-3}"
LOADGEN="${LOADGEN:-$ROOT/target/release/loadgen}"
OUT="$ROOT/perf/results/ab-$SCENARIO-$(date +%Y%m%d-%H%M%S).jsonl"
mkdir -p "$(dirname "$OUT")"

run_compare() { # build binary
  local tmp; tmp="$(mktemp)"
  SKIP_BUILD=1 ROUNDS=1 RESULTS="$tmp" SERVERS="tracecast node" \
    TRACECAST_CMD="$2 serve --port {PORT} --data-dir $(mktemp -d) --config {CONFIG}" \
    perf/scripts/compare.sh "$SCENARIO" >/dev/null 2>&1 || true
  jq -c --arg build "$1" '{build: $build} + .' "$tmp" >>"$OUT"
  rm -f "$tmp"
}

run_ingest() { # build binary
  local dir cfg pid out
  dir="$(mktemp -d)"; cfg="$dir/norl.toml"
  printf '[log]\nlevel = "warn"\n[rate_limit]\nenabled = false\n' >"$cfg"
  taskset -c 0 "$2" serve --port 18081 --data-dir "$dir/data" --config "$cfg" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/18081) 2>/dev/null && break; sleep 0.05; done
  out="$(taskset -c 1 "$LOADGEN" --url ws://127.0.0.1:18081/ws --subscribers 0 --publishers 4 \
    --rate 0 --batch 50 --duration 8 --warmup 2 --server-pid "$pid")" || true
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  echo "$out" | jq -c --arg build "$1" '{build: $build, server: "tracecast", scenario: "ingest"} + .' >>"$OUT"
}

for round in $(seq "$ROUNDS"); do
  for build in old new; do
    bin="$OLD"; [ "$build" = new ] && bin="$NEW"
    echo "== $SCENARIO round $round: $build" >&2
    case "$SCENARIO" in
      fixed|flat) run_compare "$build" "$bin" ;;
      ingest) run_ingest "$build" "$bin" ;;
      *) echo "ab.sh: unknown scenario $SCENARIO" >&2; exit 2 ;;
    esac
  done
done

echo "== $OUT" >&2
jq -rs '
  def median: map(select(. != null)) | sort
    | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
      else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  group_by([.build, .server]) | map({
    build: .[0].build, server: .[0].server, runs: length,
    deliveries_per_sec: (map(.deliveries_per_sec) | median),
    published_per_sec: (map(.published_per_sec) | median),
    p50_us: (map(.latency_us.p50) | median), p99_us: (map(.latency_us.p99) | median),
    server_cpu_pct: (map(.server_cpu_pct) | median),
    peak_rss_kb: (map(.server_peak_rss_kb) | median),
    each_cpu: map(.server_cpu_pct), each_rate: map(.deliveries_per_sec // .published_per_sec) })
  | .[] | @json' "$OUT"
