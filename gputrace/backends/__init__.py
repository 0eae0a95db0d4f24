"""Executors: run a compiled Program on one backend.

``numpy`` interprets the graph (fusion groups by their subgraphs) and is the
reference; ``emulate`` and ``cuda`` launch the generated kernels (see
:mod:`gputrace.backends.kernels`).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..ir import Graph
from .reference import Interpreter, fresh_outputs


class ReferenceExecutor:
    """The ``numpy`` backend: interprets the optimised graph with NumPy."""

    name = "numpy"

    def __init__(self, graph: Graph):
        self.graph = graph

    def run(self, inputs: Sequence[Any], param: Callable[[str], Any], record: dict | None = None) -> list[Any]:
        from .kernels import host_arrays
        inputs = host_arrays(inputs)
        outputs = Interpreter(self.graph, lambda name: host_arrays([param(name)])[0], np, record).run(*inputs)
        return fresh_outputs(self.graph, outputs, np)


def make_executor(backend: str, program: Any) -> Any:
    if backend == "numpy":
        return ReferenceExecutor(program.graph)
    from .kernels import KernelExecutor
    return KernelExecutor(program, backend)
