"""The graph IR: Graph, Node, Value and their types.

One data model for the tracer, every pass and every backend, after torch.fx
and TorchScript: a graph has typed input values, an ordered list of nodes and
output values. A node has a kind (``np::add``, ``prim::GetAttr``,
``gt::FusionGroup``), input values, static attributes, output values, the
user's source location and, for calls and fusion groups, a subgraph. Each
value knows the node that produces it and the nodes that use it, so
replace-all-uses, DCE and CSE are a few lines each.

Printing follows TorchScript::

    %4 : Float32(3, 4, strides=[4, 1], device=cpu) = np::add(%3, %h)  # cell.py:9:0
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

# Notebook views (HTML) of graphs, fusion groups and kernels, by type: gputrace.display, above ir and codegen
# in the pipeline, registers them when imported (the package imports it).
HTML_VIEWS: dict[type, Callable[[Any], str]] = {}


def html_view(obj: Any) -> str | None:
    """The HTML view registered for ``obj``'s type; None (Jupyter then shows the plain repr) where none is."""
    view = HTML_VIEWS.get(type(obj))
    return view(obj) if view is not None else None


# ----------------------------------------------------------------------------- types

_DTYPE_TITLES = {
    "bool": "Bool", "int8": "Int8", "int16": "Int16", "int32": "Int32", "int64": "Int64",
    "uint8": "UInt8", "uint16": "UInt16", "uint32": "UInt32", "uint64": "UInt64",
    "float16": "Float16", "float32": "Float32", "float64": "Float64",
}
SUPPORTED_DTYPES = tuple(np.dtype(name) for name in _DTYPE_TITLES)


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """C-order strides, in elements, of an array of ``shape``."""
    strides, step = [], 1
    for extent in reversed(shape):
        strides.append(step)
        step *= max(int(extent), 1)
    return tuple(reversed(strides))


@dataclass(frozen=True)
class TensorType:
    """dtype, shape, strides (in elements) and device of an array value."""

    dtype: np.dtype
    shape: tuple[int, ...]
    strides: tuple[int, ...] | None = None
    device: str = "cpu"

    def __post_init__(self):
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        strides = contiguous_strides(self.shape) if self.strides is None else tuple(int(s) for s in self.strides)
        object.__setattr__(self, "strides", strides)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def is_contiguous(self) -> bool:
        return all(st == c for st, c, n in zip(self.strides, contiguous_strides(self.shape), self.shape) if n != 1)

    def with_(self, **changes) -> "TensorType":
        if "shape" in changes and "strides" not in changes:
            changes["strides"] = None
        return dataclasses.replace(self, **changes)

    def erase_shape(self) -> str:
        """The type with its sizes erased, for comparing traces of other shapes."""
        return f"{_DTYPE_TITLES[self.dtype.name]}({self.ndim}d, device={self.device})"

    @classmethod
    def of(cls, array: Any) -> "TensorType":
        """The type of a NumPy or CuPy array (or NumPy scalar)."""
        array_dtype = np.dtype(array.dtype)
        itemsize = array_dtype.itemsize
        shape = tuple(array.shape)
        strides = tuple(s // itemsize for s in array.strides) if itemsize else None
        return cls(array_dtype, shape, strides, device_of(array))

    def __str__(self) -> str:
        dims = ", ".join(str(s) for s in self.shape)
        strides = ", ".join(str(s) for s in self.strides)
        sep = ", " if dims else ""
        return f"{_DTYPE_TITLES.get(self.dtype.name, self.dtype.name)}({dims}{sep}strides=[{strides}], device={self.device})"


@dataclass(frozen=True)
class ScalarType:
    """A Python scalar constant: weakly typed in NumPy 2's promotion."""

    kind: type  # bool, int or float

    def __str__(self) -> str:
        return self.kind.__name__

    def erase_shape(self) -> str:
        return str(self)


@dataclass(frozen=True)
class ObjectType:
    """A non-array value: a module, a tuple of values, None, a Python object."""

    name: str

    def __str__(self) -> str:
        return self.name

    def erase_shape(self) -> str:
        return self.name


Type = TensorType | ScalarType | ObjectType
NONE_TYPE = ObjectType("NoneType")


def device_of(array: Any) -> str:
    """``cpu`` for NumPy arrays, ``cuda:N`` for CuPy arrays."""
    device = getattr(array, "device", None)
    if isinstance(array, (np.ndarray, np.generic)) or device is None or device == "cpu":
        return "cpu"
    return f"cuda:{getattr(device, 'id', 0)}"


# ----------------------------------------------------------------------------- source locations


@dataclass(frozen=True)
class SourceLocation:
    filename: str
    line: int
    col: int = 0
    function: str = ""

    def __str__(self) -> str:
        return f"{os.path.basename(self.filename)}:{self.line}:{self.col}"


# ----------------------------------------------------------------------------- values and nodes


class Value:
    """An SSA value: a graph input or one output of a node."""

    __slots__ = ("name", "type", "producer", "users", "__weakref__")

    def __init__(self, name: str, type: Type, producer: "Node | None" = None):
        self.name = name
        self.type = type
        self.producer = producer
        self.users: list[Node] = []

    def replace_all_uses_with(self, other: "Value") -> None:
        for user in list(self.users):
            user.inputs = [other if v is self else v for v in user.inputs]
        # the owning graph's outputs are rewired by Graph.replace_all_uses

    def __repr__(self) -> str:
        return f"%{self.name}"


class Node:
    """One operation: ``outputs = kind[attrs](inputs)``; ``subgraph`` for calls and fusion groups."""

    __slots__ = ("kind", "_inputs", "attrs", "outputs", "source", "subgraph", "meta")

    def __init__(self, kind: str, inputs: Sequence[Value], attrs: dict | None = None,
                 source: SourceLocation | None = None, subgraph: "Graph | None" = None):
        self.kind = kind
        self._inputs: list[Value] = []
        self.attrs = dict(attrs or {})
        self.outputs: list[Value] = []
        self.source = source
        self.subgraph = subgraph
        self.meta: dict = {}
        self.inputs = list(inputs)

    @property
    def inputs(self) -> list[Value]:
        return self._inputs

    @inputs.setter
    def inputs(self, values: Sequence[Value]) -> None:
        for value in self._inputs:
            if self in value.users:
                value.users.remove(self)
        self._inputs = list(values)
        for value in self._inputs:
            if self not in value.users:
                value.users.append(self)

    def detach(self) -> None:
        self.inputs = []

    @property
    def output(self) -> Value:
        assert len(self.outputs) == 1, f"{self.kind} has {len(self.outputs)} outputs"
        return self.outputs[0]

    @property
    def namespace(self) -> str:
        return self.kind.split("::", 1)[0]

    @property
    def op(self) -> str:
        return self.kind.split("::", 1)[1]

    def __repr__(self) -> str:
        if self.kind == "gt::FusionGroup" and self.subgraph is not None:
            ops = ", ".join(n.kind for n in self.subgraph.nodes if n.kind != "prim::Constant")
            return (f"<FusionGroup {self.attrs.get('kernel', '')}({', '.join(map(repr, self.inputs))}) -> "
                    f"({', '.join(map(repr, self.outputs))}): {ops}>")
        return f"<Node {self.kind} -> {self.outputs}>"

    def _repr_html_(self) -> str | None:
        return html_view(self) if self.kind == "gt::FusionGroup" else None  # (None: Jupyter shows the repr)


# ----------------------------------------------------------------------------- graph


class Graph:
    """Typed inputs, an ordered list of nodes, outputs; ``meta`` for facts about the whole."""

    def __init__(self, name: str = "forward"):
        self.name = name
        self.inputs: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: list[Value] = []
        self.meta: dict = {}
        self._names: set[str] = set()
        self._counter = itertools.count(1)

    # -- building
    def fresh_name(self, hint: str | None = None) -> str:
        if hint:
            # "x.1" is how this method tells names apart: keep that form, so copies keep every name
            base, suffix = re.fullmatch(r"(.+?)((?:\.\d+)*)", hint).groups()
            hint = "".join(c if c.isalnum() or c == "_" else "_" for c in base) + suffix
            if hint not in self._names:
                self._names.add(hint)
                return hint
            for k in itertools.count(1):
                candidate = f"{hint}.{k}"
                if candidate not in self._names:
                    self._names.add(candidate)
                    return candidate
        while True:
            candidate = str(next(self._counter))
            if candidate not in self._names:
                self._names.add(candidate)
                return candidate

    def add_input(self, type: Type, name: str | None = None) -> Value:
        value = Value(self.fresh_name(name), type)
        self.inputs.append(value)
        return value

    def create_node(self, kind: str, inputs: Sequence[Value], output_types: Sequence[Type],
                    attrs: dict | None = None, source: SourceLocation | None = None,
                    subgraph: "Graph | None" = None, output_names: Sequence[str | None] | None = None,
                    ) -> Node:
        """Make a node with fresh output values; it is not yet in the node list."""
        node = Node(kind, inputs, attrs, source, subgraph)
        names = output_names or [None] * len(output_types)
        node.outputs = [Value(self.fresh_name(n), t, node) for t, n in zip(output_types, names)]
        return node

    def append(self, node: Node) -> Node:
        self.nodes.append(node)
        return node

    def insert_before(self, anchor: Node, nodes: Iterable[Node]) -> None:
        index = self.nodes.index(anchor)
        self.nodes[index:index] = list(nodes)

    def add_node(self, kind: str, inputs: Sequence[Value], output_types: Sequence[Type], **kw) -> Node:
        return self.append(self.create_node(kind, inputs, output_types, **kw))

    def remove_node(self, node: Node) -> None:
        assert all(not v.users for v in node.outputs), f"{node} still has users"
        assert not any(v in self.outputs for v in node.outputs), f"{node} is a graph output"
        node.detach()
        self.nodes.remove(node)

    def replace_all_uses(self, old: Value, new: Value) -> None:
        old.replace_all_uses_with(new)
        self.outputs = [new if v is old else v for v in self.outputs]

    def topological_sort(self) -> None:
        """Reorder nodes so every value is defined before use, keeping the current order where possible."""
        import heapq
        position = {node: i for i, node in enumerate(self.nodes)}
        waiting = {node: sum(1 for v in node.inputs if v.producer in position) for node in self.nodes}
        ready = [(position[n], n) for n, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        ordered = []
        while ready:
            _, node = heapq.heappop(ready)
            ordered.append(node)
            for v in node.outputs:
                for user in v.users:
                    if user in waiting:
                        waiting[user] -= sum(1 for i in user.inputs if i is v)
                        if waiting[user] == 0:
                            heapq.heappush(ready, (position[user], user))
        assert len(ordered) == len(self.nodes), "the graph has a cycle"
        self.nodes = ordered

    # -- reading
    def walk(self) -> Iterator[Node]:
        """Every node, entering subgraphs after the node that holds them."""
        for node in self.nodes:
            yield node
            if node.subgraph is not None:
                yield from node.subgraph.walk()

    def find_nodes(self, kind: str) -> list[Node]:
        return [n for n in self.nodes if n.kind == kind]

    def copy(self) -> "Graph":
        """A deep copy: new values and nodes, the same types, attributes and locations."""
        new = Graph(self.name)
        new.meta = dict(self.meta)
        mapping: dict[Value, Value] = {}
        for value in self.inputs:
            mapping[value] = new.add_input(value.type, value.name)
        for node in self.nodes:
            copied = new.create_node(
                node.kind, [mapping[v] for v in node.inputs], [v.type for v in node.outputs],
                attrs=node.attrs, source=node.source,
                subgraph=node.subgraph.copy() if node.subgraph is not None else None,
                output_names=[v.name for v in node.outputs])
            copied.meta = dict(node.meta)
            new.append(copied)
            mapping.update(zip(node.outputs, copied.outputs))
        new.outputs = [mapping[v] for v in self.outputs]
        return new

    def lint(self) -> None:
        """Check the invariants every pass must keep; raises AssertionError naming the broken one."""
        defined: set[int] = {id(v) for v in self.inputs}
        names = [v.name for v in self.inputs]
        for node in self.nodes:
            for value in node.inputs:
                assert id(value) in defined, f"{node.kind} uses %{value.name} before it is defined"
                assert node in value.users, f"%{value.name} does not list {node.kind} as a user"
            for value in node.outputs:
                assert value.producer is node, f"%{value.name} has the wrong producer"
                assert id(value) not in defined, f"%{value.name} is defined twice"
                defined.add(id(value))
                names.append(value.name)
            if node.subgraph is not None:
                node.subgraph.lint()
        for value in self.outputs:
            assert id(value) in defined, f"output %{value.name} is not defined"
        everything = list(self.inputs) + [v for n in self.nodes for v in n.outputs]
        for value in everything:
            for user in value.users:
                assert user in self.nodes, f"%{value.name} lists a user {user.kind} outside the graph"
        assert len(names) == len(set(names)), "value names are not unique"

    # -- printing
    def __str__(self) -> str:
        return format_graph(self)

    __repr__ = __str__  # like TorchScript's graphs: the REPL shows the IR

    def _repr_html_(self) -> str | None:
        return html_view(self)


def format_graph(graph: Graph, indent: str = "", head: str = "graph(") -> str:
    """TorchScript-style text: ``graph(%x : Float32(3, 4, ...)):`` then one line per node; fusion groups'
    subgraphs follow the graph, as TorchScript prints them: ``with gt::FusionGroup_0 = graph(...):``."""
    params = [f"%{v.name} : {v.type}" for v in graph.inputs]
    lines = [indent + head + f",\n{indent}{' ' * len(head)}".join(params) + "):"]
    groups = []
    for node in graph.nodes:
        lines.append(indent + "  " + format_node(node))
        if node.kind == "gt::FusionGroup" and node.subgraph is not None:
            groups.append(node)
        elif node.subgraph is not None and node.kind != "prim::CallMethod":
            lines.append(format_graph(node.subgraph, indent + "    "))
    outputs = ", ".join(f"%{v.name}" for v in graph.outputs)
    lines.append(f"{indent}  return ({outputs})")
    for node in groups:
        lines.append(format_graph(node.subgraph, indent, f"with {fusion_group_name(node)} = graph("))
    return "\n".join(lines)


def fusion_group_name(node: Node) -> str:
    """``gt::FusionGroup_0`` for the group whose kernel is numbered 0: fusion names the kernel in
    ``attrs["kernel"]`` (``gt_fused_0_add_tanh``)."""
    kernel = str(node.attrs.get("kernel", ""))
    number = re.search(r"fused_(\d+)", kernel)
    return "gt::FusionGroup_" + (number.group(1) if number else kernel)


def format_attr(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, np.ndarray):
        if value.size <= 6:
            return f"array({value.tolist()}, {value.dtype.name})"
        return f"array(<{value.dtype.name}{list(value.shape)}>)"
    if isinstance(value, slice):
        parts = ["" if p is None else str(p) for p in (value.start, value.stop, value.step)]
        return ":".join(parts[:2]) + (f":{parts[2]}" if value.step is not None else "")
    if value is Ellipsis:
        return "..."
    if isinstance(value, tuple):
        inner = ", ".join(format_attr(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_node(node: Node) -> str:
    outs = ", ".join(f"%{v.name} : {v.type}" for v in node.outputs)
    attrs = ""
    kind, shown = node.kind, node.attrs
    if kind == "gt::FusionGroup":  # named by its number, its subgraph printed after the graph
        kind, shown = fusion_group_name(node), {k: v for k, v in node.attrs.items() if k != "kernel"}
    if shown:
        attrs = "[" + ", ".join(f"{k}={format_attr(v)}" for k, v in shown.items()) + "]"
    args = ", ".join(f"%{v.name}" for v in node.inputs)
    text = f"{outs} = {kind}{attrs}({args})" if outs else f"{kind}{attrs}({args})"
    if node.source is not None:
        text += f"  # {node.source}"
    return text
