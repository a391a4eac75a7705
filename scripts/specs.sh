#!/usr/bin/env bash
# Installs the OpenAPI corpus the importer is tested and benchmarked on (npm packages,
# pinned; the same as the peer recipe) and prints the node_modules directory holding them:
#   @readme/oas-examples        Swagger 2.0, OpenAPI 3.0 and 3.1 examples, JSON and YAML
#   @scalar/galaxy              an OpenAPI 3.1 example API (dist/3.1.json, dist/3.1.yaml)
#   @octokit/openapi            GitHub's description (generated/api.github.com.json, 13 MB)
#   @apidevtools/swagger-parser the reference parser the benchmark compares against
#
#   scripts/specs.sh            prints: DIR (…/node_modules)
set -euo pipefail
home="${CHATTERFLY_PEERS_HOME:-$HOME/.cache/chatterfly-peers}"
dir="$home/specs"
pins="@readme/oas-examples@8.2.2 @scalar/galaxy@0.6.12 @octokit/openapi@23.0.2 @apidevtools/swagger-parser@13.1.0"
stamp="$dir/.installed-$(echo "$pins" | md5sum | cut -c1-8)"
mkdir -p "$dir"
if [ ! -f "$stamp" ]; then
  if ! command -v npm >/dev/null; then
    echo "specs.sh: npm is needed to install the OpenAPI corpus (Node.js)" >&2
    exit 1
  fi
  # shellcheck disable=SC2086
  (cd "$dir" && npm install --silent --no-audit --no-fund $pins) >&2
  touch "$stamp"
fi
echo "$dir/node_modules"
