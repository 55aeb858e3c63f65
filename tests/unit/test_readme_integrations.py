"""The README's "Supported integrations" table names every integration the registry has.

Derived from :func:`default_registry`, so each integration module that joins
the catalog must be added to the table.
"""

from __future__ import annotations

import re
from pathlib import Path

from stepflow.integrations import default_registry
from stepflow.integrations.registry import SUPPORTED_DOC

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Supported integrations\n(.*?)(?=^## )", text, re.M | re.S)
    assert match is not None, "README.md has no '## Supported integrations' section"
    return match.group(1)


def test_the_documented_anchor_is_the_sections() -> None:
    assert SUPPORTED_DOC == "README.md#supported-integrations"
    section()


def test_every_registered_service_is_in_the_table() -> None:
    rows = [line for line in section().splitlines() if line.startswith("|")]
    services = {cell.strip() for row in rows for cell in row.split("|")[3:4]}
    registered = list(default_registry().services())
    assert registered, "the default registry is empty"
    missing = [s for s in registered if f"`{s}`" not in services]
    assert missing == [], f"add these services to README.md#supported-integrations: {missing}"
