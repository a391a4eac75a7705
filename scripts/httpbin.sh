#!/usr/bin/env bash
# Starts httpbin (PyPI, pinned) under gunicorn on 127.0.0.1 for the tests: the real third-
# party server the tool-execution tests call. Installs it into a virtualenv once.
#
#   scripts/httpbin.sh PORT     prints: URL PID
set -euo pipefail
port=${1:?port}
. "$(cd "$(dirname "$0")" && pwd)/peers-lib.sh"
home=$PEERS_HOME
venv="$home/httpbin-venv"
venv_install httpbin-venv httpbin==0.10.4 flasgger==0.9.7.1 gunicorn==23.0.0
nohup "$venv/bin/gunicorn" -b "127.0.0.1:$port" -w 2 -k gthread --threads 16 --access-logfile - httpbin:app >"$home/httpbin-$port.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/get', timeout=1)" 2>/dev/null; then
    echo "http://127.0.0.1:$port $pid"
    exit 0
  fi
  sleep 0.1
done
echo "httpbin did not answer on 127.0.0.1:$port within 30 s; see $home/httpbin-$port.log" >&2
kill "$pid" 2>/dev/null || true
exit 1
