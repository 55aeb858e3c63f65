"""Contract lock files: each registered ``name@version``'s contract, written down.

Registration compares the versions loaded together (:mod:`stepflow.cells.contracts`);
a lock file remembers the versions loaded before, so editing a cell in place
(``1.0.0`` becomes ``1.1.0``, the old class deleted) is checked too. The lock is
JSON, written by ``stepflow cells lock``: for each ``name@version`` its input,
output and error JSON Schemas (as the contract checker reads them) and its
input model's ``extra``/``strict`` config, keys sorted, so the same cells give
the same bytes.

Against a lock (:func:`check_lock`):

* a locked version is immutable: its contract must accept and produce exactly
  what it did (titles, descriptions and names of nested models aside);
* a version the lock does not hold must keep the contract of the highest locked
  version below it in its major (and the lowest locked version above it must
  keep its contract), as at registration.

``load_modules`` runs the check when a lock sits next to a module
(``<module dir>/cells.lock.json``) or ``STEPFLOW_CELLS_LOCK`` names one.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from stepflow.cells.contracts import BreakingChangeError, Problem, Role, compare_schemas, schema_of
from stepflow.cells.model import NAME, VERSION, Cell
from stepflow.cells.registry import AnyCell, CellRegistrationError, version_key

LOCK_NAME = "cells.lock.json"
"""The lock file's name next to a cells module."""

LOCK_ENV = "STEPFLOW_CELLS_LOCK"
"""Names the lock file every loaded module is checked against (instead of the one next to it)."""

LOCK_FORMAT = 1
MAX_LOCK_BYTES = 32 * 2**20
"""A lock file larger than this is refused unread."""

ROLES: tuple[Role, ...] = ("input", "output", "error")
Entry = dict[str, Any]


class ContractLockError(CellRegistrationError):
    """A lock file that cannot be used: missing where named, unreadable or malformed."""


class LockViolationError(CellRegistrationError):
    """Loaded cells break the lock: a locked version changed, or a new one breaks its neighbour."""

    def __init__(self, lock: Path | str, messages: list[str]) -> None:
        self.lock, self.messages = str(lock), messages
        super().__init__(f"cells break the contract lock {lock}: " + " | ".join(messages))


def contract_entry(cell: AnyCell) -> Entry:
    """What the lock holds for ``cell``: its schemas and its input model's config facts."""
    contract = cell.contract()
    entry: Entry = {role: schema_of(getattr(contract, role), role) for role in ROLES}
    entry["config"] = _config(contract.input)
    normal: Entry = json.loads(json.dumps(entry))  # as read back from the file
    return normal


def _config(kind: Any) -> dict[str, Any]:
    if not (inspect.isclass(kind) and issubclass(kind, BaseModel)):
        return {}
    config = kind.model_config
    return {"extra": str(config.get("extra") or "ignore"), "strict": bool(config.get("strict"))}


def render_lock(entries: Mapping[str, Entry]) -> str:
    """The lock file's text: sorted, indented, one trailing newline (the same bytes each time)."""
    document = {"format": LOCK_FORMAT, "cells": dict(entries)}
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def read_lock(path: Path | str) -> dict[str, Entry]:
    """The entries of the lock file at ``path``. Raises :class:`ContractLockError`."""
    where = Path(path)
    try:
        size = where.stat().st_size
        if size > MAX_LOCK_BYTES:
            raise ContractLockError(
                f"lock file {where} holds {size} bytes; at most {MAX_LOCK_BYTES}"
            )
        text = where.read_bytes().decode("utf-8")
        document = json.loads(text)
    except ContractLockError:
        raise
    except FileNotFoundError:
        raise ContractLockError(f"lock file {where} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractLockError(f"cannot read lock file {where}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ContractLockError(f"lock file {where} is not JSON: {exc}") from None
    except RecursionError:
        raise ContractLockError(f"lock file {where} is nested too deeply") from None
    return _entries(document, where)


def _entries(document: Any, where: Path) -> dict[str, Entry]:
    def bad(reason: str) -> ContractLockError:
        return ContractLockError(
            f"lock file {where} is malformed: {reason} (write it with 'stepflow cells lock')"
        )

    if not isinstance(document, dict) or document.get("format") != LOCK_FORMAT:
        raise bad(f'expected an object with "format": {LOCK_FORMAT}')
    cells = document.get("cells")
    if not isinstance(cells, dict):
        raise bad('"cells" must be an object of name@version keys')
    for key, entry in cells.items():
        name, _, version = key.rpartition("@")
        if not NAME.match(name) or not VERSION.match(version):
            raise bad(f"{key[:100]!r} is not name@MAJOR[.MINOR[.PATCH]]")
        if not isinstance(entry, dict):
            raise bad(f"{key} must be an object")
        for role in ROLES:
            if not isinstance(entry.get(role), dict | bool):
                raise bad(f"{key}.{role} must be a JSON Schema (an object)")
        if not isinstance(entry.get("config", {}), dict):
            raise bad(f"{key}.config must be an object")
    return cells


def _problems(old: Entry, new: Entry) -> list[Problem]:
    found: list[Problem] = []
    for role in ROLES:
        before, after = old[role], new[role]
        found += compare_schemas(_schema(before), _schema(after), role)
    return found


def _schema(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else ({} if value else {"not": {}})


def _next(version: str, breaking: bool) -> str:
    major, minor, _ = version_key(version)
    return f"{major + 1}.0.0" if breaking else f"{major}.{minor + 1}.0"


def _changed(key: str, locked: Entry, entry: Entry) -> str | None:
    """Why the contract of locked version ``key`` changed (None: it did not)."""
    if locked == entry:
        return None
    forward = _problems(locked, entry)
    backward = [] if forward else _problems(entry, locked)  # narrower input, wider output...
    config = {k: v for k, v in entry["config"].items() if locked.get("config", {}).get(k) != v}
    if not forward and not backward and not config:
        return None  # titles, descriptions or model names only
    listed = "; ".join(str(p) for p in forward or backward)
    if config and not listed:
        listed = "input config " + ", ".join(f"{k}={v!r}" for k, v in sorted(config.items()))
    version = key.rpartition("@")[2]
    return (
        f"{key} changed its contract since it was locked ({listed}); a registered version is "
        f"immutable: give the change a new version ({_next(version, bool(forward))})"
    )


def check_lock(cells: Iterable[AnyCell], locked: Mapping[str, Entry], lock: Path | str) -> None:
    """Check ``cells`` against the ``locked`` entries. Raises :class:`LockViolationError`."""
    messages: list[str] = []
    for cell in sorted(set(cells), key=lambda c: (c.name, version_key(c.version))):
        entry = contract_entry(cell)
        same = {
            key.rpartition("@")[2]: value
            for key, value in locked.items()
            if key.rpartition("@")[0] == cell.name
        }
        wanted = version_key(cell.version)
        kept = [v for v in same if version_key(v) == wanted]
        if kept:
            change = _changed(cell.key(), same[kept[0]], entry)
            messages += [change] if change else []
            continue
        major = sorted((v for v in same if version_key(v)[0] == wanted[0]), key=version_key)
        lower = [v for v in major if version_key(v) < wanted]
        higher = [v for v in major if version_key(v) > wanted]
        pairs = ([(lower[-1], same[lower[-1]], cell.version, entry)] if lower else []) + (
            [(cell.version, entry, higher[0], same[higher[0]])] if higher else []
        )
        for old, old_entry, new, new_entry in pairs:
            problems = _problems(old_entry, new_entry)
            if problems:
                error = BreakingChangeError(f"{cell.name}@{old}", f"{cell.name}@{new}", problems)
                messages.append(f"{error} (checked against the lock)")
    if messages:
        raise LockViolationError(lock, messages)


def module_cells(module: Any) -> list[AnyCell]:
    """The cells a module defines or imports (as ``load_modules`` collects them)."""
    return [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, Cell)
        and value is not Cell
        and isinstance(getattr(value, "name", None), str)
    ]


def default_lock(module: Any) -> Path | None:
    """``<module dir>/cells.lock.json`` (None: the module has no file)."""
    file = getattr(module, "__file__", None)
    return Path(file).resolve().parent / LOCK_NAME if isinstance(file, str) else None


def lock_for(module: Any) -> Path | None:
    """The lock ``module`` is checked against at load (None: no check).

    ``STEPFLOW_CELLS_LOCK`` if set, else the one next to the module if it exists.
    """
    named = os.environ.get(LOCK_ENV, "").strip()
    if named:
        return Path(named)
    found = default_lock(module)
    return found if found is not None and found.is_file() else None


def check_module(module: Any, lock: Path | str | None = None) -> None:
    """Check a loaded module's cells against ``lock`` (None: :func:`lock_for`; none: no check)."""
    path = Path(lock) if lock is not None else lock_for(module)
    if path is not None:
        check_lock(module_cells(module), read_lock(path), path)


def update_lock(cells: Iterable[AnyCell], path: Path | str) -> list[str]:
    """Check ``cells`` against the lock at ``path`` (if any), then add the versions it lacks.

    Locked entries are kept as they are (a version deleted from the code stays
    locked). Returns the keys added; the file is rewritten only when it changes.
    Raises :class:`LockViolationError` or :class:`ContractLockError`.
    """
    where = Path(path)
    chosen = list(cells)
    locked = read_lock(where) if where.exists() else {}
    check_lock(chosen, locked, where)
    versions = {(k.rpartition("@")[0], version_key(k.rpartition("@")[2])) for k in locked}
    merged = dict(locked)
    added = []
    for cell in sorted(set(chosen), key=lambda c: (c.name, version_key(c.version))):
        if (cell.name, version_key(cell.version)) not in versions:
            merged[cell.key()] = contract_entry(cell)
            added.append(cell.key())
    text = render_lock(merged)
    if not where.exists() or where.read_text(encoding="utf-8") != text:
        scratch = where.with_name(f".{where.name}.tmp")
        scratch.write_text(text, encoding="utf-8")
        os.replace(scratch, where)
    return added
