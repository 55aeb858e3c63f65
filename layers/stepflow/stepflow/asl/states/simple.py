"""The states with little behaviour of their own: Pass, Succeed and Fail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stepflow.asl.states.base import MISSING, ROOT_PATH, State
from stepflow.data.jsonpath import Path
from stepflow.data.template import Template


@dataclass(frozen=True, slots=True, kw_only=True)
class PassState(State):
    """``Pass``: passes its input (or ``Result``, or ``Parameters``) to its output."""

    parameters: Template | None = None
    result: Any = MISSING
    result_path: Path | None = ROOT_PATH


@dataclass(frozen=True, slots=True, kw_only=True)
class SucceedState(State):
    """``Succeed``: ends the execution (or branch) successfully."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FailState(State):
    """``Fail``: ends the execution (or branch) with an error and a cause.

    Each of error and cause is a literal, a path (``…Path``, which may also be
    an intrinsic call), or a JSONata expression (in ``error``/``cause``).
    """

    error: Any = None
    error_path: str | None = None
    cause: Any = None
    cause_path: str | None = None
