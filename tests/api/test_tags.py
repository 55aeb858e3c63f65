"""TagResource, UntagResource, ListTagsForResource and ``tags`` on create (issue 17).

GIVEN the API service on in-memory ports with activities, WHEN state machines
and activities are tagged, untagged, listed, deleted and re-created, with
hostile tags (51 of them, a 129-character key, ``aws:`` keys, unicode, symbols
AWS refuses) and writes racing each other or a delete, THEN the answers and
stored tags are AWS's, and every refused request writes nothing.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from stepflow.api import ApiError, StepFunctionsService
from stepflow.api.tags import ACTIVITY_TAGS
from stepflow.runtime import InMemoryBus, InMemoryLog
from stepflow.runtime.registry import HEAD, InMemoryRegistry
from stepflow.runtime.task_queue import InMemoryTaskQueue

from tests.api.conftest import PASS, ROLE, SCOPE, Api, invoke

ACTIVITY = f"arn:aws:states:{SCOPE.region}:{SCOPE.account}:activity:"


class Racing(InMemoryRegistry):
    """A registry that runs ``before_put`` once, just before the next put of ``sk``."""

    def __init__(self) -> None:
        super().__init__()
        self.before_put: tuple[str, Any] | None = None
        self.puts = 0
        self.conflicts = 0

    def put(self, name: str, sk: str, doc: dict[str, Any], *, expected_rev: int | None) -> None:
        if self.before_put is not None and self.before_put[0] == sk:
            action, self.before_put = self.before_put[1], None
            action()
        self.puts += 1
        try:
            super().put(name, sk, doc, expected_rev=expected_rev)
        except Exception:
            self.conflicts += 1
            raise


@pytest.fixture
def api() -> Api:
    log, registry, bus = InMemoryLog(), Racing(), InMemoryBus(1_700_000_000.0)
    service = StepFunctionsService(
        log=log,
        bus=bus,
        registry=registry,
        invoker=invoke,
        scope=SCOPE,
        clock=lambda: bus.now,
        task_queue=InMemoryTaskQueue(),
    )
    return Api(service, log, bus, registry)


def tags(**pairs: str) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in pairs.items()]


def listed(api: Api, arn: str) -> dict[str, str]:
    found = api("ListTagsForResource", resourceArn=arn)["tags"]
    return {t["key"]: t["value"] for t in found}


def code(api: Api, operation: str, **params: Any) -> str:
    with pytest.raises(ApiError) as caught:
        api(operation, **params)
    return caught.value.code


def test_state_machine_tags_round_trip(api: Api) -> None:
    arn = api.machine("M", tags=tags(team="core", env="dev"))
    assert api("ListTagsForResource", resourceArn=arn) == {
        "tags": [{"key": "team", "value": "core"}, {"key": "env", "value": "dev"}]
    }
    assert api("TagResource", resourceArn=arn, tags=tags(env="prod", cost="42")) == {}
    assert listed(api, arn) == {"team": "core", "env": "prod", "cost": "42"}
    assert api("UntagResource", resourceArn=arn, tagKeys=["team", "absent"]) == {}
    assert listed(api, arn) == {"env": "prod", "cost": "42"}
    # an update, a version and the describe answer leave the tags where they are
    api(
        "UpdateStateMachine",
        stateMachineArn=arn,
        definition=PASS.replace('"P"', '"Q"'),
        publish=True,
    )
    assert listed(api, arn) == {"env": "prod", "cost": "42"}
    assert "tags" not in api("DescribeStateMachine", stateMachineArn=arn)
    version = api("DescribeStateMachine", stateMachineArn=f"{arn}:1")
    assert "tags" not in version and "tags" not in api.registry.get("M", "V#00000001")  # type: ignore[operator]


def test_create_again_with_other_tags_keeps_the_first(api: Api) -> None:
    arn = api.machine("M", tags=tags(a="1"))
    assert api.machine("M", tags=tags(b="2")) == arn  # idempotent: AWS ignores the new tags
    assert listed(api, arn) == {"a": "1"}


def test_hostile_tags_are_refused_and_write_nothing(api: Api) -> None:
    fifty_one = [{"key": f"k{i}", "value": "v"} for i in range(51)]
    create = {"name": "T", "definition": PASS, "roleArn": ROLE}
    assert code(api, "CreateStateMachine", **create, tags=fifty_one) == "TooManyTags"
    assert code(api, "ListTagsForResource", resourceArn=SCOPE.machine_arn("T")) == (
        "ResourceNotFound"
    )
    arn = api.machine("M", tags=fifty_one[:49])
    before = api.registry.get("M", HEAD)
    for bad in (
        [{"key": "k" * 129, "value": "v"}],
        [{"key": "", "value": "v"}],
        [{"key": "k", "value": "v" * 257}],
        [{"key": "aws:owner", "value": "v"}],
        [{"key": "AWS:Owner", "value": "v"}],
        [{"key": "hash#", "value": "v"}],
        [{"key": "k", "value": "emoji \U0001f600"}],
        [{"key": "k", "value": "\x00"}],
    ):
        assert code(api, "TagResource", resourceArn=arn, tags=bad) == "ValidationException", bad
        assert code(api, "CreateStateMachine", **create, tags=bad) == "ValidationException"
    two_more = tags(x="1", y="2")
    assert code(api, "TagResource", resourceArn=arn, tags=two_more) == "TooManyTags"
    assert code(api, "TagResource", resourceArn=arn, tags=fifty_one) == "TooManyTags"
    assert api.registry.get("M", HEAD) == before
    assert code(api, "ListTagsForResource", resourceArn=SCOPE.machine_arn("T")) == (
        "ResourceNotFound"
    )
    # the limits themselves are accepted: 50 tags, 128-character keys, unicode, AWS's symbols
    edge = {"k" * 128: "v" * 256, "équipe café": "チーム _.:/=+-@", "aws-ok": ""}
    api("UntagResource", resourceArn=arn, tagKeys=[f"k{i}" for i in range(49)])
    api("TagResource", resourceArn=arn, tags=tags(**edge))
    api("TagResource", resourceArn=arn, tags=[{"key": "novalue"}])
    assert listed(api, arn) == {**edge, "novalue": ""}
    api("TagResource", resourceArn=arn, tags=fifty_one[:46])
    assert len(listed(api, arn)) == 50


def test_arns_that_cannot_carry_tags(api: Api) -> None:
    arn = api.machine("M", publish=True)
    execution = api("StartExecution", stateMachineArn=arn, name="e")["executionArn"]
    for bad in (
        f"{arn}:1",  # a version
        f"{arn}:live",  # an alias's shape
        execution,
        arn.replace(SCOPE.region, "us-west-2"),
        "arn:aws:states:eu-west-1:111122223333:stateMachine",
        f"{ACTIVITY}",
        f"{ACTIVITY}a b",
        "not-an-arn",
    ):
        for operation, extra in (
            ("TagResource", {"tags": tags(a="1")}),
            ("UntagResource", {"tagKeys": ["a"]}),
            ("ListTagsForResource", {}),
        ):
            assert code(api, operation, resourceArn=bad, **extra) == "InvalidArn", (operation, bad)


def test_a_deleted_state_machine_has_no_tags_and_a_new_one_starts_bare(api: Api) -> None:
    arn = api.machine("M", tags=tags(a="1"))
    api("DeleteStateMachine", stateMachineArn=arn)
    for operation, extra in (
        ("TagResource", {"tags": tags(b="2")}),
        ("UntagResource", {"tagKeys": ["a"]}),
        ("ListTagsForResource", {}),
    ):
        assert code(api, operation, resourceArn=arn, **extra) == "ResourceNotFound"
    assert api.registry.get("M", HEAD) is None  # the refused tag wrote no head back
    assert listed(api, api.machine("M")) == {}


def test_activity_tags_live_and_die_with_the_activity(api: Api) -> None:
    arn = api("CreateActivity", name="jobs", tags=tags(team="core"))["activityArn"]
    assert arn == f"{ACTIVITY}jobs"
    assert listed(api, arn) == {"team": "core"}
    api("CreateActivity", name="jobs", tags=tags(other="x"))  # idempotent: tags ignored
    api("TagResource", resourceArn=arn, tags=tags(env="dev"))
    api("UntagResource", resourceArn=arn, tagKeys=["team"])
    assert listed(api, arn) == {"env": "dev"}
    assert code(api, "CreateActivity", name="bad", tags=tags(**{"aws:x": "1"})) == (
        "ValidationException"
    )
    assert code(api, "DescribeActivity", activityArn=f"{ACTIVITY}bad") == "ActivityDoesNotExist"
    api("DeleteActivity", activityArn=arn)
    assert api.registry.get(arn, ACTIVITY_TAGS) is None
    assert code(api, "ListTagsForResource", resourceArn=arn) == "ResourceNotFound"
    assert code(api, "TagResource", resourceArn=arn, tags=tags(a="1")) == "ResourceNotFound"
    api("CreateActivity", name="jobs")
    assert listed(api, arn) == {}
    fifty_one = [{"key": f"k{i}", "value": "v"} for i in range(51)]
    assert code(api, "CreateActivity", name="many", tags=fifty_one) == "TooManyTags"
    assert code(api, "DescribeActivity", activityArn=f"{ACTIVITY}many") == "ActivityDoesNotExist"
    arn = api("CreateActivity", name="many", tags=fifty_one[:50])["activityArn"]
    assert len(listed(api, arn)) == 50  # SQS keeps at most 50 queue tags: these are not there
    assert code(api, "TagResource", resourceArn=arn, tags=tags(one="more")) == "TooManyTags"


def test_tags_left_by_a_write_racing_delete_activity_are_not_inherited(api: Api) -> None:
    registry: Racing = api.registry  # type: ignore[assignment]
    arn = api("CreateActivity", name="jobs")["activityArn"]
    registry.before_put = (ACTIVITY_TAGS, lambda: api("DeleteActivity", activityArn=arn))
    api("TagResource", resourceArn=arn, tags=tags(stale="yes"))  # checked, then deleted
    assert registry.get(arn, ACTIVITY_TAGS) is not None  # the orphan the race leaves
    api.bus.now += 1
    api("CreateActivity", name="jobs", tags=tags(fresh="yes"))
    assert listed(api, arn) == {"fresh": "yes"}


def test_a_tag_write_racing_delete_state_machine_answers_not_found(api: Api) -> None:
    registry: Racing = api.registry  # type: ignore[assignment]
    arn = api.machine("M")
    registry.before_put = (HEAD, lambda: api("DeleteStateMachine", stateMachineArn=arn))
    assert code(api, "TagResource", resourceArn=arn, tags=tags(a="1")) == "ResourceNotFound"
    assert registry.get("M", HEAD) is None  # no head resurrected by the tag write


def test_a_tag_write_racing_another_keeps_both(api: Api) -> None:
    registry: Racing = api.registry  # type: ignore[assignment]
    arn = api.machine("M", tags=tags(gone="x"))
    registry.before_put = (HEAD, lambda: api("TagResource", resourceArn=arn, tags=tags(b="2")))
    puts = registry.puts
    api("UntagResource", resourceArn=arn, tagKeys=["gone"])
    assert listed(api, arn) == {"b": "2"}
    # the racing TagResource wrote once; the untag's first write lost and was retried once
    assert (registry.puts - puts, registry.conflicts) == (3, 1)


def test_concurrent_tag_and_untag_lose_nothing(api: Api) -> None:
    arn = api.machine("M")
    activity = api("CreateActivity", name="jobs")["activityArn"]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for resource in (arn, activity):
                api("TagResource", resourceArn=resource, tags=tags(**{f"k{i}": "v", "x": "x"}))
                api("UntagResource", resourceArn=resource, tagKeys=["x"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for resource in (arn, activity):
        assert set(listed(api, resource)) == {f"k{i}" for i in range(8)}


def test_without_activities_an_activity_arn_is_not_found() -> None:
    bus = InMemoryBus(0.0)
    service = StepFunctionsService(
        log=InMemoryLog(), bus=bus, registry=InMemoryRegistry(), invoker=invoke, scope=SCOPE
    )
    with pytest.raises(ApiError) as caught:
        service.call("ListTagsForResource", {"resourceArn": f"{ACTIVITY}jobs"})
    assert caught.value.code == "ResourceNotFound"
