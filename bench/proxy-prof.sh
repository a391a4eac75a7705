#!/usr/bin/env bash
# Tool calls through Chatterfly's `invoke` versus nginx as a keep-alive reverse proxy in
# front of the same upstream, measured with wrk in one script (interleaved rounds).
#
#   bench/proxy.sh [--postgres ADMIN_URL] [--seconds N] [--rounds N] [--concurrency "16 64"]
#
# The upstream is nginx serving a small JSON object at /items/{id}. The yardstick is a
# second nginx proxying to it with keep-alive (`keepalive 64`, HTTP/1.1) and adding an
# Authorization header, as Chatterfly's connection does. Chatterfly is a release `chatterfly
# serve` on a fresh SQLite data dir (or a fresh PostgreSQL database) with a `bench`
# connection (bearer auth sealed in the vault) whose `get_item` operation is
# GET /items/{id}. A third contender is the floor under Chatterfly: `bare-proxy`
# (crates/bare-proxy), the same HTTP stack (axum server, reqwest client) answering the same
# request with none of Chatterfly's work, so the gap to nginx splits into the stack's and
# Chatterfly's own. wrk runs at concurrency 16 and 64 against: the upstream directly,
# nginx, bare-proxy and `POST /api/workspaces/default/tools/bench.get_item/invoke`; each
# round runs the three back to back. Prints calls/s, p50 and the ratios.
# BARE_ARGS="--inline" or "--inline --one-thread" runs bare-proxy's experiments instead
# (see crates/bare-proxy). BASELINE_BIN=/path/to/an/older/chatterfly also runs that build,
# on a data dir (or database) of its own, as a fourth contender in every round, and prints
# invoke / baseline: an A/B of two builds in the same minutes. STANDARD=1 also calls a
# standard tool (`current_time`, no upstream) through `invoke` in every round, on this
# build and on the baseline.
#
# Needs nginx and wrk (Debian packages; installed with apt when missing and run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
pg=; seconds=8; rounds=2; concurrency="16 64"
while [ $# -gt 0 ]; do
  case $1 in
    --postgres) pg=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx wrk >/dev/null
    nginx -s stop 2>/dev/null || true
  else
    echo "bench/proxy.sh needs nginx and wrk (apt-get install nginx wrk)" >&2; exit 1
  fi
fi
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
target=${CARGO_TARGET_DIR:-target}

work=$(mktemp -d -t chatterfly-proxy.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for c in "$work"/*.conf; do [ -f "$c" ] && nginx -c "$c" -p "$work" -s stop 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

up=$(free_port); px=$(free_port); port=$(free_port); bp=$(free_port)
token="cft_bench_$(date +%s%N)"
key="upstream-key-$(date +%s)"
nginx_conf() { # name, server block
  cat >"$work/$1.conf" <<EOF
worker_processes auto;
pid $work/$1.pid;
error_log $work/$1.error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/$1.body;
  proxy_temp_path $work/$1.proxy;
  fastcgi_temp_path $work/$1.fcgi;
  uwsgi_temp_path $work/$1.uwsgi;
  scgi_temp_path $work/$1.scgi;
  keepalive_requests 1000000;
  $2
}
EOF
  nginx -c "$work/$1.conf" -p "$work"
}
nginx_conf upstream "server { listen 127.0.0.1:$up; default_type application/json;
    location /items/ { return 200 '{\"id\":1,\"name\":\"widget\",\"price\":9.5,\"tags\":[\"a\",\"b\"]}'; } }"
nginx_conf proxy "upstream items { server 127.0.0.1:$up; keepalive 64; }
  server { listen 127.0.0.1:$px;
    location / { proxy_pass http://items; proxy_http_version 1.1; proxy_set_header Connection \"\";
                 proxy_set_header Authorization \"Bearer $key\"; } }"

cargo build --release --quiet -p chatterfly -p chatterfly-bare-proxy
# shellcheck disable=SC2086 # BARE_ARGS is a list of flags
"$target/release/bare-proxy" "127.0.0.1:$bp" "http://127.0.0.1:$up" ${BARE_ARGS:-} >"$work/bare.log" 2>&1 &
pids+=("$!")
# starts a chatterfly build on a port of its own with the bench connection; prints its URL
start_chatterfly() { # binary, port, name
  local db_args=(--data-dir "$work/data-$3") status check url
  if [ -n "$pg" ]; then
    local name="bench_$RANDOM$RANDOM"
    psql -q "$pg" -c "CREATE DATABASE $name" >/dev/null
    db_args=(--data-dir "$work/data-$3" --database-url "${pg%/*}/$name")
    INTEGRATION_ENCRYPTION_KEY=$("$1" keys generate)
    export INTEGRATION_ENCRYPTION_KEY
  fi
  CHATTERFLY_ALLOW_PRIVATE=127.0.0.1 CHATTERFLY_BOOTSTRAP_ADMIN_TOKEN=$token RUST_LOG=warn \
    "$1" serve "${db_args[@]}" --addr "127.0.0.1:$2" >"$work/server-$3.log" 2>&1 &
  pids+=("$!")
  url="http://127.0.0.1:$2"
  for _ in $(seq 100); do curl -sf "$url/api/health" >/dev/null && break; sleep 0.1; done
  status=$(curl -s -o "$work/create.json" -w '%{http_code}' -X POST "$url/api/workspaces/default/connections" \
    -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"name\":\"bench\",\"slug\":\"bench\",\"service_type\":\"http\",\"base_url\":\"http://127.0.0.1:$up\",
         \"auth\":{\"type\":\"bearer\",\"token\":\"$key\"},
         \"operations\":[{\"name\":\"get_item\",\"method\":\"GET\",\"path\":\"/items/{id}\",
           \"input_schema\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"}},\"required\":[\"id\"]}}]}")
  [ "$status" = 201 ] || { echo "create failed ($3): $status $(cat "$work/create.json")" >&2; exit 1; }
  check=$(curl -s -X POST "$url/api/workspaces/default/tools/bench.get_item/invoke" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{"arguments":{"id":"1"}}')
  case $check in *widget*) ;; *) echo "invoke failed ($3): $check" >&2; exit 1 ;; esac
}
start_chatterfly "$target/release/chatterfly" "$port" this
cf="http://127.0.0.1:$port"
server_pid=${pids[1]}
if [ -n "${BASELINE_BIN:-}" ]; then
  base_port=$(free_port)
  start_chatterfly "$BASELINE_BIN" "$base_port" baseline
  base_cf="http://127.0.0.1:$base_port"
fi

cat >"$work/invoke.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"arguments":{"id":"1"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
EOF
cat >"$work/standard.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"arguments":{}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
EOF
cat >"$work/bare.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"arguments":{"id":"1"}}'
wrk.headers["Content-Type"] = "application/json"
EOF
check=$(curl -s -X POST "http://127.0.0.1:$bp/invoke" -H 'content-type: application/json' -d '{"arguments":{"id":"1"}}')
case $check in *widget*) ;; *) echo "bare-proxy failed: $check" >&2; exit 1 ;; esac
# calls/s and p50 (ms) of one wrk run
run() { # label, concurrency, url, [script]
  local out threads=2
  [ "$2" -ge 2 ] || threads=1
  if [ -n "${4:-}" ]; then
    out=$(wrk -t"$threads" -c"$2" -d"${seconds}s" --latency -s "$4" "$3")
  else
    out=$(wrk -t"$threads" -c"$2" -d"${seconds}s" --latency -H "Authorization: Bearer $key" "$3")
  fi
  if echo "$out" | grep -q "Non-2xx"; then echo "$1: non-2xx answers" >&2; echo "$out" >&2; exit 1; fi
  local rps p50
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}')
  echo "$rps $p50"
}
if [ -n "${PROFILE:-}" ]; then # where the server's time goes under load (perf, cpu-clock)
  perf record -g -e cpu-clock -F 2000 -o "$work/perf.data" -p "$server_pid" -- sleep 6 >/dev/null 2>&1 &
  perf_pid=$!
  (sleep 2; top -b -n1 -d1 -w 120 | head -14 >&2) &
  wrk -t2 -c16 -d7s -s "$work/invoke.lua" "$cf/api/workspaces/default/tools/bench.get_item/invoke" >/dev/null
  wait "$perf_pid" || true
  cp "$work/perf.data" /tmp/dev/invoke.data; perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio 2>&1 | grep -v "^#" | grep -v "^$" | cut -c1-150 | head -"${PROFILE}"
  exit 0
fi
echo "database=$([ -n "$pg" ] && echo postgres || echo sqlite) seconds=$seconds rounds=$rounds nginx=$(nginx -v 2>&1 | sed 's/.*\///') bare-proxy=${BARE_ARGS:-reqwest} baseline=${BASELINE_BIN:-none}"
printf '%-6s %-5s %-12s %12s %9s\n' round conc path calls/s p50_ms
for c in $concurrency; do
  read -r d_rps d_p50 < <(run direct "$c" "http://127.0.0.1:$up/items/1")
  printf '%-6s %-5s %-12s %12.0f %9.3f\n' - "$c" direct "$d_rps" "$d_p50"
  for r in $(seq "$rounds"); do
    read -r n_rps n_p50 < <(run nginx "$c" "http://127.0.0.1:$px/items/1")
    read -r b_rps b_p50 < <(run bare "$c" "http://127.0.0.1:$bp/invoke" "$work/bare.lua")
    # with a baseline, the two builds take turns at going first
    if [ -n "${BASELINE_BIN:-}" ] && [ $((r % 2)) = 0 ]; then
      read -r a_rps a_p50 < <(run baseline "$c" "$base_cf/api/workspaces/default/tools/bench.get_item/invoke" "$work/invoke.lua")
    fi
    read -r i_rps i_p50 < <(run invoke "$c" "$cf/api/workspaces/default/tools/bench.get_item/invoke" "$work/invoke.lua")
    if [ -n "${BASELINE_BIN:-}" ]; then
      if [ $((r % 2)) = 1 ]; then
        read -r a_rps a_p50 < <(run baseline "$c" "$base_cf/api/workspaces/default/tools/bench.get_item/invoke" "$work/invoke.lua")
      fi
    fi
    printf '%-6s %-5s %-12s %12.0f %9.3f\n' "$r" "$c" nginx "$n_rps" "$n_p50"
    printf '%-6s %-5s %-12s %12.0f %9.3f\n' "$r" "$c" bare-proxy "$b_rps" "$b_p50"
    printf '%-6s %-5s %-12s %12.0f %9.3f\n' "$r" "$c" invoke "$i_rps" "$i_p50"
    awk -v i="$i_rps" -v n="$n_rps" -v b="$b_rps" -v ip="$i_p50" -v np="$n_p50" -v c="$c" -v r="$r" \
      'BEGIN { printf "ratio  c=%s round %s: invoke/nginx %.2f (bare-proxy/nginx %.2f, invoke/bare-proxy %.2f), p50 %+.3f ms against nginx\n", c, r, i/n, b/n, i/b, ip-np }'
    if [ -n "${STANDARD:-}" ]; then
      read -r s_rps s_p50 < <(run standard "$c" "$cf/api/workspaces/default/tools/current_time/invoke" "$work/standard.lua")
      printf '%-6s %-5s %-12s %12.0f %9.3f\n' "$r" "$c" standard "$s_rps" "$s_p50"
      if [ -n "${BASELINE_BIN:-}" ]; then
        read -r t_rps t_p50 < <(run standard-base "$c" "$base_cf/api/workspaces/default/tools/current_time/invoke" "$work/standard.lua")
        printf '%-6s %-5s %-12s %12.0f %9.3f\n' "$r" "$c" standard-base "$t_rps" "$t_p50"
        awk -v i="$s_rps" -v a="$t_rps" -v c="$c" -v r="$r" -v ip="$s_p50" -v ap="$t_p50" \
          'BEGIN { printf "ratio  c=%s round %s: standard tool invoke/baseline %.2f, p50 %+.3f ms against the baseline\n", c, r, i/a, ip-ap }'
      fi
    fi
    if [ -n "${BASELINE_BIN:-}" ]; then
      printf '%-6s %-5s %-12s %12.0f %9.3f\n' "$r" "$c" baseline "$a_rps" "$a_p50"
      awk -v i="$i_rps" -v a="$a_rps" -v n="$n_rps" -v c="$c" -v r="$r" -v ip="$i_p50" -v ap="$a_p50" \
        'BEGIN { printf "ratio  c=%s round %s: invoke/baseline %.2f (baseline/nginx %.2f), p50 %+.3f ms against the baseline\n", c, r, i/a, a/n, ip-ap }'
    fi
  done
done
