"""``execute``: run one execution to its end in a :class:`WorkflowEnvironment`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from stepflow.asl import StateMachine, parse
from stepflow.cells import CellModules
from stepflow.limits import DEFAULT_LIMITS, Limits
from stepflow.runtime.clients import TaskClients
from stepflow.testing.collection import young_collections_only
from stepflow.testing.environment import WorkflowEnvironment
from stepflow.testing.handlers import Handler
from stepflow.testing.mocks import MockConfig, MockConfigError, task_states
from stepflow.testing.result import ExecutionResult

__all__ = ["Handler", "execute", "open_environment"]


def execute(
    definition: str | Mapping[str, Any] | StateMachine,
    input: Any = None,
    *,
    handlers: Mapping[str, Handler] | None = None,
    name: str | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    seed: int | None = 0,
    start_time: datetime | None = None,
    max_events: int | None = None,
    durable: bool | str = False,
    limits: Limits = DEFAULT_LIMITS,
    aws: bool | TaskClients = False,
    cells: CellModules | Iterable[str | type[Any]] | None = None,
    mock_config: str | Path | Mapping[str, Any] | MockConfig | None = None,
    test_case: str | None = None,
    state_machine: str | None = None,
) -> ExecutionResult:
    """Run ``definition`` on ``input`` until it ends, in process, on a virtual clock.

    The execution runs on the runtime's Stepper in a
    :class:`~stepflow.testing.WorkflowEnvironment`: waits, retry back-off and
    timeouts take no real time. ``handlers`` maps a Task resource, a Lambda
    function name or an activity ARN to ``fn(input) -> output``; an exception
    fails the task with its ``error`` attribute or class name. For a
    ``.waitForTaskToken`` resource or an activity, the handler's result is sent
    as SendTaskSuccess (an exception as SendTaskFailure). When nothing more can
    happen without outside input (a callback without a handler), the result's
    status is RUNNING: use a ``WorkflowEnvironment`` to answer such tasks.
    ``aws=True`` runs the tasks no handler is bound to through StepFlow's
    integrations with the process's credentials: inside moto's ``mock_aws()``
    a DynamoDB ``putItem`` writes a real moto table (a
    :class:`~stepflow.runtime.clients.TaskClients` hands out other clients).
    Without a handler and without ``aws`` such a task fails, naming both options.
    ``on_event`` sees every history event of the execution as it is committed.
    Raises :class:`stepflow.asl.DefinitionError` for an invalid definition.
    ``max_events`` caps the execution's history (default: ``Limits``): past it
    the execution fails with ``States.Runtime``, as a durable one does; ``limits``
    are the other bounds (e.g. a raised ``max_payload_bytes``).

    ``durable``: False or ``"memory"`` (the default) runs on the in-memory
    ports; True or ``"moto"`` runs on the DynamoDB log on moto with every
    message delivered through the real stepper Lambda handler (slower). Both
    must give the same result: one implementation of the semantics.
    While it runs, full garbage collections are put off (young ones still run):
    see :mod:`stepflow.testing.collection`.
    ``cells`` are the effectful cells ``stepflow:cell:*`` tasks run (module names, Cell
    classes and ``@handles`` handlers, or loaded ``CellModules``; see docs/cells.md).

    ``mock_config`` (a ``MockConfigFile.json`` path or its parsed object, Step Functions
    Local's format) answers the Task states of ``test_case`` with its mocked responses,
    before any handler (see :mod:`stepflow.testing.mocks`). The execution runs as state
    machine ``state_machine`` (default: the config's only one), whose test cases apply.
    Raises :class:`~stepflow.testing.mocks.MockConfigError` for a malformed config, an
    unknown test case or a mocked state the definition lacks.
    """
    machine = definition if isinstance(definition, StateMachine) else parse(definition)
    name_of_machine = state_machine or "StateMachine"
    if mock_config is not None:
        mock_config = MockConfig.load(mock_config)
        if test_case is None:
            raise MockConfigError("mock_config needs test_case= (one of the TestCases)")
        name_of_machine = state_machine or _only_machine(mock_config)
        mock_config.check_states(name_of_machine, str(test_case), task_states(machine))
    with (
        young_collections_only(),
        open_environment(
            durable,
            handlers=handlers,
            start_time=start_time,
            max_events=max_events,
            limits=limits,
            on_event=on_event,
            aws=aws,
            cells=cells,
            mock_config=mock_config,
            test_case=test_case,
        ) as env,
    ):
        arn = env.start(machine, input, name=name, seed=seed, state_machine=name_of_machine)
        env.run(arn, skip_open_tasks=True)
        return env.result(arn)


def _only_machine(config: MockConfig) -> str:
    """The config's one state machine (several: the caller must name one)."""
    if len(config.machines) != 1:
        known = ", ".join(sorted(config.machines)) or "none"
        raise MockConfigError(
            f"pass state_machine= to choose the mock config's state machine (StateMachines: "
            f"{known})"
        )
    return next(iter(config.machines))


@contextlib.contextmanager
def open_environment(
    durable: bool | str = "memory", **options: Any
) -> Iterator[WorkflowEnvironment]:
    """A :class:`WorkflowEnvironment` with ``options``, on the backend ``durable`` names.

    ``"memory"`` (or False): the in-memory log. ``"moto"`` (or True): the
    DynamoDB log on moto, every message through the real stepper Lambda handler.
    """
    if durable in (False, "memory"):
        yield WorkflowEnvironment(**options)
    elif durable in (True, "moto"):
        from stepflow.testing.durable import moto_environment

        with moto_environment(**options) as env:
            yield env
    else:
        raise ValueError(f"unknown durable backend {durable!r} (use 'memory' or 'moto')")
