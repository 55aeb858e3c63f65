"""A forged internal message, sent with plain boto3 to ``stepflow local``'s queues, does nothing.

The attack of issue 12: whoever can put a message on the transition queue
(here: a boto3 ``sqs.send_message``, as a workflow's ``sqs:sendMessage``
integration or a principal with ``sqs:SendMessage`` could) sends the exact
message the stepper would send to complete another execution's activity task,
only without the stack's key. The stack must drop it: the execution stays
RUNNING with its task open, and the real worker then completes it once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.engine import TaskSucceeded
from stepflow.local import LocalStack
from stepflow.runtime import Message, encode_event
from stepflow.runtime.signing import MessageSigner

from tests.e2e.test_local_stack import ROLE
from tests.e2e.waiting import wait_for

ATTACKER_OUTPUT = {"paid": True, "by": "attacker"}
WORKER_OUTPUT = {"paid": False, "by": "worker"}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(port=0, handlers={}) as running:
        yield running


def queue_depth(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(found[name]) for name in names)


def peek_task(sqs: Any, activity: str) -> dict[str, Any]:
    """The task message waiting on ``activity``'s queue, left in place."""
    url = sqs.get_queue_url(QueueName=f"stepflow-tq-{activity}")["QueueUrl"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0).get("Messages", [])
        if found:
            body: dict[str, Any] = json.loads(found[0]["Body"])
            return body
    raise AssertionError("no task message on the activity queue")


def test_a_forged_completion_on_the_transition_queue_completes_nothing(stack: LocalStack) -> None:
    sfn, sqs = stack.stepfunctions(), stack.client("sqs")
    transitions = sqs.get_queue_url(QueueName="stepflow-transitions")["QueueUrl"]
    dead = sqs.get_queue_url(QueueName="stepflow-transitions-dlq")["QueueUrl"]
    # GIVEN execution A waiting on an activity task
    activity = sfn.create_activity(name="forged-payments")["activityArn"]
    definition = {
        "StartAt": "Pay",
        "States": {"Pay": {"Type": "Task", "Resource": activity, "End": True}},
    }
    machine = sfn.create_state_machine(
        name="forged-pay", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, input='{"order": 1}')["executionArn"]
    task = peek_task(sqs, "forged-payments")
    assert task["execution_arn"] == execution  # the attacker learned A's task id
    task_id = task["body"]["task_id"]
    # WHEN the attacker sends, with plain boto3, the message that would complete A's task:
    # built as the stepper builds it, unsigned, then signed with a key of its own
    forged = Message(
        execution,
        f"{task['id']}#result",
        "event",
        encode_event(TaskSucceeded(task_id, ATTACKER_OUTPUT)),
    )
    bodies = [forged.to_json(), MessageSigner.random().sign(forged)]
    stolen = dict(task)  # and a genuine signature of another message, moved onto this body
    stolen.update({k: v for k, v in forged.to_json().items()})
    bodies.append(stolen)
    for body in bodies:
        sqs.send_message(QueueUrl=transitions, MessageBody=json.dumps(body))
    # THEN the stepper consumes and drops them: not retried, not dead-lettered
    deadline = time.monotonic() + 30
    while queue_depth(sqs, transitions) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert queue_depth(sqs, transitions) == 0 and queue_depth(sqs, dead) == 0
    # AND A is still RUNNING, its task open: no result in its history
    assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
    events = sfn.get_execution_history(executionArn=execution)["events"]
    assert not [e for e in events if e["type"] in ("ActivitySucceeded", "ExecutionSucceeded")]
    # WHEN the real worker takes the task and completes it
    handed = sfn.get_activity_task(activityArn=activity, workerName="worker")
    assert json.loads(handed["input"]) == {"order": 1}
    sfn.send_task_success(taskToken=handed["taskToken"], output=json.dumps(WORKER_OUTPUT))
    # THEN A succeeds once, with the worker's output, not the attacker's
    described = wait_for(sfn, execution)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == WORKER_OUTPUT
    events = sfn.get_execution_history(executionArn=execution)["events"]
    assert [e["type"] for e in events].count("ActivitySucceeded") == 1


def test_a_forged_task_on_an_activity_queue_is_never_handed_out(stack: LocalStack) -> None:
    sfn, sqs = stack.stepfunctions(), stack.client("sqs")
    # GIVEN execution B waiting on its activity task, and the attacker's own activity
    victim = sfn.create_activity(name="forged-victim")["activityArn"]
    mine = sfn.create_activity(name="forged-mine")["activityArn"]
    definition = {
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": victim, "End": True}},
    }
    machine = sfn.create_state_machine(
        name="forged-victim", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    task = peek_task(sqs, "forged-victim")
    # WHEN the attacker copies B's task message, unsigned, onto its own activity's queue,
    # followed by a genuine task of its own
    my_queue = sqs.get_queue_url(QueueName="stepflow-tq-forged-mine")["QueueUrl"]
    copied = {k: v for k, v in task.items() if k not in ("key_id", "signature")}
    sqs.send_message(QueueUrl=my_queue, MessageBody=json.dumps(copied))
    own = {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": mine, "End": True}}}
    own_machine = sfn.create_state_machine(
        name="forged-mine", definition=json.dumps(own), roleArn=ROLE
    )["stateMachineArn"]
    own_execution = sfn.start_execution(stateMachineArn=own_machine, input='{"mine": 1}')
    # THEN polling its activity hands out only its own task: the copy is dropped, not handed out
    handed = sfn.get_activity_task(activityArn=mine, workerName="attacker")
    assert json.loads(handed["input"]) == {"mine": 1}
    sfn.send_task_success(taskToken=handed["taskToken"], output="{}")
    assert wait_for(sfn, own_execution["executionArn"])["status"] == "SUCCEEDED"
    assert queue_depth(sqs, my_queue) == 0
    # AND B's task goes to B's worker, whose answer completes B
    handed = sfn.get_activity_task(activityArn=victim, workerName="worker")
    sfn.send_task_success(taskToken=handed["taskToken"], output='{"ok": true}')
    assert wait_for(sfn, execution)["status"] == "SUCCEEDED"
