"""The graph of a state machine, shared by ``stepflow graph`` and the web console.

Pure: no I/O and no AWS. :func:`build_graph` turns an ASL definition (the raw
mapping, so a graph can be drawn for code review before deployment) into a
:class:`Graph`; :func:`node_statuses` colours it from an execution's history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from stepflow.graph.labels import catch_label, rule_label
from stepflow.graph.status import STATUSES, Status, history_statuses

__all__ = [
    "MAX_DEPTH",
    "MAX_EDGES",
    "MAX_NODES",
    "STATE_TYPES",
    "STATUSES",
    "Edge",
    "Graph",
    "GraphError",
    "Group",
    "Node",
    "Status",
    "build_graph",
    "node_statuses",
]

#: The state types a node may have.
STATE_TYPES = frozenset({"Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"})
#: The most states a graph holds; a larger definition is refused with a GraphError.
MAX_NODES = 10_000
#: The most edges a graph holds (Choice rules and Catchers included).
MAX_EDGES = 50_000
#: The deepest nesting of Parallel branches and Map iterations drawn.
MAX_DEPTH = 32

EdgeKind = Literal["next", "choice", "default", "catch"]
GroupKind = Literal["branch", "iteration"]


class GraphError(ValueError):
    """A definition that cannot be drawn; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Node:
    """One state. ``group`` is the id of the branch or iteration holding it (None at top level)."""

    id: str
    name: str
    type: str
    group: str | None
    end: bool
    resource: str | None


@dataclass(frozen=True, slots=True)
class Group:
    """A Parallel branch or a Map iteration.

    Ids: ``<Parallel name>#branch<i>`` (i from 1, as in the label "Branch i")
    and ``<Map name>#iteration``; ``state`` names the owner, ``parent`` the
    enclosing group.
    """

    id: str
    label: str
    kind: GroupKind
    state: str
    parent: str | None


@dataclass(frozen=True, slots=True)
class Edge:
    """A transition: Next, a Choice rule, a Choice Default or a Catcher."""

    source: str
    target: str
    kind: EdgeKind
    label: str | None = None


@dataclass(slots=True)
class Graph:
    """Nodes, groups and edges of a state machine, in definition order (owners before contents).

    Each group's StartAt is reached by an edge of kind ``next`` (label None)
    from the owning Parallel or Map node: layered layouts (Mermaid, Graphviz,
    the console's) then place a branch under its owner. The run's start is
    ``start_at``; the ends are the nodes with ``end`` True.
    """

    start_at: str
    nodes: list[Node] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def node(self, name: str) -> Node:
        """The node of state ``name`` (KeyError if there is none)."""
        for node in self.nodes:
            if node.id == name:
                return node
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The graph as JSON-ready data, in the shape the web console reads."""
        return {
            "startAt": self.start_at,
            "nodes": [
                {
                    "id": n.id,
                    "name": n.name,
                    "type": n.type,
                    "group": n.group,
                    "end": n.end,
                    "resource": n.resource,
                }
                for n in self.nodes
            ],
            "groups": [
                {"id": g.id, "label": g.label, "kind": g.kind, "state": g.state, "parent": g.parent}
                for g in self.groups
            ],
            "edges": [
                {"source": e.source, "target": e.target, "kind": e.kind, "label": e.label}
                for e in self.edges
            ],
        }


def build_graph(definition: Mapping[str, Any]) -> Graph:
    """The graph of an ASL definition.

    Every state is a node; Parallel branches and Map iterations
    (``ItemProcessor`` or ``Iterator``) are groups. Raises :class:`GraphError`
    for a definition that is not a state machine (not a mapping, no States or
    StartAt, an unknown Type or target, a repeated state name), nests deeper
    than :data:`MAX_DEPTH` or has more than :data:`MAX_NODES` states. Loops
    between states are ordinary edges: nothing here follows them.
    """
    if not isinstance(definition, Mapping):
        raise GraphError(f"a definition is a JSON object, not {type(definition).__name__}")
    builder = _Builder()
    start = builder.scope(definition, "", None, 0)
    builder.check_targets()
    return Graph(start, builder.nodes, builder.groups, builder.edges)


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.groups: list[Group] = []
        self.edges: list[Edge] = []
        self.names: set[str] = set()
        self.entries: set[int] = set()  # edges of a Parallel or Map into its own groups

    def scope(self, machine: Any, where: str, group: str | None, depth: int) -> str:
        """Add the states of one scope (the machine, a branch, an iteration); return its StartAt."""
        if not isinstance(machine, Mapping):
            raise GraphError(f"{where or '/'}: expected an object with StartAt and States")
        states = machine.get("States")
        start = machine.get("StartAt")
        if not isinstance(states, Mapping) or not states:
            raise GraphError(f"{where}/States: missing or empty")
        if not isinstance(start, str) or start not in states:
            raise GraphError(f"{where}/StartAt: must name a state of this scope, got {start!r}")
        if len(self.nodes) + len(states) > MAX_NODES:
            raise GraphError(f"more than {MAX_NODES} states: too large to draw")
        for name, state in states.items():
            self.state(str(name), state, f"{where}/States/{name}", group, depth)
        return start

    def state(self, name: str, state: Any, where: str, group: str | None, depth: int) -> None:
        if not isinstance(state, Mapping):
            raise GraphError(f"{where}: a state is an object")
        kind = state.get("Type")
        if kind not in STATE_TYPES:
            raise GraphError(f"{where}/Type: unknown state type {kind!r}")
        if name in self.names:
            raise GraphError(f"{where}: state name {name!r} is used twice")
        self.names.add(name)
        resource = state.get("Resource")
        self.nodes.append(
            Node(
                id=name,
                name=name,
                type=kind,
                group=group,
                end=state.get("End") is True or kind in ("Succeed", "Fail"),
                resource=resource if kind == "Task" and isinstance(resource, str) else None,
            )
        )
        if kind == "Choice":
            self.choice(name, state, where)
        elif isinstance(state.get("Next"), str):
            self.edge(Edge(name, state["Next"], "next"))
        catchers = state.get("Catch")
        if isinstance(catchers, list):
            for catcher in catchers:
                if isinstance(catcher, Mapping) and isinstance(catcher.get("Next"), str):
                    self.edge(Edge(name, catcher["Next"], "catch", catch_label(catcher)))
        if kind in ("Parallel", "Map"):
            self.nested(name, kind, state, where, group, depth + 1)

    def choice(self, name: str, state: Mapping[str, Any], where: str) -> None:
        rules = state.get("Choices")
        if not isinstance(rules, list):
            raise GraphError(f"{where}/Choices: a Choice state needs a list of rules")
        for rule in rules:
            if isinstance(rule, Mapping) and isinstance(rule.get("Next"), str):
                self.edge(Edge(name, rule["Next"], "choice", rule_label(rule)))
        if isinstance(state.get("Default"), str):
            self.edge(Edge(name, state["Default"], "default", "Default"))

    def nested(
        self,
        name: str,
        kind: str,
        state: Mapping[str, Any],
        where: str,
        parent: str | None,
        depth: int,
    ) -> None:
        if depth > MAX_DEPTH:
            raise GraphError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if kind == "Map":
            key = "ItemProcessor" if "ItemProcessor" in state else "Iterator"
            group = Group(f"{name}#iteration", "Map iteration", "iteration", name, parent)
            self.group(group, state.get(key), f"{where}/{key}", depth)
            return
        branches = state.get("Branches")
        if not isinstance(branches, list) or not branches:
            raise GraphError(f"{where}/Branches: a Parallel state needs a list of branches")
        for i, branch in enumerate(branches, start=1):
            group = Group(f"{name}#branch{i}", f"Branch {i}", "branch", name, parent)
            self.group(group, branch, f"{where}/Branches/{i - 1}", depth)

    def group(self, group: Group, body: Any, where: str, depth: int) -> None:
        self.groups.append(group)
        start = self.scope(body, where, group.id, depth)
        self.entries.add(len(self.edges))
        self.edge(Edge(group.state, start, "next"))

    def edge(self, edge: Edge) -> None:
        if len(self.edges) >= MAX_EDGES:
            raise GraphError(f"more than {MAX_EDGES} transitions: too large to draw")
        self.edges.append(edge)

    def check_targets(self) -> None:
        """Each transition names a state of its own scope, as AWS requires."""
        scope = {node.id: node.group for node in self.nodes}
        for number, edge in enumerate(self.edges):
            if edge.target not in self.names:
                raise GraphError(
                    f"state {edge.source!r} goes to {edge.target!r}, which is no state"
                )
            if number in self.entries or scope[edge.target] == scope[edge.source]:
                continue
            raise GraphError(
                f"state {edge.source!r} goes to {edge.target!r}, which is not in its "
                "scope (a branch or iteration reaches only its own states)"
            )


def node_statuses(
    definition: Mapping[str, Any], events: Iterable[Mapping[str, Any]]
) -> dict[str, Status]:
    """Each state of ``definition`` -> its status in the execution whose history is ``events``.

    ``events`` are in the GetExecutionHistory shape (``type``, ``id``,
    ``previousEventId``, ``...EventDetails``), oldest first. Every state of the
    definition gets one of :data:`STATUSES`; the rules are in
    :mod:`stepflow.graph.status`. Raises :class:`GraphError` as
    :func:`build_graph` does.
    """
    seen = history_statuses(events)
    return {node.id: seen.get(node.id, "not-run") for node in build_graph(definition).nodes}
