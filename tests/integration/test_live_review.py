"""The live view's review fixes, on moto: the access policy on subscribe, history read from
``after`` (pages counted), pushes that never fail the batch, a time budget, re-subscribing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from tests.hook_support import HANDLERS, INPUT, MACHINE
from tests.integration.test_live_websocket import Rig, received

boto3 = pytest.importorskip("boto3")

from stepflow.api.access import AccessPolicy  # noqa: E402
from stepflow.aws import hooks_lambda  # noqa: E402
from stepflow.aws.stream_records import StreamDecoder  # noqa: E402
from stepflow.hooks import Dispatcher, HookEvent  # noqa: E402
from stepflow.live import websocket_lambda  # noqa: E402
from stepflow.live.live_hook import LiveHook  # noqa: E402
from stepflow.live.websocket import Subscriptions  # noqa: E402
from stepflow.runtime.ports import HistoryPage  # noqa: E402
from stepflow.testing.durable import moto_environment  # noqa: E402

ALICE = "arn:aws:iam::000000000000:user/alice"
EVERYONE = '[{"principals": ["*"], "actions": ["*"], "stateMachines": ["*"]}]'


@pytest.fixture
def rig() -> Iterator[Rig]:
    with moto_environment(handlers=HANDLERS) as env:
        yield Rig(env)
    hooks_lambda.configure(None)
    websocket_lambda.configure(None)


def _policy(machines: str) -> AccessPolicy:
    rules = [{"principals": [ALICE], "actions": ["states:Get*"], "stateMachines": [machines]}]
    policy = AccessPolicy.from_json(json.dumps(rules))
    assert policy is not None
    return policy


def test_subscribe_obeys_the_access_policy_and_hides_existence(rig: Rig) -> None:
    arn = rig.env.start(MACHINE, INPUT, name="guarded")
    unknown = arn.rsplit(":", 1)[0] + ":nobody"
    rig.subs.policy = _policy("someone-else-*")
    rig.route("$connect", "c1")
    denied = rig.route("subscribe", "c1", {"executionArn": arn})
    missing = rig.route("subscribe", "c1", {"executionArn": unknown})
    assert denied == missing and denied["statusCode"] == 403
    assert received("c1") == [] and rig.subs.subscribers(arn) == []
    rig.subs.policy = _policy(arn.split(":")[6])
    assert rig.route("subscribe", "c1", {"executionArn": unknown})["statusCode"] == 403
    assert rig.route("subscribe", "c1", {"executionArn": arn})["statusCode"] == 200
    assert [m["id"] for m in received("c1")] == [e["id"] for e in rig.env.history(arn)]


def test_a_connection_without_a_caller_is_denied_under_a_policy(rig: Rig) -> None:
    arn = rig.env.start(MACHINE, INPUT, name="anonymous")
    rig.subs.policy = AccessPolicy.from_json(EVERYONE)
    rig.subs.connect("c2", "")
    body = {"action": "subscribe", "executionArn": arn}
    assert rig.route("subscribe", "c2", body)["statusCode"] == 403


def test_history_from_reads_from_the_item_holding_the_id(rig: Rig) -> None:
    arn = rig.env.start(MACHINE, INPUT, name="from")
    rig.env.run(arn)
    history = rig.env.history(arn)
    for first in (1, 2, 7, len(history), len(history) + 1):
        page = rig.log.history_from(arn, first, limit=1000)
        assert [e["id"] for e in page.events] == list(range(first, len(history) + 1))


class CountingLog:
    """A long history in memory; counts the pages read."""

    def __init__(self, size: int, status: str = "RUNNING") -> None:
        self.events = [{"id": i, "type": "PassStateEntered"} for i in range(1, size + 1)]
        self.status = status
        self.pages = 0

    def history(self, arn: str, *, next_token: str | None = None, limit: int = 1000) -> HistoryPage:
        self.pages += 1
        start = int(next_token or 0)
        more = start + limit < len(self.events)
        return HistoryPage(self.events[start : start + limit], str(start + limit) if more else None)

    def history_from(self, arn: str, first: int, *, limit: int = 1000) -> HistoryPage:
        return self.history(arn, next_token=str(first - 1), limit=limit)

    def get(self, arn: str) -> Any:
        return SimpleNamespace(status=self.status)


class Table:
    """The subscription writes a push makes, recorded."""

    class exceptions:  # noqa: N801 - boto3's shape
        ConditionalCheckFailedException = KeyError

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda **kwargs: self.calls.append((name, kwargs)) or {}


def _subs(log: CountingLog, posts: list[int], clock: list[float] | None = None) -> Subscriptions:
    def post(connection: str, data: bytes) -> None:
        posts.append(json.loads(data)["id"])
        if clock is not None:
            clock[0] += 1.0

    subs = Subscriptions("t", Table(), log, post)
    if clock is not None:
        subs.monotonic = lambda: clock[0]
    return subs


def test_a_push_reads_only_the_pages_after_after() -> None:
    log = CountingLog(5000)
    posts: list[int] = []
    subs = _subs(log, posts)
    assert subs.push("arn", [("c1", 4999)]) is True
    assert posts == [5000] and log.pages == 1
    log.events.append({"id": 5001, "type": "PassStateExited"})
    assert subs.push("arn", [("c1", 5000)]) and posts == [5000, 5001] and log.pages == 2


def test_a_push_stops_at_its_deadline_saving_after_and_the_next_resumes() -> None:
    log = CountingLog(300)
    posts: list[int] = []
    clock = [0.0]
    subs = _subs(log, posts, clock)
    subs.save_every = 50
    assert subs.push("arn", [("c1", 0)], deadline=120.0) is False
    assert posts == list(range(1, 121))
    table: Any = subs.dynamodb
    saved = [c[1]["ExpressionAttributeValues"][":new"]["N"] for c in table.calls]
    assert saved == ["50", "100", "120"]  # every 50 posts, then where it stopped
    assert subs.push("arn", [("c1", 120)], deadline=clock[0] + 1000) is True
    assert posts == list(range(1, 301))  # each once


def test_a_redriven_history_is_pushed_past_its_first_failure() -> None:
    log = CountingLog(3)
    log.events[-1]["type"] = "ExecutionFailed"
    log.events += [{"id": 4, "type": "ExecutionRedriven"}, {"id": 5, "type": "ExecutionSucceeded"}]
    posts: list[int] = []
    subs = _subs(log, posts)
    log.status = "SUCCEEDED"
    assert subs.push("arn", [("c1", 0)])
    assert posts == [1, 2, 3, 4, 5]
    table: Any = subs.dynamodb
    assert [c[0] for c in table.calls] == ["delete_item", "update_item"]  # ended, freed


def test_a_failure_to_post_never_fails_the_batch_and_other_hooks_deliver_once(rig: Rig) -> None:
    arn = rig.env.start(MACHINE, INPUT, name="throttled")
    rig.route("$connect", "c1")
    rig.route("subscribe", "c1", {"executionArn": arn})
    backlog = len(received("c1"))

    def throttled(connection: str, data: bytes) -> None:
        raise rig.dynamodb.exceptions.ProvisionedThroughputExceededException(
            {"Error": {"Code": "ThrottlingException"}}, "PostToConnection"
        )

    seen: list[str] = []

    class Counting:
        name = "counting"
        kinds = None

        def handle(self, events: list[HookEvent]) -> None:
            seen.extend(e.dedup_key for e in events)

    failures: list[int] = []
    rig.subs.post = throttled
    hook = LiveHook(rig.subs, failures.append)
    hooks_lambda.configure(
        hooks_lambda.HooksRuntime(StreamDecoder(rig.log), Dispatcher([hook, Counting()]))
    )
    rig.env.run(arn)
    rig.deliver_stream()  # asserts no batchItemFailures
    assert len(seen) == len(set(seen)) > 0 and sum(failures) >= 1
    assert len(received("c1")) == backlog
    assert rig.subs.subscribers(arn) == [("c1", backlog)]


def test_nobody_watching_costs_one_read_per_batch(rig: Rig) -> None:
    arn = rig.env.start(MACHINE, INPUT, name="unwatched")
    rig.env.run(arn)
    queries: list[str] = []
    real = rig.subs.subscribers
    rig.subs.subscribers = lambda a: queries.append(a) or real(a)  # type: ignore[method-assign]
    rig.deliver_stream()
    assert queries == []


def test_a_connection_subscribes_again_after_its_execution_ended_or_unsubscribing(
    rig: Rig,
) -> None:
    first = rig.env.start(MACHINE, INPUT, name="first")
    rig.env.run(first)
    second = rig.env.start(MACHINE, INPUT, name="second")  # still running
    rig.route("$connect", "c1")
    assert rig.route("subscribe", "c1", {"executionArn": first})["statusCode"] == 200
    assert rig.route("subscribe", "c1", {"executionArn": second})["statusCode"] == 200
    assert rig.route("subscribe", "c1", {"executionArn": first})["statusCode"] == 409
    assert rig.route("unsubscribe", "c1")["statusCode"] == 200
    assert rig.route("subscribe", "c1", {"executionArn": first})["statusCode"] == 200
