"""Effects that may have happened although they failed: ``compensation_unknown`` undoes them.

A charge whose handler returned an unusable result went through; one whose call timed
out after the request was sent may have. Both are recorded as failures (the cell sees
the same ``EffectFailure``), with ``performed`` yes or unknown, and the effect's
``compensation_unknown()`` is registered in the saga, so compensate refunds them. Every
test counts the bank's calls, so it can tell once from twice.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import httpx
import pytest
from pydantic import BaseModel
from stepflow.cells import (
    Cell,
    CellContext,
    CellModules,
    CellRegistry,
    EffectCall,
    EffectHandlers,
    OutcomeUnknown,
)
from stepflow.cells.builtin import HttpRequest
from stepflow.cells.effects import Effect
from stepflow.cells.handlers import EffectFailure, HandlerError
from stepflow.cells.journal import EffectRecord, LogJournal
from stepflow.cells.policy import NO_RETRY, EffectTimeout, Policy
from stepflow.cells.runner import CellRuntime
from stepflow.cells.saga_log import SagaEntry, SagaLog, saga_partition
from stepflow.integrations.effect_handlers import _failure
from stepflow.integrations.effect_http import EffectHttp
from stepflow.runtime.memory import InMemoryLog
from stepflow.runtime.outcome import TaskOutcome
from stepflow.testing import execute, open_environment

from tests.unit.cells.saga_support import COMPENSATE, Charge, Crash, Done, task_outputs

ARN = "arn:aws:states:us-east-1:123456789012:execution:m:e1"


class Refund(Effect[Done]):
    """Refunds the order's charge; finds none to refund: succeeds (nothing to undo)."""

    kind: Literal["refund"] = "refund"
    order: str


class Pay(Effect[Charge]):
    kind: Literal["pay"] = "pay"
    order: str
    amount: int

    def compensation(self, result: Charge) -> Effect[Any] | None:
        return Refund(order=self.order)

    def compensation_unknown(self) -> Effect[Any] | None:
        return Refund(order=self.order)


class PayPlain(Effect[Charge]):
    """A charge that names a compensation for a success only (as before)."""

    kind: Literal["plain"] = "plain"
    order: str
    amount: int

    def compensation(self, result: Charge) -> Effect[Any] | None:
        return Refund(order=self.order)


class Authorize(Effect[Charge]):
    """Names a compensation for an unknown outcome only."""

    kind: Literal["authorize"] = "authorize"
    order: str
    amount: int

    def compensation_unknown(self) -> Effect[Any] | None:
        return Refund(order=self.order)


class Ping(Effect[Done]):
    kind: Literal["ping"] = "ping"


class Order(BaseModel):
    order: str = "o-1"
    amount: int = 30


class Paid(BaseModel):
    charge_id: str


class Declined(BaseModel):
    why: str


class PayCell(Cell[Order, Paid, Declined, Pay | Ping]):
    name = "pay"
    version = "1.0.0"

    def run(self, ctx: CellContext[Pay | Ping], data: Order) -> Paid:
        return Paid(charge_id=ctx.effect(Pay(order=data.order, amount=data.amount)).charge_id)


class PayPlainCell(Cell[Order, Paid, Declined, PayPlain]):
    name = "pay-plain"
    version = "1.0.0"

    def run(self, ctx: CellContext[PayPlain], data: Order) -> Paid:
        return Paid(charge_id=ctx.effect(PayPlain(order=data.order, amount=data.amount)).charge_id)


class AuthorizeCell(Cell[Order, Paid, Declined, Authorize]):
    name = "authorize"
    version = "1.0.0"

    def run(self, ctx: CellContext[Authorize], data: Order) -> Paid:
        return Paid(charge_id=ctx.effect(Authorize(order=data.order, amount=data.amount)).charge_id)


class PayThenPing(Cell[Order, Paid, Declined, Pay | Ping]):
    """Catches the charge's failure, then pings (the ping may crash the process)."""

    name = "pay-then-ping"
    version = "1.0.0"

    def run(self, ctx: CellContext[Pay | Ping], data: Order) -> Paid:
        try:
            ctx.effect(Pay(order=data.order, amount=data.amount))
        except EffectFailure as failure:
            assert failure.error == "StepFlow.Cell.InvalidEffectResult"
        ctx.effect(Ping())
        return Paid(charge_id="none")


class Bank:
    """A card processor: ``mode`` says how a charge ends; every call counted."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.charges: list[str] = []
        self.refunds: list[str] = []
        self.attempts = 0
        self.crashes = 0

    def pay(self, effect: Pay | PayPlain | Authorize, call: EffectCall) -> Any:
        self.attempts += 1
        if self.mode == "declined":  # refused before anything happened
            raise HandlerError("CardDeclined", "insufficient funds")
        if self.mode == "not-sent":
            raise EffectTimeout("no connection to the processor", performed="no")
        self.charges.append(effect.order)  # the money moved
        if self.mode == "invalid":
            return {"charge_id": 12345}  # not a str: the result is unusable
        if self.mode == "timeout":
            raise EffectTimeout("no answer in 10 s")
        if self.mode == "unknown":
            raise OutcomeUnknown("the connection dropped after the request was sent")
        if self.mode == "python-timeout":
            raise TimeoutError("read timed out")
        return Charge(charge_id=f"c-{effect.order}")

    def refund(self, effect: Refund, call: EffectCall) -> Done:
        self.refunds.append(effect.order)  # tolerates a charge that never happened
        return Done()

    def ping(self, effect: Ping, call: EffectCall) -> Done:
        if self.crashes > 0:
            self.crashes -= 1
            raise Crash
        return Done()

    def modules(self, policy: Policy = NO_RETRY) -> CellModules:
        modules = CellModules(CellRegistry(), EffectHandlers())
        for cell in (PayCell, PayPlainCell, PayThenPing, AuthorizeCell):
            modules.cells.register(cell)
        modules.handlers.register(Pay, self.pay, policy)
        modules.handlers.register(PayPlain, self.pay, policy)
        modules.handlers.register(Authorize, self.pay, policy)
        modules.handlers.register(Refund, self.refund, NO_RETRY)
        modules.handlers.register(Ping, self.ping, NO_RETRY)
        return modules


def saga(cell: str = "pay", compensations: int = 2) -> dict[str, Any]:
    """Run ``cell``; its failure is caught and compensated ``compensations`` times."""
    states: dict[str, Any] = {
        "Pay": {
            "Type": "Task",
            "Resource": f"arn:aws:states:::stepflow:cell:{cell}:1",
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Undo1"}],
            "Next": "Paid",
        },
        "Paid": {"Type": "Succeed"},
        "Failed": {"Type": "Fail", "Error": "PaymentFailed", "Cause": "compensated"},
    }
    for n in range(1, compensations + 1):
        states[f"Undo{n}"] = {
            "Type": "Task",
            "Resource": COMPENSATE,
            "ResultPath": f"$.undo{n}",
            "Next": f"Undo{n + 1}" if n < compensations else "Failed",
        }
    return {"StartAt": "Pay", "States": states}


def failed_effect(history: list[dict[str, Any]]) -> dict[str, Any]:
    (event,) = [e for e in history if e["type"] == "StepFlowEffectFailed"]
    details: dict[str, Any] = event["stepFlowEffectEventDetails"]
    return details


def caught_error(history: list[dict[str, Any]]) -> str:
    (event,) = [e for e in history if e["type"] == "TaskFailed"]
    return str(event["taskFailedEventDetails"]["error"])


def test_an_invalid_result_is_refunded_by_compensate_exactly_once() -> None:
    bank = Bank("invalid")
    result = execute(saga(), {}, cells=bank.modules())
    assert result.status == "FAILED" and result.error == "PaymentFailed", result.cause
    assert caught_error(result.history) == "StepFlow.Cell.InvalidEffectResult"
    assert bank.charges == ["o-1"] and bank.refunds == ["o-1"]
    (first,) = task_outputs(result.history, "Undo1")
    assert first == {"compensated": [{"cell": "pay@1.0.0", "attempt": "t1", "effects": 1}]}
    assert task_outputs(result.history, "Undo2") == [{"compensated": []}]
    details = failed_effect(result.history)
    assert details["outcome"] == "performed" and details["compensation"] == "Refund"


@pytest.mark.parametrize("mode", ["timeout", "unknown", "python-timeout"])
def test_a_failure_after_the_request_was_sent_registers_compensation_unknown(mode: str) -> None:
    bank = Bank(mode)
    result = execute(saga(), {}, cells=bank.modules())
    assert result.status == "FAILED", result.cause
    assert bank.charges == ["o-1"] and bank.refunds == ["o-1"]
    assert failed_effect(result.history)["outcome"] == "unknown"


@pytest.mark.parametrize("mode", ["declined", "not-sent"])
def test_a_refusal_before_sending_registers_nothing(mode: str) -> None:
    bank = Bank(mode)
    result = execute(saga(), {}, cells=bank.modules())
    assert result.status == "FAILED", result.cause
    assert bank.charges == [] and bank.refunds == []
    assert task_outputs(result.history, "Undo1") == [{"compensated": []}]
    assert "outcome" not in failed_effect(result.history)


def test_an_unknown_call_followed_by_a_refused_retry_stays_unknown() -> None:
    """The first call may have charged: the second one's refusal does not say it did not."""
    bank = Bank("timeout")
    modules = bank.modules(Policy(attempts=2, jitter=0, breaker_failures=0, sleep=lambda _: None))
    original = bank.pay

    def pay(effect: Pay | PayPlain | Authorize, call: EffectCall) -> Any:
        if bank.attempts == 1:
            bank.mode = "declined"
        return original(effect, call)

    modules.handlers.register(Pay, pay, modules.handlers.guard(Pay).policy)  # type: ignore[union-attr]
    result = execute(saga(), {}, cells=modules)
    assert bank.attempts == 2 and caught_error(result.history) == "CardDeclined"
    assert bank.refunds == ["o-1"]
    assert failed_effect(result.history)["outcome"] == "unknown"


def test_an_effect_without_compensation_unknown_behaves_as_before() -> None:
    bank = Bank("invalid")
    result = execute(saga("pay-plain"), {}, cells=bank.modules())
    assert result.status == "FAILED", result.cause
    assert bank.charges == ["o-1"] and bank.refunds == []
    assert task_outputs(result.history, "Undo1") == [{"compensated": []}]
    details = failed_effect(result.history)
    assert details["outcome"] == "performed" and "compensation" not in details


def test_a_success_still_registers_compensation_with_its_result() -> None:
    bank = Bank("ok")
    result = execute(saga(), {}, cells=bank.modules())
    assert result.status == "SUCCEEDED" and bank.refunds == []


def body(resource: str, task_id: str) -> dict[str, Any]:
    return {
        "resource": resource,
        "execution_arn": ARN,
        "state_name": "Pay",
        "task_id": task_id,
        "input": {"order": "o-9", "amount": 5},
    }


def test_a_replay_after_a_crash_registers_the_compensation_once() -> None:
    bank = Bank("invalid")
    bank.crashes = 1
    modules = bank.modules()
    log = InMemoryLog()
    runtime = CellRuntime(modules.cells, modules.handlers, LogJournal(log))
    task = body("arn:aws:states:::stepflow:cell:pay-then-ping:1", "t1")
    with pytest.raises(Crash):  # recorded and registered, then the process died
        runtime(task)
    outcome = runtime(task)  # the same attempt again: the charge is replayed
    assert outcome.ok, outcome.cause
    assert bank.attempts == 1 and bank.charges == ["o-9"]
    assert [e["replayed"] for e in outcome.effects] == [True, False]
    assert outcome.effects[0]["outcome"] == "performed"
    undone = runtime(body(COMPENSATE, "c1"))
    assert undone.output == {
        "compensated": [{"cell": "pay-then-ping@1.0.0", "attempt": "t1", "effects": 1}]
    }
    assert runtime(body(COMPENSATE, "c2")).output == {"compensated": []}
    assert bank.refunds == ["o-9"]


def test_room_is_checked_before_an_effect_that_names_only_compensation_unknown() -> None:
    bank = Bank("timeout")
    modules = bank.modules()
    log = InMemoryLog()
    full = [SagaEntry("effect", "c@1", f"t{i}", "S", type="x", request={}) for i in range(1000)]
    SagaLog(log, ARN, saga_partition("t1")).add(full)
    runtime = CellRuntime(modules.cells, modules.handlers, LogJournal(log))
    outcome = runtime(body("arn:aws:states:::stepflow:cell:authorize:1", "t1"))
    assert not outcome.ok and outcome.error == "StepFlow.Saga.LimitExceeded", outcome.cause
    assert bank.attempts == 0


def test_on_moto_an_invalid_result_is_refunded_once() -> None:
    bank = Bank("invalid")
    with open_environment("moto", cells=bank.modules()) as env:
        arn = env.start(saga(), {})
        env.run(arn)
        result = env.result(arn)
    assert result.status == "FAILED" and result.error == "PaymentFailed", result.cause
    assert bank.charges == ["o-1"] and bank.refunds == ["o-1"]
    assert failed_effect(result.history)["outcome"] == "performed"
    assert task_outputs(result.history, "Undo2") == [{"compensated": []}]


def test_records_without_performed_read_as_not_performed() -> None:
    old = {"effect": "Pay", "digest": "d", "ok": False, "error": "E", "cause": "c"}
    record = EffectRecord.from_json(old)
    assert record.performed == "no" and not record.may_have_happened
    assert record.to_json() == old  # a refusal is stored as before
    unknown = EffectRecord("Pay", "d", False, None, "E", "c", "unknown")
    assert EffectRecord.from_json(unknown.to_json()) == unknown


def _http_failure(answer: Any) -> EffectFailure:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, text="no")

    handlers = EffectHandlers()
    handlers.register(HttpRequest, EffectHttp(transport=httpx.MockTransport(handler)), NO_RETRY)
    from stepflow.cells.effects import IdempotencyKey

    call = EffectCall(IdempotencyKey(ARN, "S", "t1", 0))
    with pytest.raises(EffectFailure) as failed:
        handlers.perform(HttpRequest(method="POST", url="http://example.com/charge"), call)
    return failed.value


@pytest.mark.parametrize(
    ("answer", "performed"),
    [
        (httpx.ConnectError("refused"), "no"),
        (httpx.ConnectTimeout("slow"), "no"),
        (httpx.ReadTimeout("slow"), "unknown"),
        (httpx.RemoteProtocolError("dropped"), "unknown"),
        (404, "no"),
        (503, "unknown"),
    ],
)
def test_the_http_handler_knows_whether_the_request_was_sent(answer: Any, performed: str) -> None:
    assert _http_failure(answer).performed == performed


@pytest.mark.parametrize(
    ("error", "performed"),
    [
        ("DynamoDB.ConditionalCheckFailedException", "no"),
        ("DynamoDB.ThrottlingException", "no"),
        ("DynamoDB.ValidationException", "no"),
        ("DynamoDB.InternalServerError", "unknown"),
        ("SQS.SdkClientException", "unknown"),
    ],
)
def test_the_aws_handler_knows_whether_the_request_may_have_happened(
    error: str, performed: str
) -> None:
    failure = _failure(TaskOutcome.failed(error, "cause"), repeatable=False)
    assert getattr(failure, "performed") == performed  # noqa: B009
    assert json.dumps(performed)
