"""How a reduction group's rows map onto blocks, warps and threads: decided here, read by fusion and codegen.

A row is one index over the kept axes; its elements are the reduced axes. Four layouts, chosen from the sizes:
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
