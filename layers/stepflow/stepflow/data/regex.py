r"""Regular expressions from workflow definitions, matched by a linear-time engine (RE2).

Python's ``re`` backtracks: ``/^(a+)+$/`` on forty characters runs for
minutes, holding the GIL, so one definition could freeze every thread of the
process. Every user-written regular expression (JSONata regex literals, the
``=~`` operator of JSONPath filters) is compiled here with RE2 instead, which
matches in time linear in the input and never backtracks.

RE2 accepts the JavaScript syntax JSONata uses except backreferences (``\1``)
and lookaround (``(?=``, ``(?!``, ``(?<=``, ``(?<!``). Such a pattern is not
refused when the definition is created (AWS accepts it); using it fails the
evaluation with :class:`UnsupportedRegex`, whose message says why. There is
no fallback to ``re``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import re2

from stepflow.data.jsonata_functions import BareError
from stepflow.errors import StatesError, StatesErrorName

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern on stderr

_GROUP_REFERENCE = re.compile(r"\\g<(\d+)>")


class UnsupportedRegex(ValueError):
    """A pattern RE2 cannot compile (backreferences, lookaround) or that is invalid."""

    def __init__(self, pattern: str, reason: str) -> None:
        self.pattern = pattern
        self.reason = reason
        super().__init__(
            f"The regular expression /{pattern}/ cannot be evaluated: {reason} "
            "(StepFlow matches regular expressions in linear time with RE2, which "
            "supports neither backreferences nor lookaround)"
        )


def compile_linear(pattern: str, *, ignore_case: bool = False, multiline: bool = False) -> Any:
    """Compile ``pattern`` with RE2; raises :class:`UnsupportedRegex`."""
    flags = ("i" if ignore_case else "") + ("m" if multiline else "")
    try:
        return re2.compile(f"(?{flags}){pattern}" if flags else pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise UnsupportedRegex(pattern, str(reason)) from None


class LinearPattern:
    r"""An RE2 pattern with the interface jsonata-python expects of a compiled regex.

    ``sub`` with a string replacement understands the ``\g<n>`` references the
    library writes for JSONata's ``$n``; a reference to a group the pattern
    does not have reads as the shorter group number followed by the last
    digit, or as nothing (what the library does with ``re``), and every other
    character is literal, as in JavaScript.
    """

    __slots__ = ("_compiled", "pattern")

    def __init__(self, compiled: Any, pattern: str) -> None:
        self._compiled = compiled
        self.pattern = pattern

    def search(self, string: str) -> Any:
        """The first match in ``string``, or ``None``."""
        return self._compiled.search(string)

    def finditer(self, string: str) -> Iterator[Any]:
        """Every non-overlapping match, left to right."""
        return iter(self._compiled.finditer(string))

    def split(self, string: str, maxsplit: int = 0) -> list[str]:
        """``string`` split around the matches (groups included, as ``re.split`` does)."""
        return list(self._compiled.split(string, maxsplit))

    def sub(self, repl: str | Callable[[Any], str], string: str, count: int = 0) -> str:
        """``string`` with (the first ``count``, or all) matches replaced."""
        if isinstance(repl, str):
            template = repl
            repl = lambda match: _expand(template, match)  # noqa: E731
        return str(self._compiled.sub(repl, string, count))


class FailingPattern:
    """Stands for a pattern RE2 refused: any use raises ``error``."""

    __slots__ = ("error", "pattern")

    def __init__(self, pattern: str, error: Exception) -> None:
        self.error = error
        self.pattern = pattern

    def search(self, string: str) -> Any:
        """Raise the error."""
        raise self.error

    def finditer(self, string: str) -> Any:
        """Raise the error."""
        raise self.error

    def split(self, string: str, maxsplit: int = 0) -> Any:
        """Raise the error."""
        raise self.error

    def sub(self, repl: Any, string: str, count: int = 0) -> Any:
        """Raise the error."""
        raise self.error


def _expand(template: str, match: Any) -> str:
    groups = len(match.groups())

    def group(number: str) -> str:
        if int(number) <= groups:
            return str(match.group(int(number)) or "")
        if len(number) > 1:
            return group(number[:-1]) + number[-1]
        return ""

    out: list[str] = []
    position = 0
    for reference in _GROUP_REFERENCE.finditer(template):
        out.append(template[position : reference.start()])
        out.append(group(reference.group(1)))
        position = reference.end()
    out.append(template[position:])
    return "".join(out)


def jsonata_engine(pattern: str, flags: Any) -> LinearPattern | FailingPattern:
    """jsonata-python's ``regex_engine``: regex literals compiled by RE2.

    A pattern RE2 refuses still parses (AWS accepts it in a definition); using
    it fails the evaluation with a JSONata error that explains why.
    """
    try:
        compiled = compile_linear(
            pattern, ignore_case=bool(flags.case_insensitive), multiline=bool(flags.multiline)
        )
    except UnsupportedRegex as exc:
        return FailingPattern(pattern, BareError(str(exc)))
    return LinearPattern(compiled, pattern)


def filter_search(value: Any, pattern: Any) -> bool:
    """The ``=~`` operator of JSONPath filters: whether RE2 finds ``pattern`` in ``value``.

    A pattern RE2 refuses fails the state with ``States.Runtime``.
    """
    if not isinstance(value, str) or not isinstance(pattern, str):
        return False
    compiled = _cache.get(pattern)
    if compiled is None:
        if len(_cache) >= 512:
            _cache.pop(next(iter(_cache)))
        try:
            compiled = LinearPattern(compile_linear(pattern), pattern)
        except UnsupportedRegex as exc:
            compiled = FailingPattern(pattern, StatesError(StatesErrorName.RUNTIME, str(exc)))
        _cache[pattern] = compiled
    return compiled.search(value) is not None


_cache: dict[str, LinearPattern | FailingPattern] = {}
