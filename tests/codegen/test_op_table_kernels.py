"""Every elementwise op of the op table rendered into a generated kernel and run on ``emulate`` (and on
``cuda`` where there is a GPU), against eager NumPy, over every pair (triple) of special values in every
dtype the op accepts.

One traced program per dtype (or dtype pair) returns every op's output: fusion makes one kernel of it,
one build. Exact ops are compared bit for bit (NaN where NaN, the sign of zero); the transcendental
functions within ``TRANSCENDENTAL_RTOL`` of NumPy, with zeros, infinities and NaN exactly where NumPy
has them. The mutation check (``python -m tests.mutation``) swaps op renderings and runs these tests.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import gputrace
from gputrace import ops
from gputrace.backends.host_compiler import host_compiler_info

from .backend_agreement import KERNEL_BACKENDS, TRANSCENDENTAL_RTOL, run_on

pytestmark = pytest.mark.skipif(not host_compiler_info()["available"], reason="no host C++ compiler for emulate")


@pytest.fixture(params=KERNEL_BACKENDS)
def backend(request):
    return request.param


DTYPES = [np.dtype(c) for c in ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint64",
                                "uint32", "uint16", "uint8", "bool")]
# Not correctly rounded by libm or NumPy: within a few ulp (the rest must be bit-exact).
TRANSCENDENTAL = set(
    "exp exp2 expm1 log log2 log10 log1p cbrt sin cos tan arcsin arccos arctan arctan2 sinh cosh tanh arcsinh "
    "arccosh arctanh hypot power logaddexp logaddexp2".split())
# The op table's elementwise ops with a device function; astype's is every cast, checked from every dtype.
KERNEL_OPS = sorted(op.name for op in ops.OPS.values() if op.category == ops.ELEMENTWISE and op.cuda)


def special_values(dtype: np.dtype) -> np.ndarray:
    """Signed zeros, infinities, NaN, the extremes, the smallest normal and subnormal numbers, halves."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        info = np.finfo(dtype)
        values = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1, -1, 0.5, -0.5, 1.5, -2.5, 3, -7, info.max, -info.max,
                  info.tiny, -info.tiny, info.smallest_subnormal, -info.smallest_subnormal]
    elif dtype.kind == "b":
        values = [False, True]
    else:
        info = np.iinfo(dtype)
        bits = 8 * dtype.itemsize  # shifts by the width and by one less: NumPy defines both
        values = [info.min, info.max, 0, 1, 2, 3, 7, info.max - 1, info.min + 1, bits - 1, bits]
        values += [-1, -2, -3, -7] if dtype.kind == "i" else [info.max // 2]
        values = list(dict.fromkeys(values))  # by value: for floats it would merge -0.0 and 0.0
    return np.array(values, dtype=dtype)


def every_triple(*dtypes: np.dtype) -> list[np.ndarray]:
    """x, y, z over every combination of the dtypes' special values (so every pair for x, y), as reversed
    views: operands read element by element keep the kernel's vector loop to one vector per thread (a
    quarter of the code of four contiguous narrow operands: this file's builds take half as long)."""
    grids = np.meshgrid(*[special_values(d) for d in dtypes], indexing="ij")
    return [g.ravel()[::-1].copy()[::-1] for g in grids]


def calls(name: str, x_dtype: np.dtype, y_dtype: np.dtype):
    """How each op is called in the batch: [(label, fn(x, y, z))]; where and clip take three operands."""
    if name == "astype":
        return [(f"astype({d})", lambda x, y, z, d=d: x.astype(d)) for d in DTYPES]
    if name == "where":
        return [("where(x, y, z)", lambda x, y, z: np.where(x, y, z)),
                ("where(x < y, x, z)", lambda x, y, z: np.where(x < y, x, z))]
    if name == "clip":
        return [("clip(x, y, z)", lambda x, y, z: np.clip(x, y, z))]
    ufunc = getattr(np, name)
    if ufunc.nin == 1:
        return [(name, lambda x, y, z: ufunc(x))]
    if name == "power" and y_dtype.kind in "iu":  # NumPy refuses negative integer exponents
        return [(name, lambda x, y, z: ufunc(x, y & 7))]
    return [(name, lambda x, y, z: ufunc(x, y))]


# Integers and bools reach a transcendental's float loop by the cast astype checks: in the default tier one
# unary and one binary function stand for the rest (each costs NVRTC a second per integer dtype); the slow
# tier runs them all.
REPRESENTATIVES = {"exp", "arctan2"}


def batch(x_dtype, y_dtype, z_dtype, every_transcendental=False):
    """Every op NumPy accepts on these dtypes: [(op, label, fn)], found by calling eager NumPy once."""
    x, y, z = (special_values(d)[:2] for d in (x_dtype, y_dtype, z_dtype))
    found = []
    for name in KERNEL_OPS:
        if (name in TRANSCENDENTAL and name not in REPRESENTATIVES and not every_transcendental
                and np.dtype(x_dtype).kind != "f" and name != "power"):
            continue
        for label, fn in calls(name, x_dtype, y_dtype):
            try:
                with np.errstate(all="ignore"):
                    fn(x, y, z)
            except TypeError:  # no loop for these dtypes (bool - bool, invert of a float, ...)
                continue
            found.append((name, label, fn))
    return found


def assert_op_agrees(name: str, label: str, want: np.ndarray, got: np.ndarray, inputs: list[np.ndarray]) -> None:
    """Bit for bit (NaN where NaN, zeros' signs); transcendentals within a few ulp where NumPy's value is
    finite and nonzero. Float-to-integer casts only where NumPy defines them (a finite value in range)."""
    want, got = np.asarray(want), np.asarray(got)
    assert got.dtype == want.dtype and got.shape == want.shape, \
        f"{label}: {got.dtype}{got.shape}, NumPy gives {want.dtype}{want.shape}"
    x = inputs[0]
    if name == "astype" and x.dtype.kind == "f" and want.dtype.kind in "iu":
        info = np.iinfo(want.dtype)
        with np.errstate(all="ignore"):
            defined = (x > float(info.min) - 1) & (x < float(info.max) + 1)
        want, got, inputs = want[defined], got[defined], [a[defined] for a in inputs]
    if want.dtype.kind != "f":
        wrong = got != want
    else:
        bits = f"u{want.itemsize}"
        wrong = got.view(bits) != want.view(bits)
        wrong &= ~(np.isnan(got) & np.isnan(want))  # any NaN is NaN (its sign bit is not NumPy's promise)
        if name == "clip" or (name in ("fmax", "fmin") and want.dtype != np.float16):
            # a tie of the two zeros: NumPy returns either, by inner loop (SIMD or not, the array's length)
            wrong &= ~((got == 0) & (want == 0))
        if name in TRANSCENDENTAL:
            rtol = TRANSCENDENTAL_RTOL[want.dtype]
            loose = np.isfinite(want) & (want != 0) & np.isfinite(got)
            with np.errstate(all="ignore"):
                close = np.abs(got.astype(np.float64) - want) <= rtol * np.abs(want.astype(np.float64))
            wrong &= ~(loose & close)
    if wrong.any():
        rows = [f"  {[a[i].item() for a in inputs]} -> {got[i].item()!r}, NumPy {want[i].item()!r}"
                for i in np.flatnonzero(wrong)[:8]]
        pytest.fail(f"{label} on {', '.join(str(a.dtype) for a in inputs)}: {int(wrong.sum())} of {want.size} "
                    "differ:\n" + "\n".join(rows))


def assert_every_op_agrees(backend: str, dtypes: tuple, every_transcendental=False) -> gputrace.TracedFunction:
    cases = batch(*dtypes, every_transcendental=every_transcendental)

    def every_op(x, y, z):
        return tuple(fn(x, y, z) for _, _, fn in cases)
    every_op.__name__ = "every_op_" + "_".join(str(d) for d in dtypes)

    inputs = every_triple(*dtypes)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = every_op(*inputs)
        traced = gputrace.trace(every_op, tuple(inputs), check_trace=False)
    got = run_on(traced, inputs, backend)
    assert len(got) == len(want)
    for (name, label, _), w, g in zip(cases, want, got):
        assert_op_agrees(name, label, w, g, inputs)
    return traced


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_op_in_one_kernel_per_dtype(backend, dtype):
    traced = assert_every_op_agrees(backend, (dtype, dtype, dtype))
    assert len(traced.kernels) == 1


# Promotion between kinds and widths: the operands cast to NumPy's loop dtype inside the kernel
# (int64 with uint64 computes in float64, float16 with float32 in float32; int8 with uint8 in int16, slow tier).
MIXED = [("int64", "uint64", "int64"), ("float16", "float32", "float16")]
MORE_MIXED = [("int8", "uint8", "int8"), ("int32", "float32", "float64"), ("uint16", "float16", "uint16"), ("bool", "int16", "float64")]


@pytest.mark.parametrize("dtypes", MIXED, ids="-".join)
def test_every_op_in_one_kernel_per_dtype_pair(backend, dtypes):
    traced = assert_every_op_agrees(backend, tuple(np.dtype(d) for d in dtypes))
    assert len(traced.kernels) == 1


@pytest.mark.slow
@pytest.mark.parametrize("dtypes", MORE_MIXED + [(d.name,) * 3 for d in DTYPES if d.kind != "f"], ids="-".join)
def test_every_transcendental_of_every_dtype(backend, dtypes):
    traced = assert_every_op_agrees(backend, tuple(np.dtype(d) for d in dtypes), every_transcendental=True)
    assert len(traced.kernels) == 1


def test_every_op_of_the_table_is_in_a_batch():
    """A new elementwise op must be reached by some dtype's batch (else it is never rendered here)."""
    covered = {name for dtype in DTYPES for name, _, _ in batch(dtype, dtype, dtype)}
    assert covered == set(KERNEL_OPS), sorted(set(KERNEL_OPS) - covered)
