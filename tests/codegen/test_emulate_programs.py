"""Every kind of kernel gputrace generates, run on ``emulate`` (and on ``cuda`` where there is a GPU,
the same tests marked ``gpu``) and compared with the ``numpy`` backend.

Elementwise programs over every dtype, layout and special value; reductions over every axis
combination; reductions fused with producers and consumers (softmax ... attention). Programs return
many outputs at once, so one kernel covers many ops (g++ builds each kernel in about half a second).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmarks import programs as bench
from gputrace.backends.host_compiler import host_compiler_info

from gputrace.backends.nvrtc import nvrtc_available
from gputrace.codegen import Kernel
from tests.fusion_targets import LONG_ROW_PROGRAMS, TARGETS, WRITTEN_PLAINLY, Target

from .backend_agreement import (KERNEL_BACKENDS, REDUCTIONS, TRANSCENDENTAL_RTOL, assert_arrays_agree,
                                assert_backend_matches, every_reduction, run_on, outputs_of, trace)

pytestmark = pytest.mark.skipif(not host_compiler_info()["available"], reason="no host C++ compiler for emulate")


@pytest.fixture(params=KERNEL_BACKENDS)
def backend(request):
    """Each test runs on emulate, and again on cuda where there is a GPU."""
    return request.param

FLOATS = [np.dtype(t) for t in (np.float16, np.float32, np.float64)]
SIGNED = [np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64)]
UNSIGNED = [np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.uint64)]
ALL_DTYPES = FLOATS + SIGNED + UNSIGNED + [np.dtype(bool)]


def special_values(dtype: np.dtype) -> np.ndarray:
    """NaN, +-inf, -0.0, the extremes and the small values where rules change sign or round."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        info = np.finfo(dtype)
        values = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1, -1, 0.5, -0.5, 1.5, -2.5, 3, -7, info.max, -info.max,
                  info.tiny, -info.tiny]
    elif dtype.kind == "b":
        values = [False, True]
    else:
        info = np.iinfo(dtype)
        values = [info.min, info.max, 0, 1, 2, 3, 7, info.max - 1, info.min + 1]
        values += [-1, -2, -3, -7] if dtype.kind == "i" else [info.max // 2]
    return np.array(values, dtype=dtype)


def sample(rng: np.random.Generator, dtype: np.dtype, shape: tuple, *, special: float = 0.3,
           scale: float = 3.0) -> np.ndarray:
    """Random values of ``dtype`` with a fraction ``special`` of special values mixed in."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        x = (rng.standard_normal(shape) * scale).astype(dtype)
    elif dtype.kind == "b":
        x = rng.random(shape) < 0.5
    else:
        info = np.iinfo(dtype)
        small = rng.integers(-8 if dtype.kind == "i" else 0, 9, shape)
        wide = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
        x = np.where(rng.random(shape) < 0.5, small, wide).astype(dtype)
    if special:
        mask = rng.random(shape) < special
        x = np.where(mask, rng.choice(special_values(dtype), shape), x).astype(dtype)
    return np.asarray(x, dtype=dtype)


# ============================================================================= elementwise programs


def float_arithmetic(x, y):
    """Everything NumPy computes exactly (correctly rounded or exact): compared bit for bit.

    ``+ 0.0`` turns -0.0 into 0.0 where NumPy's choice between equal operands depends on its loop: clip
    with array bounds returns the bound on a tie in some inner loops and ``x`` in others.
    """
    return (x + y, x - y, x * y, x / y, x // y, x % y, np.fmod(x, y), np.maximum(x, y), np.minimum(x, y),
            -x, np.abs(x), np.sign(x), np.floor(x), np.ceil(x), np.trunc(x), np.rint(x), np.square(x),
            np.sqrt(np.abs(y)), np.copysign(x, y), np.reciprocal(y), np.heaviside(x, y),
            x == y, x != y, x < y, x <= y, x > y, x >= y,
            np.logical_and(x, y), np.logical_or(x, y), np.logical_xor(x, y), np.logical_not(x),
            np.isnan(x), np.isinf(x), np.isfinite(x), np.signbit(x),
            np.where(x > y, x, y), np.clip(x, -1.5, 2.0), np.clip(x, y, 2.0) + 0.0, x * 2.5 + 1, 3 - x, x > 0.5,
            x.astype(np.int8), x.astype(np.int64), x.astype(np.uint8), x.astype(bool))


def float_transcendental(x, y):
    return (np.exp(x), np.exp2(x), np.expm1(x), np.log(x), np.log2(x), np.log10(x), np.log1p(x), np.cbrt(x),
            np.sin(x), np.cos(x), np.tan(x), np.arcsin(x), np.arccos(x), np.arctan(x), np.sinh(x), np.cosh(x),
            np.tanh(x), np.arcsinh(x), np.arccosh(x), np.arctanh(x), np.arctan2(x, y), np.hypot(x, y),
            np.power(x, y), x ** 3, np.logaddexp(x, y), np.logaddexp2(x, y), np.deg2rad(x), np.rad2deg(x))


def integer_arithmetic(x, y):
    """Wrapping arithmetic, Python's floor rules (x // 0 == 0), shifts, bits, powers, casts."""
    return (x + y, x - y, x * y, x // y, x % y, np.fmod(x, y), x / y, np.maximum(x, y), np.minimum(x, y),
            -x, np.abs(x), np.sign(x), np.square(x), x ** (y & 3), np.power(x, 2), np.reciprocal(x),
            x & y, x | y, x ^ y, ~x, x << y, x >> y, x << 3, x >> 1,
            x == y, x != y, x < y, x <= y, x > y, x >= y, np.logical_and(x, y), np.logical_not(x),
            np.where(x > y, x, y), np.clip(x, 0, 5), np.clip(x, y, 100), x + 1, 7 - x, x * 2, x > 3,
            np.floor(x), np.rint(x).astype(x.dtype), x.astype(np.float32), x.astype(np.float64),
            x.astype(np.float16), x.astype(np.int8), x.astype(np.uint64), x.astype(bool))


def bool_logic(x, y):
    return (x + y, x * y, x & y, x | y, x ^ y, ~x, x == y, x != y, x < y, x >= y, np.maximum(x, y),
            np.minimum(x, y), np.logical_and(x, y), np.logical_xor(x, y), np.logical_not(x), np.where(x, y, ~y),
            np.abs(x), x + 1, x * 2.5, x.astype(np.int8), x.astype(np.float16), x.astype(np.float32),
            x.astype(np.uint64), np.isnan(x), np.floor(x))


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_float_arithmetic_is_bit_exact(backend, dtype, rng):
    x, y = sample(rng, dtype, (7, 37)), sample(rng, dtype, (7, 74))[::-1, ::2]
    traced = assert_backend_matches(backend, float_arithmetic, (x, y))
    assert len(traced.kernels) == 1


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_float_transcendentals_within_a_few_ulp(backend, dtype, rng):
    x, y = sample(rng, dtype, (5, 41), scale=1.0), sample(rng, dtype, (5, 41), scale=1.0)
    assert_backend_matches(backend, float_transcendental, (x, y), rtol=TRANSCENDENTAL_RTOL[dtype])


@pytest.mark.parametrize("dtype", SIGNED + UNSIGNED, ids=str)
def test_integer_arithmetic_is_exact(backend, dtype, rng):
    x, y = sample(rng, dtype, (6, 29)), sample(rng, dtype, (29, 6)).T
    traced = assert_backend_matches(backend, integer_arithmetic, (x, y))
    assert len(traced.kernels) == 1


def test_bool_logic_is_exact(backend, rng):
    x, y = sample(rng, bool, (5, 19)), sample(rng, bool, (5, 19))
    assert_backend_matches(backend, bool_logic, (x, y))


def test_floor_divide_and_remainder_follow_python_signs(backend):
    """Every pair of signs and zeros, as integers and as floats (NumPy's npy_divmod)."""
    a = np.array([7, -7, 7, -7, 0, 0, 7, -7, 6, -6, 1, -1], np.int32)
    b = np.array([2, 2, -2, -2, 3, -3, 0, 0, -3, 3, -1, 1], np.int32)
    fn = lambda a, b: (a // b, a % b, np.fmod(a, b), np.remainder(b, a))
    assert_backend_matches(backend, fn, (a, b))
    for dtype in (np.float32, np.float64):
        fa = np.concatenate([a, [np.inf, -np.inf, 5.5, -5.5, -0.0, np.nan]]).astype(dtype)
        fb = np.concatenate([b, [3, 3, np.inf, np.inf, 2, 1]]).astype(dtype)
        assert_backend_matches(backend, fn, (fa, fb))


def test_mixed_dtypes_promote_like_numpy(backend, rng):
    """int8 + uint8 -> int16, int64 vs uint64 comparisons, int x float16, Python scalars stay weak."""
    i8, u8 = sample(rng, np.int8, (4, 9)), sample(rng, np.uint8, (4, 9))
    i64, u64 = sample(rng, np.int64, (4, 9)), sample(rng, np.uint64, (4, 9))
    f16, f32 = sample(rng, np.float16, (4, 9), scale=1), sample(rng, np.float32, (4, 9), scale=1)
    fn = lambda i8, u8, i64, u64, f16, f32: (
        i8 + u8, i8 * f16, u8 / i8, i64 == u64, i64 < u64, u64 >= i64, i8 + f32, f16 * f32, i64 + f16,
        np.maximum(u8, i8), np.where(i8 > 0, u8, f16), f16 + 1, f16 * 2.5, i8 - 3, u64 // 3, i8 < 0.5,
        (f16 > f32) | (i8 == 0), np.clip(i8, u8, 100))
    assert_backend_matches(backend, fn, (i8, u8, i64, u64, f16, f32))


def test_grid_stride_loop_covers_more_elements_than_threads(backend, rng):
    """More elements than the emulated grid has threads: the grid-stride loop wraps around."""
    x = sample(rng, np.float32, (3, 10007), special=0.01)
    traced = assert_backend_matches(backend, lambda x: np.where(x > 0, x * x, -x) + 1, (x,))
    kernel = traced.kernels[0]
    assert kernel.elements > 16 * kernel.block


def chain(*xs):
    """(x0 * 3 + x1) * 3 + ...: every operand read contiguously, exact in every dtype (integers wrap)."""
    result = xs[0] * 3
    for x in xs[1:]:
        result = (result + x) * 3
    return result


# vectors a thread loads before computing: 48 bytes over the bytes of one vector step, at most 4
VECTORS_PER_THREAD = {("float32", 1): 3, ("float32", 2): 2, ("float32", 3): 1, ("float16", 1): 3,
                      ("float64", 2): 2, ("int8", 1): 4, ("int8", 5): 2}


@pytest.mark.parametrize("dtype, operands", list(VECTORS_PER_THREAD), ids=lambda v: str(v))
def test_threads_load_several_vectors_before_computing(backend, dtype, operands, rng):
    """Sizes whose last grid steps cover only some of a thread's vectors, plus a scalar tail; and views
    one element off a vector boundary (the scalar loop does all)."""
    n = 3 * 16384 * 8 + 5
    xs = [sample(rng, np.dtype(dtype), (n + 1,), special=0.05) for _ in range(operands)]
    traced = assert_backend_matches(backend, chain, [x[:n] for x in xs])
    assert f"constexpr int U = {VECTORS_PER_THREAD[dtype, operands]};" in traced.kernels[0].source
    assert_backend_matches(backend, traced, [x[1:] for x in xs])
    assert_backend_matches(backend, traced, [x[:n - 3 * 1024 - 1] for x in xs])


@pytest.mark.parametrize("second, vectors", [("transposed", 2), ("one value", 3), ("a row broadcast down", 2)])
def test_operands_read_element_by_element_count_toward_the_bytes_loading(backend, second, vectors, rng):
    """A strided operand is read element by element, 16 bytes per vector step all the same: with x's
    vector it makes 32 bytes (2 steps ahead); one value for all elements costs nothing (3 steps, as x alone)."""
    x = sample(rng, np.float32, (3 * 1024 + 1, 64))
    y = {"transposed": sample(rng, np.float32, (64, 3 * 1024 + 1)).T, "one value": np.float32([[2.5]]),
         "a row broadcast down": sample(rng, np.float32, (64,))}[second]
    traced = assert_backend_matches(backend, lambda x, y: x * y - 1, (x, y))
    assert f"constexpr int U = {vectors};" in traced.kernels[0].source


@pytest.mark.skipif(not nvrtc_available(), reason="needs NVRTC")
def test_gelu_issues_its_vector_loads_before_computing():
    """SASS (sm_90) of GELU's vector loop: three 16-byte loads, then the first tanh (MUFU.EX2)."""
    x = np.ones(1 << 20, np.float32)
    sass = trace(bench.gelu, (x,)).kernels[0].sass("sm_90")
    first_use = sass.index("MUFU.EX2")
    assert sass[:first_use].count("LDG.E.128") == 3, sass[:first_use]


# -- layouts: broadcast, transposed, sliced, negatively strided, 0-d, size-0, size-1

def layout_program(x, y):
    return np.where(x > y, x * y, x - y) + 2, np.maximum(x, 0) * y


def _layouts(rng, dtype):
    def a(*shape):
        return sample(rng, dtype, shape, special=0.1)

    base = a(6, 8)
    return {
        "broadcast": (a(3, 1, 5), a(4, 1)),
        "transposed": (a(5, 4).T, a(4, 5)),
        "both_transposed": (a(4, 5, 3).transpose(2, 0, 1), a(5, 4, 3).transpose(2, 1, 0)),
        "sliced": (base[::2, 1:6], base[1::2, :5]),
        "negative": (base[::-1, ::-2], a(6, 4)[:, ::-1]),
        "zero_d": (a(), a()),
        "zero_d_and_matrix": (a(), a(3, 4)),
        "size_zero": (a(0, 5), a(1, 5)),
        "size_one": (a(1, 1), a(1)),
        "broadcast_view": (np.broadcast_to(a(5), (4, 5)), a(4, 1)),
    }


def test_layouts(backend, rng):
    """Index arithmetic does not depend on the dtype: the integer programs read transposed views too."""
    for name, (x, y) in _layouts(rng, np.dtype(np.float32)).items():
        try:
            assert_backend_matches(backend, layout_program, (x, y))
        except AssertionError as exc:
            raise AssertionError(f"layout {name}: x {x.shape} strides {x.strides}, y {y.shape}: {exc}") from None


def test_one_trace_runs_at_many_layouts(backend, rng):
    """A traced function specialises per signature: views of other strides reuse the trace."""
    x = sample(rng, np.float64, (6, 6))
    traced = trace(lambda x, y: np.sqrt(np.abs(x)) * y - x, (x, x))
    for a, b in [(x, x), (x[::-1], x.T), (x[::2, ::3], x[1::2, 1::3])]:
        assert_backend_matches(backend, traced, (a, b))


# -- programs written by users

@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_gelu(backend, dtype, rng):
    x = sample(rng, dtype, (4, 257), special=0.05)
    traced = assert_backend_matches(backend, bench.gelu, (x,), rtol=TRANSCENDENTAL_RTOL[dtype],
                                    atol=TRANSCENDENTAL_RTOL[dtype], scale_atol=True)
    assert len(traced.kernels) == 1


def test_black_scholes(backend, rng):
    n = 3000
    inputs = (bench.uniform(rng, (n,), 5.0, 30.0), bench.uniform(rng, (n,), 1.0, 100.0),
              bench.uniform(rng, (n,), 0.25, 10.0))
    traced = assert_backend_matches(backend, bench.black_scholes, inputs, rtol=1e-5, atol=1e-6, scale_atol=True)
    assert len(traced.kernels) == 1


def test_chain_and_diamond(backend, rng):
    x = sample(rng, np.float32, (33, 17), scale=1)
    chain = assert_backend_matches(backend, lambda x: np.tanh(np.exp(np.sin(x) * 2 + 1) - 3), (x,),
                                   rtol=TRANSCENDENTAL_RTOL[x.dtype])
    diamond = assert_backend_matches(backend, lambda x, y: (lambda a: (np.exp(a), a * 2, a))(x * y + 1),
                                     (x, x.T.copy().T), rtol=TRANSCENDENTAL_RTOL[x.dtype])
    assert len(chain.kernels) == 1 and len(diamond.kernels) == 1


# ============================================================================= reductions

EPS = {np.dtype(np.float16): 2.0 ** -10, np.dtype(np.float32): 2.0 ** -23, np.dtype(np.float64): 2.0 ** -52}


def summation_tolerance(x, axis) -> float:
    """NumPy's pairwise sum and a block's tree sum both err by a few eps times the sum of |x| (of 2x here)."""
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    with np.errstate(all="ignore"):
        magnitude = np.abs(2 * x.astype(np.float64)).sum(axis=axis)
    finite = np.asarray(magnitude)[np.isfinite(magnitude)]
    return 16 * EPS[dtype] * float(finite.max(initial=0.0))


def assert_reductions_agree(backend, x, axis, keepdims, names=REDUCTIONS, rtol=None):
    rtol = 8 * EPS[x.dtype] if rtol is None and x.dtype.kind == "f" else (rtol or 1e-12)
    traced = trace(every_reduction(axis, keepdims, names), (x,))
    want = outputs_of(traced.run(x, backend="numpy"))
    got = run_on(traced, (x,), backend)
    atol = summation_tolerance(x, axis)
    for name, w, g in zip([n for n in names if not (n.startswith("arg") and isinstance(axis, tuple))], want, got):
        exact = name in ("max", "min", "argmax", "argmin", "any", "all") or np.asarray(w).dtype.kind != "f"
        if name == "prod" and x.dtype.kind != "f":
            exact = True  # wrapping integer products are exact in any order
        assert_arrays_agree(w, g, rtol=0 if exact else rtol, atol=0 if exact else atol,
                            what=f"{name}(axis={axis}, keepdims={keepdims}) of {x.dtype}{x.shape}")
    return traced


def _axis_choices(ndim):
    subsets = [c for r in range(1, ndim + 1) for c in itertools.combinations(range(ndim), r)]
    return [None] + [s[0] if len(s) == 1 else s for s in subsets]


@pytest.mark.parametrize("shape", [(37,), (5, 6), (3, 4, 5)], ids=str)
def test_every_reduction_over_every_axis_combination(backend, shape, rng):
    x = sample(rng, np.float32, shape, special=0)
    x[..., 0] = np.abs(x[..., 0]) + 0.5  # prod of small values underflows less
    for axis in _axis_choices(len(shape)):
        for keepdims in (False, True):  # the same kernel: keepdims only changes the output's shape
            traced = assert_reductions_agree(backend, x, axis, keepdims, ("sum", "max", "argmin", "std"))
            assert len(traced.kernels) == 1  # one kernel computes them all


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_reductions_of_every_dtype(backend, dtype, rng):
    """Accumulator dtypes as NumPy's: ints sum in int64, float16 accumulates in float32, bool counts."""
    x = sample(rng, dtype, (4, 23), special=0.1, scale=1.0)
    if np.dtype(dtype).kind in "iu":
        x = (x % 16).astype(dtype)  # no overflow in var's squares (int64 -> float64 is exact then)
    names = [n for n in REDUCTIONS if not (np.dtype(dtype) == np.float16 and n in ("var", "std", "prod"))]
    assert_reductions_agree(backend, x, -1, False, names, rtol=4e-3 if dtype == np.float16 else None)


def test_nan_and_infinities_propagate_like_numpy(backend):
    """NaN wins max/min/sum and counts as the arg-extreme (first occurrence); inf - inf is NaN."""
    x = np.array([[1, np.nan, 3, np.nan], [np.inf, -np.inf, 0, 1], [-0.0, 0.0, -1, 2], [5, np.inf, np.inf, 1],
                  [-np.inf, -np.inf, 2, 2], [0, 0, 0, 0]], np.float32)
    for axis in (0, 1):
        assert_reductions_agree(backend, x, axis, False)


@pytest.mark.parametrize("shape, axis", [((2**20,), None), ((4, 2**18), 1), ((2**18, 4), 0)],
                         ids=["full", "rows", "columns"])
def test_float32_sums_are_at_least_as_accurate_as_numpy(backend, shape, axis, rng):
    """Issue 4: float32 accumulation at least as accurate as NumPy's pairwise summation, and within 1e-6
    where NumPy's is worse (its column sums add row after row). Values near 30000 make a plain running sum
    lose digits, and the variance's mean error d adds N d^2 to its squares."""
    x = (rng.random(shape) + 30000).astype(np.float32)
    fns = {name: (lambda x, name=name: getattr(np, name)(x, axis=axis)) for name in ("sum", "mean", "var", "std")}
    for name, fn in fns.items():
        truth = fn(x.astype(np.float64))
        [got] = run_on(trace(fn, (x,)), (x,), backend)
        ours, numpys = (np.max(np.abs(r.astype(np.float64) / truth - 1)) for r in (got, fn(x)))
        assert ours <= max(min(numpys, 1e-6), 1e-7), (name, ours, numpys)


@pytest.mark.parametrize("dtype, rtol", [(np.float16, 1e-3), (np.float32, 2e-7), (np.float64, 1e-14)], ids=str)
def test_var_and_std_of_few_long_rows_are_split_over_blocks(backend, dtype, rtol, rng):
    """A few long rows are each split over several blocks; the last block merges the parts' means and
    squared deviations (Chan et al.). Exact to the dtype's rounding against float64, NaN and inf as NumPy."""
    x = (rng.standard_normal((3, 50001)) * 4 + 100).astype(dtype)
    fn = lambda x: (x.var(axis=1), x.std(axis=1, ddof=1), x.var(), np.std(x, ddof=2.5), x.mean(axis=1))  # noqa: E731
    traced = trace(fn, (x,))
    assert [k.elements > 3 for k in traced.kernels] == [True, True], "rows and the whole are split over blocks"
    truth = [r.astype(dtype) for r in fn(x.astype(np.float64))]
    names = ["var(axis=1)", "std(axis=1)", "var()", "std()", "mean"]
    for name, want, got in zip(names, truth, run_on(traced, (x,), backend)):
        assert_arrays_agree(want, got, rtol=rtol, atol=0, what=f"{name} of {x.dtype}{x.shape}")
    x[1, 7], x[2, 40000] = np.nan, np.inf  # NaN in row 1; inf - inf is NaN in row 2
    rows = run_on(traced, (x,), backend)[0]
    assert np.isnan(rows[1]) and np.isnan(rows[2]) and np.isfinite(rows[0])


@pytest.mark.parametrize("shape", [(100_000,), (3, 40_000)], ids=str)
@pytest.mark.parametrize("name", sorted(LONG_ROW_PROGRAMS))
def test_programs_over_few_long_rows_agree_across_their_split_kernels(backend, name, shape, rng):
    """Split rows end their kernel where an element reads the row's result (test_passes); the kernels that
    follow read it from memory. Values as NumPy's, a NaN in one row spreads over that row only."""
    x = rng.standard_normal(shape).astype(np.float32)
    target = LONG_ROW_PROGRAMS[name]
    traced = assert_backend_matches(backend, target.fn, (x,), rtol=1e-5, atol=1e-6, scale_atol=True)
    assert len(traced.kernels) == target.kernels
    x.flat[12345] = np.nan
    assert_backend_matches(backend, traced, (x,), rtol=1e-5, atol=1e-6, scale_atol=True)


@pytest.mark.parametrize("cols", [3, 5000, 40000], ids=["lanes", "block", "split"])
def test_var_and_std_whose_squares_overflow_are_inf_like_numpy(backend, cols):
    """Finite values whose squared deviations overflow: NumPy's var is inf; the two-pass correction (the
    squares minus the deviations' sum squared over N) must not turn it into inf - inf = NaN, as it did in
    every layout. Row 0's sum overflows in every order (mean inf, deviations -inf); row 1's mean is 0."""
    x = np.zeros((2, cols), np.float32)
    x[0, [0, cols // 2, cols - 1]] = 3e38
    x[1, :2] = 1e20, -1e20
    fn = lambda x: (x.var(axis=1), x.std(axis=1, ddof=1), x.var())  # noqa: E731
    with np.errstate(over="ignore", invalid="ignore"):
        want = [np.asarray(r) for r in fn(x)]
    assert all(np.isinf(w).all() for w in want)
    for name, w, g in zip(["var(axis=1)", "std(axis=1)", "var()"], want, run_on(trace(fn, (x,)), (x,), backend)):
        assert_arrays_agree(w, g, what=f"{name} of {x.dtype}{x.shape}")


@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning", "ignore:Mean of empty slice:RuntimeWarning")
def test_var_and_std_divide_by_n_minus_ddof_like_numpy(backend, rng):
    """A fractional ddof counts as it is; ddof beyond the row's length divides by 0 (NumPy's max(N - ddof, 0))."""
    x = rng.standard_normal((3, 10)).astype(np.float32)
    programs = lambda x: (x.var(axis=1, ddof=0.5), np.std(x, axis=1, ddof=1.5), x.var(axis=1, ddof=11), x.std(ddof=10))
    with np.errstate(divide="ignore", invalid="ignore"):
        assert_backend_matches(backend, trace(programs, (x,)), (x,), rtol=1e-6)


@pytest.mark.parametrize("cols", [5000, 70000])
def test_rows_longer_than_a_block(backend, cols, rng):
    x = rng.standard_normal((3, cols)).astype(np.float32)
    traced = assert_reductions_agree(backend, x, 1, True, ("sum", "max", "argmin", "var", "mean"))
    assert traced.kernels[0].block < cols


def short_row_program(x):
    """Row outputs of every kind and an element-level epilogue (softmax), all in one row kernel."""
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True), x.argmax(-1), x.std(-1, ddof=1), x.min(-1), (x > 0).any(-1)


# lanes per row: at least 4 (fewer where the row is shorter), else as few as hold 8 elements each
LANES_PER_ROW = {1: 1, 2: 2, 3: 4, 5: 4, 8: 4, 17: 4, 32: 4, 33: 8, 100: 16, 255: 32}


@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning")
@pytest.mark.parametrize("cols", list(LANES_PER_ROW))
def test_rows_shorter_than_a_block_are_reduced_by_lanes_of_one_warp(backend, cols, rng):
    """A group of lanes (a power of two, at most 32) reduces each short row, a warp several rows; more rows
    than the grid's threads (grid-stride), a last warp only partly used (its spare lanes redo a row and
    store nothing), NaN in some rows, rows not contiguous in memory."""
    rows = 4099  # prime: the last warp's groups run past the last row
    x = sample(rng, np.float32, (rows, 2 * cols), special=0.02)
    x[np.isfinite(x) & (np.abs(x) > 1e30)] = 1.5  # sums of +-FLT_MAX overflow in some orders, not in others
    x = x[:, ::-2]
    traced = assert_backend_matches(backend, short_row_program, (x,), rtol=1e-5, atol=1e-6, scale_atol=True)
    [kernel] = traced.kernels
    lanes = LANES_PER_ROW[cols]
    assert (kernel.block, kernel.work_per_block) == (256, 256 // lanes), "rows per block: one per group of lanes"
    assert kernel.elements > 16 * kernel.work_per_block, "more rows than 16 blocks take: the grid strides"
    assert ("gt_group_reduce" in kernel.source) == (lanes > 1) and "gt_block_reduce" not in kernel.source


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int16, np.uint8, bool], ids=str)
def test_columns_of_a_tall_array_are_split_over_threads(backend, dtype, rng):
    """A reduction over a leading axis with few columns (``x.sum(axis=0)`` of a tall matrix): a thread per
    column would leave the GPU nearly idle, so each column is split over threads, the last of a column to
    finish combining the parts. Columns read backwards and every other one (strides -2), NaN and inf in
    some parts, argmin's first occurrence across parts, var/std merged by Chan's formula."""
    x = sample(rng, dtype, (20000, 128), special=0.001, scale=1.0)[:, ::-2]
    if np.dtype(dtype).kind in "iu":
        x = (x % 8).astype(dtype)  # no overflow in var's squares
    names = [n for n in REDUCTIONS if not (np.dtype(dtype) == np.float16 and n in ("var", "std", "prod"))
             and not (n == "prod" and np.dtype(dtype).kind == "f")]  # products of 20000 values: 0 or inf
    traced = assert_reductions_agree(backend, x, 0, False, names, rtol=4e-3 if dtype == np.float16 else None)
    [kernel] = traced.kernels
    assert kernel.elements == 64 * 157 and "tickets" in kernel.source, "64 columns of 20000 in 157 parts each"
    assert kernel.work_per_block == kernel.block, "a thread per part"


def test_standardizing_long_columns_reads_their_split_statistics_back(backend, rng):
    """Batch-norm style over a tall matrix: the columns' mean and std in one split kernel (their kernel ends
    where they are read back, tests/test_passes.py), then the elementwise kernel. Against float64: NumPy's
    float32 column mean adds row after row and errs by 2e-4 here. A NaN spoils one column."""
    x = (rng.standard_normal((17000, 64)) * 3 + 100).astype(np.float32)
    standardize = lambda x: (x - x.mean(axis=0)) / x.std(axis=0)  # noqa: E731
    traced = trace(standardize, (x,))
    assert [k.ops for k in traced.kernels] == [["mean", "std"], ["subtract", "divide"]]
    truth = standardize(x.astype(np.float64))
    [ours] = run_on(traced, (x,), backend)
    assert_arrays_agree(truth.astype(np.float32), ours, atol=2e-5, what="standardized columns")
    x[12345, 7] = np.nan
    out = run_on(traced, (x,), backend)[0]
    assert np.isnan(out[:, 7]).all() and not np.isnan(np.delete(out, 7, axis=1)).any()


def _misaligned(x):
    """``x``'s values in an array whose data starts 4 bytes past a 16-byte boundary."""
    buffer = np.empty(x.size * x.itemsize + 64, np.uint8)
    start = (-buffer.ctypes.data) % 16 + 4
    view = buffer[start:start + x.nbytes].view(x.dtype).reshape(x.shape)
    view[...] = x
    return view


def vector_moves(kernel: Kernel) -> int:
    """Operands a row kernel loads or stores by vectors (gputrace_reduce.cuh's gt_load_held, gt_store_vector)."""
    return kernel.source.count("gt_load_held<") + kernel.source.count("gt_store_vector<")


@pytest.mark.parametrize("dtype, shape, stride, vectored", [
    (np.float32, (7, 4096), 4096, 2), (np.float32, (1, 4094), 4094, 1), (np.float32, (7, 4094), 4096, 1),
    (np.float64, (5, 2048), 2048, 2)], ids=["aligned", "last vector cut short", "rows not on vectors", "float64"])
def test_rows_held_in_registers_move_as_vectors(backend, dtype, shape, stride, vectored, rng):
    """Rows held in registers are loaded and stored 16 bytes at a time (SASS: LDG.E.128, STG.E.128) when the
    pointers are aligned, element by element otherwise (checked per launch); a row's last vector cut short
    moves element by element (the one row's output; the inputs' rows, 4094 of a 4096 stride); an operand
    whose rows do not start on a vector boundary (the contiguous output of 4094-element rows) moves
    element by element (``vectored``: accesses by vectors; a single row's input is read where used, like
    an operand the same for every row). Softmax and layer norm, inputs also 4 bytes past an alignment."""
    x = (rng.standard_normal((shape[0], stride)) * 3).astype(dtype)[:, :shape[1]]
    w, b = (rng.standard_normal(shape[1]).astype(dtype) for _ in range(2))
    for fn, args in ((bench.softmax, (x,)), (bench.layernorm, (x, w, b))):
        traced = assert_backend_matches(backend, fn, args, rtol=1e-5, atol=1e-6, scale_atol=True)
        [kernel] = traced.kernels
        assert "vectors_aligned" in kernel.source and vector_moves(kernel) == vectored
        assert_backend_matches(backend, traced, (_misaligned(x), *args[1:]), rtol=1e-5, atol=1e-6, scale_atol=True)
        if nvrtc_available() and dtype == np.float32:
            sass = kernel.sass("sm_90")
            stores_vectors = shape[1] % 4 == 0 or shape[0] == 1
            assert ("LDG.E.128" in sass) == (shape[0] > 1) and ("STG.E.128" in sass) == stores_vectors


@pytest.mark.parametrize("dtype, cols, stride, vectored", [
    (np.float32, 64, 64, True), (np.float32, 62, 64, True), (np.float32, 100, 100, True), (np.float32, 6, 6, False),
    (np.float64, 32, 32, True)], ids=["64", "last vector cut short", "100", "rows not on vectors", "float64"])
def test_short_rows_held_by_lanes_move_as_vectors(backend, dtype, cols, stride, vectored, rng):
    """A group of lanes holding contiguous rows that start on vector boundaries loads and stores them 16
    bytes at a time (SASS: LDG.E.128, STG.E.128), in the same order as element by element (a pointer not
    aligned, a row's last vector cut short); the last warp's spare lanes store nothing (4,099 rows)."""
    x = (rng.standard_normal((4099, stride)) * 3).astype(dtype)[:, :cols]
    traced = assert_backend_matches(backend, short_row_program, (x,), rtol=1e-5, atol=1e-6, scale_atol=True)
    [kernel] = traced.kernels
    assert ("vectors_aligned" in kernel.source) == vectored and "gt_block_reduce" not in kernel.source
    assert_backend_matches(backend, traced, (_misaligned(x),), rtol=1e-5, atol=1e-6, scale_atol=True)
    if nvrtc_available() and dtype == np.float32:
        sass = kernel.sass("sm_90")
        assert ("LDG.E.128" in sass) == vectored and ("STG.E.128" in sass) == (vectored and cols % 4 == 0)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32], ids=str)
def test_integer_rows_held_in_registers_move_as_vectors(backend, dtype, rng):
    """Every reduction of 4- and 8-byte integer rows read by vectors (4 or 2 elements an access)."""
    x = sample(rng, dtype, (5, 4096), special=0.01)
    x = (x % 16).astype(dtype)  # no overflow in var's squares
    traced = assert_reductions_agree(backend, x, 1, False)
    assert "vectors_aligned" in traced.kernels[0].source


def softmax_of_a_sum_and_the_sum(x, y):
    """Two operands and two outputs moved by vectors: both element by element in the fallback too."""
    z = x + y
    return bench.softmax(z), z


@pytest.mark.parametrize("cols", [4096, 4094], ids=["aligned", "last vector cut short"])
def test_several_operands_and_outputs_move_as_vectors(backend, cols, rng):
    x, y = ((rng.standard_normal((1 if cols == 4094 else 5, cols)) * 3).astype(np.float32) for _ in range(2))
    traced = assert_backend_matches(backend, softmax_of_a_sum_and_the_sum, (x, y), rtol=1e-5, atol=1e-6,
                                    scale_atol=True)
    [kernel] = traced.kernels
    assert vector_moves(kernel) == (2 if cols == 4094 else 4)  # one row: its inputs read in place
    assert_backend_matches(backend, traced, (_misaligned(x), _misaligned(y)), rtol=1e-5, atol=1e-6, scale_atol=True)


def reduced_values_broadcast_back(x):
    """Every reduction of ``x`` over every axis set, kept or dropped, combined with ``x`` wherever NumPy's
    broadcasting allows it (a dropped form lines up with the trailing axes: with other rows' values when
    the reduced axes do not lead)."""
    out = []
    for axis in _axis_choices(x.ndim)[1:]:
        for keepdims in (False, True):
            r = x.max(axis=axis, keepdims=keepdims)
            try:
                shape = np.broadcast_shapes(r.shape, x.shape)
            except ValueError:
                continue
            if shape == x.shape:
                out.append(x - r * 2)
    return tuple(out)


@pytest.mark.parametrize("shape", [(3, 3), (2, 3, 3), (3, 3, 3), (3, 1, 3)], ids=str)
def test_reduced_values_broadcast_back_as_numpy_lines_them_up(backend, shape, rng):
    """``x - x.max(axis)`` in every form NumPy accepts: where the reduced value lines up with other rows
    (a dropped axis of a square array) the fusion pass ends the kernel at the reduction (fuzzer seed 33000)."""
    x = rng.standard_normal(shape).astype(np.float32)
    assert_backend_matches(backend, reduced_values_broadcast_back, (x,))


def test_long_columns_and_full_reductions(backend, rng):
    x = rng.standard_normal((4000, 3)).astype(np.float32)
    assert_reductions_agree(backend, x, 0, False, ("sum", "min", "argmax", "std"))
    assert_reductions_agree(backend, x, None, False, ("sum", "max", "argmin", "var"))


@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning", "ignore:Mean of empty slice:RuntimeWarning")
def test_empty_and_single_element_rows(backend, rng):
    single = rng.standard_normal((5, 1)).astype(np.float32)
    assert_reductions_agree(backend, single, 1, False)
    empty = np.zeros((3, 0), np.float32)
    assert_reductions_agree(backend, empty, 1, True, ("sum", "mean", "prod", "any", "all", "var"))
    assert_reductions_agree(backend, np.zeros((0, 4), np.float32), 0, False, ("sum", "prod", "any", "all"))
    for name in ("max", "argmin"):
        traced = trace(getattr(np, name), (single,))  # then run over zero elements: no identity
        with pytest.raises(ValueError, match="zero-size array|empty sequence") as numpy_error:
            traced.run(empty, backend="numpy")
        with pytest.raises(ValueError) as emulate_error:
            run_on(traced, (empty,), backend)
        assert str(emulate_error.value) == str(numpy_error.value)


@pytest.mark.parametrize("shape, axis", [((4099, 3), 1), ((64, 5000), 1), ((4, 40000), 1), ((40000, 4), 0),
                                         ((7, 0), 1)], ids=["lanes", "block", "split", "columns", "empty"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8, np.uint16, bool], ids=str)
def test_max_and_min_start_at_initial(backend, shape, axis, dtype, rng):
    """initial= joins every row (in each layout, empty rows too: no 'zero-size' error), converted to
    the input's dtype as NumPy converts it (0.1 for float16, 5.7 -> 5 for integers); NaN still wins.
    (-0.0 made 0.0: which of two equal zeros min returns depends on NumPy's loop, float16 or float32.)"""
    x = sample(rng, np.dtype(dtype), shape, special=0.05)
    if x.dtype.kind == "f":
        x = x + x.dtype.type(0)

    def extremes(x):
        return (x.max(axis=axis, initial=0.1 if x.dtype.kind == "f" else 5), np.min(x, axis, None, True, 5.7),
                np.maximum.reduce(x, axis=axis, initial=True))
    traced = assert_backend_matches(backend, extremes, (x,))
    for k, (want, got) in enumerate(zip(extremes(x), run_on(traced, (x,), backend))):  # and eager NumPy
        assert_arrays_agree(want, got, what=f"output {k} against eager NumPy")


@pytest.mark.parametrize("program, kernels", [
    (lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True), 1),   # rows scaled to unit length
    (lambda x: np.linalg.norm(x, np.inf, axis=0), 1),
    (lambda x: np.linalg.norm(x), 1),                                # all elements: a split row
    (lambda x: np.linalg.norm(x, 1), 1),                             # column sums, their max by the last block
    (lambda x: np.linalg.norm(x.T, 3, axis=1), 1),
    (lambda x: np.outer(x[0], x[:, 1]) * 2 + 1, 1),
    (lambda x: np.einsum("ij,kj->ik", x, x) + 1, 1),               # a matmul, then the + 1
    (lambda x: np.einsum("ij,ij->i", x, x), 1),                     # batched dot products: a matmul
    (lambda x: np.einsum("ij,jk->ik", x[:, :1], x[:1]) * 2, 1),    # sizes 1 and 64 broadcast: product and sum
    (lambda x: np.tensordot(x[:, :8].reshape(300, 2, 4), x[:8, :5].reshape(2, 4, 5)), 1),  # two axes summed
    (lambda x: np.tensordot(x[:, :8].reshape(300, 2, 4).astype(np.float16), x[:8, :5].reshape(2, 4, 5)
                            .astype(np.float16)), 1),  # the operands' casts computed again in the product's kernel
    (lambda x: (np.nanmax(x, axis=1), np.nanmean(x, axis=1)), 1),  # NaN skipped: where, then the reductions
    (lambda x: np.nanmin(np.where(x > 2, np.nan, x), axis=0), 1),  # columns of NaN give NaN
    (lambda x: np.diff(x, 2, axis=1) + np.ptp(x, axis=1, keepdims=True), 2),
    (lambda x: np.trace(x[:64]) + np.einsum("ii->i", x[:64]) * 2, 1),  # diagonals: strided views, read in place
    (lambda x: np.isclose(x, x[:, ::-1], rtol=0.5, equal_nan=True), 1),
], ids=["unit-rows", "inf-columns", "frobenius", "matrix-1", "vector-3-of-columns", "outer", "einsum-matmul",
        "einsum-dots", "einsum-broadcast", "tensordot-two-axes", "tensordot-float16", "nan-reductions",
        "nanmin-all-nan", "diff-ptp", "trace-diagonal", "isclose"])
def test_norms_outer_products_and_einsums_are_fused_kernels(backend, program, kernels, rng):
    """Sums of products cancel: their tolerance is relative to the output's largest magnitude."""
    x = sample(rng, np.dtype(np.float32), (300, 64), special=0.01)
    with np.errstate(all="ignore"):  # the special values overflow
        outputs = program(x)
    halves = any(np.asarray(o).dtype == np.float16 for o in (outputs if isinstance(outputs, tuple) else (outputs,)))
    tolerance = 1e-3 if halves else 1e-6
    traced = assert_backend_matches(backend, program, (x,), rtol=tolerance, atol=tolerance, scale_atol=True)
    assert len(traced.kernels) == kernels


def test_scans_run_by_the_array_library_between_kernels(backend, rng):
    """cumsum and cumprod are library calls (NumPy here, CuPy on the device), like matmul."""
    x = sample(rng, np.dtype(np.float32), (50, 70), special=0.02)
    traced = assert_backend_matches(backend, lambda x: (np.exp(np.cumsum(x * 0.1, axis=1)) + 1,
                                                        np.multiply.accumulate(x > 0, axis=0)), (x,),
                                    rtol=1e-6, atol=1e-6, scale_atol=True)
    steps = [step.name for step in traced.lower(x).plan]
    assert steps.count("cumsum (array library)") == 1 and steps.count("cumprod (array library)") == 1
    assert len(traced.kernels) == 2  # x * 0.1 and x > 0 (one kernel, two outputs), then exp + 1


def test_attention_written_with_einsum_is_two_matmuls_and_one_kernel(backend, rng):
    def attention(q, k, v):
        scores = np.einsum("bhqd,bhkd->bhqk", q, k) * 0.125
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return np.einsum("bhqk,bhkd->bhqd", e / e.sum(axis=-1, keepdims=True), v)
    q, k, v = (rng.standard_normal((2, 3, 40, 16)).astype(np.float32) for _ in range(3))
    traced = assert_backend_matches(backend, attention, (q, k, v), rtol=1e-5, atol=1e-6)
    plan = [n.kind for n in traced.lower(q, k, v).graph.nodes if n.kind in ("np::matmul", "gt::FusionGroup")]
    assert plan == ["np::matmul", "gt::FusionGroup", "np::matmul"]


def test_non_contiguous_inputs(backend, rng):
    base = rng.standard_normal((12, 40)).astype(np.float32)
    for view, axis in ((base.T, 0), (base.T, 1), (base[::-2, 3:37:3], 1), (base[:, ::-1].T[::2], None)):
        assert_reductions_agree(backend, view, axis, False, ("sum", "max", "argmax", "std"))


def test_float16_reductions_accumulate_in_float32(rng):
    x = (rng.standard_normal((6, 3000)) * 4).astype(np.float16)
    traced = trace(lambda x: (x.sum(-1), x.mean(-1), x.max(-1), x.argmax(-1), x.std(-1)), (x,))
    want, got = (outputs_of(traced.run(x, backend=b)) for b in ("numpy", "emulate"))
    for w, g in zip(want, got):  # NumPy also accumulates a contiguous float16 row in float32
        assert_arrays_agree(w, g, rtol=2e-3, atol=float(np.abs(w.astype(np.float32)).max()) * 2e-3)


# ============================================================================= reductions fused with their neighbours


def layernorm_var(x):
    """layernorm written with np.var: the variance's two passes inside the row kernel."""
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)


FUSED = dict(TARGETS, layernorm_var=Target(layernorm_var, lambda rng: (bench.normal(rng, (5, 700), 2.0),), 1, 0))


@pytest.mark.parametrize("name", sorted(FUSED))
def test_fused_program_matches_numpy(backend, name, rng):
    """Issue 4's programs, each in its one kernel (counted in tests/test_passes.py), on emulate and NVRTC."""
    target = FUSED[name]
    inputs = target.make(rng)
    traced = assert_backend_matches(backend, target.fn, inputs, rtol=1e-5, atol=1e-6, scale_atol=True)
    if nvrtc_available():
        for kernel in traced.lower(*inputs).kernels:
            assert ".entry " + kernel.name in kernel.ptx("sm_90")


def test_views_of_a_rows_result_stay_in_its_kernel(backend, rng):
    """m[:, 0], squeeze, expand_dims and reshape of a reduction's result are its values in another row shape:
    the kernel that computes them reads them (they used to end it). On a square array ``x - m[:, 0]`` lines
    row j's max up with column j (NumPy's broadcasting): that one starts a kernel of its own. A reduction of
    the same rows of another array joins the kernel too (one launch)."""
    def row_views(x, y):
        m, s = x.max(axis=-1, keepdims=True), x.sum(axis=-1)
        logsumexp = np.log(np.exp(x - m).sum(axis=-1)) + m[:, 0]
        scaled = x / s[:, None] + np.squeeze(m, 1)[:, None] * np.expand_dims(s, -1) - m.reshape(-1)[..., None]
        return logsumexp, scaled, m[::-1, 0] + logsumexp, x - m[:, 0], (y * y).mean(axis=-1) - logsumexp

    x, y = rng.standard_normal((2, 6, 6)).astype(np.float32)
    traced = trace(row_views, (x, y))
    assert [k.ops for k in traced.lower(x, y).kernels] == [
        ["max", "sum", "subtract", "exp", "sum", "log", "getitem", "add", "getitem", "divide", "squeeze", "getitem",
         "expand_dims", "multiply", "add", "squeeze", "getitem", "subtract", "multiply", "mean", "subtract"], ["add"],
        ["subtract"]]
    for k, (want, got) in enumerate(zip(row_views(x, y), run_on(traced, (x, y), backend))):
        assert_arrays_agree(want, got, rtol=1e-6, atol=1e-6, what=f"output {k}")


def test_elementwise_ops_move_into_the_pieces_of_a_join(backend, rng):
    """An elementwise op of a concatenation is the concatenation of the op on its pieces (an operand cut where
    the pieces are, or broadcast as it is), and a view within one piece is that piece's view: the pieces' kernels
    compute it, each writing its slice of the joined array (test_joins_in_place.py). A view across pieces, or a
    piece of another dtype, keeps the join, which copies pieces no kernel computes."""
    def joins(a, b, w, n):
        j = np.concatenate([a * 2, np.exp(b)], axis=1)
        stacked = np.stack([a[:, 0], b[:, 1] - 1], axis=-1)
        spans = np.concatenate([a, b], axis=1)
        return (j * w + a[:, :1], np.tanh(stacked * 3)[:, 1] + stacked[:, 0], spans[:, 2:6] * 2,
                np.concatenate([a, n], axis=1) + 1)

    a, b, w = (rng.standard_normal(shape).astype(np.float32) for shape in ((3, 4), (3, 5), (9,)))
    n = np.arange(6).reshape(3, 2)
    traced = trace(joins, (a, b, w, n))
    plan = traced.lower(a, b, w, n).plan
    assert sorted(step.ops for step in plan if isinstance(step, Kernel)) == [
        ["add"], ["exp", "multiply", "add"], ["multiply"], ["multiply", "multiply", "add"],
        ["subtract", "multiply", "tanh", "add"]]
    assert [step.name for step in plan if not isinstance(step, Kernel)] == ["concatenate (array library)"] * 2
    for k, (want, got) in enumerate(zip(joins(a, b, w, n), run_on(traced, (a, b, w, n), backend))):
        assert_arrays_agree(want, got, rtol=1e-6, atol=1e-6, what=f"output {k}")


@pytest.mark.slow  # about 10 s of g++ builds (its kernel counts and its fused graphs' values: tests/test_passes.py)
def test_programs_written_plainly_match_numpy(backend, rng):
    """Issue 17's programs (cross-entropy, batch norm, a GPT-2 block per head, an RK4 step), traced as one
    program (one build) at their kernel counts (tests/test_passes.py; no two reduce rows of one shape, which would
    share a kernel), agree with eager NumPy, compiled by NVRTC."""
    targets = list(WRITTEN_PLAINLY.values())
    inputs = [target.make(rng) for target in targets]

    def every_program(*flat):
        results, rest = [], list(flat)
        for target, args in zip(targets, inputs):
            results.append(target.fn(*rest[:len(args)]))
            rest = rest[len(args):]
        return tuple(results)

    flat = [a for args in inputs for a in args]
    traced = trace(every_program, flat)
    assert len(traced.lower(*flat).kernels) == sum(t.kernels for t in targets)
    for target, args, got in zip(targets, inputs, run_on(traced, flat, backend)):
        want = target.fn(*args)
        assert_arrays_agree(np.asarray(want), got, rtol=1e-5, atol=2e-6 * float(np.abs(want).max()),
                            what=target.fn.__name__)
    if nvrtc_available():
        for kernel in traced.lower(*flat).kernels:
            assert ".entry " + kernel.name in kernel.ptx("sm_90")
