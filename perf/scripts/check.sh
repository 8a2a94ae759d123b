#!/usr/bin/env bash
# check.sh — a short regression guard: this tree against a previous build, side by side.
#
# Usage: perf/scripts/check.sh [REV]        (REV: any git revision, default main)
#
# Builds REV (exported with `git archive` into target/check-prev/src and compiled into
# target/check-prev, both kept, so a second run only rebuilds what changed) and this
# working tree, then runs, alternating previous/current in every round:
#   ingest   the server alone, 4 publishers flat out, 50-event frames, durable log
#   fixed    1,000 subscribers, 1 M deliveries/s: server CPU % and p99 latency
#   flat     the same topology flat out: deliveries/s and server CPU ns per delivery
#   benches  criterion core benches (protocol encoders, ingest validation, fan-out)
# and prints, per figure, the median of each build and the ratio current / previous
# (for rates above 1 is better; for CPU, latency and bench times below 1 is better).
# One loadgen (this tree's) measures both builds.
#
# Environment: ROUNDS=3, DURATION=5, WARMUP=2 (seconds, loadgen runs), PARTS="ingest
# fixed flat benches", SERVER_CORE=0, LOADGEN_CORE=1, PORT=18085, BENCH_TIME=2
# (criterion measurement seconds), KEEP=1 keeps the work directory.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
REV="${1:-main}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5}"
WARMUP="${WARMUP:-2}"
PARTS="${PARTS:-ingest fixed flat benches}"
SERVER_CORE="${SERVER_CORE:-0}"
LOADGEN_CORE="${LOADGEN_CORE:-1}"
PORT="${PORT:-18085}"
BENCH_TIME="${BENCH_TIME:-2}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
PREV_TARGET="$ROOT/target/check-prev"
BENCHES=(encode_trace_batch_50 encode_trace_batch_50_delta ingest_validate_50 fanout/batch50_to_1000_queues)

for tool in git taskset jq cargo; do
  command -v "$tool" >/dev/null || { echo "check.sh: $tool is required" >&2; exit 2; }
done
git rev-parse --verify --quiet "$REV^{commit}" >/dev/null || { echo "check.sh: unknown revision $REV" >&2; exit 2; }
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# A fixed path, and git archive stamps files with the commit time: checking the same
# revision again rebuilds nothing.
PREV_SRC="$PREV_TARGET/src"
echo "== exporting $REV ($(git rev-parse --short "$REV")) into $PREV_SRC" >&2
rm -rf "$PREV_SRC"
mkdir -p "$PREV_SRC"
git archive "$REV" | tar -x -C "$PREV_SRC"

# Prints the bench executables a `cargo bench --no-run` built, one "name path" a line.
bench_bins() { # manifest target-dir
  CARGO_TARGET_DIR="$2" cargo bench --manifest-path "$1" --benches --no-run --message-format=json 2>/dev/null \
    | jq -r 'select(.reason == "compiler-artifact" and .executable != null and (.target.kind | index("bench")))
             | "\(.target.name) \(.executable)"'
}

# The first run seeds the previous build's directory with a copy of this tree's release
# dependencies: most revisions share them, and cargo reuses what still matches.
if [ ! -d "$PREV_TARGET/release" ] && [ -d "$TARGET/release" ]; then
  echo "== seeding $PREV_TARGET/release from $TARGET/release" >&2
  # Best effort: a build running meanwhile may remove a file under our feet.
  cp -a "$TARGET/release" "$PREV_TARGET/release" 2>/dev/null || true
fi
echo "== building current and previous (release)" >&2
cargo build --release --bin tracecast >&2
cargo build --release -p tracecast-loadgen --bin loadgen >&2
CARGO_TARGET_DIR="$PREV_TARGET" cargo build --release --bin tracecast --manifest-path "$PREV_SRC/Cargo.toml" >&2
BIN_new="$TARGET/release/tracecast"
BIN_old="$PREV_TARGET/release/tracecast"
LOADGEN="$TARGET/release/loadgen"
case " $PARTS " in *" benches "*)
  bench_bins "$ROOT/Cargo.toml" "$TARGET" >"$WORK/benches.new"
  bench_bins "$PREV_SRC/Cargo.toml" "$PREV_TARGET" >"$WORK/benches.old" ;;
esac

printf 'bind = "127.0.0.1"\nmax_connections = 20000\n[log]\nlevel = "warn"\n[rate_limit]\nenabled = false\n' >"$WORK/server.toml"
OUT="$WORK/results.jsonl"

start() { # binary
  rm -rf "$WORK/data"
  taskset -c "$SERVER_CORE" "$1" serve --port "$PORT" --data-dir "$WORK/data" --config "$WORK/server.toml" \
    >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 400); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0; sleep 0.05; done
  echo "check.sh: server did not start; its log:" >&2; tail -5 "$WORK/server.log" >&2; return 1
}
stop() {
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

load() { # build part args…
  local build="$1" part="$2" out; shift 2
  start "$(eval echo "\$BIN_$build")" || return 0
  # shellcheck disable=SC2068
  out="$(taskset -c "$LOADGEN_CORE" "$LOADGEN" --url "ws://127.0.0.1:$PORT/ws" $@ \
      --duration "$DURATION" --warmup "$WARMUP" --server-pid "$SERVER_PID" 2>/dev/null)" || out=""
  stop
  [ -n "$out" ] || { echo "check.sh: loadgen failed ($build $part)" >&2; return 0; }
  echo "$out" | jq -c --arg b "$build" --arg p "$part" '{build: $b, part: $p} + .' >>"$OUT"
}

bench() { # build
  local name exe
  while read -r name exe; do
    for b in "${BENCHES[@]}"; do
      # Criterion prints "<id>  time: [low mid high]"; keep the middle, in ns.
      taskset -c "$LOADGEN_CORE" "$exe" --bench --warm-up-time 1 --measurement-time "$BENCH_TIME" "^${b}\$" 2>/dev/null \
        | awk -v b="$b" -v build="$1" '
            /time:/ { v = $(NF-3); u = $(NF-2);
                      f = (u == "ps") ? 0.001 : (u == "ns") ? 1 : (u == "µs" || u == "us") ? 1000 : (u == "ms") ? 1e6 : 1e9;
                      printf "{\"build\":\"%s\",\"part\":\"bench\",\"bench\":\"%s\",\"ns\":%f}\n", build, b, v * f }' >>"$OUT" || true
    done
  done <"$WORK/benches.$1"
}

for round in $(seq "$ROUNDS"); do
  for build in old new; do
    echo "== round $round: $build" >&2
    for part in $PARTS; do
      case "$part" in
        ingest) load "$build" ingest --subscribers 0 --publishers 4 --rate 0 --batch 50 ;;
        fixed) load "$build" fixed --subscribers 1000 --sessions 10 --publishers 10 --rate 10000 --batch 10 ;;
        flat) load "$build" flat --subscribers 1000 --sessions 10 --publishers 10 --rate 0 --batch 10 --max-outstanding 100000 ;;
        benches) bench "$build" ;;
        *) echo "check.sh: unknown part $part" >&2; exit 2 ;;
      esac
    done
  done
done

echo "== $REV ($(git rev-parse --short "$REV")) = previous, working tree = current; medians of $ROUNDS" >&2
jq -rs '
  def median: map(select(. != null)) | sort
    | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
      else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def fig($name; f): {name: $name, old: (map(select(.build == "old") | f) | median),
                                    new: (map(select(.build == "new") | f) | median)};
  ( (map(select(.part == "ingest")) | [fig("ingest events/s"; .published_per_sec),
                                       fig("ingest server CPU %"; .server_cpu_pct)]),
    (map(select(.part == "fixed")) | [fig("fixed server CPU %"; .server_cpu_pct),
                                      fig("fixed p99 µs"; .latency_us.p99)]),
    (map(select(.part == "flat")) | [fig("flat deliveries/s"; .deliveries_per_sec),
                                     fig("flat CPU ns/delivery"; .server_cpu_ns_per_delivery)]),
    (map(select(.part == "bench")) | group_by(.bench) | map(.[0].bench as $b | fig("bench " + $b + " ns"; .ns)))
  ) | .[] | select(.old != null or .new != null)
  | [.name, (.old // "-" | tostring), (.new // "-" | tostring),
     (if .old and .new and .old != 0 then (.new / .old * 1000 | round / 1000 | tostring) else "-" end)]
  | @tsv' "$OUT" | (printf 'figure\tprevious\tcurrent\tcurrent/previous\n'; cat) | column -t -s $'\t'
[ -z "${KEEP:-}" ] || echo "== raw results: $OUT" >&2
