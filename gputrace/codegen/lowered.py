"""Lowering: a fused graph becomes a ``LoweredProgram``, each fusion group's layout, its kernel and the launch plan.

The backends, ``Program`` and the displays read this one typed object; lowering reads the graph and writes
nothing into it (fusion named the kernels, ``passes/layout.py`` decides the layouts).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from ..ir import Graph, Node
from ..passes.joins import copied_pieces
from ..passes.layout import ElementwiseLayout, GroupLayout, Layout, lay_out
from .elementwise import render_elementwise
from .kernel import Kernel, LaunchPlan, LibraryCall, memory_bytes
from .reduction import render_reduction
from .traffic import bytes_read

log = logging.getLogger("gputrace.kernels")
LIBRARY_OPS = {"np::matmul": "cublas_matmul (CuPy)", "np::dot": "cublas_dot (CuPy)"}
FREE_OPS = {"np::transpose", "np::getitem", "np::broadcast_to", "np::expand_dims", "np::squeeze",
            "np::T", "np::swapaxes", "np::diagonal"}  # views: no step of the launch plan


@dataclass(frozen=True)
class LoweredProgram:
    """A fused graph lowered for its signature: ``layouts`` and ``kernels`` by fusion group, in launch order, and
    the launch plan (kernels and library calls, with the bytes they move)."""
    graph: Graph
    layouts: dict[Node, GroupLayout]
    kernels: dict[Node, Kernel]
    plan: LaunchPlan


def render_group(node: Node, layout: GroupLayout) -> Kernel:
    """The kernel of one ``gt::FusionGroup`` node, laid out as ``layout``: a row kernel if it reduces."""
    if isinstance(layout, Layout):
        kernel = render_reduction(node, layout)
    else:
        assert isinstance(layout, ElementwiseLayout), layout
        kernel = render_elementwise(node, layout)
    kernel.bytes_read = bytes_read(node)
    return kernel


def lower(graph: Graph) -> LoweredProgram:
    """Lay out every fusion group of ``graph`` (already fused), render its kernel and plan the launches."""
    layouts = lay_out(graph)
    kernels = {node: render_group(node, layout) for node, layout in layouts.items()}
    for kernel in kernels.values():
        log.debug("rendered %s: %d elements, block %d, %d bytes to move\n%s", kernel.name, kernel.elements,
                  kernel.block, kernel.bytes_moved, kernel.source)
    return LoweredProgram(graph, layouts, kernels, launch_plan(graph, kernels))


def launch_plan(graph: Graph, kernels: dict[Node, Kernel]) -> LaunchPlan:
    """What a call does on the device, in order: kernels and library calls (views cost nothing), with the bytes
    each moves and the bytes the program must move."""
    plan: list[Kernel | LibraryCall] = []
    for node in graph.nodes:
        if node.kind == "gt::FusionGroup":
            plan.append(kernels[node])
        elif node.kind in LIBRARY_OPS or node.kind.startswith("np::") and node.kind not in FREE_OPS:
            copied = copied_pieces(node)  # a join whose other pieces were written into it copies these
            if copied == []:
                continue
            inputs = node.inputs if copied is None else [node.inputs[k] for k in copied]
            written = [v.type for v in node.outputs] if copied is None else [v.type for v in inputs]
            plan.append(LibraryCall(LIBRARY_OPS.get(node.kind, f"{node.op} (array library)"),
                                    [v.name for v in inputs], [v.name for v in node.outputs],
                                    [v.type for v in inputs], written))
    return LaunchPlan(plan, bytes_required(graph))


def bytes_required(graph: Graph) -> int:
    """The bytes a graph must move: the arrays it reads (inputs, parameters, array constants), each once, and
    its outputs, each written once."""
    read = [v for v in graph.inputs if v.users] + [n.output for n in graph.nodes
                                                   if n.kind in ("prim::Param", "prim::Constant") and n.output.users]
    written = [v for v in graph.outputs if v.producer is not None and v.producer.kind != "prim::Constant"]
    return sum(memory_bytes(v.type) for v in {*read, *written})
