"""The reference executor: interprets a graph node by node with NumPy (or any ``xp``).

Like torch.fx's Interpreter, one ``run_node`` dispatch that other executors
extend: the kernel executor overrides fusion groups and reuses the rest. Each
value is dropped after its last use, so NumPy can reuse its memory as it does
for an eager program's temporaries.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import ops
from ..ir import Graph, Node, TensorType, Value

# The result of a ufunc overwrites a dying operand's buffer (``out=``) only from this size on (NumPy's own
# temporary elision starts at 256 KiB): below it, fresh memory is cheap and the check costs more than it saves.
IN_PLACE_BYTES = 64 * 1024
# A ufunc writes into a block of a larger array (its rows strided) only from this size, where fresh memory comes
# from the system and costs page faults, and where the block's rows are this long: NumPy loops over a strided
# block row by row, and over fresh memory in one loop.
BLOCK_BYTES = 4 * 2**20
BLOCK_ROW_BYTES = 1024


class Interpreter:
    """Runs ``graph`` on concrete arrays; ``params`` maps Param names to arrays."""

    def __init__(self, graph: Graph, params: Mapping[str, Any] | Callable[[str], Any] | None = None,
                 xp: Any = np, record: dict[Value, Any] | None = None):
        self.graph = graph
        self.params = params if params is not None else {}
        self.xp = xp
        self.record = record  # when a dict, every computed value is stored in it

    def param(self, name: str) -> Any:
        if callable(self.params):
            return self.params(name)
        return self.params[name]

    def run(self, *inputs: Any) -> list[Any]:
        return self.run_graph(self.graph, list(inputs))

    def run_graph(self, graph: Graph, inputs: Sequence[Any]) -> list[Any]:
        env: dict[Value, Any] = dict(zip(graph.inputs, inputs))
        if self.record is not None:
            self.record.update(env)
        dying = last_uses(graph) if self.record is None else {}
        for node in graph.nodes:
            results = self.run_node(node, [env[v] for v in node.inputs])
            env.update(zip(node.outputs, results))
            for value in dying.get(node, ()):  # as torch.fx's Interpreter: free each value after its last use
                del env[value]
            if self.record is not None:
                self.record.update(zip(node.outputs, results))
        return [env[v] for v in graph.outputs]

    def run_node(self, node: Node, args: list[Any]) -> list[Any]:
        kind = node.kind
        if kind == "prim::Constant":
            return [node.attrs["value"]]
        if kind == "prim::Param":
            return [self.param(node.attrs["name"])]
        if kind == "prim::GetAttr":
            return [getattr(args[0], node.attrs["name"])]
        if kind in ("prim::CallMethod", "gt::FusionGroup"):
            return self.run_graph(node.subgraph, args)
        result = ops.run_op(kind, self.xp, args, node.attrs)
        return list(result) if ops.lookup(kind).category == ops.SPLIT else [result]


def last_uses(graph: Graph) -> dict[Node, list[Value]]:
    """For each node, the values nothing reads after it (outputs of the graph excepted)."""
    last: dict[Value, Node] = {}
    for node in graph.nodes:
        for value in (*node.inputs, *node.outputs):
            last[value] = node
    dying: dict[Node, list[Value]] = {}
    kept = set(graph.outputs)
    for value, node in last.items():
        if value not in kept:
            dying.setdefault(node, []).append(value)
    return dying


def host_arrays(arrays: Sequence[Any]) -> list[Any]:
    """NumPy versions of the arrays (CuPy arrays are copied to the host)."""
    return [ops.to_host(a) for a in arrays]


def stored_outputs(graph: Graph) -> list[bool]:
    """For each output: is it (a view of) an input, a parameter or a constant, which callers must not get back?"""
    def stored(value: Value) -> bool:
        # normalize drops copies (x.T.copy() becomes x.T): a view of an input must not escape as the result
        value = ops.view_base(value)
        return value.producer is None or value.producer.kind in ("prim::Param", "prim::Constant")
    return [stored(v) for v in graph.outputs]


def fresh_outputs(graph: Graph, outputs: Sequence[Any], xp: Any, stored: Sequence[bool] | None = None) -> list[Any]:
    """Outputs that are (views of) inputs, parameters or constants, copied: callers never get those arrays back."""
    stored = stored_outputs(graph) if stored is None else stored
    return [xp.array(o, copy=True) if s else o for s, o in zip(stored, outputs)]


# -- the numpy backend's plan: the graph as straight-line Python

def _refcount(array: Any) -> int:
    return sys.getrefcount(array)


def _sole_owner(array: Any) -> bool:
    """Is ``array`` a NumPy array that owns its memory and that only the calling plan's local names?
    A view of it, or any other holder (the caller, a record), owns a reference of its own."""
    return type(array) is np.ndarray and array.base is None and sys.getrefcount(array) == _SOLE_COUNT


def _sole_holder(array: Any) -> bool:
    """Is ``array`` a NumPy array (a view too) that only the calling plan's local names? Where its memory may be
    written the plan has decided (``ReferencePlan._region_reusable``)."""
    return type(array) is np.ndarray and sys.getrefcount(array) == _SOLE_COUNT


def _count_of_a_local() -> int:
    """What ``sys.getrefcount`` reports, inside a function like ``_sole_owner``, for an array only a local holds."""
    namespace = {"refcount": _refcount, "np": np}
    exec("def probe():\n    local = np.empty(1)\n    return refcount(local)\n", namespace)
    return namespace["probe"]()


_SOLE_COUNT = _count_of_a_local()


class ReferencePlan:
    """A graph as straight-line NumPy code, made once (as torch.fx generates ``forward``): fusion groups are
    inlined, each value is deleted after its last use, and a ufunc whose array operand dies there writes its
    result into that operand's buffer when nothing else can see it. ``source`` shows the function::

        def run_plan(inputs, params):
            x, = inputs
            _2 = steps[0](c, x)  # np::multiply
            _4 = steps[1](x, c_1)  # np::power
            _6 = steps[2](c_2, _4, out=_4) if sole_owner(_4) else steps[2](c_2, _4)  # np::multiply
            del _4
            ...

    Run it inside ``np.errstate(all="ignore")``, as ``ops.run_op`` runs each op.
    """

    def __init__(self, graph: Graph, xp: Any = np):
        from ..codegen.python import Identifiers
        self.name = Identifiers()
        self.name.taken |= {"inputs", "steps", "sole_owner", "sole_holder", "getattr"}
        self.xp = xp
        self.aliases: dict[Value, str] = {}  # a fusion group's values, named as the values they stand for
        self.constants: dict[str, Any] = {}
        self.nodes: list[tuple[Node, list[str], list[str]]] = []  # (node, targets, arguments)
        self._flatten(graph)
        self.steps: list[Any] = [None] * len(self.nodes)
        outputs = [self._named(v) for v in graph.outputs]
        body = [f"{assignment_targets([self._named(v) for v in graph.inputs])} = inputs"] if graph.inputs else []
        body += self._schedule(set(outputs))
        body.append(f"return [{', '.join(outputs)}]")
        self.source = "def run_plan(inputs, params):\n" + "".join(f"    {line}\n" for line in body)
        namespace = {**self.constants, "steps": self.steps, "sole_owner": _sole_owner, "sole_holder": _sole_holder}
        exec(compile(self.source, f"<gputrace reference plan of {graph.name}>", "exec"), namespace)
        self.run: Callable[[Sequence[Any], Callable[[str], Any]], list[Any]] = namespace["run_plan"]

    def _named(self, value: Value) -> str:
        return self.aliases.get(value) or self.name(value)

    def _flatten(self, graph: Graph) -> None:
        for node in graph.nodes:
            if node.kind == "prim::Constant":
                self.constants[self._named(node.output)] = node.attrs["value"]
            elif node.kind in ("prim::CallMethod", "gt::FusionGroup"):
                sub = node.subgraph
                self.aliases.update(zip(sub.inputs, [self._named(v) for v in node.inputs]))
                self._flatten(sub)
                self.aliases.update(zip(node.outputs, [self._named(v) for v in sub.outputs]))
            else:
                self.nodes.append((node, [self._named(v) for v in node.outputs], [self._named(v) for v in node.inputs]))

    def _schedule(self, outputs: set[str]) -> list[str]:
        self.last: dict[str, int] = {}
        for k, (_, targets, args) in enumerate(self.nodes):
            for text in (*args, *targets):
                self.last[text] = k
        self.outputs = outputs
        self.regions: dict[str, tuple[str, tuple | None]] = {}  # name -> (array made here, region of it or None: all)
        lines = []
        for k, (node, targets, args) in enumerate(self.nodes):
            dying = [a for a in dict.fromkeys((*args, *targets))
                     if self.last[a] == k and a not in outputs and a not in self.constants]
            split = node.kind in ops.OPS and ops.lookup(node.kind).category == ops.SPLIT
            lines.append(f"{assignment_targets(targets) if split else targets[0]} = {self._call(k, node, args, dying)}"
                         f"  # {node.kind}")
            if dying:
                lines.append(f"del {', '.join(dying)}")
        return lines

    def _call(self, k: int, node: Node, args: list[str], dying: list[str]) -> str:
        text = ", ".join(args)
        if node.kind == "prim::Param":
            return f"params({node.attrs['name']!r})"
        if node.kind == "prim::GetAttr":
            return f"getattr({text}, {node.attrs['name']!r})"
        ufunc = self._ufunc(node)
        # a ufunc op's impl is the array module's ufunc called on the inputs: called directly, it costs a call less
        self.steps[k] = ufunc if ufunc is not None else ops.bind_op(node.kind, self.xp, node.attrs)
        region = self._region_reusable(k, node, args, dying) if ufunc is not None else None
        target = self._reusable(node, args, dying) if ufunc is not None and region is None else None
        self._track_regions(node, args, region)
        if region is not None:
            return f"steps[{k}]({text}, out={region}) if sole_holder({region}) else steps[{k}]({text})"
        if target is None:
            return f"steps[{k}]({text})"
        return f"steps[{k}]({text}, out={target}) if sole_owner({target}) else steps[{k}]({text})"

    def _track_regions(self, node: Node, args: list[str], written: str | None) -> None:
        """Record which array made in the plan each value lies in, and where: a matmul's or a ufunc's result is an
        array of its own (or lies where ``written``, the operand it was written into, lies); a basic index of
        such an array is a block of it; anything else computed from one may alias all of it."""
        if len(node.outputs) != 1:  # (np.split's pieces are views)
            for a in args:
                if a in self.regions:
                    self.regions.update({self._named(v): (self.regions[a][0], None) for v in node.outputs})
            return
        target = self._named(node.output)
        if written is not None:
            self.regions[target] = self.regions[written]
        elif node.kind == "np::matmul" or self._ufunc(node) is not None:
            self.regions[target] = (target, None)
        elif node.kind == "np::getitem" and args and args[0] in self.regions and self.regions[args[0]][1] is None:
            self.regions[target] = (self.regions[args[0]][0], _block(node.attrs["index"], node.inputs[0].type))
        else:
            for a in args:
                if a in self.regions:
                    self.regions[target] = (self.regions[a][0], None)

    def _region_reusable(self, k: int, node: Node, args: list[str], dying: list[str]) -> str | None:
        """A dying operand that is a block of an array made in the plan (an LSTM's gate, a column block of the
        matrix products), which the ufunc ``node`` may write its result into: of the result's dtype and shape,
        and no value alive after ``node`` lies in the same array where the block is. The result is not returned
        (the caller gets arrays of their own, contiguous). The run checks nothing else holds the block."""
        result = node.output.type
        if not isinstance(result, TensorType) or result.ndim == 0 or result.nbytes < BLOCK_BYTES \
                or self._named(node.output) in self.outputs:
            return None
        for value, text in zip(node.inputs, args):
            t = value.type
            found = self.regions.get(text)
            if text not in dying or args.count(text) != 1 or found is None or found[1] is None \
                    or not isinstance(t, TensorType) or t.dtype != result.dtype or t.shape != result.shape:
                continue
            array, block = found
            if (block[-1][1] - block[-1][0]) * t.dtype.itemsize < BLOCK_ROW_BYTES:
                continue
            if not any(other != text and where[0] == array and _overlap(block, where[1])
                       and (self.last.get(other, -1) > k or other in self.outputs)
                       for other, where in self.regions.items()):
                return text
        return None

    def _ufunc(self, node: Node) -> Any:
        """The NumPy ufunc that ``node`` calls with its inputs alone, or None."""
        op = ops.OPS.get(node.kind)
        if self.xp is not np or op is None or ops.PLAIN_UFUNC_OPS.get(op.name) is not op or node.attrs:
            return None
        ufunc = getattr(np, op.name, None)
        return ufunc if isinstance(ufunc, np.ufunc) and ufunc.nout == 1 else None

    def _reusable(self, node: Node, args: list[str], dying: list[str]) -> str | None:
        """An operand the ufunc ``node`` may write its result into: an array of the result's dtype, shape and
        (contiguous) layout that nothing reads later and this node reads once; the run checks that nothing
        else holds it (``sole_owner``)."""
        result = node.output.type
        if not isinstance(result, TensorType) or result.ndim == 0 or result.nbytes < IN_PLACE_BYTES \
                or not result.is_contiguous:
            return None
        for value, text in zip(node.inputs, args):
            t = value.type
            if text in dying and args.count(text) == 1 and isinstance(t, TensorType) and t.dtype == result.dtype \
                    and t.shape == result.shape and t.is_contiguous:
                return text
        return None


def _block(index: tuple, t: Any) -> tuple | None:
    """The block ``x[index]`` covers, as a (start, stop) per axis of ``x``, or None: not a block (steps, new axes)."""
    if not isinstance(t, TensorType):
        return None
    block = []
    for item, n in zip(ops.expand_index(index, t.ndim), t.shape):
        if isinstance(item, (int, np.integer)):
            block.append((int(item) % n, int(item) % n + 1))
        elif isinstance(item, slice) and item.indices(n)[2] == 1:
            start, stop, _ = item.indices(n)
            block.append((start, max(start, stop)))
        else:
            return None
    return tuple(block)


def _overlap(a: tuple | None, b: tuple | None) -> bool:
    """May blocks ``a`` and ``b`` of one array share an element (None: all of it)?"""
    return a is None or b is None or all(x0 < y1 and y0 < x1 for (x0, x1), (y0, y1) in zip(a, b))


def assignment_targets(names: list[str]) -> str:
    """The left side of an assignment unpacking ``names`` from a sequence."""
    return ", ".join(names) + ("," if len(names) == 1 else "") if names else "_"
