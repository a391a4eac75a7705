#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: formatting, lints, then every unit and
# integration test, each store and API test on SQLite and on a throwaway PostgreSQL that
# this script installs (Debian's postgresql, when missing and run as root) and starts, the
# tool-call tests against httpbin (PyPI, pinned), which it installs and starts too, and the
# importer tests on a corpus of real OpenAPI documents (npm, pinned; scripts/specs.sh), and
# the MCP tests against the reference server (npm) and a Python SDK server (PyPI), both
# pinned, which each test starts on its own port (installed here first).
set -euo pipefail
cd "$(dirname "$0")/.."

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

work=$(mktemp -d -t chatterfly-test.XXXXXX)
chmod 755 "$work" # the postgres system user must reach its data dir inside
httpbin_pid=
cleanup() {
  scripts/postgres.sh stop "$work/pg" || true
  [ -n "$httpbin_pid" ] && kill "$httpbin_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== PostgreSQL"
CHATTERFLY_TEST_POSTGRES_URL=$(scripts/postgres.sh start "$(free_port)" "$work/pg")
export CHATTERFLY_TEST_POSTGRES_URL
echo "throwaway cluster at $CHATTERFLY_TEST_POSTGRES_URL"

echo "== httpbin"
httpbin_line=$(scripts/httpbin.sh "$(free_port)") || {
  echo "test.sh: httpbin did not start; the tool-call tests need it" >&2
  exit 1
}
read -r CHATTERFLY_TEST_HTTPBIN_URL httpbin_pid <<<"$httpbin_line"
export CHATTERFLY_TEST_HTTPBIN_URL
echo "httpbin at $CHATTERFLY_TEST_HTTPBIN_URL"

echo "== OpenAPI corpus"
CHATTERFLY_TEST_SPECS_DIR=$(scripts/specs.sh) || {
  echo "test.sh: the OpenAPI corpus could not be installed; the importer tests need it" >&2
  exit 1
}
export CHATTERFLY_TEST_SPECS_DIR
echo "corpus in $CHATTERFLY_TEST_SPECS_DIR"

echo "== MCP peers"
scripts/mcp-everything.sh install || {
  echo "test.sh: @modelcontextprotocol/server-everything could not be installed; the MCP tests need it" >&2
  exit 1
}
scripts/python-mcp.sh install || {
  echo "test.sh: the Python MCP SDK could not be installed; the MCP tests need it" >&2
  exit 1
}
echo "server-everything and the Python SDK server installed"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
# cargo prints one closing line per test binary, the last of them often a doc-test run
# with nothing in it; the totals line at the end counts every test that ran.
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$work/test.log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$work/test.log"
exit "$status"
