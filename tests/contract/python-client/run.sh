#!/usr/bin/env bash
# Contract check 2: a Python client generated from openapi/openapi.json by
# openapi-python-client (into a temporary directory: generated code is never
# checked in), then walkthrough.py, the README's walkthrough through that
# client only, against a real daemon.
#
# Usage: bash tests/contract/python-client/run.sh
#   Needs .venv-contract (bash tests/contract/venv.sh) and the debug binary
#   (cargo build -p vm-system --locked; or VM_SYSTEM_BIN=PATH).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
contract_init

echo
echo "== contract: generating a Python client from openapi/openapi.json (openapi-python-client)"
mkdir -p "$WORK/client"
"$VENV/bin/openapi-python-client" generate \
    --path "${VM_CONTRACT_OPENAPI:-$ROOT/openapi/openapi.json}" \
    --meta none \
    --config "$ROOT/tests/contract/python-client/config.yaml" \
    --output-path "$WORK/client/vm_system_client" \
    --overwrite
# Warnings about parts of the document the generator could not represent are
# printed above; they fail nothing by themselves, the walkthrough does.

start_daemon walkthrough
PYTHONPATH="$WORK/client" "$VENV/bin/python" "$ROOT/tests/contract/python-client/walkthrough.py" \
    --url "$DAEMON_URL" --token "$DAEMON_TOKEN" --worktree "$DAEMON_HOME/worktree"
