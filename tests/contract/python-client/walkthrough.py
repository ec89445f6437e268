"""The README's walkthrough, end to end, through a client generated from openapi/openapi.json.

Usage (tests/contract/python-client/run.sh does all of it):
    openapi-python-client generate --path openapi/openapi.json --meta none \
        --config tests/contract/python-client/config.yaml --output-path DIR/vm_system_client
    PYTHONPATH=DIR python walkthrough.py --url http://HOST:PORT/api/v1 --token SECRET --worktree DIR

It talks to the daemon only through the generated package: its typed `api.*`
functions, the models they declare and `AuthenticatedClient` with the bearer
token. So a response the document describes wrongly (a `null` where it
promises a string, a status it does not declare, a missing field) breaks
here the way it breaks for any user of a generated client, and every step
asserts on the values it gets back, not only on the status code. Each step
prints one line; the first failure stops the walkthrough with what went
wrong and where in the generated code.

Request bodies are built with the model each operation declares for its body
(found from the function's type hints, `Model.from_dict`), not by importing
model names: those are made up by the generator from the document's shape
and change when it does.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import traceback
import typing
from collections.abc import Callable
from http import HTTPStatus
from types import ModuleType
from typing import Any

from vm_system_client import AuthenticatedClient
from vm_system_client.api.executions import get_execution, list_execution_events, list_executions, run_file, run_repl
from vm_system_client.api.ops import health, ready, runtime_summary
from vm_system_client.api.sessions import close_session, create_session, get_session
from vm_system_client.api.templates import (
    add_startup_file,
    add_template_library,
    add_template_module,
    create_template,
    get_template,
    get_template_settings,
)
from vm_system_client.api.tokens import who_am_i
from vm_system_client.types import UNSET, Response

try:  # GET /metrics and /metrics/summary, where the document declares them.
    from vm_system_client.api.ops import metrics, metrics_summary
except ImportError:
    metrics = metrics_summary = None


class WalkthroughFailed(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise WalkthroughFailed(message)


def body(operation: ModuleType, data: dict[str, Any]) -> Any:
    """The request body of `operation`, as the model its functions declare, from `data`."""
    model = typing.get_type_hints(operation.sync_detailed)["body"]
    return model.from_dict(data)


def expect(response: Response[Any], status: int) -> Any:
    """The parsed body of a response that must have `status` (and parse)."""
    text = response.content.decode(errors="replace")
    check(
        response.status_code == HTTPStatus(status), f"expected {status}, got {int(response.status_code)}: {text[:500]}"
    )
    check(response.parsed is not None, f"nothing parsed from {text[:500]}")
    check(not is_error(response.parsed) or status >= 400, f"an error envelope: {text[:500]}")
    return response.parsed


def is_error(parsed: Any) -> bool:
    """Whether `parsed` is the error envelope `{"error": {"code", "message", "details"}}`."""
    return hasattr(parsed, "error") and hasattr(parsed.error, "code") and not hasattr(parsed, "status")


def plain(value: Any) -> Any:
    """A model as the JSON it stands for (payloads, results: typed models or plain dicts)."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def unset(value: Any) -> bool:
    return value is None or value is UNSET


def types_of(events: list[Any]) -> list[str]:
    return [str(event.type_) for event in events]


def run(url: str, token: str, worktree: pathlib.Path) -> None:
    client = AuthenticatedClient(base_url=url, token=token, raise_on_unexpected_status=True, timeout=None)
    state: dict[str, Any] = {}
    steps: list[tuple[str, Callable[[], str]]] = []

    def step(name: str) -> Callable[[Callable[[], str]], Callable[[], str]]:
        def register(function: Callable[[], str]) -> Callable[[], str]:
            steps.append((name, function))
            return function

        return register

    # The worktree the session is bound to: a file to run, a startup file and
    # a data file the fs module reads.
    (worktree / "hello.js").write_text("console.log('hello from a file', __ARGS__.n, __ENV__.MODE); 6 * 7\n")
    (worktree / "setup.js").write_text("globalThis.greeting = 'set up by setup.js';\n")
    (worktree / "data.txt").write_text("read through require('fs')")

    @step("GET /health")
    def _() -> str:
        view = health.sync(client=client)
        check(view is not None and view.status == "ok", f"health: {view!r}")
        return f"status {view.status}"

    @step("GET /ready")
    def _() -> str:
        view = ready.sync(client=client)
        check(view is not None and view.status == "ready" and view.store == "ok", f"ready: {view!r}")
        return f"status {view.status}, store {view.store}, pending writes {view.pending_writes}"

    @step("GET /whoami")
    def _() -> str:
        view = who_am_i.sync(client=client)
        scopes = [str(scope) for scope in view.scopes]
        check("admin" in scopes, f"whoami: {view!r}")
        return f"{view.name}, scopes {scopes}"

    @step("POST /templates (with settings)")
    def _() -> str:
        request = body(
            create_template,
            {
                "name": "contract-walkthrough",
                "settings": {
                    "limits": {"cpu_ms": 4000, "wall_ms": 20000, "mem_mb": 128},
                    "runtime": {"console": True, "checkpoints": True},
                },
            },
        )
        view = expect(create_template.sync_detailed(client=client, body=request), 201)
        check(view.name == "contract-walkthrough", f"name {view.name!r}")
        check(view.engine == "boa", f"engine {view.engine!r}")
        check(view.settings.limits.wall_ms == 20000, f"wall_ms {view.settings.limits.wall_ms!r}")
        check(view.settings.limits.cpu_ms == 4000, f"cpu_ms {view.settings.limits.cpu_ms!r}")
        state["template"] = view.id
        return f"template {view.id}, engine {view.engine}, wall_ms {view.settings.limits.wall_ms}"

    @step("GET /templates/{id}/settings")
    def _() -> str:
        view = expect(get_template_settings.sync_detailed(state["template"], client=client), 200)
        check(view.limits.mem_mb == 128 and view.runtime.checkpoints is True, f"settings: {plain(view)!r}")
        # A field left out takes its default (README, "Choices where the spec is silent").
        check(view.limits.max_events == 1000, f"max_events default: {view.limits.max_events!r}")
        return f"limits cpu_ms {view.limits.cpu_ms}, wall_ms {view.limits.wall_ms}, max_events {view.limits.max_events}"

    @step("POST /templates/{id}/modules (fs)")
    def _() -> str:
        request = body(add_template_module, {"name": "fs"})
        names = expect(add_template_module.sync_detailed(state["template"], client=client, body=request), 201)
        check(names == ["fs"], f"modules {names!r}")
        return f"modules {names}"

    @step("POST /templates/{id}/libraries (lodash-4.17.21)")
    def _() -> str:
        request = body(add_template_library, {"name": "lodash-4.17.21"})
        names = expect(add_template_library.sync_detailed(state["template"], client=client, body=request), 201)
        check(names == ["lodash-4.17.21"], f"libraries {names!r}")
        return f"libraries {names}"

    @step("POST /templates/{id}/startup-files (setup.js)")
    def _() -> str:
        request = body(add_startup_file, {"path": "setup.js"})
        view = expect(add_startup_file.sync_detailed(state["template"], client=client, body=request), 201)
        check(view.path == "setup.js" and str(view.mode) == "eval", f"startup file {plain(view)!r}")
        return f"startup file {view.path}, order {view.order_index}, mode {view.mode}"

    @step("GET /templates/{id}")
    def _() -> str:
        view = expect(get_template.sync_detailed(state["template"], client=client), 200)
        check(view.exposed_modules == ["fs"], f"exposed_modules {view.exposed_modules!r}")
        check(view.libraries == ["lodash-4.17.21"], f"libraries {view.libraries!r}")
        startup = [file.path for file in view.startup_files]
        check(startup == ["setup.js"], f"startup_files {startup!r}")
        return f"modules {view.exposed_modules}, libraries {view.libraries}, startup {startup}"

    @step("POST /sessions")
    def _() -> str:
        request = body(
            create_session,
            {
                "template_id": str(state["template"]),
                "workspace_id": "ws-1",
                "base_commit_oid": "HEAD",
                "worktree_path": str(worktree),
            },
        )
        view = expect(create_session.sync_detailed(client=client, body=request), 201)
        check(str(view.status) == "ready", f"status {view.status!r}")
        check(str(view.template_id) == str(state["template"]), f"template_id {view.template_id!r}")
        check(view.worktree_path == str(worktree), f"worktree_path {view.worktree_path!r}")
        check(unset(view.closed_at), f"closed_at {view.closed_at!r}")
        state["session"] = view.id
        return f"session {view.id}, status {view.status}"

    def repl(code: str) -> Any:
        request = body(run_repl, {"session_id": str(state["session"]), "input": code})
        view = expect(run_repl.sync_detailed(client=client, body=request), 201)
        check(str(view.status) == "ok", f"{code!r} ended {view.status}: {plain(view.error)!r}")
        check(str(view.kind) == "repl" and view.input_ == code, f"kind {view.kind!r}, input {view.input_!r}")
        check(hasattr(view, "events"), "a 201 without its events")
        return view

    @step("POST /executions/repl: let x = 41")
    def _() -> str:
        view = repl("let x = 41")
        check(types_of(view.events) == ["input_echo", "value"], f"events {types_of(view.events)}")
        check(plain(view.events[0].payload) == {"text": "let x = 41"}, f"input_echo {plain(view.events[0].payload)!r}")
        check(plain(view.result).get("preview") == "undefined", f"result {plain(view.result)!r}")
        return f"execution {view.id}: {plain(view.result)['preview']}"

    @step("POST /executions/repl: x + 1 (state kept)")
    def _() -> str:
        view = repl("x + 1")
        value = view.events[-1]
        payload = plain(value.payload)
        check(str(value.type_) == "value", f"last event {value.type_!r}")
        check(payload == {"type": "number", "preview": "42", "json": 42}, f"value {payload!r}")
        check(plain(view.result) == payload, f"result {plain(view.result)!r} is not the value event {payload!r}")
        check([event.seq for event in view.events] == list(range(1, len(view.events) + 1)), "seq not 1..n")
        state["repl"] = view.id
        return f"execution {view.id}: {payload['preview']}"

    @step("POST /executions/repl: startup file, library and fs module")
    def _() -> str:
        view = repl("[greeting, _.chunk([1, 2, 3], 2).length, require('fs').readFileSync('data.txt')].join(' | ')")
        expected = "set up by setup.js | 2 | read through require('fs')"
        check(plain(view.result).get("json") == expected, f"result {plain(view.result)!r}")
        return plain(view.result)["preview"]

    @step("POST /executions/run-file hello.js (args, env)")
    def _() -> str:
        request = body(
            run_file,
            {"session_id": str(state["session"]), "path": "hello.js", "args": {"n": 2}, "env": {"MODE": "test"}},
        )
        view = expect(run_file.sync_detailed(client=client, body=request), 201)
        check(str(view.status) == "ok", f"status {view.status}: {plain(view.error)!r}")
        check(str(view.kind) == "run_file" and view.path == "hello.js", f"kind {view.kind}, path {view.path!r}")
        check(
            plain(view.args) == {"n": 2} and plain(view.env) == {"MODE": "test"},
            f"args {plain(view.args)!r}, env {plain(view.env)!r}",
        )
        check(plain(view.result).get("json") == 42, f"result {plain(view.result)!r}")
        state["file"] = view.id
        return f"execution {view.id}: {plain(view.result)['preview']}"

    @step("GET /executions?session_id&limit (newest first)")
    def _() -> str:
        views = expect(list_executions.sync_detailed(client=client, session_id=state["session"], limit=10), 200)
        kinds = [str(view.kind) for view in views]
        # setup.js ran as a startup execution when the session started.
        check(kinds == ["run_file", "repl", "repl", "repl", "startup"], f"kinds {kinds}")
        check(views[0].id == state["file"] and views[2].id == state["repl"], f"ids {[str(view.id) for view in views]}")
        check(all(str(view.status) == "ok" for view in views), f"statuses {[str(view.status) for view in views]}")
        return f"{len(views)} executions: {kinds}"

    @step("GET /executions/{id}/events?after_seq=1")
    def _() -> str:
        events = expect(list_execution_events.sync_detailed(state["file"], client=client, after_seq=1), 200)
        check(types_of(events) == ["console", "value"], f"types {types_of(events)}")
        console, value = (plain(event.payload) for event in events)
        check(console == {"level": "log", "text": "hello from a file 2 test"}, f"console {console!r}")
        check(value == {"type": "number", "preview": "42", "json": 42}, f"value {value!r}")
        check([event.seq for event in events] == [2, 3], f"seq {[event.seq for event in events]}")
        check(all(event.execution_id == state["file"] for event in events), "execution_id")
        return f"console {console['text']!r}, value {value['preview']}"

    @step("GET /executions/{id}")
    def _() -> str:
        view = expect(get_execution.sync_detailed(state["file"], client=client), 200)
        check(
            str(view.status) == "ok" and not unset(view.ended_at), f"status {view.status}, ended_at {view.ended_at!r}"
        )
        check(view.metrics.event_count == 3, f"event_count {view.metrics.event_count!r}")
        return f"status {view.status}, {view.metrics.event_count} events, {view.metrics.duration_ms} ms"

    @step("POST /executions/run-file ../etc/passwd (422 INVALID_PATH)")
    def _() -> str:
        request = body(run_file, {"session_id": str(state["session"]), "path": "../etc/passwd"})
        envelope = expect(run_file.sync_detailed(client=client, body=request), 422)
        check(is_error(envelope) and envelope.error.code == "INVALID_PATH", f"error {plain(envelope)!r}")
        return f"{envelope.error.code}: {envelope.error.message}"

    @step("GET /runtime/summary")
    def _() -> str:
        view = runtime_summary.sync(client=client)
        check(view is not None and view.active_sessions == 1, f"summary: {plain(view)!r}")
        return f"active sessions {view.active_sessions}"

    @step("GET /metrics (parsed by prometheus_client) and /metrics/summary")
    def _() -> str:
        if metrics is None:
            return "skipped: the document declares no /metrics"
        from prometheus_client.parser import text_string_to_metric_families

        text = expect(metrics.sync_detailed(client=client), 200)
        check(isinstance(text, str), f"/metrics parsed as {type(text).__name__}, not text")
        families = {family.name: family for family in text_string_to_metric_families(text)}
        # prometheus_client names a counter family without its `_total`.
        check("vm_executions" in families, f"no vm_executions_total in {sorted(families)}")
        check(families["vm_executions"].type == "counter", f"vm_executions_total is a {families['vm_executions'].type}")
        counts = {
            (sample.labels["kind"], sample.labels["status"]): sample.value
            for sample in families["vm_executions"].samples
            if sample.name == "vm_executions_total"
        }
        # This daemon ran exactly: setup.js at the session start, three REPL
        # snippets, one file (the refused ../etc/passwd never ran).
        done = {key: value for key, value in counts.items() if value}
        expected = {("startup", "ok"): 1, ("repl", "ok"): 3, ("run_file", "ok"): 1}
        check(done == expected, f"vm_executions_total {done} instead of {expected}")
        summary = expect(metrics_summary.sync_detailed(client=client), 200)
        check(
            summary.executions_total == sum(counts.values()), f"executions_total {summary.executions_total} vs {counts}"
        )
        check(summary.executions.ok == 5 and summary.live_sessions == 1, f"summary {plain(summary)!r}")
        total = summary.executions_total
        return f"{len(families)} metric families; executions {sorted(done.items())}; summary total {total}"

    @step("POST /sessions/{id}/close")
    def _() -> str:
        view = expect(close_session.sync_detailed(state["session"], client=client), 200)
        check(str(view.status) == "closed", f"status {view.status!r}")
        check(not unset(view.closed_at), f"closed_at {view.closed_at!r}")
        return f"status {view.status}, closed_at {view.closed_at.isoformat()}"

    @step("GET /sessions/{id}")
    def _() -> str:
        view = expect(get_session.sync_detailed(state["session"], client=client), 200)
        check(
            str(view.status) == "closed" and not unset(view.closed_at),
            f"status {view.status}, closed_at {view.closed_at!r}",
        )
        return f"status {view.status}, closed_at {view.closed_at.isoformat()}"

    print(f"== contract: the README walkthrough through the generated Python client ({url})")
    for number, (name, function) in enumerate(steps, start=1):
        try:
            detail = function()
        except Exception as error:  # noqa: BLE001 - every failure is reported the same way
            print(f"FAIL {number:2}. {name}")
            print(f"     {type(error).__name__}: {error}")
            # Where in the generated client it broke (a model that cannot parse a response).
            frames = [f for f in traceback.extract_tb(error.__traceback__) if "vm_system_client" in f.filename]
            if frames:
                frame = frames[-1]
                where = frame.filename[frame.filename.index("vm_system_client") :]
                print(f"     in the generated client: {where}:{frame.lineno}: {frame.line}")
            if not isinstance(error, WalkthroughFailed):
                traceback.print_exception(error, file=sys.stdout)
            print(f"walkthrough: stopped at step {number} of {len(steps)}")
            print(f"walkthrough: {number - 1} passed, 1 failed, {len(steps) - number} skipped")
            sys.exit(1)
        print(f"ok   {number:2}. {name}: {detail}")
    print(f"walkthrough: {len(steps)} passed, 0 failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the API base URL, http://HOST:PORT/api/v1")
    parser.add_argument("--token", required=True, help="an admin token")
    parser.add_argument(
        "--worktree", required=True, type=pathlib.Path, help="a directory under the daemon's worktree root"
    )
    args = parser.parse_args()
    run(args.url, args.token, args.worktree.resolve())


if __name__ == "__main__":
    main()
