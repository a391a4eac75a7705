#!/usr/bin/env bash
# Installs the tools that check the server's own API description (pinned) and prints the
# directory holding them:
#   @apidevtools/swagger-parser   validates the document (npm)
#   openapi-spec-validator        validates it again (PyPI)
#   openapi-typescript            generates a typed client from it (npm), checked with
#   typescript                    tsc, and run with
#   openapi-fetch                 the runtime half of the generated client (npm)
#   schemathesis                  property-based checks of the running server against it (PyPI)
#
#   scripts/api-doc-tools.sh      prints: DIR (node_modules in DIR/node, a venv in DIR/venv)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/peers-lib.sh"
npm_install api-doc/node @apidevtools/swagger-parser@13.0.0 openapi-typescript@7.13.0 typescript@5.9.3 openapi-fetch@0.15.0 >&2
venv_install api-doc/venv openapi-spec-validator==0.9.0 schemathesis==4.32.0
echo "$PEERS_HOME/api-doc"
