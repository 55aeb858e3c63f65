"""An activity's handler for ``stepflow worker --activity approve approvals:approve``.

Deployed on Fargate by ``stepflow_cdk.workers.StepFlowWorker`` (docs/deploy.md),
or run by hand against ``stepflow local`` or a deployed API.
"""

from __future__ import annotations

from typing import Any

AUTO_APPROVE_LIMIT = 1000
"""Orders up to this total are approved without a person looking."""


class NeedsReview(Exception):
    """The order is over the limit: the workflow's Catch sends it to a person."""


def approve(order: dict[str, Any]) -> dict[str, Any]:
    """Approve ``order`` (its ``total``) when it is within the limit, else fail the task."""
    total = order.get("total")
    if not isinstance(total, int | float) or isinstance(total, bool) or total < 0:
        raise ValueError(f"total must be a number of 0 or more, not {total!r}")
    if total > AUTO_APPROVE_LIMIT:
        raise NeedsReview(f"total {total} is over {AUTO_APPROVE_LIMIT}")
    return {**order, "approved": True}
