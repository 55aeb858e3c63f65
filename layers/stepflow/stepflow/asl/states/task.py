"""``Task``: hands work to a resource and waits for its result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stepflow.asl.catch import Catcher
from stepflow.asl.retry import Retrier
from stepflow.asl.states.base import MISSING, ROOT_PATH, State
from stepflow.data.jsonpath import Path
from stepflow.data.template import Template


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskState(State):
    """A Task state. ``arguments`` is the JSONata-era counterpart of ``parameters``.

    Timeouts are literals (``timeout_seconds``), reference paths
    (``timeout_seconds_path``) or JSONata expressions (in ``timeout_seconds``).
    """

    resource: str
    parameters: Template | None = None
    arguments: Any = MISSING
    result_selector: Template | None = None
    result_path: Path | None = ROOT_PATH
    retry: tuple[Retrier, ...] = ()
    catch: tuple[Catcher, ...] = ()
    timeout_seconds: Any = None
    timeout_seconds_path: Path | None = None
    heartbeat_seconds: Any = None
    heartbeat_seconds_path: Path | None = None
    credentials: Any = None
