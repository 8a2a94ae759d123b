#!/usr/bin/env bash
# compare.sh — tracecast vs the Node `ws` peer, same loadgen, same run, alternating
# A B A B so drift on a shared machine hits both servers alike.
#
# Usage: perf/scripts/compare.sh [fixed|flat|idle|start|all]   (default: fixed)
#
# Environment (all optional):
#   SERVERS="tracecast node tokio"   servers to run, in this order within each round
#                              (tokio: perf/peers/tokio-ws, tokio + tokio-tungstenite)
#   ROUNDS=3                   rounds (each runs every server once)
#   DURATION / WARMUP          measured / unmeasured seconds (per-scenario defaults below)
#   MAX_OUTSTANDING=100000     flat: closed-loop bound on undelivered deliveries
#   TRACECAST_CMD              server command; {PORT} and {CONFIG} are substituted.
#                              default: target/release/tracecast serve --port {PORT} --ephemeral --config {CONFIG}
#   TRACECAST_CONFIG_EXTRA     TOML appended to the generated tracecast config (top-level
#                              keys must come before the [rate_limit] table, so use tables)
#   NODE_CMD                   default: node perf/peers/node-ws/server.js {PORT}
#   TOKIO_CMD                  default: perf/peers/tokio-ws/target/release/tokio-ws-peer {PORT}
#   PORT=18080                 port the servers listen on (one at a time)
#   SERVER_CORE=0 LOADGEN_CORE=1   taskset pinning
#   NICE=-10                   run server and loadgen at this nice level (root) so other
#                              work on a shared machine disturbs the run less; default 0
#   RESULTS=perf/results/<scenario>-<time>.jsonl
#   SKIP_BUILD=1               do not run cargo build / npm install
#   LOADGEN_ARGS               extra loadgen flags, appended last
#   URL_QUERY                  appended to the WebSocket URL (e.g. "?token=…")
#   RATE_LIMIT_TOML            body of tracecast's [rate_limit] table (default: enabled = false)
#
# Needs: cargo, node + npm, taskset, jq.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SCENARIO="${1:-fixed}"
SERVERS="${SERVERS:-tracecast node tokio}"
ROUNDS="${ROUNDS:-3}"
PORT="${PORT:-18080}"
SERVER_CORE="${SERVER_CORE:-0}"
LOADGEN_CORE="${LOADGEN_CORE:-1}"
NICE="${NICE:-0}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
LOADGEN="$TARGET/release/loadgen"
STAMP="$(date +%Y%m%d-%H%M%S)"
RESULTS="${RESULTS:-$ROOT/perf/results/$SCENARIO-$STAMP.jsonl}"
WORK="$(mktemp -d)"
SERVER_PID=""

for tool in taskset jq; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool is required" >&2; exit 2; }
done

cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 10,000 idle connections need more than 10,000 descriptors on both ends.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt 10100 ]; then
  echo "compare.sh: warning: only $(ulimit -n) file descriptors; the idle scenario needs > 10100" >&2
fi

# tracecast's defaults protect a public server (max_connections 1000, 1000 messages a
# minute per connection); the benchmark needs them out of the way, as they are in the
# Node peer. Info logs per connection would also be a cost Node does not pay.
cat >"$WORK/tracecast.toml" <<TOML
bind = "127.0.0.1"
max_connections = 20000

[log]
level = "warn"

[rate_limit]
${RATE_LIMIT_TOML:-enabled = false}
${TRACECAST_CONFIG_EXTRA:-}
TOML

USER_TRACECAST_CMD="${TRACECAST_CMD:-}"
# Defaults live in plain variables: a literal "}" inside ${VAR:-…} would end it early.
DEFAULT_TRACECAST_CMD="$TARGET/release/tracecast serve --port {PORT} --ephemeral --config {CONFIG}"
DEFAULT_NODE_CMD="node $ROOT/perf/peers/node-ws/server.js {PORT}"
TRACECAST_CMD="${TRACECAST_CMD:-$DEFAULT_TRACECAST_CMD}"
NODE_CMD="${NODE_CMD:-$DEFAULT_NODE_CMD}"
DEFAULT_TOKIO_CMD="$ROOT/perf/peers/tokio-ws/target/release/tokio-ws-peer {PORT}"
TOKIO_CMD="${TOKIO_CMD:-$DEFAULT_TOKIO_CMD}"

if [ -z "${SKIP_BUILD:-}" ]; then
  echo "== building (release)" >&2
  cargo build --release -p tracecast-loadgen >&2
  case " $SERVERS " in *" tracecast "*)
    # A user-supplied TRACECAST_CMD may point anywhere; only build the default binary.
    if [ -z "$USER_TRACECAST_CMD" ]; then cargo build --release --bin tracecast >&2; fi ;;
  esac
  case " $SERVERS " in *" node "*)
    (cd perf/peers/node-ws && npm install --no-audit --no-fund --silent) >&2 ;;
  esac
  case " $SERVERS " in *" tokio "*)
    # Its own workspace and target directory: tokio never enters tracecast's build.
    cargo build --release --manifest-path perf/peers/tokio-ws/Cargo.toml >&2 ;;
  esac
fi
[ -x "$LOADGEN" ] || { echo "compare.sh: $LOADGEN missing (build it or unset SKIP_BUILD)" >&2; exit 2; }

server_cmd() {
  local tpl
  case "$1" in
    tracecast) tpl="$TRACECAST_CMD" ;;
    node) tpl="$NODE_CMD" ;;
    tokio) tpl="$TOKIO_CMD" ;;
    *) echo "compare.sh: unknown server $1" >&2; return 2 ;;
  esac
  tpl="${tpl//\{PORT\}/$PORT}"
  printf '%s' "${tpl//\{CONFIG\}/$WORK/tracecast.toml}"
}

start_server() {
  local name="$1" cmd
  cmd="$(server_cmd "$name")"
  # exec keeps the pid we record the server's own, so /proc/PID is the server.
  # tracecast refuses unknown TRACECAST_* variables, so this script's own stay here.
  env -u TRACECAST_CMD -u TRACECAST_CONFIG_EXTRA -u TRACECAST_TOKEN -u TOKIO_CMD \
    bash -c "exec nice -n $NICE taskset -c $SERVER_CORE $cmd" >"$WORK/$name.log" 2>&1 &
  SERVER_PID=$!
  local deadline=$((SECONDS + 20))
  until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "compare.sh: $name exited during start-up; its log:" >&2
      tail -20 "$WORK/$name.log" >&2
      SERVER_PID=""
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "compare.sh: $name did not accept on port $PORT within 20s" >&2
      return 1
    fi
    sleep 0.05
  done
}

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

scenario_args() {
  local url="ws://127.0.0.1:$PORT/ws${URL_QUERY:-}"
  case "$1" in
    fixed) echo "--url $url --subscribers 1000 --sessions 10 --publishers 10 --rate 10000 --batch 10 --duration ${DURATION:-20} --warmup ${WARMUP:-5}" ;;
    flat) echo "--url $url --subscribers 1000 --sessions 10 --publishers 10 --rate 0 --batch 10 --max-outstanding ${MAX_OUTSTANDING:-100000} --duration ${DURATION:-20} --warmup ${WARMUP:-5}" ;;
    idle) echo "--url $url --subscribers 0 --publishers 0 --idle 10000 --duration ${DURATION:-3} --warmup ${WARMUP:-2}" ;;
    start) echo "--url $url --subscribers 0 --publishers 0 --duration ${DURATION:-1} --warmup 0" ;;
    *) echo "compare.sh: unknown scenario $1 (fixed|flat|idle|start|all)" >&2; return 2 ;;
  esac
}

run_one() {
  local scenario="$1" server="$2" round="$3" args out
  args="$(scenario_args "$scenario")"
  start_server "$server" || return 1
  echo "== $scenario round $round: $server (pid $SERVER_PID)" >&2
  # shellcheck disable=SC2086
  if out="$(nice -n "$NICE" taskset -c "$LOADGEN_CORE" "$LOADGEN" $args --server-pid "$SERVER_PID" \
      --label "$server/$scenario/r$round" ${LOADGEN_ARGS:-})"; then
    echo "$out" | jq -c --arg server "$server" --arg scenario "$scenario" --argjson round "$round" \
      '{server: $server, scenario: $scenario, round: $round} + .' >>"$RESULTS"
    echo "$out" | jq -c '{deliveries_per_sec, latency_us: {p50: .latency_us.p50, p99: .latency_us.p99}, missing: .drops.missing, server_cpu_pct, server_peak_rss_kb, loadgen_cpu_pct, other_cpu_pct}' >&2
  else
    echo "compare.sh: loadgen failed for $server/$scenario/r$round" >&2
  fi
  stop_server
}

mkdir -p "$(dirname "$RESULTS")"
case "$SCENARIO" in
  all) SCENARIOS="start idle fixed flat" ;;
  *) scenario_args "$SCENARIO" >/dev/null; SCENARIOS="$SCENARIO" ;;
esac
for scenario in $SCENARIOS; do
  for round in $(seq "$ROUNDS"); do
    for server in $SERVERS; do
      run_one "$scenario" "$server" "$round" || echo "compare.sh: $server/$scenario/r$round skipped" >&2
    done
  done
done

echo "== results: $RESULTS" >&2
"$ROOT/perf/scripts/summarize.sh" "$RESULTS"
