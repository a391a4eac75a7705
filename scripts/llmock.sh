#!/usr/bin/env bash
# Starts LLMock (PyPI llmock, pinned with its dependencies) on 127.0.0.1 for the agent
# tests where faults matter: an LLM API look-alike for OpenAI (URL/v1/chat/completions),
# Anthropic (URL/anthropic/v1/messages) and Gemini (URL/gemini/v1beta/models/M:generateContent)
# whose next answers are scripted over HTTP: POST URL/_llmock/scenario {"behaviors": [...]}
# (HTTP errors with Retry-After, delays, scripted replies and tool calls, broken tool calls);
# what it received is at URL/_llmock/requests. Installs it into a virtualenv once.
#
#   scripts/llmock.sh PORT      prints: URL PID
#   scripts/llmock.sh install   installs only
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/peers-lib.sh"
venv_install llmock-venv llmock==0.2.2 fastapi==0.165.0 starlette==1.10.0 uvicorn==0.55.0 \
  httpx==0.29.0 pydantic==2.14.4 PyYAML==6.0.4 typer==0.29.2 python-multipart==0.0.34
mode=${1:?PORT or install}
[ "$mode" = install ] && exit 0
port=$mode
log="$PEERS_HOME/llmock-$port.log"
nohup "$PEERS_HOME/llmock-venv/bin/llmock" serve --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
pid=$!
wait_listening "$port" "$pid" "$log" "llmock"
echo "http://127.0.0.1:$port $pid"
