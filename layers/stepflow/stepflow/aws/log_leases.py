"""Task lease records of the DynamoDB log: ``sk = TK#<task id>`` items.

Each record (:class:`~stepflow.runtime.leases.TaskLease`) is written only
conditionally on its ``version`` (see :func:`stepflow.aws.log_items.lease_condition`),
either alone (:meth:`LeaseRecords.put_lease`) or as the fence of a commit's
transaction (:meth:`LeaseRecords.fence_item`).
"""

from __future__ import annotations

from typing import Any

from stepflow.aws.log_items import ItemPacker, lease_condition, lease_draft, read_lease
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

    def lease(self, execution_arn: str, task_id: str) -> TaskLease | None:
        """The attempt's lease record (strongly consistent read), or None."""
        key = _key(execution_arn, f"TK#{task_id}")
        item = self._call("get_item", Key=key, ConsistentRead=True).get("Item")
        return read_lease(self._items, execution_arn, item) if item else None

    def put_lease(self, lease: TaskLease) -> None:
        """Write ``lease`` iff the stored record is at the version before it."""
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
