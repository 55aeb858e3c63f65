"""The outbox repair job: re-sends outboxes that stayed pending too long.

A commit records the messages it must send in the head's outbox and the
writer sends them right after; a writer that dies in between leaves them
there. The next delivery for that execution repairs it (the stepper re-sends a
pending outbox on any delivery), and the API leaves a delayed repair message
after a failed send and before a commit that ends an execution (before each commit
with ``STEPFLOW_REPAIR_DELAY_SECONDS``). This job is the backstop for everything else,
for running executions (an ended one is not in the index): on a
schedule (an EventBridge rule in the CDK stack, a loop in ``stepflow local``)
it lists the running executions through the sparse running index
(:data:`~stepflow.aws.topology.RUNNING_INDEX`), reads their heads, and for each
whose outbox is not empty and whose last commit is older than
``age_seconds`` (a runner that holds its tasks in place writes its "held until" mark
as the commit time, :mod:`stepflow.runtime.held_mark`: skipped until then) sends a
``repair`` message to the transition queue; the stepper that receives it re-sends
the outbox (with the usual lease checks), so the job itself never sends an outbox and
cannot race a live stepper.

Cost, per run, for R running executions: one Query page per shard and 1 KB of
index keys per ~4 executions, plus one eventually consistent read of each
head in BatchGetItem (0.5 read unit per 4 KB of head); per execution, two
index writes in its whole life (start and finish). At one run every 5 minutes
and heads under 4 KB, that is 288 x R / 2 read units a day: 10,000 running
executions cost about 1.44 M read units a day (about $0.18 at $0.125 per million;
estimated from list prices, not measured).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from stepflow.aws.log_items import doc_names
from stepflow.aws.topology import (
    COMMITTED_AT,
    RUNNING_INDEX,
    RUNNING_INDEX_PK,
    RUNNING_SHARDS,
)
from stepflow.aws.wiring import Wiring, build
from stepflow.runtime import MessageBus
from stepflow.runtime.held_mark import LONGEST_HOLD
from stepflow.runtime.repair import repair_message

SERVICE = "stepflow-outbox-repair"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="StepFlow", service=SERVICE)

_OUTBOX = doc_names("outbox")


class OutboxRepair:
    """Finds running executions with an old pending outbox and asks the stepper to resend it."""

    def __init__(
        self,
        *,
        client: Any,
        table_name: str,
        bus: MessageBus,
        age_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client, self.table, self.bus = client, table_name, bus
        self.age_seconds, self.clock = age_seconds, clock

    def run(self) -> list[str]:
        """One pass over the running index; returns the executions sent a repair message."""
        now = self.clock()
        repaired = []
        for keys in _batches(self._running(), 100):
            for head in self._heads(keys):
                committed = float(head[COMMITTED_AT]["N"]) if COMMITTED_AT in head else now
                # a runner's mark is a commit time ahead (skipped until it is old enough);
                # one further ahead than any invocation runs is believed by no one
                if _pending(head) and (
                    committed <= now - self.age_seconds or committed > now + LONGEST_HOLD
                ):
                    arn = head["pk"]["S"].removeprefix("EX#")
                    self.bus.send(repair_message(arn))
                    repaired.append(arn)
        return repaired

    def _running(self) -> Iterator[dict[str, Any]]:
        """The table keys of the running heads, shard by shard."""
        for shard in range(RUNNING_SHARDS):
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": RUNNING_INDEX,
                "KeyConditionExpression": "#p = :p",
                "ExpressionAttributeNames": {"#p": RUNNING_INDEX_PK},
                "ExpressionAttributeValues": {":p": {"S": f"RUN#{shard:02d}"}},
            }
            while True:
                page = self.client.query(**kwargs)
                for item in page.get("Items", []):
                    yield {"pk": item["pk"], "sk": item["sk"]}
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _heads(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The heads' commit time and outbox attributes (BatchGetItem, unprocessed retried)."""
        names = {"#c": COMMITTED_AT, **{f"#o{i}": n for i, n in enumerate(_OUTBOX)}}
        request: dict[str, Any] = {
            self.table: {
                "Keys": keys,
                "ProjectionExpression": "pk, " + ", ".join(names),
                "ExpressionAttributeNames": names,
            }
        }
        heads: list[dict[str, Any]] = []
        for _ in range(10):
            response = self.client.batch_get_item(RequestItems=request)
            heads.extend(response.get("Responses", {}).get(self.table, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
        return heads


def _pending(head: dict[str, Any]) -> bool:
    """True if the head's outbox holds messages (in any of its stored forms)."""
    if COMMITTED_AT not in head:
        return False
    plain, compressed, ref = _OUTBOX
    return compressed in head or ref in head or head.get(plain, {}).get("S", "[]") != "[]"


def _batches(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def from_wiring(wiring: Wiring) -> OutboxRepair:
    """The job over the wiring's table and transition queue, with its settings' age bound."""
    return OutboxRepair(
        client=wiring.client("dynamodb"),
        table_name=wiring.settings.table_name,
        bus=wiring.bus,
        age_seconds=wiring.settings.outbox_repair_age_seconds,
        clock=wiring.clock,
    )


_job: OutboxRepair | None = None


def configure(job: OutboxRepair | None) -> None:
    """Use ``job`` for the following invocations (None: build one from the environment)."""
    global _job
    _job = job


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    """The scheduled Lambda's entry point: one pass; returns how many were repaired."""
    global _job
    if _job is None:
        _job = from_wiring(build())
    repaired = _job.run()
    metrics.add_metric(name="OutboxesRepaired", unit=MetricUnit.Count, value=len(repaired))
    if repaired:
        logger.warning("re-sent pending outboxes", extra={"executions": repaired[:20]})
    return {"repaired": len(repaired)}
