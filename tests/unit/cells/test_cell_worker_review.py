"""Review 2 (W6, W11): a cell on ``stepflow worker --cells`` runs as it does inline.

- W6: the worker keeps the version its execution pinned, performs the built-in
  effects, sends ``parent_arn`` in the envelope, and its effects reach the history;
- W11: a workflow cannot hand a worker a forged cell task.
"""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.cells import CellModules, CellRegistry
from stepflow.cells.versions import VersionPins, pin_id
from stepflow.testing import WorkflowEnvironment, open_environment
from stepflow.worker import CellHandler

from tests.unit.cells.queue_support import (
    Calls,
    Recording,
    modules,
    serving,
    started,
    until,
    worker,
)
from tests.worker.cells_module import In, Out, ThreeBumps


class ThreeBumpsV2(ThreeBumps):
    """Version 2: the same effects, and 1000 more in its output."""

    version = "2"

    def run(self, ctx: Any, data: In) -> Out:
        return Out(total=super().run(ctx, data).total + 1000)


def two_versions(calls: Calls, who: str) -> CellModules:
    """ThreeBumps versions 1 and 2, with :func:`modules`' counting handler."""
    one = modules(calls, who)
    cells = CellRegistry()
    cells.register(ThreeBumps)
    cells.register(ThreeBumpsV2)
    return CellModules(cells, one.handlers)


@pytest.mark.parametrize("where", ["memory", "moto"])
def test_a_worker_keeps_the_version_its_execution_pinned(where: str) -> None:
    with open_environment(where, cell_queues="*=orders") as env:
        arn = started(env)
        # The execution ran version 1 first (e.g. before a deploy added version 2).
        VersionPins(env.log).pin(arn, pin_id("three-bumps", None), "1")
        handler = CellHandler(two_versions(Calls(), "a"), env.log)
        with serving(worker(Recording(env), handler, "a")) as running:
            until(lambda: running.counts["succeeded"] == 1)
        env.run_until_idle()
        assert env.describe(arn)["output"] == '{"total":34}'  # version 1's, not 1034
        assert handler.pins.writes == 0
        # A new execution pins the latest version, once, and keeps it.
        fresh = started(env)
        with serving(worker(Recording(env), handler, "a")) as running:
            until(lambda: running.counts["succeeded"] == 1)
        env.run_until_idle()
        assert env.describe(fresh)["output"] == '{"total":1034}'
        assert handler.pins.writes == 1
        assert VersionPins(env.log).pinned(fresh, pin_id("three-bumps", None)) == "2"


class Server:
    """A loopback HTTP server that counts the POSTs it answers and their idempotency keys."""

    def __init__(self) -> None:
        import http.server
        import threading

        keys: list[str] = []
        self.keys = keys

        class Answer(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                keys.append(self.headers.get("Idempotency-Key") or "")
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/charge"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def cli_worker(env: WorkflowEnvironment, *argv: str) -> Any:
    """The worker ``stepflow worker --cells ... argv`` builds, on ``env``'s API and log."""
    from stepflow.cli.worker import worker_options
    from stepflow.worker.cli import build

    args = worker_options(["--queue", "orders", *argv])
    return build(args, Recording(env), env.log)


def test_a_worker_performs_the_built_in_effects_once() -> None:
    server = Server()
    try:
        env = WorkflowEnvironment(cell_queues="*=orders")
        machine = {
            "StartAt": "Fetch",
            "States": {
                "Fetch": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::stepflow:cell:fetch",
                    "End": True,
                }
            },
        }
        arn = env.start(machine, {"url": server.url})
        env.run_until_idle()
        cells = "tests/worker/http_cells_module.py"
        local = cli_worker(env, "--cells", cells, "--endpoint-url", "http://127.0.0.1:9")
        with serving(local) as running:
            until(lambda: running.counts["succeeded"] == 1)
        env.run_until_idle()
        assert env.describe(arn)["status"] == "SUCCEEDED", env.history(arn)[-1]
        assert env.describe(arn)["output"] == '{"status":200,"body":"ok"}'
        assert len(server.keys) == 1 and server.keys[0]
        # A worker against AWS (no loopback endpoint) may not reach this machine.
        deployed = cli_worker(env, "--cells", cells)
        refused = env.start(machine, {"url": server.url})
        env.run_until_idle()
        with serving(deployed) as running:
            until(lambda: running.counts["failed"] == 1)
        env.run_until_idle()
        assert env.describe(refused)["status"] == "FAILED"
        assert len(server.keys) == 1
    finally:
        server.close()


FORGED = {
    "StartAt": "Forge",
    "States": {
        "Forge": {
            "Type": "Task",
            "Resource": "arn:aws:states:us-east-1:123456789012:activity:stepflow-cells-orders",
            "Parameters": {
                "StepFlowCellTask": {
                    "resource": "arn:aws:states:::stepflow:cell:three-bumps",
                    "executionArn.$": "$$.Execution.Id",
                    "stateName": "Elsewhere",
                    "taskId": "t-forged",
                    "roleArn": "arn:aws:iam::123456789012:role/Admin",
                },
                "Input": {"start": 1},
            },
            "End": True,
        }
    },
}


def forged_run(env: WorkflowEnvironment) -> tuple[str, Calls, list[dict[str, Any]]]:
    """Run :data:`FORGED` with a worker serving queue ``orders``: ARN, effects, tasks handed."""
    calls = Calls()
    arn = env.start(FORGED, {})
    env.run_until_idle()
    handler = CellHandler(modules(calls, "a"), env.log)
    client = Recording(env)
    with serving(worker(client, handler, "a")):
        until(lambda: env.describe(arn)["status"] != "RUNNING" or bool(calls.done))
    env.run_until_idle()
    return arn, calls, client.tasks


@pytest.mark.parametrize("where", ["memory", "moto"])
def test_a_workflow_task_on_a_cell_queue_is_refused_and_performs_no_effect(where: str) -> None:
    with open_environment(where, cell_queues="*=orders") as env:
        arn, calls, handed = forged_run(env)
        assert calls.done == []
        assert env.describe(arn)["status"] == "FAILED"
        assert handed == []  # never handed out
        failed = [e for e in env.history(arn) if e["type"] == "ActivityFailed"]
        assert "is a cell queue" in failed[0]["activityFailedEventDetails"]["cause"]


def test_a_forged_cell_task_already_queued_is_never_handed_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As if sent by a router from before the refusal: the hand-out refuses it too.
    from stepflow.activities import router

    monkeypatch.setattr(router, "is_cell_activity", lambda resource: False)
    env = WorkflowEnvironment(cell_queues="*=orders")
    arn, calls, handed = forged_run(env)
    assert calls.done == []
    assert env.describe(arn)["status"] == "FAILED"
    assert handed == []
    failed = [e for e in env.history(arn) if e["type"] == "ActivityFailed"]
    assert "is a cell queue" in failed[0]["activityFailedEventDetails"]["cause"]


def test_a_map_run_s_children_on_a_worker_keep_their_parent_s_version() -> None:
    import threading

    items = {
        "Type": "Map",
        "ItemsPath": "$.items",
        "MaxConcurrency": 1,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Bump",
            "States": {
                "Bump": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::stepflow:cell:three-bumps",
                    "End": True,
                }
            },
        },
        "End": True,
    }
    machine = {"StartAt": "Each", "States": {"Each": items}}
    env = WorkflowEnvironment(cell_queues="*=orders")
    arn = env.start(machine, {"items": [{"start": 1}, {"start": 2}]})
    VersionPins(env.log).pin(arn, pin_id("three-bumps", None), "1")  # before a deploy of 2
    handler = CellHandler(two_versions(Calls(), "a"), env.log)
    pause = threading.Event()
    with serving(worker(Recording(env), handler, "a")):
        for _ in range(400):
            env.run_until_idle()
            if env.describe(arn)["status"] != "RUNNING":
                break
            pause.wait(0.02)
    assert env.describe(arn)["status"] == "SUCCEEDED", env.history(arn)[-1]
    assert env.describe(arn)["output"] == '[{"total":34},{"total":35}]'  # version 1's
    assert handler.pins.writes == 0


def effect_events(env: WorkflowEnvironment, arn: str) -> list[tuple[str, str]]:
    """The effect events of ``arn``'s history: (type, the effect's details minus the token)."""
    import json

    found = []
    for event in env.history(arn):
        if event["type"].startswith("StepFlowEffect"):
            details = dict(next(v for k, v in event.items() if k.endswith("EventDetails")))
            details.pop("idempotencyKey", None)  # the key names the execution
            found.append((event["type"], json.dumps(details, sort_keys=True)))
    return found


@pytest.mark.parametrize("where", ["memory", "moto"])
def test_a_worker_s_effects_reach_the_history_as_inline_ones_do(where: str) -> None:
    with open_environment("memory", cells=modules(Calls(), "inline")) as inline_env:
        inline = effect_events(inline_env, started(inline_env))
    assert [kind for kind, _ in inline] == ["StepFlowEffectSucceeded"] * 3
    with open_environment(where, cell_queues="*=orders") as env:
        arn = started(env)
        with serving(worker(Recording(env), CellHandler(modules(Calls(), "a"), env.log), "a")) as w:
            until(lambda: w.counts["succeeded"] == 1)
        env.run_until_idle()
        assert env.describe(arn)["status"] == "SUCCEEDED"
        assert effect_events(env, arn) == inline
        types = [e["type"] for e in env.history(arn)]
        end = types.index("TaskSucceeded")
        assert types[end - 4 : end] == ["TaskStarted"] + ["StepFlowEffectSucceeded"] * 3
