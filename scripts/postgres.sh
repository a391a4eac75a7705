#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on 127.0.0.1 for the tests (Debian packages; installs
# them when missing). Same steps as the peer recipe, pinned to Debian's postgresql package.
#
#   scripts/postgres.sh start PORT DATADIR   prints the admin URL postgres://postgres@127.0.0.1:PORT/postgres
#   scripts/postgres.sh stop DATADIR
set -euo pipefail
cmd=${1:?usage: postgres.sh start PORT DATADIR | stop DATADIR}

bindir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

# initdb refuses to run as root: run the server as the 'postgres' system user then.
as_owner() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}

case "$cmd" in
start)
  port=${2:?port}; data=${3:?datadir}
  if [ -z "$(bindir)" ]; then
    echo "postgres.sh: installing PostgreSQL (apt)" >&2
    if [ "$(id -u)" != 0 ]; then
      echo "postgres.sh: PostgreSQL is not installed and this is not root; install Debian's postgresql package" >&2
      exit 1
    fi
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  fi
  bin=$(bindir)
  mkdir -p "$data"
  if [ "$(id -u)" = 0 ]; then chown postgres "$data"; fi
  chmod 700 "$data"
  as_owner "'$bin/initdb' -D '$data' -A trust -U postgres --no-sync" >/dev/null
  as_owner "'$bin/pg_ctl' -D '$data' -o '-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400 -c synchronous_commit=off' -l '$data/log' -w start" >/dev/null
  echo "postgres://postgres@127.0.0.1:$port/postgres"
  ;;
stop)
  data=${2:?datadir}
  bin=$(bindir)
  as_owner "'$bin/pg_ctl' -D '$data' stop -m fast" >/dev/null 2>&1 || true
  ;;
*)
  echo "usage: postgres.sh start PORT DATADIR | stop DATADIR" >&2
  exit 2
  ;;
esac
