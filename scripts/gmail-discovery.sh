#!/usr/bin/env bash
# Google's own description of the Gmail API (the discovery document `gmail.v1.json` that ships
# in PyPI google-api-python-client) and google-auth (Google's library, which verifies
# service-account JWT assertions), pinned, in a virtualenv. The Gmail fake of the account
# tests (crates/cli/tests/api/gmail_fake.py) takes every route, method, parameter and scope
# from that document.
#
#   scripts/gmail-discovery.sh   prints: DISCOVERY_JSON_PATH VENV_PYTHON
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/peers-lib.sh"
venv_install gmail google-api-python-client==2.202.0 google-auth==2.62.2 cryptography==46.0.3
py="$PEERS_HOME/gmail/bin/python"
doc=$("$py" -c 'import googleapiclient, os; print(os.path.join(os.path.dirname(googleapiclient.__file__), "discovery_cache", "documents", "gmail.v1.json"))')
test -f "$doc" || { echo "gmail-discovery.sh: no $doc" >&2; exit 1; }
echo "$doc $py"
