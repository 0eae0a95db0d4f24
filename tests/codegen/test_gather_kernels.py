"""Gathers read inside the kernels of their consumers (``wte[ids]``, ``probs[np.arange(n), y]``, ``x[:, idx]``,
``np.take``): kernel counts, results against eager NumPy, NumPy's IndexError for indices out of bounds, and no
read out of bounds (checked under AddressSanitizer)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gputrace
from gputrace.backends.host_compiler import host_compiler
from gputrace.codegen import Kernel


def embed(wte, wpe, ids):
    T = ids.shape[1]
    h = wte[ids] + wpe[np.arange(T)]  # a token embedding, positions, then a layer norm: one kernel
    return (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)


def pick(probs, y, x, idx):
    n = len(y)
    nll = -np.log(probs[np.arange(n), y])  # two aligned index arrays
    cols = x[:, idx] * 2 + 1
    taken = np.take(x, idx, axis=1).max(-1)  # a row reduction of a gather
    rows = x.T[idx[:2]] - 1  # a strided source
    return nll, cols, taken, rows


def embed_inputs(B, T, V, C, dtype, id_dtype, seed):
    rng = np.random.default_rng(seed)
    low = -V if np.dtype(id_dtype).kind == "i" else 0
    return (rng.standard_normal((V, C)).astype(dtype), rng.standard_normal((T + 3, C)).astype(dtype),
            rng.integers(low, V, (B, T)).astype(id_dtype))


def pick_inputs(n, m, k, dtype, id_dtype, seed):
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.1, 1, (n, m)).astype(dtype)
    low = -m if np.dtype(id_dtype).kind == "i" else 0
    return (probs, rng.integers(0, m, n).astype(id_dtype), rng.standard_normal((n, m)).astype(dtype),
            rng.integers(low, m, k).astype(id_dtype)[::-1])  # a negative stride


def check(fn, inputs, traced, tolerance):
    for backend in ("numpy", "emulate"):
        for got, want in zip(traced.run(*inputs, backend=backend), fn(*inputs)):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance, err_msg=backend)


@pytest.mark.parametrize("dtype, id_dtype, tolerance, other_shapes", [(np.float32, np.int64, 1e-5, True),
                                                                      (np.float16, np.uint8, 1e-2, False)])
def test_gathers_are_loads_in_their_consumers_kernel(dtype, id_dtype, tolerance, other_shapes):
    inputs = embed_inputs(2, 5, 11, 24, dtype, id_dtype, seed=0)
    traced = gputrace.trace(embed, inputs)
    check(embed, inputs, traced, tolerance)
    if other_shapes:
        check(embed, embed_inputs(3, 4, 7, 40, dtype, id_dtype, seed=1), traced, tolerance)
    plan = traced.lower(*inputs).plan
    assert len(plan) == 1 and plan[0].ops == ["gather", "gather", "add", "mean", "subtract", "var", "add", "sqrt",
                                              "divide"]

    inputs = pick_inputs(6, 5, 4, dtype, id_dtype, seed=2)
    traced = gputrace.trace(pick, inputs)
    check(pick, inputs, traced, tolerance)
    plan = traced.lower(*inputs).plan
    assert all(isinstance(k, Kernel) for k in plan)
    assert sorted(k.ops for k in plan) == [["gather", "log", "negative"], ["gather", "max"], ["gather", "multiply", "add"],
                                           ["gather", "subtract"]]


def out_of_bounds(table, ids, x, idx):
    g = table[ids]  # returned and read: a kernel writes it, another reads its own gather
    return (g * 2).sum(-1), np.exp(x[:, idx]), g, (table + 1)[ids]  # computed for the selected elements only


def test_indices_out_of_bounds_raise_numpys_index_error_on_emulate():
    table, x = np.ones((5, 3), np.float32), np.ones((2, 4), np.float32)
    good = (np.array([0, -5, 4]), np.array([[1, -4]]))
    traced = gputrace.trace(out_of_bounds, (table, good[0], x, good[1]))
    for ids, idx in [([0, 7, 1], [[1, 2]]), ([0, -6, 1], [[1, 2]]), ([0, 1, 2], [[9, 0]]), ([4, 0, 0], [[-5, 0]])]:
        ids, idx = np.array(ids), np.array(idx)
        with pytest.raises(IndexError) as numpy_error:
            out_of_bounds(table, ids, x, idx)
        for backend in ("numpy", "emulate"):
            with pytest.raises(IndexError, match=f"^{numpy_error.value}$"):
                traced.run(table, ids, x, idx, backend=backend)
    for backend in ("numpy", "emulate"):  # negative indices count from the end
        for got, want in zip(traced.run(table, *good[:1], x, good[1], backend=backend), out_of_bounds(table, good[0], x, good[1])):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    assert [k.ops for k in traced.lower(table, *good[:1], x, good[1]).plan] == [
        ["gather", "multiply", "sum"], ["gather", "exp"], ["gather", "gather", "add"]]
    with pytest.raises(IndexError, match="^index 7 is out of bounds for axis 0 with size 5$"):
        gputrace.trace(lambda t, i: t[i], (table, good[0])).run(np.ones((5, 0), np.float32), np.array([7]), backend="emulate")
    unsigned = gputrace.trace(lambda t, i: t[i] + 1, (table, np.array([0, 4], np.uint64)))
    with pytest.raises(IndexError, match="^index 18446744073709551615 is out of bounds for axis 0 with size 5$"):
        unsigned.run(table, np.array([0, 2**64 - 1], np.uint64), backend="emulate")


# ----------------------------------------------------------------------------- AddressSanitizer

ASAN_RUN = textwrap.dedent("""
    import numpy as np, gputrace
    from gputrace.backends.host_compiler import build_host_module
    table = np.random.default_rng(0).standard_normal((5, 2)).astype(np.float32)
    traced = gputrace.trace(lambda t, i: t[i] * 2, (table, np.array([0, 4])))
    ids = np.array([1, 5, -6, 4])  # 5 and -6 are out of bounds: read, they would be the 8 bytes after the table
    if {unchecked}:  # the same kernel with the bounds check taken out: AddressSanitizer must see the read
        kernel = traced.lower(table, ids).plan[0]
        source = kernel.source.replace('#include "gputrace_kernel.cuh"', '#include "gputrace_kernel.cuh"\\n'
                                       '#define gt_index_in_bounds(raw, n, q) ((q) = (raw) < 0 ? (raw) + (n) : (raw), true)')
        out, flag = np.empty((4, 2), np.float32), np.zeros(1, np.uint32)
        build_host_module(source, [kernel.name]).launch(kernel.name, 1, 32, [table, ids, out, flag, *kernel.scalar_args])
        print("read unchecked")
    else:
        try:
            traced.run(table, ids, backend="emulate")
        except IndexError as error:
            print("IndexError:", error)
""")


def run_under_asan(tmp_path, unchecked):
    env = dict(os.environ, GPUTRACE_EMULATE_FLAGS="-fsanitize=address -fno-omit-frame-pointer",
               LD_PRELOAD=subprocess.run([*host_compiler().command, "-print-file-name=libasan.so"], capture_output=True,
                                         text=True, check=True).stdout.strip(),
               ASAN_OPTIONS="detect_leaks=0", GPUTRACE_CACHE_DIR=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-c", ASAN_RUN.format(unchecked=unchecked)], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_a_gather_reads_nothing_out_of_bounds_under_address_sanitizer(tmp_path):
    if "g++" not in host_compiler().name:
        pytest.skip("AddressSanitizer's runtime is looked up with g++")
    done = run_under_asan(tmp_path, unchecked=False)
    assert "AddressSanitizer" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 0 and done.stdout.strip() == "IndexError: index 5 is out of bounds for axis 0 with size 5", \
        done.stdout + done.stderr[-3000:]
    caught = run_under_asan(tmp_path, unchecked=True)  # the check, not luck, keeps the reads in bounds
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in caught.stderr and caught.returncode != 0, \
        caught.stdout + caught.stderr[-3000:]
