"""Read a definition file as people keep them: JSON or YAML, with SAM's substitutions."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stepflow.definitions.substitute import (
    SubstitutionError,
    Substitutions,
    Unresolved,
    missing_keys,
    substitute,
)
from stepflow.definitions.template import TemplateError, machine_from_template
from stepflow.definitions.yaml_load import YamlError, load_yaml

YAML_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 8 * 1024 * 1024
"""The largest definition or template file read (AWS's definitions stop at 1 MiB)."""


class DefinitionFileError(ValueError):
    """A definition that cannot be read: the message names the file and says why."""


def is_yaml(path: str | Path) -> bool:
    """Whether ``path`` is read as YAML (``.asl.yaml``, ``.yml``, ...)."""
    return str(path).lower().endswith(YAML_SUFFIXES)


def read_document(path: str | Path, *, template: bool = False) -> Any:
    """The JSON or YAML file at ``path`` as JSON values."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise DefinitionFileError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
        text = data.decode("utf-8")
    except OSError as exc:
        raise DefinitionFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DefinitionFileError(f"cannot read {path}: not UTF-8 ({exc.reason})") from None
    if is_yaml(path):
        try:
            return load_yaml(text, template=template)
        except YamlError as exc:
            raise DefinitionFileError(f"{path}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DefinitionFileError(f"{path} is not valid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise DefinitionFileError(f"{path} cannot be read as JSON: {exc}") from None


def load_definition(
    path: str | Path | None,
    substitutions: Mapping[str, str] | None = None,
    *,
    template: str | Path | None = None,
    machine: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The definition at ``path`` (JSON or YAML) with its ``${Key}`` placeholders filled in.

    ``template`` (a SAM or CloudFormation template) gives the
    ``DefinitionSubstitutions`` of its state machine resource (``machine``, or
    the one whose ``DefinitionUri`` is ``path``, or the only one) and, without
    ``path``, the definition itself. ``substitutions`` win over the template's.
    With neither, nothing is substituted: a ``${...}`` is plain text, as it is
    to AWS. A placeholder no substitution names is left as written (as
    CloudFormation leaves it) and passed to ``warn``.
    Raises :class:`DefinitionFileError` with a one-line reason.
    """
    values: dict[str, str | Unresolved] = {}
    raw: Any = None
    where = str(path) if path is not None else ""
    if template is not None:
        document = read_document(template, template=True)
        if not isinstance(document, Mapping):
            raise DefinitionFileError(f"{template} is not a template (not a mapping)")
        folder = Path(template).parent
        try:
            found = machine_from_template(
                document, folder, machine, Path(path) if path is not None else None
            )
        except TemplateError as exc:
            raise DefinitionFileError(f"{template}: {exc}") from None
        values.update(found.substitutions)
        if path is None:
            if found.definition_file is not None:
                path = found.definition_file
            else:
                raw = found.definition
                where = f"{template} ({found.logical_id})"
    if path is None and raw is None:
        raise DefinitionFileError("no definition: give a file or a --template")
    if path is not None:
        raw = read_document(path)
        where = str(path)
    if not isinstance(raw, Mapping):
        raise DefinitionFileError(f"{where}: a definition must be an object (a mapping)")
    if substitutions is None and template is None:
        return dict(raw)
    values.update(substitutions or {})
    try:
        result: dict[str, Any] = substitute(raw, values)
        missing = missing_keys(raw, values) if warn is not None else []
    except SubstitutionError as exc:
        raise DefinitionFileError(f"{where}: {exc}") from None
    except RecursionError:
        raise DefinitionFileError(f"{where}: the definition is nested too deeply") from None
    if missing and warn is not None:
        names = ", ".join(f"${{{key}}}" for key in missing)
        warn(f"{where}: no substitution for {names}: left as written (give --sub KEY=VALUE)")
    return result


__all__ = [
    "DefinitionFileError",
    "Substitutions",
    "is_yaml",
    "load_definition",
    "read_document",
]
