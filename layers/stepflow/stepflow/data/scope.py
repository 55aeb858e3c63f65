"""What a path or expression is evaluated against: input, context object, variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stepflow.data.jsonpath import Path, PathNotFoundError


@dataclass(frozen=True, slots=True)
class Scope:
    """The values a state's paths and templates can read.

    ``input`` is what ``$`` denotes, ``context`` the ``$$`` context object and
    ``variables`` the workflow variables visible to the state (``$name``).
    """

    input: Any
    context: Any
    variables: Mapping[str, Any] = field(default_factory=dict)

    def with_input(self, value: Any) -> Scope:
        """The same scope with ``$`` bound to ``value``."""
        return Scope(value, self.context, self.variables)

    def read(self, path: Path) -> Any:
        """Evaluate ``path`` in this scope; raises :class:`PathNotFoundError`."""
        if path.root == "input":
            return path.find(self.input)
        if path.root == "context":
            return path.find(self.context)
        assert path.variable is not None
        if path.variable not in self.variables:
            raise PathNotFoundError(path)
        return path.find(self.variables[path.variable])
