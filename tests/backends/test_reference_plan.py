"""The numpy backend frees each value after its last use and writes ufunc results into dying buffers."""
from __future__ import annotations

import tracemalloc

import numpy as np

import gputrace
from gputrace.backends.reference import BLOCK_BYTES, IN_PLACE_BYTES, _sole_owner


def chain(x):
    """Eight ufuncs, each reading only the one before: eager NumPy needs one temporary at a time."""
    y = np.exp(-x * x)
    y = np.sqrt(y + 1.0) * 3.0 - x
    return np.tanh(y) / 2.0 + 0.25


def peak_bytes(fn, *args):
    tracemalloc.start()
    try:
        result = fn(*args)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_numpy_backend_keeps_one_buffer_where_eager_numpy_does_and_matches_it_bit_for_bit():
    x = np.random.default_rng(0).standard_normal(2**20).astype(np.float32)  # 4 MiB, above IN_PLACE_BYTES
    traced = gputrace.trace(chain, (x[:1000],))
    traced(x)  # lowered for this size once: the peak below is a call's
    got, traced_peak = peak_bytes(traced, x)
    want, eager_peak = peak_bytes(chain, x)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype and not np.shares_memory(got, x)
    # values kept to the end would need 8 buffers, values freed but not reused 2, reused 1
    assert traced_peak < 1.5 * x.nbytes, (traced_peak / x.nbytes, eager_peak / x.nbytes)


def test_small_arrays_and_inputs_are_never_overwritten():
    x = np.random.default_rng(1).standard_normal((3, 500)).astype(np.float32)
    assert x.nbytes < IN_PLACE_BYTES
    before = x.copy()
    traced = gputrace.trace(chain, (x,))
    np.testing.assert_array_equal(traced(x), chain(x))
    big = np.random.default_rng(2).standard_normal((2, IN_PLACE_BYTES // 4)).astype(np.float32)
    big_before = big.copy()
    np.testing.assert_array_equal(traced(big), chain(big))
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(big, big_before)  # an input is the caller's: never reused


def test_only_an_array_nothing_else_sees_may_be_overwritten():
    # called as the generated plan calls it, on a local name (not inside an assert, which keeps temporaries)
    array = np.ones(16)
    alone = _sole_owner(array)
    view = array[::2]
    with_view, of_view = _sole_owner(array), _sole_owner(view)
    del view
    alone_again = _sole_owner(array)
    held = [array]
    in_a_list = _sole_owner(array)
    held.clear()
    scalar = np.float32(1.0)
    of_scalar = _sole_owner(scalar)
    assert alone and alone_again
    assert not with_view  # a live view reads the same memory
    assert not of_view  # a view does not own its memory
    assert not in_a_list and not of_scalar


def test_blocks_of_a_product_nothing_reads_again_are_written_in_place_and_the_results_stay_bit_identical():
    """An LSTM's gates are column blocks of its matrix products: each gate's sum, sigmoid and product are written
    into its block once no live value lies there (the other gates' blocks are elsewhere), not into fresh memory.
    The results match eager NumPy bit for bit, and are arrays of their own (contiguous, owning their memory)."""
    from benchmarks import programs as bench
    lstm = bench.BENCHMARKS["lstm"]
    args = lstm.make(np.random.default_rng(0), {"batch": 1024, "inputs": 16, "hidden": 1024})
    gate = 1024 * 1024 * 4
    assert gate >= BLOCK_BYTES
    traced = gputrace.trace(lstm.fn, args)
    source = traced.lower(*args).executor("numpy").plan.source
    assert source.count("if sole_holder(") == 23, source  # each gate step but the two results
    traced(*args)
    got, traced_peak = peak_bytes(traced, *args)
    want = lstm.fn(*args)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w, strict=True)
        assert g.flags.c_contiguous and g.base is None
    # the two products (4 gates each) and the two results: nothing else
    assert traced_peak <= 2 * 4 * gate + 2 * gate + gate // 4, traced_peak / gate


def test_a_block_is_not_overwritten_while_a_value_in_it_lives():
    """A block that a later value still reads (an overlapping view of the same product) keeps its memory."""
    def overlapping(x, w):
        p = x @ w
        a, b = p[:, :512], p[:, 256:768]  # a and b share columns 256-511
        return np.exp(a) + 1, b * 2

    x, w = (np.random.default_rng(1).standard_normal(shape).astype(np.float32) for shape in ((2048, 8), (8, 768)))
    traced = gputrace.trace(overlapping, (x, w))
    assert "sole_holder" not in traced.lower(x, w).executor("numpy").plan.source
    for g, w_ in zip(traced(x, w), overlapping(x, w)):
        np.testing.assert_array_equal(g, w_)
