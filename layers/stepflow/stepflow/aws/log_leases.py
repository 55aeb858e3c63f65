"""Task lease records of the DynamoDB log: ``sk = TK#<task id>`` items.

Each record (:class:`~stepflow.runtime.leases.TaskLease`) is written only
conditionally on its ``version`` (see :func:`stepflow.aws.log_items.lease_condition`),
either alone (:meth:`LeaseRecords.put_lease`) or as the fence of a commit's
transaction (:meth:`LeaseRecords.fence_item`). The record of a commit's first task
group may live in that commit's event item instead (a :class:`ClaimPlace`,
:mod:`stepflow.aws.log_claims`); it is then written by updates of its own attributes,
and its first write copies the commit's events too. Fences are an activity's records,
never a group's.
"""

from __future__ import annotations

from typing import Any

from stepflow.aws.log_claims import ClaimPlace, check_holder
from stepflow.aws.log_items import (
    LEASE_OPTIONAL,
    ItemPacker,
    lease_condition,
    lease_draft,
    read_lease,
)
from stepflow.aws.log_pending import FLUSHED, set_events
from stepflow.aws.log_table import Rejected as _Rejected
from stepflow.aws.log_table import TableCall
from stepflow.aws.log_table import key as _key
from stepflow.runtime.leases import LeaseConflictError, LeaseFence, TaskLease


class LeaseRecords:
    """Reads and conditionally writes the lease records of one log table."""

    def __init__(self, table: str, call: TableCall, items: ItemPacker) -> None:
        self.table = table
        self._call = call
        self._items = items

    def lease(
        self, execution_arn: str, task_id: str, place: ClaimPlace | None = None
    ) -> TaskLease | None:
        """The attempt's lease record (strongly consistent read), or None."""
        key = place.key if place is not None else _key(execution_arn, f"TK#{task_id}")
        item = self._call("get_item", Key=key, ConsistentRead=True).get("Item")
        if not item or (place is not None and "version" not in item):
            return None  # an event item that holds no record yet
        return read_lease(self._items, execution_arn, item, task_id)

    def put_lease(self, lease: TaskLease, place: ClaimPlace | None = None) -> None:
        """Write ``lease`` iff the stored record is at the version before it."""
        if place is not None:
            self._put_in_events(lease, place)
            return
        key = _key(lease.execution_arn, f"TK#{lease.task_id}")
        (item,) = self._items.seal([lease_draft(key, lease)], f"{lease.execution_arn} lease")
        expression, names, values = lease_condition(lease.version - 1)
        condition: dict[str, Any] = {"ConditionExpression": expression}
        if names:
            condition["ExpressionAttributeNames"] = names
            condition["ExpressionAttributeValues"] = values
        try:
            self._call("put_item", Item=item, **condition)
        except _Rejected:
            raise LeaseConflictError(lease) from None

    def fence_item(self, fence: LeaseFence) -> dict[str, Any]:
        """The transaction item that checks (or writes) a fence's lease record."""
        lease = fence.current
        key = _key(lease.execution_arn, f"TK#{lease.task_id}")
        expression, names, values = lease_condition(lease.version)
        condition: dict[str, Any] = {"ConditionExpression": expression}
        if names:
            condition["ExpressionAttributeNames"] = names
            condition["ExpressionAttributeValues"] = values
        if fence.new is None:
            return {"ConditionCheck": {"TableName": self.table, "Key": key, **condition}}
        (item,) = self._items.seal([lease_draft(key, fence.new)], f"{lease.execution_arn} lease")
        return {"Put": {"TableName": self.table, "Item": item, **condition}}

    def _put_in_events(self, lease: TaskLease, place: ClaimPlace) -> None:
        """Write ``lease`` into its commit's event item: an update of the record's attributes.

        The first version also writes the commit's events when they are still pending in
        the head (``place.carry``): the claim is their copy. Conditioned on the record's
        version and on the item holding that commit's events (or none yet, when carried).
        """
        what = f"{lease.execution_arn} lease"
        (item,) = self._items.seal([lease_draft(place.key, lease)], what)
        values = {k: v for k, v in item.items() if k not in ("pk", "sk")}
        names_removed = [n for n in LEASE_OPTIONAL if n not in values]
        carry = place.carry if lease.version == 1 else None
        carrying = carry is not None
        if carry is not None:
            values.update(carry)
            values[FLUSHED] = {"BOOL": True}
        expression, names, attribute_values = set_events(values, tuple(names_removed))
        version = "attribute_not_exists(#lv)" if lease.version == 1 else "#lv = :lv"
        holder = "(attribute_not_exists(sk) OR #seq = :seq)" if carrying else "#seq = :seq"
        attribute_values[":seq"] = {"N": str(place.seq)}
        if lease.version != 1:
            attribute_values[":lv"] = {"N": str(lease.version - 1)}
        try:
            self._call(
                "update_item",
                Key=place.key,
                UpdateExpression=expression,
                ConditionExpression=f"{version} AND {holder}",
                ExpressionAttributeNames={**names, "#lv": "version", "#seq": "seq"},
                ExpressionAttributeValues=attribute_values,
            )
        except _Rejected:
            check_holder(self._call, place, carrying)
            raise LeaseConflictError(lease) from None
