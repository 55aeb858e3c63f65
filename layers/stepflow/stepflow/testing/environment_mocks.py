"""What stands in front of a test environment's tasks: its mocks, then virtual time.

A :class:`~stepflow.testing.WorkflowEnvironment` given ``mock_config`` and ``test_case``
answers the mocked Task states of the executions it starts itself
(:meth:`~stepflow.testing.WorkflowEnvironment.start`, and so ``execute``) when the
state machine they run is named in the config with that test case, as Step
Functions Local answers the execution started with ``#<TestCase>``: their inline
Map iterations and a distributed Map's child executions too, but not the executions
their ``states:startExecution`` tasks start (those run unmocked).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stepflow.runtime.arns import machine_name
from stepflow.runtime.outcome import TaskInvoker
from stepflow.testing.mocks import (
    MockConfig,
    MockConfigError,
    MockedTasks,
    TestCase,
    root_of,
    task_states,
)
from stepflow.testing.timing import VirtualTimeTasks

MockSource = str | Path | Mapping[str, Any] | MockConfig


class TaskFront:
    """The environment's task invoker: mocks (if configured), then virtual time, then ``tasks``.

    :attr:`invoker` is what the stepper calls; :attr:`mocks` (None without a config)
    counts the mocked calls per root execution and state; :attr:`timing` holds the
    outcomes of handlers that answered with ``Delay``.
    """

    def __init__(
        self,
        source: MockSource | None,
        test_case: str | None,
        log: Any,
        tasks: TaskInvoker,
        clock: Callable[[], float],
    ) -> None:
        self.config = _config(source, test_case)
        self.test_case, self.log = test_case, log
        self._roots: dict[str, TestCase] = {}
        self.mocks = None if self.config is None else MockedTasks(self._select, tasks)
        self.timing = VirtualTimeTasks(self.mocks or tasks, clock)
        self.invoker: TaskInvoker = self.timing

    def case_of(self, name: str) -> TestCase | None:
        """The test case state machine ``name`` runs (None: it runs unmocked)."""
        if self.config is None or self.test_case is None:
            return None
        cases = self.config.machines.get(name, {})
        return cases.get(self.test_case)

    def check(self, name: str, machine: Any) -> None:
        """Refuse a test case naming a state that ``machine`` (registered as ``name``) lacks."""
        if self.config is not None and self.case_of(name) is not None:
            self.config.check_states(name, str(self.test_case), task_states(machine))

    def started(self, execution_arn: str) -> None:
        """An execution the test started: it runs its machine's test case, if any."""
        case = self.case_of(machine_name(execution_arn))
        if case is not None:
            self._roots[execution_arn] = case

    def _select(self, body: dict[str, Any]) -> tuple[TestCase, str] | None:
        root = root_of(self.log, str(body.get("execution_arn", "")))
        case = self._roots.get(root)
        return None if case is None else (case, root)


def _config(source: MockSource | None, test_case: str | None) -> MockConfig | None:
    """The checked config (None without one); MockConfigError if unusable with ``test_case``."""
    if source is None:
        if test_case is not None:
            raise MockConfigError("test_case needs a mock_config")
        return None
    config = MockConfig.load(source)
    if test_case is None:
        raise MockConfigError("mock_config needs a test_case (one of the TestCases)")
    if not any(test_case in cases for cases in config.machines.values()):
        raise MockConfigError(f"no state machine of the mock config has test case {test_case!r}")
    return config
