"""The kernel executor shared by the ``emulate`` and ``cuda`` backends.

A Program's graph is planned once into steps: fusion groups launch their
generated kernels (built by the host compiler for ``emulate``, by NVRTC for
``cuda``); every other node runs with the array module (NumPy or CuPy):
views cost nothing, matmul goes to cuBLAS through CuPy. Only data pointers
change between calls, so a call does little Python work.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from .. import ops
from ..errors import BackendUnavailableError
from ..ir import Node, TensorType
from .reference import Interpreter, fresh_outputs


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

    def launch(self, module, kernel, args):
        module.launch(kernel.name, kernel.grid(self.max_blocks), kernel.block, args, shared_mem=kernel.shared_mem)

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

    def launch(self, function, kernel, args):
        function((kernel.grid(self.max_blocks),), (kernel.block,), tuple(args), shared_mem=kernel.shared_mem)

    def prepare(self, arrays):
        import cupy
        return [cupy.asarray(a) for a in arrays]


LAUNCHERS = {"emulate": EmulatedLauncher, "cuda": CudaLauncher}


class KernelExecutor(Interpreter):
    """Runs a Program's graph: fusion groups as generated kernels, other nodes with the array module."""

    def __init__(self, program: Any, backend: str):
        from ..codegen import kernels_of
        launcher = LAUNCHERS[backend]()
        super().__init__(program.graph, None, launcher.xp)
        self.name = backend
        self.launcher = launcher
        groups = [n for n in program.graph.nodes if n.kind == "gt::FusionGroup"]
        self.kernels = dict(zip(groups, kernels_of(program)))
        self.loaded = {node: launcher.load(kernel) for node, kernel in self.kernels.items()}

    def run(self, inputs: Sequence[Any], param: Callable[[str], Any], record: dict | None = None) -> list[Any]:
        inputs = self.launcher.prepare(inputs)
        self.params = lambda name: self.launcher.prepare([param(name)])[0]
        self.record = record
        outputs = self.run_graph(self.graph, inputs)
        return fresh_outputs(self.graph, outputs, self.xp)

    def run_node(self, node: Node, args: list[Any]) -> list[Any]:
        kernel = self.kernels.get(node)
        if kernel is None:
            results = super().run_node(node, args)
            return [self._as_typed(v, r) for v, r in zip(node.outputs, results)]
        if kernel.empty_error:
            raise ValueError(kernel.empty_error)
        xp = self.xp
        outputs = [xp.empty(t.shape, t.dtype) for t in kernel.output_types]
        if kernel.elements:
            self.launcher.launch(self.loaded[node], kernel, kernel.arguments(args, outputs))
        return outputs

    def _as_typed(self, value, result):
        """Make a computed array honour its type's strides, which the kernels were generated for."""
        t = value.type
        if not isinstance(t, TensorType) or not hasattr(result, "strides"):
            return result
        result = self.xp.asarray(result)
        itemsize = t.dtype.itemsize
        actual = tuple(s // itemsize for s in result.strides)
        if all(a == b for a, b, n in zip(actual, t.strides, t.shape) if n > 1):
            return result
        if t.is_contiguous:
            return self.xp.ascontiguousarray(result)
        raise AssertionError(f"internal error: %{value.name} has strides {actual}, its type says {t.strides}")
