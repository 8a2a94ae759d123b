#!/usr/bin/env bash
# summarize.sh RESULTS.jsonl — medians per scenario and server, and tracecast/<peer>
# ratios for every other server in the file (node, tokio, …).
#
# Ratios are tracecast ÷ peer: below 1 is better for tracecast on CPU, RSS and latency;
# above 1 is better for tracecast on throughput.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 RESULTS.jsonl" >&2; exit 2; }
command -v jq >/dev/null || { echo "summarize.sh: jq is required" >&2; exit 2; }

jq -rs '
  def median: map(select(. != null)) | sort
    | if length == 0 then null
      elif length % 2 == 1 then .[length / 2 | floor]
      else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r2: if . == null then null else (. * 100 | round) / 100 end;
  def ratio(a; b): if a == null or b == null or b == 0 then null else (a / b) | r2 end;
  def row:
    { runs: length,
      deliveries_per_sec: (map(.deliveries_per_sec) | median),
      p50_us: (map(.latency_us.p50) | median),
      p99_us: (map(.latency_us.p99) | median),
      p999_us: (map(.latency_us.p999) | median),
      missing: (map(.drops.missing) | median),
      server_cpu_pct: (map(.server_cpu_pct) | median),
      cpu_ns_per_delivery: (map(.server_cpu_ns_per_delivery) | median),
      peak_rss_kb: (map(.server_peak_rss_kb) | median),
      rss_end_kb: (map(.server_rss_kb_end) | median),
      idle_conns: (map(.ready.idle) | median),
      loadgen_saturated_runs: (map(select(.loadgen_saturated)) | length),
      contended_runs: (map(select(.contended)) | length) };
  group_by(.scenario) | map(
    . as $runs
    | ($runs[0].scenario) as $sc
    | (reduce ($runs | group_by(.server))[] as $g ({}; .[$g[0].server] = ($g | row))) as $by
    | { scenario: $sc, servers: $by,
        over: [ $by | keys[] | select(. != "tracecast") as $peer | select($by.tracecast)
          | { peer: $peer, r: {
              server_cpu_pct: ratio($by.tracecast.server_cpu_pct; $by[$peer].server_cpu_pct),
              cpu_ns_per_delivery: ratio($by.tracecast.cpu_ns_per_delivery; $by[$peer].cpu_ns_per_delivery),
              deliveries_per_sec: ratio($by.tracecast.deliveries_per_sec; $by[$peer].deliveries_per_sec),
              p99_us: ratio($by.tracecast.p99_us; $by[$peer].p99_us),
              peak_rss_kb: ratio($by.tracecast.peak_rss_kb; $by[$peer].peak_rss_kb),
              rss_end_kb: ratio($by.tracecast.rss_end_kb; $by[$peer].rss_end_kb) } } ] })
  | . as $all
  | ($all[]
     | "== \(.scenario)",
       (.servers | to_entries[] | "  \(.key): \(.value | tostring)"),
       (.over[] | "  tracecast/\(.peer): \(.r | tostring)")),
    ( ($all | map({key: .scenario, value: .servers}) | from_entries) as $s
      | if ($s.idle and $s.start) then
          "== memory per idle connection (idle rss_end - start rss_end) / idle connections",
          ($s.idle | keys[] as $srv
           | select($s.start[$srv] and $s.idle[$srv].rss_end_kb and $s.start[$srv].rss_end_kb)
           | "  \($srv): \((($s.idle[$srv].rss_end_kb - $s.start[$srv].rss_end_kb) * 1024 / $s.idle[$srv].idle_conns) | round) bytes")
        else empty end )
' "$1"
