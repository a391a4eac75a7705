#!/usr/bin/env bash
# Starts chromedriver for a real headless Chromium, for the browser tests (Debian packages
# `chromium` and `chromium-driver`, installed with apt when missing and run as root).
#
#   scripts/chromium.sh PORT    prints: WEBDRIVER_URL PID
#
# Each test opens its own session with a fresh profile (crates/testkit/src/browser.rs
# gives the capabilities).
set -euo pipefail
port=${1:?port}
. "$(cd "$(dirname "$0")" && pwd)/peers-lib.sh"
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "chromium and chromium-driver are missing; install them with apt as root (apt-get install chromium chromium-driver)" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >&2; }
fi
log="$PEERS_HOME/chromedriver-$port.log"
mkdir -p "$PEERS_HOME"
nohup chromedriver --port="$port" --allowed-ips=127.0.0.1 >"$log" 2>&1 &
pid=$!
wait_listening "$port" "$pid" "$log" chromedriver
echo "http://127.0.0.1:$port $pid"
