"""The cells a process can run, by ``name@version``, and loading them from modules.

A cells module defines :class:`~stepflow.cells.model.Cell` subclasses and
marks its effect handlers with ``@handles(EffectType)``; :func:`load_modules`
imports modules and collects both (no global registry). A Task names a cell
``stepflow:cell:<name>`` (the latest version), ``stepflow:cell:<name>:<major>``
(the latest of that major version) or ``stepflow:cell:<name>:<x.y.z>`` (that
version exactly).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepflow.cells.handlers import HANDLES_ATTRIBUTE, EffectHandlers
from stepflow.cells.model import NAME, VERSION, Cell

AnyCell = type[Cell[Any, Any, Any, Any]]


class CellRegistrationError(ValueError):
    """A cell cannot be registered (a bad name or version, or a clash)."""


class CellNotFoundError(LookupError):
    """No registered cell matches a Task's ``stepflow:cell:...`` resource."""


def version_key(version: str) -> tuple[int, int, int]:
    """``1.2`` as ``(1, 2, 0)``: versions compare by this."""
    major, minor, patch, *_ = [*(int(p) for p in version.split(".")), 0, 0, 0]
    return major, minor, patch


@dataclass(slots=True)
class CellRegistry:
    """Registered cells by name, each by version."""

    cells: dict[str, dict[str, AnyCell]] = field(default_factory=dict)

    def register(self, cell: AnyCell) -> None:
        """Add ``cell`` under ``name@version``.

        Raises :class:`CellRegistrationError` for a bad name or version, a class
        without concrete types, or another class already at that ``name@version``;
        :class:`~stepflow.cells.contracts.BreakingChangeError` when its contract breaks
        the one of the version before it (or after it) within its major version.
        """
        name = getattr(cell, "name", None)
        if not isinstance(name, str) or not NAME.match(name):
            raise CellRegistrationError(
                f"{cell.__name__}: name {name!r} must be 1-80 letters, digits, '_', '-' or '.'"
            )
        if not isinstance(cell.version, str) or not VERSION.match(cell.version):
            raise CellRegistrationError(
                f"{cell.key()}: version must be MAJOR[.MINOR[.PATCH]] (e.g. 1.2.0)"
            )
        try:
            cell.contract()
        except TypeError as exc:
            raise CellRegistrationError(str(exc)) from exc
        versions = self.cells.setdefault(name, {})
        wanted = version_key(cell.version)
        same = [v for v in versions if version_key(v) == wanted and v != cell.version]
        if same:  # 1.2 and 1.2.0 are one version: a second class there would be unreachable
            raise CellRegistrationError(
                f"{cell.key()}: version {same[0]} of {name} is already registered (the same "
                "version written differently)"
            )
        existing = versions.get(cell.version)
        if existing is not None and existing is not cell:
            raise CellRegistrationError(
                f"{cell.key()} is already registered (by {existing.__module__}."
                f"{existing.__qualname__})"
            )
        if existing is None:
            from stepflow.cells.contracts import check_neighbours  # contracts imports this module

            check_neighbours(versions, cell)
        versions[cell.version] = cell

    def resolve(self, name: str, version: str | None = None) -> AnyCell:
        """The cell a Task names: the latest, the latest of a major, or one version exactly.

        Raises :class:`CellNotFoundError`.
        """
        versions = self.cells.get(name, {})
        if version is None:
            candidates = list(versions)
        elif "." in version:
            candidates = [v for v in versions if version_key(v) == version_key(version)]
        else:
            candidates = [v for v in versions if v.split(".")[0] == version]
        if not candidates:
            known = ", ".join(sorted(self.keys())) or "none"
            wanted = f"{name}:{version}" if version else name
            raise CellNotFoundError(
                f"No cell {wanted} is registered (registered: {known}). Load its module with "
                "STEPFLOW_CELLS, --cells or cells=."
            )
        return versions[max(candidates, key=version_key)]

    def keys(self) -> list[str]:
        """Every ``name@version``, sorted."""
        return sorted(f"{n}@{v}" for n, vs in self.cells.items() for v in vs)


@dataclass(frozen=True, slots=True)
class CellModules:
    """What cells modules define: their cells and effect handlers."""

    cells: CellRegistry
    handlers: EffectHandlers


def collect(objects: Iterable[Any], into: CellModules) -> None:
    """Register the cells and ``@handles`` handlers among ``objects``."""
    for value in objects:
        is_cell = inspect.isclass(value) and issubclass(value, Cell) and value is not Cell
        if is_cell and isinstance(getattr(value, "name", None), str):
            into.cells.register(value)
        effects = getattr(value, HANDLES_ATTRIBUTE, None)
        if effects:
            for effect in effects:
                into.handlers.register(effect, value)


def cell_modules(given: CellModules | Iterable[str | type[Any]] | None) -> CellModules:
    """Cells and handlers from ``given`` (None: none).

    ``given`` is loaded modules, or module names, Cell classes and ``@handles`` functions mixed.
    """
    if isinstance(given, CellModules):
        return given
    loaded = CellModules(CellRegistry(), EffectHandlers())
    for value in given or ():
        if isinstance(value, str):
            load_modules([value], loaded)
        else:
            collect([value], loaded)
    return loaded


def load_modules(
    names: Iterable[str], into: CellModules | None = None, *, lock: bool | str | Path = True
) -> CellModules:
    """Import each module of ``names`` and collect its cells and handlers.

    A name may be a dotted module or a ``.py`` file path. Each cell's contract is
    checked as it is registered (:meth:`CellRegistry.register`), so all versions of a
    name loaded together are checked pairwise, in version order, whatever their order.
    Each module's cells are then checked against its contract lock
    (:mod:`stepflow.cells.lock`): ``lock=True`` the one ``STEPFLOW_CELLS_LOCK`` names,
    else ``cells.lock.json`` next to the module if there is one; a path: that lock;
    False: none. A breaking change raises
    :class:`~stepflow.cells.lock.LockViolationError`.
    """
    from stepflow.cells.lock import check_module  # lock imports this module

    loaded = into if into is not None else CellModules(CellRegistry(), EffectHandlers())
    for name in names:
        module = _import(name.strip())
        collect(vars(module).values(), loaded)
        if lock is not False:
            check_module(module, None if lock is True else lock)
    return loaded


def import_cells_module(name: str) -> Any:
    """Import a cells module: a dotted name or a ``.py`` file path (collects nothing)."""
    return _import(name.strip())


def _import(name: str) -> Any:
    import importlib
    import importlib.util
    import pathlib
    import sys

    if name.endswith(".py"):
        path = pathlib.Path(name).resolve()
        spec = importlib.util.spec_from_file_location(f"stepflow_cells_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load cells from {name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(name)
