#!/usr/bin/env bash
# Makes (or reuses) the contract checks' Python virtualenv, .venv-contract/ at
# the repository root (git-ignored), with the pinned tools of
# tests/contract/requirements.txt: schemathesis and openapi-python-client.
#
# Fast path: a venv whose stamp matches requirements.txt is used as it is (no
# network). Otherwise it is made anew from PyPI (about 20 s).
#
# Usage: bash tests/contract/venv.sh      (VM_CONTRACT_VENV=DIR for another place)
# Exit codes: 0 ready, 2 no usable python3 (with its venv module), 1 install failed.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${VM_CONTRACT_VENV:-$root/.venv-contract}"
requirements="$root/tests/contract/requirements.txt"
python="${PYTHON:-python3}"

stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$venv/bin/python" -c '' >/dev/null 2>&1 \
    && [[ -x "$venv/bin/schemathesis" && -x "$venv/bin/openapi-python-client" ]]; then
    exit 0
fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python is not installed (apt-get install python3 python3-venv)" >&2
    exit 2
fi
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "error: $python has no venv/ensurepip module (apt-get install python3-venv)" >&2
    exit 2
fi

echo "== contract: making $venv (pinned schemathesis, openapi-python-client from PyPI)"
if [[ -e "$venv" && ! -f "$venv/pyvenv.cfg" ]]; then
    echo "error: $venv exists and is not a virtualenv; not touching it" >&2
    exit 1
fi
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
# Written last: a venv whose install was interrupted has no stamp and is made again.
echo "$want" >"$stamp"
"$venv/bin/schemathesis" --version
echo "openapi-python-client $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("openapi-python-client"))')"
