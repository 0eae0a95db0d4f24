"""Traced functions on Dask arrays: the traced graph becomes a Dask graph whose tasks are gputrace programs.

Each axis of the inputs gets a letter, as in ``da.blockwise``; letters flow through the graph (elementwise ops
keep them, reductions and matmul consume them). Where no op needs data across chunks the whole program runs
once per chunk; a reduction over a chunked letter becomes a tree reduction whose chunk step is a gputrace
program with its prologue, combined in float64 (Chan's merge for var/std, NaN rules for max and argmax); a
matmul that needs other chunks (a chunked inner axis, or ``x @ x.T`` on chunked rows) is Dask's own blocked
``da.matmul``, its epilogue a gputrace program per output block; a letter a program cannot split (a softmax
row, a reshape's axis) is rechunked to one chunk, or, for a row too large for one chunk, reduced first and the
rest run in a second pass; the fusion log says which. On the numpy backend, large NumPy blocks can run in tiles
that keep a step's temporaries in the cache (``TILE_ABOVE``, off by default).
"""
from __future__ import annotations

import functools
import itertools
import logging
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from . import ops
from .errors import UnsupportedOperationError
from .ir import Graph, TensorType, Value
from .tracer import array_module

log = logging.getLogger("gputrace.fusion")

EXTRA = 'pip install "gputrace[dask]"'
SPLIT_EVERY = 8  # partial results combined per tree-reduction task
# A NumPy block larger than TILE_ABOVE bytes runs on the numpy backend in tiles of about TILE_BYTES of its largest
# input along a chunked axis, so that a tile's temporaries stay in the core's cache (2 << 20 turns it on). Off:
# it halves a step's CPU time in a plain process, but not in distributed's workers, whose MALLOC_TRIM_THRESHOLD_
# maps and faults every tile's temporaries anew (benchmarks/RESULTS.md, the Dask section).
TILE_ABOVE = math.inf
TILE_BYTES = 512 << 10


def _partial_kind(op: str) -> str:
    """How a reduction's partial results over chunks combine, from its row of the op table:
    "arg" (value and index), "moments" (Chan's merge), "mean" (counts and means) or the reduction itself."""
    row = ops.REDUCTION_ROWS[op]
    return "arg" if row.index else "moments" if ops.VARIANCE in row.finish else "mean" if ops.MEAN in row.finish \
        else op


def is_dask_array(x: Any) -> bool:
    """A ``dask.array.Array`` (recognised without importing Dask)."""
    return type(x).__module__.startswith("dask.array") and hasattr(x, "chunks") and hasattr(x, "__dask_graph__")


def map_dask_arrays(value: Any, fn: Any) -> Any:
    """``value`` with ``fn(x)`` for each Dask array ``x`` in it, through the tuples, lists and dicts that a
    traced call's arguments nest in (as ``arguments.Call`` walks them)."""
    if is_dask_array(value):
        return fn(value)
    if isinstance(value, dict):
        return {k: map_dask_arrays(v, fn) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        items = [map_dask_arrays(v, fn) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)  # a namedtuple
    return value


def _dask_leaves(value: Any) -> list:
    found: list = []
    map_dask_arrays(value, found.append)
    return found


def has_dask_arrays(args: Sequence[Any], kwargs: dict) -> bool:
    return bool(_dask_leaves((tuple(args), kwargs)))


def require_dask() -> Any:
    try:
        import dask.array
    except ImportError as exc:
        raise ImportError(f"gputrace on Dask arrays needs dask[array] and distributed ({exc}); {EXTRA}") from None
    return dask.array


def first_chunk(x: Any) -> Any:
    """The first chunk of a Dask array, computed: the example that ``trace`` traces on."""
    return x.blocks[(0,) * x.ndim].compute()


def note_traced_on_first_chunks(error: Exception, example_inputs: Any) -> None:
    """A NumPy shape or index error raised while tracing on Dask arrays' first chunks is about those chunks, not
    the whole arrays: the note says so, and how to trace at the whole shapes instead."""
    chunked = [f"{tuple(a.shape)} traced as its first chunk {tuple(c[0] for c in a.chunks)}"
               for a in _dask_leaves(example_inputs)]
    if chunked:
        error.add_note(f"gputrace.trace ran the function on the Dask arguments' first chunks ({'; '.join(chunked)}); "
                       "a function that indexes, reshapes or broadcasts by the whole arrays' sizes can be traced on "
                       "NumPy arrays of those sizes (or small ones of the same rank) and then called on the Dask arrays")


# ----------------------------------------------------------------------------- letters


class _Letters:
    """Union-find over letters; a letter is an axis that chunks alike wherever it appears."""

    def __init__(self):
        self.parent: list[int] = []
        self.fixed: set[int] = set()    # axes of constants and parameters: never chunked
        self.tainted: dict[int, str] = {}  # letter -> why no program can split it
        self.follows: dict[int, tuple[int, int]] = {}  # a Dask matmul's output letter -> (operand's letter, size)

    def new(self, fixed: bool = False) -> int:
        self.parent.append(len(self.parent))
        if fixed:
            self.fixed.add(len(self.parent) - 1)
        return len(self.parent) - 1

    def new_following(self, source: int, size: int) -> int:
        """A letter that chunks as ``source`` unless something downstream needs it whole."""
        a = self.new()
        self.follows[a] = (source, size)
        return a

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, letters: Sequence[int | None]) -> int | None:
        roots = sorted({self.find(a) for a in letters if a is not None})
        if not roots:
            return None
        for r in roots[1:]:
            self.parent[r] = roots[0]
        return roots[0]

    def taint(self, labels: Sequence[int | None], why: str) -> None:
        for a in labels:
            if a is not None:
                self.tainted.setdefault(a, why)


def _broadcast_labels(letters: _Letters, operands: Sequence[tuple], shape: tuple) -> list:
    """The letters of an elementwise result of ``shape`` from operands (shape, letters), broadcast as NumPy does:
    the letters that meet on one axis are one letter from then on."""
    out = []
    for i in range(len(shape)):
        found = []
        for operand_shape, labels in operands:
            j = len(operand_shape) - (len(shape) - i)
            if j >= 0 and operand_shape[j] == shape[i] and shape[i] > 1:
                found.append(labels[j])
        if None in found:  # an axis whose chunking no input gives (a slice's, a reshape's) meets these letters
            letters.taint(found, "it meets an axis made by a slice or reshape")
        out.append(letters.union(found))
    return out


def _getitem_labels(letters: _Letters, labels: list, index: tuple) -> list | None:
    """The letters of ``x[index]`` for a basic index (slices, ints, None, ...); None for any other index."""
    if not isinstance(index, tuple) or not all(isinstance(i, (slice, int, type(None))) or i is Ellipsis
                                               for i in index):
        return None
    out, axis = [], 0
    for i in ops.expand_index(index, len(labels)):
        if i is None:
            out.append(None)
            continue
        if i != slice(None):
            letters.taint([labels[axis]], f"the index {i} takes part of it")
        if isinstance(i, slice):
            out.append(labels[axis] if i == slice(None) else None)
        axis += 1
    return out


def _reduced_axes(node) -> tuple[int, ...]:
    x = node.inputs[0].type
    axis = node.attrs.get("axis")
    return tuple(range(x.ndim)) if axis is None else tuple(axis)  # normalised by the tracer


def label_graph(graph: Graph, letters: _Letters, input_labels: list) -> tuple[dict, dict, list]:
    """Each value's letters (None: a dim of one element or of a size no input axis gives), for each reduction
    or matmul the letters it sums over, and the matmuls that pair every block of an axis with every other
    (``x @ x.T``: Dask's blocked matmul, whose output axes get letters of their own)."""
    labels: dict[Value, list] = dict(zip(graph.inputs, input_labels))
    reduces: dict[Any, list] = {}
    crossing: list = []
    for node in graph.nodes:
        tensors = [(v.type.shape, labels[v]) for v in node.inputs if isinstance(v.type, TensorType)]
        out_types = [v.type for v in node.outputs]
        category = ops.OPS[node.kind].category if node.kind in ops.OPS else None
        if node.kind in ("prim::Constant", "prim::Param"):
            outs = [[letters.new(fixed=True) if n > 1 else None for n in t.shape] if isinstance(t, TensorType)
                    else [] for t in out_types]
        elif category == ops.ELEMENTWISE:
            outs = [_broadcast_labels(letters, tensors, t.shape) for t in out_types]
        elif category == ops.REDUCTION:
            (x, xl), = tensors
            axes = _reduced_axes(node)
            reduces[node] = [xl[a] for a in axes]
            keep = node.attrs.get("keepdims", False)
            outs = [[None if a in axes else xl[a] for a in range(len(xl)) if keep or a not in axes]]
        elif node.op in ("matmul", "dot") and len(tensors) == 2 and min(len(tensors[0][1]), len(tensors[1][1])) >= 1 \
                and (node.op == "matmul" or max(len(tensors[0][1]), len(tensors[1][1])) <= 2):
            (a, al), (b, bl) = tensors
            k = letters.union([al[-1], bl[-2] if len(bl) >= 2 else bl[-1]])
            reduces[node] = [k]
            batch_shape = out_types[0].shape[:len(out_types[0].shape) - (len(al) >= 2) - (len(bl) >= 2)]
            batch = _broadcast_labels(letters, [(a[:-2], al[:-2]), (b[:-2], bl[:-2])], batch_shape)
            rows, cols = ([al[-2]] if len(al) >= 2 else []), ([bl[-1]] if len(bl) >= 2 else [])
            if rows and cols and None not in (rows[0], cols[0]) and letters.find(rows[0]) == letters.find(cols[0]) \
                    and letters.find(rows[0]) not in {letters.find(f) for f in letters.fixed}:
                shape = out_types[0].shape
                rows, cols = [letters.new_following(rows[0], shape[-2])], [letters.new_following(cols[0], shape[-1])]
                crossing.append(node)
            outs = [batch + rows + cols]
        elif node.kind in ("np::T", "np::transpose", "np::swapaxes"):
            (x, xl), = tensors
            order = list(node.attrs.get("axes") or reversed(range(len(xl))))
            if node.kind == "np::swapaxes":
                order = list(range(len(xl)))
                i, j = node.attrs["axis1"] % len(xl), node.attrs["axis2"] % len(xl)
                order[i], order[j] = j, i
            outs = [[xl[a] for a in order]]
        elif node.kind == "np::getitem" and (sliced := _getitem_labels(letters, tensors[0][1],
                                                                         node.attrs.get("index"))) is not None:
            outs = [sliced]
        else:  # reshapes, gathers, scans, joins: a program sees only whole axes
            for _, xl in tensors:
                letters.taint(xl, f"{node.kind} reads across it")
            outs = [[None] * t.ndim if isinstance(t, TensorType) else [] for t in out_types]
        for v, ls in zip(node.outputs, outs):
            roots = [letters.find(a) for a in ls if a is not None]
            if len(roots) != len(set(roots)):  # x @ x.T: one letter on two axes cannot take one block index
                letters.taint(roots, f"{node.kind} gives it two axes")
            labels[v] = ls
    return labels, reduces, crossing


# ----------------------------------------------------------------------------- the lowering


@dataclass
class DaskLowering:
    """How a traced function runs on Dask arrays: the steps (per chunk, tree reductions, rechunks) and the
    resulting lazy Dask arrays."""
    name: str
    steps: list[str] = field(default_factory=list)
    outputs: Any = None

    def __repr__(self) -> str:
        return f"<DaskLowering {self.name}:\n  " + "\n  ".join(self.steps) + ">"


class _Plan:
    def __init__(self, traced, arrays: list, frozen: Graph, param: Any, backend: str | None):
        """``arrays``: the call's leaves as Dask arrays; ``frozen``: the trace for the call's specialisation,
        whose parameters ``param(name)`` reads."""
        da = require_dask()
        from .passes import inline_graph
        from .passes.specialize import specialize
        self.traced, self.backend, self.da = traced, backend, da
        self.input_names = [v.name for v in frozen.inputs]
        self.lowering = DaskLowering(traced.name)
        full_types = [TensorType(x.dtype, x.shape) for x in arrays]
        traced_types = [v.type for v in frozen.inputs]
        if frozen.meta.get("updated_inputs"):
            raise UnsupportedOperationError(f"{traced.name} updates its inputs in place, which Dask arrays (immutable) "
                                            f"cannot take; return the new values instead")
        if frozen.meta.get("reads_shape") and [t.shape for t in traced_types] != [t.shape for t in full_types]:
            raise UnsupportedOperationError(
                f"{traced.name} reads array shapes (x.shape, len(x), x.size), so its graph holds the sizes it was "
                f"traced at {[t.shape for t in traced_types]}, not those of the whole Dask arrays "
                f"{[t.shape for t in full_types]}: trace it without reading shapes (x.mean(axis) rather than "
                f"x.sum(axis) / x.shape[axis]) to run it per chunk")
        self.params = {n.attrs["name"]: param(n.attrs["name"]) for n in frozen.nodes if n.kind == "prim::Param"}
        param_types = {name: TensorType.of(p) for name, p in self.params.items()}
        graph, _ = specialize(inline_graph(frozen).copy(), full_types, param_types)
        self.graph = graph
        letters = self.letters = _Letters()
        input_labels = [[letters.new() if n > 1 else None for n in t.shape] for t in full_types]
        self.labels, self.reduces, self.crossing = label_graph(graph, letters, input_labels)
        self.arrays = self._chunk_letters(arrays, input_labels)

    # -- which letters are chunked how
    def _chunk_letters(self, arrays: list, input_labels: list) -> list:
        letters = self.letters
        why: dict[int, str] = {}
        for a, reason in letters.tainted.items():
            why.setdefault(letters.find(a), reason)
        for a in letters.fixed:
            why.setdefault(letters.find(a), "a constant or parameter of the program spans it")
        for node, reduced in self.reduces.items():
            meets = self._letters_downstream(node)
            for a in reduced:
                root = letters.find(a) if a is not None else None
                if root in meets and root not in why:
                    # whole rows in one chunk where they fit; otherwise two passes (a tree reduction, then the rest)
                    limit = _parse_bytes("array.chunk-size")
                    if self._block_bytes(arrays, input_labels, {*why, root}) <= limit:
                        why[root] = f"{node.kind} reduces it and its result meets it again (a row split across chunks)"
                    else:
                        self._log(f"two passes: {node.kind} reduces an axis its result meets again, and one chunk "
                                  f"of that axis would exceed array.chunk-size ({limit} bytes)")
        self.chunks: dict[int, tuple] = {}
        self.starts: dict[int, tuple] = {}
        for a, (source, size) in letters.follows.items():  # a Dask matmul's output axes chunk as its operands'
            root, source = letters.find(a), letters.find(source)
            given = [x.chunks[d] for x, xl in zip(arrays, input_labels) for d, b in enumerate(xl)
                     if b is not None and letters.find(b) == source]
            self.chunks.setdefault(root, given[0] if given and root not in why and source not in why else (size,))
        result = []
        for k, (x, xl) in enumerate(zip(arrays, input_labels)):
            wanted = {}
            for d, a in enumerate(xl):
                if a is None:
                    continue
                root = letters.find(a)
                if root in why:
                    self.chunks.setdefault(root, (x.shape[d],))
                    if len(x.chunks[d]) > 1:
                        wanted[d] = -1
                        self._log(f"rechunk {self.input_names[k]} axis {d} into one chunk: {why[root]}")
                else:
                    self.chunks.setdefault(root, x.chunks[d])
                    if self.chunks[root] != x.chunks[d]:
                        wanted[d] = self.chunks[root]
                        self._log(f"rechunk {self.input_names[k]} axis {d} to the chunks of the axes it "
                                  f"meets: {self.chunks[root]}")
            result.append(x.rechunk(wanted) if wanted else x)
        return result

    def _block_bytes(self, arrays: list, input_labels: list, whole: set) -> int:
        """The largest input block if the letters in ``whole`` were one chunk each."""
        find = self.letters.find
        return max((int(np.prod([n if a is not None and find(a) in whole else max(ch)
                                 for a, n, ch in zip(xl, x.shape, x.chunks)], dtype=np.int64)) * x.dtype.itemsize
                    for x, xl in zip(arrays, input_labels)), default=0)

    def _letters_downstream(self, node) -> set:
        """The letters of the values computed from ``node``'s result."""
        below, found = set(node.outputs), set()
        for user in self.graph.nodes[self.graph.nodes.index(node) + 1:]:
            if any(v in below for v in user.inputs):
                below.update(user.outputs)
                found.update(self.letters.find(a) for v in user.outputs for a in self.labels[v] if a is not None)
        return found

    def _log(self, step: str) -> None:
        self.lowering.steps.append(step)
        log.info("dask: %s", step)

    def _block_count(self, a: int | None) -> int:
        return 1 if a is None else len(self.chunks.get(self.letters.find(a), (0,)))

    def _chunked(self, a: int | None) -> bool:
        return self._block_count(a) > 1

    # -- stages
    def build(self) -> Any:
        graph = self.graph
        available: dict[Value, Any] = dict(zip(graph.inputs, self.arrays))
        cuts = [n for n, reduced in self.reduces.items() if n in self.crossing or any(self._chunked(a) for a in reduced)]
        upstream = self._cuts_upstream(cuts)
        stage = 0
        while cuts:
            frontier = [c for c in cuts if not (upstream[c] - {c}) & set(cuts)]
            reductions = [c for c in frontier if c.op not in ("matmul", "dot")]
            if reductions:
                self._reduce_stage(reductions, available, stage)
            products = [c for c in frontier if c.op in ("matmul", "dot")]
            if products:
                self._product_stage(products, available)
            cuts = [c for c in cuts if c not in frontier]
            stage += 1
        targets = [v for v in graph.outputs if v not in available]
        if targets:
            self._final_stage(targets, available)
        from .tracer import unflatten_outputs
        self.lowering.outputs = unflatten_outputs(graph.meta.get("output_tree", 0),
                                                  [available[v] for v in graph.outputs])
        return self.lowering

    def _cuts_upstream(self, cuts: list) -> dict:
        found: dict = {}
        for node in self.graph.nodes:
            above = set()
            for v in node.inputs:
                if v.producer is not None:
                    above |= found[v.producer]
            found[node] = above | ({node} if node in cuts else set())
        return found

    def _subgraph(self, targets: list[Value], available: dict, extra: list | None = None) -> tuple[Graph, list]:
        """The nodes computing ``targets`` from ``available`` values, as a graph of its own; ``extra`` adds nodes
        (kind, [original inputs], attrs) whose outputs follow the targets'."""
        needed, stack = set(), list(targets) + [v for _, ins, _ in extra or () for v in ins]
        while stack:
            v = stack.pop()
            if v in available or v.producer is None or v.producer in needed:
                continue
            needed.add(v.producer)
            stack.extend(v.producer.inputs)
        sub = Graph(self.graph.name)
        mapping: dict[Value, Value] = {}
        sources = []

        def value(v: Value) -> Value:
            if v not in mapping and v in available:
                mapping[v] = sub.add_input(v.type, v.name)
                sources.append(v)
            return mapping[v]
        for node in self.graph.nodes:
            if node in needed:
                copied = sub.add_node(node.kind, [value(v) for v in node.inputs], [v.type for v in node.outputs],
                                      attrs=node.attrs, source=node.source, output_names=[v.name for v in node.outputs])
                mapping.update(zip(node.outputs, copied.outputs))
        outputs = [value(v) if v in available else mapping[v] for v in targets]
        for kind, ins, attrs in extra or ():
            inputs = [value(v) if v in available else mapping[v] for v in ins]
            if kind in ("np::mean", "np::var") and inputs[0].type.dtype.kind == "f":
                # moments accumulated in float64 (a float32 chunk mean loses the digits Chan's merge needs), read
                # from the chunk as it is: a float64 copy of it first cost a quarter of the step's time
                attrs = {**attrs, "dtype": np.dtype(np.float64)}
            types = ops.infer_types(kind, [v.type for v in inputs], attrs)
            outputs.append(sub.add_node(kind, inputs, types, attrs=attrs).output)
        sub.outputs = outputs
        sub.meta["output_tree"] = {"tuple": list(range(len(outputs)))}
        return sub, sources

    def _function(self, sub: Graph) -> "_Shipped":
        from .serialize import dumps
        from .traced import TracedFunction
        names = [n.attrs["name"] for n in sub.nodes if n.kind == "prim::Param"]
        fn = TracedFunction(sub, fn=None, params={k: self.params[k] for k in names}, name=sub.name)
        return _Shipped(fn, dumps(fn))

    def _grid(self, sources: list) -> list[int]:
        """The chunked letters of a stage's inputs, in order of first appearance: its block grid's axes."""
        grid = []
        for v in sources:
            for a in self.labels[v]:
                if a is not None and self._chunked(a) and self.letters.find(a) not in grid:
                    grid.append(self.letters.find(a))
        return grid

    def _block_keys(self, sources: list, available: dict, grid: list, g: tuple) -> list:
        keys = []
        for v in sources:
            x = available[v]
            keys.append((x.name, *[g[grid.index(self.letters.find(a))] if self._chunked(a) else 0
                                   for a in self.labels[v]]))
        return keys

    def _reduce_stage(self, frontier: list, available: dict, stage: int) -> None:
        extra, partial_of = [], []
        for c in frontier:
            kind, x = _partial_kind(c.op), c.inputs
            attrs = {k: v for k, v in c.attrs.items() if k not in ("keepdims", "ddof")}
            first = len(extra)
            if kind == "moments":
                extra += [("np::mean", x, {**attrs, "keepdims": True}), ("np::var", x, {**attrs, "keepdims": True})]
            elif kind == "arg":
                extra += [(c.kind, x, {**attrs, "keepdims": True}),
                          ("np::max" if c.op == "argmax" else "np::min", x, {**attrs, "keepdims": True})]
            else:
                extra.append((c.kind, x, {**attrs, "keepdims": True}))
            partial_of.append((first, len(extra)))
        sub, sources = self._subgraph([], available, extra)
        fn = self._function(sub)
        grid = self._grid(sources)
        blocks = list(itertools.product(*[range(len(self.chunks[a])) for a in grid]))
        name = f"gputrace-chunk-{stage}-{_token(fn, sources, available)}"
        infos = [self._reduction_info(c) for c in frontier]

        def reduced_along(root: int) -> tuple | None:  # a letter every reduction sums over: tiles combine as chunks
            if all(root in {self.letters.find(a) for a in self.reduces[c] if a is not None} for c in frontier):
                return self._axes_along([c.inputs[0] for c in frontier], root)
            return None
        tiling = self._tiling(sources, available, reduced_along)
        dsk = {(name, *g): (_chunk_step, fn, self.backend, tiling, infos, partial_of,
                            [self._place(c.inputs[0], g, grid) for c in frontier],
                            *self._block_keys(sources, available, grid, g)) for g in blocks}
        deps = [available[v] for v in sources]
        ops_text = ", ".join(f"{c.op}" for c in frontier)
        self._log(f"per chunk: {fn.name} prologue and partial {ops_text} ({len(blocks)} tasks"
                  f"{self._tiles_text(tiling, sources)})")
        for k, c in enumerate(frontier):
            available[c.output] = self._tree(c, k, infos[k], name, grid, blocks, dsk, deps)

    def _product_stage(self, products: list, available: dict) -> None:
        """Matmuls that need other chunks than their output block's: Dask's own blocked ``da.matmul`` (or
        ``da.dot``), as for ``a @ b`` on Dask arrays; their operands' prologue runs per chunk first, a transpose
        of an available array is Dask's (it fuses into the product's blocks)."""
        missing = []
        for c in products:
            for v in c.inputs:
                if v not in available and self._transposed(v, available) is None and v not in missing:
                    missing.append(v)
        if missing:
            self._final_stage(missing, available, f"the operands of {', '.join(c.op for c in products)} in")
        for c in products:
            a, b = (available[v] if v in available else self._transposed(v, available) for v in c.inputs)
            product = (self.da.matmul if c.op == "matmul" else self.da.dot)(a, b)
            if product.dtype != c.output.type.dtype:
                product = product.astype(c.output.type.dtype)
            self._log(f"Dask's blocked {c.op}: da.{c.op} of {tuple(a.numblocks)} by {tuple(b.numblocks)} blocks")
            wanted = self._chunks_of(c.output)
            if product.chunks != wanted:
                self._log(f"rechunk the result of {c.kind} to {wanted}: what follows needs its axes whole")
                product = product.rechunk(wanted)
            available[c.output] = product

    def _transposed(self, v: Value, available: dict) -> Any:
        """``v`` as Dask's transpose of an available array, where it is one (None otherwise)."""
        node = v.producer
        if node is None or node.kind not in ("np::T", "np::transpose", "np::swapaxes") or \
                node.inputs[0] not in available:
            return None
        x = available[node.inputs[0]]
        if node.kind == "np::swapaxes":
            return self.da.swapaxes(x, node.attrs["axis1"], node.attrs["axis2"])
        return self.da.transpose(x, node.attrs.get("axes"))

    def _reduction_info(self, c) -> dict:
        return {"kind": _partial_kind(c.op), "op": c.op, "axes": _reduced_axes(c), "keepdims": c.attrs.get("keepdims"),
                "ddof": c.attrs.get("ddof", 0), "dtype": c.output.type.dtype, "shape": c.inputs[0].type.shape,
                "flat": c.attrs.get("axis") is None}

    def _place(self, v: Value, g: tuple, grid: list) -> tuple[list, list]:
        """The sizes and offsets, per axis, of the block of ``v`` that block ``g`` of the grid computes."""
        sizes, offsets = [], []
        for a, n in zip(self.labels[v], v.type.shape):
            if a is not None and self._chunked(a):
                root = self.letters.find(a)
                j = g[grid.index(root)]
                starts = self.starts.setdefault(root, tuple(itertools.accumulate(self.chunks[root], initial=0)))
                sizes.append(self.chunks[root][j])
                offsets.append(starts[j])
            else:
                sizes.append(n)
                offsets.append(0)
        return sizes, offsets

    def _tree(self, c, k: int, info: dict, chunk_name: str, grid: list, blocks: list, dsk: dict, deps: list) -> Any:
        from dask.highlevelgraph import HighLevelGraph
        reduced = {self.letters.find(a) for a in self.reduces[c] if a is not None and self._chunked(a)}
        along = [grid.index(a) for a in reduced]
        level, layer = 0, {g: (chunk_name, *g) for g in blocks}
        name = f"{chunk_name}-{k}-{c.op}"
        tasks = {}
        extents = [len(self.chunks[a]) for a in grid]
        while any(extents[i] > 1 for i in along):
            new_extents = [math.ceil(n / SPLIT_EVERY) if i in along else n for i, n in enumerate(extents)]
            new_layer = {}
            for g in itertools.product(*[range(n) for n in new_extents]):
                members = [layer[m] for m in itertools.product(*[
                    range(j * SPLIT_EVERY, min((j + 1) * SPLIT_EVERY, extents[i])) if i in along else [j]
                    for i, j in enumerate(g)]) if m in layer]
                key = (f"{name}-combine{level}", *g)
                tasks[key] = (_combine_step, info, k, members)
                new_layer[g] = key
            layer, extents, level = new_layer, new_extents, level + 1
        out_name = f"{name}-aggregate"
        chunks = self._chunks_of(c.output)
        for b in itertools.product(*[range(len(ch)) for ch in chunks]):
            g = self._grid_index(c.output, b, grid)
            source = layer[g] if level else (chunk_name, *g)
            tasks[(out_name, *b)] = (_aggregate_step, info, k, source, level == 0)
        self._log(f"tree reduction: {c.op} over {len(along)} chunked ax{'es' if len(along) != 1 else 'is'}, "
                  f"{level} combine level{'s' * (level != 1)}")
        graph = HighLevelGraph.from_collections(out_name, {**dsk, **tasks}, dependencies=deps)
        return self.da.Array(graph, out_name, tuple(chunks), meta=self._meta(c.output.type))

    def _chunks_of(self, v: Value) -> tuple:
        return tuple(self.chunks[self.letters.find(a)] if a is not None and self._chunked(a) else (n,)
                     for a, n in zip(self.labels[v], v.type.shape))

    def _grid_index(self, v: Value, b: tuple, grid: list) -> tuple:
        """The block of the grid that computes block ``b`` of ``v`` (block 0 along the letters ``v`` lacks)."""
        g = [0] * len(grid)
        for a, j in zip(self.labels[v], b):
            if a is not None and self._chunked(a):
                g[grid.index(self.letters.find(a))] = j
        return tuple(g)

    def _meta(self, t: TensorType) -> Any:
        xp = array_module([self.arrays[0]._meta]) if self.arrays else np
        return xp.empty((0,) * t.ndim, t.dtype)

    def _tiling(self, sources: list, available: dict, outputs_along: Callable) -> _Tiling | None:
        """Tiles for a per-chunk step on large NumPy blocks on the numpy backend, along the chunked letter of the
        outermost axis of the largest input that ``outputs_along(letter)`` takes (the outputs' axes of it, None
        if an output lacks it): the lowering split that letter, so a tile is a finer chunk. None where blocks are
        small, not NumPy or run on another backend."""
        if self.backend not in (None, "numpy") or \
                not all(type(available[v]._meta) is np.ndarray for v in sources):  # noqa: E721 (CuPy, masked)
            return None
        blocks = [int(np.prod([max(ch) for ch in available[v].chunks], dtype=np.int64)) * v.type.dtype.itemsize
                  for v in sources]
        if not blocks or max(blocks) <= TILE_ABOVE:
            return None
        largest = sources[blocks.index(max(blocks))]
        for a in self.labels[largest]:
            if a is None or not self._chunked(a):
                continue
            root = self.letters.find(a)
            out_axes = outputs_along(root)
            if out_axes is not None:
                per_slice = max(blocks) // max(self.chunks[root])
                return _Tiling(max(1, TILE_BYTES // per_slice), tuple(self._axis_of(v, root) for v in sources),
                               out_axes)
        return None

    @staticmethod
    def _tiles_text(tiling: _Tiling | None, sources: list) -> str:
        if tiling is None:
            return ""
        k = next(k for k, d in enumerate(tiling.inputs) if d is not None)
        return f", in tiles of {tiling.size} along axis {tiling.inputs[k]} of {sources[k].name}"

    def _axis_of(self, v: Value, root: int) -> int | None:
        return next((d for d, a in enumerate(self.labels[v]) if a is not None and self.letters.find(a) == root), None)

    def _axes_along(self, values: list, root: int) -> tuple | None:
        axes = tuple(self._axis_of(v, root) for v in values)
        return None if None in axes else axes

    def _final_stage(self, targets: list, available: dict, what: str = "the whole of") -> None:
        from dask.highlevelgraph import HighLevelGraph
        sub, sources = self._subgraph(targets, available)
        fn = self._function(sub)
        grid = self._grid(sources)
        token = _token(fn, sources, available)
        deps = [available[v] for v in sources]
        name = f"gputrace-{fn.name}-{token}"
        out_chunks = [self._chunks_of(v) for v in targets]
        tiling = self._tiling(sources, available, lambda root: self._axes_along(targets, root))
        dsk = {}
        for k, (v, chunks) in enumerate(zip(targets, out_chunks)):
            for b in itertools.product(*[range(len(ch)) for ch in chunks]):
                g = self._grid_index(v, b, grid)
                run = (_run_step, fn, self.backend, tiling, *self._block_keys(sources, available, grid, g))
                if len(targets) == 1:
                    dsk[(name, *b)] = (_run_one, *run[1:])
                else:
                    dsk.setdefault((name, *g), run)
                    dsk[(f"{name}-{k}", *b)] = (operator.getitem, (name, *g), k)
        tasks = len({key for key in dsk if key[0] == name})
        split = f", {len(targets)} outputs split out" if len(targets) > 1 else ""
        self._log(f"per chunk: {what} {fn.name} ({tasks} tasks{split}{self._tiles_text(tiling, sources)})")
        for k, (v, chunks) in enumerate(zip(targets, out_chunks)):
            out = name if len(targets) == 1 else f"{name}-{k}"
            layer = {key: task for key, task in dsk.items() if key[0] in (out, name)}
            graph = HighLevelGraph.from_collections(out, layer, dependencies=deps)
            available[v] = self.da.Array(graph, out, chunks, meta=self._meta(v.type))


def _parse_bytes(key: str) -> int:
    import dask
    from dask.utils import parse_bytes
    value = dask.config.get(key)
    return parse_bytes(value) if isinstance(value, str) else int(value)


def _token(fn: "_Shipped", sources: list, available: dict) -> str:
    from dask.base import tokenize
    return tokenize(fn.data, [available[v].name for v in sources])


class _Shipped:
    """A stage's TracedFunction with its pickled bytes, made once: distributed pickles every task that holds it."""

    def __init__(self, fn: Any, data: bytes):
        self.fn, self.data, self.name = fn, data, fn.name

    def __reduce__(self) -> tuple:
        return _unpickle_shipped, (self.data,)


def _unpickle_shipped(data: bytes) -> _Shipped:
    from .serialize import loads
    return _Shipped(loads(data), data)


# ----------------------------------------------------------------------------- what the tasks run


@dataclass(frozen=True)
class _Tiling:
    """A per-chunk step run in tiles of ``size`` along one letter: each input's and output's axis of it (None: an
    input taken whole in every tile; a chunk step's outputs: its reductions' inputs)."""
    size: int
    inputs: tuple
    outputs: tuple


def _tiles(tiling: _Tiling | None, blocks: Sequence) -> list[tuple[slice, list]]:
    """The tiles of a block (each: its slice along the tiled axis, and the inputs' pieces); one for an untiled
    block."""
    extent = None if tiling is None else next(b.shape[d] for b, d in zip(blocks, tiling.inputs) if d is not None)
    if extent is None or extent <= tiling.size:
        return [(slice(None), list(blocks))]
    return [(tile, [b if d is None else b[(slice(None),) * d + (tile,)] for b, d in zip(blocks, tiling.inputs)])
            for tile in (slice(start, min(start + tiling.size, extent)) for start in range(0, extent, tiling.size))]


def _run_step(shipped: _Shipped, backend, tiling: _Tiling | None, *blocks) -> tuple:
    fn = shipped.fn
    run = fn if backend is None else functools.partial(fn.run, backend=backend)
    tiles = _tiles(tiling, blocks)
    if len(tiles) == 1:
        return run(*blocks)
    extent, outputs = tiles[-1][0].stop, None
    for tile, pieces in tiles:
        results = run(*pieces)
        if outputs is None:  # each tile writes into the block's outputs: no concatenation afterwards
            outputs = [np.empty(r.shape[:d] + (extent,) + r.shape[d + 1:], r.dtype)
                       for r, d in zip(results, tiling.outputs)]
        for out, r, d in zip(outputs, results, tiling.outputs):
            out[(slice(None),) * d + (tile,)] = r
    return tuple(outputs)


def _run_one(fn, backend, tiling: _Tiling | None, *blocks) -> Any:
    return _run_step(fn, backend, tiling, *blocks)[0]


def _chunk_step(fn, backend, tiling: _Tiling | None, infos: list, partial_of: list, places: list, *blocks) -> list:
    """The partial states of a stage's reductions over one block of the grid (``places``: the sizes and offsets
    of the block of each reduction's input); a tiled block's are its tiles' states combined."""
    tiles = _tiles(tiling, blocks)
    if len(tiles) == 1:
        return _partial_states(fn, backend, infos, partial_of, places, blocks)
    by_tile = []
    for tile, pieces in tiles:
        tile_places = []
        for (sizes, offsets), d in zip(places, tiling.outputs):
            tile_places.append(([tile.stop - tile.start if i == d else n for i, n in enumerate(sizes)],
                                [o + tile.start if i == d else o for i, o in enumerate(offsets)]))
        by_tile.append(_partial_states(fn, backend, infos, partial_of, tile_places, pieces))
    return [_combine(info, [states[k] for states in by_tile]) for k, info in enumerate(infos)]


def _partial_states(fn, backend, infos: list, partial_of: list, places: list, blocks: Sequence) -> list:
    outputs = _run_step(fn, backend, None, *blocks)
    states = []
    for info, (start, stop), (sizes, offsets) in zip(infos, partial_of, places):
        values = outputs[start:stop]
        count = int(np.prod([sizes[a] for a in info["axes"]], dtype=np.int64))
        kind = info["kind"]
        if kind == "mean":
            states.append({"n": count, "m": values[0].astype(np.float64)})
        elif kind == "moments":
            m, v = (a.astype(np.float64) for a in values)
            states.append({"n": count, "m": m, "M2": v * count})
        elif kind == "arg":
            states.append({"i": _global_index(info, sizes, offsets, values[0]), "v": values[1]})
        else:
            states.append({"v": values[0]})
    return states


def _global_index(info: dict, sizes: list, offsets: list, local: Any) -> Any:
    """An arg reduction's index in its block made an index in the whole array."""
    xp = array_module([local])
    local = local.astype(np.int64)
    if not info["flat"]:
        (a,) = info["axes"]
        return local + offsets[a]
    if not sizes:
        return local
    where = xp.unravel_index(local, tuple(sizes))
    return xp.ravel_multi_index(tuple(w + o for w, o in zip(where, offsets)), info["shape"]).astype(np.int64)


def _combine(info: dict, states: list) -> dict:
    kind = info["kind"]
    xp = array_module([next(iter(states[0].values())) if kind != "mean" and kind != "moments" else states[0]["m"]])
    if kind in ("mean", "moments"):
        n = sum(s["n"] for s in states)
        m = sum(s["m"] * s["n"] for s in states) / max(n, 1)
        if kind == "mean":
            return {"n": n, "m": m}
        m2 = sum(s["M2"] + s["n"] * (s["m"] - m) ** 2 for s in states)
        return {"n": n, "m": m, "M2": m2}
    v = xp.stack([s["v"] for s in states])
    if kind == "arg":
        i = xp.stack([s["i"] for s in states])
        big = np.iinfo(np.int64).max
        if v.dtype.kind == "f":
            nan = xp.isnan(v)
            any_nan = nan.any(0)
            clean = xp.where(nan, -np.inf if info["op"] == "argmax" else np.inf, v)
        else:
            nan, any_nan, clean = None, None, v
        best = clean.max(0) if info["op"] == "argmax" else clean.min(0)
        chosen = clean == best
        if nan is not None:
            chosen = xp.where(any_nan, nan, chosen)
            best = xp.where(any_nan, np.nan, best).astype(v.dtype)
        return {"i": xp.where(chosen, i, big).min(0), "v": best}
    if kind in ("sum", "prod") and v.dtype.kind == "f":
        v = v.astype(np.float64)
    return {"v": getattr(v, kind)(axis=0)}


def _combine_step(info: dict, k: int, members: list) -> dict:
    """``members``: the chunk steps' lists of states (stage k's is the one wanted) or combined states."""
    return _combine(info, [m[k] if isinstance(m, list) else m for m in members])


def _aggregate_step(info: dict, k: int, state: Any, from_chunk: bool) -> Any:
    if from_chunk:
        state = state[k]
    kind = info["kind"]
    xp = array_module([state["m"] if kind in ("mean", "moments") else state["i"] if kind == "arg" else state["v"]])
    if kind == "mean":
        result = state["m"]
    elif kind == "moments":
        with np.errstate(all="ignore"):
            result = state["M2"] / max(state["n"] - info["ddof"], 0)
        if info["op"] == "std":
            result = xp.sqrt(result)
    elif kind == "arg":
        result = state["i"]
    else:
        result = state["v"]
    if not info["keepdims"]:
        result = result.reshape(ops.reduced_shape(result.shape, info["axes"], False))
    return result.astype(info["dtype"])


# ----------------------------------------------------------------------------- entry points


def _dask_call(traced, args: Sequence[Any], kwargs: dict) -> tuple[list, Graph, Any]:
    """The call's leaves as Dask arrays (NumPy arrays, scalars and Python floats among them broadcast as in
    NumPy), checked as a call on arrays is (nesting, keywords, dtypes, ndims, devices), and the trace of its
    specialisation with the reader of that trace's parameters (a new specialisation traced by ``_retrace``)."""
    import functools
    da = require_dask()
    stand_ins: dict[int, Any] = {}

    def stand_in(x: Any) -> Any:  # an empty array of the chunks' type, dtype and ndim: what _bind checks
        if any(math.isnan(n) for n in x.shape):
            raise ValueError(f"{traced.name}(): a Dask array of unknown chunk sizes {x.chunks} (from boolean "
                             f"indexing, say); call x.compute_chunk_sizes() first")
        s = x._meta.view()
        stand_ins[id(s)] = (s, x)
        return s
    call = traced._bind(map_dask_arrays(tuple(args), stand_in), map_dask_arrays(dict(kwargs), stand_in))
    arrays = [stand_ins[id(x)][1] if id(x) in stand_ins else da.from_array(x, chunks=-1) for x in call.leaves]
    specialization = call.specialization if traced.call is not None else traced._specialization_key
    if specialization == traced._specialization_key:
        graph, captured = traced.frozen_graph, traced._params
    else:
        graph, captured = _retrace(traced, call, {i: x for i, (_, x) in stand_ins.items()})
    from .traced import _read_param
    return arrays, graph, functools.partial(_read_param, traced.module, captured)


def _retrace(traced, call: Any, dask_of: dict) -> tuple[Graph, dict]:
    """The trace for a call of another specialisation (other static values, dtypes or arguments), made where
    a leaf of the traced call had the same path and rank on an array of the shape traced then (a shape that
    traced once traces again; first chunks of different arrays need not fit together), else on the leaf itself
    or its Dask array's first chunk."""
    from .arguments import Call
    traced_types = dict(zip(traced.call.paths, traced.input_types))
    leaves = []
    for x, path, weak in zip(call.leaves, call.paths, call.weak):
        t = traced_types.get(path)
        leaves.append(x if weak else np.ones(t.shape, x.dtype) if t is not None and t.ndim == x.ndim
                      else first_chunk(dask_of[id(x)]) if id(x) in dask_of else x)
    example = Call(traced._binds_to, *call.rebuild(leaves, python_floats=True))
    try:
        with traced._lock:
            return traced._specialization([TensorType.of(x) for x in example.leaves], example.specialization, example)
    except (ValueError, IndexError) as error:
        error.add_note(f"gputrace traced {traced.name} again for this call's arguments, on arrays of the shapes "
                       f"it was traced at ({', '.join(f'{p}: {t.shape}' for p, t in traced_types.items())}) and on "
                       f"the first chunks of others")
        raise


def lower_on_dask(traced, args: Sequence[Any], kwargs: dict, backend: str | None = None) -> DaskLowering:
    """The Dask graph of ``traced`` on Dask arrays: its steps, and its outputs as lazy Dask arrays."""
    arrays, graph, param = _dask_call(traced, args, kwargs)
    return _Plan(traced, arrays, graph, param, backend).build()


def run_on_dask(traced, args: Sequence[Any], kwargs: dict, backend: str | None) -> Any:
    return lower_on_dask(traced, args, kwargs, backend).outputs
