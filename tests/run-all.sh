#!/usr/bin/env bash
# The whole test suite: every Rust test (unit, contract, HTTP, black-box) and
# the web UI's checks, unit tests and browser end-to-end tests.
# Usage: bash tests/run-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# A missing tool is loud: a warning locally, a failure under CI=true.
missing() {
    if [[ "${CI:-}" == "true" ]]; then
        echo "error: $1" >&2
        exit 1
    fi
    echo "warning: $1; skipping" >&2
}

# --- web UI (ui/): generated client, types, lint, unit tests, build ---------
ui_ready=false
if command -v npm >/dev/null 2>&1; then
    echo "== ui: npm ci, check:api, typecheck, lint, unit tests, build"
    (
        cd ui
        if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
            npm ci --no-audit --no-fund
        fi
        npm run --silent check:api
        npm run --silent typecheck
        npm run --silent lint
        npm run --silent test
        npm run --silent build
    )
    ui_ready=true
else
    missing "npm is not installed, so the web UI is neither checked nor tested"
fi

# Includes the store contract suite on SQLite and on a throwaway PostgreSQL
# cluster (vm-testpg: skipped loudly without the server, failed under CI=true).
cargo test --workspace --locked

# --- the HTTP suite once more, on PostgreSQL: a database per test ----------
if [[ -n "${VM_TEST_PG_BINDIR:-}" ]] || command -v initdb >/dev/null 2>&1 \
    || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "== HTTP suite on PostgreSQL (VM_TEST_BACKEND=postgres)"
    VM_TEST_BACKEND=postgres cargo test -p vm-http --test api --locked
else
    missing "the PostgreSQL server (initdb, pg_ctl) is not installed (apt-get install postgresql), so the PostgreSQL tests did not run"
fi

# --- web UI end to end: the real daemon binary and Debian's Chromium --------
if [[ "$ui_ready" == "true" ]]; then
    if [[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]]; then
        echo "== ui: end-to-end tests in headless Chromium (screenshots in ui/test-artifacts/)"
        cargo build -p vm-system --locked
        bin="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/vm-system"
        (cd ui && VM_SYSTEM_BIN="$bin" npm run --silent test:e2e)
    else
        missing "no Chromium at ${CHROMIUM_PATH:-/usr/bin/chromium} (apt-get install chromium), so the UI end-to-end tests did not run"
    fi
fi
