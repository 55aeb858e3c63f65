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

ChaosMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestChaos = ChaosMachine.TestCase

RunnerChaosMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestRunnerChaos = RunnerChaosMachine.TestCase

InPlaceChaosMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestInPlaceChaos = InPlaceChaosMachine.TestCase

HeldChaosMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestHeldChaos = HeldChaosMachine.TestCase

LazyRepairChaosMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLazyRepairChaos = LazyRepairChaosMachine.TestCase
