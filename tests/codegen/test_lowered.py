"""Lowering (gputrace/codegen/lowered.py) makes one typed object of a fused graph: each group's layout, decided in
gputrace/passes/layout.py, the kernel rendered from it, and the launch plan; it writes nothing into the graph."""
from __future__ import annotations

import re
import typing

import numpy as np
import pytest

import gputrace
from gputrace.backends.kernels import KernelExecutor, NoLaunch
from gputrace.codegen import Kernel, LaunchPlan, LoweredProgram
from gputrace.passes import layout

from .kernel_snapshot import type_only


def mlp_step(x, w, b):
    h = np.tanh(x @ w + b)
    return h - h.max(axis=-1, keepdims=True), x.sum(axis=0)


def graph_state(graph) -> tuple:
    """Everything lowering could write into a graph: its text, every node's attributes, subgraph names."""
    groups = graph.find_nodes("gt::FusionGroup")
    return (str(graph), [repr(n) for n in graph.nodes], [dict(n.attrs) for n in graph.nodes],
            [g.subgraph.name for g in groups])


def test_lowering_writes_nothing_into_the_graph():
    x, w, b = np.ones((8, 16), np.float32), np.ones((16, 32), np.float32), np.ones(32, np.float32)
    program = gputrace.trace(mlp_step, (x, w, b)).lower(x, w, b)
    before = graph_state(program.graph)
    assert repr(program.graph.find_nodes("gt::FusionGroup")[0]).startswith("<FusionGroup gt_fused_0_")  # by fusion
    lowered = program.lowered
    assert graph_state(program.graph) == before
    assert "_kernels" not in program.__dict__ and lowered is program.lowered  # lowered once, kept on the Program
    # kernels are named by fusion, in launch order: the graph's group names are the kernels' names
    groups = program.graph.find_nodes("gt::FusionGroup")
    assert [g.attrs["kernel"] for g in groups] == [k.name for k in program.kernels]
    assert [re.match(r"gt_fused_(\d+)_", k.name).group(1) for k in program.kernels] == ["0", "1"]


def test_the_lowered_program_is_typed_and_backends_read_it():
    hints = typing.get_type_hints(LoweredProgram)
    assert typing.Any not in hints.values() and set(hints) == {"graph", "layouts", "kernels", "plan"}
    assert typing.get_type_hints(KernelExecutor.__init__)["lowered"] is LoweredProgram
    x, w, b = np.ones((8, 16), np.float32), np.ones((16, 32), np.float32), np.ones(32, np.float32)
    traced = gputrace.trace(mlp_step, (x, w, b))
    lowered = traced.lower(x, w, b).lowered
    assert isinstance(lowered, LoweredProgram) and isinstance(lowered.plan, LaunchPlan)
    assert list(lowered.kernels) == list(lowered.layouts) == lowered.graph.find_nodes("gt::FusionGroup")
    assert all(isinstance(k, Kernel) for k in lowered.kernels.values())
    assert [step.name for step in lowered.plan] == ["cublas_matmul (CuPy)", *[k.name for k in lowered.kernels.values()]]
    executor = KernelExecutor(lowered, "emulate", launcher=NoLaunch())  # (results: every emulate test)
    assert executor.kernels is lowered.kernels and set(executor.groups) == set(lowered.kernels)


LAYOUT_CASES = {  # (function, input shapes, dtype): one group kind each
    "contiguous elementwise": (lambda x, y: np.tanh(x) * y, [(64, 100), (64, 100)], np.float32),
    "broadcast and strided": (lambda x, y: x.T + y, [(40, 30), (40,)], np.float32),
    "float64 elementwise": (lambda x, y: x * y + 1, [(1000,), (1000,)], np.float64),
    "short rows (lanes)": (lambda x, y: np.exp(x - x.max(-1, keepdims=True)) * y, [(300, 24), (300, 24)], np.float32),
    "rows held by a block": (lambda x, y: x / np.sum(x * y, -1, keepdims=True), [(64, 1000), (64, 1000)], np.float32),
    "a few long rows, split": (lambda x, y: (x * y).sum(-1), [(3, 100_000), (3, 100_000)], np.float32),
    "columns side by side": (lambda x, y: (x + y).mean(0), [(20_000, 64), (20_000, 64)], np.float32),
    "float64 rows": (lambda x, y: np.var(x * y, -1), [(16, 3000), (16, 3000)], np.float64),
}


@pytest.mark.parametrize("case", LAYOUT_CASES)
def test_each_group_is_rendered_from_the_layout_stored_for_it(case):
    fn, shapes, dtype = LAYOUT_CASES[case]
    traced = gputrace.trace(fn, tuple(np.ones((2,) * len(s), dtype) for s in shapes), check_trace=False)
    lowered = traced.lower(*(type_only(s, dtype) for s in shapes)).lowered
    for group, kernel in lowered.kernels.items():
        stored = lowered.layouts[group]
        assert kernel.layout is stored and layout.group_layout(group) == stored  # decided once, the same each time
        assert kernel.block == stored.block
        if isinstance(stored, layout.ElementwiseLayout):
            assert kernel.work_per_block == stored.block * stored.width
            assert f"constexpr int W = {stored.width};" in kernel.source
            assert f"constexpr int U = {stored.vectors_per_thread};" in kernel.source
            assert ("gt_vector_aligned" in kernel.source) == (stored.width > 1)
        else:
            assert kernel.elements == stored.units and f"__launch_bounds__({stored.block}," in kernel.source
            assert ("tickets" in kernel.source) == (stored.splits > 1)
            assert ("vectors_aligned" in kernel.source) == bool(stored.vectored), stored
            if stored.vectored:
                assert f"gt_vector_aligned<{stored.width}>" in kernel.source


def test_the_cases_cover_every_kind_of_layout():
    kinds = set()
    for fn, shapes, dtype in LAYOUT_CASES.values():
        traced = gputrace.trace(fn, tuple(np.ones((2,) * len(s), dtype) for s in shapes), check_trace=False)
        for stored in traced.lower(*(type_only(s, dtype) for s in shapes)).lowered.layouts.values():
            kinds.add(stored.kind + ("/split" if stored.splits > 1 else "") + ("/vectors" if stored.vectored else "")
                      if isinstance(stored, layout.Layout) else f"elementwise/width {stored.width}")
    assert {"lanes/vectors", "block/vectors", "block/split", "thread/split", "elementwise/width 4", "elementwise/width 2"} <= kinds, kinds
