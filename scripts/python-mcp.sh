#!/usr/bin/env bash
# Starts an MCP server built with the official Python SDK (PyPI `mcp`, pinned; MCPServer,
# formerly FastMCP) on 127.0.0.1 for the tests; installs it into a virtualenv once.
#
#   scripts/python-mcp.sh streamable-http|sse PORT [SESSION_IDLE_SECONDS]   prints: URL PID
#   scripts/python-mcp.sh install                                            installs only
# Tools: see scripts/python_mcp_server.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
home="${CHATTERFLY_PEERS_HOME:-$HOME/.cache/chatterfly-peers}"
venv="$home/python-mcp-venv"
pins="mcp==2.3.0"
stamp="$venv/.installed-$(echo "$pins" | md5sum | cut -c1-8)"
mkdir -p "$home"
if [ ! -f "$stamp" ]; then
  python3 -m venv "$venv" >&2
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q $pins >&2
  touch "$stamp"
fi
mode=${1:?streamable-http, sse or install}
[ "$mode" = install ] && exit 0
port=${2:?port}
case $mode in streamable-http) path=/mcp ;; sse) path=/sse ;; *) echo "unknown mode $mode" >&2; exit 2 ;; esac
log="$home/python-mcp-$port.log"
nohup "$venv/bin/python" "$here/python_mcp_server.py" "$mode" "$port" ${3:+"$3"} >"$log" 2>&1 &
pid=$!
# Wait for the port, not for /sse: the SDK's SSE server has been seen to exit when a
# client drops the stream abruptly.
for _ in $(seq 300); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "http://127.0.0.1:$port$path $pid"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then break; fi
  sleep 0.1
done
echo "the Python MCP server did not listen on 127.0.0.1:$port within 30 s; see $log" >&2
cat "$log" >&2 || true
kill "$pid" 2>/dev/null || true
exit 1
