"""Dead-code elimination: drop nodes whose outputs nobody uses (every op is pure)."""
from __future__ import annotations

from ..ir import Graph


def dce(graph: Graph) -> tuple[Graph, bool]:
    changed = False
    outputs = set(map(id, graph.outputs))
    for node in reversed(list(graph.nodes)):
        if all(not v.users and id(v) not in outputs for v in node.outputs):
            graph.remove_node(node)
            changed = True
    return graph, changed
