"""A reduction of every row's value (the mean of per-row losses) finished in the row kernel: each block combines
its rows' values and the launch's last block combines the blocks' (issue 17). Run on emulate (and cuda on a GPU)
against eager NumPy, at a row per group of lanes, per block and per thread, with one row, rows that are not a
multiple of a block's and more rows than the launch has blocks; in the emulator's reverse and random orders too.
"""
from __future__ import annotations

import numpy as np
import pytest

from gputrace.backends.host_compiler import host_compiler_info

from .backend_agreement import KERNEL_BACKENDS, assert_arrays_agree, run_on, trace

pytestmark = pytest.mark.skipif(not host_compiler_info()["available"], reason="no host C++ compiler for emulate")


@pytest.fixture(params=KERNEL_BACKENDS)
def backend(request):
    return request.param


def cross_entropy(logits, onehot):
    m = logits.max(-1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(-1))
    return (lse - (logits * onehot).sum(-1)).mean()


# (rows, cols): one row; 300 rows of 13 (a group of 4 lanes per row, 64 rows per block: 5 blocks, the last one
# part full); 5,000 rows (more than the emulator's blocks: each block adds several rows); 33 rows of 1,000 (a block
# per row)
SHAPES = [(1, 13), (300, 13), (5000, 7), (33, 1000)]


def cross_entropies(*pairs):
    return tuple(cross_entropy(logits, onehot) for logits, onehot in zip(pairs[::2], pairs[1::2]))


def totals(x, y):
    """Totals of every kind the row kernel finishes, over rows (lanes) and over columns (a thread per column)."""
    return (x.sum(-1).mean(), x.max(-1).max(), x.min(-1).sum(), (x > 0).any(-1).all(), (x > 1).sum(-1).sum(),
            np.abs(y).sum(0).mean(), y.max(0).min())


def _inputs(rng, dtype):
    pairs = []
    for rows, cols in SHAPES:
        logits = (rng.standard_normal((rows, cols)) * 3).astype(dtype)
        pairs += [logits, np.eye(cols, dtype=dtype)[rng.integers(0, cols, rows)]]
    return pairs


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_the_mean_of_per_row_losses_finishes_in_the_row_kernel(backend, dtype):
    rng = np.random.default_rng(0)
    pairs = _inputs(rng, dtype)
    traced = trace(cross_entropies, pairs)
    assert len(traced.lower(*pairs).kernels) == len(SHAPES)  # one kernel per cross-entropy (it was two)
    got = run_on(traced, pairs, backend)
    for (rows, cols), logits, onehot, loss in zip(SHAPES, pairs[::2], pairs[1::2], got):
        exact = cross_entropy(logits.astype(np.longdouble), onehot.astype(np.longdouble))
        want = cross_entropy(logits, onehot)
        assert loss.dtype == want.dtype and loss.shape == ()
        # compensated in each thread, a tree over threads and blocks: as close to the exact loss as NumPy's
        eps = np.finfo(dtype).eps
        assert abs(loss - exact) <= max(4 * abs(want - exact), 8 * eps * abs(exact)), (rows, cols, loss, want)


def test_totals_of_every_kind_agree_with_numpy(backend):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((300, 13)) * 3).astype(np.float32)
    y = rng.standard_normal((40, 1500)).astype(np.float32)  # a thread per column: 1,500 columns
    traced = trace(totals, [x, y])
    assert len(traced.lower(x, y).kernels) == 2
    for k, (want, got) in enumerate(zip(totals(x, y), run_on(traced, [x, y], backend))):
        assert_arrays_agree(np.asarray(want), got, rtol=1e-6, what=f"total {k}")


@pytest.mark.parametrize("order", ["reverse", "random:7"])
def test_the_last_block_sees_every_blocks_partial_result_in_any_order(order, monkeypatch):
    """The emulator runs a block's threads (and the blocks) in another order: a partial result written after its
    ticket, or a barrier missing before the block's combine, gives another total."""
    monkeypatch.setenv("GPUTRACE_EMULATE_ORDER", order)
    rng = np.random.default_rng(2)
    pairs = _inputs(rng, np.float32)
    traced = trace(cross_entropies, pairs)
    for logits, onehot, loss in zip(pairs[::2], pairs[1::2], run_on(traced, pairs, "emulate")):
        np.testing.assert_allclose(loss, cross_entropy(logits, onehot), rtol=2e-6)
