"""A reduction over a leading axis with a broadcast epilogue (batch norm: ``x - x.mean(0)`` over ``sqrt(x.var(0))``)
reads ``x`` from memory once where a block's columns fit in shared memory (issue 17): each thread holds its column
there for the mean, the variance's deviations and the epilogue, and the variance's first pass is the mean's sum.
Against eager NumPy on emulate (cuda on a GPU); columns that do not fit (batch norm's large size) are read again.
"""
from __future__ import annotations

import numpy as np
import pytest

import gputrace
from benchmarks import programs as bench
from gputrace.backends.host_compiler import host_compiler_info
from gputrace.passes import layout

from .backend_agreement import KERNEL_BACKENDS, assert_backend_matches
from .kernel_snapshot import type_only


def batchnorm(x, weight, bias):
    return bench.batchnorm(x, weight, bias)


def kernels_of(shape, dtype=np.float32):
    inputs = (type_only(shape, dtype), type_only(shape[1:], dtype), type_only(shape[1:], dtype))
    small = tuple(np.ones(a.shape, dtype) for a in (np.empty((5, 4)), np.empty(4), np.empty(4)))
    return gputrace.trace(batchnorm, small, check_trace=False).lower(*inputs).kernels


def test_batch_norm_reads_a_small_batch_once():
    """128 x 1024 float32 (the benchmark's small size): 64 columns of 128 per block, 32 KiB of shared memory."""
    [kernel] = kernels_of((128, 1024))
    assert kernel.layout.per_thread and kernel.layout.shared and kernel.block == 64, kernel.layout
    assert kernel.source.count("in0[") == 1  # one load of x; the rest read the column held in shared memory
    assert "the same sum, computed above" in kernel.source  # var's mean is the mean's


def test_columns_too_long_for_shared_memory_are_read_again():
    """The large size: 32768 rows of a column (128 KiB) fit no block; two kernels, as before."""
    assert layout.shared_block(32768, 4) == 0
    statistics, epilogue = kernels_of((32768, 1024))
    assert not statistics.layout.shared and isinstance(epilogue.layout, layout.ElementwiseLayout)
    assert statistics.inputs[0] in epilogue.inputs  # x, read again


@pytest.mark.skipif(not host_compiler_info()["available"], reason="no host C++ compiler for emulate")
@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("shape, dtype", [((128, 1024), np.float32), ((100, 1030), np.float32),
                                          ((60, 1030), np.float64)], ids=str)
def test_batch_norm_of_columns_held_in_shared_memory_matches_numpy(backend, shape, dtype):
    """1030 columns: the last block's threads past the last column hold nothing; float64 columns of 60 fit too."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    weight, bias = rng.standard_normal(shape[1:]).astype(dtype), rng.standard_normal(shape[1:]).astype(dtype)
    [kernel] = gputrace.trace(batchnorm, (x, weight, bias), check_trace=False).lower(x, weight, bias).kernels
    assert kernel.layout.shared, kernel.layout
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    assert_backend_matches(backend, batchnorm, (x, weight, bias), rtol=rtol, atol=rtol, scale_atol=True)
