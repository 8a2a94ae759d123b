#!/usr/bin/env bash
# tests/autobahn/run.sh — the Autobahn|Testsuite fuzzing client against tracecast's echo
# endpoint (`[debug] echo_path`), every case 1–13 (permessage-deflate variants included).
#
# Creates a Python 2 virtualenv with `autobahntestsuite` if missing (pyenv's 2.7.18),
# builds and starts tracecast (release) with the echo endpoint and limits sized for the
# suite, runs `wstest -m fuzzingclient`, prints a summary by case group, and exits 1 if
# any case is FAILED or a case that expects a clean close ends UNCLEAN.
#
# Environment: VENV (default .autobahn-venv), PORT (default 19001), SKIP_BUILD=1,
# CASES (space-separated case globs, default "*"), REPORTS (default target/autobahn).
set -euo pipefail
set -f  # case globs like "1.*" are for wstest, not the shell
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.autobahn-venv}"
PORT="${PORT:-19001}"
REPORTS="${REPORTS:-$ROOT/target/autobahn}"
CASES="${CASES:-*}"

if [ ! -x "$VENV/bin/wstest" ]; then
  py2="$(pyenv root)/versions/2.7.18/bin/python"
  [ -x "$py2" ] || { echo "autobahn: Python 2.7.18 not found under pyenv" >&2; exit 2; }
  "$py2" -m pip install --quiet virtualenv
  "$py2" -m virtualenv --quiet "$VENV"
  "$VENV/bin/pip" install --quiet autobahntestsuite
fi

[ -n "${SKIP_BUILD:-}" ] || cargo build --release --bin tracecast >&2
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cat >"$work/tracecast.toml" <<TOML
port = $PORT
max_message_size = 16777216
max_event_bytes = 16777216
[log]
level = "warn"
[debug]
echo_path = "/echo"
[rate_limit]
enabled = false
[storage]
persist = false
TOML
"$ROOT/target/release/tracecast" serve --config "$work/tracecast.toml" &
pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done

mkdir -p "$REPORTS"
cat >"$work/spec.json" <<JSON
{
  "outdir": "$REPORTS",
  "servers": [{"agent": "tracecast", "url": "ws://127.0.0.1:$PORT/echo"}],
  "cases": [$(printf '"%s",' $CASES | sed 's/,$//')],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON
(cd "$work" && "$VENV/bin/wstest" -m fuzzingclient -s spec.json) >"$work/wstest.log" 2>&1 || true

python3 - "$REPORTS/index.json" <<'PY'
import json, sys, collections
idx = json.load(open(sys.argv[1]))["tracecast"]
groups = collections.OrderedDict()
bad = []
def key(c):
    return [int(x) for x in c.split(".")]
for case in sorted(idx, key=key):
    r = idx[case]
    g = case.split(".")[0]
    groups.setdefault(g, collections.Counter())[r["behavior"]] += 1
    unclean = r.get("behaviorClose") == "UNCLEAN"
    if r["behavior"] == "FAILED" or unclean:
        bad.append((case, r["behavior"], r.get("behaviorClose")))
print("%-6s %s" % ("group", "results"))
for g, c in groups.items():
    print("%-6s %s" % (g, ", ".join("%s %d" % kv for kv in sorted(c.items()))))
total = collections.Counter()
for c in groups.values():
    total.update(c)
print("all    " + ", ".join("%s %d" % kv for kv in sorted(total.items())))
for case, b, close in bad:
    print("FAILED %s: %s, close %s" % (case, b, close))
sys.exit(1 if bad else 0)
PY
