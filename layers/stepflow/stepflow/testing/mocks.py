"""Step Functions Local's mock configuration (``MockConfigFile.json``), read and applied.

The format, as AWS documents it for Step Functions Local::

    {"StateMachines": {"<machine>": {"TestCases": {"<case>": {"<Task state>": "<response>"}}}},
     "MockedResponses": {"<response>": {"0": {"Return": ...}, "1-2": {"Throw": {...}}}}}

A mocked response answers a Task state's invocations by number, counted from 0 per
state in one execution (retries and every Map iteration count): ``"0"`` the first
call, ``"1-2"`` the second and third (inclusive). Each entry holds exactly one of
``Return`` (the task's result, as the service would answer) or ``Throw`` (``Error``
and ``Cause`` strings: the task fails with them). A call past the numbers given
fails the execution (``States.Runtime``), as AWS says: a mocked Task needs a
response for every invocation. A Task state of any integration can be mocked,
``.sync`` and ``.waitForTaskToken`` too (the response is then the task's result: no
job is started and no token waits for an answer), inside Map and Parallel too.
States the test case does not name run as usual (handlers, integrations).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepflow.engine.resources import describe
from stepflow.errors import StatesErrorName
from stepflow.runtime.outcome import TaskInvoker, TaskOutcome

__all__ = ["MockConfig", "MockConfigError", "MockedResponse", "MockedTasks", "TestCase"]

_COUNT = re.compile(r"(0|[1-9][0-9]{0,8})(?:-(0|[1-9][0-9]{0,8}))?")

TestCase = Mapping[str, "MockedResponse"]
"""A test case: Task state name -> the mocked response answering it."""


class MockConfigError(ValueError):
    """A mock configuration that cannot be used; the message names the bad field's path."""


@dataclass(frozen=True, slots=True)
class MockedCall:
    """One entry of a mocked response: a result (``ok``) or an error and cause."""

    ok: bool
    output: Any = None
    error: str | None = None
    cause: str | None = None

    def outcome(self) -> TaskOutcome:
        """The entry as a task's outcome: the task's result itself, even for a callback."""
        if self.ok:
            return TaskOutcome(True, self.output, final=True)
        return TaskOutcome(False, None, self.error, self.cause, final=True)


@dataclass(frozen=True, slots=True)
class MockedResponse:
    """A named mocked response: its entries by inclusive ranges of call numbers."""

    name: str
    entries: tuple[tuple[int, int, MockedCall], ...]

    def at(self, call: int) -> MockedCall | None:
        """The entry answering call number ``call`` (from 0); None if none is given."""
        for first, last, entry in self.entries:
            if first <= call <= last:
                return entry
        return None


@dataclass(frozen=True, slots=True)
class MockConfig:
    """A parsed, checked mock configuration: test cases by state machine, and responses."""

    machines: Mapping[str, Mapping[str, TestCase]]
    responses: Mapping[str, MockedResponse] = field(default_factory=dict)

    @classmethod
    def load(cls, source: str | Path | Mapping[str, Any] | MockConfig) -> MockConfig:
        """Read a configuration from a file path or a parsed object, checking every field.

        Raises :class:`MockConfigError` naming the path of the first bad field
        (e.g. ``MockedResponses.Retry."3-1": ...``).
        """
        if isinstance(source, MockConfig):
            return source
        if isinstance(source, str | Path):
            try:
                text = Path(source).read_text(encoding="utf-8")
            except OSError as exc:
                raise MockConfigError(f"cannot read the mock config {source}: {exc}") from None
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise MockConfigError(f"{source} is not JSON: {exc}") from None
            except RecursionError:
                raise MockConfigError(f"{source} is nested too deeply") from None
            return _parse(data)
        return _parse(source)

    def test_case(self, machine: str, case: str) -> TestCase:
        """The states of ``case`` of state machine ``machine``; MockConfigError if unknown."""
        cases = self.machines.get(machine)
        if cases is None:
            known = ", ".join(sorted(self.machines)) or "none"
            raise MockConfigError(
                f"the mock config has no state machine {machine!r} (StateMachines: {known})"
            )
        found = cases.get(case)
        if found is None:
            known = ", ".join(sorted(cases)) or "none"
            raise MockConfigError(
                f"state machine {machine!r} has no test case {case!r} (TestCases: {known})"
            )
        return found

    def check_states(self, machine: str, case: str, states: Mapping[str, str]) -> None:
        """Refuse a test case naming a state that is not a Task state of the definition.

        ``states`` maps each Task state to its resource (:func:`task_states`). An
        activity's Task is refused too: as in Step Functions Local, mocks answer
        service integrations, and an activity's worker answers its task.
        """
        for state in self.test_case(machine, case):
            path = f"StateMachines.{machine}.TestCases.{case}.{state}"
            if state not in states:
                raise MockConfigError(f"{path}: no Task state {state!r} in the state machine")
            if describe(states[state]).kind == "activity":
                raise MockConfigError(
                    f"{path}: {state!r} runs activity {states[state]}; mocked responses "
                    "answer service integrations only (its worker, or a handler, answers it)"
                )


class MockedTasks:
    """A task invoker answering the mocked states of a test case, in front of ``inner``.

    ``select(body)`` returns the test case of the execution a task message belongs
    to and the key its calls are counted under (None: not mocked). Calls are
    counted per key and state; :attr:`calls` holds the counts (thread-safe).
    """

    def __init__(
        self,
        select: Callable[[dict[str, Any]], tuple[TestCase, str] | None],
        inner: TaskInvoker,
    ) -> None:
        self.select, self.inner = select, inner
        self.calls: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def forget(self, key: str) -> None:
        """Drop the call counts kept under ``key`` (its execution has ended)."""
        with self._lock:
            self.calls = {k: n for k, n in self.calls.items() if k[0] != key}

    def __call__(self, body: dict[str, Any]) -> TaskOutcome:
        """Answer a mocked state from its response; anything else goes to ``inner``."""
        state = str(body.get("state_name", ""))
        chosen = None if body.get("op") is not None else self.select(body)
        if chosen is None or state not in chosen[0]:
            return self.inner(body)
        case, key = chosen
        with self._lock:
            number = self.calls.get((key, state), 0)
            self.calls[(key, state)] = number + 1
        response = case[state]
        entry = response.at(number)
        if entry is None:
            return TaskOutcome(
                False,
                error=StatesErrorName.RUNTIME.value,
                cause=f"The mocked response {response.name!r} of state {state!r} has no "
                f"entry for call {number} (calls are counted from 0).",
                final=True,
            )
        return entry.outcome()


def _parse(data: Any) -> MockConfig:
    top = _object(data, "the mock config")
    _only(top, {"StateMachines", "MockedResponses"}, "")
    responses = {
        name: _response(name, value)
        for name, value in _object(top.get("MockedResponses", {}), "MockedResponses").items()
    }
    machines: dict[str, dict[str, TestCase]] = {}
    for machine, spec in _object(top.get("StateMachines", {}), "StateMachines").items():
        where = f"StateMachines.{machine}"
        body = _object(spec, where)
        _only(body, {"TestCases"}, where + ".")
        cases: dict[str, TestCase] = {}
        for case, states in _object(body.get("TestCases", {}), where + ".TestCases").items():
            path = f"{where}.TestCases.{case}"
            mapped: dict[str, MockedResponse] = {}
            for state, name in _object(states, path).items():
                if not isinstance(name, str):
                    raise MockConfigError(f"{path}.{state}: must name a mocked response")
                if name not in responses:
                    raise MockConfigError(
                        f"{path}.{state}: no mocked response {name!r} in MockedResponses"
                    )
                mapped[state] = responses[name]
            cases[case] = mapped
        machines[machine] = cases
    return MockConfig(machines, responses)


def _response(name: str, value: Any) -> MockedResponse:
    where = f"MockedResponses.{name}"
    entries: list[tuple[int, int, MockedCall]] = []
    for key, entry in _object(value, where).items():
        path = f'{where}."{key}"'
        match = _COUNT.fullmatch(key) if isinstance(key, str) else None
        if match is None:
            raise MockConfigError(
                f'{path}: a call number must be an integer or an inclusive range, e.g. "0" or "1-2"'
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise MockConfigError(f"{path}: the range ends before it starts")
        for other_first, other_last, _ in entries:
            if first <= other_last and other_first <= last:
                raise MockConfigError(
                    f"{path}: overlaps calls {other_first}-{other_last} given already"
                )
        entries.append((first, last, _call(entry, path)))
    if not entries:
        raise MockConfigError(f'{where}: give at least one response, e.g. under "0"')
    return MockedResponse(name, tuple(sorted(entries, key=lambda e: e[0])))


def _call(entry: Any, path: str) -> MockedCall:
    body = _object(entry, path)
    _only(body, {"Return", "Throw"}, path + ".")
    if ("Return" in body) == ("Throw" in body):
        raise MockConfigError(f"{path}: give exactly one of Return and Throw")
    if "Return" in body:
        return MockedCall(True, body["Return"])
    thrown = _object(body["Throw"], path + ".Throw")
    _only(thrown, {"Error", "Cause"}, path + ".Throw.")
    for name in ("Error", "Cause"):
        if not isinstance(thrown.get(name), str):
            raise MockConfigError(f"{path}.Throw.{name}: must be a string")
    return MockedCall(False, None, thrown["Error"], thrown["Cause"])


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MockConfigError(f"{path}: must be a JSON object, not {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise MockConfigError(f"{path}: the key {key!r} is not a string")
    return value


def _only(body: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    for key in body:
        if key not in allowed:
            raise MockConfigError(
                f"{prefix}{key}: unknown field (expected {', '.join(sorted(allowed))})"
            )


def task_states(machine: Any) -> dict[str, str]:
    """Every Task state of a parsed state machine (nested ones included) -> its resource."""
    from stepflow.asl.states.task import TaskState

    machines = [machine.root, *machine.machines.values()]
    return {
        name: s.resource
        for m in machines
        for name, s in m.states.items()
        if isinstance(s, TaskState)
    }


def root_of(log: Any, execution_arn: str) -> str:
    """The execution ``execution_arn`` belongs to (an iteration's or a Map child's: its root).

    ``log`` is the coordination log (its record's ``parent.root_arn``, if any, names the root).
    """
    record = log.get(execution_arn)
    parent = record.state.get("parent") if record is not None else None
    if isinstance(parent, dict) and parent.get("root_arn"):
        return str(parent["root_arn"]).split("#")[0]
    return execution_arn.split("#")[0]
