"""Fusion: group connected elementwise nodes and reductions into ``gt::FusionGroup`` nodes.

Each group becomes one kernel. A group has an iteration space: a full shape
and, once a reduction joins, the axes it reduces. Elementwise nodes of the
full shape are computed per element (prologues feeding the reductions and
epilogues that read the reduced values back); nodes of the reduced shape are
computed once per row. Inputs of other shapes are read through broadcast
strides. Views (transpose, slicing, broadcast, expand_dims) stay
outside as free metadata operations: the kernel reads their result through
its strides, so nothing is copied. A gather is a load: the kernel that reads it
reads the index arrays and then the source (each reader has a gather of its
own, read at the reader's shape). A node joins (and may merge) the groups
of its producers only if the group graph stays acyclic. An intermediate
used outside its group, or returned, becomes an output of the group, written
by the same kernel. Where a few long rows are reduced (a full reduction of a
large array), the kernel splits each row over blocks; an element that reads
its row's result then starts the next group (``Space.rows_are_split``), and
the element values it needs from the split group are computed again there
when that reads fewer bytes than writing them and reading them back
(``recompute_across_split_rows``).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from .. import ops
from ..ir import Graph, Node, TensorType, Value
from . import layout
from .dce import dce
from .rewrite import emit, replace_node
from .specialize import specialize

log = logging.getLogger("gputrace.fusion")

MAX_RECOMPUTED = 16   # elementwise nodes a later kernel computes again rather than read their value


@dataclass(frozen=True)
class Space:
    """A group's iteration space: the full shape, and the axes its reductions reduce (None: none)."""
    shape: tuple[int, ...]
    axes: tuple[int, ...] | None = None

    def row_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shapes of per-row values: the reduced shape, with and without keepdims."""
        if self.axes is None:
            return ()
        return (ops.reduced_shape(self.shape, self.axes, True), ops.reduced_shape(self.shape, self.axes, False))

    def rows_are_split(self) -> bool:
        """Whether the reduction kernel splits each row over blocks or threads (the layout decides): then no
        element of the row can read the row's result in the same kernel (only the row's last block or
        thread to finish knows it)."""
        return self.axes is not None and layout.rows_are_split(self.shape, self.axes)


def per_element(kind: str) -> bool:
    """Is the op computed element by element, in its result's shape: elementwise, or a load (a gather)?"""
    return ops.is_elementwise(kind) or ops.is_element_load(kind)


def group_space(group: list[Node]) -> Space:
    """The space of a group of fusible nodes: its reductions', else its elementwise nodes' shape."""
    return own_space(next((n for n in group if not per_element(n.kind)), group[0]))


def _dtype_ok(t) -> bool:
    return isinstance(t, TensorType) and t.dtype.kind in "biuf"


def reduction_axes(node: Node) -> tuple[int, ...]:
    axes = node.attrs.get("axis")
    return tuple(range(node.inputs[0].type.ndim)) if axes is None else tuple(axes)


def fusible(node: Node) -> bool:
    if len(node.outputs) != 1 or not _dtype_ok(node.output.type):
        return False
    if ops.is_elementwise(node.kind):
        return True
    if ops.is_element_load(node.kind):  # read in the kernel of its consumers, from the source's memory
        return _dtype_ok(node.inputs[0].type)
    return ops.is_reduction(node.kind) and _dtype_ok(node.inputs[0].type)


def own_space(node: Node) -> Space:
    if per_element(node.kind):
        return Space(node.output.type.shape)
    return Space(node.inputs[0].type.shape, reduction_axes(node))


def join(node: Node, space: Space) -> Space | None:
    """The space of ``space``'s group with ``node`` added, or None if it cannot join."""
    if per_element(node.kind):
        shape = node.output.type.shape
        return space if shape == space.shape or shape in space.row_shapes() else None
    mine = own_space(node)
    if mine.shape == space.shape and space.axes in (None, mine.axes):
        return mine
    return space if reduces_row_values(node, space) else None


def reduces_row_values(node: Node, space: Space) -> bool:
    """Is ``node`` a reduction of all the per-row values of ``space`` (the mean of per-row losses), which the
    row kernel finishes itself, saving a launch: each block combines its rows' values and the last block to
    finish combines the blocks' (as a split row's last part does)? Not var/std or argmax/argmin (their parts
    merge otherwise), nor where rows are split (only a row's last part knows its value) or have one element
    (per-row values would have the elements' shape)."""
    if per_element(node.kind) or space.axes is None or not ops.is_reduction(node.kind):
        return False
    row = ops.reduction_of(node)
    t = node.inputs[0].type
    cols = math.prod(space.shape[a] for a in space.axes)
    return t.shape in space.row_shapes() and len(reduction_axes(node)) == t.ndim and t.ndim > 0 \
        and not row.two_pass and not row.index and cols > 1 and t.size > 0 and not space.rows_are_split()


def merge(a: Space, b: Space) -> Space | None:
    if a.shape != b.shape or (a.axes is not None and b.axes is not None and a.axes != b.axes):
        return None
    return Space(a.shape, a.axes if a.axes is not None else b.axes)


def _reaches(start: set[int], target: set[int], succ: dict[int, set[int]]) -> bool:
    stack, seen = list(start), set(start)
    while stack:
        g = stack.pop()
        if g in target:
            return True
        for nxt in succ.get(g, ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


class _Partition:
    """Groups being formed: each node's group, each group's members, each fusible group's space."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.group_of: dict[Node, int] = {}
        self.members: dict[int, list[Node]] = {}
        self.spaces: dict[int, Space] = {}

    def add(self, index: int, node: Node) -> None:
        self.group_of[node] = index
        self.members[index] = [node]
        if fusible(node):
            self.spaces[index] = own_space(node)

    def successors(self, nodes: list[Node]) -> dict[int, set[int]]:
        """Group-level edges among ``nodes``, to refuse merges that would create a cycle."""
        succ: dict[int, set[int]] = {}
        for node in nodes:
            for v in node.inputs:
                if v.producer is not None and self.group_of[v.producer] != self.group_of[node]:
                    succ.setdefault(self.group_of[v.producer], set()).add(self.group_of[node])
        return succ

    def absorb(self, groups: set[int], space: Space) -> None:
        """Merge ``groups`` into the lowest-numbered one, whose space becomes ``space``."""
        target = min(groups)
        self.spaces[target] = space
        for g in groups - {target}:
            self.spaces.pop(g, None)
            for member in self.members.pop(g):
                self.group_of[member] = target
                self.members[target].append(member)

    def join_producers(self, index: int, node: Node) -> None:
        """Put ``node`` into the groups of its producers it can join, merging them."""
        candidates = {self.group_of[v.producer] for v in node.inputs
                      if v.producer is not None and self.group_of[v.producer] in self.spaces}
        if not candidates:
            return
        succ = self.successors(self.graph.nodes[:index])
        merged: set[int] = set()
        space: Space | None = None
        # a gather that only this node reads comes last: read in its kernel at any shape, it leaves the space as is
        for g in sorted(candidates, key=lambda g: (self.load_for(g, node), -len(self.members[g]))):
            if self.load_for(g, node):
                trial_space = self.spaces[index] if space is None else space
            else:
                trial_space = self.spaces[g] if space is None else merge(space, self.spaces[g])
                trial_space = trial_space and join(node, trial_space)
            if trial_space is None or self.reads_split_row_result(node, merged | {g}, trial_space) \
                    or self.reads_another_rows_value(node, merged | {g}, trial_space) \
                    or self.reads_total(node, merged | {g}, trial_space):
                continue
            trial = merged | {g}
            if self.gathers_computed_inputs(trial | {index}, node):
                continue
            # a path that leaves the merged groups and comes back (to them or to this node) is a cycle
            exits = {s for t in trial for s in succ.get(t, ()) if s not in trial}
            feeders = {self.group_of[v.producer] for v in node.inputs if v.producer is not None} - trial
            if _reaches(exits, trial | feeders, succ):
                continue
            merged, space = trial, trial_space
        if merged:
            self.absorb(merged | {index}, space)

    def load_for(self, group: int, node: Node) -> bool:
        """Is ``group`` a gather alone that only ``node`` reads (``split_shared_gathers`` makes each one so)?"""
        members = self.members[group]
        return len(members) == 1 and ops.is_element_load(members[0].kind) \
            and set(members[0].output.users) == {node} and members[0].output not in self.graph.outputs

    def gathers_computed_inputs(self, groups: set[int], node: Node | None = None) -> bool:
        """Would a gather of ``groups`` (with ``node``) read a value its own kernel computes? A gather reads its
        source and index arrays from memory, anywhere in them: they come from other kernels."""
        members = {n for g in groups for n in self.members.get(g, ())} | ({node} if node is not None else set())
        return any(v.producer in members for n in members if ops.is_element_load(n.kind) for v in n.inputs)

    def row_values_read(self, node: Node, groups: set[int], space: Space) -> list[tuple[int, ...]]:
        """The shapes of the per-row values of ``groups`` (their reductions' results and what is computed from
        them) that the elements of ``groups`` with ``node`` added would read."""
        members = [node] + [n for g in groups for n in self.members[g]]
        inside = set(members)
        return [v.type.shape for n in members if ops.is_elementwise(n.kind) and n.output.type.shape == space.shape
                for v in n.inputs if v.producer in inside and v.type.shape != space.shape
                and not ops.is_element_load(v.producer.kind)]  # (a gather is read at any shape)

    def reads_split_row_result(self, node: Node, groups: set[int], space: Space) -> bool:
        """Would ``node`` joining ``groups`` put an element that reads its row's result (``x / x.sum()``) in a
        group whose rows are split over blocks? Such an element starts a kernel of its own, which reads the
        result from memory: only the last block of a split row knows it."""
        return space.rows_are_split() and bool(self.row_values_read(node, groups, space))

    def reads_total(self, node: Node, groups: set[int], space: Space) -> bool:
        """Would ``node`` read a reduction of all the rows' values of ``groups`` (``reduces_row_values``)? Only
        the kernel's last block knows it, after every row."""
        members = {n for g in groups for n in self.members[g]}
        return any(v.producer in members and reduces_row_values(v.producer, space) for v in node.inputs)

    def reads_another_rows_value(self, node: Node, groups: set[int], space: Space) -> bool:
        """Would ``node`` joining ``groups`` put an element reading a per-row value of the group that NumPy's
        broadcasting lines up with other axes in one kernel? ``x + x.sum(axis=1)`` for a square ``x`` adds
        row j's sum to column j: a row kernel knows only its own row's values. A per-row value lines up with
        the rows only in the keepdims form (the dropped form too where the reduced axes lead:
        ``x - x.mean(axis=0)``)."""
        if space.axes is None:
            return False
        keepdims = space.row_shapes()[0]
        return any((1,) * (len(space.shape) - len(shape)) + shape != keepdims
                   for shape in self.row_values_read(node, groups, space))

    def join_row_view(self, index: int, node: Node) -> None:
        """Put a view of a per-row value (``m[:, 0]`` of a keepdims max) into the group that computes the value,
        when it is the same values in another row shape: an alias in the kernel, not the end of it."""
        producer = node.inputs[0].producer if node.inputs and is_row_view(node) else None
        group = self.group_of.get(producer) if producer is not None else None
        space = self.spaces.get(group) if group is not None else None
        if space is None or space.axes is None or ops.is_element_load(producer.kind):
            return
        rows = space.row_shapes()
        shape = node.output.type.shape
        if node.inputs[0].type.shape in rows and shape in rows and shape != space.shape:
            self.group_of[node] = group
            self.members[group] += self.members.pop(index)

    def join_siblings(self) -> None:
        """Merge groups of one space that do not depend on each other and read a common array (one kernel reads
        it once: ``x.sum(0), x.max(0)``; independent outputs computed from the same inputs), reduce the same
        rows (one launch: ``logsumexp(logits)`` and ``(logits2 * onehot).sum(-1)``) or compute pieces of one
        join (one launch)."""
        readers: dict[Value | Space, list[Node]] = {}
        for node in self.graph.nodes:
            if self.group_of[node] not in self.spaces:
                continue
            for v in node.inputs:
                if isinstance(v.type, TensorType) and (v.producer is None or v.producer.kind != "prim::Constant"):
                    readers.setdefault(v, []).append(node)
            if not per_element(node.kind):  # a reduction: rows of its space
                readers.setdefault(own_space(node), []).append(node)
            for user in node.output.users:  # pieces of one join, written by one kernel
                if user.kind in JOINS:
                    readers.setdefault(user.output, []).append(node)
        succ = self.successors(self.graph.nodes)
        for nodes in readers.values():
            for i, node in enumerate(nodes):
                for earlier in nodes[:i]:  # the first earlier reader's group of the same space it can join
                    a, b = self.group_of[earlier], self.group_of[node]
                    if a == b:
                        break
                    if self.spaces[a] != self.spaces[b]:
                        continue
                    if _reaches(succ.get(a, set()), {b}, succ) or _reaches(succ.get(b, set()), {a}, succ) \
                            or self.gathers_computed_inputs({a, b}):
                        continue
                    self.absorb({a, b}, self.spaces[a])
                    succ = self.successors(self.graph.nodes)
                    break

    def groups(self) -> list[list[Node]]:
        order = {node: i for i, node in enumerate(self.graph.nodes)}
        return [sorted(m, key=order.get) for _, m in sorted(self.members.items(), key=lambda kv: order[kv[1][0]])]


def partition(graph: Graph) -> list[list[Node]]:
    """Groups of nodes, in graph order; a node alone in its group is returned too."""
    parts = _Partition(graph)
    for index, node in enumerate(graph.nodes):
        parts.add(index, node)
        if fusible(node) and not ops.is_element_load(node.kind):  # a gather reads memory: its inputs are not computed in its kernel
            parts.join_producers(index, node)
        else:
            parts.join_row_view(index, node)
    parts.join_siblings()
    return parts.groups()


def is_row_view(node: Node) -> bool:
    """Is ``node`` a view that keeps its input's elements in their order, adding or dropping axes of length 1
    (``m[:, 0]`` of an (n, 1) array, squeeze, expand_dims, a reshape to (n,))?"""
    if node.kind not in ("np::getitem", "np::squeeze", "np::expand_dims", "np::reshape") or len(node.inputs) != 1 \
            or not _dtype_ok(node.output.type) or not isinstance(node.inputs[0].type, TensorType):
        return False
    before, after = node.inputs[0].type.shape, node.output.type.shape
    if [n for n in before if n != 1] != [n for n in after if n != 1]:
        return False
    if node.kind != "np::getitem":
        return True
    items = _index_items(node.attrs["index"], before)  # the order stays where each slice takes its whole axis
    return all(item is None or isinstance(item, (int, np.integer))
               or isinstance(item, slice) and item.indices(n) == (0, n, 1) for item, n in items)


def _index_items(index: tuple, shape: tuple[int, ...]) -> list[tuple]:
    """Each item of a basic index with the length of the axis it indexes (None: a new axis, of length 1)."""
    items, axes = [], iter(shape)
    for item in ops.expand_index(index, len(shape)):
        items.append((item, 1 if item is None else next(axes)))
    return items


# views that select or reorder elements (reshape may need a copy, so it stays put)
HOISTABLE_VIEWS = ("np::getitem", "np::transpose", "np::swapaxes", "np::T", "np::expand_dims", "np::squeeze")


def hoist_views(graph: Graph) -> tuple[Graph, bool]:
    """Apply views before an elementwise op that only views read: ``f(a, b)[s]`` becomes ``f(a[s], b[s])``
    (gathers too: ``(x * 2)[idx]`` computes only the elements it selects, in the kernel that reads them).

    The slices of one computed array (an LSTM's gates) then fuse with the ops that read them, and the
    array is never written: each slice is computed from its inputs read through the view's strides. A gather
    of fewer elements than the array moves up even where others read the array (``log_probs[range(n), y]``:
    the n picked elements are computed again, rather than the whole array written for them).
    Slices of one array that something other than a fusible op reads (heads split from q, k and v for
    their matmuls) stay below it: moved up, each would be computed by a kernel of its own.
    """
    changed = False
    while _hoist_once(graph):
        changed = True
        dce(graph)  # the producers left without users; their inputs may now be read by views only
    if changed:
        retype_views(graph)  # views after the hoisted ones: new strides
    return graph, changed


def retype_views(graph: Graph) -> None:
    """Infer every type again after a rewrite that gave views inputs of other strides."""
    params = {n.attrs["name"]: n.output.type for n in graph.nodes if n.kind == "prim::Param"}
    specialize(graph, [v.type for v in graph.inputs], params)


def _selects(node: Node) -> bool:
    """Does ``node`` select elements of its first input (a view, or a gather that reads no index from it)?"""
    return node.kind in HOISTABLE_VIEWS or ops.is_element_load(node.kind) and node.inputs[0] not in node.inputs[1:]


def _hoist_once(graph: Graph) -> bool:
    hoisted = False
    for view in list(graph.nodes):
        producer = view.inputs[0].producer if _selects(view) else None
        if producer is None or not ops.is_elementwise(producer.kind) or not fusible(producer):
            continue
        computed = producer.output
        if not _picks_few(graph, view, computed):
            if computed in graph.outputs or any(not _selects(u) or computed in u.inputs[1:] for u in computed.users):
                continue
            if len(computed.users) > 1 and not all(reader is not None and fusible(reader)
                                                   for reader in _readers_through_views(graph, computed)):
                continue  # pieces read by a matmul (heads split from q, k, v) would be computed by a kernel each
        shape = computed.type.shape  # 0-d operands broadcast as they are where another one has the shape
        whole = bool(shape) and any(isinstance(v.type, TensorType) and v.type.shape == shape for v in producer.inputs)
        inputs = [v if whole and isinstance(v.type, TensorType) and v.type.ndim == 0 else
                  _view_of(graph, view, v, shape) for v in producer.inputs]
        moved = emit(graph, view, producer.kind, inputs, producer.attrs).output
        assert moved.type.shape == view.output.type.shape, (view, moved.type)
        replace_node(graph, view, [moved])
        hoisted = True
    return hoisted


def _picks_few(graph: Graph, view: Node, computed: Value) -> bool:
    """Is ``view`` a gather of fewer elements than ``computed`` has, which nothing needs written whole (only
    fusible ops read it)? Its elements are then computed again from gathered inputs."""
    return ops.is_element_load(view.kind) and view.output.type.size < computed.type.size \
        and computed not in view.inputs[1:] and computed not in graph.outputs \
        and all(fusible(u) for u in computed.users)


def _readers_through_views(graph: Graph, value: Value) -> list[Node | None]:
    """The nodes that read ``value`` through chains of selecting views (None: a view is a graph output)."""
    readers: list[Node | None] = []
    for user in dict.fromkeys(value.users):
        if _selects(user) and user.inputs[0] is value:
            readers += ([None] if user.output in graph.outputs else []) + _readers_through_views(graph, user.output)
        else:
            readers.append(user)
    return readers


def _view_of(graph: Graph, view: Node, value: Value, shape: tuple[int, ...]) -> Value:
    """``value`` as ``view`` sees it, after broadcasting to ``shape``; Python scalars stay as they are."""
    if not isinstance(value.type, TensorType):
        return value
    value = _broadcast(graph, view, value, shape)
    return emit(graph, view, view.kind, [value, *view.inputs[1:]], view.attrs).output


JOINS = ("np::concatenate", "np::stack")
MAX_PIECES = 16  # pieces of a join that elementwise ops move into at most


def push_into_joins(graph: Graph) -> bool:
    """Move elementwise ops into the pieces of the np.stack / np.concatenate they read, and read a piece where a
    view selects within it: ``y + dt * np.stack([v, a])`` becomes ``np.stack([y[0] + dt * v, y[1] + dt * a])``
    and ``k[1]`` of ``k = np.stack([v, a])`` is ``a``. The pieces then fuse with the ops that compute them,
    in one kernel where they share an iteration space (``join_siblings``), and the copy into
    the joined array is made once, where something other than an elementwise op reads it (an RK4 step's state
    stacked four times: one copy, for the result). An op moves when every reader of its joins is elementwise of
    the joined shape (the join is then no longer made) and its joins are cut at the same places.
    Returns whether the graph changed."""
    changed = False
    progress = True
    while progress:
        progress = False
        for node in list(graph.nodes):
            if node.kind == "np::getitem" and _view_within_a_piece(graph, node):
                progress = True
            elif ops.is_elementwise(node.kind) and fusible(node) and _push_into_joins(graph, node):
                progress = True
        if progress:
            dce(graph)
            changed = True
    return changed


def _join_parts(join: Node | None) -> tuple[str, int, list[int], list[Value]] | None:
    """How a join lays its pieces out: as np.stack or np.concatenate (a concatenation of pieces each given a
    new axis there, as np.stack is normalised, is a stack), along which axis, each piece's length along it, and
    the pieces. None: not a join that elementwise ops may move into (a piece of another dtype is converted)."""
    if join is None or join.kind not in JOINS or not 1 < len(join.inputs) <= MAX_PIECES \
            or any(not isinstance(v.type, TensorType) or v.type.dtype != join.output.type.dtype for v in join.inputs):
        return None
    axis = join.attrs["axis"] % join.output.type.ndim
    if join.kind == "np::stack":
        return "np::stack", axis, [1] * len(join.inputs), list(join.inputs)
    ndim = join.output.type.ndim
    if all(v.producer is not None and v.producer.kind == "np::expand_dims"
           and tuple(a % ndim for a in v.producer.attrs["axis"]) == (axis,) for v in join.inputs):
        return "np::stack", axis, [1] * len(join.inputs), [v.producer.inputs[0] for v in join.inputs]
    return "np::concatenate", axis, [v.type.shape[axis] for v in join.inputs], list(join.inputs)


def _push_into_joins(graph: Graph, node: Node) -> bool:
    shape = node.output.type.shape
    parts = {v.producer: _join_parts(v.producer) for v in node.inputs if v.producer is not None
             and v.producer.kind in JOINS}
    layouts = [layout[:3] if layout else None for layout in parts.values()]
    if not parts or any(layout is None or layout != layouts[0] for layout in layouts) \
            or any(j.output.type.shape != shape for j in parts):
        return False
    if any(v in graph.outputs or not all(ops.is_elementwise(u.kind) and fusible(u) and u.output.type.shape == shape
                                         for u in v.users) for v in (j.output for j in parts)):
        return False
    kind, axis, lengths = layouts[0]
    pieces, start = [], 0
    for k, length in enumerate(lengths):
        inputs = [parts[v.producer][3][k] if v.producer in parts else
                  _cut(graph, node, v, axis - len(shape), kind, start, length) for v in node.inputs]
        pieces.append(emit(graph, node, node.kind, inputs, node.attrs).output)
        start += length
    joined = emit(graph, node, kind, pieces, {"axis": axis}).output
    assert joined.type.dtype == node.output.type.dtype and joined.type.shape == shape, (node, joined.type)
    replace_node(graph, node, [joined])
    return True


def _cut(graph: Graph, anchor: Node, value: Value, axis: int, kind: str, start: int, length: int) -> Value:
    """The part of ``value`` (broadcast to the joined shape) that lines up with a piece: ``value[..., start]``
    of a stack (its axis ``axis``, counted from the end), ``value[..., start:start + length]`` of a
    concatenation; a value that broadcasts along the axis as it is."""
    if not isinstance(value.type, TensorType) or value.type.ndim < -axis:
        return value
    if kind == "np::stack":
        item = start if value.type.shape[axis] != 1 else 0
    elif value.type.shape[axis] != 1:
        item = slice(start, start + length)
    else:
        return value
    index = (slice(None),) * (value.type.ndim + axis) + (item,)
    return emit(graph, anchor, "np::getitem", [value], {"index": index}).output


def _view_within_a_piece(graph: Graph, view: Node) -> bool:
    """``view`` (basic indexing) of a join, selecting within one piece along the join's axis: the same view of
    that piece (``k[1]`` of ``k = np.stack([v, a])`` is ``a``)."""
    join = view.inputs[0].producer
    parts = _join_parts(join) if len(view.inputs) == 1 else None
    if parts is None:
        return False
    kind, axis, lengths, pieces = parts
    size = join.output.type.shape[axis]
    index = list(ops.expand_index(view.attrs["index"], join.output.type.ndim))
    position = [k for k, item in enumerate(index) if item is not None][axis]
    item, start = index[position], 0
    for k, length in enumerate(lengths):
        if isinstance(item, (int, np.integer)) and start <= item % size < start + length:
            if kind == "np::stack":
                del index[position]  # the piece has no such axis
            else:
                index[position] = item % size - start
        elif isinstance(item, slice) and item.step in (None, 1) and kind == "np::concatenate" \
                and start <= item.indices(size)[0] < item.indices(size)[1] <= start + length:
            index[position] = slice(item.indices(size)[0] - start, item.indices(size)[1] - start)
        else:
            start += length
            continue
        whole = all(isinstance(i, slice) and i.indices(n) == (0, n, 1) for i, n in zip(index, pieces[k].type.shape))
        replacement = pieces[k] if whole and len(index) == pieces[k].type.ndim else \
            emit(graph, view, "np::getitem", [pieces[k]], {"index": tuple(index)}).output
        assert replacement.type.shape == view.output.type.shape, (view, replacement)
        replace_node(graph, view, [replacement])
        return True
    return False


def reshapes_as_axes(graph: Graph) -> bool:
    """Write a reshape that only adds or drops axes of length 1 (``scale.reshape(1, -1, 1, 1)``) as squeeze and
    expand_dims: views with exact strides, free at any strides, which move above elementwise ops like others."""
    changed = False
    for node in [n for n in graph.nodes if n.kind == "np::reshape" and is_row_view(n)]:
        before, after = node.inputs[0].type.shape, node.output.type.shape
        value = node.inputs[0]
        for kind, shape in (("np::squeeze", before), ("np::expand_dims", after)):
            if 1 in shape:
                axes = tuple(i for i, n in enumerate(shape) if n == 1)
                value = emit(graph, node, kind, [value], {"axis": axes}).output
        replace_node(graph, node, [value])
        changed = True
    return changed


def inline_small_producers(graph: Graph) -> bool:
    """Compute small operands again inside the elementwise kernels that broadcast them (as Inductor inlines cheap
    pointwise producers): a per-channel scale ``gamma / np.sqrt(var + eps)`` from vectors is computed per element
    of the image it scales, not launched alone and read back.

    An elementwise node qualifies (``_inlinable``) when it is computed, with at most MAX_RECOMPUTED elementwise
    nodes, from values no fusible node computes (inputs, parameters, matmul results: a per-row value of a
    reduction stays computed once per row) and every reader is another such node or broadcasts it to more
    elements: each of those gets a copy, so the small kernel is gone, and the reader's kernel reads the same
    inputs (through broadcast strides). Readers of one shape share the copies. Returns whether the graph changed."""
    small = _inlinable(graph)
    copies: dict[tuple[Value, tuple[int, ...]], Value] = {}
    for reader in [n for n in graph.nodes if n not in small and ops.is_elementwise(n.kind) and fusible(n)]:
        shape = reader.output.type.shape
        for value in dict.fromkeys(v for v in reader.inputs if v.producer in small):
            for original in sorted(_cone(value.producer, small), key=graph.nodes.index):
                if (original.output, shape) in copies:
                    continue
                inputs = [copies.get((v, shape)) or _broadcast(graph, reader, v, shape) for v in original.inputs]
                copy = emit(graph, reader, original.kind, inputs, original.attrs)
                assert copy.output.type.dtype == original.output.type.dtype, (original, copy)
                copies[(original.output, shape)] = copy.output
            reader.inputs = [copies[(v, shape)] if v is value else v for v in reader.inputs]
    if copies:
        dce(graph)
    return bool(copies)


def _inlinable(graph: Graph) -> set[Node]:
    """The elementwise nodes that ``inline_small_producers`` computes again in the kernels of their readers."""
    def computed(v: Value) -> bool:  # by an elementwise node that may be inlinable
        return v.producer is not None and ops.is_elementwise(v.producer.kind) and fusible(v.producer)

    def read(v: Value) -> bool:  # from memory, written by no kernel
        base = ops.view_base(v)
        return base.producer is None or base.producer.kind == "prim::Constant" or not fusible(base.producer)

    small = {n for n in graph.nodes if ops.is_elementwise(n.kind) and fusible(n) and n.output not in graph.outputs
             and all(computed(v) or read(v) for v in n.inputs)}
    def broadcasts(reader: Node, node: Node) -> bool:  # to more elements, in a kernel
        return ops.is_elementwise(reader.kind) and fusible(reader) and reader.output.type.size > node.output.type.size

    changed = True
    while changed:
        changed = False
        for node in list(small):
            if any(computed(v) and v.producer not in small for v in node.inputs) \
                    or any(u not in small and not broadcasts(u, node) for u in node.output.users) \
                    or len(_cone(node, small)) > MAX_RECOMPUTED:
                small.discard(node)
                changed = True
    return small


def _cone(node: Node, among: set[Node]) -> set[Node]:
    """``node`` and the nodes of ``among`` it is computed from."""
    cone, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n not in cone:
            cone.add(n)
            stack += [v.producer for v in n.inputs if v.producer in among]
    return cone


def _broadcast(graph: Graph, anchor: Node, value: Value, shape: tuple[int, ...]) -> Value:
    if not isinstance(value.type, TensorType) or value.type.shape == shape:
        return value
    return emit(graph, anchor, "np::broadcast_to", [value], {"shape": shape}).output


def fuse(graph: Graph) -> Graph:
    """Replace each group of two or more fusible nodes (or one elementwise node) by a FusionGroup node.

    Views read by nothing but views are first hoisted onto the inputs of the elementwise op they view
    (``hoist_views``), so that the slices of one computed array fuse with the ops that read them."""
    if reshapes_as_axes(graph) | push_into_joins(graph):
        retype_views(graph)  # (views of a piece read it at its strides)
    graph, _ = hoist_views(graph)
    inline_small_producers(graph)
    split_shared_gathers(graph)
    groups = [g for g in partition(graph) if fusible(g[0])]
    if recompute_across_split_rows(graph, groups):
        groups = [g for g in partition(graph) if fusible(g[0])]
    if log.isEnabledFor(logging.DEBUG):
        _log_decisions(graph, groups)
    for number, group in enumerate(groups):
        _make_group(graph, group, number)
    graph.topological_sort()
    name_kernels(graph)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("after fusion:\n%s", graph)
    return graph


def kernel_name(number: int, group: Node) -> str:
    """``gt_fused_0_add_tanh``: the kernel's launch number and its first three NumPy ops."""
    names: list[str] = []
    for node in group.subgraph.nodes:
        if node.kind.startswith("np::") and node.op not in names:
            names.append(node.op)
    label = "_".join(names[:3]) + ("_etc" if len(names) > 3 else "")
    return f"gt_fused_{number}_{label}"[:60]


def name_kernels(graph: Graph) -> None:
    """Name each fusion group's kernel (``attrs["kernel"]``), numbered in launch order: the graph prints,
    displays and renders the name decided here."""
    for number, group in enumerate(graph.find_nodes("gt::FusionGroup")):
        group.attrs["kernel"] = kernel_name(number, group)
        group.subgraph.name = f"FusionGroup_{number}"


def split_shared_gathers(graph: Graph) -> bool:
    """Give each reader of a gather (and the graph's outputs) a gather of its own, so that each is read in its
    reader's kernel, at the reader's shape (``wpe[np.arange(T)]`` added to a batch of rows): a gather is a load."""
    changed = False
    for gather in [n for n in graph.nodes if ops.is_element_load(n.kind) and fusible(n)]:
        readers = list(dict.fromkeys(gather.output.users))
        for reader in readers[0 if gather.output in graph.outputs else 1:]:
            copy = graph.create_node(gather.kind, list(gather.inputs), [gather.output.type], attrs=gather.attrs,
                                     source=gather.source)
            graph.insert_before(reader, [copy])
            reader.inputs = [copy.output if v is gather.output else v for v in reader.inputs]
            changed = True
    return changed


def recompute_across_split_rows(graph: Graph, groups: list[list[Node]]) -> bool:
    """Let later kernels compute again the element values a split-row group writes for them.

    A group whose rows are split ends where an element reads a row's result; the values its elements
    computed for the next kernel (softmax over one long row: ``exp(x - max)``, read by the division)
    would be written and read back. Such a value is computed again in the reader's kernel when its
    inputs (all from outside the group: the group's elements read none of its own results) take fewer
    bytes than writing the value and reading it back, it is not a graph output, its readers are
    elements of the same shape, and it takes at most MAX_RECOMPUTED nodes. The copies go before the
    first reader; partitioning again puts them in the reader's group. Returns whether the graph changed.
    """
    changed = False
    for group in groups:
        space = group_space(group)
        if not space.rows_are_split():
            continue
        inside = set(group)
        elements = [n for n in group if ops.is_elementwise(n.kind) and n.output.type.shape == space.shape]
        copies: dict[Value, Value] = {}
        for node in elements:
            value = node.output
            readers = [u for u in value.users if u not in inside]
            if not readers or value in graph.outputs or not all(
                    ops.is_elementwise(u.kind) and u.output.type.shape == space.shape for u in readers):
                continue  # (a reader of another shape would leave the copies a kernel of their own)
            cone = _cone(node, inside)
            leaves = {v for n in cone for v in n.inputs if v.producer not in cone}
            read = sum(v.type.nbytes for v in leaves if isinstance(v.type, TensorType))
            if len(cone) > MAX_RECOMPUTED or read >= 2 * value.type.nbytes:
                continue
            first = min(readers, key=graph.nodes.index)
            for original in sorted(cone, key=graph.nodes.index):
                if original.output in copies:
                    continue
                copy = graph.create_node(original.kind, [copies.get(v, v) for v in original.inputs],
                                         [v.type for v in original.outputs], attrs=original.attrs,
                                         source=original.source)
                graph.insert_before(first, [copy])
                copies[original.output] = copy.output
            for reader in readers:
                reader.inputs = [copies[v] if v is value else v for v in reader.inputs]
            changed = True
    if changed:
        graph.topological_sort()  # a copy made for a later reader may feed an earlier one's copy
    return changed


def _log_decisions(graph: Graph, groups: list[list[Node]]) -> None:
    for number, group in enumerate(groups):
        space = group_space(group)
        reduces = f", reducing axes {space.axes}" if space.axes is not None else ""
        log.debug("fused_%d: %s over shape %s%s", number, ", ".join(n.kind for n in group), space.shape, reduces)
    grouped = {n for g in groups for n in g}
    outside = [n for n in graph.nodes if n.kind.startswith("np::") and n not in grouped]
    if outside:
        log.debug("not fused (views, library calls, unsupported dtypes): %s",
                  ", ".join(f"{n.kind} -> {n.outputs}" for n in outside))


def _make_group(graph: Graph, nodes: list[Node], number: int) -> Node:
    inside = set(nodes)
    sub = Graph(f"FusionGroup_{number}")
    mapping: dict[Value, Value] = {}
    inputs: list[Value] = []
    for node in nodes:
        for v in node.inputs:
            if v in mapping or (v.producer in inside):
                continue
            scalar = v.producer is not None and v.producer.kind == "prim::Constant" \
                and np.ndim(v.producer.attrs["value"]) == 0  # array constants are read as inputs
            if scalar and not any(ops.is_element_load(u.kind) for u in v.users if u in inside):  # (read from memory)
                const = sub.create_node("prim::Constant", [], [v.type], attrs=v.producer.attrs,
                                        source=v.producer.source, output_names=[v.name])
                sub.append(const)
                mapping[v] = const.output
                continue
            mapping[v] = sub.add_input(v.type, v.name)
            inputs.append(v)
    outputs: list[Value] = []
    for node in nodes:
        copy = sub.create_node(node.kind, [mapping[v] for v in node.inputs], [v.type for v in node.outputs],
                               attrs=node.attrs, source=node.source, output_names=[v.name for v in node.outputs])
        sub.append(copy)
        mapping.update(zip(node.outputs, copy.outputs))
        for v in node.outputs:
            used_outside = any(u not in inside for u in v.users) or v in graph.outputs
            if used_outside:
                outputs.append(v)
    sub.outputs = [mapping[v] for v in outputs]
    last = nodes[-1]
    group = graph.create_node("gt::FusionGroup", inputs, [v.type for v in outputs],
                              attrs={"kernel": f"fused_{number}"}, source=last.source, subgraph=sub)
    graph.insert_before(last, [group])
    for old, new in zip(outputs, group.outputs):
        graph.replace_all_uses(old, new)
    for node in reversed(nodes):
        graph.remove_node(node)
    return group
