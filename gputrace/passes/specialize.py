"""Re-type a graph for inputs of other shapes, strides or devices.

Every node's output types are inferred again from its inputs' types with the
op table's rules; a rule that fails (a reshape that no longer fits, say)
raises the same error NumPy would.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

from .. import ops
from ..ir import Graph, TensorType, Type


def specialize(graph: Graph, input_types: Sequence[Type], param_types: Mapping[str, TensorType]) -> tuple[Graph, bool]:
    """Set the input types and propagate; ``graph`` must be frozen (no modules).

    Parameters and array constants live where the inputs live: the executor moves them there.
    """
    changed = False
    for value, t in zip(graph.inputs, input_types):
        changed |= value.type != t
        value.type = t
    device = next((t.device for t in input_types if isinstance(t, TensorType)), None)

    def on_device(t: Type) -> Type:
        return dataclasses.replace(t, device=device) if isinstance(t, TensorType) and device else t

    for node in graph.nodes:
        if node.kind == "prim::Param":
            new_types = [on_device(param_types[node.attrs["name"]])]
        elif node.kind == "prim::Constant":
            new_types = [on_device(node.output.type)]
        elif node.subgraph is not None:
            node.subgraph, _ = specialize(node.subgraph, [v.type for v in node.inputs], param_types)
            new_types = [v.type for v in node.subgraph.outputs]
        else:
            new_types = ops.infer_types(node.kind, [v.type for v in node.inputs], node.attrs)
        for value, t in zip(node.outputs, new_types):
            changed |= value.type != t
            value.type = t
    return graph, changed
