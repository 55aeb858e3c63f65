"""A commit's first task group claimed on its events' item (stepflow.aws.log_claims), on moto.

The record of ``tasks#<seq>#0`` lives in commit ``<seq>``'s event item when that commit
carried its events and they are small, and the claim that creates it copies them: one
write where the claim and the copy were two, and the runner's commit skips its copy.
These tests count the writes, check that every claimer finds the record in the same place
whatever head it saw (two places would run the group twice), that neither the copy nor
the record's later writes erase the other, and read every history back in full
(tests/integration/test_log_pending.py's ``assert_history``). Also run on DynamoDB Local
(tests/dynamodb_local/pending_on_dynamodb_local.py).
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from stepflow.aws.log_table import LogIntegrityError
from stepflow.runtime import leases
from stepflow.runtime.leases import LeaseConflictError, TaskLease
from stepflow.runtime.payloads import InMemoryPayloadStore

from tests.integration.test_log_pending import (
    ARN,
    HEAD_KEY,
    TABLE,
    Crash,
    assert_history,
    aws,  # noqa: F401  (a fixture)
    events,
    head,
    new_log,
    record,
)
from tests.integration.test_log_pending import raw as raw  # a fixture

pytest.importorskip("moto")

GROUP = "tasks#2#0"
"""The first group of commit 2, whose events (3-4) start at event item EV#3."""
EV3 = "EV#000000000003"
NOW, LEASE = 100.0, 900.0
SIZE = 800
"""Each event's output in the large-events test: the two compress to more than 768 bytes."""


def item(raw: Any, sk: str) -> dict[str, Any] | None:
    """The stored item ``sk`` of the execution's partition, or None."""
    key = {**HEAD_KEY, "sk": {"S": sk}}
    found: dict[str, Any] | None = raw.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get(
        "Item"
    )
    return found


def two_commits(raw: Any, size: int = 10) -> Any:
    """A log that created the execution and made commit 2 (events 3-4, carried), read back."""
    log, client = new_log(raw)
    log.create(record(1), events(1, 2))
    log.commit(record(2), 1, events(3, 2, size=size))
    assert head(raw)["ev_seq"] == {"N": "2"}  # carried: pending in the head
    assert log.get(ARN) is not None  # the runner reads the head before it claims
    client.calls.clear()
    return log, client


def committed(size: int = 10) -> list[dict[str, Any]]:
    return events(1, 2) + events(3, 2, size=size)


def test_the_first_groups_claim_is_the_copy_and_the_commit_skips_its_own(raw: Any) -> None:
    log, client = two_commits(raw)
    # WHEN the runner claims commit 2's first group
    claim = leases.claim_group(log, ARN, GROUP, "runner-a", NOW, LEASE)
    # THEN it is acquired with ONE write: the event item, holding the events and the record
    assert claim.status == "acquired"
    assert client.writes() == ["update_item"]
    stored = item(raw, EV3)
    assert stored is not None and item(raw, f"TK#{GROUP}") is None
    assert stored["flushed"] == {"BOOL": True} and stored["seq"] == {"N": "2"}
    assert stored["version"] == {"N": "1"} and stored["owner"] == {"S": "runner-a"}
    assert log.lease(ARN, GROUP) == claim.lease
    assert_history(new_log(raw)[0], committed())
    # WHEN the runner commits the group's results from seq 2
    client.calls.clear()
    log.commit(record(3), 2, events(5, 1))
    # THEN the commit is the head's update alone: no second copy
    assert client.writes() == ["update_item"]
    assert_history(new_log(raw)[0], [*committed(), *events(5, 1)])
    # AND the record survived the commit: another runner finds it live, and runs nothing
    other, _ = new_log(raw)
    busy = leases.claim_group(other, ARN, GROUP, "runner-b", NOW + 1, LEASE)
    assert busy.status == "busy" and busy.lease is not None and busy.lease.owner == "runner-a"


@pytest.mark.parametrize("seen", ["pending", "moved-on", "copied-out", "fresh"])
def test_every_claimer_finds_the_record_in_the_same_place(raw: Any, seen: str) -> None:
    log, _ = two_commits(raw)
    first = leases.claim_group(log, ARN, GROUP, "runner-a", NOW, LEASE)
    assert first.status == "acquired"
    other, other_client = new_log(raw)
    if seen == "pending":  # it read the head at seq 2, the events still pending there
        assert other.get(ARN) is not None
    elif seen == "moved-on":  # the head moved past seq 2 (its events copied by that commit)
        log.commit(record(3), 2, events(5, 1))
        assert other.get(ARN) is not None
    elif seen == "copied-out":  # copied out at the same seq by an eventless keep
        rng = random.Random(7)
        grown = record(2, input={"noise": "".join(rng.choice("abcdefgh") for _ in range(5_500))})
        big, _ = new_log(raw, item_budget=3_000, payloads=InMemoryPayloadStore())
        big.keep_outbox(grown, [])
        assert "ev_sk" not in head(raw)
        assert other.get(ARN) is not None
    # WHEN another runner claims the same group THEN it finds the first one's live record
    other_client.calls.clear()
    second = leases.claim_group(other, ARN, GROUP, "runner-b", NOW + 1, LEASE)
    assert second.status == "busy"
    assert second.lease is not None and second.lease.owner == "runner-a"
    assert item(raw, f"TK#{GROUP}") is None
    assert "put_item" not in other_client.calls


def test_a_released_record_is_taken_again_and_a_recorded_result_kept_with_the_events(
    raw: Any,
) -> None:
    store = InMemoryPayloadStore()
    log, _ = new_log(raw, payloads=store)
    log.create(record(1), events(1, 2))
    log.commit(record(2), 1, events(3, 2))
    assert log.get(ARN) is not None
    first = leases.claim_group(log, ARN, GROUP, "runner-a", NOW, LEASE)
    assert first.lease is not None
    # WHEN its runner gives it back and another takes it
    log.put_lease(leases.release(first.lease, NOW + 1))
    other, _ = new_log(raw, payloads=store)
    second = leases.claim_group(other, ARN, GROUP, "runner-b", NOW + 2, LEASE)
    assert second.status == "acquired" and second.lease is not None
    assert second.lease.version == 3
    # AND records the members done, a small result and a large one (offloaded)
    big = {"type": "TaskSucceeded", "output": "x" * 500_000}
    done = {"done": {"t1": {"type": "TaskSucceeded", "output": "1"}, "t2": big}}
    leases.finish(other, second.lease, done)
    # THEN the record reads back with its result, the events are intact, and the lease's
    # writes removed nothing: a third claim (after the lease ran out) gets the list
    stored = other.lease(ARN, GROUP)
    assert stored is not None and stored.result == done and stored.version == 4
    assert_history(new_log(raw, payloads=store)[0], committed())
    third = leases.claim_group(log, ARN, GROUP, "runner-c", NOW + 2 * LEASE, LEASE)
    assert third.status == "acquired" and third.result == done
    # AND a result written over the offloaded one leaves no stale form behind
    assert third.lease is not None
    log.put_lease(third.lease.next(result={"done": {}}))
    again = log.lease(ARN, GROUP)
    assert again is not None and again.result == {"done": {}}
    stored_item = item(raw, EV3)
    assert stored_item is not None and "result_ref" not in stored_item
    assert_history(new_log(raw, payloads=store)[0], committed())


def test_a_stale_version_is_refused_and_writes_nothing(raw: Any) -> None:
    log, _ = two_commits(raw)
    claim = leases.claim_group(log, ARN, GROUP, "runner-a", NOW, LEASE)
    assert claim.lease is not None
    before = item(raw, EV3)
    with pytest.raises(LeaseConflictError):
        log.put_lease(TaskLease(ARN, GROUP).next(owner="late", until=NOW + LEASE))
    with pytest.raises(LeaseConflictError):
        log.put_lease(replace(claim.lease, version=8, owner="late"))
    assert item(raw, EV3) == before


def test_later_groups_and_large_events_keep_their_own_record(raw: Any) -> None:
    # a later group of the same commit: its own item, as before
    log, client = two_commits(raw)
    later = leases.claim_group(log, ARN, "tasks#2#10", "runner-a", NOW, LEASE)
    assert later.status == "acquired" and client.writes() == ["put_item"]
    assert item(raw, "TK#tasks#2#10") is not None
    assert item(raw, EV3) is None  # still pending in the head: nothing copied


def test_large_carried_events_keep_the_record_in_its_own_item_for_every_claimer(
    raw: Any,
) -> None:
    log, client = two_commits(raw, size=SIZE)  # events 3-4: about 1 KB, carried
    pending = head(raw)
    size = len(pending["ev_z"]["B"]) if "ev_z" in pending else len(pending["ev"]["S"].encode())
    assert size > 768
    first = leases.claim_group(log, ARN, GROUP, "runner-a", NOW, LEASE)
    assert first.status == "acquired" and client.writes() == ["put_item"]
    assert item(raw, f"TK#{GROUP}") is not None
    log.commit(record(3), 2, events(5, 1))  # copies events 3-4
    other, _ = new_log(raw)
    assert other.get(ARN) is not None
    second = leases.claim_group(other, ARN, GROUP, "runner-b", NOW + 1, LEASE)
    assert second.status == "busy"
    stored = item(raw, EV3)
    assert stored is not None and "version" not in stored
    assert_history(other, [*committed(size=SIZE), *events(5, 1)])


def test_an_event_item_of_another_commit_is_an_integrity_error_not_a_loop(raw: Any) -> None:
    log, _ = two_commits(raw)
    raw.put_item(
        TableName=TABLE,
        Item={**HEAD_KEY, "sk": {"S": EV3}, "seq": {"N": "7"}, "events": {"S": "[]"}},
    )
    with pytest.raises(LogIntegrityError):
        leases.claim_group(log, ARN, GROUP, "runner-a", NOW, LEASE)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_claimer_dying_at_its_write_leaves_one_record_or_none(raw: Any, when: str) -> None:
    log, client = two_commits(raw)
    client.die[("update_item", when)] = 0
    with pytest.raises(Crash):
        leases.claim_group(log, ARN, GROUP, "runner-a", NOW, LEASE)
    # THEN the next claimer finds the record (after) or takes it (before)
    other, _ = new_log(raw)
    second = leases.claim_group(other, ARN, GROUP, "runner-b", NOW + 1, LEASE)
    assert second.status == ("busy" if when == "after" else "acquired")
    # AND a fresh writer commits from seq 2, copying over the claim's copy, keeping it
    writer, _ = new_log(raw)
    writer.commit(record(3), 2, events(5, 1))
    stored = writer.lease(ARN, GROUP)
    assert stored is not None and stored.owner == ("runner-a" if when == "after" else "runner-b")
    assert_history(new_log(raw)[0], [*committed(), *events(5, 1)])


def test_a_record_item_gone_under_a_known_place_is_an_integrity_error_not_a_loop(
    raw: Any,
) -> None:
    log, _ = two_commits(raw)
    log.commit(record(3), 2, events(5, 1))  # commit 2's events copied to their item
    other, _ = new_log(raw)
    assert other.lease(ARN, GROUP) is None  # finds the place: the copy, no record yet
    raw.delete_item(TableName=TABLE, Key={**HEAD_KEY, "sk": {"S": EV3}})
    with pytest.raises(LogIntegrityError):
        leases.claim_group(other, ARN, GROUP, "runner-b", NOW, LEASE)


def test_claimers_agree_across_a_commit_without_events(raw: Any) -> None:
    """Review 33: a heartbeat's commit moves the seq and leaves commit 2's events pending."""
    log, _ = two_commits(raw)
    log.commit(record(3), 2, [])  # no events: the head at seq 3 still carries events 3-4
    assert head(raw)["ev_seq"] == {"N": "2"}
    a, _ = new_log(raw)  # a runner that reads the head at seq 3
    assert a.get(ARN) is not None
    first = leases.claim_group(a, ARN, GROUP, "runner-a", NOW, LEASE)
    assert first.status == "acquired" and item(raw, f"TK#{GROUP}") is None
    log.commit(record(4), 3, events(5, 1))  # copies events 3-4 (keeping the record)
    b, _ = new_log(raw)  # a redelivery's runner, reading the head at seq 4
    assert b.get(ARN) is not None
    second = leases.claim_group(b, ARN, GROUP, "runner-b", NOW + 1, LEASE)
    assert second.status == "busy"
    assert second.lease is not None and second.lease.owner == "runner-a"
    assert_history(b, [*committed(), *events(5, 1)])


def test_turned_off_every_record_keeps_its_own_item_and_the_copy_keeps_none(raw: Any) -> None:
    """STEPFLOW_CLAIMS_IN_EVENTS=false: the first deploy of an upgrade (docs/deploy.md)."""
    log, _ = new_log(raw, claims_in_events=False)
    log.create(record(1), events(1, 2))
    log.commit(record(2), 1, events(3, 2))
    assert log.get(ARN) is not None
    claim = leases.claim_group(log, ARN, GROUP, "runner-a", NOW, LEASE)
    assert claim.status == "acquired" and item(raw, f"TK#{GROUP}") is not None
    log.commit(record(3), 2, events(5, 1))
    stored = item(raw, EV3)
    assert stored is not None and "version" not in stored
    assert_history(log, [*committed(), *events(5, 1)])


def test_the_setting_reaches_the_deployed_log(raw: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from stepflow.aws.settings import Settings
    from stepflow.aws.wiring import Wiring

    monkeypatch.setenv("STEPFLOW_CLAIMS_IN_EVENTS", "false")
    off = Wiring(Settings(table_name=TABLE), clients={"dynamodb": raw}).log
    monkeypatch.delenv("STEPFLOW_CLAIMS_IN_EVENTS")
    on = Wiring(Settings(table_name=TABLE), clients={"dynamodb": raw}).log
    assert off._claims.enabled is False and on._claims.enabled is True
    # a value that is not a boolean stops the function at its start, naming the setting
    monkeypatch.setenv("STEPFLOW_CLAIMS_IN_EVENTS", "sometimes")
    with pytest.raises(ValueError, match="STEPFLOW_CLAIMS_IN_EVENTS"):
        Settings(table_name=TABLE)
