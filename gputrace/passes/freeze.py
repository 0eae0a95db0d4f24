"""Freeze module attributes: ``prim::GetAttr`` chains from ``%self`` become named ``prim::Param`` nodes.

Runs after inlining. The parameters keep their dotted names (``linear.weight``)
and are read from the module at each call, so updated weights are seen.
"""
from __future__ import annotations

from ..errors import TracingError
from ..ir import Graph, ObjectType, TensorType
from .dce import dce


def freeze(graph: Graph) -> tuple[Graph, bool]:
    if not graph.inputs or not isinstance(graph.inputs[0].type, ObjectType):
        return graph, False
    self_value = graph.inputs[0]
    paths = {self_value: ""}
    for node in list(graph.nodes):
        if node.kind == "prim::CallMethod":
            raise TracingError("freeze needs an inlined graph: run inline first")
        if node.kind != "prim::GetAttr" or node.inputs[0] not in paths:
            continue
        prefix = paths[node.inputs[0]]
        path = f"{prefix}.{node.attrs['name']}" if prefix else node.attrs["name"]
        if isinstance(node.output.type, TensorType):
            param = graph.create_node("prim::Param", [], [node.output.type], attrs={"name": path},
                                      source=node.source, output_names=[path])
            graph.insert_before(node, [param])
            graph.replace_all_uses(node.output, param.output)
        else:
            paths[node.output] = path
    graph, _ = dce(graph)
    if self_value.users:
        raise TracingError(f"cannot freeze: %self is still used by {self_value.users[0].kind}")
    graph.inputs.remove(self_value)
    return graph, True
