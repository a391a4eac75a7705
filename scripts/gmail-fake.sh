#!/usr/bin/env bash
# Starts the Gmail API fake of the account tests (crates/cli/tests/api/gmail_fake.py) on
# 127.0.0.1: every route, method, parameter and scope comes from Google's discovery document
# (scripts/gmail-discovery.sh, which installs it and google-auth, pinned, once); access tokens
# are those of the OAuth peer (scripts/oauth2.sh), checked against its /jwks; its /token
# verifies service-account assertions with google-auth and hands them on to the peer's /token.
# Test controls under /__fake/: see the fake's docstring.
#
#   scripts/gmail-fake.sh PORT OAUTH_URL   prints: URL PID
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/peers-lib.sh"
port=${1:?port}
oauth=${2:?the OAuth peer URL (scripts/oauth2.sh)}
found=$("$here/gmail-discovery.sh")
read -r doc py <<<"$found"
log="$PEERS_HOME/gmail-fake-$port.log"
nohup "$py" -u "$(dirname "$here")/crates/cli/tests/api/gmail_fake.py" --port "$port" --discovery "$doc" --oauth "$oauth" >"$log" 2>&1 &
pid=$!
wait_listening "$port" "$pid" "$log" "the Gmail fake"
echo "http://127.0.0.1:$port $pid"
