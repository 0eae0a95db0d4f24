"""Render a fusion group with reductions into a row kernel from ``reduction.cu``.

The group's space is a full shape F and the reduced axes A. A *row* is one
index over the kept axes. Every value of the group is either element-level
(shape F: one per row element) or row-level (the reduced shape: one per row).
Each reduction is a phase: a loop over the row's elements that evaluates the
reduction's input expression and accumulates, then a block reduction;
row-level values are computed right after the values they need. A final loop
writes the element-level outputs (the epilogue: e.g. softmax's ``e / sum``).

How the rows map onto blocks, warps and threads (a thread, a group of lanes or a block per row; rows held
in registers or re-read; rows split over blocks or threads) is decided by ``passes/layout.py``, which
fusion asks too. A split row's partial results are combined by its last block or thread (float sums
compensated; var/std by Chan et al.'s merge of the parts' means and squared deviations).
"""
from __future__ import annotations

import string
from typing import Callable
from dataclasses import dataclass

import numpy as np

from .. import ops
from ..ir import Graph, Node, Value
from ..passes.layout import THREADS_PER_SM, Layout, accumulator_dtype, row_accesses
from .elementwise import (HALF, STORAGE_TYPES, compute_type, index_type, render_cast, render_literal, render_op,
                          _reach, _weak_or_dtype)
from .gather import FLAG_PARAM, FLAG_WORKSPACE, index_checks, render_gather
from .kernel import Kernel
from .templates import read_template

ARG_PAIR_BYTES = 16    # sizeof(GtArg<T>) in gputrace_reduce.cuh: a value of at most 8 bytes and a long long index


# max/min of floats inside a thread's loop: the hardware's fmax/fmin (which skip NaN), with NaN tracked aside
FAST_EXTREMUM = {"GtMax": "GtFastMax", "GtMin": "GtFastMin"}


def _identity(node: Node, acc: np.dtype) -> str:
    """The C value a reduction's accumulator starts at (and inactive threads contribute)."""
    name, ctype = node.op, compute_type(acc)
    identity = ops.reduction_of(node).identity
    if "initial" in node.attrs:  # max/min's initial=, converted to the input's dtype by NumPy itself
        start = ops.run_op(node.kind, np, [np.empty(0, node.inputs[0].type.dtype)], {"initial": node.attrs["initial"]})
        text, _ = render_literal(np.asarray(start)[()])
        return f"gt_cast<{ctype}>({text})"
    if isinstance(identity, bool):
        return "true" if identity else "false"
    if identity is None:  # an index: no element found yet
        return f"GtArg<{ctype}>{{gt_cast<{ctype}>(0), -1LL}}"
    if identity not in (ops.LOWEST, ops.HIGHEST):
        return f"gt_cast<{ctype}>({identity})"
    big = identity == ops.HIGHEST
    if acc.kind == "f":
        text, _ = render_literal(np.inf if big else -np.inf)
        return f"gt_cast<{ctype}>({text})"
    if acc.kind == "b":
        return "true" if big else "false"
    info = np.iinfo(acc)
    text, _ = render_literal(int(info.max if big else info.min))
    return f"gt_cast<{ctype}>({text})"


@dataclass
class Reduced:
    """One reduction of the group as rendered: number (names its variables), node and accumulator type."""
    number: int
    node: Node
    acc: np.dtype
    ctype: str          # the accumulator's C type
    value_t: str        # what the threads combine: ctype, or GtArg<ctype> for argmax/argmin
    identity: str
    passes: list[str]   # loops over the row: [name], or ["mean", "dev"] for var/std

    @property
    def row(self) -> ops.Reduction:
        return ops.reduction_of(self.node)

    @property
    def is_arg(self) -> bool:
        return self.row.index


def _part_end(part: str) -> str:
    """The C expression for where part ``part`` of a split row ends (the last part ends with the row)."""
    return f"({part} + 1) * chunk < cols ? ({part} + 1) * chunk : cols"


def _combine_parts(r: Reduced, per_thread: bool, combine_threads: Callable[[str, str, str, int], str]
                   ) -> list[str]:
    """The last block (or thread) of a split row: the row's result from its parts' partial results, merged by
    gputrace_reduce.cuh's templates (``combine_threads``: the kernel's combination over a row's threads).
    var/std: Chan et al.'s merge; the sum of n_p (mean_p - mean) it also gives corrects for the rounded mean
    (``finish`` subtracts its square over N)."""
    k, ctype, last = r.number, r.ctype, r.passes[-1][0]
    each = "true" if per_thread else "false"
    partial = "partial{k}{stage} + row * splits"
    if not r.row.two_pass:
        stored = partial.format(k=k, stage=last)
        if r.row.combine == "GtSum" and r.acc.kind == "f":
            summed = combine_threads(f"gt_sum_parts<{each}>({stored}, splits)", "GtSum", f"{ctype}(0)", k)
            return [f"        const {ctype} red{k}{last} = {summed};"]
        merged = f"gt_merge_parts<{each}>({stored}, splits, {r.row.combine}(), {r.identity})"
        return [f"        const {r.value_t} red{k}{last} = {combine_threads(merged, r.row.combine, r.identity, k)};"]
    mean, deviations, squares = (partial.format(k=k, stage=stage) for stage in "msd")

    def total(value: str) -> str:
        return combine_threads(value, "GtSum", f"{ctype}(0)", k)
    return [f"        const {ctype} red{k}m = {total(f'gt_sum_part_means<{each}>({mean}, splits, chunk, cols)')};",
            f"        const {ctype} row_mean{k} = gt_true_divide(red{k}m, gt_cast<{ctype}>(cols));",
            f"        {ctype} merged{k}, shifts{k};",
            f"        gt_merge_part_squares<{each}>({mean}, {deviations}, {squares}, splits, chunk, cols, row_mean{k}, "
            f"merged{k}, shifts{k});",
            f"        const {ctype} red{k}d = {total(f'merged{k}')};",
            f"        const {ctype} red{k}s = {total(f'shifts{k}')};"]


def _accumulator(row: ops.Reduction, acc: np.dtype, value_t: str) -> str:
    """The gputrace_reduce.cuh type a thread accumulates a (one-pass) reduction in: float sums compensated,
    float max/min by the hardware's fmax/fmin with NaN aside, the rest by the row's combine functor."""
    ctype = compute_type(acc)
    if row.combine == "GtSum" and acc.kind == "f":
        return f"GtKahanSum<{ctype}>"
    if row.combine in FAST_EXTREMUM and ctype in ("float", "double"):
        return f"GtFastExtremum<{ctype}, {FAST_EXTREMUM[row.combine]}>"
    return f"GtFold<{value_t}, {row.combine}>"


def render_reduction(group: Node, layout: Layout) -> Kernel:
    sub: Graph = group.subgraph
    # how the group reads and writes: passes/layout.py's analysis, from which it decided ``layout``
    reads = row_accesses(sub)
    reductions, rows, cols, level, accesses, access_of, outputs = (
        reads.reductions, reads.rows, reads.cols, reads.level, reads.accesses, reads.access_of, reads.outputs)
    kdims, kstrides, rdims, rstrides, elem_accesses = reads.kdims, reads.kstrides, reads.rdims, reads.rstrides, \
        reads.elem_accesses
    totals, along_rows = reads.totals, reads.along_rows
    # an element's offset is its row's offset plus its offset within the row: the two reaches add up
    reach = max([rows * max(cols, 1)] + [_reach(kdims, kstrides[a]) + _reach(rdims, rstrides.get(a, []))
                                         for a in range(len(accesses))])
    index_t = index_type(reach)

    params = [f"const {STORAGE_TYPES[v.type.dtype.name]}* __restrict__ in{k}" for k, v in enumerate(sub.inputs)]
    params += [f"{STORAGE_TYPES[v.type.dtype.name]}* __restrict__ out{k}" for k, v in enumerate(sub.outputs)]
    # Sizes and strides are constants of the source (a Program is specialised to its signature anyway):
    # a row element's address is then the row's base plus an immediate offset.
    sizes = [("rows", rows), ("cols", cols)] + [(f"kd{j}", d) for j, d in enumerate(kdims)]
    sizes += [(f"rd{j}", d) for j, d in enumerate(rdims)]
    sizes += [(f"ks{a}_{j}", s) for a, st in enumerate(kstrides) for j, s in enumerate(st)]
    sizes += [(f"rs{a}_{j}", s) for a in elem_accesses for j, s in enumerate(rstrides[a])]
    constants = [f"    constexpr index_t {name} = {value};" for name, value in sizes]

    body: list[str] = []
    shared: list[str] = []
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
        if acc.gather is not None:
            return "\n".join(indent + line for line in render_gather(acc.gather, sub, f"a{a}", index,
                                                                      compute_type(acc.dtype), acc.dtype == HALF))
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

    # how rows map onto threads, lanes and blocks, and which accesses move as vectors: passes/layout.py decided
    vectored = list(layout.vectored)
    block, lanes, items, width = layout.block, layout.lanes, layout.items, layout.width
    per_thread, grouped, splits, chunk, units = layout.per_thread, layout.grouped, layout.splits, layout.chunk, layout.units
    lane = "lane" if grouped else "threadIdx.x"  # this thread's first element of the row
    row_threads = layout.row_threads  # threads sharing a row held in registers
    constants += [f"    constexpr index_t units = {units};"]
    if vectored:
        aligned = " && ".join(f"gt_vector_aligned<{width}>({accesses[a].pointer})" for a in vectored)
        constants += [f"    const bool vectors_aligned = {aligned};  // every pointer moved {width} elements at a time"]
    if splits > 1:
        constants += [f"    constexpr index_t splits = {splits}, chunk = {chunk};"]
        if per_thread:  # neighbouring threads take neighbouring rows' same part
            setup[:0] = ["        const index_t row = unit % rows, part = unit / rows;"]
        else:
            setup[:0] = ["        const index_t row = unit / splits, part = unit % splits;"]
        setup[1:1] = [f"        const index_t end = {_part_end('part')};"]
        if any(ops.reduction_of(n).two_pass for n in reductions):
            setup[2:2] = ["        const index_t count = end - part * chunk;  // this part's elements of the row"]
    elif grouped:  # unit is the warp's first row: the warp's 32 lanes loop together (they shuffle together)
        setup[:0] = [f"        const index_t lane_row = unit + (threadIdx.x & 31) / {lanes};",
                     "        const bool active = lane_row < units;  // lanes past the last row redo the warp's "
                     "first, storing nothing",
                     "        const index_t row = active ? lane_row : unit;",
                     f"        const int lane = threadIdx.x & {lanes - 1};"]
    else:
        setup[:0] = ["        const index_t row = unit;"]
    workspace: list[tuple[np.dtype, int, bool]] = []
    cached: set[int] = set()  # element-level accesses already held in registers (cache<a>[t])
    held: dict[Node, str] = {}  # element-level values computed by an earlier pass, held in registers

    def each_element(indent: str, lines: list[str]) -> list[str]:
        """``lines`` (indented one level more) run for each of this thread's elements of the row (register
        ``t``, column ``j``): gputrace_reduce.cuh's loop over registers, or strided."""
        if items:
            loop = f"gt_for_held<{items}, {width}, {row_threads}>({lane}, cols, "
        elif per_thread:
            loop = "gt_for_strided<index_t>(part * chunk, end, 1, " if splits > 1 else \
                "gt_for_strided<index_t>(0, cols, 1, "
        elif splits > 1:
            loop = "gt_for_strided<index_t>(part * chunk + threadIdx.x, end, blockDim.x, "
        else:
            loop = "gt_for_strided<index_t>(threadIdx.x, cols, blockDim.x, "
        return [f"{indent}{loop}[&](int t, index_t j) {{", *lines, f"{indent}}});"]

    def held_element(a: int) -> str:
        """This thread's element of access ``a`` held on chip: in registers (``t``), or in shared memory (column
        ``j`` of this thread's row: neighbouring threads' elements side by side, no bank conflicts)."""
        return f"cache{a}[j][threadIdx.x]" if layout.shared else f"cache{a}[t]"

    def vector_type(a: int) -> str:
        return f"GtVector<{STORAGE_TYPES[accesses[a].dtype.name]}, {width}>"

    def emit_elements(targets: list[Value], indent: str, consumer: Node | None = None,
                      stores: tuple[int, ...] = ()) -> tuple[list[str], list[str], dict]:
        """For one pass over the row: the loop that first loads operands into registers (when the row is
        held in registers), and the loop body's offsets, loads and element-level nodes that ``targets`` need."""
        needed: set[Node] = set()
        stack = [v.producer for v in targets if level.get(v) == "elem"]
        while stack:
            node = stack.pop()
            if node in needed:
                continue
            needed.add(node)
            if node not in held:  # a value held in registers needs nothing more
                stack += [v.producer for v in node.inputs if level[v] == "elem"]
        readers = (needed - set(held)) | ({consumer} if consumer is not None else set())
        loads = sorted({access_of[(n, p)] for n in readers for p in range(len(n.inputs))
                        if (n, p) in access_of and accesses[access_of[(n, p)]].reduced is not None})
        # Operands that differ between rows are loaded into registers once, all loads issued before any use;
        # the ones that are the same for every row (a layernorm weight) are read where used, from L1.
        keep = [a for a in loads if a not in cached and (items and any(accesses[a].kept) or
                                                          layout.shared and a in along_rows)]
        preload = []
        one_by_one = [a for a in keep if a not in vectored]
        if one_by_one:
            preload = each_element(indent[:-4], column_setup(indent, one_by_one) +
                                   [load(a, indent, True) for a in one_by_one] +
                                   [f"{indent}{held_element(a)} = a{a};" for a in one_by_one])
        preload += [f"{indent[:-4]}gt_load_held<{width}, {row_threads}>(cache{a}, {accesses[a].pointer} + roff{a}, "
                    f"{lane}, cols, vectors_aligned);" for a in keep if a in vectored]
        cached.update(keep)
        fresh = [a for a in loads if a not in cached]
        lines = column_setup(indent, fresh + list(stores)) + [load(a, indent, True) for a in fresh]
        lines += [f"{indent}const {compute_type(accesses[a].dtype)} a{a} = {held_element(a)};" for a in loads
                  if a in cached]
        local: dict = {}
        for j, node in enumerate(sub.nodes):
            if node not in needed:
                continue
            ctype = compute_type(node.output.type.dtype)
            if node in held:
                lines.append(f"{indent}const {ctype} e{j} = {held[node]}[t];  // {node.kind}, computed before")
            else:
                args = [operand(node, p, local) for p in range(len(node.inputs))]
                expr = render_op(node, [a for a, _ in args], [t for _, t in args])
                lines.append(f"{indent}const {ctype} e{j} = {expr};  // {node.kind}")
                if items:  # kept for later passes over the row (unread ones cost nothing: the compiler drops them)
                    lines.append(f"{indent}held{j}[t] = e{j};")
                    held[node] = f"held{j}"
            local[node.output] = (f"e{j}", node.output.type)
        return preload, lines, local

    def combine_threads(value: str, combine: str, identity: str, number_r: int) -> str:
        """The C expression combining ``value`` over the threads of one row (every one of them gets it)."""
        if lanes == 1:
            return value
        if lanes <= 32:
            return f"gt_group_reduce<{lanes}>({value}, {combine}())"
        return f"gt_block_reduce({value}, {combine}(), {identity}, scratch{number_r})"

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

    def finish(reduced: Reduced, count: str = "cols", into: list[str] | None = None) -> None:
        """The reduction's result from its block-reduced value of ``count`` elements, then (in the row's body)
        the row-level nodes it enables; ``into``: the lines after the rows (a total of their values)."""
        node, acc, ctype, name, is_arg = reduced.node, reduced.acc, reduced.ctype, reduced.node.op, reduced.is_arg
        result = f"red{reduced.number}{reduced.passes[-1][0]}"
        if is_arg:
            result = f"{result}.i"
        for step in reduced.row.finish:
            if step == ops.MEAN:
                if acc.kind != "f":  # np.mean(x, dtype=int): the integer sum is divided in float64, then cast back
                    result, acc, ctype = f"gt_cast<double>({result})", np.dtype(np.float64), "double"
                result = f"gt_true_divide({result}, gt_cast<{ctype}>({count}))"
            elif step == ops.VARIANCE:
                if acc.kind == "f":  # corrected two-pass: the error d of the mean adds N d^2 = (sum of deviations)^2 / N
                    result = f"gt_corrected_squares({result}, red{reduced.number}s, gt_cast<{ctype}>(cols))"
                divisor = max(cols - node.attrs.get("ddof", 0), 0)  # NumPy's max(N - ddof, 0); ddof may be fractional
                result = f"gt_true_divide({result}, gt_cast<{ctype}>({render_literal(float(divisor))[0]}))"
            elif step == ops.SQRT:
                result = f"gt_sqrt({result})"
        out_dtype = node.output.type.dtype
        source_dtype = np.dtype(np.int64) if is_arg else acc
        final = render_cast(result, source_dtype, out_dtype)
        j = sub.nodes.index(node)
        (body if into is None else into).append(
            f"        const {compute_type(out_dtype)} r{j} = {final};  // {node.kind} result")
        names[node.output] = (f"r{j}", node.output.type)
        if into is None:
            emit_row_nodes()

    def accumulate(r: Reduced, stage: str, acc_name: str, mean_name: str | None, compensated: bool) -> list[str]:
        """One pass of reduction ``r`` over this thread's elements of the row, into ``acc_name`` (a
        gputrace_reduce.cuh accumulator: float sums compensated, float max/min by the hardware's fmax/fmin with
        NaN aside, var/std's deviations from the mean)."""
        node, row, ctype = r.node, r.row, r.ctype
        if stage == "dev":
            accumulator = f"GtKahanDeviations<{ctype}>" if compensated else f"GtDeviations<{ctype}>"
            start = f"{r.identity}, {mean_name}"
        else:
            accumulator, start = _accumulator(row, r.acc, r.value_t), r.identity
        lines = [f"        {accumulator} {acc_name}{{{start}}};  // {node.kind}" +
                 (f" ({stage})" if stage != node.op else "")]
        preload, loop, local = emit_elements([node.inputs[0]], "            ", consumer=node)
        x, xt = operand(node, 0, local)
        value = render_cast(x, _weak_or_dtype(xt), r.acc)
        if r.is_arg:
            value = f"GtArg<{ctype}>{{{value}, (long long)j}}"
        elif row.accumulate == "bool":
            value = f"gt_cast<bool>({x})"
        return lines + preload + each_element("        ", loop + [f"            {acc_name}.add({value});"])

    emit_row_nodes()
    finishes = []
    # (input, accumulator dtype, start) -> the name of a compensated sum of it over the row: a sibling summing the
    # same input (layer norm's mean and its var's first pass) reads it instead of passing over the row again
    row_sums: dict[tuple[Value, np.dtype, str], str] = {}
    for number_r, node in enumerate(reductions):
        acc = accumulator_dtype(node)
        ctype = compute_type(acc)
        name, row = node.op, ops.reduction_of(node)
        is_arg = row.index
        value_t = f"GtArg<{ctype}>" if is_arg else ctype
        if lanes > 32:
            shared.append(f"    __shared__ {value_t} scratch{number_r}[33];")
        identity = _identity(node, acc)
        passes = ["mean", "dev"] if row.two_pass else [name]
        reduced_here = Reduced(number_r, node, acc, ctype, value_t, identity, passes)
        mean_name = None
        for stage in passes:
            acc_name = f"acc{number_r}{stage[0]}"
            compensated = row.combine == "GtSum" and acc.kind == "f"
            prefix = "part" if splits > 1 else "red"  # a split row's block holds a part: combined further below
            reduced = f"{prefix}{number_r}{stage[0]}"
            same_sum = (node.inputs[0], acc, identity) if compensated and stage != "dev" and splits == 1 else None
            if same_sum in row_sums:
                body.append(f"        const {value_t} {reduced} = {row_sums[same_sum]};  // {node.kind}"
                            f"{f' ({stage})' if stage != name else ''}: the same sum, computed above")
            else:
                body += accumulate(reduced_here, stage, acc_name, mean_name, compensated)
                body.append(f"        const {value_t} {reduced} = "
                            f"{combine_threads(f'{acc_name}.total()', row.combine, identity, number_r)};")
                if same_sum is not None:
                    row_sums[same_sum] = reduced
            if stage == "dev" and compensated:
                total = f"{acc_name}.deviations()"
                body.append(f"        const {ctype} {prefix}{number_r}s = "
                            f"{combine_threads(total, 'GtSum', f'{ctype}(0)', number_r)};")
            if stage == "mean" and len(passes) == 2:
                mean_name = f"mean{number_r}"
                count = "count" if splits > 1 else "cols"
                body.append(f"        const {ctype} {mean_name} = gt_true_divide({reduced}, "
                            f"gt_cast<{ctype}>({count}));")
            if splits > 1:
                # what _combine_parts reads: the part's reduced value; for var/std the part's mean, the sum of
                # its deviations from that mean and their corrected sum of squares
                if len(passes) == 1:
                    stored = [(stage[0], reduced)]
                elif stage == "mean":
                    stored = [("m", mean_name)]
                else:
                    sums = f"part{number_r}s"
                    squares = f"gt_corrected_squares({reduced}, {sums}, gt_cast<{ctype}>(count))"
                    stored = [("s", sums), ("d", squares)]
                for suffix, value in stored:
                    body.append(f"        {'' if per_thread else 'if (threadIdx.x == 0) '}"
                                f"partial{number_r}{suffix}[row * splits + part] = {value};")
                    params.append(f"{value_t}* __restrict__ partial{number_r}{suffix}")
                    workspace.append((np.dtype(np.uint8), units * ARG_PAIR_BYTES, False) if is_arg else
                                     (acc, units, False))
        if splits > 1:  # finished once the row's partial results are combined
            finishes.append(reduced_here)
        else:
            finish(reduced_here)

    elem_outputs = [(k, v, a) for k, v, elem, a in outputs if elem]
    outputs_of_totals = {v: k for k, v in enumerate(sub.outputs) if level[v] == "total"}

    def total_of_rows(totals: list[Node], written: dict[Value, int]) -> list[str]:
        """A reduction of every row's value (the mean of per-row losses), finished in this kernel: each thread
        adds the values of the rows it finished, each block combines its threads', and the launch's last
        block (counted on a ticket, as a split row's last part) merges the blocks' partial results, as
        ``_combine_parts`` does, and writes the result. Returns the lines after the loop over rows."""
        owner = "" if per_thread else "if (lane == 0 && active) " if grouped else "if (threadIdx.x == 0) "
        blocks = -(-units // (block // lanes if lanes <= 32 else 1))  # the most a launch has (Kernel.grid)
        after, last = [], []
        for i, node in enumerate(totals):
            n, acc, row = len(reductions) + i, accumulator_dtype(node), ops.reduction_of(node)
            ctype, identity = compute_type(acc), _identity(node, acc)
            shared.extend([f"    __shared__ {ctype} scratch{n}[33];",
                           f"    {_accumulator(row, acc, ctype)} total{n}{{{identity}}};  // {node.kind} of the rows'"])
            x, xt = names[node.inputs[0]]
            value = f"gt_cast<bool>({x})" if row.accumulate == "bool" else render_cast(x, _weak_or_dtype(xt), acc)
            body.append(f"        {owner}total{n}.add({value});")
            after += [f"    const {ctype} block{n} = gt_block_reduce(total{n}.total(), {row.combine}(), {identity}, "
                      f"scratch{n});",
                      f"    if (threadIdx.x == 0) partial{n}[blockIdx.x] = block{n};"]
            params.append(f"{ctype}* __restrict__ partial{n}")
            workspace.append((acc, blocks, False))
            merged = f"gt_sum_parts<false>(partial{n}, gridDim.x)" if row.combine == "GtSum" and acc.kind == "f" \
                else f"gt_merge_parts<false>(partial{n}, gridDim.x, {row.combine}(), {identity})"
            last.append(f"        const {ctype} red{n}{node.op[0]} = gt_block_reduce({merged}, {row.combine}(), "
                        f"{identity}, scratch{n});")
            finish(Reduced(n, node, acc, ctype, ctype, identity, [node.op]), "rows", last)
            if node.output in written:
                k, (expr, t) = written[node.output], names[node.output]
                stored = render_cast(expr, _weak_or_dtype(t), node.output.type.dtype)
                last.append(f"        if (threadIdx.x == 0) gt_store_half(out{k}, {stored});" if
                            node.output.type.dtype == HALF else f"        if (threadIdx.x == 0) out{k}[0] = {stored};")
        params.append("unsigned int* __restrict__ total_ticket")
        workspace.append((np.dtype(np.uint32), 1, True))
        return after + ["    if (gt_last_part<false>(total_ticket, gridDim.x)) {", *last, "    }"]

    def write_elem_outputs() -> None:
        """The loop over the row (or, split, over this block's part) writing the element-level outputs."""
        stored = [(k, a) for k, _, a in elem_outputs if a in vectored]
        indent = "                " if stored else "            "
        preload, lines, local = emit_elements([v for _, v, _ in elem_outputs], indent,
                                              stores=tuple(a for _, _, a in elem_outputs))
        for k, v, a in elem_outputs:
            expr, t = local[v]
            value = render_cast(expr, _weak_or_dtype(t), v.type.dtype)
            index = f"roff{a} + coff{a}"
            if a in vectored:
                lines.append(f"{indent}v{a}.v[j - j0] = {value};")
            else:
                store = f"gt_store_half(out{k} + {index}, {value});" if v.type.dtype == HALF else \
                    f"out{k}[{index}] = {value};"
                lines.append(f"{indent}if (active) {store}" if grouped else f"{indent}{store}")
        if not stored:
            body.extend(preload + each_element("        ", lines))
            return
        # each vector's elements are computed into it, then it is stored at once (spare lanes store nothing)
        active = "active" if grouped else "true"
        body.extend([*preload, f"        gt_for_vectors<{items}, {width}, {row_threads}, index_t>({lane}, "
                                "[&](int q, index_t j0) {",
                     *[f"            {vector_type(a)} v{a};" for _, a in stored],
                     "            gt_for_vector_elements<%d>(q, j0, cols, [&](int t, index_t j) {" % width,
                     *lines, "            });",
                     *[f"            gt_store_vector<{width}>(out{k} + roff{a}, j0, cols, v{a}, vectors_aligned, "
                       f"{active});" for k, a in stored],
                     "        });"])

    if splits > 1:
        if elem_outputs:  # they read no reduction's result: each block writes its own part
            write_elem_outputs()
        params.append("unsigned int* __restrict__ tickets")
        workspace.append((np.dtype(np.uint32), rows, True))
        body.append(f"        if (!gt_last_part<{'true' if per_thread else 'false'}>(&tickets[row], splits)) continue;")
        for r in finishes:
            body += _combine_parts(r, per_thread, combine_threads)
    for r in finishes:
        finish(r)

    if elem_outputs and splits == 1:
        write_elem_outputs()
    row_outputs = [(k, v) for k, v, elem, _ in outputs if not elem]
    if row_outputs:
        body.append("        {" if per_thread else "        if (lane == 0 && active) {" if grouped else
                    "        if (threadIdx.x == 0) {")
        for k, v in row_outputs:
            expr, t = names[v]
            value = render_cast(expr, _weak_or_dtype(t), v.type.dtype)
            body.append(f"            gt_store_half(out{k} + row, {value});" if v.type.dtype == HALF else
                        f"            out{k}[row] = {value};")
        body.append("        }")
    after_rows = total_of_rows(totals, outputs_of_totals) if totals else []

    if layout.shared:
        shared.extend(f"    __shared__ {compute_type(accesses[a].dtype)} cache{a}[cols][{block}];  // each thread's row"
                      for a in sorted(cached))
    body[:0] = [f"        {compute_type(accesses[a].dtype)} cache{a}[{items}];  // this thread's row elements"
                for a in sorted(cached) if items] + \
               [f"        {compute_type(node.output.type.dtype)} {name}[{items}];  // {node.kind} of this thread's elements"
                for node, name in held.items()]
    if any(a.gather is not None for a in accesses):
        params.append(FLAG_PARAM)
        workspace.append(FLAG_WORKSPACE)
    name = group.attrs["kernel"]  # fusion names each group's kernel
    summary = " -> ".join(n.kind for n in sub.nodes if n.kind != "prim::Constant")
    source = string.Template(read_template("reduction.cu")).substitute(
        name=name, summary=summary, params=",\n    ".join(params), index_t=index_t, constants="\n".join(constants),
        shared="\n".join(shared),
        block=block, min_blocks=max(1, THREADS_PER_SM // block),
        first_unit="(index_t)blockIdx.x * blockDim.x + threadIdx.x" if per_thread else
                   f"((index_t)blockIdx.x * blockDim.x + (index_t)(threadIdx.x & ~31u)) / {lanes}" if grouped else
                   "blockIdx.x",
        unit_step="(index_t)blockDim.x * gridDim.x" if per_thread else
                  f"(index_t)blockDim.x * gridDim.x / {lanes}" if grouped else "gridDim.x",
        row_setup="\n".join(setup), row_body="\n".join(body), after_rows="\n".join(after_rows))
    empty_error = None
    if cols == 0:  # the first reduction NumPy would run raises
        empty_error = next((error for n in reductions
                            if (error := ops.reduction_of(n).empty_error) and "initial" not in n.attrs), None)
    return Kernel(name=name, source=source, inputs=[v.name for v in group.inputs],
                  input_types=[v.type for v in sub.inputs], outputs=[v.name for v in group.outputs],
                  output_types=[v.type for v in sub.outputs], elements=units,
                  workspace=workspace, index_checks=index_checks(sub),
                  block=block, work_per_block=block // lanes if lanes <= 32 else 1, empty_error=empty_error, layout=layout,
                  ops=[n.op for n in sub.nodes if n.kind != "prim::Constant"])
