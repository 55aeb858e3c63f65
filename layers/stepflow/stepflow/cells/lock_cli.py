"""``stepflow cells lock|check``: write a contract lock file, or check cells against one.

Exit status: 0 done (or nothing breaks the lock), 1 a contract breaks (a locked
version changed, or a new version breaks the one before it), 2 bad input (a
module that does not import, a lock file that is missing or malformed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from stepflow.cells.contracts import BreakingChangeError
from stepflow.cells.handlers import EffectHandlers
from stepflow.cells.lock import (
    ContractLockError,
    LockViolationError,
    check_lock,
    default_lock,
    module_cells,
    read_lock,
    update_lock,
)
from stepflow.cells.registry import AnyCell, CellModules, CellRegistry, collect, import_cells_module


class _Refused(Exception):
    """Exit status 1: the messages name each breaking change."""


class _Usage(Exception):
    """Exit status 2."""


def run(action: str, modules: str, lock: str | None) -> int:
    """Run ``stepflow cells lock|check`` (``action``) on ``modules``; the exit status."""
    try:
        groups = _load([n.strip() for n in modules.split(",") if n.strip()], lock)
        for path, cells in groups.items():
            if action == "lock":
                added = update_lock(cells, path)
                listed = ", ".join(added) if added else "nothing new"
                print(f"{path}: locked {listed} ({len(read_lock(path))} version(s) in all)")
            else:
                if not path.exists():
                    raise _Usage(f"no lock file {path}: write one with 'stepflow cells lock'")
                check_lock(cells, read_lock(path), path)
                print(f"{path}: {len(cells)} cell version(s) keep their locked contracts")
    except (LockViolationError, _Refused) as exc:
        messages = exc.messages if isinstance(exc, LockViolationError) else [str(exc)]
        print(f"stepflow cells {action}: refused:", file=sys.stderr)
        for message in messages:
            print(f"  - {message}", file=sys.stderr)
        return 1
    except (ContractLockError, _Usage, OSError) as exc:  # OSError: the lock cannot be written
        print(f"stepflow: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _load(names: list[str], lock: str | None) -> dict[Path, list[AnyCell]]:
    """Each lock file and the cells checked against it (each module's own, or ``lock``'s)."""
    if not names:
        raise _Usage("give at least one cells module")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # dotted modules are found from the working directory
    loaded = CellModules(CellRegistry(), EffectHandlers())
    groups: dict[Path, list[AnyCell]] = {}
    for name in names:
        try:
            module = import_cells_module(name)
            collect(vars(module).values(), loaded)
        except BreakingChangeError as exc:
            raise _Refused(str(exc)) from None
        except Exception as exc:  # the user's module: whatever it raises is the reason
            raise _Usage(f"cannot load cells module {name}: {type(exc).__name__}: {exc}") from None
        path = Path(lock) if lock else default_lock(module)
        if path is None:
            raise _Usage(f"cells module {name} has no file to put a lock next to: give --lock")
        cells = module_cells(module)
        if not cells:
            raise _Usage(f"cells module {name} defines no cell")
        group = groups.setdefault(path, [])
        group += [c for c in cells if c not in group]
    return groups
