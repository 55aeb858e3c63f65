"""Stream records -> hook events, from items the log itself writes (a fake DynamoDB client
keeps what DynamoDBLog writes; records are built from those items in Lambda's shape).

Hostile inputs: malformed records are skipped without failing the batch, unknown items are
ignored, a redelivered or reordered batch loses nothing, compressed and offloaded event
items decode, heads are read at most once per execution per batch, EXPRESS executions are
seen through their head's status changes only.
"""

from __future__ import annotations

import random
import string
from dataclasses import replace
from typing import Any

import pytest

from tests.hook_support import RecordingHook

pytest.importorskip("boto3")

from stepflow.aws import DynamoDBLog, hooks_lambda
from stepflow.aws.log_pending import pending_item
from stepflow.aws.log_table import LogUnavailableError
from stepflow.aws.stream_records import StreamDecoder
from stepflow.hooks import Dispatcher
from stepflow.local.gateway import CONTEXT
from stepflow.local.stream_poller import lambda_record
from stepflow.runtime.payloads import InMemoryPayloadStore
from stepflow.runtime.ports import ExecutionRecord

SM = "arn:aws:states:us-east-1:123456789012:stateMachine:Orders"
ARN = "arn:aws:states:us-east-1:123456789012:execution:Orders:one"
EXPRESS = "arn:aws:states:us-east-1:123456789012:express:Orders:two:5b0c"


class FakeDynamoDB:
    """Keeps the items DynamoDBLog writes; counts head reads."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.written: list[dict[str, Any]] = []
        self.gets = 0
        self.down = False

    def _keep(self, item: dict[str, Any]) -> None:
        self.items[(item["pk"]["S"], item["sk"]["S"])] = item
        self.written.append(item)

    def put_item(self, **request: Any) -> dict[str, Any]:
        self._keep(request["Item"])
        return {}

    def transact_write_items(self, **request: Any) -> dict[str, Any]:
        for entry in request["TransactItems"]:
            if "Put" in entry:
                self._keep(entry["Put"]["Item"])
            elif "Update" in entry:
                self.update_item(**entry["Update"])
        return {}

    def update_item(self, **request: Any) -> dict[str, Any]:
        """The log's head updates (``SET #a = :v, ... REMOVE #r, ...``), conditions ignored."""
        key, names, values = request["Key"], request["ExpressionAttributeNames"], {}
        values = request.get("ExpressionAttributeValues", {})
        item = dict(self.items.get((key["pk"]["S"], key["sk"]["S"]), key))
        sets, _, removes = request["UpdateExpression"].removeprefix("SET ").partition(" REMOVE ")
        for assignment in filter(None, sets.split(", ")):
            name, _, value = assignment.partition(" = ")
            item[names[name]] = values[value]
        for name in filter(None, removes.split(", ")):
            item.pop(names[name], None)
        self._keep(item)
        return {}

    def batch_write_item(self, **request: Any) -> dict[str, Any]:
        for requests in request["RequestItems"].values():
            for entry in requests:
                self._keep(entry["PutRequest"]["Item"])
        return {}

    def get_item(self, **request: Any) -> dict[str, Any]:
        self.gets += 1
        if self.down:
            raise ConnectionError("DynamoDB is down")
        key = request["Key"]
        item = self.items.get((key["pk"]["S"], key["sk"]["S"]))
        return {"Item": item} if item else {}


def record(
    number: int, item: dict[str, Any] | None, old: dict[str, Any] | None = None, name: str = ""
) -> dict[str, Any]:
    """The stream record of a write of ``item`` (Lambda's shape: binaries as base64)."""
    image = item or old
    assert image is not None
    dynamodb: dict[str, Any] = {
        "Keys": {"pk": image["pk"], "sk": image["sk"]},
        "SequenceNumber": str(number),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if item is not None:
        dynamodb["NewImage"] = item
    if old is not None:
        dynamodb["OldImage"] = old
    event = name or ("INSERT" if old is None else "MODIFY" if item is not None else "REMOVE")
    return lambda_record({"eventID": str(number), "eventName": event, "dynamodb": dynamodb}, "s")


def head(arn: str, status: str = "RUNNING", seq: int = 1, **extra: Any) -> ExecutionRecord:
    return ExecutionRecord(
        execution_arn=arn,
        state_machine_arn=SM,
        name=arn.split(":")[7],
        input={"order": 1},
        status=status,
        seq=seq,
        state={},
        start_date=1_700_000_000.0,
        stop_date=None if status == "RUNNING" else 1_700_000_009.0,
        **extra,
    )


def events(first: int, count: int, pad: int = 0) -> list[dict[str, Any]]:
    """``count`` state events from id ``first`` (a Pass state entered and exited, in turn)."""
    kinds = ("PassStateEntered", "PassStateExited")
    return [
        {
            "id": first + i,
            "type": kinds[i % 2],
            "timestamp": 1_700_000_000 + first + i,
            "stateEnteredEventDetails" if i % 2 == 0 else "stateExitedEventDetails": {
                "name": f"S{(first + i) // 2}",
                "input": "".join(random.Random(first + i).choices(string.ascii_letters, k=pad)),
            },
        }
        for i in range(count)
    ]


class Rig:
    def __init__(self, **log: Any) -> None:
        self.client = FakeDynamoDB()
        self.log = DynamoDBLog("t", client=self.client, **log)
        self.hook = RecordingHook()
        self.runtime = hooks_lambda.HooksRuntime(StreamDecoder(self.log), Dispatcher([self.hook]))
        self.event_items: list[dict[str, Any]] = []

    def history_records(self, arn: str, commits: int = 4, per: int = 3, pad: int = 0) -> list[Any]:
        """Records of a STANDARD execution's ``commits`` event items (ids 1, 1+per, ...).

        Each as a transaction commit writes it: a commit whose head carries its events
        (stepflow.aws.log_pending) gives the item they are copied to later, unmarked.
        """
        self.log.create(head(arn), [])
        items = self.event_items  # every execution's so far, in the order written
        for n in range(commits):
            written = len(self.client.written)
            self.log.commit(head(arn, seq=n + 2), n + 1, events(1 + n * per, per, pad))
            stored = self.client.items[(f"EX#{arn}", "HEAD")]
            carried = pending_item(stored)
            if carried is not None:
                items.append(carried)
            else:
                new = self.client.written[written:]
                items += [i for i in new if i["sk"]["S"].startswith("EV#") and "flushed" not in i]
        self.client.gets = 0
        return [record(i + 1, item) for i, item in enumerate(items)]


def test_history_items_become_hook_events_with_one_head_read_per_batch() -> None:
    rig = Rig()
    records = rig.history_records(ARN)
    assert hooks_lambda.process(records, rig.runtime) == []
    assert rig.hook.ids(ARN) == list(range(1, 13))
    assert rig.client.gets == 1  # no head record in the batch: read once for the batch
    assert rig.hook.events[0].execution.name == "one"
    assert rig.hook.events[0].state_name == "S0"


def test_compressed_and_offloaded_event_items_decode_through_the_log() -> None:
    store = InMemoryPayloadStore()
    rig = Rig(payloads=store, item_budget=4_000)
    records = rig.history_records(ARN, commits=3, per=4, pad=6_000)
    written = [i for i in rig.client.written if i["sk"]["S"].startswith("EV#")]
    assert any("events_ref" in item for item in written)  # offloaded to the store
    rig2 = Rig()
    compressed = rig2.history_records(ARN, per=3, pad=0)
    assert all("events_z" in i for i in rig2.client.written if i["sk"]["S"].startswith("EV#"))
    assert hooks_lambda.process(records, rig.runtime) == []
    assert rig.hook.ids(ARN) == list(range(1, 13))
    assert hooks_lambda.process(compressed, rig2.runtime) == []
    assert rig2.hook.ids(ARN) == list(range(1, 13))


def test_malformed_records_are_skipped_and_unknown_items_ignored() -> None:
    rig = Rig()
    good = rig.history_records(ARN)
    lease = {"pk": {"S": f"EX#{ARN}"}, "sk": {"S": "TK#t1"}, "version": {"N": "1"}}
    machine = {"pk": {"S": "SM#Orders"}, "sk": {"S": "V#1"}}
    bad_base64 = record(90, {**good[0]["dynamodb"]["NewImage"], "events_z": {"B": "%%%"}})
    bad_zlib = record(91, {**good[0]["dynamodb"]["NewImage"], "events_z": {"B": "AAAA"}})
    hostile: list[Any] = [
        "not a record",
        {"eventName": "INSERT"},
        {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "80"}},
        {"eventName": "FLY", "dynamodb": {"SequenceNumber": "81", "Keys": {}}},
        {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "82", "Keys": {"pk": {"N": "1"}}}},
        {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "83", "Keys": {}, "NewImage": 5}},
        bad_base64,
        bad_zlib,
        record(92, lease),
        record(93, machine),
        record(94, None, old=good[0]["dynamodb"]["NewImage"]),  # the sweeper's delete
        record(95, {"pk": {"S": f"EX#{ARN}#b0"}, "sk": {"S": "EV#000000000001"}}),  # a child
    ]
    batch = [hostile[0], good[0], *hostile[1:6], good[1], *hostile[6:], good[2], good[3]]
    assert hooks_lambda.process(batch, rig.runtime) == []
    assert rig.hook.ids(ARN) == list(range(1, 13))


def test_repeated_and_reordered_batches_lose_nothing_and_repeat_nothing() -> None:
    rig = Rig()
    records = rig.history_records(ARN)
    for batch in (records[2:], records, records[::-1], records[:2]):
        assert hooks_lambda.process(batch, rig.runtime) == []
    assert sorted(rig.hook.ids(ARN)) == list(range(1, 13))
    assert rig.hook.repeats == 12 + 6 + 6


def test_the_log_being_unreadable_fails_the_whole_batch() -> None:
    rig = Rig()
    records = rig.history_records(ARN)
    rig.client.down = True
    numbers = [r["dynamodb"]["SequenceNumber"] for r in records]
    assert hooks_lambda.process(records, rig.runtime) == numbers
    assert rig.hook.events == []


def test_express_executions_are_seen_through_their_head_status_changes_only() -> None:
    rig = Rig()
    rig.log.put_many([head(EXPRESS)])  # the heads as the log writes them
    started = rig.client.written[-1]
    rig.log.put_many([head(EXPRESS, seq=2)])
    running = rig.client.written[-1]
    rig.log.commit(head(EXPRESS, seq=3), 2, events(1, 2))  # an event item: ignored for EXPRESS
    ev_item = pending_item(rig.client.items[(f"EX#{EXPRESS}", "HEAD")])
    assert ev_item is not None
    rig.log.put_many([head(EXPRESS, "SUCCEEDED", seq=4)])
    done = rig.client.written[-1]
    rig.client.gets = 0
    batch = [
        record(1, started),
        record(2, running, old=started),  # RUNNING -> RUNNING: nothing
        record(3, ev_item),
        record(4, done, old=running),
    ]
    for _ in range(2):  # a redelivery has the same dedup keys
        assert hooks_lambda.process(batch, rig.runtime) == []
    kinds = [e.kind for e in rig.hook.events]
    assert kinds == ["ExecutionStarted", "ExecutionSucceeded"]
    assert rig.hook.repeats == 2
    assert {e.execution.execution_type for e in rig.hook.events} == {"EXPRESS"}
    assert rig.hook.events[1].timestamp == 1_700_000_009.0
    assert rig.client.gets == 0  # the head records told everything


def test_an_execution_head_marked_express_in_its_attributes_is_express() -> None:
    rig = Rig()
    rig.log.create(head(ARN, attributes={"execution_type": "EXPRESS"}), [])
    assert hooks_lambda.process([record(1, rig.client.written[-1])], rig.runtime) == []
    assert [e.kind for e in rig.hook.events] == ["ExecutionStarted"]


def test_the_handler_reports_failures_by_sequence_number_and_survives_no_records() -> None:
    rig = Rig()
    records = rig.history_records(ARN)
    failing = RecordingHook(fail_on="StateEntered", failures=1)
    hooks_lambda.configure(hooks_lambda.HooksRuntime(StreamDecoder(rig.log), Dispatcher([failing])))
    try:
        assert hooks_lambda.handler({}, CONTEXT) == {"batchItemFailures": []}
        answer = hooks_lambda.handler({"Records": records}, CONTEXT)
        assert answer == {"batchItemFailures": [{"itemIdentifier": str(n)} for n in range(1, 5)]}
    finally:
        hooks_lambda.configure(None)


def test_a_huge_commit_split_over_several_items_arrives_whole_and_in_order() -> None:
    rig = Rig()
    rig.log.create(head(ARN), [])
    rig.log.commit(head(ARN, seq=2), 1, events(1, 6_000, pad=60))
    items = [i for i in rig.client.written if i["sk"]["S"].startswith("EV#")]
    assert len(items) > 1  # the decision's events did not fit one item
    assert hooks_lambda.process([record(n, i) for n, i in enumerate(items, 1)], rig.runtime) == []
    assert rig.hook.ids(ARN) == list(range(1, 6_001))
    assert rig.hook.calls == len(items)  # one dispatch per record


OTHER = "arn:aws:states:us-east-1:123456789012:execution:Orders:other"


def test_a_poison_head_or_event_item_is_skipped_and_the_healthy_records_delivered_once() -> None:
    rig = Rig()
    rig.history_records(ARN)
    both = rig.history_records(OTHER)  # ARN's 4 event items, then OTHER's 4
    heads = [i for i in rig.client.written if i["sk"]["S"] == "HEAD"]
    other_head = {k: v for k, v in heads[-1].items() if k not in ("input", "input_z")}
    other_head["input_ref"] = {"S": "payloads/gone"}  # dangling: the log has no store
    poison_head = record(50, other_head, old=other_head)
    real = rig.log.item_events

    def item_events(item: dict[str, Any]) -> list[dict[str, Any]]:
        if item["sk"]["S"] == both[1]["dynamodb"]["NewImage"]["sk"]["S"] and OTHER not in str(
            item["pk"]
        ):
            raise OverflowError("whatever a decoder may raise")
        return real(item)

    rig.log.item_events = item_events  # type: ignore[method-assign]
    batch = [both[0], poison_head, *both[1:]]
    assert hooks_lambda.process(batch, rig.runtime) == []
    assert rig.hook.ids(ARN) == [1, 2, 3, *range(7, 13)]  # only the poison record's are left
    assert rig.hook.ids(OTHER) == list(range(1, 13))
    assert rig.hook.repeats == 0
    assert {e.execution.name for e in rig.hook.events} == {"one", "other"}
    assert rig.client.gets == 1  # ARN's head: OTHER's is read from the (poison) image


def test_an_outage_fails_the_batch_only_from_the_affected_executions_first_record() -> None:
    rig = Rig()
    rig.history_records(ARN)
    both = rig.history_records(OTHER)
    real = rig.log.item_events
    down = [True]

    def item_events(item: dict[str, Any]) -> list[dict[str, Any]]:
        if down[0] and OTHER in item["pk"]["S"]:
            raise LogUnavailableError("payload store: unreachable")
        return real(item)

    rig.log.item_events = item_events  # type: ignore[method-assign]
    batch = [both[0], both[1], both[4], both[5], both[2], both[3]]
    numbers = [r["dynamodb"]["SequenceNumber"] for r in batch]
    assert hooks_lambda.process(batch, rig.runtime) == numbers[2:]
    assert rig.hook.ids(ARN) == list(range(1, 7)) and rig.hook.ids(OTHER) == []
    down[0] = False  # the outage ends: the retry resumes at the first failed record
    assert hooks_lambda.process(batch[2:], rig.runtime) == []
    assert rig.hook.ids(ARN) == list(range(1, 13)) and rig.hook.ids(OTHER) == list(range(1, 7))
    assert rig.hook.repeats == 0


class CountingStore(InMemoryPayloadStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get(self, key: str) -> bytes:
        self.gets += 1
        return super().get(key)


def test_execution_info_comes_from_the_head_images_plain_attributes_without_payload_reads() -> None:
    store = CountingStore()
    rig = Rig(payloads=store, item_budget=4_000)
    run = "arn:aws:states:us-east-1:123456789012:mapRun:Orders/label:abc"
    first = replace(
        head(ARN),
        input={"pad": "".join(random.Random(1).choices(string.ascii_letters, k=12_000))},
        state={"redrive_count": 2},
        attributes={"map_run_arn": run},
    )
    rig.log.create(first, [])
    head_item = next(i for i in rig.client.written if i["sk"]["S"] == "HEAD")
    assert "input_ref" in head_item  # decoding the whole head would read the store
    rig.log.commit(replace(first, seq=2), 1, events(1, 2))
    item = pending_item(rig.client.items[(f"EX#{ARN}", "HEAD")])  # as its EV item
    assert item is not None
    fresh = DynamoDBLog("t", client=rig.client, payloads=store)  # no cached payloads
    runtime = hooks_lambda.HooksRuntime(StreamDecoder(fresh), Dispatcher([rig.hook]))
    assert hooks_lambda.process([record(1, head_item), record(2, item)], runtime) == []
    assert rig.hook.ids(ARN) == [1, 2]
    assert store.gets == 0 and rig.client.gets == 0
    info = rig.hook.events[0].execution
    assert (info.name, info.redrive_count) == ("one", 2)
    assert (
        info.state_machine_arn == "arn:aws:states:us-east-1:123456789012:stateMachine:Orders/label"
    )


def test_a_poison_express_head_change_is_skipped_and_the_executions_others_delivered() -> None:
    rig = Rig()
    rig.log.put_many([head(EXPRESS)])
    started = rig.client.written[-1]
    rig.log.put_many([head(EXPRESS, "FAILED", seq=2)])
    failed = rig.client.written[-1]
    poison = {**failed, "status": {"S": "SUCCEEDED"}, "seq": {"N": "1e400"}}  # int(inf)
    batch = [record(1, started), record(2, poison, old=started), record(3, failed, old=started)]
    assert hooks_lambda.process(batch, rig.runtime) == []
    assert [e.kind for e in rig.hook.events] == ["ExecutionStarted", "ExecutionFailed"]


def test_a_compressed_inline_state_still_gives_the_redrive_count_without_payload_reads() -> None:
    store = CountingStore()
    rig = Rig(payloads=store)
    state = {"redrive_count": 3, "pad": "ab" * 2_000}  # compressible: stored as state_z
    rig.log.create(replace(head(ARN), state=state), [])
    rig.log.commit(replace(head(ARN, seq=2), state=state), 1, events(1, 2))
    head_item = next(i for i in rig.client.written if i["sk"]["S"] == "HEAD")
    assert "state_z" in head_item and "state" not in head_item
    item = pending_item(rig.client.items[(f"EX#{ARN}", "HEAD")])  # as its EV item
    assert item is not None
    assert hooks_lambda.process([record(1, head_item), record(2, item)], rig.runtime) == []
    assert rig.hook.events[0].execution.redrive_count == 3
    assert store.gets == 0 and rig.client.gets == 0
