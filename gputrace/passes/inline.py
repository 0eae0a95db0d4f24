"""Inline ``prim::CallMethod`` nodes: the callee's nodes replace the call, like TorchScript's Inline."""
from __future__ import annotations

from ..ir import Graph


def inline(graph: Graph) -> tuple[Graph, bool]:
    changed = False
    for node in list(graph.nodes):
        if node.kind != "prim::CallMethod":
            continue
        callee, _ = inline(node.subgraph.copy())
        mapping = dict(zip(callee.inputs, node.inputs))
        spliced = []
        for inner in callee.nodes:
            new = graph.create_node(inner.kind, [mapping[v] for v in inner.inputs], [v.type for v in inner.outputs],
                                    attrs=inner.attrs, source=inner.source, subgraph=inner.subgraph,
                                    output_names=[v.name if not v.name.isdigit() else None for v in inner.outputs])
            new.meta = dict(inner.meta)
            mapping.update(zip(inner.outputs, new.outputs))
            spliced.append(new)
        graph.insert_before(node, spliced)
        for old, result in zip(node.outputs, callee.outputs):
            graph.replace_all_uses(old, mapping[result])
        graph.remove_node(node)
        changed = True
    return graph, changed
