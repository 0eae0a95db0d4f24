"""The bytes a fusion group's kernel reads: each distinct region of memory once.

A kernel's inputs are graph values, and several may be views of one array (an RK4 step reads ``y[0]`` under a
name per stage; ``x`` and ``x.T``): a region is an array seen through one chain of views, counted once, and the
regions of one array add up to at most the array. An input only gathers read costs the elements they pick (a
row's label: one element per row), not the whole source.
"""
from __future__ import annotations

from typing import Any

from .. import ops
from .kernel import memory_bytes


def bytes_read(group: Any) -> int:
    """The bytes the kernel of ``gt::FusionGroup`` node ``group`` reads from memory."""
    regions: dict[Any, dict[tuple, int]] = {}  # array -> (chain of views, gathered elements) -> bytes
    outside = dict(zip(group.subgraph.inputs, group.inputs))
    for inner, outer in outside.items():
        chain = _view_chain(outer)
        gathers = [u for u in inner.users if ops.is_element_load(u.kind) and u.inputs[0] is inner]
        if len(gathers) != len(inner.users) or inner in group.subgraph.outputs:  # read at its place (or as indices)
            regions.setdefault(ops.view_base(outer), {})[chain] = memory_bytes(outer.type)
        for gather in gathers:  # picked elements: the same index arrays pick the same ones
            picks = (repr(gather.attrs["index"]), *(id(outside.get(v, v)) for v in gather.inputs[1:]))
            elements = gather.output.type.size * gather.output.type.dtype.itemsize
            regions.setdefault(ops.view_base(outer), {})[chain + picks] = min(elements, memory_bytes(outer.type))
    return sum(min(sum(parts.values()), memory_bytes(base.type)) for base, parts in regions.items())


def _view_chain(value: Any) -> tuple:
    """The views from ``value``'s array to ``value``, as (kind, attributes) from the array on."""
    chain = []
    while value is not ops.view_base(value):
        node = value.producer
        chain.append((node.kind, repr(sorted(node.attrs.items()))))
        value = node.inputs[0]
    return tuple(reversed(chain))
