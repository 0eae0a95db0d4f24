"""Normalise ops: one canonical op per meaning, so later passes match fewer patterns.

``x.T``, ``np.swapaxes`` and ``np.moveaxis`` become ``np::transpose``;
``np.dot`` of two matrices becomes ``np::matmul``; ``zeros_like`` and
``ones_like`` become ``full_like``; ``stack`` becomes ``expand_dims`` +
``concatenate``; ``split`` becomes slices; copies, same-dtype casts and
identity views disappear. Each rule maps a node to replacement values (or
None to keep it), inserting new nodes before it.
"""
from __future__ import annotations

import operator
from typing import Callable

import numpy as np

from .. import ops
from ..ir import Graph, Node, ScalarType, Value
from .rewrite import emit, replace_node

Rule = Callable[[Graph, Node], "list[Value] | None"]
RULES: dict[str, Rule] = {}


def rule(*kinds: str):
    def register(fn: Rule) -> Rule:
        for kind in kinds:
            RULES[kind] = fn
        return fn
    return register


@rule("np::T", "np::swapaxes")
def _to_transpose(graph: Graph, node: Node) -> list[Value]:
    return [emit(graph, node, "np::transpose", [node.inputs[0]], {"axes": transpose_axes(node)}).output]


def transpose_axes(node: Node) -> tuple[int, ...]:
    ndim = node.inputs[0].type.ndim
    if node.kind == "np::T":
        return tuple(reversed(range(ndim)))
    axes = list(range(ndim))
    a, b = node.attrs["axis1"] % ndim, node.attrs["axis2"] % ndim
    axes[a], axes[b] = axes[b], axes[a]
    return tuple(axes)


@rule("np::transpose")
def _identity_transpose(graph: Graph, node: Node) -> list[Value] | None:
    return [node.inputs[0]] if node.attrs["axes"] == tuple(range(len(node.attrs["axes"]))) else None


@rule("np::getitem")
def _identity_getitem(graph: Graph, node: Node) -> list[Value] | None:
    """``x[...]``, ``x[:, :]``, ``x[0:n]`` of an axis of n: the array itself (a view between a kernel's ops
    would end the kernel)."""
    x = node.inputs[0]
    return [x] if ops.selects_everything(node.attrs["index"], x.type.shape) else None


@rule("np::reshape", "np::ravel")
def _reshape(graph: Graph, node: Node) -> list[Value] | None:
    x = node.inputs[0]
    if node.output.type.shape == x.type.shape:
        return [x]
    if node.kind == "np::ravel":
        return [emit(graph, node, "np::reshape", [x], {"shape": (-1,)}).output]
    return None


@rule("np::dot")
def _dot(graph: Graph, node: Node) -> list[Value] | None:
    a, b = node.inputs
    if a.type.ndim == 0 or b.type.ndim == 0:
        return [emit(graph, node, "np::multiply", [a, b]).output]
    # only matrix by matrix is one GEMM for both: vectors and stacks of matrices sum in another order
    if a.type.ndim == 2 and b.type.ndim == 2:
        return [emit(graph, node, "np::matmul", [a, b]).output]
    return None


@rule("np::zeros_like", "np::ones_like")
def _fill_like(graph: Graph, node: Node) -> list[Value]:
    fill = 0 if node.kind == "np::zeros_like" else 1
    attrs = {"fill_value": fill, "dtype": node.output.type.dtype}
    return [emit(graph, node, "np::full_like", [node.inputs[0]], attrs).output]


@rule("np::copy", "np::positive")
def _copy(graph: Graph, node: Node) -> list[Value] | None:
    x = node.inputs[0]
    same = node.output.type.dtype == x.type.dtype and node.output.type.shape == x.type.shape
    return [x] if same else None


@rule("np::astype")
def _astype(graph: Graph, node: Node) -> list[Value] | None:
    return [node.inputs[0]] if node.attrs["dtype"] == node.inputs[0].type.dtype else None


_COMPARISONS = {"np::less": operator.lt, "np::less_equal": operator.le, "np::greater": operator.gt,
                "np::greater_equal": operator.ge, "np::equal": operator.eq, "np::not_equal": operator.ne}


@rule(*_COMPARISONS)
def _out_of_range_comparison(graph: Graph, node: Node) -> list[Value] | None:
    """An integer array against a Python int its dtype cannot hold: NumPy 2 gives the same answer for every
    element (``uint8_array < 300`` is all True); computed in the array's dtype, the int would wrap."""
    loop, _ = ops.ufunc_loop_dtypes(node.kind, [v.type for v in node.inputs])
    weak = [isinstance(v.type, ScalarType) and v.type.kind is int and v.producer is not None
            and v.producer.kind == "prim::Constant" for v in node.inputs]
    if loop[0].kind not in "iu" or weak.count(True) != 1:
        return None
    value = node.inputs[weak.index(True)].producer.attrs["value"]
    info = np.iinfo(loop[0])
    if info.min <= value <= info.max:
        return None
    extreme = int(info.max) if value > info.max else int(info.min)  # every element compares as this one does
    result = _COMPARISONS[node.kind](*[value if w else extreme for w in weak])
    array = node.inputs[weak.index(False)]
    return [emit(graph, node, "np::full_like", [array], {"fill_value": result, "dtype": np.dtype(bool)}).output]


@rule("np::stack")
def _stack(graph: Graph, node: Node) -> list[Value]:
    axis = ops.normalize_axes(node.attrs["axis"], node.output.type.ndim, "stack")[0]
    parts = [emit(graph, node, "np::expand_dims", [x], {"axis": (axis,)}).output for x in node.inputs]
    return [emit(graph, node, "np::concatenate", parts, {"axis": axis}).output]


@rule("np::split")
def _split(graph: Graph, node: Node) -> list[Value]:
    x = node.inputs[0]
    axis = ops.normalize_axes(node.attrs["axis"], x.type.ndim, "split")[0]
    pieces = []
    for start, stop in ops.split_bounds(x.type.shape[axis], node.attrs["indices_or_sections"]):
        index = (slice(None),) * axis + (slice(start, stop, None),)
        pieces.append(emit(graph, node, "np::getitem", [x], {"index": index}).output)
    return pieces


def normalize(graph: Graph) -> tuple[Graph, bool]:
    changed = False
    for node in list(graph.nodes):
        fn = RULES.get(node.kind)
        replacements = fn(graph, node) if fn is not None else None
        if replacements is not None:
            replace_node(graph, node, replacements)
            changed = True
    return graph, changed
