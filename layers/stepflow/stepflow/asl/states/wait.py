"""``Wait``: delays the execution for a duration or until a timestamp."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stepflow.asl.states.base import State
from stepflow.data.jsonpath import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitState(State):
    """Exactly one of the four fields is set (``seconds``/``timestamp`` may be JSONata)."""

    seconds: Any = None
    seconds_path: Path | None = None
    timestamp: Any = None
    timestamp_path: Path | None = None
