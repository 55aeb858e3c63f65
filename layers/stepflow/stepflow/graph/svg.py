"""SVG through Graphviz's ``dot``, run as a subprocess on the DOT text of :mod:`.render`.

Graphviz is the layout dependency (see docs/graph.md for why): it lays out
nested clusters, routes edges and escapes every text it writes into the SVG.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping

from stepflow.graph.model import Graph
from stepflow.graph.render import to_dot
from stepflow.graph.status import Status

__all__ = ["INSTALL_HINT", "GraphvizError", "to_svg"]

#: How to get Graphviz, said whenever ``dot`` is missing.
INSTALL_HINT = (
    "SVG output needs Graphviz's `dot` on the PATH: install it with "
    "`sudo apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) "
    "or `choco install graphviz` (Windows), or use --format mermaid or --format dot"
)
#: The longest a layout may take, in seconds.
LAYOUT_TIMEOUT = 120.0


class GraphvizError(RuntimeError):
    """``dot`` is missing, failed or took too long; the message says which and what to do."""


def to_svg(
    graph: Graph,
    statuses: Mapping[str, Status] | None = None,
    *,
    dot: str | None = None,
    timeout: float = LAYOUT_TIMEOUT,
) -> str:
    """The graph as an SVG document, laid out by Graphviz's ``dot`` (``dot``: its path)."""
    program = dot or shutil.which("dot")
    if program is None:
        raise GraphvizError(INSTALL_HINT)
    try:
        done = subprocess.run(
            [program, "-Tsvg"],
            input=to_dot(graph, statuses).encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as error:
        raise GraphvizError(INSTALL_HINT) from error
    except subprocess.TimeoutExpired as error:
        raise GraphvizError(
            f"Graphviz took longer than {timeout:g} s to lay the graph out"
        ) from error
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()[:2000]
        raise GraphvizError(f"Graphviz's dot failed (exit {done.returncode}): {message}")
    return done.stdout.decode()
