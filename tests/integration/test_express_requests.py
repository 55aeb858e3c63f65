"""The DynamoDB requests an EXPRESS map run makes per item, counted on moto.

The real batch runner (``stepflow.runtime.express``) and the real coordinator over
DynamoDBLog: each finished item's result is one 25th of a BatchWriteItem request, the
end reads each result back as one 100th of a BatchGetItem request, and no result
record is ever read or written alone (GetItem/PutItem). A duplicated last report
computes the end once.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from stepflow.runtime import InMemoryBus

from tests.moto_env import offline_aws
from tests.unit.map_run_support import MeteredLog, drain, finished, start_message, stepper

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

from stepflow.aws import DynamoDBLog, create_table  # noqa: E402

TABLE = "stepflow-express-requests"


class CountingClient:
    """Counts each DynamoDB request as (operation, whether it names a result record)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[tuple[str, bool]] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name.startswith("get_waiter"):
            return attr

        def call(**kwargs: Any) -> Any:
            self.calls[(name, "#xr/" in repr(kwargs))] += 1
            return attr(**kwargs)

        return call

    def total(self, name: str) -> int:
        return self.calls[(name, True)] + self.calls[(name, False)]


@pytest.fixture
def client() -> Iterator[CountingClient]:
    with pytest.MonkeyPatch.context() as env, offline_aws(env):
        inner = boto3.client("dynamodb", region_name="us-east-1")
        create_table(inner, TABLE)
        yield CountingClient(inner)


def run(client: CountingClient, items: list[Any], **fields: Any) -> dict[str, Any]:
    log = MeteredLog(DynamoDBLog(TABLE, client=client))
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message(items, execution_type="EXPRESS", **fields))
    [done] = finished(drain(s, bus))
    assert s.calls == Counter({repr(n): 1 for n in items})  # type: ignore[attr-defined]
    return done


def test_results_cost_a_25th_write_and_a_100th_read_per_item(client: CountingClient) -> None:
    items = list(range(250))
    done = run(client, items)
    assert done["status"] == "SUCCEEDED"
    assert done["output"] == [{"r": 2 * n} for n in items]
    # Window 1,000: batches of 100, 100 and 50 items; 4 + 4 + 2 write requests.
    assert client.calls[("batch_write_item", True)] == 10
    assert client.calls[("batch_get_item", True)] == math.ceil(len(items) / 100)
    assert client.calls[("get_item", True)] == 0
    assert client.calls[("put_item", True)] == 0
    requests = sum(client.calls.values())
    assert requests / len(items) < 0.35, client.calls


def test_a_small_window_runs_batches_of_25(client: CountingClient) -> None:
    items = list(range(60))
    done = run(client, items, max_concurrency=100)
    assert done["output"] == [{"r": 2 * n} for n in items]
    assert client.calls[("batch_write_item", True)] == 3  # batches of 25, 25 and 10
    assert client.calls[("batch_get_item", True)] == 1


def test_a_redrive_checks_the_results_100_a_request(client: CountingClient) -> None:
    items: list[Any] = [*range(150), "bad", *range(150, 299)]
    log = MeteredLog(DynamoDBLog(TABLE, client=client))
    bus = InMemoryBus(0.0)
    s = stepper(log, bus)
    bus.send(start_message(items, execution_type="EXPRESS"))
    [failed] = finished(drain(s, bus))
    assert failed["status"] == "FAILED"
    client.calls.clear()
    bus.send(
        start_message(items, seq=7, parent_redrive=1, execution_type="EXPRESS")
    )  # the parent's redrive
    [again] = finished(drain(s, bus))
    assert again["status"] == "FAILED"  # "bad" fails again; the rest is not run again
    assert s.calls[repr("bad")] == 2  # type: ignore[attr-defined]
    assert all(s.calls[repr(n)] == 1 for n in range(299))  # type: ignore[attr-defined]
    assert client.calls[("get_item", True)] == 0
    # The redrive's check of 299 results; a failed end reads nothing back.
    assert client.calls[("batch_get_item", True)] == 3
