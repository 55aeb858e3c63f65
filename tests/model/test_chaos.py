"""The chaos state machine over the real Stepper, a few hundred interleavings per run.

``bench/chaos.py`` runs the same machine for tens of thousands of steps.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from tests.model.chaos import (
    ChaosMachine,
    HeldChaosMachine,
    InPlaceChaosMachine,
    LazyRepairChaosMachine,
    RunnerChaosMachine,
)


def _settings(examples: int) -> settings:
    """Hypothesis settings of one machine's run: ``examples`` interleavings of 25 steps."""
    return settings(
        max_examples=examples,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


ChaosMachine.TestCase.settings = _settings(200)
TestChaos = ChaosMachine.TestCase

RunnerChaosMachine.TestCase.settings = _settings(150)
TestRunnerChaos = RunnerChaosMachine.TestCase

InPlaceChaosMachine.TestCase.settings = _settings(150)
TestInPlaceChaos = InPlaceChaosMachine.TestCase

HeldChaosMachine.TestCase.settings = _settings(150)
TestHeldChaos = HeldChaosMachine.TestCase

LazyRepairChaosMachine.TestCase.settings = _settings(150)
TestLazyRepairChaos = LazyRepairChaosMachine.TestCase
