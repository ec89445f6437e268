# Shared by the contract checks (sourced, not run): the venv, the daemon binary,
# and a real daemon on a free port with a throwaway home.
#
#   contract_init                 sets ROOT, VENV, VM_BIN; makes WORK (removed on exit)
#   start_daemon NAME             a daemon in $WORK/NAME: sets DAEMON_URL (…/api/v1),
#                                 DAEMON_TOKEN, DAEMON_HOME, DAEMON_PID; its worktree
#                                 $DAEMON_HOME/worktree holds hello.js, and its library
#                                 cache a stand-in lodash-4.17.21
#   stop_daemons                  stops every daemon started (also on exit)
#
# The daemon runs as the README says, with its own database, worktree root,
# library cache, data directory and an admin token file (a 64-character
# secret, mode 600), so nothing of the user's is touched.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${VM_CONTRACT_VENV:-$ROOT/.venv-contract}"
DAEMON_PIDS=()

contract_init() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "error: no contract venv at $VENV; run: bash tests/contract/venv.sh" >&2
        exit 2
    fi
    # The debug binary `cargo build -p vm-system --locked` makes (tests/run-all.sh
    # and tests/contract/run.sh build it), or VM_SYSTEM_BIN.
    VM_BIN="${VM_SYSTEM_BIN:-$(cd "$ROOT" && cd "${CARGO_TARGET_DIR:-target}" 2>/dev/null && pwd)/debug/vm-system}"
    if [[ ! -x "$VM_BIN" ]]; then
        echo "error: no daemon binary at $VM_BIN; run: cargo build -p vm-system --locked" >&2
        exit 2
    fi
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/vm-contract.XXXXXX")"
    trap contract_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

contract_cleanup() {
    local rc=$?
    stop_daemons
    if [[ $rc -ne 0 && -n "${WORK:-}" ]]; then
        # Keep what explains a failure: the daemon logs, reports, the generated client.
        echo "contract: kept $WORK (daemon logs: $WORK/*/daemon.log)" >&2
    elif [[ -n "${WORK:-}" ]]; then
        rm -rf "$WORK"
    fi
    exit $rc
}

stop_daemons() {
    local pid
    for pid in "${DAEMON_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    DAEMON_PIDS=()
}

start_daemon() {
    local name="$1"
    DAEMON_HOME="$WORK/$name"
    mkdir -p "$DAEMON_HOME/worktree" "$DAEMON_HOME/cache"
    # 32 random bytes as 64 hex digits: the admin secret, readable only by us.
    (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$DAEMON_HOME/token")
    chmod 600 "$DAEMON_HOME/token"
    DAEMON_TOKEN="$(cat "$DAEMON_HOME/token")"
    # The worktree sessions are started on, with a small JS file to run.
    printf '%s\n' "console.log('hello from a file', __ARGS__.n, __ENV__.MODE); 6 * 7" \
        >"$DAEMON_HOME/worktree/hello.js"
    # A stand-in for the catalog library lodash-4.17.21 in the library cache,
    # put there the way the README says (`vm-system libs download --from DIR`),
    # so that a template may list it and its sessions still start offline.
    mkdir -p "$DAEMON_HOME/vendored"
    printf '%s\n' 'var _ = { VERSION: "contract-stub", chunk: function (a, n) { var out = []; for (var i = 0; i < a.length; i += n) out.push(a.slice(i, i + n)); return out; } };' \
        >"$DAEMON_HOME/vendored/lodash-4.17.21.js"
    "$VM_BIN" libs download lodash-4.17.21 --from "$DAEMON_HOME/vendored" --cache-dir "$DAEMON_HOME/cache" >/dev/null
    VM_SYSTEM_DATA_DIR="$DAEMON_HOME/data" "$VM_BIN" serve \
        --listen 127.0.0.1:0 \
        --db "$DAEMON_HOME/db.sqlite" \
        --worktree-root "$DAEMON_HOME" \
        --cache-dir "$DAEMON_HOME/cache" \
        --admin-token-file "$DAEMON_HOME/token" \
        </dev/null >"$DAEMON_HOME/daemon.out" 2>"$DAEMON_HOME/daemon.log" &
    DAEMON_PID=$!
    DAEMON_PIDS+=("$DAEMON_PID")
    # Port 0: the daemon picks a free port and prints `vm-system listening on URL`.
    local origin="" _
    for _ in $(seq 300); do
        origin="$(sed -n 's/^vm-system listening on \(http:[^ ]*\).*/\1/p' "$DAEMON_HOME/daemon.out" | head -n1)"
        [[ -n "$origin" ]] && break
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            echo "error: the daemon ($name) exited at start:" >&2
            tail -n 30 "$DAEMON_HOME/daemon.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    if [[ -z "$origin" ]]; then
        echo "error: the daemon ($name) did not say where it listens within 30 s" >&2
        tail -n 30 "$DAEMON_HOME/daemon.log" >&2
        exit 1
    fi
    DAEMON_URL="$origin/api/v1"
    # Then wait until it answers /health (no token needed).
    if ! "$VENV/bin/python" - "$DAEMON_URL/health" <<'PY'; then
import sys, time, urllib.request
deadline = time.monotonic() + 30
while True:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(0.1)
PY
        echo "error: the daemon ($name) did not answer $DAEMON_URL/health within 30 s" >&2
        tail -n 30 "$DAEMON_HOME/daemon.log" >&2
        exit 1
    fi
    echo "contract: daemon '$name' at $DAEMON_URL (pid $DAEMON_PID, home $DAEMON_HOME)"
}
