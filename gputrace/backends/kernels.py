"""The kernel executor shared by the ``emulate`` and ``cuda`` backends.

A Program's graph is planned once into steps: fusion groups launch their
generated kernels (built by the host compiler for ``emulate``, by NVRTC for
``cuda``); every other node runs with the array module (NumPy or CuPy):
views cost nothing, matmul goes to cuBLAS through CuPy. Only data pointers
change between calls, so a call does little Python work.
"""
from __future__ import annotations

import copy
import functools
import os
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import BackendUnavailableError
from ..ir import Node, TensorType, Value
from .reference import Interpreter, fresh_outputs, stored_outputs


def host_arrays(arrays: Sequence[Any]) -> list[Any]:
    """NumPy versions of the arrays (CuPy arrays are copied to the host)."""
    return [a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else a for a in arrays]


class EmulatedLauncher:
    """Builds kernels with the host C++ compiler and runs them on NumPy arrays."""

    xp = np

    def __init__(self):
        try:
            from .host_compiler import build_host_module
        except ImportError:
            raise BackendUnavailableError("the emulate backend's host build (gputrace.backends.host_compiler) is "
                                          "not part of this version yet; use backend='numpy', or 'cuda' on a GPU") from None
        self._build = build_host_module
        workers = int(os.environ.get("GPUTRACE_EMULATE_THREADS", 0) or os.cpu_count() or 1)
        self.max_blocks = 8 * workers

    def load(self, kernel):
        return self._build(kernel.source, [kernel.name])

    def bind(self, module, kernel) -> Callable[[list], None]:
        """A function launching ``kernel`` on an argument list, with its grid worked out once."""
        grid, block, shared_mem = kernel.grid(self.max_blocks), kernel.block, kernel.shared_mem
        return lambda args: module.launch(kernel.name, grid, block, args, shared_mem=shared_mem)

    def prepare(self, arrays):
        return host_arrays(arrays)


class CudaLauncher:
    """Compiles kernels with NVRTC and launches them through CuPy on CuPy arrays."""

    def __init__(self):
        from .nvrtc import gpu_available, load_raw_module
        if not gpu_available():
            raise BackendUnavailableError("the cuda backend needs a CUDA GPU, and none is available here; "
                                          "use backend='emulate' to run the generated kernels on the CPU")
        import cupy
        self.xp = cupy
        self._load = load_raw_module
        self.max_blocks = 32 * cupy.cuda.Device().attributes["MultiProcessorCount"]

    def load(self, kernel):
        return self._load(kernel.source).get_function(kernel.name)

    def bind(self, function, kernel) -> Callable[[list], None]:
        grid, block, shared_mem = (kernel.grid(self.max_blocks),), (kernel.block,), kernel.shared_mem
        return lambda args: function(grid, block, tuple(args), shared_mem=shared_mem)

    def prepare(self, arrays):
        cupy = self.xp
        return [a if isinstance(a, cupy.ndarray) else cupy.asarray(a) for a in arrays]


LAUNCHERS = {"emulate": EmulatedLauncher, "cuda": CudaLauncher}


class KernelExecutor(Interpreter):
    """Runs a Program's graph: fusion groups as generated kernels, other nodes with the array module.

    A call without ``record`` runs a plan made once: values live in numbered slots, constants are
    filled in ahead, and each step launches a fusion group's kernel or runs one other node; so the
    per-call Python work is a short loop. With ``record`` (check_trace's search for the first diverging node) the graph is
    interpreted node by node and every value kept.
    """

    def __init__(self, program: Any, backend: str):
        from ..codegen import kernels_of
        launcher = LAUNCHERS[backend]()
        super().__init__(program.graph, None, launcher.xp)
        self.name = backend
        self.launcher = launcher
        groups = [n for n in program.graph.nodes if n.kind == "gt::FusionGroup"]
        self.kernels = dict(zip(groups, kernels_of(program)))
        self.groups = {node: self._group_runner(node, kernel, launcher.load(kernel)) for node, kernel in self.kernels.items()}
        self._plan = Plan(self)

    def _group_runner(self, node: Node, kernel: Any, loaded: Any) -> Callable[..., list]:
        """The function a call runs for fusion group ``node``: allocate its outputs, launch its kernel."""
        xp, specs = self.xp, [(t.shape, t.dtype) for t in kernel.output_types]
        launch = self.launcher.bind(loaded, kernel)

        def run_group(*args: Any) -> list[Any]:
            if kernel.empty_error:
                raise ValueError(kernel.empty_error)
            outputs = [xp.empty(shape, dtype) for shape, dtype in specs]
            if kernel.elements:
                launch(kernel.arguments(args, outputs, kernel.allocate_workspace(xp)))
            return outputs
        return run_group

    def run(self, inputs: Sequence[Any], param: Callable[[str], Any], record: dict | None = None) -> list[Any]:
        prepare = self.launcher.prepare
        inputs = prepare(inputs)
        params = lambda name: prepare([param(name)])[0]  # noqa: E731
        if record is None:
            return self._plan(inputs, params)
        runner = copy.copy(self)  # per-call state stays off the shared executor (threads)
        runner.params, runner.record = params, record
        return fresh_outputs(self.graph, runner.run_graph(self.graph, inputs), self.xp, self._plan.stored)

    def run_node(self, node: Node, args: list[Any]) -> list[Any]:
        group = self.groups.get(node)
        if group is not None:
            return group(*args)
        if node.kind == "prim::Constant" and isinstance(node.attrs["value"], np.ndarray):
            return self.launcher.prepare([node.attrs["value"]])
        results = super().run_node(node, args)
        return [self._as_typed(v, r) for v, r in zip(node.outputs, results)]

    def _as_typed(self, value, result):
        """Make a computed array honour its type's strides, which the kernels were generated for."""
        t = value.type
        if not isinstance(t, TensorType) or not hasattr(result, "strides"):
            return result
        result = self.xp.asarray(result)
        itemsize = t.dtype.itemsize
        actual = tuple(s // itemsize for s in result.strides)
        if result.size == 0 or all(a == b for a, b, n in zip(actual, t.strides, t.shape) if n > 1):
            return result  # an empty array has no element whose address its strides could get wrong
        if t.is_contiguous:
            return self.xp.ascontiguousarray(result)
        raise AssertionError(f"internal error: %{value.name} has strides {actual}, its type says {t.strides}")


class Plan:
    """A graph's nodes as numbered steps over a list of slots, made once per executor."""

    def __init__(self, executor: KernelExecutor):
        graph = executor.graph
        slots: dict[Value, int] = {v: k for k, v in enumerate(graph.inputs)}
        self.template: list[Any] = [None] * len(graph.inputs)
        self.params: list[tuple[int, str]] = []
        self.steps: list[tuple[Callable[..., list], tuple[int, ...], tuple[int, ...]]] = []
        for node in graph.nodes:
            for v in node.outputs:
                slots[v] = len(self.template)
                self.template.append(None)
            if node.kind == "prim::Constant":  # array constants move to the device once
                value = node.attrs["value"]
                self.template[slots[node.output]] = \
                    executor.launcher.prepare([value])[0] if isinstance(value, np.ndarray) else value
            elif node.kind == "prim::Param":
                self.params.append((slots[node.output], node.attrs["name"]))
            else:
                run = executor.groups.get(node) or functools.partial(_run_step, executor.run_node, node)
                self.steps.append((run, tuple(slots[v] for v in node.inputs), tuple(slots[v] for v in node.outputs)))
        self.outputs = [slots[v] for v in graph.outputs]
        self.stored = stored_outputs(graph)
        self.graph, self.xp = graph, executor.xp

    def __call__(self, inputs: Sequence[Any], params: Callable[[str], Any]) -> list[Any]:
        env = self.template.copy()
        env[:len(inputs)] = inputs
        for slot, name in self.params:
            env[slot] = params(name)
        for run, ins, outs in self.steps:
            for slot, value in zip(outs, run(*[env[k] for k in ins])):
                env[slot] = value
        return fresh_outputs(self.graph, [env[k] for k in self.outputs], self.xp, self.stored)


def _run_step(run_node: Callable[[Node, list], list], node: Node, *args: Any) -> list[Any]:
    return run_node(node, list(args))
