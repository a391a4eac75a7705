#!/usr/bin/env bash
# Starts a scriptable LLM API look-alike (npm @copilotkit/aimock, pinned) on 127.0.0.1 for
# the agent tests: OpenAI Chat Completions, Anthropic Messages and Gemini generateContent
# at their real paths (URL/v1/chat/completions, URL/v1/messages,
# URL/v1beta/models/M:generateContent). Fixtures are JSON files in FIXTURE_DIR or are
# posted at run time to URL/__aimock/fixtures; what it received is at URL/__aimock/journal
# (key values shown as [REDACTED]). API_KEYS (comma-separated) turns key checking on: a
# missing or unknown key gets 401. Installs it once.
#
#   scripts/llm.sh PORT FIXTURE_DIR [API_KEYS]   prints: URL PID
#   scripts/llm.sh install                       installs only
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/peers-lib.sh"
npm_install llm @copilotkit/aimock@1.43.0
mode=${1:?PORT or install}
[ "$mode" = install ] && exit 0
port=$mode
fixtures=${2:?FIXTURE_DIR}
keys=${3:-}
log="$PEERS_HOME/llm-$port.log"
AIMOCK_API_KEYS="$keys" nohup node "$PEERS_HOME/llm/node_modules/@copilotkit/aimock/dist/cli.js" \
  -h 127.0.0.1 -p "$port" -f "$fixtures" >"$log" 2>&1 &
pid=$!
wait_listening "$port" "$pid" "$log" "aimock"
echo "http://127.0.0.1:$port $pid"
