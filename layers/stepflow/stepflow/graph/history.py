"""Reading an execution's whole history through GetExecutionHistory, page by page.

The one server-side pager (``stepflow graph --execution``; the web console pages
in the browser with the same rules): it asks without the states' inputs and
outputs, refuses a server that repeats a ``nextToken``, and stops with an error,
never silently, past :data:`MAX_HISTORY_PAGES`.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["MAX_HISTORY_PAGES", "HistoryClient", "HistoryError", "read_history"]

MAX_HISTORY_PAGES = 10_000
"""The most pages read for one execution (a guard against a looping server)."""
PAGE_SIZE = 1000


class HistoryClient(Protocol):
    """What the pager needs of a Step Functions client (boto3's has it)."""

    def get_execution_history(self, **request: Any) -> Any:
        """One GetExecutionHistory call."""


class HistoryError(Exception):
    """The history could not be read whole."""


def read_history(
    client: HistoryClient, execution_arn: str, page_size: int = PAGE_SIZE
) -> list[dict[str, Any]]:
    """Every event of an execution, oldest first, without inputs and outputs."""
    events: list[dict[str, Any]] = []
    token: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_HISTORY_PAGES):
        request: dict[str, Any] = {
            "executionArn": execution_arn,
            "maxResults": page_size,
            "includeExecutionData": False,
        }
        if token:
            request["nextToken"] = token
        page = client.get_execution_history(**request)
        events.extend(page.get("events", []))
        token = page.get("nextToken")
        if not token:
            return events
        if token in seen:
            raise HistoryError("GetExecutionHistory returned the same nextToken twice")
        seen.add(token)
    raise HistoryError(f"the history has more than {MAX_HISTORY_PAGES} pages")
