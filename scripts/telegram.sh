#!/usr/bin/env bash
# Starts a Telegram Bot API look-alike (npm telegram-test-api, pinned) on 127.0.0.1 for the
# Telegram tests: bots call URL/bot<token>/<method> as on api.telegram.org. What a bot sent is
# read back with POST URL/getUpdatesHistory {"token": "<bot token>"}; a user writes to a bot
# with POST URL/sendMessage {"botToken", "chat", "from", "text"}. Bot ids starting 401, 429,
# 400, 418 or 302 meet Telegram's refusals (scripts/telegram_peer.cjs). Installs it once.
#
#   scripts/telegram.sh PORT      prints: URL PID
#   scripts/telegram.sh install   installs only
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/peers-lib.sh"
npm_install telegram telegram-test-api@4.2.1
mode=${1:?PORT or install}
[ "$mode" = install ] && exit 0
port=$mode
log="$PEERS_HOME/telegram-$port.log"
nohup node "$here/telegram_peer.cjs" "$PEERS_HOME/telegram" "$port" >"$log" 2>&1 &
pid=$!
wait_listening "$port" "$pid" "$log" "telegram-test-api"
echo "http://127.0.0.1:$port $pid"
