"""PLACEHOLDER, written on the ``hookcdk`` branch only so that ``cdk synth`` finds the folder.

The real entry point (``functions/hooks/handler.handler``: the table stream's
records to hook events, ``{"batchItemFailures": [...]}`` back) is the ``stream``
engineer's; at the merge, take theirs and drop this file's content.
"""

from __future__ import annotations

from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Refuses every batch: a placeholder must never acknowledge stream records."""
    raise NotImplementedError("functions/hooks/handler.py is a placeholder (see its docstring)")
