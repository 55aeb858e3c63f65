"""Review 2 (W6, W11): a cell on ``stepflow worker --cells`` runs as it does inline.

- W6: the worker keeps the version its execution pinned, performs the built-in
  effects, sends ``parent_arn`` in the envelope, and its effects reach the history;
- W11: a workflow cannot hand a worker a forged cell task.
"""

from __future__ import annotations

from typing import Any

import pytest
from stepflow.cells import CellModules, CellRegistry, EffectCall, EffectHandlers
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
from tests.worker.cells_module import Bump, Effects, In, Out, Step, ThreeBumps


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
