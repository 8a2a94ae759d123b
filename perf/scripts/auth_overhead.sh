#!/usr/bin/env bash
# auth_overhead.sh — the fan-out figure with auth and rate limits on vs off (issue: within
# 5%). Runs compare.sh's `flat` (or $1) scenario against tracecast only, alternating
# "off" and "on" for ROUNDS rounds; "on" enables JWT auth (every connection presents a
# token in ?token=) and per-connection rate limits sized so that they never trigger but
# are checked on every message.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SCENARIO="${1:-flat}"
ROUNDS="${ROUNDS:-3}"
SECRET="perf-secret-perf-secret-perf-secret-0123"
OUT="${RESULTS:-$ROOT/perf/results/auth-$SCENARIO-$(date +%Y%m%d-%H%M%S).jsonl}"
mkdir -p "$(dirname "$OUT")"
cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p tracecast -p tracecast-loadgen
TOKEN="$(TRACECAST_JWT_SECRET="$SECRET" "$ROOT/target/release/tracecast" token --sub loadgen \
  --permissions read,publish --sessions '*' --ttl 1h)"
ON_TOML="[auth]
enabled = true
jwt_secret = \"$SECRET\""
RL_ON='enabled = true
window_ms = 60000
max_messages = 100000000
max_bytes_per_window = 100000000000'
for round in $(seq 1 "$ROUNDS"); do
  for mode in off on; do
    if [ "$mode" = on ]; then
      extra="$ON_TOML" rl="$RL_ON" q="?token=$TOKEN"
    else
      extra="" rl="enabled = false" q=""
    fi
    TRACECAST_CONFIG_EXTRA="$extra" RATE_LIMIT_TOML="$rl" URL_QUERY="$q" SKIP_BUILD=1 ROUNDS=1 \
      SERVERS=tracecast RESULTS="$OUT.tmp" "$ROOT/perf/scripts/compare.sh" "$SCENARIO" >/dev/null
    jq -c --arg mode "$mode" '. + {auth_mode: $mode}' "$OUT.tmp" >>"$OUT"
    rm -f "$OUT.tmp"
    echo "round $round $mode: $(tail -n1 "$OUT" | jq -c '{deliveries_per_sec, server_cpu_pct, cpu_ns_per_delivery: .server_cpu_ns_per_delivery}')"
  done
done
echo "== medians ($OUT)"
for mode in off on; do
  jq -s --arg mode "$mode" '[.[] | select(.auth_mode == $mode) | .deliveries_per_sec] | sort | .[(length/2|floor)]' "$OUT" |
    sed "s/^/$mode deliveries_per_sec median: /"
done
