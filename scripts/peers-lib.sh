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

# descendants PID: PID and every process below it.
descendants() {
  local p
  echo "$1"
  for p in $(cat /proc/"$1"/task/*/children 2>/dev/null); do descendants "$p"; done
}

# listens_on PORT PID: whether PID, or a process below it, holds the socket listening on
# PORT (any address, IPv4 or IPv6).
listens_on() {
  local hex inodes p fd i n
  hex=$(printf ':%04X' "$1")
  inodes=$(awk -v h="$hex" '$4 == "0A" && substr($2, length($2) - 4) == h {print $10}' /proc/net/tcp /proc/net/tcp6 2>/dev/null)
  [ -n "$inodes" ] || return 1
  for p in $(descendants "$2"); do
    for fd in /proc/"$p"/fd/*; do
      i=$(readlink "$fd" 2>/dev/null) || continue
      case $i in socket:\[*\]) ;; *) continue ;; esac
      i=${i#socket:[}; i=${i%]}
      for n in $inodes; do [ "$n" = "$i" ] && return 0; done
    done
  done
  return 1
}

# wait_listening PORT PID LOG NAME: waits up to 30 s for PID (or a process below it) to
# listen on 127.0.0.1:PORT; on failure shows the log, stops PID and returns 1, or 75 when
# another process holds the port (the caller may try another one). A port picked free can
# be taken by another test's peer before this one binds it: a listener is only this peer's
# if this peer holds its socket.
wait_listening() {
  local port=$1 pid=$2 log=$3 name=$4
  for _ in $(seq 300); do
    if listens_on "$port" "$pid"; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "$name could not listen on 127.0.0.1:$port: another process holds it; see $log" >&2
    kill "$pid" 2>/dev/null || true
    return 75
  fi
  echo "$name did not listen on 127.0.0.1:$port within 30 s; see $log" >&2
  cat "$log" >&2 || true
  kill "$pid" 2>/dev/null || true
  return 1
}
