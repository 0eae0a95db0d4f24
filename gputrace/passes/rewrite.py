"""Shared machinery for rewriting passes: emit typed nodes before an anchor node."""
from __future__ import annotations

from typing import Any, Sequence

from .. import ops
from ..ir import Graph, Node, Value


def emit(graph: Graph, anchor: Node, kind: str, inputs: Sequence[Value], attrs: dict | None = None) -> Node:
    """Insert ``kind(inputs)`` before ``anchor``, typed by the op table, with the anchor's source line."""
    attrs = dict(attrs or {})
    types = ops.infer_types(kind, [v.type for v in inputs], attrs)
    node = graph.create_node(kind, inputs, types, attrs=attrs, source=anchor.source)
    graph.insert_before(anchor, [node])
    return node


def emit_constant(graph: Graph, anchor: Node, value: Any, type) -> Value:
    node = graph.create_node("prim::Constant", [], [type], attrs={"value": value}, source=anchor.source)
    graph.insert_before(anchor, [node])
    return node.output


def replace_node(graph: Graph, node: Node, replacements: Sequence[Value]) -> None:
    """Route every use of ``node``'s outputs to ``replacements`` and delete it."""
    for old, new in zip(node.outputs, replacements):
        graph.replace_all_uses(old, new)
    graph.remove_node(node)
