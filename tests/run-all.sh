#!/usr/bin/env bash
# The whole test suite: every Rust test (unit, contract, HTTP, black-box).
# Usage: bash tests/run-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked
