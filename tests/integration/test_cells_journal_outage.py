"""A journal outage after an effect ran: redelivered under the same keys, never Retried."""

from __future__ import annotations

import pytest
from stepflow.cells import CellModules, CellRegistry, EffectHandlers, LogJournal
from stepflow.testing import open_environment

from tests.unit.cells.test_cells_hostile import Bump, Counted, FlakyJournal, Num


@pytest.mark.parametrize("backend", ["memory", "moto"])
def test_a_journal_outage_is_redelivered_through_the_driver_not_retried(backend: str) -> None:
    calls: list[tuple[int, str]] = []
    modules = CellModules(CellRegistry(), EffectHandlers())
    modules.cells.register(Counted)
    modules.handlers.register(Bump, lambda e, c: calls.append((e.n, c.key.token)) or Num(n=e.n))
    definition = {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Task",
                "Resource": "arn:aws:states:::stepflow:cell:c",
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}],
                "End": True,
            }
        },
    }
    with open_environment(backend, cells=modules) as env:
        env.cell_runtime.journal = FlakyJournal(LogJournal(env.log).log)
        arn = env.start(definition, {"k": 2})
        env.run(arn)
        result = env.result(arn)
    assert result.status == "SUCCEEDED"
    # Effect 0 ran twice under ONE key (the target can drop the repeat); no TaskFailed, no Retry.
    assert [n for n, _ in calls] == [0, 0, 1] and calls[0][1] == calls[1][1]
    assert [e["type"] for e in result.history].count("TaskScheduled") == 1
