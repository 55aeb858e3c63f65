"""Write a :class:`~stepflow.graph.model.Graph` as Mermaid or Graphviz DOT text.

Nothing from the definition reaches the output unescaped: nodes and clusters
get generated ids (``n0``, ``g0``), and names and labels are written as quoted
strings in which every character that could close the string, start markup or
a new statement is encoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from stepflow.graph.model import Graph, Group, Node
from stepflow.graph.status import Status

__all__ = ["STATUS_COLOURS", "to_dot", "to_mermaid"]

#: Fill and stroke colours per status, shared by Mermaid and DOT.
STATUS_COLOURS: Mapping[Status, tuple[str, str]] = {
    "succeeded": ("#d1f2d9", "#1e7d34"),
    "failed": ("#f8d7da", "#b02a37"),
    "caught": ("#fff3cd", "#b8860b"),
    "running": ("#cfe2ff", "#0a58ca"),
    "aborted": ("#e2e3e5", "#41464b"),
    "timed-out": ("#ffe5d0", "#c2410c"),
    "not-run": ("#ffffff", "#adb5bd"),
}

_MERMAID_SHAPES = {
    "Task": ('["', '"]'),
    "Pass": ('("', '")'),
    "Choice": ('{"', '"}'),
    "Wait": ('{{"', '"}}'),
    "Succeed": ('(["', '"])'),
    "Fail": ('>"', '"]'),
    "Parallel": ('[/"', '"/]'),
    "Map": ('[["', '"]]'),
}
_DOT_SHAPES = {
    "Task": 'shape=box, style="filled"',
    "Pass": 'shape=box, style="rounded,filled"',
    "Choice": 'shape=diamond, style="filled"',
    "Wait": 'shape=hexagon, style="filled"',
    "Succeed": 'shape=box, style="rounded,filled,bold"',
    "Fail": 'shape=octagon, style="filled"',
    "Parallel": 'shape=parallelogram, style="filled"',
    "Map": 'shape=box3d, style="filled"',
}
_MERMAID_SAFE = re.compile(r"[A-Za-z0-9 _.,:/+*=()$@!?\-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


_Item = tuple[str, int, Group | Node | None]


class _Layout:
    """Generated ids and the nesting of groups, shared by both writers."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.node_ids = {node.id: f"n{i}" for i, node in enumerate(graph.nodes)}
        self.group_ids = {group.id: f"g{i}" for i, group in enumerate(graph.groups)}
        self.members: dict[str | None, list[Node]] = {}
        for node in graph.nodes:
            self.members.setdefault(node.group, []).append(node)
        self.children: dict[str | None, list[Group]] = {}
        for group in graph.groups:
            self.children.setdefault(group.parent, []).append(group)
        self.owners = {group.id: group.state for group in graph.groups}
        self.group_of = {node.id: node.group for node in graph.nodes}

    def enters_group(self, source: str, target: str) -> bool:
        """Whether source -> target is the edge from a Parallel or Map to a branch's start."""
        group = self.group_of.get(target)
        return group is not None and self.owners.get(group) == source

    def walk(
        self, parent: str | None, depth: int
    ) -> Iterator[tuple[str, int, Group | Node | None]]:
        """("node", depth, node), ("open", depth, group), ("close", depth, None), nested."""
        for node in self.members.get(parent, []):
            yield "node", depth, node
        for group in self.children.get(parent, []):
            yield "open", depth, group
            yield from self.walk(group.id, depth + 1)
            yield "close", depth, None


def _flat(text: str) -> str:
    """One line, and encodable: a lone surrogate (which JSON allows) becomes U+FFFD."""
    return _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", text))


def _mermaid_text(text: str) -> str:
    """Text for a quoted Mermaid label: unsafe characters as ``#<code>;`` entities."""
    return "".join(c if _MERMAID_SAFE.fullmatch(c) else f"#{ord(c)};" for c in _flat(text))


def _mermaid_class(status: Status) -> str:
    return "status_" + status.replace("-", "_")


def to_mermaid(graph: Graph, statuses: Mapping[str, Status] | None = None) -> str:
    """A Mermaid ``flowchart TD``: subgraphs for branches and iterations, shapes by state type.

    With ``statuses`` each node gets the class ``status_<status>`` (``-`` as
    ``_``), defined by a ``classDef`` per status.
    """
    layout = _Layout(graph)
    lines = ["flowchart TD", '  sf_start(("Start"))', '  sf_end(("End"))']
    for kind, depth, item in layout.walk(None, 1):
        pad = "  " * depth
        if kind == "node" and isinstance(item, Node):
            left, right = _MERMAID_SHAPES[item.type]
            lines.append(f"{pad}{layout.node_ids[item.id]}{left}{_mermaid_text(item.name)}{right}")
        elif kind == "open" and isinstance(item, Group):
            label = _mermaid_text(f"{item.label} of {item.state}")
            lines.append(f'{pad}subgraph {layout.group_ids[item.id]}["{label}"]')
        elif kind == "close":
            lines.append(f"{pad}end")
    lines.append(f"  sf_start --> {layout.node_ids[graph.start_at]}")
    for edge in graph.edges:
        source, target = layout.node_ids[edge.source], layout.node_ids[edge.target]
        arrow = "-.->" if edge.kind == "catch" else "-->"
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        lines.append(f"  {source} {arrow}{label} {target}")
    for node in graph.nodes:
        if node.end and node.group is None:
            lines.append(f"  {layout.node_ids[node.id]} --> sf_end")
    if statuses is not None:
        by_status: dict[Status, list[str]] = {}
        for node in graph.nodes:
            by_status.setdefault(statuses.get(node.id, "not-run"), []).append(
                layout.node_ids[node.id]
            )
        for status, (fill, stroke) in STATUS_COLOURS.items():
            lines.append(f"  classDef {_mermaid_class(status)} fill:{fill},stroke:{stroke}")
        for status, ids in by_status.items():
            lines.append(f"  class {','.join(ids)} {_mermaid_class(status)}")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    """A DOT double-quoted string (quotes included) showing ``text`` literally."""
    escaped = _flat(text).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def to_dot(graph: Graph, statuses: Mapping[str, Status] | None = None) -> str:
    """A Graphviz ``digraph``: a cluster per branch and iteration, shapes by state type.

    With ``statuses`` each node is filled with its status's colour and carries
    ``class="status-<status>"`` (Graphviz copies it into SVG output).
    """
    layout = _Layout(graph)
    lines = [
        "digraph stepflow {",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=11];',
        '  node [fontname="Helvetica", fontsize=11, fillcolor="#ffffff"];',
        '  edge [fontname="Helvetica", fontsize=9];',
        '  sf_start [label="", shape=circle, width=0.25, style=filled, fillcolor="#000000"];',
        '  sf_end [label="", shape=doublecircle, width=0.2, style=filled, fillcolor="#000000"];',
    ]
    for kind, depth, item in layout.walk(None, 1):
        pad = "  " * depth
        if kind == "node" and isinstance(item, Node):
            attributes = [f"label={_dot_text(item.name)}", _DOT_SHAPES[item.type]]
            if statuses is not None:
                status = statuses.get(item.id, "not-run")
                fill, stroke = STATUS_COLOURS[status]
                attributes += [
                    f'fillcolor="{fill}"',
                    f'color="{stroke}"',
                    f'class="status-{status}"',
                ]
            lines.append(f"{pad}{layout.node_ids[item.id]} [{', '.join(attributes)}];")
        elif kind == "open" and isinstance(item, Group):
            lines.append(f"{pad}subgraph cluster_{layout.group_ids[item.id]} {{")
            label = _dot_text(f"{item.label} of {item.state}")
            lines.append(f'{pad}  label={label}; style="dashed,rounded"; color="#6c757d";')
        elif kind == "close":
            lines.append(f"{pad}}}")
    lines.append(f"  sf_start -> {layout.node_ids[graph.start_at]};")
    for edge in graph.edges:
        attributes = []
        if edge.label:
            attributes.append(f"label={_dot_text(edge.label)}")
        if edge.kind == "catch":
            attributes.append('style=dashed, color="#b02a37"')
        elif layout.enters_group(edge.source, edge.target):
            attributes.append('style=dotted, color="#6c757d"')
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"  {layout.node_ids[edge.source]} -> {layout.node_ids[edge.target]}{suffix};")
    for node in graph.nodes:
        if node.end and node.group is None:
            lines.append(f"  {layout.node_ids[node.id]} -> sf_end;")
    lines.append("}")
    return "\n".join(lines) + "\n"
