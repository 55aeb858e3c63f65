"""The built-in hooks over a durable execution on moto: facts read from the log's head,
metrics written as CloudWatch EMF by Powertools."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stepflow.asl import parse
from stepflow.hooks import ExecutionInfo, hook_events
from stepflow.hooks.metrics import MemorySink, MetricsHook
from stepflow.hooks.support import epoch_seconds

pytest.importorskip("moto")

from stepflow.aws.hooks_wiring import PowertoolsSink, hooks_from_settings, log_facts
from stepflow.testing.durable import moto_environment

DEFINITION = {
    "StartAt": "Hold",
    "States": {
        "Hold": {"Type": "Wait", "Seconds": 3, "Next": "Done"},
        "Done": {"Type": "Pass", "End": True},
    },
}


def test_an_end_alone_is_timed_from_the_log_head_and_written_as_emf(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with moto_environment() as env:
        arn = env.start(parse(DEFINITION), {"order": 1}, name="o1")
        env.run(arn)
        history = env.log.history(arn).events
        record = env.log.get(arn)
        assert record is not None
        info = ExecutionInfo(arn, record.state_machine_arn, "o1")
        events = list(hook_events(info, history))
        facts = log_facts(env.log)
        # GIVEN a batch holding only the execution's end (its start committed long before)
        sink = MemorySink()
        MetricsHook(sink, facts=facts).handle(events[-1:])
        # THEN the duration runs from the head's start to the end event's timestamp
        [duration] = sink.named("ExecutionTime")
        end = epoch_seconds(history[-1]["timestamp"])
        start = epoch_seconds(history[0]["timestamp"])
        assert end is not None and start is not None
        assert duration.value == pytest.approx((end - start) * 1000, abs=1)
        assert duration.value >= 3000
        known = facts(arn)
        assert known is not None and json.loads(known.input or "") == {"order": 1}
    # AND Powertools writes the metrics as EMF documents with their dimensions
    capsys.readouterr()
    PowertoolsSink("StepFlowTest").emit(duration)
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    emf: dict[str, Any] = printed[-1]
    assert emf["ExecutionTime"] == [duration.value] or emf["ExecutionTime"] == duration.value
    assert emf["ExecutionType"] == "STANDARD"
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "StepFlowTest"
    assert directive["Metrics"][0]["Unit"] == "Milliseconds"
    assert "StateMachine" in directive["Dimensions"][0]


def test_eventbridge_from_settings_reads_the_start_from_the_table() -> None:
    from stepflow.aws.clients import client

    with moto_environment() as env:
        arn = env.start(parse(DEFINITION), {"order": 2}, name="o2")
        env.run(arn)
        history = env.log.history(arn).events
        record = env.log.get(arn)
        assert record is not None
        events_client = client("events")
        sqs = client("sqs")
        queue = sqs.create_queue(QueueName="status")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events_client.put_rule(Name="r", EventPattern=json.dumps({"source": ["stepflow.states"]}))
        events_client.put_targets(Rule="r", Targets=[{"Id": "q", "Arn": queue_arn}])
        settings = {"STEPFLOW_HOOKS": "eventbridge", "TABLE_NAME": env.log.table}
        [hook] = hooks_from_settings(
            settings, {"dynamodb": client("dynamodb"), "events": events_client}
        )
        info = ExecutionInfo(arn, record.state_machine_arn, "o2")
        # GIVEN a batch holding only the end: startDate and input come from the head
        hook.handle(list(hook_events(info, history))[-1:])
        [message] = sqs.receive_message(QueueUrl=queue)["Messages"]
        detail = json.loads(message["Body"])["detail"]
        start = epoch_seconds(history[0]["timestamp"])
        assert start is not None
        assert detail["status"] == "SUCCEEDED"
        assert detail["startDate"] == round(start * 1000)
        assert json.loads(detail["input"]) == {"order": 2}
        assert json.loads(detail["output"]) == {"order": 2}
        assert detail["stopDate"] - detail["startDate"] >= 3000
