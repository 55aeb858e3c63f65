"""The 18 intrinsic functions of ASL (``States.Format``, ``States.MathAdd``, ...).

Placeholder: being written. Interface: ``compile_intrinsic(text) -> Callable[[Scope], Any]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stepflow.data.scope import Scope


class IntrinsicSyntaxError(ValueError):
    """A string that is not a well-formed intrinsic function call."""


def compile_intrinsic(text: str) -> Callable[[Scope], Any]:
    """Compile an intrinsic function call such as ``States.Format('{}', $.x)``."""
    raise IntrinsicSyntaxError(f"intrinsic functions are not implemented yet: {text}")
