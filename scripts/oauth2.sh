#!/usr/bin/env bash
# Starts an OAuth 2.0 authorization server (npm oauth2-mock-server, pinned) on 127.0.0.1 for
# the account tests: /authorize approves at once and redirects with `code` and `state`,
# /token takes authorization_code (PKCE S256 checked), refresh_token and the jwt-bearer
# grant, /revoke; it does not check client secrets. Installs it once.
#
#   scripts/oauth2.sh PORT      prints: URL PID
#   scripts/oauth2.sh install   installs only
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/peers-lib.sh"
npm_install oauth2 oauth2-mock-server@9.3.0
mode=${1:?PORT or install}
[ "$mode" = install ] && exit 0
port=$mode
log="$PEERS_HOME/oauth2-$port.log"
nohup node "$here/oauth2_peer.mjs" "$PEERS_HOME/oauth2" "$port" >"$log" 2>&1 &
pid=$!
wait_listening "$port" "$pid" "$log" "oauth2-mock-server"
echo "http://127.0.0.1:$port $pid"
