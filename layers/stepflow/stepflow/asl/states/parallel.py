"""``Parallel``: runs every branch on the same input; its result is their outputs in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stepflow.asl.catch import Catcher
from stepflow.asl.retry import Retrier
from stepflow.asl.states.base import MISSING, ROOT_PATH, State
from stepflow.data.jsonpath import Path
from stepflow.data.template import Template

if TYPE_CHECKING:
    from stepflow.asl.machine import Machine


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelState(State):
    """A Parallel state."""

    branches: tuple[Machine, ...] = ()
    parameters: Template | None = None
    arguments: Any = MISSING
    result_selector: Template | None = None
    result_path: Path | None = ROOT_PATH
    retry: tuple[Retrier, ...] = ()
    catch: tuple[Catcher, ...] = ()
