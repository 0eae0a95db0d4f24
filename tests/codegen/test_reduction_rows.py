"""Every reduction over rows whose answer depends on its identity and its finishing step: rows of one
sign (a max starting at 0 instead of -inf gives 0), all NaN, all infinite, both infinities, signed
zeros, equal values, the extreme at the last element, huge and subnormal values; in every dtype and
every layout the row kernel chooses (a group of lanes per row, a block per row held in registers or
re-read, rows split over blocks, a thread per column, columns split over threads); single-element and
empty rows. Against eager NumPy: bit for bit where NumPy is exact, sums and products within a few eps.

One traced program per (dtype, layout) returns every reduction (``every_reduction``: one kernel); the
rows of each pattern are several runs of that kernel. The programs and shapes of the default tier are
those of test_emulate_programs where they exist (the same source: no second build in a whole run).
"""
from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest

from gputrace.backends.host_compiler import host_compiler_info

from .backend_agreement import KERNEL_BACKENDS, REDUCTIONS, every_reduction, run_on, trace

pytestmark = [pytest.mark.skipif(not host_compiler_info()["available"], reason="no host C++ compiler for emulate"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]  # eager NumPy on NaN rows and empty rows


@pytest.fixture(params=KERNEL_BACKENDS)
def backend(request):
    return request.param


DTYPES = [np.dtype(c) for c in ("float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8",
                                "uint16", "uint32", "uint64", "bool")]
EXACT = ("max", "min", "argmax", "argmin", "any", "all")
# (shape, axis) -> the layout reduction.py picks for it (float64 rows of 8,192 to 16,384 are re-read per pass)
LAYOUTS = {
    "lanes": ((4, 23), -1),             # a group of lanes of one warp per row (test_reductions_of_every_dtype)
    "column lanes": ((6, 4), 0),        # the same over strided columns (test_nan_and_infinities_...)
    "block": ((5, 4096), 1),            # a block per row, held in registers (test_integer_rows_held_...)
    "block re-read": ((3, 10000), -1),  # float64: a block per row, read again in each pass
    "split rows": ((2, 40000), -1),     # few long rows, each split over blocks
    "whole array": ((200, 300), None),  # one row, split over blocks
    "columns": ((40, 1100), 0),         # a thread per column
    "split columns": ((40000, 3), 0),   # few long columns, each split over threads
}
DEFAULT = [("lanes", d.name) for d in DTYPES] + [("column lanes", "float32"), ("block", "int32"),
                                                 ("block", "float32"), ("columns", "float32")]


def patterns(dtype: np.dtype, n: int) -> dict[str, np.ndarray]:
    """Rows of ``n`` elements; the program reduces ``x + x``, so integers stay within half their range."""
    j = np.arange(n)
    spread = 1 + (j * 7 + 2) % 5  # 1..5, the smallest and largest away from the first element
    last = j == n - 1
    if dtype.kind == "b":
        rows = {"false": j < 0, "true": j >= 0, "true last": last, "false last": ~last, "alternating": j % 2 == 1}
        return {k: v.astype(bool) for k, v in rows.items()}
    rows = {"positive": spread, "zeros": 0 * j, "equal": 2 + 0 * j, "max last": np.where(last, 3, 2),
            "min last": np.where(last, 1, 2), "zeros and ones": j % 2,
            "steps": (8 * j) // n - (4 if dtype.kind != "u" else 0)}  # parts of a split row: different means
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        rows |= {"near max": info.max // 2 + 0 * j, "near min": info.min // 2 + 0 * j}
    if dtype.kind in "if":
        rows |= {"negative": -spread, "max last, negative": np.where(last, -1, -2), "descending": -(j % 50) - 1}
    if dtype.kind == "f":
        info = np.finfo(dtype)
        nan, inf = np.nan, np.inf
        rows |= {"nan": np.full(n, nan), "inf": np.full(n, inf), "-inf": np.full(n, -inf),
                 "both infinities": np.where(j % 2 == 1, -inf, inf), "one nan": np.where(j == n // 2, nan, -spread),
                 "signed zeros": np.where(j % 2 == 1, 0.0, -0.0), "negative zeros": np.full(n, -0.0),
                 "huge": np.full(n, float(info.max) / 4), "subnormal": float(info.smallest_subnormal) * (1 + j % 2),
                 # each small term rounds away when added to 1: a compensated sum keeps it
                 "one and tiny": np.where(j == 0, 1.0, 0.375 * float(info.eps)),
                 "equal, inexact mean": np.full(n, 0.1)}
    return {k: np.asarray(v).astype(dtype) for k, v in rows.items()}


def runs(dtype: np.dtype, shape: tuple, axis) -> list[tuple[list[str], np.ndarray]]:
    """Arrays of ``shape`` whose rows (along ``axis``) are the patterns, as many arrays as it takes."""
    if axis is None:
        n = int(np.prod(shape))
        return [([name], row.reshape(shape)) for name, row in patterns(dtype, n).items()]
    moved = np.moveaxis(np.empty(shape, dtype), axis, -1).shape
    rows, n = int(np.prod(moved[:-1])), moved[-1]
    found = list(patterns(dtype, n).items())
    result = []
    for start in range(0, len(found), rows):
        chosen = [found[(start + k) % len(found)] for k in range(rows)]
        block = np.stack([row for _, row in chosen]).reshape(moved)
        result.append(([name for name, _ in chosen], np.ascontiguousarray(np.moveaxis(block, -1, axis))))
    return result


def order_dependent(name: str, y_rows: np.ndarray, accumulator: np.dtype) -> np.ndarray:
    """Rows whose NumPy result depends on the order of its operations: a product with a zero whose other
    factors overflow (0 or NaN, by where the zero comes in the order of the multiplications)."""
    if name != "prod" or y_rows.dtype.kind != "f":
        return np.zeros(len(y_rows), bool)
    with np.errstate(all="ignore"):
        magnitude = np.where(y_rows == 0, 0.0, np.log2(np.abs(y_rows.astype(np.float64)))).sum(-1)
    return (y_rows == 0).any(-1) & (magnitude > np.log2(float(np.finfo(accumulator).max)))


def disagreement(name: str, want: np.ndarray, got: np.ndarray, y_rows: np.ndarray) -> np.ndarray:
    """Per row: bit for bit for the exact reductions and integer results (the sign of zero too, except a max
    or min over both zeros, whose sign is NumPy's inner loop's choice); sums, means, products, variances
    within a few eps, their NaN, infinities and zeros exactly."""
    if want.dtype.kind != "f":
        return got != want
    bits = f"u{want.itemsize}"
    wrong = (got.view(bits) != want.view(bits)) & ~(np.isnan(got) & np.isnan(want))
    if name in ("max", "min"):
        zeros = y_rows == 0
        both_zeros = (zeros & np.signbit(y_rows)).any(-1) & (zeros & ~np.signbit(y_rows)).any(-1)
        return wrong & ~(both_zeros & (got == 0) & (want == 0))
    if name in EXACT:
        return wrong
    accumulator = np.dtype(np.float32 if want.dtype == np.float16 else want.dtype)
    eps = float(np.finfo(want.dtype).eps)
    rtol = 2e-3 if want.dtype == np.float16 else 16 * eps
    atol = 0.0
    if name in ("var", "std"):  # the rounded mean's error d adds N d^2 to NumPy's squares (two-pass: not ours)
        with np.errstate(all="ignore"):
            scale = (eps * np.abs(y_rows.astype(np.float64)).max(-1, initial=0)) ** 2
        atol = 4 * (scale if name == "var" else np.sqrt(scale))
    loose = np.isfinite(want) & np.isfinite(got) & ((want != 0) | (atol > 0))  # else zeros keep their sign
    with np.errstate(all="ignore"):
        close = np.abs(got.astype(np.float64) - want) <= rtol * np.abs(want.astype(np.float64)) + atol
    return wrong & ~(loose & close) & ~order_dependent(name, y_rows, accumulator)


SUBNORMAL_SCALE = 2 ** 1074  # times every finite float64: an integer


def rounded(value: Fraction) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def exact_results(y_rows: np.ndarray, ddof: dict[str, float]) -> dict[str, np.ndarray]:
    """sum, mean, var and std of each row computed exactly (integer sums of the values scaled by 2^1074),
    rounded once to float64; rows with NaN or infinities get NaN (NumPy's own result is used for those)."""
    result = {name: np.full(len(y_rows), np.nan) for name in ("sum", "mean", "var", "std")}
    for r, row in enumerate(y_rows.astype(np.float64)):
        n = len(row)
        if not np.isfinite(row).all() or n == 0:
            continue
        scaled = [p * (SUBNORMAL_SCALE // q) for p, q in map(float.as_integer_ratio, row.tolist())]
        s1, s2 = sum(scaled), sum(v * v for v in scaled)
        result["sum"][r] = rounded(Fraction(s1, SUBNORMAL_SCALE))
        result["mean"][r] = rounded(Fraction(s1, n * SUBNORMAL_SCALE))
        for name in ("var", "std"):
            if n - ddof[name] > 0:
                var = Fraction(n * s2 - s1 * s1, n * SUBNORMAL_SCALE ** 2) / Fraction(n - ddof[name])
                result[name][r] = math.sqrt(rounded(var)) if name == "std" else rounded(var)
    return result


def assert_row_results_agree(name: str, want: np.ndarray, truth: np.ndarray | None, got: np.ndarray,
                             rows_of: list[str], y_rows: np.ndarray, what: str) -> None:
    """``got`` agrees with eager NumPy's ``want``, or (float sums, means, products, variances) with the exact
    answer rounded to the dtype, ``truth``: NumPy adds a column row after row (its float32 var of 40,000
    rows errs by 6e-4), and a float16 column in float16 (32768 + 4 is 32768; its var's mean overflows at
    65504): gputrace accumulates compensated, float16 in float32."""
    want, got = np.asarray(want), np.asarray(got)
    assert got.dtype == want.dtype and got.shape == want.shape, \
        f"{what}: {got.dtype}{got.shape}, NumPy gives {want.dtype}{want.shape}"
    want, got = want.reshape(-1), got.reshape(-1)
    wrong = disagreement(name, want, got, y_rows)
    if truth is not None:
        wrong &= disagreement(name, np.asarray(truth).reshape(-1), got, y_rows)
    if wrong.any():
        lines = [f"  row {rows_of[i % len(rows_of)]!r}: {got[i].item()!r}, NumPy {want[i].item()!r}"
                 + ("" if truth is None else f", exact {np.asarray(truth).reshape(-1)[i].item()!r}")
                 for i in np.flatnonzero(wrong)[:8]]
        pytest.fail(f"{what}: {int(wrong.sum())} of {want.size} rows differ:\n" + "\n".join(lines))


def assert_special_rows_agree(backend: str, layout: str, dtype: np.dtype) -> None:
    shape, axis = LAYOUTS[layout]
    program = every_reduction(axis, False)
    traced = None
    for rows_of, x in runs(dtype, shape, axis):
        if traced is None:
            traced = trace(program, (x,))
            assert len(traced.kernels) == 1
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = program(x)
            truth = program(x.astype(np.float64)) if dtype.kind == "f" else [None] * len(want)
            y = x + x
        y_rows = np.moveaxis(y, axis, -1).reshape(-1, y.shape[axis]) if axis is not None else y.reshape(1, -1)
        if dtype.kind == "f":  # exact where the row is finite, else NumPy's float64 answer
            exact = exact_results(y_rows, {"var": 0, "std": 1})
            truth = [np.where(np.isnan(exact[name]), np.ravel(t), exact[name]).reshape(np.shape(t))
                     if name in exact else t for name, t in zip(REDUCTIONS, truth)]
        for name, w, t, g in zip(REDUCTIONS, want, truth, run_on(traced, (x,), backend)):
            exact = name in EXACT or t is None
            assert_row_results_agree(name, w, None if exact else np.asarray(t).astype(dtype), g, rows_of, y_rows,
                                     f"{name}(axis={axis}) of {dtype}{shape} ({layout}) on {backend}")


@pytest.mark.parametrize("layout, dtype", DEFAULT, ids=[f"{layout}-{dtype}".replace(" ", "_") for layout, dtype in DEFAULT])
def test_special_rows(backend, layout, dtype):
    assert_special_rows_agree(backend, layout, np.dtype(dtype))


SLOW = [(layout, d.name) for layout in LAYOUTS for d in DTYPES if (layout, d.name) not in DEFAULT]


@pytest.mark.slow
@pytest.mark.parametrize("layout, dtype", SLOW, ids=[f"{layout}-{dtype}".replace(" ", "_") for layout, dtype in SLOW])
def test_special_rows_in_every_layout(backend, layout, dtype):
    assert_special_rows_agree(backend, layout, np.dtype(dtype))


def test_mean_with_an_integer_dtype(backend):
    """np.mean(x, dtype=int) sums in that dtype (wrapping) and divides in float64, cast back (NumPy's
    _mean): exactly, for rows near the extremes too."""
    dtype = np.dtype(np.int64)
    program = lambda x: (np.mean(x, axis=-1, dtype=np.int64), np.mean(x, axis=-1, dtype=np.int16))  # noqa: E731
    traced = None
    for rows_of, x in runs(dtype, (4, 23), -1):
        traced = traced or trace(program, (x,))
        with np.errstate(all="ignore"):
            want = program(x)
        for name, w, g in zip(("mean(dtype=int64)", "mean(dtype=int16)"), want, run_on(traced, (x,), backend)):
            assert_row_results_agree("mean", w, None, g, rows_of, x, f"{name} of {dtype} on {backend}")
    assert len(traced.kernels) == 1
