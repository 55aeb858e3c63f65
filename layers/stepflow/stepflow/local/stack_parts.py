"""The local stack's parts that stand apart from it: the repair loop, moto's state, resources.

Kept out of :mod:`stepflow.local.stack` so that module stays readable in one sitting.
"""

from __future__ import annotations

import threading
import urllib.request
from typing import Any

from stepflow.aws import create_table
from stepflow.aws.outbox_repair import OutboxRepair

__all__ = ["RepairLoop", "ensure_bucket", "ensure_table", "fresh_moto", "release_moto"]


class RepairLoop:
    """Runs the outbox repair job every ``interval`` seconds on a daemon thread."""

    def __init__(self, job: OutboxRepair, interval: float) -> None:
        self.job, self.interval = job, interval
        self.runs = 0
        self.errors: list[Exception] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="outbox-repair", daemon=True)

    def start(self) -> RepairLoop:
        """Start the loop (its first pass after one interval)."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the pass in progress."""
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.job.run()
                self.runs += 1
            except Exception as exc:  # an outage of the endpoint: try again next time
                self.errors.append(exc)


_EMBEDDED_LOCK = threading.Lock()
_EMBEDDED = [0]  # embedded stacks running in this process (moto's state is process-wide)


def fresh_moto(endpoint: str) -> None:
    """Start the first embedded stack of the process on an empty moto account.

    moto keeps its state in process-wide backends, so a stack started after another
    one stopped (as in a test run) would find that stack's tables, queues and
    in-flight messages. While another embedded stack runs, its state is kept.
    Each call is matched by one :func:`release_moto`, even when the reset fails.
    """
    with _EMBEDDED_LOCK:
        _EMBEDDED[0] += 1
        if _EMBEDDED[0] == 1:
            request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
            with urllib.request.urlopen(request, timeout=30):
                pass


def release_moto() -> None:
    """An embedded stack counted by :func:`fresh_moto` has stopped."""
    with _EMBEDDED_LOCK:
        _EMBEDDED[0] -= 1


def ensure_table(client: Any, table: str) -> None:
    """Create the coordination table ``table`` unless it exists."""
    try:
        client.describe_table(TableName=table)
    except client.exceptions.ResourceNotFoundException:
        create_table(client, table)


def ensure_bucket(client: Any, bucket: str) -> None:
    """Create the payload bucket ``bucket`` unless it exists."""
    try:
        client.head_bucket(Bucket=bucket)
    except Exception:  # absent (404) on a fresh endpoint
        client.create_bucket(Bucket=bucket)
