"""Tracing plain NumPy functions and modules: graphs, results, warnings, errors."""
import warnings

import numpy as np
import pytest

import gputrace
from gputrace import nn


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def test_seed_cell_function_traces_and_matches_eager(rng):
    x, h, w, b = f32(rng, 3, 4), f32(rng, 3, 4), f32(rng, 4, 4), f32(rng, 4)

    def cell(x, h):
        return np.tanh(x @ w.T + b + h)

    traced = gputrace.trace(cell, (x, h))
    text = str(traced.graph)
    assert "%x : Float32(3, 4, strides=[4, 1], device=cpu)" in text
    assert 'prim::Param[name="w_view"]' in text and 'prim::Param[name="b"]' in text
    assert "np::tanh" in text and "test_trace.py:" in text
    np.testing.assert_array_equal(traced(x, h), cell(x, h))


def test_mycell_graph_inlined_code_and_call(rng, my_cell):
    cell = my_cell
    x, h = f32(rng, 3, 4), f32(rng, 3, 4)
    traced = gputrace.trace(cell, (x, h))
    assert repr(traced) == "MyCell(\n  original_name=MyCell\n  (linear): Linear(original_name=Linear)\n)"
    graph = str(traced.graph)
    assert 'prim::GetAttr[name="linear"](%self)' in graph
    assert 'prim::CallMethod[name="forward"](%linear, %x)' in graph
    inlined = str(traced.inlined_graph)
    assert "prim::CallMethod" not in inlined and 'prim::GetAttr[name="weight"]' in inlined
    assert "linear.forward(x)" in traced.code
    for got, want in zip(traced(x, h), cell(x, h)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(traced.python()(cell, x, h)[0], cell(x, h)[0])


def test_parameters_updated_after_tracing_are_seen(rng, my_cell):
    cell = my_cell
    x, h = f32(rng, 3, 4), f32(rng, 3, 4)
    traced = gputrace.trace(cell, (x, h))
    cell.linear.weight = nn.Parameter(f32(rng, 4, 4))
    np.testing.assert_array_equal(traced(x, h)[0], cell(x, h)[0])


def test_weak_python_scalars_keep_numpy2_dtypes():
    x = np.arange(6, dtype=np.int8).reshape(2, 3)
    traced = gputrace.trace(lambda x: (x + 1, x * 2.5, x > 2), x)
    for got, want in zip(traced(x), (x + 1, x * 2.5, x > 2)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)



@pytest.mark.parametrize("first", [2, 2.5, True, 300])
def test_clip_of_a_python_scalar_is_strong_like_numpy(first):
    """np.clip(2, int8_array, None) clips np.asarray(2): int64, not the weak int8 of 2 + int8_array."""
    x = np.arange(-3, 3, dtype=np.int8)
    fns = (lambda x: np.clip(first, x, None), lambda x: np.clip(first, None, x), lambda x: np.clip(first, x, x + 1))
    for fn in fns:
        want = fn(x)
        traced = gputrace.trace(fn, x)
        for backend in ("numpy", "emulate"):
            got = traced.run(x, backend=backend)
            assert got.dtype == want.dtype, (backend, got.dtype, want.dtype)
            np.testing.assert_array_equal(got, want)

@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool"])
def test_ops_match_eager_across_dtypes(dtype, rng):
    x = (rng.standard_normal((4, 5)) * 10).astype(dtype)
    y = (rng.standard_normal((5,)) * 10).astype(dtype)

    def fn(x, y):
        out = [np.maximum(x, y), np.where(x > y, x, y), x.T, x[1:, ::-1], np.concatenate([x, x], axis=0),
               x.sum(axis=1), x.max(axis=0, keepdims=True), np.expand_dims(x, 0), x.reshape(-1)]
        if dtype != "bool":
            out += [x * y, x - y, np.clip(x, 1, 3), x.mean(), np.abs(x)]
        if dtype.startswith("float"):
            out += [np.exp(x / 10), np.tanh(x), np.sqrt(np.abs(x)), x / y, x @ x.T]
        else:
            out += [x & y, x | y]
            if dtype != "bool":
                out += [x // np.where(y == 0, 1, y), x % np.where(y == 0, 1, y)]
        return tuple(out)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        traced = gputrace.trace(fn, (x, y))
        expected = fn(x, y)
        got = traced(x, y)
    for g, e in zip(got, expected):
        assert np.asarray(g).dtype == np.asarray(e).dtype
        np.testing.assert_array_equal(g, e)


def test_new_shapes_reuse_the_trace(rng):
    traced = gputrace.trace(lambda x: np.exp(x) * 2 + x.sum(axis=-1, keepdims=True), f32(rng, 3, 4))
    x = f32(rng, 7, 9)
    np.testing.assert_allclose(traced(x), np.exp(x) * 2 + x.sum(axis=-1, keepdims=True), rtol=1e-6)


def test_data_dependent_control_flow_warns_with_the_line(rng):
    def fn(x):
        if x.sum() > 0:
            return x * 2
        return x - 1

    with pytest.warns(gputrace.TracerWarning, match=r"test_trace.py:\d+"):
        gputrace.trace(fn, np.ones(3, np.float32))


def test_check_inputs_catch_data_dependent_control_flow():
    def fn(x):
        if x.sum() > 0:
            return x * 2
        return x - 1

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gputrace.TracerWarning)
        with pytest.raises(gputrace.TracingCheckError, match="First diverging operator"):
            gputrace.trace(fn, np.ones(3, np.float32), check_inputs=[(-np.ones(3, np.float32),)])


def test_random_inside_function_is_a_differing_constant():
    with pytest.raises(gputrace.TracingCheckError, match="constant differs"):
        gputrace.trace(lambda x: x + np.random.rand(3), np.ones(3))


def test_strict_rejects_list_outputs_and_non_strict_allows_them():
    x = np.ones(3, np.float32)
    with pytest.raises(gputrace.TracingError, match="list"):
        gputrace.trace(lambda x: [x, x * 2], x)
    traced = gputrace.trace(lambda x: {"a": x * 2}, x, strict=False)
    np.testing.assert_array_equal(traced(x)["a"], x * 2)


def test_inplace_update_of_an_input_is_written_back():
    def fn(x):
        x += 1
        return x

    x = np.zeros(3, np.float32)
    traced = gputrace.trace(fn, x.copy())
    np.testing.assert_array_equal(traced(x), np.ones(3))
    np.testing.assert_array_equal(x, np.ones(3))
    traced(x)
    np.testing.assert_array_equal(x, np.full(3, 2))


def alias_then_update(a):
    t = a * 1
    u = t
    t += 1  # eager NumPy updates the one array that t and u name
    return u


@pytest.mark.parametrize("check_trace", [False, True])
def test_inplace_update_is_seen_through_every_name_of_the_array(check_trace):
    x = np.arange(3, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gputrace.TracerWarning)  # nothing else shares the array: no warning
        traced = gputrace.trace(alias_then_update, x, check_trace=check_trace)
    np.testing.assert_array_equal(traced(x + 5), alias_then_update(x + 5))
    np.testing.assert_array_equal(traced(x + 5), x + 6)


def view_then_update(a):
    t = a * 1
    v = t[0]  # a view of t's first row
    t += 1  # updates
    return v


def test_inplace_update_of_an_array_is_seen_by_its_earlier_views():
    x = np.zeros((2, 3), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gputrace.TracerWarning)
        traced = gputrace.trace(view_then_update, x)  # the check compares with eager NumPy
    np.testing.assert_array_equal(traced(x + 2), view_then_update(x + 2))


def test_tracing_var_and_std_with_ddof_warns_only_where_numpy_does():
    """Type inference evaluates reductions on a small witness array: its warnings are not the user's."""
    x = np.ones((3, 4), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gputrace.trace(lambda x: (x.std(axis=1, ddof=1), x.var(ddof=3.5)), x)
