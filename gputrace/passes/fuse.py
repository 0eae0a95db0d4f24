"""Fusion: group connected elementwise nodes and reductions into ``gt::FusionGroup`` nodes.

Each group becomes one kernel. A group has an iteration space: a full shape
and, once a reduction joins, the axes it reduces. Elementwise nodes of the
full shape are computed per element (prologues feeding the reductions and
epilogues that read the reduced values back); nodes of the reduced shape are
computed once per row. Inputs of other shapes are read through broadcast
strides. Views (transpose, slicing, broadcast, expand_dims) stay
outside as free metadata operations: the kernel reads their result through
its strides, so nothing is copied. A node joins (and may merge) the groups
of its producers only if the group graph stays acyclic. An intermediate
used outside its group, or returned, becomes an output of the group, written
by the same kernel.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import ops
from ..ir import Graph, Node, TensorType, Value


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
    return ops.OPS.get(node.kind) is not None and ops.lookup(node.kind).category == ops.REDUCTION \
        and _dtype_ok(node.inputs[0].type)


def own_space(node: Node) -> Space:
    if ops.is_elementwise(node.kind):
        return Space(node.output.type.shape)
    return Space(node.inputs[0].type.shape, reduction_axes(node))


def join(node: Node, space: Space) -> Space | None:
    """The space of ``space``'s group with ``node`` added, or None if it cannot join."""
    if ops.is_elementwise(node.kind):
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


def partition(graph: Graph) -> list[list[Node]]:
    """Groups of nodes, in graph order; a node alone in its group is returned too."""
    group_of: dict[Node, int] = {}
    members: dict[int, list[Node]] = {}
    spaces: dict[int, Space] = {}
    for index, node in enumerate(graph.nodes):
        group_of[node] = index
        members[index] = [node]
        if not fusible(node):
            continue
        spaces[index] = own_space(node)
        candidates = {group_of[v.producer] for v in node.inputs
                      if v.producer is not None and group_of[v.producer] in spaces}
        if not candidates:
            continue
        # group-level successor edges, to refuse merges that would create a cycle
        succ: dict[int, set[int]] = {}
        for other in graph.nodes[:index]:
            for v in other.inputs:
                if v.producer is not None and group_of[v.producer] != group_of[other]:
                    succ.setdefault(group_of[v.producer], set()).add(group_of[other])
        merged: set[int] = set()
        space: Space | None = None
        for g in sorted(candidates, key=lambda g: -len(members[g])):
            trial_space = spaces[g] if space is None else merge(space, spaces[g])
            trial_space = trial_space and join(node, trial_space)
            if trial_space is None:
                continue
            trial = merged | {g}
            # a path that leaves the merged groups and comes back (to them or to this node) is a cycle
            exits = {s for t in trial for s in succ.get(t, ()) if s not in trial}
            feeders = {group_of[v.producer] for v in node.inputs if v.producer is not None} - trial
            if _reaches(exits, trial | feeders, succ):
                continue
            merged, space = trial, trial_space
        if not merged:
            continue
        target = min(merged)
        spaces[target] = space
        for g in merged | {index}:
            if g == target:
                continue
            spaces.pop(g, None)
            for member in members.pop(g):
                group_of[member] = target
                members[target].append(member)
    order = {node: i for i, node in enumerate(graph.nodes)}
    return [sorted(m, key=order.get) for _, m in sorted(members.items(), key=lambda kv: order[kv[1][0]])]


def fuse(graph: Graph) -> Graph:
    """Replace each group of two or more fusible nodes (or one elementwise node) by a FusionGroup node."""
    groups = [g for g in partition(graph) if fusible(g[0])]
    for number, group in enumerate(groups):
        _make_group(graph, group, number)
    graph.topological_sort()
    return graph


def _make_group(graph: Graph, nodes: list[Node], number: int) -> Node:
    inside = set(nodes)
    sub = Graph(f"FusionGroup_{number}")
    mapping: dict[Value, Value] = {}
    inputs: list[Value] = []
    for node in nodes:
        for v in node.inputs:
            if v in mapping or (v.producer in inside):
                continue
            if v.producer is not None and v.producer.kind == "prim::Constant":
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
