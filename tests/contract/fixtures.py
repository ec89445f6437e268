"""Makes the objects schemathesis cannot make itself, and prints their ids.

Usage: python fixtures.py API_URL TOKEN WORKTREE
Prints `TEMPLATE_ID SESSION_ID EXECUTION_ID`: a template with default
settings, a ready session on WORKTREE made from it, and a finished REPL
execution in that session (a console line and a value).

Why: the OpenAPI document declares no links, and the links schemathesis infers
from responses do not reach request bodies, so its stateful phase never feeds
a template id into `POST /sessions`, a session id into `POST
/executions/repl`, nor an execution id into `GET /executions/{id}`; with
generated ids those only ever answer 404, and nothing behind a live session
is checked. schemathesis.toml uses these (VM_CONTRACT_TEMPLATE,
VM_CONTRACT_SESSION, VM_CONTRACT_EXECUTION).
"""

import json
import sys
import urllib.error
import urllib.request


def call(api: str, token: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        api + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        sys.exit(f"contract fixtures: {method} {path} answered {error.code}: {error.read().decode(errors='replace')}")


def main(api: str, token: str, worktree: str) -> None:
    template = call(api, token, "POST", "/templates", {"name": "contract-fixture"})
    session = call(
        api,
        token,
        "POST",
        "/sessions",
        {
            "template_id": template["id"],
            "workspace_id": "contract",
            "base_commit_oid": "HEAD",
            "worktree_path": worktree,
        },
    )
    if session.get("status") != "ready":
        sys.exit(f"contract fixtures: the session is not ready: {session}")
    execution = call(
        api, token, "POST", "/executions/repl", {"session_id": session["id"], "input": "console.log('fixture'); 40 + 2"}
    )
    if execution.get("status") != "ok":
        sys.exit(f"contract fixtures: the execution did not end ok: {execution}")
    print(template["id"], session["id"], execution["id"])


if __name__ == "__main__":
    main(*sys.argv[1:4])
