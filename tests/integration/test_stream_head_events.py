"""Hook events of commits made as one head update: the head carries the commit's events
(``ev_sk``, ``ev_seq``, ``ev`` or ``ev_z``) until the next commit moves them to their own
``EV#`` item (``flushed``); a commit made as a transaction writes its event item as before.

Items are DynamoDBLog's own (a fake client keeps them, as in test_stream_records), with the
head-update commit's attributes added as that commit writes them. Counted per record and
per hook: each event exactly once, at the record of the commit that made it durable.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_stream_records import EXPRESS, Rig, events, head, record

pytest.importorskip("boto3")

from stepflow.aws import hooks_lambda
from stepflow.aws.log_pending import pending_item
from stepflow.aws.log_table import LogUnavailableError
from stepflow.aws.stream_records import StreamDecoder

ARN = "arn:aws:states:us-east-1:123456789012:execution:Orders:heads"
OTHER = "arn:aws:states:us-east-1:123456789012:execution:Orders:other"


class Partition:
    """One execution's items, commit by commit, as DynamoDBLog writes them."""

    def __init__(self, rig: Rig, arn: str = ARN) -> None:
        rig.log.create(head(arn), [])
        self.rig, self.arn = rig, arn
        self.created = next(i for i in reversed(rig.client.written) if i["sk"]["S"] == "HEAD")
        self.seq, self.next_id = 1, 1

    def commit(self, count: int = 3) -> tuple[dict[str, Any], dict[str, Any]]:
        """(event item, head item) of the next commit of ``count`` events."""
        self.rig.log.commit(head(self.arn, seq=self.seq + 1), self.seq, events(self.next_id, count))
        # its EV item: carried by the head, or (events larger than the head) written
        sk = f"EV#{self.next_id:012d}"
        item = pending_item(self.rig.client.items[(f"EX#{self.arn}", "HEAD")])
        item = item or self.rig.client.items.get((f"EX#{self.arn}", sk))
        assert item is not None and item["sk"]["S"] == sk
        self.seq, self.next_id = self.seq + 1, self.next_id + count
        return item, {**self.created, "seq": {"N": str(self.seq)}}


def pending(head_item: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """``head_item`` carrying event item ``item``'s events (a commit made as one head update)."""
    out = {k: v for k, v in head_item.items() if k not in ("ev_sk", "ev_seq", "ev", "ev_z")}
    out["ev_sk"], out["ev_seq"] = item["sk"], item["seq"]
    for name, attribute in (("events", "ev"), ("events_z", "ev_z")):
        if name in item:
            out[attribute] = item[name]
    return out


def flushed(item: dict[str, Any]) -> dict[str, Any]:
    """Event item ``item`` as a later commit writes it when moving it out of the head."""
    return {**item, "flushed": {"BOOL": True}}


def cleared(head_item: dict[str, Any]) -> dict[str, Any]:
    """``head_item`` after its outbox was cleared (same pending events)."""
    return {k: v for k, v in head_item.items() if k not in ("outbox", "outbox_z")}


def per_record(rig: Rig, batch: list[Any]) -> list[list[int]]:
    """The ids of the hook events each record of ``batch`` adds."""
    return [[e.id for e in hooks.events] for hooks in StreamDecoder(rig.log).decode(batch)]


@pytest.mark.parametrize("created", [True, False], ids=["head-insert", "head-modify"])
def test_a_head_commit_adds_its_events_once_and_its_flush_and_outbox_clear_nothing(
    created: bool,
) -> None:
    rig = Rig()
    part = Partition(rig)
    ev1, head1 = part.commit()
    ev2, head2 = part.commit()
    first, second = pending(head1, ev1), pending(head2, ev2)
    batch = [
        record(1, first) if created else record(1, first, old=part.created),
        record(2, cleared(first), old=first),  # the outbox clear: same ev_sk
        record(3, flushed(ev1)),  # the next commit moves commit 1's events out of the head
        record(4, second, old=cleared(first)),  # ... and updates the head with its own
    ]
    assert per_record(rig, batch) == [[1, 2, 3], [], [], [4, 5, 6]]
    for _ in range(2):  # a redelivery: the same dedup keys, dropped by the hook
        assert hooks_lambda.process(batch, rig.runtime) == []
    assert rig.hook.ids(ARN) == [1, 2, 3, 4, 5, 6]
    assert rig.hook.repeats == 6  # the redelivery's; none within a delivery
    assert rig.hook.calls == 2 * 2  # one dispatch per record with events
    assert rig.client.gets == 0  # the head images named the execution


def test_a_transaction_commit_after_a_head_commit_adds_its_event_items_events_once() -> None:
    rig = Rig()
    part = Partition(rig)
    ev1, head1 = part.commit()
    ev2, head2 = part.commit(count=5)  # large events: the transaction path, ev_* removed
    first = pending(head1, ev1)
    batch = [
        record(1, first, old=part.created),
        record(2, flushed(ev1)),
        record(3, ev2),
        record(4, head2, old=first),
        record(5, cleared(head2), old=head2),
        record(6, None, old=ev1, name="REMOVE"),  # the sweeper's: nothing
        record(7, None, old=first, name="REMOVE"),
    ]
    assert per_record(rig, batch) == [[1, 2, 3], [], [4, 5, 6, 7, 8], [], [], [], []]
    assert hooks_lambda.process(batch, rig.runtime) == []
    assert rig.hook.ids(ARN) == list(range(1, 9))
    assert rig.hook.repeats == 0


def test_interleaved_head_and_transaction_commits_of_two_executions_keep_record_order() -> None:
    rig = Rig()
    # Commit n of each execution: a head update (even n) or a transaction (odd n).
    parts = {arn: Partition(rig, arn) for arn in (ARN, OTHER)}
    streams: dict[str, list[tuple[dict[str, Any], dict[str, Any] | None, list[int]]]] = {}
    for arn, part in parts.items():
        stream: list[tuple[dict[str, Any], dict[str, Any] | None, list[int]]] = []
        old, held = part.created, None  # the head image before, its pending event item
        for n in range(6):
            first = part.next_id
            ids = list(range(first, first + 2 + n))
            item, head_item = part.commit(count=len(ids))
            if held is not None:  # the commit first moves the held events out of the head
                stream.append((flushed(held), None, []))
            if n % 2 == 0:
                new, held = pending(head_item, item), item
                stream.append((new, old, ids))
            else:
                new, held = head_item, None
                stream += [(item, None, ids), (new, old, [])]
            stream.append((cleared(new), new, []))
            old = cleared(new)
        streams[arn] = stream
    merged = [pair for both in zip(streams[ARN], streams[OTHER], strict=True) for pair in both]
    batch = [record(n, new, old=old) for n, (new, old, _) in enumerate(merged, 1)]
    assert per_record(rig, batch) == [ids for _, _, ids in merged]
    assert hooks_lambda.process(batch, rig.runtime) == []
    total = sum(range(2, 8))
    assert rig.hook.ids(ARN) == rig.hook.ids(OTHER) == list(range(1, total + 1))
    assert [e.execution.execution_arn for e in rig.hook.events[:4]] == [ARN, ARN, OTHER, OTHER]
    assert rig.hook.repeats == 0


@pytest.mark.parametrize("compress_above", [1_000_000, 256], ids=["ev", "ev_z"])
def test_pending_events_become_the_same_hook_events_as_their_event_item(
    compress_above: int,
) -> None:
    rig = Rig(compress_above=compress_above)
    part = Partition(rig)
    item, head_item = part.commit(count=40)
    with_events = pending(head_item, item)
    assert ("ev_z" in with_events) is (compress_above == 256)
    assert ("ev" in with_events) is (compress_above != 256)
    from_head = StreamDecoder(rig.log).decode([record(1, with_events, old=part.created)])
    from_item = StreamDecoder(rig.log).decode([record(1, item), record(2, head_item)])
    assert [e.id for e in from_head[0].events] == list(range(1, 41))
    assert from_head[0].events == from_item[0].events  # kind, state name, event, execution


def _garbage_z(item: dict[str, Any]) -> None:
    item["ev_z"] = {"B": b"\x78\x9cnot zlib at all"}


@pytest.mark.parametrize(
    "spoil",
    [
        _garbage_z,
        lambda item: item.update(ev={"S": "[{not json"}),
        lambda item: item.update(ev={"S": '{"id": 1}'}),  # not a list
        lambda item: item.update(ev={"S": '[1, "two", {"id": "3"}]'}),  # no event has an id
        lambda item: item.update(ev={"N": "1"}),  # not a string
        lambda item: item.update(ev_sk={"N": "1"}),  # no ev_sk: no pending events
    ],
    ids=["corrupt-ev_z", "bad-json", "not-a-list", "no-ids", "ev-not-S", "ev_sk-not-S"],
)
def test_unreadable_pending_events_are_skipped_and_the_next_commits_delivered(spoil: Any) -> None:
    rig = Rig()
    part = Partition(rig)
    ev1, head1 = part.commit()
    ev2, head2 = part.commit()
    bad = pending(head1, ev1)
    del bad["ev_z"]  # compressed, as the log writes these events
    spoil(bad)
    batch = [record(1, bad, old=part.created), record(2, pending(head2, ev2), old=bad)]
    assert hooks_lambda.process(batch, rig.runtime) == []  # never failing the batch
    assert rig.hook.ids(ARN) == [4, 5, 6]


def test_an_outage_reading_pending_events_fails_the_batch_from_that_executions_first() -> None:
    rig = Rig()
    part = Partition(rig)
    ev1, head1 = part.commit()
    ev2, head2 = part.commit()
    other = Partition(rig, OTHER)
    ev3, head3 = other.commit()
    real, down = rig.log.item_events, [True]

    def item_events(item: dict[str, Any]) -> list[dict[str, Any]]:
        if down[0] and ARN in item["pk"]["S"]:
            raise LogUnavailableError("payload store: unreachable")
        return real(item)

    rig.log.item_events = item_events  # type: ignore[method-assign]
    first = pending(head1, ev1)
    batch = [
        record(1, pending(head3, ev3), old=other.created),
        record(2, first, old=part.created),
        record(3, pending(head2, ev2), old=first),
    ]
    assert hooks_lambda.process(batch, rig.runtime) == ["2", "3"]
    assert rig.hook.ids(OTHER) == [1, 2, 3] and rig.hook.ids(ARN) == []
    down[0] = False  # the retry resumes at the first failed record
    assert hooks_lambda.process(batch[1:], rig.runtime) == []
    assert rig.hook.ids(ARN) == [1, 2, 3, 4, 5, 6] and rig.hook.repeats == 0


def test_an_express_heads_pending_events_are_ignored_beside_a_standard_executions() -> None:
    rig = Rig()
    rig.log.put_many([head(EXPRESS)])
    started = rig.client.written[-1]
    rig.log.commit(head(EXPRESS, seq=2), 1, events(1, 2))
    item = pending_item(rig.client.items[(f"EX#{EXPRESS}", "HEAD")])
    assert item is not None
    rig.log.put_many([head(EXPRESS, "SUCCEEDED", seq=3)])
    done = rig.client.written[-1]
    part = Partition(rig)
    ev1, head1 = part.commit()
    first, express = pending(head1, ev1), pending(started, item)
    batch = [
        record(1, express),
        record(2, first, old=part.created),
        record(3, flushed(item)),
        record(4, pending(done, item), old=express),
    ]
    assert hooks_lambda.process(batch, rig.runtime) == []
    kinds = [e.kind for e in rig.hook.events if e.execution.execution_arn == EXPRESS]
    assert kinds == ["ExecutionStarted", "ExecutionSucceeded"]
    assert rig.hook.ids(ARN) == [1, 2, 3]
    assert rig.hook.repeats == 0


def test_a_group_claim_in_the_event_item_and_its_record_writes_add_nothing() -> None:
    """Round 10: commit 1's first task group is claimed on its event item, the claim writing
    the events' copy (an INSERT, ``flushed``); the record's later writes are MODIFYs of it;
    the runner's commit then makes no copy of its own (stepflow.aws.log_claims)."""
    rig = Rig()
    part = Partition(rig)
    ev1, head1 = part.commit()
    ev2, head2 = part.commit()
    first, second = pending(head1, ev1), pending(head2, ev2)
    lease = {"version": {"N": "1"}, "owner": {"S": "runner-a"}, "lease_until": {"N": "9"}}
    claimed = {**flushed(ev1), **lease}
    released = {**claimed, "version": {"N": "2"}, "released": {"N": "1"}}
    batch = [
        record(1, first, old=part.created),
        record(2, claimed),  # the claim, with commit 1's events copied out of the head
        record(3, second, old=first),  # the runner's commit: the head carries its events
        record(4, released, old=claimed),  # the record given back
        record(5, {**released, "version": {"N": "3"}}, old=released),
    ]
    assert per_record(rig, batch) == [[1, 2, 3], [], [4, 5, 6], [], []]
    assert hooks_lambda.process(batch, rig.runtime) == []
    assert rig.hook.ids(ARN) == [1, 2, 3, 4, 5, 6]
    assert rig.hook.repeats == 0
    # AND a batch of the record's writes alone costs no head read (review 33)
    decoder = StreamDecoder(rig.log)
    assert [h.events for h in decoder.decode(batch[1::2] + batch[4:])] == [[], [], []]
    assert decoder.head_reads == 0
