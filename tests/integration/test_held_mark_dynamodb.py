"""The "held until" mark on the DynamoDB log (moto): the in-place scenarios, and the repair job.

The scenarios of tests/unit/test_runner_held_mark.py and test_runner_held_keep.py on a
``DynamoDBLog`` (the mark is its commit time there: ``committed_at``), and the outbox
repair job, which skips a head whose tasks a runner holds in place until its mark is
its age old.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from stepflow.aws.topology import COMMITTED_AT
from stepflow.runtime.held_mark import HELD_UNTIL, LONGEST_HOLD, held, held_until

from tests.moto_env import offline_aws
from tests.unit.test_runner_batch import RecordingBus
from tests.unit.test_runner_held_keep import (
    a_flush_that_fails_replaces_nothing,
    a_loop_under_a_live_mark_keeps_the_outbox_bounded,
    an_inline_map_under_a_mark_keeps_only_what_it_carries,
)
from tests.unit.test_runner_held_mark import (
    CHAIN,
    LEFT,
    NOW,
    World,
    a_dead_holders_task_outlives_another_runners_commit,
    a_holder_that_dies_has_its_tasks_resent_after_the_mark,
    a_repair_message_leaves_a_held_outbox_alone,
    another_runners_commit_leaves_a_held_outbox_alone,
)

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

from stepflow.aws import DynamoDBLog, create_table  # noqa: E402
from stepflow.aws.outbox_repair import OutboxRepair  # noqa: E402

TABLE = "stepflow-held"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, TABLE)
        yield client


def _log(client: Any) -> DynamoDBLog:
    return DynamoDBLog(TABLE, client=client, clock=lambda: NOW)


def test_a_repair_message_leaves_a_held_outbox_alone(dynamodb: Any) -> None:
    a_repair_message_leaves_a_held_outbox_alone(_log(dynamodb))


def test_another_runners_commit_leaves_a_held_outbox_alone(dynamodb: Any) -> None:
    another_runners_commit_leaves_a_held_outbox_alone(_log(dynamodb))


def test_a_holder_that_dies_has_its_tasks_resent_after_the_mark(dynamodb: Any) -> None:
    a_holder_that_dies_has_its_tasks_resent_after_the_mark(_log(dynamodb))


def test_a_dead_holders_task_outlives_another_runners_commit(dynamodb: Any) -> None:
    a_dead_holders_task_outlives_another_runners_commit(_log(dynamodb))


def test_an_inline_map_under_a_mark_keeps_only_what_it_carries(dynamodb: Any) -> None:
    an_inline_map_under_a_mark_keeps_only_what_it_carries(_log(dynamodb))


def test_a_loop_under_a_live_mark_keeps_the_outbox_bounded(dynamodb: Any) -> None:
    a_loop_under_a_live_mark_keeps_the_outbox_bounded(_log(dynamodb))


def test_a_flush_that_fails_replaces_nothing(dynamodb: Any) -> None:
    a_flush_that_fails_replaces_nothing(_log(dynamodb))


def _dead_holder(dynamodb: Any) -> tuple[World, RecordingBus, Callable[[float], list[str]]]:
    """CHAIN on DynamoDB; a's runner dies as it claims b and c, held in place: the world,
    the repair job's bus, and a run of the job at a given time."""
    log = _log(dynamodb)
    w = World(log, CHAIN)
    (first,) = w.first
    w.die_holding(first)
    bus = RecordingBus()

    def job(at: float) -> list[str]:
        return OutboxRepair(
            client=dynamodb, table_name=TABLE, bus=bus, age_seconds=120, clock=lambda: at
        ).run()

    return w, bus, job


def _head_key(w: World) -> dict[str, Any]:
    return {"pk": {"S": f"EX#{w.arn}"}, "sk": {"S": "HEAD"}}


def test_the_repair_job_skips_a_held_head_until_its_mark_has_passed(dynamodb: Any) -> None:
    """The holder dies as it claims b and c: the job asks for no repair while the mark is
    ahead (their outbox pending 200 s), one once the mark is its age (120 s) old; the
    tasks then run once."""
    w, bus, job = _dead_holder(dynamodb)
    assert job(NOW + 200) == [], "a held outbox was repaired"
    item = dynamodb.get_item(TableName=TABLE, Key=_head_key(w))["Item"]
    # the mark is the commit time (whole seconds), no attribute of its own
    assert item[COMMITTED_AT] == {"N": str(math.ceil(NOW + LEFT))} and HELD_UNTIL not in item
    assert job(NOW + LEFT + 119) == []  # a mark is a commit time: repaired at its age
    assert job(NOW + LEFT + 120) == [w.arn]
    (repair,) = bus.sent
    w.now[0] = NOW + LEFT + 120
    assert w.transitions.handle_batch([repair]) == []
    (group,) = w.tasks.sent
    assert w.other.handle_batch([group], None, lambda: LEFT) == []
    assert w.calls == {"a": 1, "b": 1, "c": 1}
    assert w.succeeded()
    head = w.log.get(w.arn)
    assert head is not None and HELD_UNTIL not in head.attributes


def test_a_commit_by_code_that_does_not_know_the_mark_ends_it(dynamodb: Any) -> None:
    """review: during a deploy, code without the mark commits on a held head: its update
    writes its own commit time, so no stale mark is left to hold an outbox never held."""
    w, _bus, job = _dead_holder(dynamodb)
    dynamodb.update_item(
        TableName=TABLE,
        Key=_head_key(w),
        UpdateExpression="SET seq = seq + :one, #c = :now",
        ExpressionAttributeNames={"#c": COMMITTED_AT},
        ExpressionAttributeValues={":one": {"N": "1"}, ":now": {"N": str(NOW)}},
    )
    head = w.log.get(w.arn)
    assert head is not None and held_until(head) is None and not held(head, NOW + 1)
    assert job(NOW + 200) == [w.arn]


@pytest.mark.parametrize("ahead", [LONGEST_HOLD + 1, 365 * 86400.0], ids=["just", "a year"])
def test_a_commit_time_further_ahead_than_any_invocation_holds_nothing(
    dynamodb: Any, ahead: float
) -> None:
    """A commit time no holder could have written (a clock gone wrong, a forged item):
    neither a delivery nor the repair job believes it."""
    w, _bus, job = _dead_holder(dynamodb)
    dynamodb.update_item(
        TableName=TABLE,
        Key=_head_key(w),
        UpdateExpression="SET #c = :then",
        ExpressionAttributeNames={"#c": COMMITTED_AT},
        ExpressionAttributeValues={":then": {"N": str(NOW + ahead)}},
    )
    head = w.log.get(w.arn)
    assert head is not None and head.outbox and not held(head, NOW)
    assert job(NOW) == [w.arn]
