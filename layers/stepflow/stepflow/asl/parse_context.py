"""The shared machinery of the parser: the diagnostic sink and typed value checks.

Every check takes the value, its JSON pointer and the field name, reports what
is wrong to the :class:`Context` and returns a usable stand-in, so that the
parser can go on and report every problem of a definition in one pass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stepflow.asl.diagnostics import Diagnostic, Severity
from stepflow.asl.states.base import ROOT_PATH, QueryLanguage
from stepflow.data.jsonpath import Path, PathSyntaxError, compile_path
from stepflow.data.template import (
    Template,
    TemplateSyntaxError,
    compile_dynamic,
    template_problems,
)

if TYPE_CHECKING:
    from stepflow.asl.machine import Machine

SCHEMA = "SCHEMA_VALIDATION_FAILED"
"""The code of every diagnostic that has no more specific AWS code."""

MAX_SECONDS = 99_999_999
"""The largest number of seconds (or attempts) Step Functions accepts in a field."""

MachineParser = Callable[["Context", Any, str, str, frozenset[str]], "Machine"]
"""``(ctx, raw, location, machine id, extra allowed fields) -> Machine``."""

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def pointer(base: str, *keys: str | int) -> str:
    """``base`` extended by ``keys`` as JSON-pointer tokens (``~`` and ``/`` escaped)."""
    for key in keys:
        token = str(key).replace("~", "~0").replace("/", "~1")
        base = f"{base}/{token}"
    return base


def is_jsonata(value: object) -> bool:
    """Whether ``value`` is a JSONata expression string: ``{% … %}``."""
    return isinstance(value, str) and len(value) >= 4 and value[:2] == "{%" and value[-2:] == "%}"


def type_name(value: object) -> str:
    """The JSON type of ``value``, as messages name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, Mapping) else type(value).__name__


@dataclass
class Context:
    """Everything one parse shares: diagnostics, the machines built so far, labels seen."""

    language: QueryLanguage
    parse_machine: MachineParser
    diagnostics: list[Diagnostic] = field(default_factory=list)
    machines: dict[str, Machine] = field(default_factory=dict)
    state_names: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def error(self, location: str, message: str, code: str = SCHEMA) -> None:
        """Record an error at ``location``."""
        self.report(location, message, code, "ERROR")

    def report(self, location: str, message: str, code: str, severity: Severity) -> None:
        """Record a diagnostic of any severity."""
        self.diagnostics.append(Diagnostic(location, message, code, severity))

    def unsupported(self, loc: str, key: str, detail: str = "") -> None:
        """Report field ``key`` of the object at ``loc`` as not allowed there."""
        self.error(loc, f"Field '{key}' is not supported{detail}")

    def wrong_language(self, loc: str, key: str, language: QueryLanguage) -> None:
        """Report field ``key`` of the object at ``loc`` as belonging to the other language."""
        other = "JSONata" if language == "JSONPath" else "JSONPath"
        self.error(
            loc,
            f"The QueryLanguage is set to '{language}', but field '{key}' is only supported "
            f"for the '{other}' QueryLanguage",
        )

    # --- scalar checks --------------------------------------------------------------------

    def string(self, value: Any, loc: str, name: str, *, allow_empty: bool = True) -> str | None:
        """``value`` if it is a string (non-empty unless ``allow_empty``), else ``None``."""
        if isinstance(value, str) and (allow_empty or value):
            return value
        what = "a string" if allow_empty else "a non-empty string"
        self.error(loc, f"The value of '{name}' must be {what}, not {_show(value)}")
        return None

    def boolean(self, value: Any, loc: str, name: str) -> bool:
        """``value`` if it is a boolean, else ``False``."""
        if isinstance(value, bool):
            return value
        self.error(loc, f"The value of '{name}' must be a boolean, not {_show(value)}")
        return False

    def integer(
        self, value: Any, loc: str, name: str, minimum: int, maximum: int = MAX_SECONDS
    ) -> int | None:
        """``value`` if it is a whole number in ``[minimum, maximum]``, else ``None``."""
        if is_whole(value) and minimum <= value <= maximum:
            return int(value)
        self.error(
            loc,
            f"The value of '{name}' must be an integer between {minimum} and {maximum}, "
            f"not {_show(value)}",
        )
        return None

    def number(
        self, value: Any, loc: str, name: str, minimum: float, maximum: float | None = None
    ) -> float | int | None:
        """``value`` if it is a finite number in range, else ``None``."""
        if is_number(value) and minimum <= value and (maximum is None or value <= maximum):
            number: float | int = value
            return number
        bound = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        self.error(loc, f"The value of '{name}' must be a number {bound}, not {_show(value)}")
        return None

    def one_of(self, value: Any, loc: str, name: str, choices: tuple[str, ...]) -> str | None:
        """``value`` if it is one of ``choices``, else ``None``."""
        if isinstance(value, str) and value in choices:
            return value
        options = ", ".join(choices)
        self.error(loc, f"Value should be one of the following: [{options}] ({name})")
        return None

    def obj(self, value: Any, loc: str, name: str) -> Mapping[str, Any] | None:
        """``value`` if it is a JSON object, else ``None``."""
        if isinstance(value, Mapping):
            return value
        self.error(loc, f"The value of '{name}' must be an object, not {_show(value)}")
        return None

    def timestamp(self, value: Any, loc: str, name: str) -> str | None:
        """``value`` if it is an RFC 3339 timestamp string, else ``None``."""
        if isinstance(value, str) and _is_timestamp(value):
            return value
        self.error(
            loc,
            f"The value of '{name}' must be an ISO-8601 timestamp such as "
            f"'2016-03-14T01:59:00Z', not {_show(value)}",
        )
        return None

    # --- paths and templates --------------------------------------------------------------

    def path(
        self,
        value: Any,
        loc: str,
        name: str,
        *,
        reference: bool = False,
        nullable: bool = False,
        writable: bool = False,
    ) -> Path | None:
        """Compile a JSONPath field; ``null`` gives ``None`` when ``nullable``.

        ``reference`` requires a reference path; ``writable`` further requires
        it to be rooted at the state input (``$``), as ``ResultPath`` must be.
        """
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            kind = "reference path" if reference or writable else "JSONPath"
            self.error(loc, f"The value of '{name}' must be a {kind} string, not {_show(value)}")
            return ROOT_PATH
        try:
            compiled = compile_path(value)
        except PathSyntaxError as exc:
            self.error(loc, f"The value of '{name}' is not a valid JSONPath: {exc}")
            return ROOT_PATH
        if (reference or writable) and not compiled.is_reference:
            self.error(loc, f"The value of '{name}' must be a reference path: {value!r}")
        elif writable and compiled.root != "input":
            self.error(loc, f"The value of '{name}' must refer to the state input ('$'): {value!r}")
        return compiled

    def dynamic(self, value: Any, loc: str, name: str) -> str | None:
        """A reference path or an intrinsic function call (``ErrorPath``, ``CausePath``)."""
        if not isinstance(value, str):
            self.error(loc, f"The value of '{name}' must be a string, not {_show(value)}")
            return None
        if not value.startswith("States."):
            self.path(value, loc, name, reference=True)
            return value
        try:
            compile_dynamic(value, name)
        except Exception as exc:  # a malformed call (or a defect of the compiler)
            self.error(loc, f"The value of '{name}' is not a valid intrinsic function: {exc}")
        return value

    def template(self, value: Any, loc: str, name: str, *, require_object: bool) -> Template | None:
        """Compile a payload template (``Parameters``, ``ResultSelector``, ...)."""
        if require_object and not isinstance(value, Mapping):
            self.error(loc, f"The value of '{name}' must be an object, not {_show(value)}")
            return None
        try:
            return Template(value)
        except TemplateSyntaxError as exc:
            for problem in template_problems(value) or [exc]:
                self.error(loc + problem.pointer, f"Invalid '{name}': {problem}")
        except Exception as exc:  # never let a compiler defect escape as a traceback
            self.error(loc, f"Invalid '{name}': {exc}")
        return None

    def assign(self, value: Any, loc: str, language: QueryLanguage) -> Mapping[str, Any] | None:
        """Check an ``Assign`` object: variable names, and its paths in JSONPath mode."""
        assign = self.obj(value, loc, "Assign")
        if assign is None:
            return None
        for key in assign:
            name = key[:-2] if language == "JSONPath" and key.endswith(".$") else key
            if not _VARIABLE.fullmatch(name) or len(name) > 80:
                self.error(pointer(loc, key), f"Invalid variable name in 'Assign': {key!r}")
        if language == "JSONPath":
            self.template(assign, loc, "Assign", require_object=True)
        else:
            self.jsonata(assign, loc, "Assign")
        return assign

    def jsonata(self, value: Any, loc: str, name: str) -> None:
        """Check every JSONata expression inside ``value`` (any JSON) compiles."""
        if isinstance(value, str):
            if is_jsonata(value):
                self._expression(value, loc, name)
            elif value.startswith("{%"):
                self.error(loc, "JSONata string must start with {% and end with %}")
        elif isinstance(value, Mapping):
            for key, item in value.items():
                self.jsonata(item, pointer(loc, key), name)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.jsonata(item, pointer(loc, i), name)

    def _expression(self, text: str, loc: str, name: str) -> None:
        from stepflow.data.jsonata import JSONataSyntaxError, compile_template

        try:
            compile_template(text, name)
        except JSONataSyntaxError as exc:
            self.error(loc, exc.detail, exc.kind)
        except Exception as exc:  # a defect of the JSONata library is still a bad expression
            self.error(loc, f"Invalid JSONata expression {text!r}: {exc}")


_VARIABLE = re.compile(r"[^\W\d]\w*")


def is_whole(value: object) -> bool:
    """Whether ``value`` is a JSON integer (``true`` is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """Whether ``value`` is a finite JSON number (``true`` is not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


def _is_timestamp(text: str) -> bool:
    if _TIMESTAMP.fullmatch(text) is None:
        return False
    head = text[:19]
    try:
        datetime.fromisoformat(head)
    except ValueError:
        return False
    return True


def _show(value: Any) -> str:
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"the string {shown!r}"
    if isinstance(value, Mapping | list):
        return f"an {type_name(value)}"
    if value is None:
        return "null"
    return f"{type_name(value)} {value!r}"
