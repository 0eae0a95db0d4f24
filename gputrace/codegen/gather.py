"""Gathers inside a kernel: the element of ``x[index]`` at a position, read from x where the index arrays say.

A fused gather is read like an input: its consumers read it at a position in its result (as if the result were a
contiguous array); the lines rendered here find the index arrays' entries for that position, check them
(``gt_index_in_bounds``) and read the source element, or raise the launch's bad-index flag and read nothing.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..ir import Graph, Node, TensorType
from ..passes.layout import broadcast_strides, gathers_of

FLAG = "bad_index"  # the kernel parameter: one zeroed uint32 after the outputs, raised by any index out of bounds
FLAG_PARAM = f"unsigned int* __restrict__ {FLAG}"
FLAG_WORKSPACE = (np.dtype(np.uint32), 1, True)


def index_checks(sub: Graph) -> list[tuple[int, tuple, list[int]]]:
    """For each gather: (its source's input number, its index, its index arrays' input numbers): what the runner
    checks with ``ops.check_index_bounds`` for NumPy's message when the flag is raised."""
    return [(sub.inputs.index(g.inputs[0]), g.attrs["index"], [sub.inputs.index(v) for v in g.inputs[1:]])
            for g in gathers_of(sub)]


def render_gather(node: Node, sub: Graph, name: str, position: str, ctype: str, storage_half: bool) -> list[str]:
    """Lines setting ``const <ctype> <name>`` to element ``position`` of the gather's result, in C order."""
    x, arrays = node.inputs[0], node.inputs[1:]
    xt: TensorType = x.type
    layout = ops.index_layout(xt.shape, node.attrs["index"], [a.type.shape for a in arrays])
    shape = layout.shape
    lines = [f"// {node.kind}{' ' + str(node.source) if node.source else ''}",
             f"long long {name}_rem = (long long)({position});"]
    coord = {}
    for axis in reversed(range(len(shape))):
        if shape[axis] == 1:
            coord[axis] = "0"
            continue
        coord[axis] = f"{name}_c{axis}"
        lines.append(f"const long long {name}_c{axis} = {name}_rem % {shape[axis]}LL; {name}_rem /= {shape[axis]}LL;")
    lines.append(f"(void){name}_rem;")
    advanced = range(layout.advanced_start, layout.advanced_start + len(layout.advanced_shape))
    checks, terms = [], []
    for dim, source in enumerate(layout.sources):
        stride = xt.strides[dim]
        if source[0] == "slice":
            _, axis, start, step = source
            at = f"({start}LL + {coord[axis]} * {step}LL)"
        elif source[0] == "int":
            at = f"{source[1]}LL"
        else:
            a = source[1]
            at = f"{name}_q{a}"
            index_strides = broadcast_strides(arrays[a].type, layout.advanced_shape)
            offset = " + ".join(f"{coord[axis]} * {s}LL" for axis, s in zip(advanced, index_strides) if s) or "0"
            lines.append(f"long long {at};")
            checks.append(f"gt_index_in_bounds(in{sub.inputs.index(arrays[a])}[{offset}], {xt.shape[dim]}LL, {at})")
        if stride and xt.shape[dim] != 1 or source[0] == "array":
            terms.append(f"{at} * {stride}LL")
    ok = f"{name}_ok"
    lines.append(f"const bool {ok} = {' && '.join(checks) or 'true'};")
    lines.append(f"if (!{ok}) gt_flag_bad_index({FLAG});")
    cell = f"in{sub.inputs.index(x)} + ({' + '.join(terms) or '0'})"
    read = f"gt_load_half({cell})" if storage_half else f"*({cell})"
    lines.append(f"const {ctype} {name} = {ok} ? ({ctype})({read}) : ({ctype})0;  // nothing read out of bounds")
    return lines

