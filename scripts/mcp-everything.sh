#!/usr/bin/env bash
# Starts the MCP reference server (npm @modelcontextprotocol/server-everything, pinned) on
# 127.0.0.1 for the tests; installs it once.
#
#   scripts/mcp-everything.sh streamableHttp|sse PORT   prints: URL PID
#   scripts/mcp-everything.sh install                   installs only
# The server listens on all interfaces: it is only ever addressed at 127.0.0.1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/peers-lib.sh"
npm_install mcp-everything @modelcontextprotocol/server-everything@2026.8.31
mode=${1:?streamableHttp, sse or install}
[ "$mode" = install ] && exit 0
port=${2:?port}
case $mode in streamableHttp) path=/mcp ;; sse) path=/sse ;; *) echo "unknown mode $mode" >&2; exit 2 ;; esac
log="$PEERS_HOME/mcp-everything-$port.log"
PORT=$port nohup node "$PEERS_HOME/mcp-everything/node_modules/@modelcontextprotocol/server-everything/dist/index.js" "$mode" >"$log" 2>&1 &
pid=$!
wait_listening "$port" "$pid" "$log" "server-everything"
echo "http://127.0.0.1:$port$path $pid"
