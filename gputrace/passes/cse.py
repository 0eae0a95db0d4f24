"""Common-subexpression elimination: one node per (kind, inputs, attributes)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import Graph, Node


def _hashable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, np.generic):
        return ("scalar", value.dtype.str, value.tobytes())
    if isinstance(value, float):
        return ("float", np.float64(value).tobytes())  # keeps -0.0 and NaN apart from 0.0 / each other
    if isinstance(value, (tuple, list)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, slice):
        return ("slice", value.start, value.stop, value.step)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return (type(value).__name__, value)


def node_key(node: Node) -> tuple | None:
    """What makes two nodes compute the same value; None for nodes never merged."""
    if node.kind in ("prim::CallMethod", "gt::FusionGroup"):
        return None
    types = tuple(str(v.type) for v in node.outputs)
    return (node.kind, tuple(map(id, node.inputs)), _hashable(node.attrs), types)


def cse(graph: Graph) -> tuple[Graph, bool]:
    seen: dict[tuple, Node] = {}
    changed = False
    for node in list(graph.nodes):
        key = node_key(node)
        if key is None:
            continue
        earlier = seen.get(key)
        if earlier is None:
            seen[key] = node
            continue
        for old, new in zip(node.outputs, earlier.outputs):
            graph.replace_all_uses(old, new)
        graph.remove_node(node)
        changed = True
    return graph, changed
