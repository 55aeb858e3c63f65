"""What a path or expression is evaluated against: input, context object, variables."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stepflow.data.budget import UNLIMITED, Budget
from stepflow.data.jsonpath import Path, PathNotFoundError

_EMPTY: Mapping[str, Any] = {}


class Scope:
    """The values a state's paths and templates can read.

    ``input`` is what ``$`` denotes, ``context`` the ``$$`` context object and
    ``variables`` the workflow variables visible to the state (``$name``).
    ``context`` may be given as a zero-argument callable: it is then built on
    first use only, since most states never read ``$$``. ``budget`` is the
    decision's time budget, which templates, paths and intrinsics check.
    """

    __slots__ = ("_context", "budget", "input", "variables")

    def __init__(
        self,
        input: Any,
        context: Any | Callable[[], Any] = None,
        variables: Mapping[str, Any] | None = None,
        budget: Budget = UNLIMITED,
    ) -> None:
        self.input = input
        self._context = context
        self.variables = _EMPTY if variables is None else variables
        self.budget = budget

    @property
    def context(self) -> Any:
        """The context object (built now if it was given as a callable)."""
        if callable(self._context):
            self._context = self._context()
        return self._context

    def with_input(self, value: Any) -> Scope:
        """The same scope with ``$`` bound to ``value``."""
        return Scope(value, self._context, self.variables, self.budget)

    def read(self, path: Path) -> Any:
        """Evaluate ``path`` in this scope; raises :class:`PathNotFoundError`."""
        self.budget.check()
        return self.read_unchecked(path)

    def read_unchecked(self, path: Path) -> Any:
        """:meth:`read` without its budget check, for a caller that checked already."""
        if path.root == "input":
            return path.find(self.input)
        if path.root == "context":
            return path.find(self.context)
        assert path.variable is not None
        if path.variable not in self.variables:
            raise PathNotFoundError(path)
        return path.find(self.variables[path.variable])
