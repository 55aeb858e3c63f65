"""An execution keeps the cell version it started with: across deploys, redrives and races."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pydantic import BaseModel
from stepflow.cells import Cell, CellContext, CellModules, CellRegistry, EffectHandlers
from stepflow.cells.registry import CellNotFoundError
from stepflow.cells.versions import VersionPins, pin_id, resolve_for_execution
from stepflow.runtime import InMemoryLog
from stepflow.runtime.leases import TaskLease
from stepflow.testing import open_environment

START = 1_700_000_000.0
FLAKY = "arn:aws:lambda:us-east-1:123456789012:function:flaky"
CELL = "arn:aws:states:::stepflow:cell:greet"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:m:e"


class Hello(BaseModel):
    who: str


class Greeting(BaseModel):
    text: str
    version: str


class Nope(BaseModel):
    why: str


RAN: list[tuple[str, str]] = []
"""The execution and version of each greet run, in order (cleared by the fixture)."""


def ran(execution_arn: str | None = None) -> list[str]:
    """The versions run (by ``execution_arn``, or by all executions)."""
    return [v for arn, v in RAN if execution_arn in (None, arn)]


@pytest.fixture(autouse=True)
def _clear() -> None:
    RAN.clear()


class GreetV1(Cell[Hello, Greeting, Nope, Any]):
    name = "greet"
    version = "1.0.0"

    def run(self, ctx: CellContext[Any], data: Hello) -> Greeting:
        RAN.append((ctx.execution_arn, self.version))
        return Greeting(text=f"hello {data.who}", version=self.version)


class GreetV11(GreetV1):
    version = "1.1.0"


class GreetV12(GreetV1):
    version = "1.2.0"


class GreetV2(GreetV1):
    version = "2.0.0"


class CountingLeases:
    """A lease log that counts the pin writes tried (landed or not)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.pin_writes: list[str] = []

    def lease(self, execution_arn: str, task_id: str) -> TaskLease | None:
        return self.inner.lease(execution_arn, task_id)  # type: ignore[no-any-return]

    def put_lease(self, lease: TaskLease) -> None:
        if lease.task_id.startswith("cellver#"):
            self.pin_writes.append(lease.task_id)
        self.inner.put_lease(lease)


def _modules(*cells: type[Cell[Any, Any, Any, Any]]) -> CellModules:
    modules = CellModules(CellRegistry(), EffectHandlers())
    for cell in cells:
        modules.cells.register(cell)
    return modules


def _task(resource: str, then: str | None) -> dict[str, Any]:
    state: dict[str, Any] = {"Type": "Task", "Resource": resource}
    return {**state, "Next": then} if then else {**state, "End": True}


# Greet, wait an hour (a deploy happens), greet three times more (a loop's worth), fail once
# in Flaky (a redrive follows), greet again.
MACHINE: dict[str, Any] = {
    "StartAt": "First",
    "States": {
        "First": {**_task(CELL, "Pause"), "ResultPath": "$.first"},
        "Pause": {"Type": "Wait", "Seconds": 3600, "Next": "Second"},
        "Second": {**_task(CELL, "Third"), "ResultPath": "$.second"},
        "Third": {**_task(CELL, "Fourth"), "ResultPath": "$.third"},
        "Fourth": {**_task(CELL, "Flaky"), "ResultPath": "$.fourth"},
        "Flaky": {**_task(FLAKY, "Last"), "ResultPath": None},
        "Last": _task(CELL, None),
    },
}


@pytest.mark.parametrize("durable", ["memory", "moto"])
def test_an_execution_keeps_its_version_across_a_deploy_and_a_redrive(durable: str) -> None:
    flaky_calls: list[str] = []

    def flaky(data: Any) -> None:
        flaky_calls.append(data["who"])
        if flaky_calls.count("ada") == 1 and data["who"] == "ada":
            raise RuntimeError("the first call fails")

    modules = _modules(GreetV1)
    with open_environment(
        durable, start_time=START, cells=modules, handlers={"flaky": flaky}
    ) as env:
        counted = CountingLeases(env.log)
        assert env.cell_runtime.pins is not None
        env.cell_runtime.pins.log = counted
        arn = env.start(MACHINE, {"who": "ada"}, name="kept")
        env.run_until_idle()  # First ran; the execution waits
        assert ran() == ["1.0.0"] and env.describe(arn)["status"] == "RUNNING"

        modules.cells.register(GreetV11)  # a deploy, mid-execution
        other = env.start(MACHINE, {"who": "bob"}, name="later")
        env.run_until_idle()
        assert ran(other) == ["1.1.0"]  # an execution started now takes the latest

        env.run(arn)
        assert env.describe(arn)["status"] == "FAILED"  # Flaky failed once
        assert ran(arn) == ["1.0.0"] * 4

        modules.cells.register(GreetV12)  # another deploy, then a redrive in a new process
        env.cell_runtime.pins = VersionPins(counted)
        env.api.call("RedriveExecution", {"executionArn": arn})
        env.run(arn)
        result = env.result(arn)
        assert result.status == "SUCCEEDED", result.cause
        assert ran(arn) == ["1.0.0"] * 5
        env.run(other)
        assert ran(other) == ["1.1.0"] * 5
        assert result.output is not None and '"version":"1.0.0"' in result.output
        # One pin write per execution (none for the later ones, none after the redrive).
        assert counted.pin_writes == ["cellver#greet", "cellver#greet"]
        for execution, version in ((arn, "1.0.0"), (other, "1.1.0")):
            stored = env.log.lease(execution, "cellver#greet")
            assert stored is not None and stored.version == 1
            assert stored.result == {"version": version}


def test_exact_references_are_never_remapped_and_write_no_pin() -> None:
    modules = _modules(GreetV1, GreetV11, GreetV2)
    machine = {
        "StartAt": "Exact",
        "States": {
            "Exact": {**_task(f"{CELL}:1.0.0", "Major"), "ResultPath": "$.a"},
            "Major": {**_task(f"{CELL}:1", "Latest"), "ResultPath": "$.b"},
            "Latest": {**_task(CELL, "Again"), "ResultPath": "$.c"},
            "Again": {**_task(f"{CELL}:1", None), "ResultPath": "$.d"},
        },
    }
    with open_environment("memory", start_time=START, cells=modules) as env:
        counted = CountingLeases(env.log)
        assert env.cell_runtime.pins is not None
        env.cell_runtime.pins.log = counted
        arn = env.start(machine, {"who": "ada"})
        env.run(arn)
        assert env.describe(arn)["status"] == "SUCCEEDED"
    assert ran() == ["1.0.0", "1.1.0", "2.0.0", "1.1.0"]
    assert sorted(counted.pin_writes) == ["cellver#greet", "cellver#greet#1"]


def test_a_kept_version_that_is_no_longer_registered_fails_naming_it() -> None:
    modules = _modules(GreetV1)
    with open_environment("memory", start_time=START, cells=modules) as env:
        arn = env.start(MACHINE, {"who": "ada"})
        env.run_until_idle()
        modules.cells.register(GreetV11)
        del modules.cells.cells["greet"]["1.0.0"]  # a deploy that dropped 1.0.0
        env.run(arn)
        result = env.result(arn)
    assert result.status == "FAILED" and result.error == "StepFlow.Cell.NotFound"
    assert result.cause is not None and "keeps cell greet@1.0.0" in result.cause
    assert ran() == ["1.0.0"]


def test_racing_first_calls_agree_on_the_version_that_landed_first() -> None:
    log = InMemoryLog()
    old, new = CellRegistry(), CellRegistry()
    old.register(GreetV1)
    new.register(GreetV1)
    new.register(GreetV11)
    pins_old = VersionPins(log)

    class RaceLog:
        """Between the new process's read (no pin) and its write, the old one pins."""

        def lease(self, execution_arn: str, task_id: str) -> TaskLease | None:
            found = log.lease(execution_arn, task_id)
            if found is None:
                resolve_for_execution(old, pins_old, execution_arn, "greet", None)
            return found

        def put_lease(self, lease: TaskLease) -> None:
            log.put_lease(lease)

    pins_new = VersionPins(RaceLog())
    cell = resolve_for_execution(new, pins_new, EXECUTION, "greet", None)
    assert cell is GreetV1  # the one the other process pinned first, not the latest here
    assert (pins_old.writes, pins_new.writes) == (1, 0)
    assert resolve_for_execution(new, pins_new, EXECUTION, "greet", None) is GreetV1


def test_a_pin_is_read_once_per_process_then_cached() -> None:
    log = InMemoryLog()
    cells = CellRegistry()
    cells.register(GreetV1)
    reads: list[str] = []

    class Reads:
        def lease(self, execution_arn: str, task_id: str) -> TaskLease | None:
            reads.append(task_id)
            return log.lease(execution_arn, task_id)

        def put_lease(self, lease: TaskLease) -> None:
            log.put_lease(lease)

    pins = VersionPins(Reads(), cache_size=2)
    for _ in range(50):
        assert resolve_for_execution(cells, pins, EXECUTION, "greet", None) is GreetV1
    assert reads == ["cellver#greet"] and pins.writes == 1
    for i in range(5):  # other executions push it out of a cache of two
        resolve_for_execution(cells, pins, f"{EXECUTION}{i}", "greet", None)
    cells.register(GreetV11)
    assert resolve_for_execution(cells, pins, EXECUTION, "greet", None) is GreetV1
    assert reads.count("cellver#greet") == 7 and pins.writes == 6


def test_unknown_cells_and_bare_calls_pin_nothing() -> None:
    log = InMemoryLog()
    cells = CellRegistry()
    pins = VersionPins(log)
    with pytest.raises(CellNotFoundError, match="No cell greet"):
        resolve_for_execution(cells, pins, EXECUTION, "greet", None)
    cells.register(GreetV1)
    assert resolve_for_execution(cells, pins, "", "greet", None) is GreetV1
    assert pins.writes == 0 and log.lease(EXECUTION, pin_id("greet", None)) is None


class DeployingGreet(GreetV1):
    """Greets, and the first greeting "deploys" 1.1.0 (a deploy in the middle of a Map)."""

    registry: CellRegistry | None = None

    def run(self, ctx: CellContext[Any], data: Hello) -> Greeting:
        if self.registry is not None and "1.1.0" not in self.registry.cells["greet"]:
            self.registry.register(GreetV11)
        return super().run(ctx, data)


@pytest.mark.parametrize(
    ("child_limit", "mode"),
    [(None, "INLINE"), (2, "INLINE"), (None, "STANDARD"), (None, "EXPRESS")],
)
def test_map_iterations_keep_their_executions_version(child_limit: int | None, mode: str) -> None:
    modules = _modules(DeployingGreet)
    DeployingGreet.registry = modules.cells
    processor: dict[str, Any] = {}
    if mode != "INLINE":
        processor = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": mode}}
    machine = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.people",
                "MaxConcurrency": 1,
                "ItemProcessor": {
                    "StartAt": "Greet",
                    "States": {"Greet": _task(CELL, None)},
                    **processor,
                },
                "End": True,
            }
        },
    }
    people = [{"who": f"p{i}"} for i in range(6)]
    options: dict[str, Any] = {} if child_limit is None else {"child_limit": child_limit}
    with open_environment("memory", start_time=START, cells=modules, **options) as env:
        counted = CountingLeases(env.log)
        assert env.cell_runtime.pins is not None
        env.cell_runtime.pins.log = counted
        arn = env.start(machine, {"people": people})
        env.run(arn)
        assert env.describe(arn)["status"] == "SUCCEEDED"
    assert ran() == ["1.0.0"] * 6  # 1.1.0 arrived after the first iteration
    executions = 1 if child_limit is None and mode != "STANDARD" else 6
    assert len({execution for execution, _ in RAN}) == executions
    assert counted.pin_writes == ["cellver#greet"]


def test_on_dynamodb_the_second_pin_finds_the_first() -> None:
    with open_environment("moto", start_time=START) as env:
        first, second = VersionPins(env.log), VersionPins(env.log)
        assert first.pin(EXECUTION, "cellver#greet", "1.0.0") == "1.0.0"
        assert second.pin(EXECUTION, "cellver#greet", "1.1.0") == "1.0.0"
        assert (first.writes, second.writes) == (1, 0)
        assert VersionPins(env.log).pinned(EXECUTION, "cellver#greet") == "1.0.0"
        stored = env.log.lease(EXECUTION, "cellver#greet")
        assert stored is not None and stored.version == 1 and stored.result == {"version": "1.0.0"}


def test_concurrent_first_calls_write_one_pin_and_run_one_version() -> None:
    log = InMemoryLog()
    old, new = CellRegistry(), CellRegistry()
    old.register(GreetV1)
    for cell in (GreetV1, GreetV11):
        new.register(cell)
    processes = [(VersionPins(log), old if i % 2 else new) for i in range(16)]
    barrier = threading.Barrier(len(processes))
    chosen: list[str] = []

    def first_call(pins: VersionPins, cells: CellRegistry) -> None:
        barrier.wait()
        chosen.append(resolve_for_execution(cells, pins, EXECUTION, "greet", None).version)

    threads = [threading.Thread(target=first_call, args=p) for p in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(chosen) == 16 and len(set(chosen)) == 1
    assert sum(pins.writes for pins, _ in processes) == 1
