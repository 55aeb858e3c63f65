"""``stepflow cells lock|check``: the contract lock files of cells modules."""

from __future__ import annotations

import click

from stepflow.cells import lock_cli
from stepflow.cells.lock import LOCK_NAME

__all__ = ["cells_group"]

_MODULES = click.argument("modules", metavar="MODULE[,MODULE]")
_LOCK = click.option(
    "--lock", metavar="PATH", help=f"the lock file (default: {LOCK_NAME} by each module)"
)


@click.group("cells")
def cells_group() -> None:
    """Contract lock files of cells modules."""


@cells_group.command("lock")
@_MODULES
@_LOCK
def lock_command(modules: str, lock: str | None) -> int:
    """Write (or add new versions to) the contract lock of cells modules."""
    return lock_cli.run("lock", modules, lock)


@cells_group.command("check")
@_MODULES
@_LOCK
def check_command(modules: str, lock: str | None) -> int:
    """Check cells modules against their contract lock."""
    return lock_cli.run("check", modules, lock)
