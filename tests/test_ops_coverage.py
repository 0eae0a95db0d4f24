"""Every op the tracer records, traced vs eager NumPy: the same dtype and the same bits.

The cases come from the op table (every ufunc in ``gputrace.ops``) and from a
list of calls of every NumPy function in the tracer's handler list;
``test_every_op_and_handled_function_has_a_case`` fails when one is added
without a case here. Where eager NumPy raises, the traced function must raise
the same exception type.
"""
import contextlib
import operator
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import gputrace
from gputrace import ops, tracer

pytestmark = [pytest.mark.filterwarnings("error::gputrace.TracerWarning"),  # nothing may be baked in silently
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]  # eager NumPy on NaN, empty slices

DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]
ALL_DTYPES = DTYPES + ["uint16", "uint32", "uint64"]  # every dtype gputrace supports: for the ufuncs


def sample(dtype, shape, seed=0):
    """Values that exercise an op: NaN, +-inf, -0.0 for floats; 0, -1 and the extremes for integers."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.kind == "f":
        values = np.asarray(rng.standard_normal(shape) * 4, dtype)
        specials = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -1.0, 0.5, 3e4]
    else:
        info = np.iinfo(dtype)
        values = np.asarray(rng.integers(max(info.min, -9), min(info.max, 9), shape, endpoint=True), dtype)
        specials = [0, 1, info.max, info.min, -1 if info.min else 2]
    flat = values.reshape(-1)
    flat[:len(specials)] = specials[:flat.size]
    return values


# Each layout keeps the values and changes only the memory layout.
LAYOUTS = {
    "transposed": lambda a: np.ascontiguousarray(a.T).T,
    "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2] if a.ndim else a,
    "negative-stride": lambda a: np.ascontiguousarray(a[::-1])[::-1] if a.ndim else a,
}


def assert_same(got, want, what="", rtol=0.0):
    """Same structure, dtype, shape and bits (NaN equals NaN, -0.0 differs from 0.0), or floats within ``rtol``."""
    if isinstance(want, (tuple, list)):
        assert type(got) is type(want) and len(got) == len(want), what
        for k, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{what}[{k}]", rtol)
        return
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{what}: traced dtype {got.dtype}, eager {want.dtype}"
    assert got.shape == want.shape, f"{what}: traced shape {got.shape}, eager {want.shape}"
    if rtol and want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=max(rtol, float(np.finfo(want.dtype).eps)), err_msg=what)
        return
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), \
        f"{what}: values differ\ntraced: {got}\neager:  {want}"


def check(fn, args, call_args=None, what="", code=False, rtol=0.0):
    """Trace ``fn`` on ``args``, call it on ``call_args`` (default: the same) and compare with eager NumPy."""
    call_args = args if call_args is None else call_args
    with np.errstate(all="ignore"):
        try:
            want = fn(*call_args)
        except Exception as exc:
            with pytest.raises(type(exc)):
                gputrace.trace(fn, tuple(args), check_trace=False)(*call_args)
            return
        traced = gputrace.trace(fn, tuple(args), check_trace=False)  # the check is tested in test_api
        assert_same(traced(*call_args), want, what, rtol)
        if code:  # .code is Python that runs with NumPy: it must compute the same
            assert_same(traced.python()(*call_args), want, f"{what} (.code)", rtol)


# ----------------------------------------------------------------------------- ufuncs, from the op table

UFUNCS = sorted(set(ops.UFUNCS) | set(ops.UFUNC_ALIASES))
BINARY_UFUNCS = [name for name in UFUNCS if getattr(np, name).nin == 2]


def ufunc_args(name, dtype, shapes):
    return [sample(dtype, shape, seed) for seed, shape in enumerate(shapes[:getattr(np, name).nin])]


@pytest.mark.parametrize("name", UFUNCS)
def test_ufunc_matches_eager_for_every_dtype(name):
    ufunc = getattr(np, name)
    for dtype in ALL_DTYPES:
        check(lambda *a: ufunc(*a), ufunc_args(name, dtype, [(3, 4), (4,)]), what=f"np.{name}[{dtype}]")


@pytest.mark.parametrize("shapes", [[(), ()], [(0, 4), (4,)], [(3, 1), (1, 4)], [(2, 1, 4), ()]],
                         ids=["0-d", "empty", "outer-broadcast", "0-d-broadcast"])
@pytest.mark.parametrize("name", UFUNCS)
def test_ufunc_on_0d_empty_and_broadcast_inputs(name, shapes):
    ufunc = getattr(np, name)
    for dtype in ("float32", "int32", "bool"):
        check(lambda *a: ufunc(*a), ufunc_args(name, dtype, shapes), what=f"np.{name}[{dtype}]")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", UFUNCS)
def test_ufunc_on_non_contiguous_inputs(name, layout):
    ufunc = getattr(np, name)
    for dtype in ("float32", "int32"):
        args = [LAYOUTS[layout](a) for a in ufunc_args(name, dtype, [(3, 4), (3, 4)])]
        assert not args[0].flags.c_contiguous
        check(lambda *a: ufunc(*a), args, what=f"np.{name}[{dtype}]")


@pytest.mark.parametrize("scalar", [2, -1, 2.5, True, np.float32(2), np.int8(3)], ids=repr)
@pytest.mark.parametrize("name", BINARY_UFUNCS)
def test_ufunc_with_scalars_promotes_like_numpy(name, scalar):
    """Python scalars are weak (int8 + 2 is int8), NumPy scalars are not (int8 + float32(2) is float32)."""
    ufunc = getattr(np, name)
    for dtype in ALL_DTYPES:
        x = sample(dtype, (3, 4))
        check(lambda x: ufunc(x, scalar), [x], what=f"np.{name}(x[{dtype}], {scalar!r})")
        check(lambda x: ufunc(scalar, x), [x], what=f"np.{name}({scalar!r}, x[{dtype}])")


OPERATORS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.mod,
             operator.pow, operator.and_, operator.or_, operator.xor, operator.lshift, operator.rshift,
             operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne, divmod]
UNARY_OPERATORS = [operator.neg, operator.pos, operator.abs, operator.invert]


@pytest.mark.parametrize("op", OPERATORS + UNARY_OPERATORS, ids=lambda op: op.__name__)
def test_python_operators(op):
    for dtype in DTYPES:
        x, y = sample(dtype, (3, 4)), sample(dtype, (4,), seed=1)
        if op in UNARY_OPERATORS:
            check(op, [x], what=f"{op.__name__}[{dtype}]")
            continue
        check(op, [x, y], what=f"{op.__name__}[{dtype}]")
        check(lambda x: op(x, 2), [x], what=f"{op.__name__}(x[{dtype}], 2)")
        check(lambda x: op(3, x), [x], what=f"{op.__name__}(3, x[{dtype}])")  # the reflected method
        check(lambda x: op(x, 0.5), [x], what=f"{op.__name__}(x[{dtype}], 0.5)")


def test_power_takes_ndarrays_fast_paths():
    """``x ** 2`` squares (bool ** 2 is int8, np.power gives int64); float16 ``x ** 0.5`` is sqrt (nan at -inf)."""
    for dtype in DTYPES:
        check(lambda x: (x ** 2, np.power(x, 2), 2 ** x, x ** 0.5, x ** -1.0), [sample(dtype, (3, 4))], what=dtype)


# ----------------------------------------------------------------------------- every handled NumPy function


@dataclass
class Case:
    fn: Callable
    shapes: tuple = ((2, 3, 4),)
    other: tuple | None = ((5, 6, 8),)  # a call at other shapes of the same ndim re-specialises the trace
    rtol: float = 0.0  # float results: 0 is the same bits (np.linalg.norm's dot of all elements: a sum here)


def assignments(x):
    """Assignments as code writes them: into a copy, through an index array, a mask, a view; np.add.at."""
    y = x.copy()
    y[0, 1] = 3
    y[:, [0, 2], -1] = y[:, [1, 1], 0]
    y[y > 1] = 0
    y[..., 1:3] += y[..., :2]
    v = y[1]
    v[0] = 7  # y changes too
    np.add.at(y, ([0, 0, 1], [2, 2, 0]), y[0, 0, :1])
    return y, v  # v sees np.add.at's update of y


X, XY = ((2, 3, 4),), ((2, 3, 4), (2, 3, 4))
CASES = {
    # reductions: axis None / int / tuple / negative, keepdims, dtype=, ddof=
    "sum": Case(lambda x: x.sum()),
    "sum-axis": Case(lambda x: np.sum(x, axis=1)),
    "sum-negative-axis-keepdims": Case(lambda x: x.sum(axis=-1, keepdims=True)),
    "sum-axis-tuple": Case(lambda x: np.sum(x, axis=(0, 2))),
    "sum-dtype": Case(lambda x: x.sum(axis=1, dtype=np.float64)),
    "prod": Case(lambda x: np.prod(x, axis=-2)),
    "prod-method": Case(lambda x: x.prod(axis=(0, 1), keepdims=True)),
    "max": Case(lambda x: x.max(axis=(1,))),
    "max-fn": Case(lambda x: np.max(x, axis=-1)),
    "amax": Case(lambda x: np.amax(x, axis=0, keepdims=True)),
    "min": Case(lambda x: np.min(x)),
    "min-method": Case(lambda x: x.min(axis=2)),
    "amin": Case(lambda x: np.amin(x, axis=(-1, 0))),
    "mean": Case(lambda x: x.mean(axis=(0, -1))),
    "mean-keepdims": Case(lambda x: np.mean(x, keepdims=True)),
    "var": Case(lambda x: x.var(axis=0)),
    "var-ddof": Case(lambda x: np.var(x, axis=-1, ddof=1)),
    "std": Case(lambda x: np.std(x, axis=1)),
    "std-ddof": Case(lambda x: x.std(ddof=1)),
    "any": Case(lambda x: x.any(axis=1)),
    "any-fn": Case(lambda x: np.any(x)),
    "all": Case(lambda x: np.all(x, axis=(0, 1), keepdims=True)),
    "all-method": Case(lambda x: x.all(axis=-1)),
    "argmax": Case(lambda x: x.argmax(axis=1)),
    "argmax-fn-keepdims": Case(lambda x: np.argmax(x, axis=-1, keepdims=True)),
    "argmin": Case(lambda x: np.argmin(x)),
    "argmin-method": Case(lambda x: x.argmin(axis=0)),
    "max-min-initial": Case(lambda x: (np.max(x, axis=-1, initial=1), x.min(initial=-3.5),
                                       np.maximum.reduce(x, 0, initial=0), np.min(x, 1, None, True, 2))),
    # sum and prod add initial after the reduction (NumPy before it): the same up to rounding
    "sum-prod-initial": Case(lambda x: (np.sum(x, initial=5), x.sum(1, None, None, True, 0.5),
                                        np.prod(x, axis=0, initial=2)), rtol=1e-5),
    "cumsum-cumprod": Case(lambda x: (np.cumsum(x), np.cumsum(x, axis=1), x.cumsum(-1), np.cumprod(x, 0),
                                      x.cumprod(), np.cumsum(x, 1, np.float64), np.cumsum(x[0, 0, 0]))),
    "accumulate": Case(lambda x: (np.add.accumulate(x), np.add.accumulate(x, axis=2),
                                  np.multiply.accumulate(x, -2), np.add.accumulate(x, 1, dtype=np.int64))),
    "cumsum-empty": Case(lambda x: (np.cumsum(x, axis=0), np.cumprod(x)), ((0, 4),), ((0, 7),)),
    "nan-reductions": Case(lambda x: (np.nansum(x), np.nansum(x, axis=1, keepdims=True), np.nanprod(x, 0),
                                      np.nanmax(x, axis=-1), np.nanmin(x), np.nanmean(x, axis=(0, 2)), np.nanmean(x),
                                      np.nanmax(x, 1, None, True, -2.5), np.nanmean(x, 0, np.float64))),
    "nan-all-nan-slice": Case(lambda x: (np.nanmax(np.where(x == x, np.nan, x), axis=1), np.nanmean(x * np.nan, 0),
                                         np.nanmin(x * np.nan, axis=0, initial=3))),
    "nan-scans": Case(lambda x: (np.nancumsum(x), np.nancumprod(x, axis=1), np.nancumsum(x, -1, np.float64))),
    "ptp-diff": Case(lambda x: (np.ptp(x, axis=1), np.ptp(x, keepdims=True), np.diff(x), np.diff(x, 2, axis=0),
                                np.diff(x, axis=1, prepend=0), np.diff(x, append=x[..., :1]), np.diff(x, 0),
                                np.diff(x, axis=0, prepend=x[0, 0, 0], append=np.float16(2)))),
    "add.reduce": Case(lambda x: np.add.reduce(x)),
    "multiply.reduce": Case(lambda x: np.multiply.reduce(x, axis=(0, 1))),
    "maximum.reduce": Case(lambda x: np.maximum.reduce(x, axis=2)),
    "minimum.reduce-keepdims": Case(lambda x: np.minimum.reduce(x, axis=-1, keepdims=True)),
    "logical_and.reduce": Case(lambda x: np.logical_and.reduce(x, axis=None)),
    "logical_or.reduce": Case(lambda x: np.logical_or.reduce(x)),
    "sum-empty": Case(lambda x: (x.sum(axis=0), x.max(axis=1), x.mean(axis=0)), ((0, 4),), ((0, 7),)),
    "max-empty": Case(lambda x: x.max(), ((0, 4),), None),
    "sum-0d": Case(lambda x: (x.sum(), np.max(x), x.mean(keepdims=True)), ((),), None),
    # views
    "T": Case(lambda x: x.T),
    "mT": Case(lambda x: x.mT),
    "transpose": Case(lambda x: np.transpose(x, (1, 0, 2))),
    "transpose-method": Case(lambda x: x.transpose(2, 0, 1)),
    "transpose-negative-axes": Case(lambda x: np.transpose(x, (-1, 0, 1))),
    "permute_dims": Case(lambda x: np.permute_dims(x)),
    "swapaxes": Case(lambda x: np.swapaxes(x, 0, -1)),
    "swapaxes-method": Case(lambda x: x.swapaxes(1, 2)),
    "moveaxis": Case(lambda x: np.moveaxis(x, 0, -1)),
    "moveaxis-several": Case(lambda x: np.moveaxis(x, (0, 1), (2, 0))),
    "reshape": Case(lambda x: x.reshape(6, 4)),
    "reshape-fn": Case(lambda x: np.reshape(x, (-1, 2))),
    "reshape-method-tuple": Case(lambda x: x.reshape((4, -1))),
    "ravel": Case(lambda x: x.ravel()),
    "ravel-fn": Case(lambda x: np.ravel(x[:, ::2])),
    "flatten": Case(lambda x: x.flatten()),
    "broadcast_to": Case(lambda x: np.broadcast_to(x[:, :1], (2, 3, 4))),
    "broadcast_to-new-axis": Case(lambda x: np.broadcast_to(x, (5, 2, 3, 4))),
    "expand_dims": Case(lambda x: np.expand_dims(x, (0, -1))),
    "expand_dims-int": Case(lambda x: np.expand_dims(x, 1)),
    "squeeze": Case(lambda x: np.squeeze(x[:1])),
    "squeeze-axis": Case(lambda x: x[:, :1].squeeze(1)),
    "getitem": Case(lambda x: x[1, ::-1, None, ..., 1:3]),
    "getitem-ellipsis": Case(lambda x: x[..., -1]),
    "getitem-steps": Case(lambda x: x[::2, -2:0:-1]),
    "getitem-int": Case(lambda x: (x[-1], x[np.int64(1), 0])),
    "getitem-new-axis": Case(lambda x: x[None, :, None]),
    "getitem-empty-slice": Case(lambda x: x[5:]),
    "getitem-0d": Case(lambda x: (x[None], x[...], x[()]), ((),), None),
    # gathers (integer arrays, lists, ranges as indices) and assignments
    "gather": Case(lambda x: (x[[1, 0, -1]], x[:, [2, 0]], x[[0, 1], :, [3, -1]], x[..., range(2)], x[:, [[0], [2]], 1],
                              x[np.array([True, False])], x[1, None, [0, 0]], x[x[0, 0, :2].astype(np.int8)])),
    "take": Case(lambda x: (np.take(x, [5, -1]), np.take(x, [[1, 2]], axis=-1), np.take(x, [7, -9], 2, mode="wrap"),
                            np.take(x, 9, 1, mode="clip"), np.take_along_axis(x, x.argmax(-1, keepdims=True), -1),
                            np.take_along_axis(x, x.argmin(axis=1, keepdims=True), axis=1),
                            np.take_along_axis(x[0, 0], x[1, 1].argmax(keepdims=True), None))),
    "assignment": Case(assignments),
    # joins and splits
    "concatenate": Case(lambda x, y: np.concatenate([x, y], axis=1), ((2, 3, 4), (2, 5, 4)), ((3, 1, 2), (3, 4, 2))),
    "concatenate-axis-None": Case(lambda x: np.concatenate((x, x[0]), axis=None)),
    "concatenate-negative-axis": Case(lambda x: np.concatenate([x, x * 2], axis=-1)),
    "concatenate-mixed-dtypes": Case(lambda x: np.concatenate([x, np.ones_like(x, dtype=np.int16)])),
    "concatenate-empty": Case(lambda x, y: np.concatenate([x, y]), ((0, 4), (3, 4)), ((0, 2), (1, 2))),
    "stack": Case(lambda x, y: np.stack([x, y]), XY, ((1, 2, 3), (1, 2, 3))),
    "stack-negative-axis": Case(lambda x: np.stack((x, x + 1), axis=-1)),
    "split": Case(lambda x: tuple(np.split(x, 3, axis=1))),
    "split-indices": Case(lambda x: tuple(np.split(x, [1, 3], axis=-1))),
    "split-beyond-the-end": Case(lambda x: tuple(np.split(x, [1, 10], axis=2))),
    "split-negative-index": Case(lambda x: tuple(np.split(x, [-1]))),
    # elementwise specials, with Python scalars mixed in
    "where": Case(lambda x, y: np.where(x > y, x, y), XY, ((1, 5, 7), (1, 5, 7))),
    "where-scalar": Case(lambda x: np.where(x > 1, x, 0)),
    "where-broadcast": Case(lambda x: np.where(x[:1] > 0, 2.5, x)),
    "clip": Case(lambda x: np.clip(x, 1, 3)),
    "clip-max-only": Case(lambda x: np.clip(x, None, 3)),
    "clip-method": Case(lambda x: x.clip(1)),
    "clip-keywords": Case(lambda x: np.clip(x, min=1, max=4)),
    "clip-arrays": Case(lambda x, y: np.clip(x, y, 5), XY, ((1, 1, 3), (1, 1, 3))),
    "maximum-minimum": Case(lambda x, y: (np.maximum(x, y[0]), np.minimum(x, 0)), XY, ((4, 2, 3), (4, 2, 3))),
    "zeros_like": Case(lambda x: np.zeros_like(x)),
    "ones_like-dtype": Case(lambda x: np.ones_like(x, dtype=np.float32)),
    "full_like": Case(lambda x: np.full_like(x, 7)),
    "full_like-float": Case(lambda x: np.full_like(x, 2.5)),
    "full_like-dtype": Case(lambda x: np.full_like(x, 3, dtype=np.int16)),
    "empty_like": Case(lambda x: np.zeros_like(np.empty_like(x, dtype=np.uint8))),
    "astype-method": Case(lambda x: (x.astype(np.float32), x.astype(np.int8), x.astype(bool))),
    "astype-fn": Case(lambda x: np.astype(x, np.uint8)),
    "astype-same-no-copy": Case(lambda x: x.astype(x.dtype, copy=False) + 1),
    "copy": Case(lambda x: (x.copy(), np.copy(x[:, ::-1]))),
    "round": Case(lambda x: (np.round(x), np.around(x), x.round())),
    "asarray-like": Case(lambda x: (np.asarray(x, like=x, dtype=np.float64), np.asanyarray(x, like=x) + 1,
                                    np.ascontiguousarray(x.T, like=x))),
    "shape-size-ndim": Case(lambda x: x.reshape(np.shape(x)[::-1]) * np.size(x, 1) + np.ndim(x)),
    "result_type": Case(lambda x: x.astype(np.result_type(x, np.float32))),
    # matmul and dot: 1-D, 2-D, batched, broadcast batches
    "matmul-2d": Case(lambda x, y: x @ y, ((3, 4), (4, 5)), ((2, 7), (7, 1))),
    "matmul-1d-2d": Case(lambda x, y: np.matmul(x, y), ((4,), (4, 5)), ((2,), (2, 3))),
    "matmul-2d-1d": Case(lambda x, y: x @ y, ((3, 4), (4,)), ((5, 2), (2,))),
    "matmul-1d-1d": Case(lambda x, y: x @ y, ((4,), (4,)), ((9,), (9,))),
    "matmul-batched": Case(lambda x, y: x @ y, ((2, 3, 4), (4, 5)), ((3, 1, 2), (2, 2))),
    "matmul-broadcast-batches": Case(lambda x, y: np.matmul(x, y), ((2, 1, 3, 4), (3, 4, 5)),
                                     ((1, 2, 2, 3), (4, 3, 1))),
    "matmul-transposed": Case(lambda x: x @ x.mT),
    "matmul-empty": Case(lambda x, y: x @ y, ((3, 0), (0, 4)), ((2, 0), (0, 1))),
    "dot-2d": Case(lambda x, y: np.dot(x, y), ((3, 4), (4, 5)), ((1, 2), (2, 3))),
    "dot-1d": Case(lambda x, y: np.dot(x, y), ((4,), (4,)), ((6,), (6,))),
    "dot-nd": Case(lambda x, y: np.dot(x, y), ((2, 3, 4), (5, 4, 6)), ((1, 2, 3), (2, 3, 1))),
    "dot-long-vectors": Case(lambda x, y: np.dot(x, y), ((300,), (300,)), ((301,), (301,))),
    "dot-matrix-vector": Case(lambda x, y: (np.dot(x, y), np.dot(y, x.T)), ((16, 300), (300,)), ((3, 200), (200,))),
    "dot-batch-matrix": Case(lambda x, y: np.dot(x, y), ((3, 16, 200), (200, 8)), ((2, 4, 300), (300, 5))),
    "dot-scalar": Case(lambda x: (np.dot(x, 2), np.dot(2.5, x))),
    "dot-method": Case(lambda x, y: x.dot(y), ((3, 4), (4,)), ((2, 5), (5,))),
    "outer": Case(lambda x, y: (np.outer(x, y), np.outer(x[0], 2)), ((3, 4), (2, 5)), ((1, 2), (3, 1))),
    # norms: vector orders over one axis, matrix orders over two, and the whole array
    "norm": Case(lambda x: (np.linalg.norm(x), np.linalg.norm(x, keepdims=True)), rtol=1e-6),
    "norm-vector": Case(lambda x: tuple(np.linalg.norm(x, ord, axis=axis, keepdims=keepdims)
                                        for ord, axis, keepdims in [(None, 1, False), (2, -1, True), (1, 0, False),
                                                                    (np.inf, 2, False), (-np.inf, 0, True),
                                                                    (0, 1, False), (3, -1, False), (-0.5, 1, False)])),
    "norm-matrix": Case(lambda x: tuple(np.linalg.norm(x, ord, axis=axis, keepdims=keepdims)
                                        for ord, axis, keepdims in [(None, (0, 1), False), ("fro", (2, 0), True),
                                                                    (1, (1, 2), False), (-1, (2, 1), True),
                                                                    (np.inf, (0, 2), False), (-np.inf, (-1, 0), False)])),
    "norm-matrix-2d": Case(lambda x: (np.linalg.norm(x, "fro"), np.linalg.norm(x, 1), np.linalg.norm(x, -np.inf)),
                           ((3, 4),), ((5, 2),), rtol=1e-6),
    "norm-vector-1d": Case(lambda x: (np.linalg.norm(x, 2), np.linalg.norm(x, np.inf, keepdims=True)), ((7,),),
                           ((3,),), rtol=1e-6),
    "einsum": Case(lambda x, y: (np.einsum("ij,jk->ik", x, y), np.einsum("ij,jk", x, y), np.einsum("ij->ji", x),
                                 np.einsum("ij->", x), np.einsum("ij,ij->i", x, x)), ((3, 4), (4, 5)), ((2, 6), (6, 1)),
                   rtol=1e-5),
    "einsum-batched": Case(lambda x, y: (np.einsum("bqd,bkd->bqk", x, y), np.einsum("...ij,...kj->...ik", x, y),
                                         np.einsum("bij,jk->bik", x, y[0].T), np.einsum("abc,cb->a", x, y[1])),
                           ((2, 3, 4), (2, 5, 4)), ((3, 1, 2), (3, 4, 2)), rtol=1e-5),
    "einsum-broadcast": Case(lambda x, y, z: (np.einsum("ij,jk->ik", x, y), np.einsum("ijk,jkl->il", z, z.T),
                                              np.einsum("i,j,k->ijk", x[:, 0], y[0], z[0, 0])),
                             ((2, 1), (3, 4), (2, 3, 4)), ((5, 1), (2, 3), (1, 2, 3)), rtol=1e-5),
    "diagonal-trace": Case(lambda x: (np.diagonal(x), x.diagonal(1), np.diagonal(x, -1, 2, 1), np.diagonal(x, 9),
                                      np.trace(x), np.trace(x, 1, 1, 2), np.trace(x, dtype=np.float64),
                                      np.einsum("ii->i", x[0, :, :3]), np.einsum("iij->j", x[:2, :2]),
                                      np.einsum("ij,jj->i", x[1, :, :3], x[0, :, :3])),
                           rtol=1e-5),
    "isclose": Case(lambda x, y: (np.isclose(x, y), np.isclose(x, y[0], rtol=0.5, atol=1, equal_nan=True),
                                  np.isclose(x, 2), np.isclose(3.0, y), np.isclose(x, x * 1.0000001)), XY),
    "tensordot": Case(lambda x, y: (np.tensordot(x, y), np.tensordot(x, y, axes=([2, 1], [1, 0])),
                                    np.tensordot(x, y, axes=(2, 1)), np.tensordot(x[0], y[0], 0)),
                      ((2, 3, 4), (3, 4, 5)), ((1, 2, 3), (2, 3, 2)), rtol=1e-5),
    "inner-vdot": Case(lambda x, y: (np.inner(x, y), np.inner(x[0], y[1]), np.inner(x, 2.0), np.vdot(x, y.T)),
                       ((3, 4), (2, 4)), ((2, 3), (3, 3)), rtol=1e-5),
    "norm-empty": Case(lambda x: (np.linalg.norm(x, np.inf, axis=1), np.linalg.norm(x, 1, axis=(0, 1))),
                       ((3, 0),), ((0, 2),)),
    # array manipulation (more in test_array_functions.py)
    "stacks-append": Case(lambda x: (np.hstack([x, x[:, :1]]), np.vstack((x, x[:1])), np.dstack([x, x[..., :2]]),
                                     np.column_stack([x[0, :, 0], x[0]]), np.hstack((x[0, 0], x[0, 0, :2])),
                                     np.vstack([x[0, 0], x[1, 0]]), np.dstack((x[0, 0],)), np.column_stack((x[0, 0],)),
                                     np.append(x, x[0]), np.append(x, x[:1], axis=0), np.append(x[0, 0], 2))),
    "joins-dtype": Case(lambda x: (np.concatenate([x, x], 1, dtype=np.float64), np.hstack([x, x], dtype=np.float32),
                                   np.stack([x, x], dtype=np.int32, casting="unsafe"),
                                   np.vstack([x, x[:1]], dtype=np.float16, casting="same_kind"))),
    "atleast": Case(lambda x: (np.atleast_1d(x[0, 0, 0]), np.atleast_2d(x[0, 0]), np.atleast_3d(x[0]), np.atleast_2d(x),
                               np.atleast_3d(x[0, 0, 0], x[0, 0], x), np.atleast_1d(x, x[0, 0, 0]))),
    "flip": Case(lambda x: (np.flip(x), np.flip(x, 1), np.flip(x, (0, -1)), np.fliplr(x), np.flipud(x[0]),
                            np.flip(x[0, 0, 0]))),
    "roll": Case(lambda x: (np.roll(x, 1), np.roll(x, -7, axis=1), np.roll(x, (1, 2), axis=(0, 2)),
                            np.roll(x, (3, -1), axis=(1, 1)), np.roll(x, 100, axis=-1), np.roll(x, 0))),
    "tril-triu": Case(lambda x: (np.tril(x), np.triu(x, 1), np.tril(x, -1), np.triu(x[0, 0], 2), np.tril(x, 10))),
    "pad": Case(lambda x: (np.pad(x, 1), np.pad(x, ((0, 1), (2, 0), (1, 1)), constant_values=((1, 2), (3, 4), (5, 6))),
                           np.pad(x, 2, "edge"), np.pad(x, (3, 9), "wrap"), np.pad(x, ((1, 2), (3, 4), (0, 5)), "reflect"),
                           np.pad(x, 5, mode="symmetric"), np.pad(x[0, 0], (2, 3), constant_values=7.5))),
    "repeat-tile": Case(lambda x: (np.repeat(x, 2), np.repeat(x, 3, axis=1), x.repeat([2], axis=-1), np.tile(x, 2),
                                   np.tile(x, (2, 1, 1, 3)), np.tile(x[0, 0], (2, 2)), np.repeat(x, 0, axis=2))),
    "repeat-per-element": Case(lambda x: (np.repeat(x, [1, 0], axis=0), x[0].repeat([2, 0, 3], 0))),  # NumPy raises at (5, 6, 8)
    "meshgrid": Case(lambda x: (np.meshgrid(x[0, 0], x[0, :, 0]), np.meshgrid(x[0, 0], x[1, 1], indexing="ij"),
                                np.meshgrid(x[0, 0], x[0, :, 1], x[1, 0], sparse=True), np.meshgrid(x[0, 0]),
                                np.meshgrid(x[0], x[1, 0], copy=False))),
    "gradient": Case(lambda x: (np.gradient(x), np.gradient(x, axis=1), np.gradient(x, 2.0, edge_order=2, axis=-1),
                                np.gradient(x[0], np.float32(0.5), 3))),
    "sort-argsort": Case(lambda x: (np.sort(x), np.sort(x, axis=0), np.sort(x, axis=None), x.argsort(kind="stable"),
                                    np.argsort(x, 1, stable=True), np.argsort(x, axis=None, kind="stable"),
                                    np.sort(x, kind="mergesort"), np.argsort(x[0, 0, 0]))),
    "sort-in-place": Case(lambda x: _sorted_in_place(x)),
}


def _sorted_in_place(x):
    y = x.copy()
    y.sort(axis=1)
    return y


def case_args(case, dtype, shapes=None):
    return [sample(dtype, shape, seed) for seed, shape in enumerate(shapes or case.shapes)]


@pytest.mark.parametrize("name", CASES)
def test_function_matches_eager_for_every_dtype(name):
    case = CASES[name]
    for dtype in DTYPES:
        check(case.fn, case_args(case, dtype), what=f"{name}[{dtype}]", code=True, rtol=case.rtol)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", [n for n, c in CASES.items() if all(len(s) >= 1 for s in c.shapes)])
def test_function_on_non_contiguous_inputs(name, layout):
    case = CASES[name]
    for dtype in ("float32", "int64"):
        args = [LAYOUTS[layout](a) for a in case_args(case, dtype)]
        check(case.fn, args, what=f"{name}[{dtype}, {layout}]", rtol=case.rtol)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.other])
def test_function_traced_at_one_shape_runs_at_another(name):
    """The trace is shape-generic: at new shapes it matches eager NumPy there, or raises what NumPy raises."""
    case = CASES[name]
    for dtype in ("float32", "int16", "bool"):
        check(case.fn, case_args(case, dtype), case_args(case, dtype, case.other), what=f"{name}[{dtype}]",
              rtol=case.rtol)


def test_every_op_and_handled_function_has_a_case(monkeypatch):
    called = set()

    def recording(fn, handler):
        def wrapper(*args, **kwargs):
            called.add(fn)
            return handler(*args, **kwargs)
        return wrapper

    for fn, handler in list(tracer.HANDLED_FUNCTIONS.items()):
        monkeypatch.setitem(tracer.HANDLED_FUNCTIONS, fn, recording(fn, handler))
    recorded = set()
    with np.errstate(all="ignore"):
        for case in CASES.values():
            with contextlib.suppress(ValueError):  # max of an empty array raises, as in NumPy
                traced = gputrace.trace(case.fn, tuple(case_args(case, "float32")), check_trace=False)
                recorded |= {node.kind for node in traced.graph.walk()}
        for name in UFUNCS:
            fn = getattr(np, name)
            dtype = "int32" if name.startswith(("bitwise", "left", "right", "invert")) else "float32"
            traced = gputrace.trace(lambda *a: fn(*a), tuple(ufunc_args(name, dtype, [(2,), (2,)])))
            recorded |= {node.kind for node in traced.graph.walk()}
    assert sorted(set(ops.OPS) - recorded) == []
    functions = {f for f in tracer.HANDLED_FUNCTIONS if not isinstance(f, np.ufunc)}  # np.matmul: a ufunc
    assert sorted(f.__name__ for f in functions - called) == []
