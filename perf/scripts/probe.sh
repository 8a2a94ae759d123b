#!/usr/bin/env bash
# probe.sh — replays the hostile clients of SPEC §8 against a release tracecast and
# prints one table row per attack (RSS growth, server CPU, watcher RTT, what the
# attacker got, PASS/FAIL against the bounds tests/hostile.rs uses). Exits 1 on any FAIL.
#
# Each attack gets a fresh server: its own config (`loadgen probe config NAME`), its own
# descriptor limit (`loadgen probe nofile NAME`), a fresh data directory and a clean
# memory baseline. The server runs pinned to SERVER_CORE, the probe to PROBE_CORE.
#
# Usage: perf/scripts/probe.sh [ATTACK…]        (default: all, see `loadgen probe list`)
#
# Environment (all optional):
#   PORT=18090                 loopback port the servers listen on (one at a time)
#   SERVER_CORE=0 PROBE_CORE=1 taskset pinning (skipped when taskset is missing)
#   SKIP_BUILD=1               do not run cargo build
#   RESULTS=perf/results/probe-<time>.jsonl   one JSON line per attack
#   KEEP_LOGS=1                keep the servers' logs and data (path printed at the end)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PORT="${PORT:-18090}"
SERVER_CORE="${SERVER_CORE:-0}"
PROBE_CORE="${PROBE_CORE:-1}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
TRACECAST="$TARGET/release/tracecast"
LOADGEN="$TARGET/release/loadgen"
STAMP="$(date +%Y%m%d-%H%M%S)"
RESULTS="${RESULTS:-$ROOT/perf/results/probe-$STAMP.jsonl}"
WORK="$(mktemp -d)"
SERVER_PID=""

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

cleanup() {
  stop_server
  if [ -n "${KEEP_LOGS:-}" ]; then
    echo "probe.sh: logs and data kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if command -v taskset >/dev/null; then
  PIN_SERVER=(taskset -c "$SERVER_CORE")
  PIN_PROBE=(taskset -c "$PROBE_CORE")
else
  echo "probe.sh: taskset not found; server and probe run unpinned" >&2
  PIN_SERVER=()
  PIN_PROBE=()
fi

# 300 slow connections in one attack, plus the watchers.
ulimit -n 4096 2>/dev/null || true

if [ -z "${SKIP_BUILD:-}" ]; then
  echo "== building (release)" >&2
  cargo build --release -p tracecast -p tracecast-loadgen --bin tracecast --bin loadgen >&2
fi
for bin in "$TRACECAST" "$LOADGEN"; do
  [ -x "$bin" ] || { echo "probe.sh: $bin missing (build it or unset SKIP_BUILD)" >&2; exit 2; }
done

if [ "$#" -gt 0 ]; then
  ATTACKS=("$@")
else
  mapfile -t ATTACKS < <("$LOADGEN" probe list)
fi
mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"

start_server() {
  local name="$1" dir="$2" nofile
  nofile="$("$LOADGEN" probe nofile "$name")"
  {
    echo 'bind = "127.0.0.1"'
    echo "data_dir = \"$dir/data\""
    "$LOADGEN" probe config "$name"
    printf '\n[log]\nlevel = "warn"\n'
  } >"$dir/tracecast.toml"
  # The subshell lowers the limit for the server alone; exec keeps its pid the server's.
  (
    if [ -n "$nofile" ]; then ulimit -n "$nofile"; fi
    exec "${PIN_SERVER[@]}" "$TRACECAST" serve --port "$PORT" --config "$dir/tracecast.toml"
  ) >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
  local deadline=$((SECONDS + 10))
  until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "probe.sh: the server for $name exited during start-up:" >&2
      sed 's/^/  /' "$dir/server.log" >&2
      SERVER_PID=""
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "probe.sh: the server for $name did not listen within 10 s" >&2
      return 1
    fi
    sleep 0.05
  done
}

fail_line() {
  printf '{"attack":"%s","outcome":"%s","pass":false,"broken":["%s"]}\n' "$1" "$2" "$2" >>"$RESULTS"
}

T0=$SECONDS
for name in "${ATTACKS[@]}"; do
  dir="$WORK/$name"
  mkdir -p "$dir"
  echo "== $name" >&2
  if ! start_server "$name" "$dir"; then
    fail_line "$name" "server did not start (config refused?)"
    stop_server
    continue
  fi
  # Every attack bounds itself well under this; the timeout guards against a bug.
  if ! timeout 60 "${PIN_PROBE[@]}" "$LOADGEN" probe run "$name" \
      --addr "127.0.0.1:$PORT" --server-pid "$SERVER_PID" >>"$RESULTS"; then
    fail_line "$name" "probe crashed or timed out"
  fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "probe.sh: the server died during $name" >&2
  fi
  stop_server
done

echo
status=0
"$LOADGEN" probe table "$RESULTS" || status=$?
echo "($((SECONDS - T0)) s; results in $RESULTS)"
exit "$status"
