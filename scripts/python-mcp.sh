#!/usr/bin/env bash
# Starts an MCP server built with the official Python SDK (PyPI `mcp`, pinned; MCPServer,
# formerly FastMCP) on 127.0.0.1 for the tests; installs it into a virtualenv once.
#
#   scripts/python-mcp.sh streamable-http|sse PORT [SESSION_IDLE_SECONDS]   prints: URL PID
#   scripts/python-mcp.sh install                                            installs only
# Tools: see scripts/python_mcp_server.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/peers-lib.sh"
venv_install python-mcp-venv mcp==2.3.0
mode=${1:?streamable-http, sse or install}
[ "$mode" = install ] && exit 0
port=${2:?port}
case $mode in streamable-http) path=/mcp ;; sse) path=/sse ;; *) echo "unknown mode $mode" >&2; exit 2 ;; esac
log="$PEERS_HOME/python-mcp-$port.log"
nohup "$PEERS_HOME/python-mcp-venv/bin/python" "$here/python_mcp_server.py" "$mode" "$port" ${3:+"$3"} >"$log" 2>&1 &
pid=$!
# Wait for the port, not for /sse: the SDK's SSE server has been seen to exit when a
# client drops the stream abruptly.
wait_listening "$port" "$pid" "$log" "the Python MCP server"
echo "http://127.0.0.1:$port$path $pid"
