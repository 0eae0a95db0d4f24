"""Executors: run a compiled Program on one backend.

``numpy`` interprets the graph (fusion groups by their subgraphs) and is the
reference; ``emulate`` and ``cuda`` launch the generated kernels (see
:mod:`gputrace.backends.kernels`).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..codegen.lowered import LoweredProgram
from ..ir import Graph
from .reference import Interpreter, ReferencePlan, fresh_outputs, host_arrays, stored_outputs


class ReferenceExecutor:
    """The ``numpy`` backend: interprets the optimised graph with NumPy."""

    name = "numpy"

    def __init__(self, graph: Graph):
        self.graph = graph
        self.plan = ReferencePlan(graph)
        self.stored = stored_outputs(graph)

    def run(self, inputs: Sequence[Any], param: Callable[[str], Any], record: dict | None = None) -> list[Any]:
        inputs = host_arrays(inputs)
        host_param = lambda name: host_arrays([param(name)])[0]  # noqa: E731
        if record is not None:  # check_trace's search for the first diverging node: every value kept
            outputs = Interpreter(self.graph, host_param, np, record).run(*inputs)
        else:
            with np.errstate(all="ignore"):
                outputs = self.plan.run(inputs, host_param)
        return fresh_outputs(self.graph, outputs, np, self.stored)


def make_executor(backend: str, graph: Graph, lowered: Callable[[], LoweredProgram]) -> Any:
    """The executor of ``backend`` for a fused graph; ``lowered`` gives its kernels, made only where needed."""
    if backend == "numpy":
        return ReferenceExecutor(graph)
    from .kernels import KernelExecutor
    return KernelExecutor(lowered(), backend)
