"""Effects in the history and in the metrics on the path that ships.

The DynamoDB log on moto with every message delivered to the real stepper Lambda
handler (``open_environment("moto")``): the effect events are committed with
the task's result, and the handler's Powertools EMF metrics count the effects
performed, replayed and failed.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.engine.effects import DETAILS_KEY
from stepflow.testing import open_environment

from tests.unit.cells.test_history import (
    CELL,
    Crash,
    Handlers,
    assert_chained,
    definition,
    effect_events,
    types,
)


def emf_totals(output: str) -> dict[str, float]:
    """Every EMF metric value printed by Powertools Metrics, summed over the lines."""
    totals: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blob = json.loads(line)
            for metric in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                values = blob[metric["Name"]]
                values = values if isinstance(values, list) else [values]
                totals[metric["Name"]] = totals.get(metric["Name"], 0.0) + sum(values)
    return totals


def test_durable_effects_show_in_the_history_and_replays_are_marked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    handlers = Handlers(crash_at=2)
    with open_environment("moto", cells=handlers.modules()) as env:
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"  # restored with the environment
        arn = env.start(parse(definition()), {"count": 3})
        capsys.readouterr()
        with pytest.raises(Crash):
            env.run(arn)
        assert handlers.calls == [("step", 0), ("step", 1)]
        env.bus.now += 1_000  # the crashed stepper's task lease runs out
        env.run(arn)
        assert env.result(arn).status == "SUCCEEDED"
        history = env.history(arn)
    assert handlers.calls == [("step", 0), ("step", 1), ("step", 2)]
    assert types(history)[3:8] == [
        "TaskStarted",
        "StepFlowEffectReplayed",
        "StepFlowEffectReplayed",
        "StepFlowEffectSucceeded",
        "TaskSucceeded",
    ]
    assert [e[DETAILS_KEY]["index"] for e in effect_events(history)] == [0, 1, 2]
    assert_chained(history)
    totals = emf_totals(capsys.readouterr().out)
    # the crashed batch printed nothing; the re-run performed one and replayed two
    assert totals["EffectsPerformed"] == 1.0
    assert totals["EffectsReplayed"] == 2.0
    assert totals["EffectsFailed"] == 0.0
    assert totals["CompensationsRun"] == 0.0


def test_durable_metrics_count_failed_effects_and_no_cell_means_no_effect_metrics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    handlers = Handlers()
    with open_environment("moto", cells=handlers.modules()) as env:
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"
        waits = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 5, "End": True}}}
        plain = env.start(parse(waits), {}, state_machine="Plain")
        env.run(plain)
        quiet = emf_totals(capsys.readouterr().out)
        arn = env.start(parse(definition()), {"count": 2, "charge": 7})
        env.run(arn)
        history = env.history(arn)
    assert quiet.get("MessagesProcessed", 0) >= 1 and "EffectsPerformed" not in quiet
    assert handlers.calls == [("step", 0), ("step", 1), ("charge", 7)]
    assert types(effect_events(history)) == ["StepFlowEffectSucceeded"] * 2 + [
        "StepFlowEffectFailed"
    ]
    totals = emf_totals(capsys.readouterr().out)
    assert (totals["EffectsPerformed"], totals["EffectsFailed"]) == (3.0, 1.0)
    assert totals["EffectsReplayed"] == 0.0


def test_the_memory_and_durable_histories_agree() -> None:
    def run(durable: str) -> list[dict[str, Any]]:
        with open_environment(durable, cells=Handlers().modules()) as env:
            arn = env.start(parse(definition()), {"count": 3, "charge": 1}, name="same", seed=3)
            env.run(arn)
            return [{k: v for k, v in e.items() if k != "timestamp"} for e in env.history(arn)]

    memory, durable = run("memory"), run("moto")
    assert memory == durable
    assert CELL.endswith(memory[2]["taskScheduledEventDetails"]["resource"])
