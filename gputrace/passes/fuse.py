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
    return ops.OPS.get(node.kind) is not None and ops.lookup(node.kind).category == ops.REDUCTION \
        and _dtype_ok(node.inputs[0].type)


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
    return None


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
                    or self.reads_another_rows_value(node, merged | {g}, trial_space):
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

    def join_siblings(self) -> None:
        """Merge groups of one space that read a common array and do not depend on each other: one kernel
        reads it once (``x.sum(0), x.max(0)``; independent outputs computed from the same inputs)."""
        readers: dict[Value, list[Node]] = {}
        for node in self.graph.nodes:
            if self.group_of[node] not in self.spaces:
                continue
            for v in node.inputs:
                if isinstance(v.type, TensorType) and (v.producer is None or v.producer.kind != "prim::Constant"):
                    readers.setdefault(v, []).append(node)
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
    parts.join_siblings()
    return parts.groups()


# views that select or reorder elements (reshape may need a copy, so it stays put)
HOISTABLE_VIEWS = ("np::getitem", "np::transpose", "np::swapaxes", "np::T", "np::expand_dims", "np::squeeze")


def hoist_views(graph: Graph) -> tuple[Graph, bool]:
    """Apply views before an elementwise op that only views read: ``f(a, b)[s]`` becomes ``f(a[s], b[s])``
    (gathers too: ``(x * 2)[idx]`` computes only the elements it selects, in the kernel that reads them).

    The slices of one computed array (an LSTM's gates) then fuse with the ops that read them, and the
    array is never written: each slice is computed from its inputs read through the view's strides.
    """
    changed = False
    while _hoist_once(graph):
        changed = True
        dce(graph)  # the producers left without users; their inputs may now be read by views only
    if changed:
        params = {n.attrs["name"]: n.output.type for n in graph.nodes if n.kind == "prim::Param"}
        specialize(graph, [v.type for v in graph.inputs], params)  # views after the hoisted ones: new strides
    return graph, changed


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
        if computed in graph.outputs or any(not _selects(u) or computed in u.inputs[1:] for u in computed.users):
            continue
        inputs = [_view_of(graph, view, v, computed.type.shape) for v in producer.inputs]
        replace_node(graph, view, [emit(graph, view, producer.kind, inputs, producer.attrs).output])
        hoisted = True
    return hoisted


def _view_of(graph: Graph, view: Node, value: Value, shape: tuple[int, ...]) -> Value:
    """``value`` as ``view`` sees it, after broadcasting to ``shape``; Python scalars stay as they are."""
    if not isinstance(value.type, TensorType):
        return value
    if value.type.shape != shape:
        value = emit(graph, view, "np::broadcast_to", [value], {"shape": shape}).output
    return emit(graph, view, view.kind, [value, *view.inputs[1:]], view.attrs).output


def fuse(graph: Graph) -> Graph:
    """Replace each group of two or more fusible nodes (or one elementwise node) by a FusionGroup node.

    Views read by nothing but views are first hoisted onto the inputs of the elementwise op they view
    (``hoist_views``), so that the slices of one computed array fuse with the ops that read them."""
    graph, _ = hoist_views(graph)
    split_shared_gathers(graph)
    groups = [g for g in partition(graph) if fusible(g[0])]
    if recompute_across_split_rows(graph, groups):
        groups = [g for g in partition(graph) if fusible(g[0])]
    if log.isEnabledFor(logging.DEBUG):
        _log_decisions(graph, groups)
    for number, group in enumerate(groups):
        _make_group(graph, group, number)
    graph.topological_sort()
    if log.isEnabledFor(logging.DEBUG):
        log.debug("after fusion:\n%s", graph)
    return graph


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
            cone = _element_cone(node, inside)
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


def _element_cone(node: Node, inside: set[Node]) -> set[Node]:
    """``node`` and the nodes of its group it is computed from."""
    cone, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n not in cone:
            cone.add(n)
            stack += [v.producer for v in n.inputs if v.producer in inside]
    return cone


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
