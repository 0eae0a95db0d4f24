"""The user API: calling conventions, signature checks, shape-generic traces, check_trace."""
import inspect
import warnings

import numpy as np
import pytest

import gputrace
from gputrace.backends.host_compiler import host_compiler_info


def line_of(fn, marker):
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, text in enumerate(lines) if marker in text)


@pytest.fixture
def traced():
    return gputrace.trace(lambda x, y: x * y + 1, (np.ones((2, 3), np.float32), np.ones((2, 3), np.float32)))


# ----------------------------------------------------------------------------- signatures


def test_a_single_array_may_be_passed_instead_of_a_tuple():
    x = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(gputrace.trace(np.exp, x)(x), np.exp(x))


@pytest.mark.parametrize("count", [0, 1, 3])
def test_wrong_number_of_arguments_is_a_type_error(traced, count):
    with pytest.raises(TypeError, match=rf"<lambda>\(\) takes 2 array arguments \(x, y\) but {count} were given"):
        traced(*[np.ones((2, 3), np.float32)] * count)


def test_wrong_dtype_names_the_argument_and_both_dtypes(traced):
    with pytest.raises(gputrace.SignatureError,
                       match=r"argument 'y' \(position 1\): expected dtype float32 as traced, got int64"):
        traced(np.ones((2, 3), np.float32), np.ones((2, 3), np.int64))


def test_wrong_ndim_names_the_argument_and_both_ndims(traced):
    with pytest.raises(gputrace.SignatureError,
                       match=r"argument 'x' \(position 0\): expected a 2-d array as traced, "
                             r"got 3-d with shape \(1, 2, 3\)"):
        traced(np.ones((1, 2, 3), np.float32), np.ones((2, 3), np.float32))


@pytest.mark.parametrize("bad, shown", [
    ([1.0, 2.0], "expected a numpy.ndarray or cupy.ndarray as traced, got a list of 2"),
    (2.0, "expected a numpy.ndarray or cupy.ndarray as traced, got a Python float"),
    (None, r"expected a numpy.ndarray or cupy.ndarray as traced, got NoneType \(None\)"),
    (np.float32(1), r"expected a 2-d array as traced, got 0-d with shape \(\)")])
def test_non_array_arguments_are_type_errors_naming_the_argument(traced, bad, shown):
    expected = rf"argument 'y' \(position 1\): {shown}"
    with pytest.raises(TypeError, match=expected):
        traced(np.ones((2, 3), np.float32), bad)


UNSUPPORTED = [
    (np.ones(2, np.complex64), "dtype complex64 is not supported; gputrace supports bool, int8"),
    (np.array([object()]), "dtype object is not supported"),
    (np.array(["a", "b"]), "dtype <U1 is not supported"),
    (np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]), r"dtype \[\('a', '<f4'\), \('b', '<i4'\)\] is not supported"),
    (np.ones(2, ">f4"), r"big-endian arrays \(>f4\) are not supported; convert with x.astype"),
]


@pytest.mark.parametrize("array, message", UNSUPPORTED, ids=["complex", "object", "str", "structured", "big-endian"])
def test_unsupported_dtypes_are_clear_type_errors(array, message):
    with pytest.raises(TypeError, match=rf"example_inputs\[0\]: {message}"):
        gputrace.trace(lambda x: x, (array,))
    traced = gputrace.trace(lambda x: x, np.ones(2, np.float32))
    with pytest.raises(TypeError, match=rf"argument 'x' \(position 0\): {message}"):
        traced(array)


@pytest.mark.parametrize("example, message", [
    ([np.ones(3)], r"example_inputs: expected an array or a tuple of arguments, got list \(a single list argument is "
                   r"passed as a 1-tuple: \(value,\)\)"),
    ((np.ones(3), {1, 2}), r"example_inputs\[1\]: a set is neither an array, a Python float nor a hashable static "
                           r"value"),
    ((np.ones(3), {"w": [np.ones(2), {3}]}), r"example_inputs\[1\]\['w'\]\[1\]: a set is neither"),
])
def test_example_inputs_must_be_arrays_floats_or_hashable(example, message):
    with pytest.raises(TypeError, match=message):
        gputrace.trace(lambda *a: a[0], example)


def test_trace_needs_something_callable():
    with pytest.raises(TypeError, match="expected a function or a gputrace.nn.Module, got int"):
        gputrace.trace(3, np.ones(3))


def test_run_rejects_an_unknown_backend(traced):
    with pytest.raises(ValueError, match="expected one of numpy, emulate, cuda, got 'tpu'"):
        traced.run(np.ones((2, 3), np.float32), np.ones((2, 3), np.float32), backend="tpu")


# ----------------------------------------------------------------------------- shapes


def test_new_shapes_with_the_same_dtype_and_ndim_work(traced, rng):
    for shape in [(5, 7), (1, 1), (0, 3)]:
        x, y = rng.random(shape, dtype=np.float32), rng.random(shape, dtype=np.float32)
        np.testing.assert_array_equal(traced(x, y), x * y + 1)
    x = rng.random((4, 3), dtype=np.float32)
    np.testing.assert_array_equal(traced(x, x[:1]), x * x[:1] + 1)  # broadcasting between the arguments
    with pytest.raises(ValueError, match="could not be broadcast|cannot be broadcast"):
        traced(np.ones((4, 3), np.float32), np.ones((2, 3), np.float32))


def test_programs_are_compiled_once_per_signature(traced):
    a, b = np.ones((2, 3), np.float32), np.ones((4, 5), np.float32)
    assert traced.lower(a, a) is traced.lower(a.copy(), a.copy())
    program = traced.lower(b, b)
    assert program is not traced.lower(a, a)
    assert [t.shape for t in program.input_types] == [(4, 5), (4, 5)]


def test_functions_that_read_shapes_are_retraced_per_shape(rng):
    def flatten_rows(x):
        return x.reshape(x.shape[0], -1).sum(axis=1)

    traced = gputrace.trace(flatten_rows, np.ones((2, 3, 4), np.float32))
    for shape in [(5, 3, 4), (3, 5, 2)]:
        x = rng.random(shape, dtype=np.float32)
        np.testing.assert_array_equal(traced(x), flatten_rows(x))
    assert "np::reshape[shape=(3, -1)]" in str(traced.lower(x).graph)  # traced at (2, 3, 4): shape=(2, -1)


@pytest.mark.parametrize("fn", [lambda x: x / len(x), lambda x: sum(row for row in x), lambda x: x * x.size],
                         ids=["len", "iteration", "size"])
def test_len_iteration_and_size_also_retrace(fn):
    """The trace bakes in len(x); at another length it is traced again instead of silently reused."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gputrace.TracerWarning)
        traced = gputrace.trace(fn, np.ones((2, 3), np.float32))
        x = np.arange(15, dtype=np.float32).reshape(5, 3)
        np.testing.assert_array_equal(traced(x), fn(x))


def test_a_shape_that_does_not_fit_raises_what_numpy_raises():
    traced = gputrace.trace(lambda x: x.reshape(2, -1), np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"cannot reshape an array of size 9 into shape \(2, -1\)"):
        traced(np.ones((3, 3), np.float32))
    traced = gputrace.trace(lambda x: x[3], np.ones((5, 2), np.float32))
    with pytest.raises(IndexError, match="index 3 is out of bounds for axis 0 with size 2"):
        traced(np.ones((2, 2), np.float32))


# ----------------------------------------------------------------------------- check_trace


def sign_dependent(x):
    if x.sum() > 0:
        return np.exp(x)  # positive
    return np.sin(x)  # negative


def test_data_dependent_control_flow_fails_the_check_naming_both_lines():
    positive, negative = line_of(sign_dependent, "# positive"), line_of(sign_dependent, "# negative")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gputrace.TracerWarning)
        with pytest.raises(gputrace.TracingCheckError) as info:
            gputrace.trace(sign_dependent, np.ones(3, np.float32), check_inputs=[(-np.ones(3, np.float32),)])
    message = str(info.value)
    assert "the graphs differ: this usually means data-dependent control flow" in message
    assert f"traced:    %4 : Float32(3, strides=[1], device=cpu) = np::exp(%x)  # test_api.py:{positive}:" in message
    assert f"re-traced: %4 : Float32(3, strides=[1], device=cpu) = np::sin(%x)  # test_api.py:{negative}:" in message


def test_check_inputs_that_take_the_same_path_pass():
    with pytest.warns(gputrace.TracerWarning):
        traced = gputrace.trace(sign_dependent, np.ones(3, np.float32),
                                check_inputs=[np.full(3, 2, np.float32), (np.arange(3, dtype=np.float32),)])
    np.testing.assert_array_equal(traced(np.ones(3, np.float32)), np.exp(np.ones(3, np.float32)))


def test_random_numbers_inside_the_function_are_a_differing_constant():
    with pytest.raises(gputrace.TracingCheckError, match=r"a constant differs between traces .*random numbers"):
        gputrace.trace(lambda x: x + np.random.rand(3), np.ones(3))
    gputrace.trace(lambda x: x + np.random.rand(3), np.ones(3), check_trace=False)  # unchecked: the user's call


def test_a_python_value_computed_from_the_data_is_a_differing_constant():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gputrace.TracerWarning)
        with pytest.raises(gputrace.TracingCheckError, match=r"a constant differs .*float\(x.sum\(\)\)") as info:
            gputrace.trace(lambda x: x * float(x.sum()), np.ones(3), check_inputs=[(np.ones(3) * 2,)])
    assert "prim::Constant[value=3.0]" in str(info.value) and "prim::Constant[value=6.0]" in str(info.value)


def test_a_loop_whose_length_depends_on_the_data_fails_the_check():
    def add_max_times(x):
        for _ in range(int(x.max())):
            x = x + 1
        return x

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gputrace.TracerWarning)
        with pytest.raises(gputrace.TracingCheckError, match=r"traced:    \(nothing: the graph ended here\)"):
            gputrace.trace(add_max_times, np.ones(3, np.float32), check_inputs=[(np.full(3, 3, np.float32),)])


def test_traced_result_that_differs_from_eager_names_output_error_and_node():
    state = np.ones(3, np.float32)

    def stateful(x):
        y = np.exp(x) * state
        state[:] = state * 2  # mutates what it captured: each call computes something else
        return y + 1

    with pytest.raises(gputrace.TracingCheckError) as info:
        gputrace.trace(stateful, np.zeros(3, np.float32))
    message = str(info.value)
    assert ("output 0 of the traced graph differs from the Python function: "
            "max abs error 2, max rel error 0.667") in message
    assert "First differing node: %2 : Float32(3, strides=[1], device=cpu) = np::multiply(%1, %state)" in message


def test_check_trace_returns_a_report(traced):
    x = np.ones((2, 3), np.float32)
    report = gputrace.check_trace(traced, (x, x), backends=("numpy",))
    assert report.ok and report.rows == []
    report = gputrace.check_trace(traced, (x, x), backends=("numpy", "numpy"), tolerance=0)
    assert report.ok and [(r.output, r.backend) for r in report.rows] == [(0, "numpy")]
    assert str(report).splitlines()[-1].split() == ["0", "numpy", "0", "0", "ok"]
    with pytest.raises(ValueError, match="expected at least one backend"):
        gputrace.check_trace(traced, (x, x), backends=())


def test_check_trace_accepts_a_traced_module():
    layer = gputrace.nn.Linear(3, 2, seed=0)
    x = np.ones((4, 3), np.float32)
    assert gputrace.check_trace(gputrace.trace(layer, x), x, backends=("numpy", "numpy")).ok


needs_emulate = pytest.mark.skipif(not host_compiler_info()["available"], reason="no host C++ compiler for emulate")


@pytest.fixture
def tall_columns():
    """Column sums NumPy gets wrong by 2.5e-3 (it adds row after row); exact to 2e-8 on emulate."""
    x = (30000 + np.random.default_rng(0).random((1 << 18, 4))).astype(np.float32)
    return gputrace.trace(lambda x: x.sum(axis=0), x[:8]), x


@needs_emulate
def test_a_kernel_more_accurate_than_numpy_passes_the_check_saying_so(tall_columns):
    traced, x = tall_columns
    exact = x.astype(np.float64).sum(axis=0)
    assert np.abs(x.sum(axis=0) - exact).max() / exact.max() > 1e-3  # NumPy's error, beyond the tolerance
    report = gputrace.check_trace(traced, (x,))
    assert report.ok and report.rows[0].difference.max_rel > 1e-3
    assert "ok (at least as accurate as numpy: max rel error against float64 " in str(report), str(report)
    assert "at least as accurate as numpy" in report._repr_html_()


@needs_emulate
@pytest.mark.parametrize("factor", [1 + 1e-2, 1 - 1e-2])
def test_a_kernel_less_accurate_than_numpy_still_fails_the_check(tall_columns, monkeypatch, factor):
    traced, x = tall_columns
    executor = traced.lower(x).executor("emulate")
    right = executor.run
    monkeypatch.setattr(executor, "run", lambda *args, **kwargs: [right(*args, **kwargs)[0] * np.float32(factor)])
    with pytest.raises(gputrace.TracingCheckError, match="backend emulate differs from numpy on output 0"):
        gputrace.check_trace(traced, (x,))


@needs_emulate
def test_a_wrong_element_is_not_excused_by_float64(monkeypatch):
    """Well-conditioned values: NumPy and float64 agree, so a result off by 1e-4 is off."""
    x = np.linspace(1, 2, 12, dtype=np.float32).reshape(3, 4)
    traced = gputrace.trace(lambda x: np.exp(x), x)
    executor = traced.lower(x).executor("emulate")
    right = executor.run

    def one_wrong_element(*args, **kwargs):
        out = right(*args, **kwargs)[0].copy()
        out[1, 2] *= np.float32(1 + 1e-4)
        return [out]
    monkeypatch.setattr(executor, "run", one_wrong_element)
    with pytest.raises(gputrace.TracingCheckError, match="max rel error 0.0001"):
        gputrace.check_trace(traced, (x,))


def test_judging_by_exact_values_leaves_dtype_nan_and_agreeing_results_alone():
    e, a = np.float32([1, 2]), np.float32([1, 2.5])
    plain = gputrace.check.compare_arrays(e, a, 1e-5)
    assert not plain.ok
    assert gputrace.check.judge_by_exact_values(e, a, np.float64([1, 2.6]), 1e-5, plain).ok  # 0.1 off, NumPy 0.6
    assert not gputrace.check.judge_by_exact_values(e, a, np.float64([1, 2.1]), 1e-5, plain).ok
    nan = gputrace.check.compare_arrays(e, np.float32([1, np.nan]), 1e-5)
    assert gputrace.check.judge_by_exact_values(e, np.float32([1, np.nan]), np.float64([1, np.nan]), 1e-5, nan) is nan


def returns_a_stale_view(x):
    y = x * 2
    row = y[1]
    y += 1  # eager NumPy changes row too
    return y, row


def test_the_check_compares_the_trace_with_eager_numpy_naming_the_output(monkeypatch):
    x = np.ones((2, 3), np.float32)
    gputrace.trace(returns_a_stale_view, x)  # the trace takes row again from the updated y
    monkeypatch.setattr(gputrace.indexing, "_rederive", lambda array: None)  # as if it missed the view
    with pytest.raises(gputrace.TracingCheckError,
                       match=r"Tracing check failed on the check inputs: output 1 of the traced graph disagrees "
                             r"with eager execution of the Python function: max abs error 1, .*tolerance 1e-05"):
        gputrace.trace(returns_a_stale_view, x)
    with pytest.raises(gputrace.TracingCheckError, match=r"on check input 0: output 1 .*disagrees with eager"):
        gputrace.trace(returns_a_stale_view, x, check_inputs=[x, (x * 3,)])
    traced = gputrace.trace(returns_a_stale_view, x, check_trace=False)  # unchecked: the user's call
    np.testing.assert_array_equal(traced(x)[1], np.full(3, 2, np.float32))


def test_the_eager_check_modifies_neither_the_inputs_nor_a_module():
    class Accumulate(gputrace.nn.Module):
        def __init__(self):
            super().__init__()
            self.total = np.zeros(3, np.float32)
            self.linear = gputrace.nn.Linear(3, 3, seed=0)

        def forward(self, x):
            x += 1  # eager NumPy changes the input ...
            total = self.total
            total += x  # ... and the buffer
            return self.linear(total)

    model = Accumulate()
    weight, bias = model.linear.weight.copy(), model.linear.bias.copy()
    x = np.arange(3, dtype=np.float32)
    with pytest.warns(gputrace.TracerWarning, match="in-place"):
        traced = gputrace.trace(model, x, check_inputs=[(x * 2,)])
    np.testing.assert_array_equal(x, np.arange(3))
    np.testing.assert_array_equal(model.total, np.zeros(3))
    np.testing.assert_array_equal(model.linear.weight, weight)
    np.testing.assert_array_equal(model.linear.bias, bias)
    expected = (x + 1) @ weight.T + bias
    np.testing.assert_allclose(traced(x), expected, rtol=1e-6)
    np.testing.assert_array_equal(x, np.arange(1, 4))  # the call updates the input, as eager NumPy does


def test_the_eager_check_allows_a_float16_sum_in_another_order():
    """A float16 softmax over the first axis of a transposed array: eager NumPy on a C-ordered copy sums in
    another order than on the array itself, 1 float16 ulp apart (found by the fuzzer)."""
    x = (np.random.default_rng(0).standard_normal((2, 33)) * 3).astype(np.float16).T
    softmax = lambda x: np.exp(x - x.max(axis=0, keepdims=True)) / np.exp(x - x.max(axis=0, keepdims=True)).sum(axis=0, keepdims=True)  # noqa: E731,E501
    traced = gputrace.trace(softmax, x)  # the check passes
    np.testing.assert_allclose(traced(x), softmax(x), rtol=2e-3)


def test_the_trace_check_runs_numpy_on_inputs_laid_out_as_given():
    """NumPy casts -3e38 to uint32 one way in a reversed view and another in its contiguous copy (the result
    is undefined): the check's eager run gets a copy with the input's strides, so it agrees with the trace."""
    x = np.array([1.0, -1.4e-45, -3.4028235e38, 1.79e26], np.float32)[::-1]
    with np.errstate(invalid="ignore"):
        traced = gputrace.trace(lambda x: x.astype(np.uint32) > 1.5, x)
        assert np.array_equal(traced(x), x.astype(np.uint32) > 1.5)
