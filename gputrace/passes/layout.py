"""The layout of every fusion group is decided here, once, and stored in the lowered program: fusion asks
``rows_are_split`` and the renderers read the layout (``group_layout``), so kernels and fusion cannot disagree.

Elementwise groups: a thread per element, ``width`` elements per vector access, a few vectors in flight per
thread. Reduction groups: a row is one index over the kept axes; its elements are the reduced axes. Four
layouts, chosen from the sizes:
- a group of lanes of one warp per row (a power of two, at most 32, each lane holding up to 8 elements, 4 of
  8 bytes) for rows shorter than a block that fit: the group reduces with shuffles alone, a warp works on
  several short rows;
- a block per row, the row held in registers (up to 16 elements per thread, 8 of 8 bytes): rows are read
  from memory once, and element values a later phase needs again (softmax's ``exp``) are kept;
- a block per row, re-reading longer rows in each phase (from L2);
- a thread per row when rows lie side by side in memory (a reduction over a leading axis), so neighbouring
  threads read neighbouring elements; where the kernel passes over a row more than once (batch norm's mean,
  variance and epilogue) and a block's rows fit in shared memory, each thread holds its row there and reads
  it from memory once. (Batch norm of a 32768 x 1024 batch cannot: 128 KiB per column, 128 MiB in all, is more
  than the registers and shared memory of any GPU, about 60 MB on an H200; it reads its columns twice, its
  statistics' kernel ending where the epilogue reads them: ``rows_are_split``.)
Few long rows (a full reduction) are split over several blocks, or, side by side, over several threads (too
few columns of a tall matrix to fill the GPU); the row's last block or thread combines the parts. Only that
one knows the row's result, so fusion ends a group where an element reads it (``rows_are_split``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from .. import ops
from ..ir import Graph, Node, TensorType, Value, contiguous_strides

BLOCK = 256            # threads per row when the row does not fit in registers
MAX_ITEMS = 16         # row elements one thread keeps in registers
MIN_LANES = 4          # lanes of a warp that share a row shorter than a block (where it has 4 elements)
MAX_LANE_ITEMS = 8     # 4-byte elements of such a row one lane keeps in registers (16 spilled a layer norm's)
PER_THREAD_MIN_ROWS = 1024  # enough rows to fill the GPU with one thread each
THREADS_PER_SM = 1024  # resident threads per SM the register budget is set for (half of Hopper's 2048)
CACHED_BLOCKS = (256, 512, 1024)
SPLIT_CHUNK = 16384    # at least this many row elements per block when a row is split over blocks
SPLIT_BLOCKS = 1024    # blocks a split reduction aims for
PER_THREAD_TARGET = 65536  # threads a reduction over leading axes aims for, splitting its columns
COLUMN_PART_MIN = 128      # at least this many elements per thread when a column is split
COLUMN_SPLITS_MAX = 1024   # parts of one column at most (its last thread adds them up one by one)
VECTOR_BYTES = 16      # the widest global memory access
ELEMENTWISE_BLOCK = 256
MAX_VECTOR_WIDTH = 8   # elements per vector access (bounds the unrolled code per thread)
# Bytes a thread has loading at once in the vector loop: with fewer, a program reading one array
# keeps too little in flight per SM to cover the memory latency (Little's law). On an H100, threads
# loading 16 bytes each reached 81% of copy bandwidth (GELU), 48 bytes 93.5% (Black-Scholes), 64
# bytes 95% (Adam): a thread loads whole vectors, a grid stride apart, until it has 48 bytes loading.
BYTES_IN_FLIGHT = 48
MAX_VECTORS_PER_THREAD = 4
SHARED_ROWS_BYTES = 32768  # static shared memory a block of a thread per row may hold its rows in (of 48 KiB)
MIN_SHARED_BLOCK = 64      # threads per block at least, holding rows in shared memory (2 warps)


@dataclass(frozen=True)
class Layout:
    """Where a row's elements are: a "thread", a group of ``lanes`` of one warp ("lanes") or a "block" per
    row, each thread holding ``items`` of its elements in registers (0: read again in each phase), moved
    ``width`` at a time; each row split into ``splits`` parts of ``chunk`` elements. ``shared``: a thread per
    row holding its row in shared memory (``block`` rows of ``cols`` elements per block)."""
    rows: int
    cols: int
    kind: str
    block: int
    lanes: int          # threads combining a row's partial results: 1, a power of two up to 32, or block
    items: int
    splits: int = 1
    chunk: int = 0
    width: int = 1
    vectored: tuple[int, ...] = ()  # the accesses (``RowAccesses.accesses``) moved ``width`` elements at a time
    shared: bool = False

    @property
    def per_thread(self) -> bool:
        return self.kind == "thread"

    @property
    def grouped(self) -> bool:
        """A group of lanes of one warp per row (several rows per warp)."""
        return self.kind == "lanes"

    @property
    def row_threads(self) -> int:
        """Threads sharing a row held in registers."""
        return self.lanes if self.grouped else self.block

    @property
    def units(self) -> int:
        """Rows times their parts: what the grid strides over."""
        return self.rows * self.splits

    def with_vectors(self, width: int) -> Layout:
        """This layout moving ``width`` elements per access (a row held in registers, at least a vector per
        thread): each thread's elements are then whole vectors."""
        if width == 1 or not self.items or self.cols < self.row_threads * width:
            return self
        return replace(self, width=width, items=width * -(-self.cols // (self.row_threads * width)))


def held_items(most: int, wide: bool) -> int:
    """Elements a thread may hold in registers: ``most``, half as many where they are ``wide`` (8 bytes:
    two registers each; 16 float64 spilled 400 bytes of a softmax's row)."""
    return most // 2 if wide else most


def lanes_per_row(cols: int, wide: bool = False) -> int:
    """Lanes of one warp that reduce a row shorter than a block: a power of two, at most 32.

    Few, so that each lane holds up to MAX_LANE_ITEMS of the row (half as many where the row's values
    are ``wide``, 8 bytes: two registers each), its loads all in flight at once like a block's threads
    (one lane per 2 elements of a 64-element row kept 8 bytes loading per thread); but at least
    MIN_LANES where the row is that long (a warp's access then covers 16 bytes or more of each of its
    rows, one 16-byte vector per lane where rows allow)."""
    most = held_items(MAX_LANE_ITEMS, wide)
    lanes = 1
    while lanes < 32 and (lanes < min(cols, MIN_LANES) or -(-cols // lanes) > most):
        lanes *= 2
    return lanes


def row_layout(cols: int, wide: bool = False) -> tuple[int, int]:
    """(threads per block, row elements per thread held in registers); 0 elements: the row is re-read per phase.

    Small blocks first: several blocks per SM overlap one row's loads with another's block reductions.
    A thread holds up to MAX_ITEMS elements (``held_items``).
    """
    for block in CACHED_BLOCKS:
        items = -(-cols // block)
        if items <= held_items(MAX_ITEMS, wide):
            return block, max(items, 1)
    return BLOCK, 0


def row_splits(rows: int, cols: int) -> int:
    """Over how many blocks a reduction kernel splits each row: several for a few long rows (a full
    reduction of a large array: a block per row would leave the GPU idle), else 1."""
    return max(1, min(-(-cols // SPLIT_CHUNK), SPLIT_BLOCKS // max(rows, 1)))


def column_splits(rows: int, cols: int) -> int:
    """Over how many threads each row is split when rows lie side by side in memory (a reduction over
    leading axes, a thread per row): enough threads to keep the GPU's loads in flight (``x.sum(axis=0)``
    of a tall matrix has few columns), each with at least COLUMN_PART_MIN elements."""
    return max(1, min(-(-cols // COLUMN_PART_MIN), PER_THREAD_TARGET // max(rows, 1), COLUMN_SPLITS_MAX))


def shared_block(cols: int, held_bytes: int) -> int:
    """Threads per block when each holds a row of ``cols`` elements of ``held_bytes`` in shared memory: the most
    (a power of two, at most BLOCK) that fit SHARED_ROWS_BYTES, 0 where not MIN_SHARED_BLOCK do."""
    block = BLOCK if cols else 0
    while block >= MIN_SHARED_BLOCK:
        if block * cols * held_bytes <= SHARED_ROWS_BYTES:
            return block
        block //= 2
    return 0


def plan(rows: int, cols: int, *, side_by_side: bool, splittable: bool, wide: bool, reread_bytes: int = 0
         ) -> Layout:
    """The layout of ``rows`` rows of ``cols`` elements.

    ``side_by_side``: neighbouring rows lie closer in memory than a row's elements (a reduction over a
    leading axis): a thread per row, where there are enough rows (or parts of them) to fill the GPU.
    ``splittable``: nothing of the kernel reads a row's result back over its elements, so a row may be
    split. ``wide``: the row's elements take 8 bytes (two registers each held). ``reread_bytes``: bytes of a row
    element that later passes over the row read again (0: the kernel passes over its rows once).
    """
    thread_parts = column_splits(rows, cols) if side_by_side and splittable else 1
    if side_by_side and rows * thread_parts >= PER_THREAD_MIN_ROWS:
        held = shared_block(cols, reread_bytes) if reread_bytes and thread_parts == 1 else 0
        layout = Layout(rows, cols, "thread", held or BLOCK, 1, 0, thread_parts, shared=held > 0)
    elif cols < BLOCK and -(-cols // 32) <= held_items(MAX_LANE_ITEMS, wide):
        lanes = lanes_per_row(cols, wide)  # (32 lanes hold at most 32 * held_items(...): longer rows, a block)
        layout = Layout(rows, cols, "lanes", BLOCK, lanes, max(-(-cols // lanes), 1))
    else:
        block, items = row_layout(cols, wide)
        layout = Layout(rows, cols, "block", block, block, items,
                        row_splits(rows, cols) if splittable and not items else 1)
    chunk = -(-cols // layout.splits)
    return replace(layout, chunk=chunk, splits=-(-cols // chunk) if cols else 1)  # every part has elements


def block_holds(cols: int) -> bool:
    """Does a block hold a row of ``cols`` 4-byte elements in registers (reading it once for every phase)?"""
    return row_layout(cols)[1] > 0


def rows_are_split(shape: tuple[int, ...], axes: tuple[int, ...]) -> bool:
    """Whether the reduction kernel of a group reducing ``axes`` of ``shape`` splits each row over blocks or
    threads (its rows contiguous, 4-byte elements): then no element of the row can read the row's result in
    the same kernel. Few long rows are split over blocks; columns too long for a block to hold (a reduction
    over leading axes) and too few to fill the GPU with a thread each, over threads; a kernel holding a whole
    column in registers reads it once, so shorter ones stay whole (with the elements reading their result)."""
    cols = math.prod(shape[a] for a in axes)
    rows = math.prod(shape) // max(cols, 1)
    leading = axes == tuple(range(len(axes))) and len(axes) < len(shape)
    return plan(rows, cols, side_by_side=leading, splittable=True, wide=False).splits > 1 and not block_holds(cols)


# ----------------------------------------------------------------------------- how a group reads its operands


def broadcast_strides(t: TensorType, shape: tuple[int, ...]) -> list[int]:
    """Strides of ``t`` read over ``shape`` (NumPy broadcasting): 0 on broadcast and size-1 dims."""
    lead = len(shape) - t.ndim
    strides = [0] * lead
    for n, m, st in zip(t.shape, shape[lead:], t.strides):
        strides.append(0 if n == 1 else st)
    return strides


def collapse_dims(shape: Sequence[int], strides: Sequence[Sequence[int]]) -> tuple[list[int], list[list[int]]]:
    """Merge adjacent dims that are contiguous for every operand; drop size-1 dims."""
    keep = [d for d, n in enumerate(shape) if n != 1]
    dims = [shape[d] for d in keep]
    strs = [[s[d] for d in keep] for s in strides]
    j = len(dims) - 1
    while j > 0:
        if all(s[j - 1] == s[j] * dims[j] for s in strs):
            dims[j - 1] *= dims[j]
            for s in strs:
                s[j - 1] = s[j]
                del s[j]
            del dims[j]
        j -= 1
    return dims, strs


def gathers_of(sub: Graph) -> list[Node]:
    return [n for n in sub.nodes if ops.is_element_load(n.kind)]


def loaded_type(node: Node) -> TensorType:
    """The type a gather's consumers read it through: its result, contiguous."""
    t = node.output.type
    return t.with_(strides=contiguous_strides(t.shape))


def read_directly(sub: Graph) -> list:
    """The group's inputs that some node other than a gather reads (those a gather reads it reads itself)."""
    return [v for v in sub.inputs if any(not ops.is_element_load(u.kind) for u in v.users)]


def accumulator_dtype(node: Node) -> np.dtype:
    """The dtype a reduction accumulates in (its row's rule)."""
    return ops.reduction_of(node).accumulator(node.inputs[0].type.dtype, node.output.type.dtype)


@dataclass
class ElementAccesses:
    """What each element of an elementwise group reads: its operands (inputs read directly, then gathers'
    results, read as contiguous arrays) with their strides over the group's shape, dims merged where every
    operand and output is contiguous across them."""
    operands: list[Value]
    in_types: list[TensorType]
    out_types: list[TensorType]
    dims: list[int]
    in_strides: list[list[int]]
    out_strides: list[list[int]]

    def kind(self, k: int) -> str:
        """How operand ``k`` is read: "scalar" (one value for all), "contiguous" (at ``i``) or "strided"."""
        if all(s == 0 for s in self.in_strides[k]):
            return "scalar"
        return "contiguous" if tuple(self.in_strides[k]) == contiguous_strides(self.dims) else "strided"

    def output_contiguous(self, k: int) -> bool:
        """Is output ``k`` written at ``i`` (else at its strides: a slice of a joined array)?"""
        return tuple(self.out_strides[k]) == contiguous_strides(self.dims)


def element_accesses(group: Node) -> ElementAccesses:
    sub = group.subgraph
    shape = sub.outputs[0].type.shape
    gathers = gathers_of(sub)
    operands: list[Value] = read_directly(sub) + [g.output for g in gathers]
    in_types = [v.type for v in read_directly(sub)] + [loaded_type(g) for g in gathers]
    out_types = [v.type for v in sub.outputs]
    raw = [broadcast_strides(t, shape) for t in in_types]
    # an output is written at its group value's strides: a slice of a joined array (passes/joins.py), or contiguous
    out_strides = [list(v.type.strides) for v in group.outputs]
    dims, collapsed = collapse_dims(shape, raw + out_strides)
    return ElementAccesses(operands, in_types, out_types, dims, collapsed[:len(in_types)], collapsed[len(in_types):])


@dataclass
class Access:
    """How one operand of a reduction group is indexed: strides over F's kept and reduced axes (before
    collapsing)."""
    pointer: str
    dtype: np.dtype
    kept: list[int]
    reduced: list[int] | None  # None: row-level (constant along the row)
    gather: Node | None = None  # a gather's result, read as if it were a contiguous array


@dataclass
class RowAccesses:
    """How a reduction group reads and writes: its space F (``shape``) and reduced ``axes``, each value's level
    ("input", "const", "elem": one per row element, "row": one per row), one access per distinct operand
    read (and per element-level output), their strides over the kept and the reduced dims (each collapsed).
    ``totals``: reductions of every row's value (the mean of per-row losses), finished by the launch's last
    block; ``reductions`` are the others, over each row."""
    reductions: list[Node]
    totals: list[Node]
    shape: tuple[int, ...]
    axes: tuple[int, ...]
    rows: int
    cols: int
    level: dict[Value, str]
    accesses: list[Access]
    access_of: dict[tuple[Node, int], int]       # (node, input position) -> access
    outputs: list[tuple[int, Value, bool, int | None]]  # (output index, value, element-level?, access)
    kdims: list[int]
    kstrides: list[list[int]]
    rdims: list[int]
    rstrides: dict[int, list[int]]  # element-level accesses only

    @property
    def elem_accesses(self) -> list[int]:
        return [i for i, a in enumerate(self.accesses) if a.reduced is not None]

    @property
    def along_rows(self) -> list[int]:
        """The operands read that differ between rows and along them (not a batch norm's per-column weight)."""
        return [a for a in self.elem_accesses if any(self.accesses[a].kept) and any(self.rstrides[a])
                and not self.accesses[a].pointer.startswith("out")]


def _embed_strides(t: TensorType, shape: tuple[int, ...], full: tuple[int, ...], axes: tuple[int, ...]) -> list[int]:
    """Strides over the space ``full`` of ``t`` read by a node of ``shape`` (``full`` itself, or one of the
    reduced shapes)."""
    strides = broadcast_strides(t, shape)
    if len(shape) == len(full):
        return strides
    it = iter(strides)  # the dropped-dims form: reduced axes are missing
    return [0 if d in axes else next(it) for d in range(len(full))]


def row_accesses(sub: Graph) -> RowAccesses:
    from .fuse import own_space, reduces_row_values  # fusion asks this module whether rows are split
    reductions = [n for n in sub.nodes if ops.is_reduction(n.kind)]
    space = own_space(max(reductions, key=lambda n: n.inputs[0].type.size))  # the rows' (a total reads fewer)
    totals = [n for n in reductions if reduces_row_values(n, space)]  # of every row's value: finished last
    reductions = [n for n in reductions if n not in totals]
    F, axes = space.shape, space.axes
    kept_axes = [d for d in range(len(F)) if d not in axes]
    kept_shape, red_shape = [F[d] for d in kept_axes], [F[d] for d in axes]

    def element_level(node: Node) -> bool:
        return node not in reductions and node.output.type.shape == F

    level = {}
    for v in sub.inputs:
        level[v] = "input"
    for node in sub.nodes:
        if node.kind == "prim::Constant":
            level[node.output] = "const"
        elif ops.is_element_load(node.kind):
            level[node.output] = "input"  # loaded where read, like an input
        elif node in totals:
            level[node.output] = "total"
        else:
            level[node.output] = "elem" if element_level(node) else "row"

    # (input, strides over F, element-level?) -> one load each
    accesses: list[Access] = []
    access_of: dict[tuple[Node, int], int] = {}
    keys: dict[tuple, int] = {}
    for node in sub.nodes:
        if ops.is_element_load(node.kind):
            continue  # its inputs are read where its result is
        for position, v in enumerate(node.inputs):
            if level[v] != "input":
                continue
            gather = v.producer if v.producer is not None and ops.is_element_load(v.producer.kind) else None
            t = loaded_type(gather) if gather else v.type
            elem = node in reductions or element_level(node)
            full = _embed_strides(t, F if elem else node.output.type.shape, F, axes)
            key = (v, tuple(full), elem)
            if key not in keys:
                keys[key] = len(accesses)
                pointer = f"g{sub.nodes.index(gather)}" if gather else f"in{sub.inputs.index(v)}"
                accesses.append(Access(pointer, v.type.dtype, [full[d] for d in kept_axes],
                                       [full[d] for d in axes] if elem else None, gather))
            access_of[(node, position)] = keys[key]
    outputs: list[tuple[int, Value, bool, int | None]] = []
    for k, v in enumerate(sub.outputs):
        if level[v] == "total":
            continue  # written by the last block
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
    return RowAccesses(reductions, totals, F, axes, int(np.prod(kept_shape, dtype=np.int64)),
                       int(np.prod(red_shape, dtype=np.int64)), level, accesses, access_of, outputs,
                       kdims, kstrides, rdims, dict(zip(elem_accesses, rstrides_list)))


# ----------------------------------------------------------------------------- each group's layout, decided once


@dataclass(frozen=True)
class ElementwiseLayout:
    """A thread per element in ``block``-thread blocks; contiguous operands (``vectored``: indices into
    ``ElementAccesses.operands``) and the contiguous outputs (``vectored_outputs``) move ``width`` elements per
    access, each thread loading ``vectors_per_thread`` vectors before computing."""
    block: int
    width: int
    vectors_per_thread: int
    vectored: tuple[int, ...] = ()
    vectored_outputs: tuple[int, ...] = ()


GroupLayout = Layout | ElementwiseLayout


def elementwise_layout(reads: ElementAccesses, directly: Sequence[Value]) -> ElementwiseLayout:
    """Vectors as wide as the widest contiguous operand or output allows (16 bytes), and enough of them per
    thread to have BYTES_IN_FLIGHT loading. ``directly``: the operands read from a pointer (not gathered)."""
    kinds = [reads.kind(k) for k in range(len(reads.operands))]
    vectored = [k for k, kind in enumerate(kinds) if kind == "contiguous" and reads.operands[k] in directly]
    widest = max([reads.in_types[k].dtype.itemsize for k in vectored] + [t.dtype.itemsize for t in reads.out_types])
    width = max(1, min(VECTOR_BYTES // widest, MAX_VECTOR_WIDTH))
    # bytes one vector step loads: every operand that is not one value for all (strided ones element by element)
    loaded = sum(width * reads.in_types[k].dtype.itemsize for k, kind in enumerate(kinds) if kind != "scalar")
    vectors_per_thread = max(1, min(-(-BYTES_IN_FLIGHT // loaded), MAX_VECTORS_PER_THREAD)) if vectored else 1
    vectored_outputs = tuple(k for k in range(len(reads.out_types)) if reads.output_contiguous(k))
    return ElementwiseLayout(ELEMENTWISE_BLOCK, width, vectors_per_thread, tuple(vectored), vectored_outputs)


def _rows_side_by_side(kept: list[int], reduced: list[int]) -> bool:
    """Whether neighbouring rows of an operand lie closer together in memory than a row's elements do (a
    reduction over a leading axis, ``x.sum(axis=0)``): then a thread per row reads coalesced."""
    if not kept or kept[-1] == 0:
        return False
    inner = min((abs(r) for r in reduced if r), default=None)
    return abs(kept[-1]) == 1 or (inner is not None and abs(kept[-1]) < inner)


def _depends_on_reduction(values: list[Value], reductions: list[Node]) -> bool:
    """Does one of ``values`` depend on a reduction's result (softmax's sum on its max, its ``e / sum``)?"""
    seen: set[Node] = set()
    stack = [v.producer for v in values if v.producer is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        if node in reductions:
            return True
        seen.add(node)
        stack += [v.producer for v in node.inputs if v.producer is not None]
    return False


def reduction_layout(reads: RowAccesses) -> Layout:
    """``plan`` for the group's rows, then the accesses that move as vectors.

    A row may be split over several blocks or threads (which write partial results; the last of a row to
    finish, by a ticket counter, combines them and writes the row's outputs) only where nothing reads a
    row's result back over its elements (fusion ends such groups at their reductions where it splits rows)
    and no reduction reads another's; a var/std's parts merge by Chan's formula, in float. A row held in
    registers by a block or a group of lanes moves ``width`` elements per access (128-bit loads and stores
    of float32) for operands contiguous along the row whose rows start on a vector boundary."""
    reductions, accesses, rstrides, kstrides = reads.reductions, reads.accesses, reads.rstrides, reads.kstrides
    elem_accesses = reads.elem_accesses
    splittable = not _depends_on_reduction([v for _, v, elem, _ in reads.outputs if elem], reductions) \
        and all(not ops.reduction_of(n).two_pass or accumulator_dtype(n).kind == "f" for n in reductions) \
        and not _depends_on_reduction([v for n in reductions for v in n.inputs], reductions) and not reads.totals
    side_by_side = all(_rows_side_by_side(kstrides[a], rstrides[a])
                       for a in elem_accesses if not accesses[a].pointer.startswith("out"))
    wide = any(accesses[a].dtype.itemsize == 8 for a in elem_accesses)  # two registers per element held
    # bytes of a row element read again by later passes over the row (each reduction's, the epilogue's): of the
    # operands that differ between rows and along them (a batch norm's weight is one value per row); float16
    # is held as float
    passes = sum(2 if ops.reduction_of(n).two_pass else 1 for n in reductions) + any(
        elem for _, _, elem, _ in reads.outputs)
    reread = sum(4 if accesses[a].dtype == np.float16 else accesses[a].dtype.itemsize for a in reads.along_rows) \
        if passes > 1 else 0
    layout = plan(reads.rows, reads.cols, side_by_side=side_by_side, splittable=splittable, wide=wide,
                  reread_bytes=reread)
    vectored = [a for a in elem_accesses if accesses[a].dtype.itemsize in (4, 8) and rstrides[a] == [1]
                and accesses[a].gather is None
                and (any(accesses[a].kept) or accesses[a].pointer.startswith("out"))] if layout.items else []
    width = min(4, VECTOR_BYTES // max(accesses[a].dtype.itemsize for a in vectored)) if vectored else 1
    vectored = [a for a in vectored if all(s % width == 0 for s in kstrides[a])]
    layout = layout.with_vectors(width) if vectored else layout
    return replace(layout, vectored=tuple(vectored)) if layout.width > 1 else layout


def group_layout(group: Node) -> GroupLayout:
    """The layout of fusion group ``group``: the one place it is decided (the renderers read it)."""
    sub = group.subgraph
    if any(ops.is_reduction(n.kind) for n in sub.nodes):
        return reduction_layout(row_accesses(sub))
    return elementwise_layout(element_accesses(group), read_directly(sub))


def lay_out(graph: Graph) -> dict[Node, GroupLayout]:
    """Every fusion group's layout, in launch order."""
    return {node: group_layout(node) for node in graph.find_nodes("gt::FusionGroup")}
