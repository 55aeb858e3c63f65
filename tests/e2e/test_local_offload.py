"""End to end through ``stepflow local``: an inline Map of 41 items over a 210 KB input
with SQS's real size limit. Its first message (the map run's, ~425 KB) is over 256 KiB:
it goes through the payload bucket, and every item runs exactly once.

moto takes messages up to 1 MiB; the stack's SQS client here refuses one over 256 KiB as
SQS does (:mod:`tests.sqs_limit`): before the offload, the execution stayed RUNNING.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest
from stepflow.aws.topology import MESSAGE_PREFIX
from stepflow.local import LocalStack
from stepflow.local.stack import BUCKET

from tests.e2e.counting import FN, ROLE, calls, work
from tests.e2e.waiting import wait_for
from tests.sqs_limit import Refusals, refuse_oversize


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[LocalStack, Refusals]]:
    with LocalStack(port=0, handlers={"work": work}) as running:
        assert running.wiring is not None
        yield running, refuse_oversize(running.wiring.client("sqs"))


def _definition(tag: str) -> dict[str, object]:
    return {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {
                    "i.$": "$$.Map.Item.Index",
                    "tag": tag,
                    "size.$": "States.ArrayLength($.blob)",
                },
                "ItemProcessor": {
                    "StartAt": "Work",
                    "States": {
                        "Work": {
                            "Type": "Task",
                            "Resource": FN + "work",
                            "Parameters": {"i.$": "$.i", "tag.$": "$.tag", "size.$": "$.size"},
                            "End": True,
                        }
                    },
                },
                "End": True,
            }
        },
    }


def test_an_inline_map_over_a_210_kb_input_succeeds_through_the_payload_store(
    stack: tuple[LocalStack, Refusals],
) -> None:
    local, refused = stack
    assert local.wiring is not None
    buses = [local.wiring.bus, local.wiring.tasks_bus]
    before = sum(getattr(bus, "offloaded", 0) for bus in buses)
    sfn, s3 = local.stepfunctions(), local.wiring.client("s3")
    tag, count = "offload", 41
    arn = sfn.create_state_machine(
        name="Offload", definition=json.dumps(_definition(tag)), roleArn=ROLE
    )["stateMachineArn"]
    blob = ["x" * 1000] * 210  # 210 KB
    payload = json.dumps({"items": [{"n": i} for i in range(count)], "blob": blob})
    assert len(payload) > 210_000
    execution = sfn.start_execution(stateMachineArn=arn, input=payload)["executionArn"]
    described = wait_for(sfn, execution, timeout=60)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == [{"i": i, "sq": i * i} for i in range(count)]
    # each handler called exactly once
    assert calls(tag) == Counter(range(count))
    # nothing was refused: the over-limit message went through the bucket
    assert len(refused) == 0
    offloads = sum(getattr(bus, "offloaded", 0) for bus in buses) - before
    stored = s3.list_objects_v2(Bucket=BUCKET, Prefix=MESSAGE_PREFIX).get("Contents", [])
    assert offloads >= 1 and len(stored) >= 1
    assert all(o["Size"] > 262_144 for o in stored)
    print(f"offloads: {offloads}, stored bodies: {len(stored)}")
