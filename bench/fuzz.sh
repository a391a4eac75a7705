#!/usr/bin/env bash
# Fuzzes the OpenAPI importer with cargo fuzz (libFuzzer) for a while: not part of the test
# command (CI time), run it by hand or nightly. The target (fuzz/fuzz_targets/import.rs)
# fails on any panic and on any imported draft the create endpoint would refuse.
#
#   bench/fuzz.sh [SECONDS]      default 300; findings land in fuzz/artifacts/import/
#
# cargo fuzz needs nightly compiler features; on the stable toolchain RUSTC_BOOTSTRAP=1
# enables them, and no sanitizer is needed (the code has no `unsafe`).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
specs=$(scripts/specs.sh)
corpus=fuzz/corpus/import
mkdir -p "$corpus"
# seeds: every small document of the corpus (GitHub's 13 MB one would only slow it down)
find "$specs/@readme/oas-examples" "$specs/@scalar/galaxy/dist" -maxdepth 4 -type f \
  \( -name '*.json' -o -name '*.yaml' \) -size -64k -path '*[0-9].[0-9]*' -exec cp -n {} "$corpus/" \; 2>/dev/null || true
cd fuzz
RUSTC_BOOTSTRAP=1 cargo fuzz run -s none import "corpus/import" -- \
  -max_total_time="$seconds" -max_len=65536 -dict=openapi.dict -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1
