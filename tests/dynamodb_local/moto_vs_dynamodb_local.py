"""DynamoDBLog where moto and the real DynamoDB engine could disagree, run on both.

Each test runs on moto and on DynamoDB Local and states what real DynamoDB
does; where moto (or DynamoDBLog) differs, the case is a strict xfail naming
the difference, so a fix on either side shows up as an XPASS. Like
``contract_on_dynamodb_local.py``, this module runs only inside the private
network namespace that ``test_dynamodb_local.py`` makes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from moto import mock_aws
from stepflow.aws import DynamoDBLog, LogUnavailableError, PayloadTooLargeError, create_table
from stepflow.runtime import ConflictError, ExecutionAlreadyExistsError, leases

from tests.integration.test_log_contract import ARN, make_events, make_record

TABLE = "stepflow-log"
REGION = "us-east-1"


@pytest.fixture(params=["moto", "dynamodb-local"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The engine name; ``client`` talks to it."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    if request.param == "moto":
        with mock_aws():
            yield "moto"
    else:
        request.getfixturevalue("local_endpoint")
        yield "dynamodb-local"


@pytest.fixture
def client(backend: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A client of ``backend`` with a fresh log table."""
    endpoint = request.getfixturevalue("local_endpoint") if backend == "dynamodb-local" else None
    dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint)
    create_table(dynamodb, TABLE)
    yield dynamodb
    dynamodb.delete_table(TableName=TABLE)


def differs_on(
    request: pytest.FixtureRequest, backend: str, *, raises: Any = None, **why: str
) -> None:
    """Mark this case a strict xfail if it runs on an engine named in ``why``."""
    reason = why.get(backend.replace("-", "_"))
    if reason:
        request.applymarker(pytest.mark.xfail(strict=True, raises=raises, reason=reason))


class Counting:
    """A client proxy that records the operations called."""

    def __init__(self, client: Any) -> None:
        self.client, self.calls = client, list[str]()

    def __getattr__(self, operation: str) -> Any:
        self.calls.append(operation)
        return getattr(self.client, operation)


# -- conditional writes return the item they failed on -------------------------------


def test_a_refused_create_rereads_nothing_and_a_busy_claim_costs_two(client: Any) -> None:
    # GIVEN an execution and a task lease held by w1
    log = DynamoDBLog(TABLE, client=client)
    first = make_record()
    log.create(first, make_events(1, 1))
    leases.claim(log, ARN, "t-1", "w1", 0.0, 60.0)
    counting = Counting(client)
    log = DynamoDBLog(TABLE, client=counting)
    # WHEN the ARN is created again and w2 claims the lease
    with pytest.raises(ExecutionAlreadyExistsError) as caught:
        log.create(replace(first, input={"other": 1}), make_events(1, 2))
    claim = leases.claim(log, ARN, "t-1", "w2", 1.0, 60.0)
    # THEN the cancellation reason carried the stored item (ALL_OLD): no re-read. The create
    # read the partition's last item first (log_lifecycle: its head would carry its
    # events), found a head, and so went the transaction's way. The claim tries its
    # conditional write first and reads the lease only when it fails.
    assert caught.value.existing == first and claim.status == "busy"
    assert counting.calls == ["query", "transact_write_items", "put_item", "get_item"]


# -- item size ---------------------------------------------------------------------


def test_the_400_kb_guard_admits_only_items_dynamodb_accepts(
    client: Any, backend: str, request: pytest.FixtureRequest
) -> None:
    differs_on(
        request,
        backend,
        raises=LogUnavailableError,
        moto="moto caps an item at 405,000 bytes; DynamoDB (and DynamoDB Local) at 409,600",
    )
    log = DynamoDBLog(TABLE, client=client, compress_above=10**9)

    def admitted(size: int) -> bool:
        record = make_record(execution_arn=f"{ARN}-{size}", input="x" * size, outbox=())
        try:
            log.create(record, [])
        except PayloadTooLargeError:
            return False
        assert log.get(record.execution_arn) == record
        return True

    # GIVEN heads of growing input size, WHEN the guard's limit is searched for
    low, high = 300_000, 420_000
    assert admitted(low) and not admitted(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if admitted(middle) else (low, middle)
    # THEN every head the guard admitted, up to the last byte, was stored intact
    assert low > 409_000


# -- history tokens ------------------------------------------------------------------


@pytest.mark.parametrize("token", ["-5:0", "4:-1", "99999999999999:0"])
def test_an_out_of_range_history_token_is_refused_as_bad_input(
    client: Any, backend: str, token: str, request: pytest.FixtureRequest
) -> None:
    # GIVEN an execution with two decisions
    log = DynamoDBLog(TABLE, client=client)
    log.create(make_record(), make_events(1, 3))
    log.commit(make_record(seq=2), 1, make_events(4, 3))
    # WHEN a well-formed token out of the log's range is presented THEN it is bad input
    with pytest.raises(ValueError, match="token"):
        log.history(ARN, next_token=token, limit=2)


# -- contention ------------------------------------------------------------------------


def test_of_eight_concurrent_commits_from_one_seq_exactly_one_wins(
    client: Any, backend: str
) -> None:
    if backend == "moto":
        pytest.skip(
            "moto's in-process conditional writes are not atomic across threads: two plain "
            "update_item calls conditioned on the same seq can both succeed (seen here)"
        )
    log = DynamoDBLog(TABLE, client=client)
    for round_ in range(5):
        # GIVEN an execution at seq 1 and eight writers that all read it
        arn = f"{ARN}-{round_}"
        log.create(make_record(execution_arn=arn), make_events(1, 1))
        barrier, outcomes = threading.Barrier(8), dict[int, str]()

        def write(
            writer: int,
            arn: str = arn,
            barrier: threading.Barrier = barrier,
            outcomes: dict[int, str] = outcomes,
        ) -> None:
            record = make_record(execution_arn=arn, seq=2, state={"by": writer})
            events = make_events(2, 2) if writer % 2 else []  # transactional and plain commits
            barrier.wait()
            try:
                log.commit(record, 1, events)
                outcomes[writer] = "won"
            except ConflictError:
                outcomes[writer] = "conflict"
            except Exception as exc:  # recorded, so the assertion below shows it
                outcomes[writer] = repr(exc)

        # WHEN they commit at once
        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # THEN exactly one won, the others saw a conflict, and the head is the winner's
        winners = [n for n, outcome in outcomes.items() if outcome == "won"]
        assert len(winners) == 1 and len(outcomes) == 8, outcomes
        assert sorted(set(outcomes.values())) == ["conflict", "won"], outcomes
        head = log.get(arn)
        assert head is not None and head.seq == 2 and head.state == {"by": winners[0]}
