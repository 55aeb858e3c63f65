"""``stepflow worker --cells``: its command line, refused early and clearly when it cannot work."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from stepflow.cli import main
from stepflow.cli.worker import worker_options
from stepflow.runtime import InMemoryLog
from stepflow.worker import CellHandler, ServiceClient
from stepflow.worker.cli import build

from tests.worker.harness import Harness, task_machine

CELLS = "tests/worker/cells_module.py"


@pytest.fixture(autouse=True)
def _keep_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    package_logger = logging.getLogger("stepflow")  # the CLI sets it up: undo that afterwards
    for attribute in ("handlers", "propagate", "level"):
        monkeypatch.setattr(package_logger, attribute, getattr(package_logger, attribute))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cells", CELLS], "--cells and --queue go together"),
        (["--queue", "q"], "--cells and --queue go together"),
        (["--cells", CELLS, "--queue", "q", "--activity", "a"], "either --cells"),
        (["--cells", CELLS, "--queue", "q", "tests.worker.handlers:slow"], "either --cells"),
        (["--cells", CELLS, "--queue", "a b", "--table", "t"], "--queue"),
        (["--cells", CELLS, "--queue", "q" * 61, "--table", "t"], "--queue"),
        (["--cells", "tests/worker/nothing_here.py", "--queue", "q"], "cannot load --cells"),
        (["--cells", "tests.worker.handlers", "--queue", "q", "--table", "t"], "defines no cell"),
        (["--cells", CELLS, "--queue", "q"], "--table"),
        ([], "give --activity and a handler"),
    ],
)
def test_a_cell_worker_command_line_that_cannot_work_is_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.delenv("STEPFLOW_TABLE", raising=False)
    monkeypatch.delenv("TABLE_NAME", raising=False)
    assert main(["worker", *argv, "--endpoint-url", "http://127.0.0.1:9"]) == 2
    assert message in capsys.readouterr().err


def test_a_cell_worker_serves_its_queue_s_activity_created_once() -> None:
    h = Harness(task_machine("arn:aws:states:::stepflow:cell:three-bumps"))
    args = worker_options(["--cells", CELLS, "--queue", "orders"])
    client = ServiceClient(h.service, wait_seconds=0)
    worker = build(args, client, InMemoryLog())
    again = build(args, client, InMemoryLog())
    assert worker.activity_arn == again.activity_arn
    assert worker.activity_arn.endswith(":activity:stepflow-cells-orders")
    assert isinstance(worker.handler, CellHandler)
    assert worker.handler.modules.cells.keys() == ["three-bumps@1"]
    names = [a["name"] for a in h.service.list_activities({})["activities"]]
    assert names == ["stepflow-cells-orders"]
