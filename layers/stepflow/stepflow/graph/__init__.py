"""Draw a state machine as a graph, optionally coloured by an execution's statuses.

:func:`build_graph` and :func:`node_statuses` are the model the web console and
``stepflow graph`` share; :mod:`stepflow.graph.render` writes Mermaid, DOT and SVG.
"""

from stepflow.graph.model import (
    STATUSES,
    Edge,
    Graph,
    GraphError,
    Group,
    Node,
    Status,
    build_graph,
    node_statuses,
)

__all__ = [
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
