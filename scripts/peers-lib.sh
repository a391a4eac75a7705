# Shared steps of the peer scripts (httpbin.sh, mcp-everything.sh, python-mcp.sh): source it.
# Peers are installed once, pinned, under $CHATTERFLY_PEERS_HOME (default
# ~/.cache/chatterfly-peers); a stamp file named after the pins marks a finished install.
PEERS_HOME="${CHATTERFLY_PEERS_HOME:-$HOME/.cache/chatterfly-peers}"
mkdir -p "$PEERS_HOME"

stamp_for() { echo ".installed-$(echo "$*" | md5sum | cut -c1-8)"; }

# venv_install DIR PIN...: a virtualenv in $PEERS_HOME/DIR holding the pinned packages.
venv_install() {
  local venv="$PEERS_HOME/$1"; shift
  if [ ! -f "$venv/$(stamp_for "$@")" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q "$@" >&2
    touch "$venv/$(stamp_for "$@")"
  fi
}

# npm_install DIR PACKAGE@VERSION...: the pinned npm packages in $PEERS_HOME/DIR.
npm_install() {
  local dir="$PEERS_HOME/$1"; shift
  mkdir -p "$dir"
  if [ ! -f "$dir/$(stamp_for "$@")" ]; then
    (cd "$dir" && npm install --silent --no-audit --no-fund "$@") >&2
    touch "$dir/$(stamp_for "$@")"
  fi
}

# wait_listening PORT PID LOG NAME: waits up to 30 s for 127.0.0.1:PORT; on failure shows
# the log, stops PID and returns 1.
wait_listening() {
  local port=$1 pid=$2 log=$3 name=$4
  for _ in $(seq 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "$name did not listen on 127.0.0.1:$port within 30 s; see $log" >&2
  cat "$log" >&2 || true
  kill "$pid" 2>/dev/null || true
  return 1
}
