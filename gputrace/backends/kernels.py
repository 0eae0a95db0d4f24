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

from .. import ops
from ..codegen.kernel import Kernel
from ..codegen.lowered import LoweredProgram
from ..errors import BackendUnavailableError
from ..ir import Node, TensorType
from ..passes.joins import copied_pieces, piece_index, placements
from .build import BODY_ENTRY, build_bodies
from .reference import Interpreter, assignment_targets, fresh_outputs, host_arrays, stored_outputs


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

    def load_all(self, kernels):
        """One host module per distinct kernel body (see ``build_bodies``)."""
        return build_bodies(kernels, lambda body: self._build(body, [BODY_ENTRY]))

    def bind(self, module, kernel) -> Callable[[list], None]:
        """A function launching ``kernel`` on an argument list, with its grid worked out once."""
        grid, block, shared_mem = kernel.grid(self.max_blocks), kernel.block, kernel.shared_mem
        return lambda args: module.launch(BODY_ENTRY, grid, block, args, shared_mem=shared_mem)

    def prepare(self, arrays):
        return host_arrays(arrays)


class CudaLauncher:
    """Compiles kernels with NVRTC and launches them through CuPy on CuPy arrays."""

    def __init__(self):
        from .nvrtc import gpu_available
        if not gpu_available():
            raise BackendUnavailableError("the cuda backend needs a CUDA GPU, and none is available here; "
                                          "use backend='emulate' to run the generated kernels on the CPU")
        import cupy
        self.xp = cupy
        self.max_blocks = 32 * cupy.cuda.Device().attributes["MultiProcessorCount"]

    def load_all(self, kernels):
        """Each kernel's function, compiled by NVRTC once per distinct body for this device."""
        from .nvrtc import compile_kernels, device_arch, load_compiled
        return [load_compiled(c).get_function(BODY_ENTRY) for c in compile_kernels(kernels, arch=device_arch())]

    def bind(self, function, kernel) -> Callable[[list], None]:
        grid, block, shared_mem = (kernel.grid(self.max_blocks),), (kernel.block,), kernel.shared_mem
        return lambda args: function(grid, block, args, shared_mem=shared_mem)

    def prepare(self, arrays):
        cupy = self.xp
        return [a if isinstance(a, cupy.ndarray) else cupy.asarray(a) for a in arrays]


class NoLaunch:
    """Launches nothing: what is left of a call is gputrace's own Python (the benchmarks time it, CPU-side)."""

    xp = np

    def load_all(self, kernels):
        return [None] * len(kernels)

    def bind(self, module, kernel) -> Callable[[tuple], None]:
        return lambda args: None

    def prepare(self, arrays):
        return host_arrays(arrays)


LAUNCHERS = {"emulate": EmulatedLauncher, "cuda": CudaLauncher}


class KernelExecutor(Interpreter):
    """Runs a lowered program's graph: fusion groups as generated kernels, other nodes with the array module.

    A call without ``record`` runs ``plan``, straight-line Python generated once: values are its
    locals, constants its globals, and each step launches a fusion group's kernel or runs one other
    node. With ``record`` (check_trace's search for the first diverging node) the graph is
    interpreted node by node and every value kept.
    """

    def __init__(self, lowered: LoweredProgram, backend: str, launcher: Any = None):
        launcher = LAUNCHERS[backend]() if launcher is None else launcher
        super().__init__(lowered.graph, None, launcher.xp)
        self.name = backend
        self.launcher = launcher
        self.kernels = lowered.kernels
        self.placements = placements(lowered.graph)  # outputs written into a slice of a joined array
        loaded = launcher.load_all(list(self.kernels.values()))
        self.groups = {node: self._group_runner(node, kernel, module)
                       for (node, kernel), module in zip(self.kernels.items(), loaded)}
        self.plan = Plan(self)

    def _group_runner(self, node: Node, kernel: Kernel, loaded: Any) -> Callable[..., list]:
        """The function a call runs for fusion group ``node``: allocate its outputs, launch its kernel.

        Everything that does not change between calls is looked up here, once: a call allocates,
        launches and returns (this is the host time of a small call)."""
        fresh = self._output_allocator(node.outputs, kernel.output_types)
        launch, arguments = self.launcher.bind(loaded, kernel), kernel.arguments
        workspace = functools.partial(kernel.allocate_workspace, self.xp) if kernel.workspace else tuple
        if kernel.empty_error:
            def run_group(*args: Any, into: Sequence[Any] | None = None) -> list[Any]:
                check_indices(kernel, args, self.xp)  # NumPy indexes before it reduces
                raise ValueError(kernel.empty_error)
        elif not kernel.elements:
            def run_group(*args: Any, into: Sequence[Any] | None = None) -> list[Any]:
                check_indices(kernel, args, self.xp)  # NumPy checks indices that select nothing too
                return fresh(into)
        elif kernel.index_checks:
            def run_group(*args: Any, into: Sequence[Any] | None = None) -> list[Any]:
                outputs, scratch = fresh(into), workspace()
                launch(arguments(args, outputs, scratch))
                if int(scratch[-1][0]):  # an index was out of bounds: nothing was read there
                    check_indices(kernel, args, self.xp)
                    raise AssertionError(f"internal error: {kernel.name} flagged an index out of bounds, and none is")
                return outputs
        else:
            def run_group(*args: Any, into: Sequence[Any] | None = None) -> list[Any]:
                outputs = fresh(into)
                launch(arguments(args, outputs, workspace()))
                return outputs
        return run_group

    def _output_allocator(self, values: Sequence[Any], types: Sequence[TensorType]) -> Callable[..., list]:
        """``fresh(into)``: the arrays a step writes its outputs into. ``into`` holds, for each output, the slice
        of a joined array the plan allocated (None: a fresh array); without it (check_trace's node-by-node
        run), an output placed in a join gets a slice of a joined array of its own, at the strides it was
        rendered for."""
        empty, specs = self.xp.empty, [(t.shape, t.dtype) for t in types]
        placed = [self.placements.get(v) for v in values]
        if not any(placed):
            return lambda into=None: [empty(shape, dtype) for shape, dtype in specs]

        def fresh(into: Sequence[Any] | None = None) -> list[Any]:
            if into is None:
                into = [None if p is None else empty(p.join.output.type.shape, p.join.output.type.dtype)[p.index]
                        for p in placed]
            return [empty(shape, dtype) if out is None else out for out, (shape, dtype) in zip(into, specs)]
        return fresh

    def run(self, inputs: Sequence[Any], param: Callable[[str], Any], record: dict | None = None) -> list[Any]:
        inputs = self.launcher.prepare(inputs)
        if record is None:
            return self.plan.run(inputs, param)
        runner = copy.copy(self)  # per-call state stays off the shared executor (threads)
        runner.params, runner.record = lambda name: self.on_device(param(name)), record
        return fresh_outputs(self.graph, runner.run_graph(self.graph, inputs), self.xp, self.plan.stored)

    def run_node(self, node: Node, args: list[Any], into: Sequence[Any] | None = None) -> list[Any]:
        group = self.groups.get(node)
        if group is not None:
            return group(*args, into=into)
        if node.kind == "prim::Constant" and isinstance(node.attrs["value"], np.ndarray):
            return [self.on_device(node.attrs["value"])]
        if node.output in self.placements:  # a matmul writing its slice of a joined array (passes/joins.py)
            out, = self._output_allocator(node.outputs, [node.output.type])(into)
            return [self.xp.matmul(*args, out=out)]
        results = super().run_node(node, args)
        return [self._as_typed(v, r) for v, r in zip(node.outputs, results)]

    def on_device(self, array: Any) -> Any:
        """``array`` as this backend runs on it (a CuPy copy of a NumPy array for cuda)."""
        return self.launcher.prepare([array])[0]

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


def check_indices(kernel: Kernel, args: Sequence[Any], xp: Any) -> None:
    """NumPy's IndexError if an index of a gather that ``kernel`` reads is out of bounds in ``args``."""
    for source, index, arrays in kernel.index_checks:
        ops.check_index_bounds(xp, args[source].shape, index, [args[a] for a in arrays])


class Plan:
    """A graph's nodes as straight-line Python, made once per executor (as torch.fx generates ``forward``).

    Values are the generated function's locals, named as in the graph; constants and each step's
    runner are its globals; a parameter is read afresh each call and moved to the device by
    ``prepare``. A step launches a fusion group's kernel or runs one other node; the array a join's pieces are
    written into (passes/joins.py) is allocated before its first writer, which gets its slice (``into=``),
    and the join itself copies only the pieces no kernel wrote there. ``source`` shows the
    function, e.g. for a ``Linear`` layer::

        def run_plan(inputs, params):
            x, = inputs
            weight_1 = prepare(params('weight'))
            _4, = step0(weight_1)  # np::transpose
            _2, = step1(x, _4)  # np::matmul
            bias_1 = prepare(params('bias'))
            _5, = step2(_2, bias_1)  # gt::FusionGroup
            return [_5]
    """

    def __init__(self, executor: KernelExecutor):
        from ..codegen.python import Identifiers
        graph = executor.graph
        steps = [node for node in graph.nodes if node.kind not in ("prim::Constant", "prim::Param")]
        step_names = {node: f"step{k}" for k, node in enumerate(steps)}
        name = Identifiers()
        name.taken |= {"inputs", "prepare", "copy_output", *step_names.values()}
        namespace: dict[str, Any] = {"copy_output": functools.partial(executor.xp.array, copy=True),
                                     "prepare": executor.on_device}
        body: list[str] = []
        if graph.inputs:
            body.append(f"{assignment_targets([name(v) for v in graph.inputs])} = inputs")
        allocated: set[Node] = set()  # joins whose array is allocated (before their first writer)
        for node in graph.nodes:
            if node.kind == "prim::Constant":  # array constants move to the device once
                value = node.attrs["value"]
                namespace[name(node.output)] = executor.on_device(value) if isinstance(value, np.ndarray) else value
            elif node.kind == "prim::Param":
                body.append(f"{name(node.output)} = prepare(params({node.attrs['name']!r}))")
            elif node in allocated and not copied_pieces(node):
                continue  # every piece was written in place: the joined array is made
            else:
                step = step_names[node]
                namespace[step] = executor.groups.get(node) or functools.partial(_run_step, executor.run_node, node)
                args = [name(v) for v in node.inputs]
                into = [executor.placements.get(v) for v in node.outputs]
                for join in dict.fromkeys(p.join for p in into if p is not None and p.join not in allocated):
                    joined = join.output.type
                    namespace[f"{step}_joined"] = functools.partial(executor.xp.empty, joined.shape, joined.dtype)
                    body.append(f"{name(join.output)} = {step}_joined()  # written in place by its pieces")
                    allocated.add(join)
                if any(into):
                    slices = [None if p is None else f"{name(p.join.output)}[{step}_index{k}]" for k, p in enumerate(into)]
                    namespace.update({f"{step}_index{k}": p.index for k, p in enumerate(into) if p is not None})
                    args.append(f"into=({', '.join(map(str, slices))},)")
                elif node in allocated:  # a join copies the pieces not written in place into its array
                    namespace[step] = functools.partial(_copy_pieces, node, copied_pieces(node))
                    args.insert(0, name(node.output))
                body.append(f"{assignment_targets([name(v) for v in node.outputs])} = {step}({', '.join(args)})"
                            f"  # {node.kind}")
        self.stored = stored_outputs(graph)
        results = [f"copy_output({name(v)})" if stored else name(v) for v, stored in zip(graph.outputs, self.stored)]
        body.append(f"return [{', '.join(results)}]")
        self.source = "def run_plan(inputs, params):\n" + "".join(f"    {line}\n" for line in body)
        exec(compile(self.source, f"<gputrace plan of {graph.name}>", "exec"), namespace)
        self.run = namespace["run_plan"]


def _run_step(run_node: Callable[..., list], node: Node, *args: Any, into: Sequence[Any] | None = None) -> list[Any]:
    return run_node(node, list(args), into)


def _copy_pieces(join: Node, positions: list[int], joined: Any, *pieces: Any) -> list[Any]:
    """Copy the pieces of ``join`` at ``positions`` into ``joined``, whose other pieces were written in place."""
    for k in positions:
        joined[piece_index(join, k)] = pieces[k]
    return [joined]
