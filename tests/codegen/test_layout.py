"""The layout of a reduction group is decided once (gputrace/passes/layout.py): fusion's question "are this
space's rows split?" and the kernel the renderer writes give the same answer, at sizes on both sides of
every threshold (rows held by a block, split over blocks, columns split over threads)."""
from __future__ import annotations

import numpy as np
import pytest

import gputrace
from gputrace.passes import layout
from gputrace.passes.fuse import Space

from .kernel_snapshot import type_only

SHAPES = [((3, 16384), 1), ((3, 16385), 1), ((600, 20000), 1), ((2, 70000), 1), ((100_000,), 0),
          ((16384, 40), 0), ((16385, 40), 0), ((40000, 3), 0), ((20000, 2048), 0), ((4096, 256), 0),
          ((7, 40000), 0), ((50, 7, 3000), (0, 1)), ((5, 4, 23), 2)]


def lowered(fn, shape):
    traced = gputrace.trace(fn, (np.ones((2,) * len(shape), np.float32),), check_trace=False)
    return traced.lower(type_only(shape)).kernels


@pytest.mark.parametrize("shape, axis", SHAPES, ids=str)
def test_fusion_and_the_kernel_agree_on_split_rows(shape, axis):
    """Where fusion expects split rows, the kernel splits them and an element reading its row's result starts
    the next kernel; elsewhere that element joins the reduction's kernel, which then keeps its rows whole."""
    axes = (axis,) if isinstance(axis, int) else axis
    split = Space(shape, axes).rows_are_split()
    [reduced] = lowered(lambda x: x.sum(axis=axis), shape)
    centred = lowered(lambda x: x - x.mean(axis=axis, keepdims=True), shape)
    if split:
        assert reduced.layout.splits > 1 and "tickets" in reduced.source, reduced.layout
        assert len(centred) == 2 and centred[0].layout.splits > 1
    else:
        assert len(centred) == 1 and centred[0].layout.splits == 1, centred[0].layout
        assert "tickets" not in centred[0].source


def test_a_centred_column_keeps_its_epilogue_where_a_block_holds_it():
    """Where fusion keeps ``x - x.mean(0)`` in one kernel, the kernel does not split the columns (it could
    not: its elements read their column's mean) and holds each column in a block's registers."""
    [kernel] = lowered(lambda x: x - x.mean(axis=0), (16384, 40))
    assert (kernel.layout.kind, kernel.layout.splits, kernel.layout.items) == ("block", 1, 16)
    assert len(lowered(lambda x: x - x.mean(axis=0), (16385, 40))) == 2
    assert layout.block_holds(16384) and not layout.block_holds(16385)
