"""Joins written in place: the kernels (and matmuls) that compute the pieces of an ``np.stack`` /
``np.concatenate`` write straight into their slice of the joined array, as Inductor fuses ``cat``.

``place_pieces`` decides, once, after fusion: a piece qualifies when its writer is an elementwise fusion group
or a matmul of the join's dtype, and only the join reads it (through ``expand_dims``, as ``np.stack`` is
normalised). Its type then takes the strides of its slice, so the kernel is rendered for them, and the join
node records which pieces are in place (``node.meta[PLACED]``); the executors allocate the joined array
before its first writer and hand each writer its slice. The other pieces (inputs, reduction results, a piece
the function also returns, which must not share the joined array's memory) are copied in by the join.
"""
from __future__ import annotations

from typing import NamedTuple

from .. import ops
from ..ir import Graph, Node, TensorType, Value, contiguous_strides
from .fuse import JOINS

PLACED = "pieces_in_place"  # join.meta: for each input of the join, whether its writer writes it in place


class Placement(NamedTuple):
    """Where a writer's output lies: ``joined[index]`` of the join ``join``."""
    join: Node
    index: tuple


def place_pieces(graph: Graph) -> tuple[Graph, bool]:
    """Let the writers of joins' pieces write into the joined arrays (see the module docstring)."""
    changed = False
    for join in [n for n in graph.nodes if n.kind in JOINS and isinstance(n.output.type, TensorType)]:
        placed = []
        for k, piece in enumerate(join.inputs):
            found = _writer(graph, join, k)
            if found is not None:
                writer, index = found
                _retype(writer, join.output.type, index)
            placed.append(found is not None)
        if any(placed):
            join.meta[PLACED] = tuple(placed)
            changed = True
    return graph, changed


def placements(graph: Graph) -> dict[Value, Placement]:
    """The values written in place into joined arrays, and where (read by the executors)."""
    found: dict[Value, Placement] = {}
    for join in graph.nodes:
        for k, placed in enumerate(join.meta.get(PLACED, ())):
            if placed:
                writer, index = _writer_of(join, k)
                found[writer] = Placement(join, index)
    return found


def copied_pieces(join: Node) -> list[int] | None:
    """The positions of ``join``'s pieces it copies into the joined array, or None: no piece is in place (the
    join makes the array itself)."""
    placed = join.meta.get(PLACED)
    return None if placed is None else [k for k, p in enumerate(placed) if not p]


def piece_index(join: Node, k: int) -> tuple:
    """The basic index of piece ``k`` in the joined array (a piece of a stack has no axis there)."""
    axis = join.attrs["axis"] % join.output.type.ndim
    if join.kind == "np::stack":
        return (slice(None),) * axis + (k,)
    start = sum(v.type.shape[axis] for v in join.inputs[:k])
    return (slice(None),) * axis + (slice(start, start + join.inputs[k].type.shape[axis]),)


def _writer_of(join: Node, k: int) -> tuple[Value, tuple]:
    """The value that lies at piece ``k`` of ``join`` and its index there: the piece, or what a new axis of
    the normalised ``np.stack`` (a concatenation of ``expand_dims``) is added to."""
    piece, index = join.inputs[k], piece_index(join, k)
    if _adds_join_axis(join, piece):
        axis = join.attrs["axis"] % join.output.type.ndim
        return piece.producer.inputs[0], index[:axis] + (index[axis].start,)
    return piece, index


def _adds_join_axis(join: Node, piece: Value) -> bool:
    producer = piece.producer
    return join.kind == "np::concatenate" and producer is not None and producer.kind == "np::expand_dims" \
        and tuple(a % join.output.type.ndim for a in producer.attrs["axis"]) == (join.attrs["axis"] % join.output.type.ndim,)


def _writer(graph: Graph, join: Node, k: int) -> tuple[Value, tuple] | None:
    """Piece ``k``'s writer and index when it can write in place, else None."""
    piece = join.inputs[k]
    if join.inputs.index(piece) != k:  # a piece joined twice is written once, and copied
        return None
    writer, index = _writer_of(join, k)
    readers = [piece] + ([writer] if writer is not piece else [])
    if any(v in graph.outputs for v in readers) or piece.users != [join] \
            or (writer is not piece and writer.users != [piece.producer]):
        return None
    t = writer.type
    if not isinstance(t, TensorType) or t.dtype != join.output.type.dtype or writer.producer is None \
            or not _writes_through_strides(writer.producer):
        return None
    return writer, index


def _writes_through_strides(node: Node) -> bool:
    """Can ``node`` write its output at any strides? An elementwise kernel (a reduction's renders contiguous
    rows) and a matmul (the array library's ``out=``) can."""
    if node.kind == "np::matmul":
        return True
    return node.kind == "gt::FusionGroup" and not any(ops.is_reduction(n.kind) for n in node.subgraph.nodes)


def _retype(writer: Value, joined: TensorType, index: tuple) -> None:
    """Give ``writer`` (and the new axis a stack adds to it) the strides of its slice of the joined array."""
    strides = contiguous_strides(joined.shape)
    kept = [s for s, item in zip(strides, index + (slice(None),) * (joined.ndim - len(index)))
            if not isinstance(item, int)]
    writer.type = writer.type.with_(strides=tuple(kept))
    for user in writer.users:  # the expand_dims of a normalised stack
        if user.kind == "np::expand_dims":
            user.output.type, = ops.infer_types(user.kind, [writer.type], user.attrs)
