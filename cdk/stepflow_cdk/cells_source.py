"""A cells module to ship: where it is, what ``STEPFLOW_CELLS`` names it, and its bundling.

A cells module is a ``.py`` file or a package directory (with ``__init__.py``).
Both are copied under their own name next to the ``stepflow`` package, so the
processes import them by name (``STEPFLOW_CELLS=shop_cells``). Everything is
checked at synth: a path that does not exist, is not a module, has a name
that cannot be imported or would shadow the standard library or ``stepflow``,
or (``verify``) does not import or defines no cell, fails ``cdk synth`` with a
:class:`CellsModuleError` saying why.

Bundling is local (no Docker): pip installs the module's requirements for the
Lambda platform (manylinux wheels, the functions' Python), as the layer's.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jsii
from aws_cdk import ILocalBundling

from stepflow_cdk.bundling import PLATFORM, PYTHON_VERSION, runtime_dependencies
from stepflow_cdk.paths import LAYER_SOURCE

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?")
_EXTRA = re.compile(r"extra\s*==\s*['\"]([^'\"]+)['\"]")


MAX_MODULE_BYTES = 64 * 2**20
"""The module's own files (its requirements not counted)."""


class CellsModuleError(ValueError):
    """The cells module given to the construct cannot be shipped (the message says why)."""


@dataclass(frozen=True, slots=True)
class CellsSource:
    """A checked cells module: ``path`` (a ``.py`` file or a package directory).

    ``import_name`` is what the processes import (``STEPFLOW_CELLS``): the file's
    stem or the package's name, or a submodule of the package.
    """

    path: Path
    import_name: str
    requirements: Path | None

    @property
    def top_level(self) -> str:
        """The name the module is copied under (``<name>.py`` or ``<name>/``)."""
        return self.path.stem if self.path.is_file() else self.path.name

    def files(self) -> list[Path]:
        """The module's files, sorted (caches and hidden files left out)."""
        return source_files(self.path)

    def fingerprint(self, *extra: str) -> str:
        """A hash of the module's files, its requirements and ``extra`` (the asset hash)."""
        return fingerprint(self.path.parent, [*self.files(), self.requirements], extra)

    def copy_into(self, target: Path) -> None:
        """Copy the module into ``target`` (a directory on the processes' ``sys.path``)."""
        target.mkdir(parents=True, exist_ok=True)
        if self.path.is_file():
            shutil.copy2(self.path, target / self.path.name)
        else:
            shutil.copytree(self.path, target / self.path.name, dirs_exist_ok=True, ignore=_IGNORED)

    def cell_keys(self) -> list[str]:
        """Import the module here and return its cells' ``name@version`` keys.

        Loading checks the cells against their contract lock (``cells.lock.json``
        next to the module, or ``STEPFLOW_CELLS_LOCK``) when there is one.
        Raises :class:`CellsModuleError` when it does not import, breaks its lock
        or defines no cell.
        """
        from stepflow.cells import load_modules
        from stepflow.cells.lock import ContractLockError, LockViolationError

        added = str(self.path.parent)
        sys.path.insert(0, added)
        _forget(self.top_level)  # another module of this name may have been loaded before
        try:
            modules = load_modules([self.import_name])  # checked against its contract lock
        except (LockViolationError, ContractLockError) as exc:
            raise CellsModuleError(
                f"cells module {self.path} breaks its contract lock: {exc} (a locked "
                "version is immutable; a breaking change needs a new major version)"
            ) from exc
        except Exception as exc:  # the user's code: whatever it raises is the reason
            raise CellsModuleError(
                f"cells module {self.path} does not load: {type(exc).__name__}: {exc} "
                "(verify=False skips this check for a module whose requirements are not "
                "installed where cdk synth runs)"
            ) from exc
        finally:
            sys.path.remove(added)
            _forget(self.top_level)
        keys = modules.cells.keys()
        if not keys:
            raise CellsModuleError(f"cells module {self.path} defines no cell (no Cell subclass)")
        return keys


def source_files(path: Path) -> list[Path]:
    """``path`` (a file) or the files under it, sorted (caches and hidden files left out)."""
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix != ".pyc"
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )


def fingerprint(root: Path, files: Sequence[Path | None], extra: Sequence[str]) -> str:
    """A hash of ``extra`` and ``files`` (names relative to ``root``, and contents)."""
    digest = hashlib.sha256()
    for part in extra:
        digest.update(part.encode() + b"\0")
    for file in filter(None, files):
        digest.update(
            str(file.relative_to(root) if file.is_relative_to(root) else file.name).encode()
        )
        digest.update(b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def cells_source(
    path: str | Path,
    *,
    import_name: str | None = None,
    requirements: str | Path | None = None,
) -> CellsSource:
    """The cells module at ``path``, checked (relative paths are from the working directory).

    ``requirements``: a pip requirements file (default: ``requirements.txt`` inside a
    package directory, if there is one; a file module has none unless given).
    """
    given = Path(path)
    resolved = given.resolve()
    if not resolved.exists():
        raise CellsModuleError(f"cells module {given} does not exist")
    if resolved.is_file():
        if resolved.suffix != ".py":
            raise CellsModuleError(
                f"cells module {given} is not a Python module: give a .py file or a package "
                "directory (with __init__.py)"
            )
    elif not (resolved / "__init__.py").is_file():
        raise CellsModuleError(
            f"cells module {given} is a directory without __init__.py, not a Python package"
        )
    size = sum(f.stat().st_size for f in CellsSource(resolved, "", None).files())
    if size > MAX_MODULE_BYTES:
        raise CellsModuleError(
            f"cells module {given} holds {size // 2**20} MB of files; at most "
            f"{MAX_MODULE_BYTES // 2**20} MB (a Lambda's code and layers hold 250 MB "
            "unzipped in all): keep data out of the module"
        )
    top = resolved.stem if resolved.is_file() else resolved.name
    if not top.isidentifier():
        raise CellsModuleError(
            f"cells module {given}: {top!r} is not a valid Python module name (letters, digits "
            "and '_', not starting with a digit)"
        )
    if top == "stepflow" or top in sys.stdlib_module_names:
        raise CellsModuleError(
            f"cells module {given}: the name {top!r} would shadow "
            f"{'the stepflow package' if top == 'stepflow' else 'a standard library module'}"
        )
    if top in dependency_modules():
        raise CellsModuleError(
            f"cells module {given}: the name {top!r} would shadow a module of stepflow's "
            "dependencies (they share the functions' sys.path)"
        )
    name = import_name or top
    if resolved.is_file() and name != top:
        raise CellsModuleError(f"cells module {given} is imported as {top!r}, not {name!r}")
    if name.split(".")[0] != top or not all(p.isidentifier() for p in name.split(".")):
        raise CellsModuleError(f"import_name {name!r} is not {top!r} or a submodule of it")
    found: Path | None = None
    if requirements is not None:
        found = Path(requirements).resolve()
        if not found.is_file():
            raise CellsModuleError(f"requirements file {requirements} does not exist")
    elif resolved.is_dir() and (resolved / "requirements.txt").is_file():
        found = resolved / "requirements.txt"
    return CellsSource(resolved, name, found)


def _forget(top: str) -> None:
    for name in [n for n in sys.modules if n == top or n.startswith(f"{top}.")]:
        del sys.modules[name]


def dependency_modules() -> set[str]:
    """The top-level modules of stepflow's dependencies, as installed here."""
    from importlib import metadata

    report = {
        "install": [
            {"metadata": {"name": d.metadata["Name"], "requires_dist": d.requires}}
            for d in metadata.distributions()
        ]
    }
    closure = stepflow_closure(report)
    return {
        top
        for top, distributions in metadata.packages_distributions().items()
        if any(_canonical(d) in closure for d in distributions)
    }


class BundledCode(Protocol):
    """Code a bundle ships: a cells module (:class:`CellsSource`) or a worker's handlers."""

    @property
    def requirements(self) -> Path | None:
        """Its pip requirements file, if any."""

    def copy_into(self, target: Path) -> None:
        """Copy the code into ``target`` (a directory on the processes' ``sys.path``)."""


@jsii.implements(ILocalBundling)
class CellsBundling:
    """Builds a cells (or worker) bundle in CDK's output folder, on this machine (never Docker).

    ``subdir``: where the code goes (``python`` for a Lambda layer, ``""`` for the
    worker's bundle). ``with_stepflow``: the bundle also holds the ``stepflow``
    package and its dependencies (the worker's; a Lambda has them in its layer).
    ``install``: run pip for the requirements (False: copy sources only, offline).
    """

    def __init__(
        self, source: BundledCode, *, subdir: str, with_stepflow: bool, install: bool
    ) -> None:
        self.source = source
        self.subdir = subdir
        self.with_stepflow = with_stepflow
        self.install = install

    def try_bundle(self, output_dir: str, *args: Any, **options: Any) -> bool:
        """Fill ``output_dir``; True (done, so CDK never falls back to Docker)."""
        target = Path(output_dir) / self.subdir if self.subdir else Path(output_dir)
        target.mkdir(parents=True, exist_ok=True)
        requirements = self.source.requirements
        if self.install and (requirements is not None or self.with_stepflow):
            with tempfile.TemporaryDirectory() as scratch:
                report = Path(scratch) / "report.json"
                pip_install(target, requirements, report)
                if not self.with_stepflow:
                    # The stepflow layer holds these; a second copy in a later layer
                    # would replace the layer's files under /opt/python.
                    prune(target, stepflow_closure(json.loads(report.read_text())))
        if self.with_stepflow:
            shutil.copytree(
                LAYER_SOURCE / "stepflow", target / "stepflow", dirs_exist_ok=True, ignore=_IGNORED
            )
        self.source.copy_into(target)
        return True


def pip_install(target: Path, requirements: Path | None, report: Path) -> None:
    """pip-install stepflow's runtime dependencies and ``requirements`` into ``target``.

    Resolved together, so the module's packages agree with stepflow's; for the
    Lambda platform only (manylinux wheels), as the layer is built.
    """
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet",
            "--target", str(target),
            "--platform", PLATFORM,
            "--python-version", PYTHON_VERSION,
            "--implementation", "cp",
            "--only-binary=:all:",
            "--upgrade",
            "--report", str(report),
            *runtime_dependencies(),
            *(["-r", str(requirements)] if requirements is not None else []),
        ],
        check=True,
    )  # fmt: skip


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement(spec: str) -> tuple[str, set[str], str] | None:
    """A ``requires_dist`` entry as (canonical name, extras, marker); None if unreadable."""
    head, _, marker = spec.partition(";")
    match = _REQUIREMENT.match(head)
    if match is None:
        return None
    extras = {_canonical(e) for e in (match.group(2) or "").split(",") if e.strip()}
    return _canonical(match.group(1)), extras, marker


def _applies(marker: str, extras: set[str]) -> bool:
    """Whether a requirement applies: no ``extra ==`` marker, or one of ``extras``."""
    named = _EXTRA.findall(marker)
    return not named or any(_canonical(e) in extras for e in named)


def stepflow_closure(report: dict[str, Any]) -> set[str]:
    """The distributions (canonical names) stepflow's runtime dependencies pull in.

    ``report`` is pip's installation report (``--report``): every installed
    distribution with its ``requires_dist``. Extras are followed where asked for
    (``aws-lambda-powertools[tracer]`` pulls in ``aws-xray-sdk``); other markers
    need no evaluation: what they excluded was not installed, so is not in the report.
    """
    requires: dict[str, list[str]] = {}
    for item in report.get("install", []):
        metadata = item.get("metadata", {})
        name = _canonical(str(metadata.get("name", "")))
        requires[name] = list(metadata.get("requires_dist") or [])
    pending = [r for dep in runtime_dependencies() if (r := _requirement(dep)) is not None]
    seen: dict[str, set[str]] = {}
    while pending:
        name, extras, _ = pending.pop()
        if name not in requires or (name in seen and extras <= seen[name]):
            continue
        wanted = seen.setdefault(name, set())
        wanted |= extras
        for spec in requires[name]:
            found = _requirement(spec)
            if found is not None and _applies(found[2], wanted):
                pending.append(found)
    return set(seen)


def prune(target: Path, distributions: set[str]) -> list[str]:
    """Remove the installed ``distributions`` from ``target`` (by their RECORD); their names."""
    removed: list[str] = []
    for info in sorted(target.glob("*.dist-info")):
        name = _canonical(info.name[: -len(".dist-info")].rsplit("-", 1)[0])
        if name not in distributions:
            continue
        record = info / "RECORD"
        lines = record.read_text(encoding="utf-8").splitlines() if record.exists() else []
        for line in lines:
            relative = line.split(",", 1)[0]
            file = (target / relative).resolve()
            if file.is_relative_to(target.resolve()) and file.is_file():
                file.unlink()
        shutil.rmtree(info, ignore_errors=True)
        removed.append(name)
    # Console scripts: useless on a layer, and their RECORD paths point outside target.
    shutil.rmtree(target / "bin", ignore_errors=True)
    for directory in sorted(target.iterdir()):
        if directory.is_dir() and not any(p.is_file() for p in directory.rglob("*")):
            shutil.rmtree(directory)  # a package whose files all went (empty dirs left)
    return removed
