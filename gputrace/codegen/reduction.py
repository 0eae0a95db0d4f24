"""Render a fusion group with reductions into a row kernel from ``reduction.cu``.

The group's space is a full shape F and the reduced axes A. A *row* is one
index over the kept axes; one block reduces it with all its threads. Every
value of the group is either element-level (shape F: one per row element) or
row-level (the reduced shape: one per row). Each reduction is a phase: a loop
over the row's elements that evaluates the reduction's input expression and
accumulates, then a block reduction; row-level values are computed right
after the values they need. A final loop writes the element-level outputs
(the epilogue: e.g. softmax's ``e / sum``). Element-level expressions are
recomputed in every loop that needs them: the row's second read comes from
cache, and no intermediate goes to memory.
"""
from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from .. import ops
from ..ir import Graph, Node, TensorType, Value, contiguous_strides
from ..passes.fuse import Space, own_space, reduction_axes
from .elementwise import (HALF, STORAGE_TYPES, broadcast_strides, collapse_dims, compute_type, render_cast,
                          render_literal, render_op, _weak_or_dtype, _kernel_name)
from .kernel import Kernel
from .templates import read_template

BLOCK = 256
_COMBINE = {"sum": "GtSum", "mean": "GtSum", "var": "GtSum", "std": "GtSum", "prod": "GtProd",
            "max": "GtMax", "min": "GtMin", "any": "GtAny", "all": "GtAll",
            "argmax": "GtArgMax", "argmin": "GtArgMin"}
_NO_IDENTITY = {"max": "maximum", "min": "minimum", "argmax": "argmax", "argmin": "argmin"}


def accumulator_dtype(node: Node) -> np.dtype:
    """The dtype a reduction accumulates in: at least float32 for floats (float16 sums in float32)."""
    name, out = node.op, node.output.type.dtype
    source = node.inputs[0].type.dtype
    if name in ("max", "min", "argmax", "argmin"):
        return np.dtype(np.float32) if source == HALF else source
    if name in ("any", "all"):
        return np.dtype(bool)
    return np.dtype(np.float32) if out == HALF else out


def _identity(name: str, acc: np.dtype) -> str:
    ctype = compute_type(acc)
    if name in ("sum", "mean", "var", "std", "any"):
        return f"gt_cast<{ctype}>(0)" if name != "any" else "false"
    if name == "prod":
        return f"gt_cast<{ctype}>(1)"
    if name == "all":
        return "true"
    if name in ("argmax", "argmin"):
        return f"GtArg<{ctype}>{{gt_cast<{ctype}>(0), -1LL}}"
    big = name == "min"  # max starts at the lowest value, min at the highest
    if acc.kind == "f":
        text, _ = render_literal(np.inf if big else -np.inf)
        return f"gt_cast<{ctype}>({text})"
    if acc.kind == "b":
        return "true" if big else "false"
    info = np.iinfo(acc)
    text, _ = render_literal(int(info.max if big else info.min))
    return f"gt_cast<{ctype}>({text})"


@dataclass
class Access:
    """How one operand is indexed: strides over F's kept and reduced axes (before collapsing)."""
    pointer: str
    dtype: np.dtype
    kept: list[int]
    reduced: list[int] | None  # None: row-level (constant along the row)


def _embed_strides(t: TensorType, shape: tuple[int, ...], space: Space) -> list[int]:
    """Strides over F of ``t`` read by a node of ``shape`` (F itself, or one of the reduced shapes)."""
    strides = broadcast_strides(t, shape)
    if len(shape) == len(space.shape):
        return strides
    it = iter(strides)  # the dropped-dims form: reduced axes are missing
    return [0 if d in space.axes else next(it) for d in range(len(space.shape))]


def render_reduction(group: Node, number: int) -> Kernel:
    sub: Graph = group.subgraph
    reductions = [n for n in sub.nodes if ops.OPS.get(n.kind) and ops.lookup(n.kind).category == ops.REDUCTION]
    space = own_space(reductions[0])
    F, axes = space.shape, space.axes
    kept_axes = [d for d in range(len(F)) if d not in axes]
    kept_shape, red_shape = [F[d] for d in kept_axes], [F[d] for d in axes]
    rows = int(np.prod(kept_shape, dtype=np.int64))
    cols = int(np.prod(red_shape, dtype=np.int64))

    def element_level(node: Node) -> bool:
        return node not in reductions and node.output.type.shape == F

    level = {}  # value -> "elem" | "row"
    for v in sub.inputs:
        level[v] = "input"
    for node in sub.nodes:
        if node.kind == "prim::Constant":
            level[node.output] = "const"
        else:
            level[node.output] = "elem" if element_level(node) else "row"

    # -- operand accesses: (input index, strides over F) -> one load each
    accesses: list[Access] = []
    access_of: dict[tuple[Node, int], int] = {}
    keys: dict[tuple, int] = {}
    for node in sub.nodes:
        for position, v in enumerate(node.inputs):
            if level[v] != "input":
                continue
            k = sub.inputs.index(v)
            elem = node in reductions or element_level(node)
            full = _embed_strides(v.type, F if elem else node.output.type.shape, space)
            key = (k, tuple(full), elem)
            if key not in keys:
                keys[key] = len(accesses)
                accesses.append(Access(f"in{k}", v.type.dtype, [full[d] for d in kept_axes],
                                       [full[d] for d in axes] if elem else None))
            access_of[(node, position)] = keys[key]
    outputs = []  # (output index, value, element-level?, access index)
    for k, v in enumerate(sub.outputs):
        elem = level[v] == "elem"
        access = None
        if elem:
            strides = contiguous_strides(F)
            access = len(accesses)
            accesses.append(Access(f"out{k}", v.type.dtype, [strides[d] for d in kept_axes],
                                   [strides[d] for d in axes]))
        outputs.append((k, v, elem, access))

    kdims, kstrides = collapse_dims(kept_shape, [a.kept for a in accesses])
    elem_accesses = [i for i, a in enumerate(accesses) if a.reduced is not None]
    rdims, rstrides_list = collapse_dims(red_shape, [accesses[i].reduced for i in elem_accesses])
    rstrides = dict(zip(elem_accesses, rstrides_list))
    reach = max([rows * max(cols, 1)] + [sum(abs(s) * (d - 1) for s, d in zip(st, kdims)) for st in kstrides]
                + [sum(abs(s) * (d - 1) for s, d in zip(st, rdims)) for st in rstrides_list])
    index_t = "int" if reach < 2**31 - 1 else "long long"
    scalar = np.int32 if index_t == "int" else np.int64

    params = [f"const {STORAGE_TYPES[v.type.dtype.name]}* __restrict__ in{k}" for k, v in enumerate(sub.inputs)]
    params += [f"{STORAGE_TYPES[v.type.dtype.name]}* __restrict__ out{k}" for k, v in enumerate(sub.outputs)]
    params += [f"{index_t} rows", f"{index_t} cols"]
    scalar_args = [scalar(rows), scalar(cols)]
    for j, d in enumerate(kdims):
        params.append(f"{index_t} kd{j}")
        scalar_args.append(scalar(d))
    for j, d in enumerate(rdims):
        params.append(f"{index_t} rd{j}")
        scalar_args.append(scalar(d))
    for a, st in enumerate(kstrides):
        for j, s in enumerate(st):
            params.append(f"{index_t} ks{a}_{j}")
            scalar_args.append(scalar(s))
    for a in elem_accesses:
        for j, s in enumerate(rstrides[a]):
            params.append(f"{index_t} rs{a}_{j}")
            scalar_args.append(scalar(s))

    # -- row setup: the row's offset in every operand
    setup = ["        index_t rrem = row;"] if kdims else []
    for a in range(len(accesses)):
        setup.append(f"        index_t roff{a} = 0;")
    for j in reversed(range(len(kdims))):
        setup.append(f"        const index_t kc{j} = rrem % kd{j}; rrem /= kd{j};" if j else
                     f"        const index_t kc{j} = rrem;")
        for a in range(len(accesses)):
            setup.append(f"        roff{a} += kc{j} * ks{a}_{j};")

    def load(a: int, indent: str, elem: bool) -> str:
        acc = accesses[a]
        index = f"roff{a} + coff{a}" if elem else f"roff{a}"
        expr = f"gt_load_half({acc.pointer} + {index})" if acc.dtype == HALF else f"{acc.pointer}[{index}]"
        return f"{indent}const {compute_type(acc.dtype)} a{a} = {expr};"

    def column_setup(indent: str, used: list[int]) -> list[str]:
        lines = [f"{indent}index_t crem = j;"] if rdims else []
        for a in used:
            lines.append(f"{indent}index_t coff{a} = 0;")
        for j in reversed(range(len(rdims))):
            lines.append(f"{indent}const index_t cc{j} = crem % rd{j}; crem /= rd{j};" if j else
                         f"{indent}const index_t cc{j} = crem;")
            for a in used:
                lines.append(f"{indent}coff{a} += cc{j} * rs{a}_{j};")
        return lines

    names: dict[Value, tuple[str, object]] = {}
    for node in sub.nodes:
        if node.kind == "prim::Constant":
            text, _ = render_literal(node.attrs["value"])
            names[node.output] = (f"({text})", node.output.type)

    def operand(node: Node, position: int, local: dict) -> tuple[str, object]:
        v = node.inputs[position]
        if level[v] == "input":
            a = access_of[(node, position)]
            return f"a{a}", v.type
        return local.get(v) or names[v]

    def emit_elements(targets: list[Value], indent: str, consumer: Node | None = None,
                      stores: tuple[int, ...] = ()) -> tuple[list[str], dict]:
        """Offsets, loads and element-level nodes that ``targets`` need, for one loop body."""
        needed: set[Node] = set()
        stack = [v.producer for v in targets if level.get(v) == "elem"]
        while stack:
            node = stack.pop()
            if node in needed:
                continue
            needed.add(node)
            stack += [v.producer for v in node.inputs if level[v] == "elem"]
        readers = needed | ({consumer} if consumer is not None else set())
        loads = sorted({access_of[(n, p)] for n in readers for p in range(len(n.inputs))
                        if (n, p) in access_of and accesses[access_of[(n, p)]].reduced is not None})
        lines = column_setup(indent, loads + list(stores)) + [load(a, indent, True) for a in loads]
        local: dict = {}
        for j, node in enumerate(sub.nodes):
            if node not in needed:
                continue
            args = [operand(node, p, local) for p in range(len(node.inputs))]
            expr = render_op(node, [a for a, _ in args], [t for _, t in args])
            lines.append(f"{indent}const {compute_type(node.output.type.dtype)} e{j} = {expr};  // {node.kind}")
            local[node.output] = (f"e{j}", node.output.type)
        return lines, local

    body: list[str] = []
    shared: list[str] = []
    emitted_row: set[Node] = set()
    row_loaded: set[int] = set()

    def emit_row_nodes():
        """Row-level nodes whose inputs are all available, at row scope."""
        progress = True
        while progress:
            progress = False
            for j, node in enumerate(sub.nodes):
                if node in emitted_row or node in reductions or level[node.output] != "row":
                    continue
                if not all(level[v] in ("input", "const") or v in names for v in node.inputs):
                    continue
                for p in range(len(node.inputs)):
                    a = access_of.get((node, p))
                    if a is not None and a not in row_loaded:
                        body.append(load(a, "        ", False))
                        row_loaded.add(a)
                args = [operand(node, p, {}) for p in range(len(node.inputs))]
                expr = render_op(node, [a for a, _ in args], [t for _, t in args])
                body.append(f"        const {compute_type(node.output.type.dtype)} r{j} = {expr};  // {node.kind}")
                names[node.output] = (f"r{j}", node.output.type)
                emitted_row.add(node)
                progress = True

    emit_row_nodes()
    for number_r, node in enumerate(reductions):
        acc = accumulator_dtype(node)
        ctype = compute_type(acc)
        name = node.op
        is_arg = name in ("argmax", "argmin")
        value_t = f"GtArg<{ctype}>" if is_arg else ctype
        shared.append(f"    __shared__ {value_t} scratch{number_r}[33];")
        identity = _identity(name, acc)
        passes = ["mean", "dev"] if name in ("var", "std") else [name]
        mean_name = None
        for stage in passes:
            acc_name = f"acc{number_r}{stage[0]}"
            body.append(f"        {value_t} {acc_name} = {identity};  // {node.kind}" + (f" ({stage})" if stage != name else ""))
            body.append("        for (index_t j = threadIdx.x; j < cols; j += blockDim.x) {")
            lines, local = emit_elements([node.inputs[0]], "            ", consumer=node)
            body += lines
            x, xt = operand(node, 0, local)
            value = render_cast(x, _weak_or_dtype(xt), acc) if not is_arg else None
            if is_arg:
                body.append(f"            {acc_name} = {_COMBINE[name]}()({acc_name}, "
                            f"GtArg<{ctype}>{{{render_cast(x, _weak_or_dtype(xt), acc)}, (long long)j}});")
            elif stage == "dev":
                body.append(f"            const {ctype} d = gt_subtract({value}, {mean_name});")
                body.append(f"            {acc_name} = gt_add({acc_name}, gt_multiply(d, d));")
            elif name in ("any", "all"):
                body.append(f"            {acc_name} = {_COMBINE[name]}()({acc_name}, gt_cast<bool>({x}));")
            else:
                body.append(f"            {acc_name} = {_COMBINE[name]}()({acc_name}, {value});")
            body.append("        }")
            body.append(f"        const {value_t} red{number_r}{stage[0]} = gt_block_reduce({acc_name}, "
                        f"{_COMBINE[name]}(), {identity}, scratch{number_r});")
            if stage == "mean":
                mean_name = f"mean{number_r}"
                body.append(f"        const {ctype} {mean_name} = gt_true_divide(red{number_r}m, gt_cast<{ctype}>(cols));")
        result = f"red{number_r}{passes[-1][0]}"
        if is_arg:
            result = f"{result}.i"
        elif name == "mean":
            result = f"gt_true_divide({result}, gt_cast<{ctype}>(cols))"
        elif name in ("var", "std"):
            ddof = node.attrs.get("ddof", 0)
            result = f"gt_true_divide({result}, gt_cast<{ctype}>(cols - {int(ddof)}))"
            if name == "std":
                result = f"gt_sqrt({result})"
        out_dtype = node.output.type.dtype
        source_dtype = np.dtype(np.int64) if is_arg else acc
        final = render_cast(result, source_dtype, out_dtype)
        j = sub.nodes.index(node)
        body.append(f"        const {compute_type(out_dtype)} r{j} = {final};  // {node.kind} result")
        names[node.output] = (f"r{j}", node.output.type)
        emit_row_nodes()

    elem_outputs = [(k, v, a) for k, v, elem, a in outputs if elem]
    if elem_outputs:
        body.append("        for (index_t j = threadIdx.x; j < cols; j += blockDim.x) {")
        lines, local = emit_elements([v for _, v, _ in elem_outputs], "            ",
                                     stores=tuple(a for _, _, a in elem_outputs))
        body += lines
        for k, v, a in elem_outputs:
            expr, t = local[v]
            value = render_cast(expr, _weak_or_dtype(t), v.type.dtype)
            index = f"roff{a} + coff{a}"
            body.append(f"            gt_store_half(out{k} + {index}, {value});" if v.type.dtype == HALF else
                        f"            out{k}[{index}] = {value};")
        body.append("        }")
    row_outputs = [(k, v) for k, v, elem, _ in outputs if not elem]
    if row_outputs:
        body.append("        if (threadIdx.x == 0) {")
        for k, v in row_outputs:
            expr, t = names[v]
            value = render_cast(expr, _weak_or_dtype(t), v.type.dtype)
            body.append(f"            gt_store_half(out{k} + row, {value});" if v.type.dtype == HALF else
                        f"            out{k}[row] = {value};")
        body.append("        }")

    name = _kernel_name(number, [n for n in sub.nodes if n.kind != "prim::Constant"])
    summary = " -> ".join(n.kind for n in sub.nodes if n.kind != "prim::Constant")
    source = string.Template(read_template("reduction.cu")).substitute(
        name=name, summary=summary, params=",\n    ".join(params), index_t=index_t, shared="\n".join(shared),
        row_setup="\n".join(setup), row_body="\n".join(body))
    empty_error = None
    if cols == 0:
        for node in reductions:
            if node.op in _NO_IDENTITY:
                empty_error = f"zero-size array to reduction operation {_NO_IDENTITY[node.op]} which has no identity"
    return Kernel(name=name, source=source, inputs=[v.name for v in group.inputs],
                  input_types=[v.type for v in sub.inputs], outputs=[v.name for v in group.outputs],
                  output_types=[v.type for v in sub.outputs], scalar_args=scalar_args, elements=rows,
                  block=BLOCK, work_per_block=1, empty_error=empty_error,
                  ops=[n.op for n in sub.nodes if n.kind != "prim::Constant"])
