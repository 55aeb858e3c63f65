"""Catchers: the ``Catch`` fallbacks of a Task, Parallel or Map state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stepflow.asl.states.base import MISSING, ROOT_PATH
from stepflow.data.jsonpath import Path


@dataclass(frozen=True, slots=True)
class Catcher:
    """One entry of a state's ``Catch`` list.

    ``result_path`` places the error output (``{"Error", "Cause"}``) into the
    state's input (``None``: discard it). ``output`` and ``assign`` are the
    JSONata-era fields.
    """

    error_equals: tuple[str, ...]
    next: str
    result_path: Path | None = ROOT_PATH
    assign: Mapping[str, Any] | None = None
    output: Any = MISSING
