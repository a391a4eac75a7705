#!/usr/bin/env bash
# Starts the MCP reference server (npm @modelcontextprotocol/server-everything, pinned) on
# 127.0.0.1 for the tests; installs it once.
#
#   scripts/mcp-everything.sh streamableHttp|sse PORT   prints: URL PID
#   scripts/mcp-everything.sh install                   installs only
# The server listens on all interfaces: it is only ever addressed at 127.0.0.1.
set -euo pipefail
home="${CHATTERFLY_PEERS_HOME:-$HOME/.cache/chatterfly-peers}"
dir="$home/mcp-everything"
pkg="@modelcontextprotocol/server-everything@2026.8.31"
stamp="$dir/.installed-$(echo "$pkg" | md5sum | cut -c1-8)"
mkdir -p "$dir"
if [ ! -f "$stamp" ]; then
  (cd "$dir" && npm install --silent --no-audit --no-fund "$pkg") >&2
  touch "$stamp"
fi
mode=${1:?streamableHttp, sse or install}
[ "$mode" = install ] && exit 0
port=${2:?port}
case $mode in streamableHttp) path=/mcp ;; sse) path=/sse ;; *) echo "unknown mode $mode" >&2; exit 2 ;; esac
log="$home/mcp-everything-$port.log"
PORT=$port nohup node "$dir/node_modules/@modelcontextprotocol/server-everything/dist/index.js" "$mode" >"$log" 2>&1 &
pid=$!
for _ in $(seq 300); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "http://127.0.0.1:$port$path $pid"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then break; fi
  sleep 0.1
done
echo "server-everything did not listen on 127.0.0.1:$port within 30 s; see $log" >&2
cat "$log" >&2 || true
kill "$pid" 2>/dev/null || true
exit 1
