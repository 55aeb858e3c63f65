"""Run an execution through the durable runtime: the Stepper, a coordination log, a bus.

Two backends: ``memory`` (in-memory log and bus: fast) and ``moto`` (the
DynamoDB log on moto, in process, with every message delivered through the
real stepper Lambda handler as SQS events). The queue itself is simulated on
the virtual clock in both, so a Wait of a year still returns at once; the SQS
adapter has its own tests against moto.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from stepflow.asl import StateMachine
from stepflow.data.serialize import dumps
from stepflow.engine.codec import decode_state
from stepflow.runtime import CoordinationLog, InMemoryBus, InMemoryLog, Message, Stepper
from stepflow.testing.handlers import Handler, task_invoker
from stepflow.testing.result import ExecutionResult, TransitionLimitError

STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:StateMachine"


def execute_durable(
    machine: StateMachine,
    input: Any,
    *,
    handlers: Mapping[str, Handler],
    name: str,
    on_event: Callable[[dict[str, Any]], None] | None,
    seed: int,
    now: float,
    max_messages: int,
    backend: str = "memory",
) -> ExecutionResult:
    """Drive the execution batch by batch until the bus is empty."""
    if backend == "moto":
        return _on_moto(
            machine,
            input,
            handlers=handlers,
            name=name,
            on_event=on_event,
            seed=seed,
            now=now,
            max_messages=max_messages,
        )
    if backend != "memory":
        raise ValueError(f"unknown durable backend {backend!r} (use 'memory' or 'moto')")
    return _run(
        InMemoryLog(),
        InMemoryBus(now),
        machine,
        input,
        handlers=handlers,
        name=name,
        on_event=on_event,
        seed=seed,
        max_messages=max_messages,
        deliver=None,
    )


def _on_moto(
    machine: StateMachine,
    input: Any,
    *,
    handlers: Mapping[str, Handler],
    name: str,
    on_event: Callable[[dict[str, Any]], None] | None,
    seed: int,
    now: float,
    max_messages: int,
) -> ExecutionResult:
    import os
    from unittest import mock

    from moto import mock_aws

    from stepflow.aws import DynamoDBLog, create_table, stepper_lambda
    from stepflow.aws.clients import client as new_client

    fake_env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "StepFlow",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    context = _LambdaContext()
    with mock.patch.dict(os.environ, fake_env), mock_aws():
        dynamodb = new_client("dynamodb")
        create_table(dynamodb, "stepflow-testing")
        log = DynamoDBLog("stepflow-testing", client=dynamodb)

        def deliver(stepper: Stepper, batch: list[Message]) -> set[int]:
            stepper_lambda.configure(stepper)
            records = [_sqs_record(i, message) for i, message in enumerate(batch)]
            response = stepper_lambda.handler({"Records": records}, context)
            stepper_lambda.metrics.clear_metrics()  # disabled metrics are kept, not printed
            failed = {int(item["itemIdentifier"]) for item in response["batchItemFailures"]}
            return failed

        try:
            return _run(
                log,
                InMemoryBus(now),
                machine,
                input,
                handlers=handlers,
                name=name,
                on_event=on_event,
                seed=seed,
                max_messages=max_messages,
                deliver=deliver,
            )
        finally:
            stepper_lambda.configure(None)


class _LambdaContext:
    function_name = "stepflow-stepper"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:stepflow-stepper"
    aws_request_id = "stepflow-testing"


def _sqs_record(index: int, message: Message) -> dict[str, Any]:
    body = json.dumps(message.to_json())
    return {
        "messageId": str(index),
        "receiptHandle": f"receipt-{index}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:stepflow-transitions",
        "awsRegion": "us-east-1",
    }


def _run(
    log: CoordinationLog,
    bus: InMemoryBus,
    machine: StateMachine,
    input: Any,
    *,
    handlers: Mapping[str, Handler],
    name: str,
    on_event: Callable[[dict[str, Any]], None] | None,
    seed: int,
    max_messages: int,
    deliver: Callable[[Stepper, list[Message]], set[int]] | None,
) -> ExecutionResult:

    stepper = Stepper(
        log=log,
        bus=bus,
        definitions=lambda _arn: machine,
        clock=lambda: bus.now,
        invoker=task_invoker(handlers),
    )
    record = stepper.start_execution(
        state_machine_arn=STATE_MACHINE_ARN, name=name, input=input, seed=seed
    )
    handled = 0
    while batch := bus.receive_batch(10):
        handled += len(batch)
        if handled > max_messages:
            raise TransitionLimitError(f"the execution needed more than {max_messages} messages")
        if deliver is None:
            failed = {id(message) for message, _ in stepper.handle_batch(batch)}
        else:
            failed = {id(batch[i]) for i in deliver(stepper, batch)}
        for message in batch:
            if id(message) not in failed:
                bus.ack(message)
    final = log.get(record.execution_arn)
    assert final is not None
    history: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = log.history(record.execution_arn, next_token=token)
        history.extend(page.events)
        if page.next_token is None:
            break
        token = page.next_token
    if on_event is not None:
        for event in history:
            on_event(event)
    state = decode_state(final.state)
    return ExecutionResult(
        status=state.status,
        output=dumps(state.output) if state.status == "SUCCEEDED" else None,
        error=state.error,
        cause=state.cause,
        history=history,
    )
