"""Constant folding and exact algebraic identities.

A node whose inputs are all ``prim::Constant`` is evaluated with NumPy and
becomes a constant (parameters are never folded: they are read at each call).
Identities are applied only where they are exact in IEEE arithmetic and keep
the type: ``x * 1``, ``x / 1``, ``x ** 1``, ``x - 0``, and ``x + 0`` for
integers (for floats ``-0.0 + 0`` is ``+0.0``, so that one is not an identity).
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..ir import Graph, Node, TensorType, Value
from .rewrite import emit_constant, replace_node

_MAX_FOLDED_ELEMENTS = 1 << 16  # larger results stay computed: a constant is copied to every device


def _constant_of(value: Value):
    producer = value.producer
    if producer is not None and producer.kind == "prim::Constant":
        return True, producer.attrs["value"]
    return False, None


def _is_scalar_constant(value: Value, number: int) -> bool:
    known, constant = _constant_of(value)
    if not known or constant is None or isinstance(constant, np.ndarray) and constant.ndim:
        return False
    try:
        return bool(np.asarray(constant) == number) and not isinstance(constant, bool)
    except (TypeError, ValueError):
        return False


_IDENTITIES = {  # kind -> (index of the operand kept, the neutral constant, integers only?)
    "np::multiply": [(0, 1, 1, False), (1, 0, 1, False)],
    "np::divide": [(0, 1, 1, False)],
    "np::power": [(0, 1, 1, False)],
    "np::subtract": [(0, 1, 0, False)],
    "np::add": [(0, 1, 0, True), (1, 0, 0, True)],
}


def _identity(node: Node) -> Value | None:
    for keep, other, neutral, ints_only in _IDENTITIES.get(node.kind, ()):
        x = node.inputs[keep]
        if not isinstance(x.type, TensorType) or str(x.type) != str(node.output.type):
            continue
        if ints_only and x.type.dtype.kind not in "iu":
            continue
        if _is_scalar_constant(node.inputs[other], neutral):
            return x
    return None


def fold(graph: Graph) -> tuple[Graph, bool]:
    changed = False
    for node in list(graph.nodes):
        if node.kind not in ops.OPS or ops.lookup(node.kind).category == ops.SPLIT:
            continue
        same = _identity(node)
        if same is not None:
            replace_node(graph, node, [same])
            changed = True
            continue
        constants = [_constant_of(v) for v in node.inputs]
        if not node.inputs or not all(known for known, _ in constants):
            continue
        out_type = node.output.type
        if isinstance(out_type, TensorType) and out_type.size > _MAX_FOLDED_ELEMENTS:
            continue
        value = ops.run_op(node.kind, np, [c for _, c in constants], node.attrs)
        value = np.asarray(value, dtype=out_type.dtype)
        value = value[()] if value.ndim == 0 else value
        replace_node(graph, node, [emit_constant(graph, node, value, out_type)])
        changed = True
    return graph, changed
