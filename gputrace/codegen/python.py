"""The graph as Python source that runs with NumPy (``traced.code``), like ``GraphModule.code``."""
from __future__ import annotations

import keyword
from typing import Any, Callable

import numpy as np

from .. import ops
from ..ir import Graph, TensorType, Value


class Identifiers:
    """A distinct Python identifier per value: ``lin.weight`` and ``lin_weight`` must not become one name."""

    def __init__(self):
        self.names: dict[Value, str] = {}
        self.taken = {"np", "params"}  # the generated function's globals

    def __call__(self, value: Value) -> str:
        if value not in self.names:
            name = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in value.name) or "_"
            if name[0].isdigit():
                name = "_" + name
            name = name + "_" if keyword.iskeyword(name) else name
            candidate, k = name, 1
            while candidate in self.taken:
                candidate, k = f"{name}_{k}", k + 1
            self.taken.add(candidate)
            self.names[value] = candidate
        return self.names[value]


def _function_name(graph: Graph) -> str:
    name = graph.name  # "<lambda>", or anything from a loaded file
    return name if name.isidentifier() and not keyword.iskeyword(name) else "forward"


def _tree_source(tree: Any, names: list[str]) -> str:
    if isinstance(tree, int):
        return names[tree]
    if "tuple" in tree:
        items = [_tree_source(t, names) for t in tree["tuple"]]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if "list" in tree:
        return "[" + ", ".join(_tree_source(t, names) for t in tree["list"]) + "]"
    return "{" + ", ".join(f"{k!r}: {_tree_source(t, names)}" for k, t in tree["dict"].items()) + "}"


def python_source(graph: Graph) -> str:
    """``def <name>(inputs):`` with one line per node; constants appear inline as literals."""
    inline: dict[Value, str] = {}
    identifier = Identifiers()
    params = ", ".join(identifier(v) for v in graph.inputs)
    lines = []
    for node in graph.nodes:
        if node.kind == "prim::Constant":
            inline[node.output] = ops._py_literal(node.attrs["value"])
            continue
        args = [inline.get(v) or identifier(v) for v in node.inputs]
        targets = ", ".join(identifier(v) for v in node.outputs)
        if node.kind == "prim::Param":
            expr = f"params[{node.attrs['name']!r}]"
        elif node.kind == "prim::GetAttr":
            name = node.attrs["name"]  # Sequential's children are named "0", "1", ...
            expr = f"{args[0]}.{name}" if name.isidentifier() and not keyword.iskeyword(name) \
                else f"getattr({args[0]}, {name!r})"
        elif node.kind == "prim::CallMethod":
            expr = f"{args[0]}.{node.attrs['name']}({', '.join(args[1:])})"
        elif node.kind == "gt::FusionGroup":
            kernel = str(node.attrs.get("kernel", ""))  # from a loaded file: never pasted in unchecked
            expr = f"{kernel if kernel.isidentifier() else 'fusion_group'}({', '.join(args)})"
        else:
            expr = ops.python_call(ops.lookup(node.kind), args, node.attrs)
        if len(node.outputs) > 1:
            targets += ","
        lines.append(f"    {targets} = {expr}")
    outputs = [inline.get(v) or identifier(v) for v in graph.outputs]
    updated = graph.meta.get("updated_inputs", ())
    if updated:  # inputs updated in place: their new values, the last outputs, are written into them
        array_inputs = [v for v in graph.inputs if isinstance(v.type, TensorType)]
        lines += [f"    {identifier(array_inputs[i])}[...] = {new}" for i, new in zip(updated, outputs[-len(updated):])]
        outputs = outputs[:-len(updated)]
    tree = graph.meta.get("output_tree", {"tuple": list(range(len(outputs)))} if len(outputs) != 1 else 0)
    lines.append(f"    return {_tree_source(tree, outputs)}")
    return f"def {_function_name(graph)}({params}):\n" + "\n".join(lines) + "\n"


def python_function(graph: Graph, param: Callable[[str], Any]) -> Callable:
    """Compile :func:`python_source` into a function; ``params[name]`` reads ``param(name)``."""
    class _Params:
        def __getitem__(self, name: str) -> Any:
            return param(name)

    namespace = {"np": np, "params": _Params()}
    exec(compile(python_source(graph), f"<gputrace {graph.name}>", "exec"), namespace)
    return namespace[_function_name(graph)]
