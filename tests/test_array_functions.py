"""The array functions real code reaches for (stacks, flips, roll, pad, repeat, tile, tril/triu, meshgrid,
gradient, sort) traced as NumPy defines them: against eager NumPy on the kernel backends, at the traced
shape and at another, on non-contiguous inputs and in several dtypes; what they cost; NumPy's errors;
and what an untraced NumPy function says instead.

(test_ops_coverage.py runs each of them on numpy in nine dtypes, three layouts and at another shape.)
"""
import inspect
import warnings

import numpy as np
import pytest

import gputrace
from gputrace.backends.host_compiler import host_compiler_info
from tests.codegen.backend_agreement import KERNEL_BACKENDS, assert_arrays_agree, outputs_of, run_on

HERE = __file__
pytestmark = [pytest.mark.filterwarnings("error::gputrace.TracerWarning"),  # nothing may be baked in silently
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]  # eager NumPy on NaN and infinities


@pytest.fixture(params=["numpy", *KERNEL_BACKENDS])
def backend(request):
    return request.param


def sample(dtype, shape, seed=0):
    """Values with ties, NaN, infinities and both zeros (floats), the extremes (integers)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind == "f":
        values = np.round(rng.standard_normal(shape) * 3).astype(dtype)  # rounded: ties to sort
        specials = [np.nan, np.inf, -np.inf, -0.0, 0.0, 0.5]
    else:
        info = np.iinfo(dtype)
        values = rng.integers(max(info.min, -5), min(info.max, 5), shape, endpoint=True).astype(dtype)
        specials = [info.min, info.max, 0]
    flat = values.reshape(-1)
    flat[:len(specials)] = specials[:flat.size]
    return values


def layouts(dtype):
    """The traced input, then inputs of another shape: contiguous, transposed, and strided backwards."""
    yield sample(dtype, (5, 7))
    yield sample(dtype, (8, 3), seed=1)
    yield np.ascontiguousarray(sample(dtype, (4, 6), seed=2).T).T
    yield sample(dtype, (12, 18), seed=3)[::3, ::-2]


def assert_matches_numpy(traced, fn, x, backend, **tolerance):
    want = outputs_of(fn(x))
    got = run_on(traced, (x,), backend)
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        assert_arrays_agree(w, g, what=f"output {k} of {fn.__name__} at {x.shape}, strides {x.strides}", **tolerance)


def manipulations(x):
    """One program of many functions, five kernels: one build covers them all."""
    return (np.hstack([x, x[:, :2]]), np.vstack((x[:1], x)), np.dstack([x, x]), np.column_stack([x[:, 0], x]),
            np.append(x, x[-1:], axis=0), np.append(x, 0),
            np.flip(x), np.fliplr(x) * 2 + np.flipud(x), np.atleast_3d(x[0]),
            np.roll(x, 2), np.roll(x, (-1, 9), axis=(0, 1)),
            np.tril(x), np.triu(x, -1), np.tril(x[0], 1),
            np.pad(x, ((1, 2), (0, 3))), np.pad(x, 2, "edge"), np.pad(x, (4, 1), "wrap"), np.pad(x, 3, "reflect"),
            np.pad(x, (0, 6), "symmetric"),
            np.repeat(x, 2, axis=0), x.repeat(3), np.tile(x, (2, 1, 2)),
            *np.meshgrid(x[0], x[:, 1]), *np.meshgrid(x[0], x[1], x[:, 0], indexing="ij", sparse=True),
            np.sort(x, axis=0), np.argsort(x, kind="stable"), np.sort(x, axis=None))


@pytest.mark.parametrize("dtype", ["float32", "float16", "bool"])
def test_manipulations_match_numpy_at_other_shapes_and_layouts(backend, dtype):
    if backend != "numpy" and dtype == "float16":
        pytest.skip("float16 kernels are tested in tests/codegen; each build here costs seconds")
    if backend == "cuda" and dtype != "float32":
        pytest.skip("cuda runs the float32 program")
    if backend == "emulate" and not host_compiler_info()["available"]:
        pytest.skip("no host C++ compiler")
    inputs = list(layouts(dtype))
    traced = gputrace.trace(manipulations, (inputs[0],), check_trace=False)
    # each signature is a build on emulate: every layout in float32, one other shape in the other dtypes
    for x in inputs if backend == "numpy" else inputs[::3] if dtype == "float32" else inputs[2:3]:
        assert_matches_numpy(traced, manipulations, x, backend)


def gradients(x):
    return np.gradient(x, axis=-1), np.gradient(x, np.float32(0.5), edge_order=2, axis=0)


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-6), ("float16", 1e-3), ("int16", 1e-15)])
def test_gradient_at_other_shapes_and_layouts(backend, dtype, rtol):
    if backend != "numpy" and dtype != "float32":
        pytest.skip("float16 kernels are tested in tests/codegen; int16 is computed in float64 as float32 is")
    if backend == "emulate" and not host_compiler_info()["available"]:
        pytest.skip("no host C++ compiler")
    inputs = [np.where(np.isfinite(x), x, 1) if dtype != "int16" else x for x in layouts(dtype)]
    traced = gputrace.trace(gradients, (inputs[0],), check_trace=False)
    assert not traced.graph.meta["reads_shape"]  # one graph for every shape
    for x in inputs if backend == "numpy" else inputs[::3] if dtype == "float32" else inputs[2:3]:
        assert_matches_numpy(traced, gradients, x, backend, rtol=rtol, atol=rtol)


def test_gradient_with_coordinates_is_traced_again_at_other_shapes():
    """Coordinates fit one length of their axis: the trace reads the shape, so NumPy's checks run again."""
    coordinates = np.array([0.0, 1.0, 1.5, 3.5, 4.0])

    def slope(f):
        return np.gradient(f, coordinates, 2.0), np.gradient(f, coordinates, axis=0, edge_order=2)

    f = sample("float32", (5, 4))
    traced = gputrace.trace(slope, (f,), check_trace=False)
    for x in (f, sample("float32", (5, 9), seed=1)):
        assert_matches_numpy(traced, slope, x, "numpy")
    with pytest.raises(ValueError, match="when 1d, distances must match the length of the corresponding dimension"):
        traced(sample("float32", (6, 4)))


def test_gradient_errors():
    x = sample("float32", (5, 4))
    traced = gputrace.trace(lambda f: np.gradient(f, edge_order=2, axis=0), (x,), check_trace=False)
    with pytest.raises(IndexError, match="index 2 is out of bounds for axis 0 with size 2"):
        traced(x[:2])  # too short for edge_order=2 (NumPy: ValueError); the graph takes f[2] for the edge
    with pytest.raises(TypeError, match="numpy boolean subtract"):  # as NumPy's
        gputrace.trace(lambda f: np.gradient(f), (x > 0,), check_trace=False)


def test_sort_and_argsort(backend):
    """Sorted values equal NumPy's in every kind; argsort's ties match NumPy's stable order, and the default
    kind's indices give the sorted values (ties may come in any order)."""
    if backend == "emulate" and not host_compiler_info()["available"]:
        pytest.skip("no host C++ compiler")

    def sorts(x):
        return (np.sort(x), np.sort(x, axis=0, kind="heapsort"), np.sort(x, axis=None) + 1,
                np.argsort(x, axis=0, kind="stable"), x.argsort(axis=None, stable=True), np.argsort(x, axis=1),
                np.sort(x.T, 1)[:, ::-1])

    for dtype in ("float32", "bool") if backend == "emulate" else ("float32", "float16", "int8", "uint8", "bool"):
        x = sample(dtype, (6, 9))
        traced = gputrace.trace(sorts, (x,), check_trace=False)
        assert [step.name for step in traced.lower(x).plan].count("sort (array library)") == 4
        for y in (x, sample(dtype, (9, 4), seed=1).T):
            got, want = run_on(traced, (y,), backend), sorts(y)
            for k in range(len(want)):
                if k == 5:  # the default kind: any order of ties
                    assert got[k].dtype == want[k].dtype == np.intp
                    np.testing.assert_array_equal(np.take_along_axis(y, got[k], 1), np.sort(y, 1), strict=True)
                else:
                    assert_arrays_agree(want[k], got[k], what=f"output {k}, {dtype}")


def test_sort_in_place_sorts_the_callers_array_as_numpy_does():
    def sort_copy_and_input(x):
        y = x * 2
        y.sort(axis=0)
        x.sort()  # NumPy sorts the caller's array
        return x, y

    x = sample("float32", (4, 5))
    traced = gputrace.trace(sort_copy_and_input, (x,))
    np.testing.assert_array_equal(x, sample("float32", (4, 5)))  # tracing leaves the caller's array alone
    got = traced(x)
    np.testing.assert_array_equal(got[0], np.sort(sample("float32", (4, 5))))
    np.testing.assert_array_equal(got[1], np.sort(sample("float32", (4, 5)) * 2, axis=0))
    np.testing.assert_array_equal(x, np.sort(sample("float32", (4, 5))))  # written back, as eager NumPy leaves it


def test_what_the_kernels_cost():
    """Flips and atleast are views the kernel reads; tril and triu one kernel after the scans of two lines of
    ones (their positions: two small kernels); meshgrid of two vectors one kernel; stacks one concatenate."""
    x = sample("float32", (6, 5))
    cases = [
        (lambda x: np.fliplr(x) * 2 + np.flipud(x) - np.flip(np.atleast_3d(x))[..., 0], 1, []),
        (lambda x: np.tril(x) * 2 + np.triu(x, 2), 3, ["cumsum (array library)"] * 2),  # positions shared (CSE)
        (lambda x: np.meshgrid(x[0] + 1, x[:, 0]), 1, []),  # x[0] + 1 computed again where it is broadcast
        (lambda x: np.hstack([x, x[:, :1] * 2]), 1, ["concatenate (array library)"]),
    ]
    for fn, kernels, library in cases:
        traced = gputrace.trace(fn, (x,), check_trace=False)
        plan = traced.lower(x).plan
        assert len(traced.kernels) == kernels
        assert [step.name for step in plan if step not in traced.kernels] == library
        assert_matches_numpy(traced, fn, x, "numpy")


@pytest.mark.parametrize("fn, reads_shape", [
    (lambda x: (np.hstack([x, x]), np.vstack([x, x]), np.dstack([x]), np.column_stack([x[0], x[1]]), np.append(x, 1)),
     False),
    (lambda x: (np.flip(x), np.fliplr(x), np.flipud(x), np.atleast_3d(x)), False),
    (lambda x: (np.tril(x, 1), np.triu(x), np.meshgrid(x[0], x[:, 0]), np.gradient(x), np.sort(x)), False),
    (lambda x: np.roll(x, 1), True),
    (lambda x: np.pad(x, 1), True),
    (lambda x: np.repeat(x, 2, axis=1), True),
    (lambda x: np.tile(x, 2), True),
], ids=["stacks", "flips", "elementwise-and-sort", "roll", "pad", "repeat", "tile"])
def test_which_functions_read_the_shape(fn, reads_shape):
    """A trace that reads no shape is run at other shapes as recorded; roll, pad, repeat and tile hold sizes
    in their graphs, so they read the shape and are traced again (test_ops_coverage checks both at another
    shape)."""
    traced = gputrace.trace(fn, (sample("float32", (3, 4)),), check_trace=False)
    assert traced.graph.meta["reads_shape"] is reads_shape


def test_tri_of_a_shape_inside_a_trace():
    """np.tri takes no array (it is never traced): built from x.shape, it is a constant of each shape."""
    def lower_sums(x):
        return np.tri(x.shape[0], x.shape[1], -1, dtype=x.dtype) * x, np.tri(x.shape[0]) @ x

    traced = gputrace.trace(lower_sums, (sample("float32", (3, 4)),), check_trace=False)
    for shape in ((3, 4), (5, 2), (2, 6)):
        x = sample("float32", shape, seed=shape[0])
        for got, want in zip(traced(x), lower_sums(x)):
            assert_arrays_agree(want, got)


# ----------------------------------------------------------------------------- errors


ERRORS = {
    "pad-mode": lambda x: np.pad(x, 1, "nearest"),
    "pad-negative": lambda x: np.pad(x, -1),
    "pad-float-width": lambda x: np.pad(x, 1.5),
    "pad-keyword": lambda x: np.pad(x, 1, "edge", constant_values=3),
    "pad-empty-axis": lambda x: np.pad(x[:0], 1, "wrap"),
    "repeat-negative": lambda x: np.repeat(x, -1),
    "repeat-counts": lambda x: np.repeat(x, [1, 2], axis=0),
    "repeat-axis": lambda x: x.repeat(2, axis=2),
    "tile-negative": lambda x: np.tile(x, (2, -1)),
    "flip-axis": lambda x: np.flip(x, (0, 2)),
    "fliplr-1d": lambda x: np.fliplr(x[0]),
    "flipud-0d": lambda x: np.flipud(x[0, 0]),
    "roll-axis": lambda x: np.roll(x, 1, axis=-3),
    "roll-2d-shift": lambda x: np.roll(x, [[1, 2]], axis=0),
    "tril-0d": lambda x: np.tril(x[0, 0]),
    "meshgrid-indexing": lambda x: np.meshgrid(x[0], x[1], indexing="yx"),
    "hstack-ndim": lambda x: np.hstack([x, x[0]]),
    "concatenate-casting": lambda x: np.concatenate([x, x], dtype=np.int8),
    "stack-casting": lambda x: np.stack([x, x], casting="no", dtype=np.float64),
    "gradient-arguments": lambda x: np.gradient(x, 1.0, 2.0, 3.0),
    "gradient-edge-order": lambda x: np.gradient(x, edge_order=3),
    "gradient-too-short": lambda x: np.gradient(x[:1], axis=0),
    "sort-kind": lambda x: np.sort(x, kind="bubble"),
    "sort-order": lambda x: np.sort(x, order="a"),
    "sort-kind-and-stable": lambda x: x.argsort(kind="stable", stable=True),
    "sort-axis": lambda x: np.argsort(x, axis=2),
    "sort-0d": lambda x: np.sort(x[0, 0]),
}


@pytest.mark.parametrize("name", ERRORS)
def test_numpys_errors_with_numpys_type_and_message(name):
    x = sample("float32", (3, 4))
    with pytest.raises(Exception) as eager:
        ERRORS[name](x)
    with pytest.raises(type(eager.value)) as traced:
        gputrace.trace(ERRORS[name], (x,), check_trace=False)
    assert str(traced.value) == str(eager.value)


def unsupported(fn, what):
    """Tracing ``fn`` raises UnsupportedOperationError: ``what`` (a regex) at the line of ``fn``."""
    lines, start = inspect.getsourcelines(fn)
    with pytest.raises(gputrace.UnsupportedOperationError, match=what) as info:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gputrace.TracerWarning)
            gputrace.trace(fn, (sample("float32", (4, 4)),), check_trace=False)
    assert f" is not supported by gputrace at {HERE}:{start}" in str(info.value)


@pytest.mark.parametrize("fn, what", [
    (lambda x: np.pad(x, 1, "mean"), r"np.pad\(..., mode='mean'\) .*; the modes traced are constant, edge, "
                                      r"symmetric, reflect, wrap"),
    (lambda x: np.pad(x, 1, np.pad), r"np.pad\(..., mode='pad'\)"),
    (lambda x: np.pad(x, 1, "symmetric", reflect_type="odd"), r"reflect_type='odd'.*; reflect_type='even'"),
    (lambda x: np.pad(x, 1, constant_values=x[0, 0]), r"np.pad with traced widths or values"),
    (lambda x: np.repeat(x, (x > 0).astype(int)), r"np.repeat with traced repeats .*; the result's size would "
                                                   r"depend on the values"),
    (lambda x: np.repeat(x.ravel(), np.arange(16) % 2 + np.arange(16) // 8 * 4),
     r"np.repeat with 16 runs"),
    (lambda x: np.gradient(x, x[0]), r"np.gradient with traced spacing"),
], ids=["pad-mean", "pad-callable", "pad-odd", "pad-traced-value", "repeat-traced", "repeat-runs", "gradient-traced"])
def test_what_is_refused(fn, what, monkeypatch):
    monkeypatch.setattr("gputrace.manipulation.MAX_REPEAT_RUNS", 8)
    unsupported(fn, what)


@pytest.mark.parametrize("fn, name, hint", [
    (lambda x: np.unique(x), "np.unique", "its result's size depends on the values"),
    (lambda x: np.nonzero(x), "np.nonzero", r"keep a fixed size, e.g. a mask with np.where\(condition, x, fill\)"),
    (lambda x: np.argwhere(x > 0), "np.argwhere", "its result's size depends on the values"),
    (lambda x: np.linalg.inv(x), "np.linalg.inv", r"solvers and decompositions are not traced \(np.linalg.norm is\)"),
    (lambda x: np.linalg.solve(x, x[0]), "np.linalg.solve", "compute them with NumPy outside the traced function"),
    (lambda x: np.fft.rfft(x), "np.fft.rfft", "FFTs are not traced"),
    (lambda x: np.allclose(x, 1), "np.allclose", r"np.all\(np.isclose\(a, b\)\) keeps the answer a traced array"),
    (lambda x: np.choose(np.zeros(x.shape, np.int64), [x, x]), "np.choose",
     r"index with integer arrays instead \(x\[idx\], np.take, np.take_along_axis are traced\), or np.where"),
    (lambda x: np.median(x, axis=0), "np.median", r"np.sort\(x, axis\) is traced"),
    (lambda x: np.copyto(x, 0), "np.copyto", r"assign with x\[index\] = values or x\[mask\] = value, which are traced"),
], ids=lambda v: v if isinstance(v, str) and v.startswith("np.") else None)
def test_an_untraced_function_names_itself_the_line_and_what_to_write(fn, name, hint):
    unsupported(fn, rf"^the NumPy function {name} is not supported by gputrace at .*; .*{hint}")


def test_a_periodic_stencil_of_rolls_is_one_kernel_of_index_loads(rng):
    """np.roll is a gather by a constant index: the stencil reads u four times in one kernel, copies nothing."""
    def laplacian(u):
        return np.roll(u, 1, axis=0) + np.roll(u, -1, axis=0) + np.roll(u, 2, axis=1) + np.roll(u, -1, axis=1) - 4 * u

    u = rng.standard_normal((6, 7)).astype(np.float32)
    traced = gputrace.trace(laplacian, u)
    program = traced.lower(u)
    assert len(program.kernels) == 1
    assert [n.kind for n in program.graph.nodes if n.kind not in ("prim::Constant",)] == ["gt::FusionGroup"]
    for shape in ((6, 7), (3, 9)):
        u = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_array_equal(traced.run(u, backend="emulate"), laplacian(u))
