#!/usr/bin/env bash
# Google's own Python SDK for Gemini (PyPI google-genai, pinned) in a virtualenv, for the
# check that every Gemini tool declaration we build is accepted by its types
# (scripts/genai_check.py). Installs it once; prints the virtualenv's python.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/peers-lib.sh"
venv_install genai-venv google-genai==3.6.1
echo "$PEERS_HOME/genai-venv/bin/python"
