"""Tracing plain NumPy functions: the recorded graph, captured arrays, promotion, warnings, outputs."""
import inspect
import warnings

import numpy as np
import pytest

import gputrace


def line_of(fn, marker):
    """The line number, in this file, of the line of ``fn``'s source that contains ``marker``."""
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, text in enumerate(lines) if marker in text)


@pytest.fixture
def cell_inputs(rng):
    return tuple(rng.standard_normal(s).astype(np.float32) for s in [(3, 4), (3, 4), (4, 4), (4,)])


def test_seed_cell_prints_a_typed_graph_with_params_and_source_lines(cell_inputs):
    x, h, w, b = cell_inputs

    def cell(x, h):
        return np.tanh(x @ w.T + b + h)  # the cell

    traced = gputrace.trace(cell, (x, h))
    line = line_of(cell, "# the cell")
    # w.T is taken before the trace sees it: the view is captured, named after the variable
    assert str(traced.graph) == f"""\
graph(%x : Float32(3, 4, strides=[4, 1], device=cpu),
      %h : Float32(3, 4, strides=[4, 1], device=cpu)):
  %w_view : Float32(4, 4, strides=[1, 4], device=cpu) = prim::Param[name="w_view"]()  # test_tracer.py:{line}:23
  %1 : Float32(3, 4, strides=[4, 1], device=cpu) = np::matmul(%x, %w_view)  # test_tracer.py:{line}:23
  %b : Float32(4, strides=[1], device=cpu) = prim::Param[name="b"]()  # test_tracer.py:{line}:23
  %2 : Float32(3, 4, strides=[4, 1], device=cpu) = np::add(%1, %b)  # test_tracer.py:{line}:23
  %3 : Float32(3, 4, strides=[4, 1], device=cpu) = np::add(%2, %h)  # test_tracer.py:{line}:23
  %4 : Float32(3, 4, strides=[4, 1], device=cpu) = np::tanh(%3)  # test_tracer.py:{line}:15
  return (%4)"""
    np.testing.assert_array_equal(traced(x, h), cell(x, h))
    assert traced(x, h).dtype == np.float32


def test_traced_cell_runs_on_new_inputs_exactly_like_numpy(cell_inputs, rng):
    x, h, w, b = cell_inputs
    traced = gputrace.trace(lambda x, h: np.tanh(x @ w.T + b + h), (x, h))
    for _ in range(3):
        x2, h2 = rng.standard_normal((2, 3, 4)).astype(np.float32)
        np.testing.assert_array_equal(traced(x2, h2), np.tanh(x2 @ w.T + b + h2))


WEIGHTS = np.arange(4, dtype=np.float32)


def test_captured_arrays_become_named_params_read_at_each_call():
    scale = np.full(4, 2, np.float32)

    def fn(x):
        return x * scale + WEIGHTS

    x = np.ones((2, 4), np.float32)
    traced = gputrace.trace(fn, x)
    text = str(traced.graph)
    assert 'prim::Param[name="scale"]()' in text and 'prim::Param[name="WEIGHTS"]()' in text
    assert sorted(traced.params) == ["WEIGHTS", "scale"]
    scale[:] = 3  # updated in place after tracing: the traced function reads the array at each call
    np.testing.assert_array_equal(traced(x), fn(x))


def test_a_captured_array_used_twice_is_one_param():
    w = np.ones(3, np.float32)
    traced = gputrace.trace(lambda x: x * w + w, np.ones(3, np.float32))
    assert str(traced.graph).count("prim::Param") == 1


@pytest.mark.parametrize("fn, dtype, constant", [
    (lambda x: x + 1, np.int8, "%1 : int = prim::Constant[value=1]()"),
    (lambda x: x * 2.5, np.float64, "%1 : float = prim::Constant[value=2.5]()"),
    (lambda x: x > 2, np.bool_, "%1 : int = prim::Constant[value=2]()"),
    (lambda x: x - True, np.int8, "%1 : bool = prim::Constant[value=True]()"),
    (lambda x: x + np.float32(1), np.float32, "%1 : Float32(strides=[], device=cpu) = prim::Constant"),
], ids=["int", "float", "comparison", "bool", "numpy-scalar"])
def test_python_scalars_are_weakly_typed_constants(fn, dtype, constant):
    """NumPy 2 promotion: int8 + 1 is int8, int8 * 2.5 is float64, a NumPy scalar is strongly typed."""
    x = np.arange(6, dtype=np.int8).reshape(2, 3)
    traced = gputrace.trace(fn, x)
    assert constant in str(traced.graph)
    assert traced(x).dtype == fn(x).dtype == dtype
    np.testing.assert_array_equal(traced(x), fn(x))


def test_float16_stays_float16_with_python_floats():
    x = np.linspace(-1, 1, 6, dtype=np.float16)
    fn = lambda x: (x * 0.1 + 3.0) / 7
    traced = gputrace.trace(fn, x)
    assert traced(x).dtype == np.float16
    np.testing.assert_array_equal(traced(x), fn(x))


# ----------------------------------------------------------------------------- conversions to Python values


def branch(x):
    if x.sum() > 0:  # converts
        return x * 2
    return x - 1


def to_float(x):
    return x * float(x.sum())  # converts


def to_int(x):
    return x * int(x[0, 0])  # converts


def to_len(x):
    return x / len(x)  # converts


def to_item(x):
    return x + x[0, 0].item()  # converts


def to_list(x):
    return x + x[0].tolist()[1]  # converts


def to_index(x):
    return x * [1, 2, 3][x[0, 0].astype(np.int64)]  # converts


def iterate(x):
    total = 0
    for row in x:  # converts
        total = total + row
    return total


def to_numpy(x):
    return x + np.array(x, ndmin=2)  # converts


@pytest.mark.parametrize("fn, what", [
    (branch, "a Python bool"), (to_float, "a Python float"), (to_int, "a Python int"),
    (to_item, r"a Python scalar \(\.item\(\)\)"), (to_list, r"a Python list \(\.tolist\(\)\)"),
    (to_index, "a Python index"), (to_numpy, "a NumPy array"),
], ids=lambda v: getattr(v, "__name__", None))
def test_conversion_to_a_python_value_warns_naming_the_users_line(fn, what):
    line = line_of(fn, "# converts")
    x = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    with pytest.warns(gputrace.TracerWarning, match=f"{what} at test_tracer.py:{line}:") as record:
        traced = gputrace.trace(fn, x, check_trace=False)
    assert {(w.filename, w.lineno) for w in record if w.category is gputrace.TracerWarning} == {(__file__, line)}
    np.testing.assert_array_equal(traced(x), fn(x))  # on the traced inputs the constant is right


@pytest.mark.parametrize("fn", [to_int, to_item, to_list, to_numpy], ids=lambda f: f.__name__)
def test_a_frozen_value_that_other_inputs_change_fails_the_trace_check_naming_its_line(fn):
    """The trace check runs the function on the inputs' elements permuted: x[0, 0] is another value then."""
    line = line_of(fn, "# converts")
    x = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    with pytest.warns(gputrace.TracerWarning), \
            pytest.raises(gputrace.TracingCheckError, match=rf"other input values .*output 0 .*froze values .*\n"
                                                            rf"  test_tracer.py:{line}:\d+: converted to"):
        gputrace.trace(fn, x)


@pytest.mark.parametrize("fn", [branch, to_float], ids=lambda f: f.__name__)
def test_a_frozen_value_that_permuted_inputs_keep_passes_the_trace_check(fn):
    """x.sum() is the same for the inputs' elements in any order: no false alarm (the warning stays)."""
    x = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    with pytest.warns(gputrace.TracerWarning):
        traced = gputrace.trace(fn, x)
    np.testing.assert_array_equal(traced(x), fn(x))


@pytest.mark.parametrize("fn", [to_len, iterate], ids=lambda f: f.__name__)
def test_len_and_iteration_read_the_shape_without_a_warning(fn):
    """len(x) is x.shape[0] and `for row in x` unrolls over it: nothing data-dependent, re-traced per shape."""
    x = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gputrace.TracerWarning)
        traced = gputrace.trace(fn, x)
        for shape in ((2, 3), (5, 3), (1, 4)):
            y = np.random.default_rng(1).random(shape, dtype=np.float32)
            np.testing.assert_allclose(traced(y), fn(y), rtol=1e-6)


def test_a_traced_value_used_as_a_constant_is_stale_on_other_inputs():
    """What the warning is about: float(x.sum()) is recorded as a constant (check_inputs catches it)."""
    x = np.ones(3, np.float32)
    with pytest.warns(gputrace.TracerWarning):
        traced = gputrace.trace(to_float, x, check_trace=False)
    assert "prim::Constant[value=3.0]" in str(traced.graph)
    np.testing.assert_array_equal(traced(2 * x), 2 * x * 3.0)


# ----------------------------------------------------------------------------- outputs


def test_strict_rejects_list_and_dict_outputs():
    x = np.ones(3, np.float32)
    with pytest.raises(gputrace.TracingError, match=r"output is a list: under strict=True"):
        gputrace.trace(lambda x: [x, x * 2], x)
    with pytest.raises(gputrace.TracingError, match=r"output\[1\] is a dict"):
        gputrace.trace(lambda x: (x, {"a": x}), x)


def test_non_strict_returns_the_same_structure():
    x = np.arange(3, dtype=np.float32)
    fn = lambda x: {"double": x * 2, "pair": [x + 1, (x - 1, np.exp(x))]}
    traced = gputrace.trace(fn, x, strict=False)
    got, want = traced(x), fn(x)
    assert set(got) == {"double", "pair"} and isinstance(got["pair"], list) and isinstance(got["pair"][1], tuple)
    np.testing.assert_array_equal(got["double"], want["double"])
    np.testing.assert_array_equal(got["pair"][1][1], want["pair"][1][1])


def test_tuple_outputs_keep_their_nesting():
    x = np.arange(3, dtype=np.float32)
    traced = gputrace.trace(lambda x: (x + 1, (x * 2,)), x)
    got = traced(x)
    assert isinstance(got, tuple) and isinstance(got[1], tuple) and len(got[1]) == 1
    np.testing.assert_array_equal(got[1][0], x * 2)


@pytest.mark.parametrize("out", [None, 3, "text"])
def test_non_array_outputs_are_rejected(out):
    with pytest.raises(gputrace.TracingError, match="a traced function must return arrays"):
        gputrace.trace(lambda x: out, np.ones(3))


@pytest.mark.parametrize("fn", [lambda x: x, lambda x: x.T, lambda x: x[1:].copy(), lambda x: x.T.copy(),
                                lambda x: x.astype(x.dtype), lambda x: x.reshape(-1)],
                         ids=["identity", "T", "slice-copy", "T-copy", "astype-same", "reshape"])
def test_outputs_never_alias_the_callers_arrays(fn):
    """Copies dropped by the optimiser must not make the result a view of an input."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = gputrace.trace(fn, x)(x)
    assert not np.shares_memory(out, x)
    np.testing.assert_array_equal(out, fn(x))


def test_a_traced_array_that_escapes_cannot_be_used_later():
    leaked = []
    gputrace.trace(lambda x: leaked.append(x * 2) or x, np.ones(3))
    with pytest.raises(gputrace.TracingError, match="used after its trace ended"):
        leaked[0] + 1


# ----------------------------------------------------------------------------- in-place updates


def test_inplace_update_of_an_input_is_written_back_into_the_callers_array():
    def fn(x):
        x += 1  # in place
        return x * 2

    x = np.zeros(3, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gputrace.TracerWarning)
        traced = gputrace.trace(fn, x.copy())
    assert "np::add" in str(traced.graph)
    np.testing.assert_array_equal(traced(x), np.full(3, 2, np.float32))
    np.testing.assert_array_equal(x, np.ones(3))  # as eager NumPy leaves it


def test_inplace_update_of_a_view_updates_the_array_it_views():
    def fn(x):
        y = x * 2
        top = y[:1]
        top += 1  # eager NumPy changes y too
        return y

    x = np.ones((2, 2), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gputrace.TracerWarning)
        traced = gputrace.trace(fn, x)
    np.testing.assert_array_equal(traced(x + 1), fn(x + 1))


def test_inplace_update_of_a_fresh_array_is_silent_and_exact():
    def fn(x):
        y = x * 2
        y += 1
        y *= np.float64(0.5)  # NumPy keeps y's dtype: float64 is cast back to float32
        y //= 1
        return y

    x = np.arange(4, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gputrace.TracerWarning)
        traced = gputrace.trace(fn, x)
    assert traced(x).dtype == fn(x).dtype == np.float32
    np.testing.assert_array_equal(traced(x), fn(x))


def add_a_half(x):
    y = x * 1
    y += 1.5
    return y


def multiply_by_a_matrix(x):
    y = x * 1
    y *= np.ones((2, 3), np.int32)
    return y


@pytest.mark.parametrize("fn, error, message", [
    (add_a_half, TypeError, r"Cannot cast ufunc 'add' output from dtype\('float64'\) to dtype\('int32'\)"),
    (multiply_by_a_matrix, ValueError, r"non-broadcastable output operand with shape \(3,\)"),
])
def test_inplace_update_raises_where_numpy_raises(fn, error, message):
    x = np.arange(3, dtype=np.int32)
    with pytest.raises(error, match=message):
        fn(x)  # NumPy itself
    with pytest.raises(error, match=message):
        gputrace.trace(fn, x)


def test_assigning_into_a_traced_array_updates_it():
    def fn(x):
        x[0] = 1  # assignment
        return x

    x = np.zeros(3, np.float32)
    traced = gputrace.trace(fn, x.copy())
    np.testing.assert_array_equal(traced(x), [1, 0, 0])
    np.testing.assert_array_equal(x, [1, 0, 0])


@pytest.mark.parametrize("fn", [
    lambda x: np.var(x, 0, None, None, 1),          # the fifth positional argument is ddof, not keepdims
    lambda x: x.std(1, None, None, 1, True),
    lambda x: np.std(x, axis=0, correction=1),
    lambda x: np.max(x, 1, None, True),             # np.max has no dtype: the fourth is keepdims
    lambda x: x.min(0, None, False, -0.5),          # ... and the fifth initial
    lambda x: np.sum(x, 1, np.float64, None, True),
    lambda x: np.any(x > 1, 0, None, True),
    lambda x: np.mean(x, -1, None, None, np._NoValue),
    lambda x: np.argmax(x, 0, None, keepdims=True),
    lambda x: x.argmin(1, None, keepdims=True),      # methods bind as the functions' signatures do
    lambda x: x.prod(1, None, None, True, 0.5),
    lambda x: x.var(0, np.float64, None, 0, True),
], ids=["var-ddof", "std-method", "std-correction", "max", "min-initial", "sum-dtype", "any", "mean-novalue", "argmax",
        "argmin-method", "prod-method-initial", "var-method"])
def test_reduction_arguments_bind_as_numpy_binds_them(fn, rng):
    x = rng.standard_normal((5, 7)).astype(np.float32)
    traced = gputrace.trace(fn, x)
    want, got = fn(x), traced(x)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6)
