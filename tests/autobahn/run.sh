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
# CASES (space-separated case globs, default "*"), REPORTS (default target/autobahn),
# PEER=websockets to run the same cases against Python `websockets` as an echo server
# instead (the comparison in docs/CONFORMANCE.md; its venv is PEER_VENV, default
# .autobahn-peer-venv, made with python3 if missing).
set -euo pipefail
set -f  # case globs like "1.*" are for wstest, not the shell
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.autobahn-venv}"
PORT="${PORT:-19001}"
CASES="${CASES:-*}"
PEER="${PEER:-}"
case "$PEER" in
  "") AGENT=tracecast ;;
  websockets) AGENT=websockets ;;
  *) echo "autobahn: PEER must be empty or websockets, not '$PEER'" >&2; exit 2 ;;
esac
REPORTS="${REPORTS:-$ROOT/target/autobahn/$AGENT}"

if [ ! -x "$VENV/bin/wstest" ]; then
  py2="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")/versions/2.7.18/bin/python"
  [ -x "$py2" ] || { echo "autobahn: Python 2.7.18 not found at $py2" >&2; exit 2; }
  "$py2" -m pip install --quiet virtualenv
  "$py2" -m virtualenv --quiet "$VENV"
  "$VENV/bin/pip" install --quiet autobahntestsuite
fi

work="$(mktemp -d)"
pid=""
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
if [ "$AGENT" = websockets ]; then
  PEER_VENV="${PEER_VENV:-$ROOT/.autobahn-peer-venv}"
  if [ ! -x "$PEER_VENV/bin/python" ] || ! "$PEER_VENV/bin/python" -c 'import websockets' 2>/dev/null; then
    python3 -m venv "$PEER_VENV"
    "$PEER_VENV/bin/pip" install --quiet websockets
  fi
  echo "autobahn: Python websockets $("$PEER_VENV/bin/python" -c 'import websockets; print(websockets.__version__)') as the echo server" >&2
  "$PEER_VENV/bin/python" "$ROOT/tests/autobahn/websockets_echo.py" "$PORT" &
  pid=$!
  URL="ws://127.0.0.1:$PORT/"
else
  [ -n "${SKIP_BUILD:-}" ] || cargo build --release --bin tracecast >&2
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
  URL="ws://127.0.0.1:$PORT/echo"
fi
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done

mkdir -p "$REPORTS"
rm -f "$REPORTS/index.json"
cat >"$work/spec.json" <<JSON
{
  "outdir": "$REPORTS",
  "servers": [{"agent": "$AGENT", "url": "$URL"}],
  "cases": [$(printf '"%s",' $CASES | sed 's/,$//')],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON
started=$(date +%s)
(cd "$work" && "$VENV/bin/wstest" -m fuzzingclient -s spec.json) >"$work/wstest.log" 2>&1 || true
echo "autobahn: $AGENT, cases: $CASES, $(( $(date +%s) - started )) s" >&2
[ -f "$REPORTS/index.json" ] || { echo "autobahn: wstest wrote no report:" >&2; tail -n 20 "$work/wstest.log" >&2; exit 1; }

python3 "$ROOT/tests/autobahn/summary.py" "$REPORTS/index.json" "$AGENT"
