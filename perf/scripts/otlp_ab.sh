#!/usr/bin/env bash
# perf/scripts/otlp_ab.sh OLD [NEW] — OTLP ingest A/B: a previous tracecast binary against
# this one (default target/release/tracecast), alternating, three rounds of one 5-s window
# per mode (native /v1/events, OTLP protobuf, OTLP/JSON), each binary started fresh on an
# empty log: server on core 0, otlp-load on core 1. The config is docs/PERFORMANCE.md's
# "OTLP ingest" bench.toml (port 18181, data_dir /tmp/otlp-bench/data).
# Build first: cargo build --release -p tracecast --bin tracecast -p tracecast-loadgen --bin otlp-load
set -u
old="${1:?usage: otlp_ab.sh OLD_BINARY [NEW_BINARY]}"
new="${2:-target/release/tracecast}"
toml="${BENCH_TOML:-bench.toml}"
data="${BENCH_DATA:-/tmp/otlp-bench/data}"
for round in 1 2 3; do
  for which in previous this; do
    bin=$old
    [ "$which" = this ] && bin=$new
    rm -rf "$data"
    taskset -c 0 "$bin" serve --config "$toml" >/dev/null 2>&1 & pid=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/18181) 2>/dev/null && break; sleep 0.05; done
    echo "== round $round, $which build"
    taskset -c 1 target/release/otlp-load --addr 127.0.0.1:18181 --rounds 1 --duration 5 \
      --server-pid "$pid" 2>&1 | grep -E '^ +1 '
    kill "$pid"; wait "$pid" 2>/dev/null
  done
done
