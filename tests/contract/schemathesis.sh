#!/usr/bin/env bash
# Contract check 1: schemathesis against the real daemon. Every operation of
# the OpenAPI document the daemon serves (/api/v1/openapi.json, the checked-in
# openapi/openapi.json), every check (all of schemathesis 4's checks, one exception: see schemathesis.toml), the phases examples,
# coverage, fuzzing and stateful, a fixed seed; the rest is in
# tests/contract/schemathesis.toml.
#
# Two invocations, each against a fresh daemon with its own admin token:
#   1. every operation but revokeToken;
#   2. revokeToken, with createToken and getToken so that its stateful
#      scenarios revoke tokens they made themselves and read them back.
# Why: `DELETE /tokens/{id}` revokes whatever token it is given, and the
# stateful phase finds the id of the very token the run authenticates with
# (GET /tokens) and revokes it, after which every call is 401. In the second
# invocation nothing lists tokens, so the run's own token id is never seen.
# Every operation is still checked with every check.
#
# Usage: bash tests/contract/schemathesis.sh [more `schemathesis run` options, e.g. -n 100]
#   Needs .venv-contract (bash tests/contract/venv.sh) and the debug binary
#   (cargo build -p vm-system --locked; or VM_SYSTEM_BIN=PATH).
# Exit code: non-zero on any failure; the full report is printed either way,
# then a table of failures per check and per operation over both invocations.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
contract_init

config="$ROOT/tests/contract/schemathesis.toml"
status=0

run_schemathesis() {
    local label="$1"
    shift
    echo
    echo "== contract: schemathesis, $label"
    # A template, a ready session on the worktree and an execution in it, for
    # the ids schemathesis cannot find itself (see fixtures.py).
    local fixtures template session execution
    fixtures="$("$VENV/bin/python" "$ROOT/tests/contract/fixtures.py" "$DAEMON_URL" "$DAEMON_TOKEN" "$DAEMON_HOME/worktree")"
    read -r template session execution <<<"$fixtures"
    local rc=0
    # The phases are on the command line as well as in the config, so that the
    # command alone says what runs. Every check runs (schemathesis 4 enables
    # all of them by default, the same set as `--checks all`), with the one
    # per-operation exception schemathesis.toml states and explains:
    # `--checks all` on the command line would override it, since command-line
    # options win over every per-operation setting. `timeout` bounds a hung
    # run (a few minutes is the normal length).
    VM_CONTRACT_TOKEN="$DAEMON_TOKEN" \
        VM_CONTRACT_WORKTREE="$DAEMON_HOME/worktree" \
        VM_CONTRACT_TEMPLATE="$template" \
        VM_CONTRACT_SESSION="$session" \
        VM_CONTRACT_EXECUTION="$execution" \
        timeout --signal=INT --kill-after=30 900 \
        "$VENV/bin/schemathesis" --no-color --config-file "$config" run \
        "$DAEMON_URL/openapi.json" \
        --url "$DAEMON_URL" \
        --phases examples,coverage,fuzzing,stateful \
        --report junit,ndjson --report-dir "$WORK/reports/$label" \
        "$@" || rc=$?
    if [[ $rc -eq 124 ]]; then
        echo "contract: schemathesis ($label) did not finish within 15 minutes"
    fi
    if [[ $rc -ne 0 ]]; then
        echo "contract: schemathesis ($label) failed, exit code $rc"
        status=1
    fi
}

start_daemon everything
run_schemathesis all-but-revokeToken --exclude-operation-id revokeToken "$@"
stop_daemons

start_daemon tokens
run_schemathesis revokeToken \
    --include-operation-id revokeToken --include-operation-id createToken --include-operation-id getToken "$@"
stop_daemons

# One table over both invocations: failures per check and per operation.
"$VENV/bin/python" "$ROOT/tests/contract/summarize.py" "$WORK"/reports/* || status=1
if [[ $status -ne 0 ]]; then
    echo "contract: schemathesis found failures (each is printed in full above, with a curl command that reproduces it)"
fi
exit $status
