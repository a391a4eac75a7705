#!/usr/bin/env bash
# MCP tools/call latency through Chatterfly versus the official TypeScript SDK client
# (npm @modelcontextprotocol/sdk, pinned) calling the same server directly, in one script.
#
#   bench/mcp.sh [everything|python] [CALLS] [--postgres ADMIN_URL]
#
# Starts the chosen MCP server (server-everything's `echo`, or the Python SDK server's
# `echo`), a release `chatterfly serve` on a fresh SQLite data dir (or a fresh PostgreSQL
# database) with loopback allowed, creates an `mcp` connection `bench`, and runs
# bench/mcp.mjs, which prints p50/p99 of both paths and their ratio; then, for the
# breakdown, Chatterfly's MCP client alone (crates/mcp/examples/mcp_calls.rs).
# CHATTERFLY_BIN=path runs that binary instead of building the tree's (to compare builds).
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:-everything}; calls=${2:-2000}
pg=
if [ "${3:-}" = --postgres ]; then pg=${4:?admin url}; fi
. scripts/peers-lib.sh
sdk="@modelcontextprotocol/sdk@1.32.2"
npm_install mcp-ts-sdk "$sdk"
sdk_dir="$PEERS_HOME/mcp-ts-sdk"
target=${CARGO_TARGET_DIR:-target}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

work=$(mktemp -d -t chatterfly-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

case $server in
  everything) line=$(scripts/mcp-everything.sh streamableHttp "$(free_port)"); args='{"message":"hello"}' ;;
  python) line=$(scripts/python-mcp.sh streamable-http "$(free_port)"); args='{"text":"hello"}' ;;
  *) echo "unknown server $server" >&2; exit 2 ;;
esac
read -r mcp_url mcp_pid <<<"$line"; pids+=("$mcp_pid")

bin=${CHATTERFLY_BIN:-$target/release/chatterfly}
[ -n "${CHATTERFLY_BIN:-}" ] || cargo build --release --quiet -p chatterfly
cargo build --release --quiet -p chatterfly-mcp --example mcp_calls
port=$(free_port); token="cft_bench_$(date +%s%N)"
db_args=(--data-dir "$work/data")
if [ -n "$pg" ]; then
  name="bench_$RANDOM$RANDOM"
  psql -q "$pg" -c "CREATE DATABASE $name" >/dev/null
  db_args=(--data-dir "$work/data" --database-url "${pg%/*}/$name")
  export INTEGRATION_ENCRYPTION_KEY=$("$bin" keys generate)
fi
CHATTERFLY_ALLOW_PRIVATE=127.0.0.1 CHATTERFLY_BOOTSTRAP_ADMIN_TOKEN=$token RUST_LOG=warn \
  "$bin" serve "${db_args[@]}" --addr "127.0.0.1:$port" >"$work/server.log" 2>&1 &
pids+=("$!")
cf="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -sf "$cf/api/health" >/dev/null && break; sleep 0.1; done
status=$(curl -s -o "$work/create.json" -w '%{http_code}' -X POST "$cf/api/workspaces/default/connections" \
  -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d "{\"name\":\"bench\",\"slug\":\"bench\",\"service_type\":\"mcp\",\"base_url\":\"$mcp_url\"}")
[ "$status" = 201 ] || { echo "create failed: $status $(cat "$work/create.json")" >&2; exit 1; }
echo "server=$server calls=$calls database=$([ -n "$pg" ] && echo postgres || echo sqlite) sdk=$sdk" >&2
# ES modules resolve packages from the script's own folder
cp bench/mcp.mjs "$sdk_dir/mcp.mjs"
node "$sdk_dir/mcp.mjs" "$mcp_url" "$cf" "$token" echo "$args" "$calls"
# for the breakdown: Chatterfly's own MCP client calling the server with no server between
"$target/release/examples/mcp_calls" "$mcp_url" echo "$args" "$calls"
