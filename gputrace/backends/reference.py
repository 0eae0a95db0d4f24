"""The reference executor: interprets a graph node by node with NumPy (or any ``xp``).

Like torch.fx's Interpreter, one ``run_node`` dispatch that other executors
extend: the kernel executor overrides fusion groups and reuses the rest.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import ops
from ..ir import Graph, Node, Value


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
        for node in graph.nodes:
            results = self.run_node(node, [env[v] for v in node.inputs])
            env.update(zip(node.outputs, results))
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


def stored_outputs(graph: Graph) -> list[bool]:
    """For each output: is it (a view of) an input, a parameter or a constant, which callers must not get back?"""
    def stored(value: Value) -> bool:
        # normalize drops copies (x.T.copy() becomes x.T): a view of an input must not escape as the result
        while value.producer is not None and ops.OPS.get(value.producer.kind) is not None \
                and ops.lookup(value.producer.kind).category == ops.VIEW:
            value = value.producer.inputs[0]
        return value.producer is None or value.producer.kind in ("prim::Param", "prim::Constant")
    return [stored(v) for v in graph.outputs]


def fresh_outputs(graph: Graph, outputs: Sequence[Any], xp: Any, stored: Sequence[bool] | None = None) -> list[Any]:
    """Outputs that are (views of) inputs, parameters or constants, copied: callers never get those arrays back."""
    stored = stored_outputs(graph) if stored is None else stored
    return [xp.array(o, copy=True) if s else o for s, o in zip(stored, outputs)]
