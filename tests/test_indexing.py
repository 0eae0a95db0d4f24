"""Indexing with integer arrays (gathers), assignment and in-place updates, written as users write them.

Each program is traced once and compared with eager NumPy on the numpy and emulate backends, at the traced
shape, at another shape with new values and on non-contiguous inputs; inputs the function updates in place
must be left by a call as eager NumPy leaves them. Errors: type and message.
"""
import inspect
import types
import warnings

import numpy as np
import pytest

import gputrace
from gputrace import ops
from gputrace.codegen import Kernel

BACKENDS = ["numpy", "emulate"]
FRAMES = np.array([[0, 1, 2], [2, 3, 4], [4, 5, 6]])  # constant indices: a captured table of frames


def line_of(fn, marker):
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, text in enumerate(lines) if marker in text)


def run_everywhere(traced, fn, *inputs, backends=BACKENDS):
    """``traced`` on ``backends`` against ``fn`` run eagerly, on copies: outputs and updated inputs the same."""
    for backend in backends:
        mine, eager = [x.copy() for x in inputs], [x.copy() for x in inputs]
        got, want = traced.run(*mine, backend=backend), fn(*eager)
        for k, (g, w) in enumerate(zip(got, want)):
            assert g.dtype == w.dtype and g.shape == w.shape, (backend, k, g.dtype, w.dtype, g.shape, w.shape)
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6, err_msg=f"{backend}: output {k}")
        for k, (m, e) in enumerate(zip(mine, eager)):
            np.testing.assert_array_equal(m, e, err_msg=f"{backend}: input {k} after the call")


def embed_and_pick(wte, wpe, token_ids, logits, labels, signal):
    T = token_ids.shape[1]
    h = wte[token_ids] + wpe[np.arange(T)]  # embedding and positions, then a layer norm
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)
    n = len(labels)
    probs = logits[np.arange(n), labels]
    picked = logits[range(n), labels]
    last = h[:, [-1]]
    return (h, probs, picked, last, np.take(logits, labels, axis=1), np.take_along_axis(logits, labels[:, None], 1),
            signal[FRAMES], signal[FRAMES[:, ::-1]] * 2, logits[[-1, 0], 1:], logits[:, None, labels, None],
            h[labels[:2], ..., [0, -1]], logits[np.array([True, False, True])])


def gather_inputs(B, T, V, C, n, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((V, C)).astype(np.float32), rng.standard_normal((T + 2, C)).astype(np.float32),
            rng.integers(-V, V, (B, T)), rng.standard_normal((3, n)).astype(np.float32).T,
            rng.integers(-3, 3, n).astype(np.int32), rng.standard_normal(8).astype(np.float64))


def test_gathers_match_eager_numpy_on_every_backend():
    inputs = gather_inputs(2, 4, 10, 8, 3, seed=0)
    traced = gputrace.trace(embed_and_pick, inputs)
    run_everywhere(traced, embed_and_pick, *inputs)
    # other shapes, new values (kernels at other shapes: tests/codegen/test_gather_kernels.py)
    run_everywhere(traced, embed_and_pick, *gather_inputs(3, 5, 7, 16, 3, seed=1), backends=["numpy"])
    layouts = list(inputs)
    layouts[0] = np.asfortranarray(inputs[0])
    layouts[4] = np.repeat(inputs[4], 2)[::2]
    run_everywhere(traced, embed_and_pick, *layouts)
    np.testing.assert_array_equal(traced.python()(*inputs)[1], embed_and_pick(*inputs)[1])  # .code
    # every gather is read inside a kernel: the embedding, the positions and the layer norm are one
    program = traced.lower(*inputs)
    assert "np::gather" not in [n.kind for n in program.graph.nodes]
    kernels = program.plan
    assert all(isinstance(k, Kernel) for k in kernels) and len(kernels) == 10
    assert kernels[0].ops == ["gather", "gather", "add", "mean", "subtract", "var", "add", "sqrt", "divide"]


def step(W, dW, x, y, idx):
    W += -0.1 * dW  # an optimiser step: written back into the caller's W
    n = len(y)
    grad = x * 1.0
    grad[range(n), y] -= 1
    a = x.copy()
    a[a > 0] = 0
    b = x * 2
    b[idx] = 5
    b[:, -1] = x[:, 0]
    c = np.zeros_like(x)
    np.add.at(c, (idx, 0), 1.0)  # repeated places add up
    d = x * 1
    d[idx] += 1  # repeated places add once
    e = x * 1
    e[...] = 3
    e[1:, :2] = x[:-1, 1:3]
    f = x * 1
    row = f[0]
    row[:] = 7  # f changes
    f += 1  # row sees it
    g = x.T * 1
    g[g[:, 0] < 0.5] = x[:, 0]  # a row mask: the values broadcast against each selected row
    x[0] = 9  # an input assigned into: written back
    return grad, a, b, c, d, e, f, row, g


def step_inputs(n, m, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((3, 3)).astype(np.float32), rng.standard_normal((3, 3)).astype(np.float32),
            rng.standard_normal((n, m)).astype(np.float32), rng.integers(0, m, n), np.array([0, n - 1, 0, 1]))


def test_assignments_match_eager_numpy_and_update_inputs_on_every_backend():
    inputs = step_inputs(4, 4, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gputrace.TracerWarning)  # nothing traced out of place
        traced = gputrace.trace(step, tuple(x.copy() for x in inputs))
    assert traced.graph.meta["updated_inputs"] == [0, 2]
    run_everywhere(traced, step, *inputs)
    run_everywhere(traced, step, *step_inputs(6, 4, seed=1))
    gputrace.check_trace(traced, inputs)  # compares the updated inputs too
    W, x = inputs[0].copy(), inputs[2].copy()
    traced(W, inputs[1], x, inputs[3], inputs[4])
    traced(W, inputs[1], x, inputs[3], inputs[4])  # two steps
    np.testing.assert_allclose(W, inputs[0] - 0.2 * inputs[1], rtol=1e-6)
    assert (x[0] == 9).all()


def through_views(x, y):
    x.T[0] = 1  # x's first column: written back
    col = y[:, None, 1]
    col[1:] *= 2  # y's second column
    top, bottom = np.split(y, 2)
    bottom += 10  # y's lower half
    s = x[None].squeeze(0)
    s[-1] = s[0]  # x's last row
    return col, top, s.sum()


def test_assignments_through_views_of_inputs_reach_them():
    x, y = np.arange(12.0).reshape(3, 4), np.arange(8, dtype=np.int32).reshape(4, 2)
    traced = gputrace.trace(through_views, (x.copy(), y.copy()))
    assert traced.graph.meta["updated_inputs"] == [0, 1]
    run_everywhere(traced, through_views, x, y)
    run_everywhere(traced, through_views, x[:2] * 3, np.tile(y, (2, 1)) - 5)


def test_an_argument_of_a_submodule_updated_in_place_is_refused():
    class Inner(gputrace.nn.Module):
        def forward(self, h):
            h += 1  # in place
            return h

    class Outer(gputrace.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()

        def forward(self, x):
            return self.inner(x)

    with pytest.raises(gputrace.UnsupportedOperationError,
                       match=r"in-place `\+=` on an argument of a submodule call \(the caller's array would not see "
                             rf"it\) is not supported by gputrace at .*test_indexing.py:{line_of(Inner.forward, '# in')}"
                             r"; return the new value"):
        gputrace.trace(Outer(), np.zeros(3, np.float32))


def test_code_and_saved_files_write_updated_inputs_back(tmp_path):
    inputs = step_inputs(4, 4, seed=0)
    traced = gputrace.trace(step, tuple(x.copy() for x in inputs))
    assert "W[...] = " in traced.code
    for fn in (traced.python(), gputrace.load(gputrace.save(traced, tmp_path / "step.gpt") or tmp_path / "step.gpt")):
        mine, eager = [x.copy() for x in inputs], [x.copy() for x in inputs]
        got, want = fn(*mine), step(*eager)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-6)
        np.testing.assert_array_equal(mine[0], eager[0])


def test_indexed_shapes_follow_numpy():
    x = np.zeros((2, 3, 4, 5))
    indices = [(0, slice(None), [0, 1]), ([0], None, [0]), (slice(None), [[0], [1]], [0, 1, 2]), (..., [0, 1], 0),
               (None, 0, [1, 2]), ([0, 1], slice(None), slice(None), [1, 1]), (1, ..., None, [2]), ([1], [2], [3], [4])]
    for index in indices:
        template = tuple(ops.INDEX_ARRAY if isinstance(i, list) else i for i in index)
        arrays = [np.shape(i) for i in index if isinstance(i, list)]
        assert ops.indexed_shape(x.shape, template, arrays) == x[index].shape, index


class ArrayLibrary(types.SimpleNamespace):
    """NumPy under another name: the op impls take the path they take for CuPy (which wraps bad indices around
    and writes repeated places in no set order)."""

    def __getattr__(self, name):
        return getattr(np, name)


def test_the_path_other_array_libraries_take_checks_bounds_and_writes_repeated_places_last():
    xp, x = ArrayLibrary(), np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(ops.run_op("np::gather", xp, [x, np.array([-1, 0])], {"index": ("array", 1)}),
                                  x[[-1, 0], 1])
    with pytest.raises(IndexError, match="^index 4 is out of bounds for axis 1 with size 4$"):
        ops.run_op("np::gather", xp, [x, np.array([1, 4])], {"index": (0, "array")})
    repeated = ops.run_op("np::setitem", xp, [x, np.array([[5.0], [6.0]]), np.array([2, 2])], {"index": ("array",)})
    np.testing.assert_array_equal(repeated[2], [6.0] * 4)
    with pytest.raises(IndexError, match="^index -4 is out of bounds for axis 0 with size 3$"):
        ops.run_op("np::ufunc_at", xp, [x, 1.0, np.array([-4])], {"ufunc": "add", "index": ("array",)})


# ----------------------------------------------------------------------------- errors


def test_out_of_range_indices_raise_numpys_index_error_on_every_backend():
    traced = gputrace.trace(lambda x, i: (np.exp(x[i]), x[:, [0, -3]]), (np.ones((4, 3), np.float32), np.array([0, 3])))
    for backend in BACKENDS:
        with pytest.raises(IndexError, match="^index 4 is out of bounds for axis 0 with size 4$"):
            traced.run(np.ones((4, 3), np.float32), np.array([1, 4]), backend=backend)
        with pytest.raises(IndexError, match="^index -3 is out of bounds for axis 1 with size 2$"):
            traced.run(np.ones((5, 2), np.float32), np.array([1]), backend=backend)  # a constant, at a new shape
    with pytest.raises(IndexError, match="^index 3 is out of bounds for axis 0 with size 3$"):
        gputrace.trace(lambda x: x[[0, 3]], np.ones(3, np.float32))

    def assign(x, i):
        x[i, 0] += 1
        return x

    traced = gputrace.trace(assign, (np.ones((4, 3), np.float32), np.array([0, 3])))
    for backend in BACKENDS:
        x = np.ones((4, 3), np.float32)
        with pytest.raises(IndexError, match="^index -5 is out of bounds for axis 0 with size 4$"):
            traced.run(x, np.array([-5]), backend=backend)
        np.testing.assert_array_equal(x, 1)  # nothing written back


def masked_read(r):
    return np.cumsum(r[r > 0])  # data-dependent size


def masked_values(x):
    x = x * 1
    x[x > 0] = np.arange(6.0)  # as many values as True elements: data-dependent
    return x


def reshaped_then_updated(x):
    y = x * 2
    flat = y.reshape(-1)
    y[0] = 0  # flat: a view or a copy by the layout
    return flat


def write_into_broadcast(x):
    b = np.broadcast_to(x[0], (2, 3))
    b[0] = 1
    return b


COUNTS = np.zeros(3)  # a module-level array: no trace records it


def add_at_into_numpy(x):
    np.add.at(COUNTS, x.astype(np.int64), 1)
    return x + COUNTS


@pytest.mark.parametrize("fn, error, message", [
    (masked_read, gputrace.UnsupportedOperationError,
     rf"x\[mask\] with a traced boolean mask \(taken at test_indexing.py:{line_of(masked_read, '# data-dependent')}:"
     r"\d+; its size depends on the data\) used as np.cumsum of it is not supported by gputrace at "
     rf".*test_indexing.py:{line_of(masked_read, '# data-dependent size')}; keep the shape with np.where"),
    (masked_values, gputrace.UnsupportedOperationError,
     r"assigning an array of values through a traced boolean mask .* depends on the data\) is not supported by "
     rf"gputrace at .*test_indexing.py:{line_of(masked_values, 'data-dependent')}; write x = np.where"),
    (reshaped_then_updated, gputrace.UnsupportedOperationError,
     r"updating an array and its reshaped view .* is not supported by gputrace at .*test_indexing.py:"
     rf"{line_of(reshaped_then_updated, '# flat')}; take the reshape after the update, or a copy"),
    (add_at_into_numpy, gputrace.UnsupportedOperationError, r"np.add.at into an array that is not traced"),
    (write_into_broadcast, ValueError, r"^assignment destination is read-only$"),
    (lambda x: np.add(np.diagonal(x).__iadd__(1), 0), ValueError, r"^output array is read-only$"),
    (lambda x: x[x.astype(np.float32)], IndexError, r"^arrays used as indices must be of integer \(or boolean\) type$"),
    (lambda x: x[[0, 1], [0, 1, 1]], IndexError,
     r"^shape mismatch: indexing arrays could not be broadcast together with shapes \(2,\) \(3,\) $"),
    (lambda x: x[np.array([True, False])], IndexError, r"^boolean index did not match indexed array along axis 0; "
                                                       r"size of axis is 3 but size of corresponding boolean axis is 2$"),
    (lambda x: x.__setitem__((slice(None), [0, 1]), np.ones(3)), ValueError,
     r"^shape mismatch: value array of shape \(3,\) could not be broadcast to indexing result of shape \(3,2\)$"),
    (lambda x: x.__setitem__((slice(None), slice(0, 2)), np.ones(3)), ValueError,
     r"^could not broadcast input array from shape \(3,\) into shape \(3,2\)$"),
    (lambda x: x.__setitem__(Ellipsis, np.ones(2)), ValueError,
     r"^could not broadcast input array from shape \(2,\) into shape \(3,3\)$"),
    (lambda x: x[1.5], IndexError, r"^only integers, slices"),
    (lambda x: np.take(x, [0], mode="bad"), ValueError, r"clipmode must be one of"),
], ids=["mask-read", "mask-values", "reshape-view", "add-at-numpy", "broadcast-view", "diagonal-view", "float-index",
        "broadcast-indices", "mask-shape", "value-shape", "value-shape-slice", "value-shape-whole", "float-scalar",
        "take-mode"])
def test_bad_indices_and_assignments_raise_clearly(fn, error, message):
    x = np.arange(9, dtype=np.float32).reshape(3, 3) - 4
    with pytest.raises(error, match=message):
        gputrace.trace(fn, x)
    if not issubclass(error, gputrace.GputraceError):
        with pytest.raises(error, match=message):
            fn(x.copy())  # NumPy's own error


def selected_reductions(x, m):
    inside = x[m > 0.5]  # rows of x where m holds: their number depends on the data
    scaled = x[m > 0.5] * 2 + 1
    return (inside.sum(axis=0), inside.mean(axis=0), scaled.sum(), inside.max(axis=0, initial=-9.0),
            (inside > 0).any(axis=0), np.mean(scaled, keepdims=True), inside.prod(0, dtype=np.float64))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_selection_by_a_traced_mask_reduces_over_its_selected_axis(backend, rng):
    x, m = rng.standard_normal((7, 3)).astype(np.float32), rng.random(7)
    traced = gputrace.trace(selected_reductions, (x, m))
    for rows, threshold in ((7, 0.0), (12, 0.0), (5, 2.0)):  # 2.0: nothing selected (the mean of nothing is NaN)
        x, m = rng.standard_normal((rows, 3)).astype(np.float32), rng.random(rows) + threshold
        m = 1 - m if threshold else m
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's "Mean of empty slice"
            want = selected_reductions(x, m)
        for got, expected in zip(traced.run(x, m, backend=backend), want):
            assert got.dtype == expected.dtype and got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("fn, use", [
    (lambda x: x[x > 0].max(), r"np.max without initial= \(an empty selection has no max\)"),
    (lambda x: x[x > 0].argmax(), "np.argmax of it"),
    (lambda x: x[x[:, 0] > -9].sum(axis=1), "np.sum of it along another axis than the selected"),
    (lambda x: x[x > 0].std(), "np.std of it"),
])
def test_a_reduction_of_a_selection_that_would_differ_is_refused(fn, use):
    with pytest.raises(gputrace.UnsupportedOperationError, match=rf"x\[mask\] with a traced boolean mask .* used as "
                                                                 rf"{use} is not supported"):
        gputrace.trace(fn, np.arange(12.0).reshape(3, 4) - 5)
