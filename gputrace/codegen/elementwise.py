"""Render a fusion group of elementwise nodes into a CUDA kernel from ``elementwise.cu``.

Every value is a typed local; each op casts its inputs to NumPy's loop dtype,
calls the NumPy-exact device function of ``gputrace_ops.cuh`` and, for
float16, rounds the float result to half, so fused code computes exactly what
NumPy computes op by op. Inputs are read through strides over the group's
iteration shape (broadcast dims have stride 0), after merging dimensions that
are contiguous for every operand; a contiguous input is read at ``i`` and a
broadcast scalar at 0. Indices are 32-bit when every offset fits. Contiguous
operands and the outputs move as aligned vectors when their pointers allow, with
a scalar loop for the tail; the vector width and the vectors each thread loads
before computing are the group's layout, decided in ``passes/layout.py``.
"""
from __future__ import annotations

import math
import string
from typing import Any

import numpy as np

from .. import ops
from ..ir import Graph, Node, ScalarType, TensorType, Type, Value
from ..passes.layout import ElementwiseLayout, element_accesses, gathers_of, read_directly
from .gather import FLAG_PARAM, FLAG_WORKSPACE, index_checks, render_gather
from .kernel import Kernel
from .templates import read_template

C_TYPES = {
    "bool": "bool", "int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "uint16": "uint16_t",
    "int32": "int32_t", "uint32": "uint32_t", "int64": "int64_t", "uint64": "uint64_t",
    "float16": "float", "float32": "float", "float64": "double",
}
STORAGE_TYPES = dict(C_TYPES, float16="__half")
HALF = np.dtype(np.float16)
def compute_type(dtype: np.dtype) -> str:
    """The C type a value of ``dtype`` is held in while computing (float16 is held as float)."""
    return C_TYPES[np.dtype(dtype).name]


# ----------------------------------------------------------------------------- literals and casts


def render_literal(value: Any) -> tuple[str, Any]:
    """C source for a constant and the dtype (or weak Python type) its expression has."""
    if isinstance(value, (bool, np.bool_)):
        return ("true" if value else "false"), (bool if isinstance(value, bool) else np.dtype(bool))
    if isinstance(value, np.generic):
        dtype = value.dtype
        text, _ = render_literal(value.item())
        return f"gt_cast<{compute_type(dtype)}>({text})", dtype
    if isinstance(value, int):
        if value == -(1 << 63):
            return "(-9223372036854775807LL - 1)", int
        if -(1 << 63) <= value < (1 << 63):
            return f"{value}LL", int
        return f"{value}ULL", int
    value = float(value)
    if math.isfinite(value):
        return f"{value.hex()}", float
    bits = np.float64(value).view(np.uint64)
    return f"gt_double_from_bits({int(bits)}ULL)", float


def render_cast(expr: str, source: Any, target: np.dtype) -> str:
    """``expr`` (of dtype or weak type ``source``) converted to ``target`` as NumPy would."""
    target = np.dtype(target)
    if isinstance(source, np.dtype) and source == target:
        return expr
    if target == HALF:
        if isinstance(source, np.dtype) and source == HALF:
            return expr
        return f"gt_round_half(gt_cast<float>({expr}))"
    if isinstance(source, np.dtype) and source == HALF and target == np.float32:
        return expr
    return f"gt_cast<{compute_type(target)}>({expr})"


def _weak_or_dtype(t: Type) -> Any:
    if isinstance(t, ScalarType):
        return t.kind
    return t.dtype


def render_op(node: Node, args: list[str], arg_types: list[Type]) -> str:
    """The C expression of one elementwise node, of the node's compute type."""
    kind, out = node.kind, node.output.type.dtype
    op = ops.lookup(kind)
    if op.category == ops.VIEW:  # a per-row value seen in another row shape (fuse.is_row_view): the same value
        return args[0]
    sources = [_weak_or_dtype(t) for t in arg_types]
    if kind == "np::astype":
        return render_cast(args[0], sources[0], out)
    if kind == "np::full_like":  # the fill value is cast unsafely, as np.full_like does
        text, weak = render_literal(node.attrs["fill_value"])
        return render_cast(text, weak, out)
    if kind == "np::where":
        cond = render_cast(args[0], sources[0], np.dtype(bool))
        a, b = (render_cast(x, s, out) for x, s in zip(args[1:], sources[1:]))
        return f"gt_where({cond}, {a}, {b})"
    if kind == "np::clip":
        loop = [out] * 3
        result = out
    else:
        loop, result = ops.ufunc_loop_dtypes(kind, arg_types)
    operands = [render_cast(a, s, d) for a, s, d in zip(args, sources, loop)]
    if kind in ("np::maximum", "np::minimum", "np::fmax", "np::fmin") and loop[0] == HALF:
        operands.reverse()  # NumPy's float16 loops keep the first of equal operands (+-0), gt_maximum the second
    call = f"{op.cuda}({', '.join(operands)})"
    if result == HALF:
        call = f"gt_round_half({call})"
    return render_cast(call, result, out) if result != out else call


# ----------------------------------------------------------------------------- index types


# A grid-stride loop's index passes the last element by up to one grid of threads (times a vector's
# lanes and a thread's vectors: 32 blocks per SM x 256 threads x 8 x 4 = 2^18 per SM, so 2^28 covers
# 1,024 SMs) before the loop ends: 32-bit indices only where that overshoot fits as well.
GRID_STRIDE_HEADROOM = 2**28


def index_type(reach: int) -> str:
    """``int`` when every index and offset up to ``reach`` (and a grid stride beyond) fits, else ``long long``."""
    return "int" if reach + GRID_STRIDE_HEADROOM < 2**31 else "long long"


def _reach(dims: list[int], strides: list[int]) -> int:
    """The largest element offset (in either direction) that ``strides`` over ``dims`` reach."""
    return sum(abs(st) * (d - 1) for st, d in zip(strides, dims))


def _index_type(n: int, dims: list[int], strides: list[list[int]]) -> str:
    return index_type(max([n] + [_reach(dims, s) for s in strides]))


# ----------------------------------------------------------------------------- rendering


def render_elementwise(group: Node, layout: ElementwiseLayout) -> Kernel:
    """The kernel computing fusion group ``group`` for its (specialised) input types, laid out as ``layout``
    (passes/layout.py's decision) says."""
    sub: Graph = group.subgraph
    shape = sub.outputs[0].type.shape
    n = int(np.prod(shape, dtype=np.int64))
    gathers = gathers_of(sub)
    # what each element reads: inputs at its place (through strides) and gathers' results (as contiguous arrays)
    reads = element_accesses(group)
    operands, in_types, out_types, dims, in_strides = (reads.operands, reads.in_types, reads.out_types,
                                                       reads.dims, reads.in_strides)
    pointer = {v: f"in{sub.inputs.index(v)}" for v in read_directly(sub)}
    index_t = _index_type(n, dims, in_strides + reads.out_strides)

    params, setup, scalar_args = [], [], [np.int32(n) if index_t == "int" else np.int64(n)]
    names: dict[Value, tuple[str, Type]] = {}
    index_of: list[str] = []
    strided = []
    params += [f"const {STORAGE_TYPES[v.type.dtype.name]}* __restrict__ in{k}" for k, v in enumerate(sub.inputs)]
    for k, (v, t, st) in enumerate(zip(operands, in_types, in_strides)):
        if reads.kind(k) == "scalar":
            index_of.append("0")
        elif reads.kind(k) == "contiguous":
            index_of.append("i")
        else:
            index_of.append(f"off{k}")
            strided.append((k, st))
        names[v] = (f"x{k}", t)
    out_index: list[str] = []
    for k, (t, st) in enumerate(zip(out_types, reads.out_strides)):
        params.append(f"{STORAGE_TYPES[t.dtype.name]}* __restrict__ out{k}")
        if reads.output_contiguous(k):
            out_index.append("i")
        else:
            out_index.append(f"offo{k}")
            strided.append((f"o{k}", st))
    if gathers:
        params.append(FLAG_PARAM)
    params.append(f"{index_t} n")
    scalar_type = np.int32 if index_t == "int" else np.int64
    if strided:
        for j, d in enumerate(dims):
            params.append(f"{index_t} d{j}")
            scalar_args.append(scalar_type(d))
        for k, st in strided:
            for j, s in enumerate(st):
                params.append(f"{index_t} s{k}_{j}")
                scalar_args.append(scalar_type(s))
        setup.append("index_t rem = i;")
        for k, _ in strided:
            setup.append(f"index_t off{k} = 0;")
        for j in reversed(range(len(dims))):
            coord = f"c{j}"
            if j > 0:
                setup.append(f"const index_t {coord} = rem % d{j}; rem /= d{j};")
            else:
                setup.append(f"const index_t {coord} = rem;")
            for k, _ in strided:
                setup.append(f"off{k} += {coord} * s{k}_{j};")

    body = []
    for j, node in enumerate(sub.nodes):
        if node.kind == "prim::Constant":
            text, weak = render_literal(node.attrs["value"])
            names[node.output] = (f"({text})", node.output.type)
            continue
        if ops.is_element_load(node.kind):
            continue  # read as an operand
        args = [names[v][0] for v in node.inputs]
        arg_types = [names[v][1] for v in node.inputs]
        expr = render_op(node, args, arg_types)
        body.append(f"const {compute_type(node.output.type.dtype)} v{j} = {expr};"
                    f"  // {node.kind}" + (f" {node.source}" if node.source else ""))
        names[node.output] = (f"v{j}", node.output.type)
    results = []
    for v, t in zip(sub.outputs, out_types):
        expr, src = names[v]
        results.append(render_cast(expr, _weak_or_dtype(src), t.dtype))

    # Operands that move as vectors: inputs read at ``i`` and every output.
    vectored, width, vectors_per_thread = list(layout.vectored), layout.width, layout.vectors_per_thread
    vectored_out = list(layout.vectored_outputs)

    def vector(t: TensorType) -> str:
        return f"GtVector<{STORAGE_TYPES[t.dtype.name]}, W>"

    def element(vectors: bool) -> str:
        """One element's code; with ``vectors``, contiguous operands come from and go to vector registers."""
        lines = list(setup)
        for k, (v, t) in enumerate(zip(operands, in_types)):
            if v not in pointer:
                lines += render_gather(v.producer, sub, f"x{k}", index_of[k], compute_type(t.dtype), t.dtype == HALF)
                continue
            cell = f"vin{k}[u].v[lane]" if vectors and k in vectored else f"{pointer[v]}[{index_of[k]}]"
            load = f"gt_load_half(&{cell})" if t.dtype == HALF else cell
            lines.append(f"const {compute_type(t.dtype)} x{k} = {load};")
        lines += body
        for k, (t, value) in enumerate(zip(out_types, results)):
            cell = f"vout{k}.v[lane]" if vectors and k in vectored_out else f"out{k}[{out_index[k]}]"
            lines.append(f"gt_store_half(&{cell}, {value});" if t.dtype == HALF else f"{cell} = {value};")
        indent = " " * (20 if vectors else 8)
        return "\n".join(indent + line for line in lines)

    pointers = [pointer[operands[k]] for k in vectored] + [f"out{k}" for k in vectored_out]
    aligned = " && ".join(f"gt_vector_aligned<W>({p})" for p in pointers) if width > 1 and pointers else "false"
    vector_loads = [f"            {vector(in_types[k])} vin{k}[U];" for k in vectored]
    if vectored:
        vector_loads += ["#pragma unroll", "            for (int u = 0; u < U; ++u) if (v0 + u * stride < vectors) {"]
        vector_loads += [f"                vin{k}[u] = reinterpret_cast<const {vector(in_types[k])}*>({pointer[operands[k]]})"
                         f"[v0 + u * stride];" for k in vectored]
        vector_loads.append("            }")
    vector_outputs = [f"                {vector(out_types[k])} vout{k};" for k in vectored_out]
    vector_stores = [f"                reinterpret_cast<{vector(out_types[k])}*>(out{k})[v] = vout{k};"
                     for k in vectored_out]

    name = group.attrs["kernel"]  # fusion names each group's kernel
    summary = " -> ".join(n.kind for n in sub.nodes if n.kind != "prim::Constant")
    source = string.Template(read_template("elementwise.cu")).substitute(
        name=name, summary=summary, params=",\n    ".join(params), index_t=index_t, vector_width=width,
        vectors_per_thread=vectors_per_thread,
        vectors_aligned=aligned, vector_loads="\n".join(vector_loads), vector_outputs="\n".join(vector_outputs),
        vector_element=element(True), vector_stores="\n".join(vector_stores), element=element(False))
    return Kernel(name=name, source=source,
                  inputs=[v.name for v in group.inputs], input_types=[v.type for v in sub.inputs],
                  outputs=[v.name for v in group.outputs], output_types=out_types,
                  scalar_args=scalar_args, workspace=[FLAG_WORKSPACE] if gathers else [],
                  index_checks=index_checks(sub), elements=n, block=layout.block, work_per_block=layout.block * width,
                  ops=[n.op for n in sub.nodes if n.kind != "prim::Constant"], layout=layout)
