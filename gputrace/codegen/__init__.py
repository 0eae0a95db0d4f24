"""Code generation: fusion groups become CUDA kernels rendered from ``cuda_templates/``."""
from __future__ import annotations

import logging
from typing import Any

from ..passes.fuse import fuse
from ..passes.joins import copied_pieces
from .. import ops
from .elementwise import render_elementwise
from .reduction import render_reduction
from .kernel import Kernel, LaunchPlan, LibraryCall, memory_bytes
from .traffic import bytes_read

log = logging.getLogger("gputrace.kernels")
LIBRARY_OPS = {"np::matmul": "cublas_matmul (CuPy)", "np::dot": "cublas_dot (CuPy)"}


def render_group(node: Any, number: int) -> Kernel:
    """The kernel of one ``gt::FusionGroup`` node: a row kernel if it reduces, else elementwise."""
    if any(n.kind in ops.OPS and ops.lookup(n.kind).category == ops.REDUCTION for n in node.subgraph.nodes):
        kernel = render_reduction(node, number)
    else:
        kernel = render_elementwise(node, number)
    kernel.bytes_read = bytes_read(node)
    return kernel


def kernels_of(program: Any) -> list[Kernel]:
    """The kernels of a Program, rendered once, in launch order."""
    kernels = program.__dict__.get("_kernels")
    if kernels is None:
        groups = [n for n in program.graph.nodes if n.kind == "gt::FusionGroup"]
        kernels = [render_group(node, number) for number, node in enumerate(groups)]
        for node, kernel in zip(groups, kernels):
            node.attrs["kernel"] = kernel.name
            log.debug("rendered %s: %d elements, block %d, %d bytes to move\n%s", kernel.name, kernel.elements,
                      kernel.block, kernel.bytes_moved, kernel.source)
        program.__dict__["_kernels"] = kernels
    return kernels


def launch_plan(program: Any) -> LaunchPlan:
    """What a call does on the device, in order: kernels and library calls (views cost nothing), with the bytes
    each moves and the bytes the program must move."""
    kernels = iter(kernels_of(program))
    plan: list[Kernel | LibraryCall] = []
    for node in program.graph.nodes:
        if node.kind == "gt::FusionGroup":
            plan.append(next(kernels))
        elif node.kind in LIBRARY_OPS or node.kind.startswith("np::") and node.kind not in _FREE_OPS:
            copied = copied_pieces(node)  # a join whose other pieces were written into it copies these
            if copied == []:
                continue
            inputs = node.inputs if copied is None else [node.inputs[k] for k in copied]
            written = [v.type for v in node.outputs] if copied is None else [v.type for v in inputs]
            plan.append(LibraryCall(LIBRARY_OPS.get(node.kind, f"{node.op} (array library)"),
                                    [v.name for v in inputs], [v.name for v in node.outputs],
                                    [v.type for v in inputs], written))
    return LaunchPlan(plan, bytes_required(program.graph))


def bytes_required(graph: Any) -> int:
    """The bytes a graph must move: the arrays it reads (inputs, parameters, array constants), each once, and
    its outputs, each written once."""
    read = [v for v in graph.inputs if v.users] + [n.output for n in graph.nodes
                                                   if n.kind in ("prim::Param", "prim::Constant") and n.output.users]
    written = [v for v in graph.outputs if v.producer is not None and v.producer.kind != "prim::Constant"]
    return sum(memory_bytes(v.type) for v in {*read, *written})


_FREE_OPS = {"np::transpose", "np::getitem", "np::broadcast_to", "np::expand_dims", "np::squeeze",
             "np::T", "np::swapaxes", "np::diagonal"}

__all__ = ["fuse", "kernels_of", "launch_plan", "bytes_required", "Kernel", "LaunchPlan", "LibraryCall", "render_group"]
