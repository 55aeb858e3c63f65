"""What the commands read from their arguments: definitions, inputs, settings, modules.

Each reader raises :class:`UsageError` (exit status 2, one line) for input it
cannot use, whatever the file or module does.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from stepflow.cells import CellModules, load_modules

__all__ = [
    "UsageError",
    "cells_setting",
    "importable_from_cwd",
    "load_cells",
    "load_definition",
    "load_handlers",
    "load_json",
    "parse_json",
    "read_input",
    "setting",
]


class UsageError(click.ClickException):
    """Input the command cannot use: reported as ``stepflow: error: ...``, exit status 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        """Print the one-line error to standard error."""
        click.echo(f"stepflow: error: {self.format_message()}", err=True, file=file)


def load_definition(
    path: str | None,
    substitutions: Sequence[str] | Mapping[str, str] = (),
    *,
    template: str | None = None,
    machine: str | None = None,
) -> dict[str, Any]:
    """The definition at ``path`` (JSON or YAML), its ``${Key}`` filled in (docs/definitions.md).

    ``substitutions`` are ``--sub KEY=VALUE`` arguments (or a mapping);
    ``template`` a SAM/CloudFormation template giving the ``DefinitionSubstitutions``
    (and, without ``path``, the definition) of its state machine ``machine``.
    Without either, a ``${...}`` is plain text; a placeholder they do not name is
    left as written, with a note on standard error.
    """
    from stepflow.definitions import (
        DefinitionFileError,
        SubstitutionError,
        parse_substitutions,
    )
    from stepflow.definitions import load_definition as load

    try:
        values = (
            dict(substitutions)
            if isinstance(substitutions, Mapping)
            else parse_substitutions(substitutions)
        )
        return load(path, values or None, template=template, machine=machine, warn=_note)
    except (DefinitionFileError, SubstitutionError) as exc:
        raise UsageError(str(exc)) from None


def _note(message: str) -> None:
    click.echo(f"stepflow: note: {message}", err=True)


def load_json(path: str) -> Any:
    """Parse the JSON file at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_json(text, path)


def parse_json(text: str, source: str) -> Any:
    """``text`` parsed as JSON; ``source`` names it in the error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source} is not valid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # e.g. a number too long, nesting too deep
        raise UsageError(f"{source} cannot be read as JSON: {exc}") from None


def read_input(value: str) -> Any:
    """An ``--input``: inline JSON or ``@FILE``."""
    return load_json(value[1:]) if value.startswith("@") else parse_json(value, "--input")


def setting(value: str | None) -> str:
    """A JSON setting given inline or as ``@FILE`` (checked as JSON), or a plain word."""
    if value is None:
        return ""
    if value.startswith("@"):
        return json.dumps(load_json(value[1:]))
    if value.lstrip()[:1] in ("[", "{"):
        return json.dumps(parse_json(value, "the setting"))
    return value


def load_handlers(spec: str) -> dict[str, Callable[[Any], Any]]:
    """Import ``spec`` (a file path or a dotted module name) and return its ``HANDLERS``."""
    try:
        if spec.endswith(".py") or os.sep in spec:
            module_spec = importlib.util.spec_from_file_location(Path(spec).stem, spec)
            if module_spec is None or module_spec.loader is None:
                raise ImportError("not a Python file")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_spec.name] = module
            module_spec.loader.exec_module(module)
        else:
            importable_from_cwd()
            module = importlib.import_module(spec)
    except Exception as exc:  # whatever the module raises, the fault is in the user's input
        raise UsageError(f"cannot import --handlers {spec}: {type(exc).__name__}: {exc}") from None
    handlers = getattr(module, "HANDLERS", None)
    if not isinstance(handlers, Mapping) or not all(callable(f) for f in handlers.values()):
        raise UsageError(f"--handlers {spec} must define HANDLERS = {{resource: callable}}")
    return {str(key): fn for key, fn in handlers.items()}


def cells_setting(spec: str | None) -> str:
    """``--cells`` as the ``STEPFLOW_CELLS`` setting: comma-separated, blanks dropped."""
    names = [name.strip() for name in (spec or "").split(",") if name.strip()]
    if spec is not None and not names:
        raise UsageError("--cells needs at least one module")
    return ",".join(names)


def load_cells(spec: str) -> CellModules:
    """Load the cells modules of ``--cells`` (what ``STEPFLOW_CELLS`` names, deployed)."""
    names = cells_setting(spec).split(",")
    importable_from_cwd()
    try:
        return load_modules(names)
    except Exception as exc:  # whatever the module raises, the fault is in the user's input
        raise UsageError(f"cannot load --cells {spec}: {type(exc).__name__}: {exc}") from None


def importable_from_cwd() -> None:
    """Dotted modules given on the command line are found from the working directory."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
