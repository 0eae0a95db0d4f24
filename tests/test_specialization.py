"""A trace at a new input shape, and values a trace froze: never a silent wrong answer.

A function that reads array shapes is traced again per shape, and each trace owns the constants it built
(``np.full(4, 1 / x.shape[0])``, ``np.tri(n)``). A value computed from the data and turned into a Python or
NumPy value (``idx[i] = np.argmin(d)``, ``np.array([dx, dy])``, a captured table indexed by a traced
index) is caught by the trace check, which runs the function on other values and names the line.
"""
import inspect
import warnings

import numpy as np
import pytest

import gputrace
from gputrace import nn
from gputrace.backends.host_compiler import host_compiler_info

BACKENDS = ["numpy", pytest.param("emulate", marks=pytest.mark.skipif(
    not host_compiler_info()["available"], reason="no host C++ compiler for emulate"))]
SHAPES = [(8, 4), (2, 4), (5, 4), (1, 4)]


def scale_by_rows(x):
    w = np.full((4,), 1.0 / x.shape[0])  # its values depend on the shape
    return x * w


def causal_scores(x):
    n = x.shape[0]
    mask = np.tri(n, dtype=bool)  # its shape depends on the shape
    scores = x @ x.T
    return np.where(mask, scores, -np.inf), np.arange(n) * x.sum(axis=1)


def mean_by_len(x):
    return x.sum(axis=0) / len(x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fn", [scale_by_rows, causal_scores, mean_by_len], ids=lambda f: f.__name__)
def test_constants_built_from_the_shape_belong_to_each_shapes_trace(fn, backend, rng):
    traced = gputrace.trace(fn, rng.random(SHAPES[0]))
    for shape in SHAPES + SHAPES[:2]:  # and back: every specialisation keeps its own constants
        x = rng.random(shape)
        got, want = traced.run(x, backend=backend), fn(x)
        for g, w in zip(got if isinstance(got, tuple) else [got], want if isinstance(want, tuple) else [want]):
            np.testing.assert_allclose(g, w, rtol=1e-12)


class CausalAttention(nn.Module):
    """A module: parameters are its own, the mask a constant of each trace."""

    def __init__(self, d):
        super().__init__()
        self.proj = nn.Linear(d, d, seed=1)

    def forward(self, x):
        t = x.shape[0]
        scores = self.proj(x) @ x.T / np.sqrt(x.shape[1])
        scores = np.where(np.tril(np.ones((t, t))) > 0, scores, -1e9)
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)


def test_a_modules_shape_dependent_mask_is_rebuilt_per_shape(rng):
    module = CausalAttention(4)
    traced = gputrace.trace(module, rng.random((6, 4)).astype(np.float32))
    for t in (6, 3, 9):
        x = rng.random((t, 4)).astype(np.float32)
        np.testing.assert_allclose(traced(x), module(x), rtol=1e-5, atol=1e-7)


def test_a_saved_and_loaded_trace_refuses_a_shape_it_cannot_retrace(tmp_path, rng):
    traced = gputrace.trace(scale_by_rows, rng.random(SHAPES[0]))
    gputrace.save(traced, tmp_path / "f.gpt")
    loaded = gputrace.load(tmp_path / "f.gpt")
    x = rng.random(SHAPES[0])
    np.testing.assert_array_equal(loaded(x), scale_by_rows(x))
    with pytest.raises(gputrace.SignatureError, match=r"reads array shapes, so it cannot be re-specialised to "
                                                      r"\[\(2, 4\)\] without the Python function"):
        loaded(rng.random((2, 4)))
    np.testing.assert_array_equal(loaded(x=x), scale_by_rows(x))  # the saved signature binds keywords


def test_unpacking_rows_and_len_do_not_warn(rng):
    def step(state, dt):
        x, y, z = state  # rows: not data-dependent
        return np.stack([x + dt * y, y - dt * x, z * len(state)])

    with warnings.catch_warnings():
        warnings.simplefilter("error", gputrace.TracerWarning)
        traced = gputrace.trace(step, (rng.random((3, 5)), np.array(0.1)))
    state = rng.random((3, 7))
    np.testing.assert_array_equal(traced(state, np.array(0.2)), step(state, np.array(0.2)))


# ----------------------------------------------------------------------------- values frozen by the trace

TABLE = np.arange(20.0).reshape(10, 2)


def lookup_in_a_captured_table(ids, x):
    return TABLE[ids] + x  # frozen


NEAREST = np.zeros(4)  # a module-level buffer: an array no trace records


def store_into_a_plain_array(x):
    for i in range(x.shape[0]):
        NEAREST[i] = np.argmin(x[i])  # frozen
    return x + NEAREST[:, None]


def array_of_traced_values(r):
    dx, dy, dz = r[0] - r[1], r[1] - r[2], r[2] - r[0]
    return np.array([dx, dy, dz]) * 2, np.asarray(np.tanh(r)) + r, np.array([[r[0, 0], 1.0], [2, r[1, 1]]])


def array_of_a_traced_array_with_options(r):
    return np.array(r, ndmin=3) * 2  # frozen


class Layer:
    """A plain class that keeps its gradients in a cache of NumPy arrays, as hand-written nets do."""

    def __init__(self):
        self.grads = [np.zeros((3, 4))]

    def backward(self, x, dy):
        self.grads[0][...] = x.T @ dy  # frozen
        return dy @ self.grads[0].T


@pytest.mark.parametrize("fn, inputs", [
    (lookup_in_a_captured_table, (np.array([1, 2, 7]), np.ones((3, 2)))),
    (store_into_a_plain_array, (np.random.default_rng(0).random((4, 5)),)),
    (array_of_a_traced_array_with_options, (np.random.default_rng(0).random((3, 6)),)),
    (Layer().backward, (np.random.default_rng(0).random((2, 3)), np.random.default_rng(1).random((2, 4)))),
], ids=["captured_table[ids]", "plain[i] = argmin", "np.array(x, ndmin=3)", "cache[...] = dW"])
def test_a_value_frozen_into_the_trace_fails_the_check_naming_its_line(fn, inputs):
    lines, start = inspect.getsourcelines(fn)
    line = start + next(i for i, text in enumerate(lines) if "# frozen" in text)
    with pytest.warns(gputrace.TracerWarning), pytest.raises(gputrace.TracingCheckError) as error:
        gputrace.trace(fn, inputs)
    message = str(error.value)
    assert "other input values" in message and "output 0" in message
    assert f"test_specialization.py:{line}:" in message


def test_the_frozen_line_says_what_to_write_instead():
    with pytest.warns(gputrace.TracerWarning), pytest.raises(gputrace.TracingCheckError,
                                                             match=r"pass that array as an argument"):
        gputrace.trace(lookup_in_a_captured_table, (np.array([1, 2, 7]), np.ones((3, 2))))
    with pytest.warns(gputrace.TracerWarning), pytest.raises(gputrace.TracingCheckError,
                                                             match=r"np\.array\(\[\.\.\.\]\) of traced arrays: "
                                                                   r"use np\.stack"):
        gputrace.trace(array_of_a_traced_array_with_options, np.random.default_rng(0).random((3, 6)))


def test_arrays_made_of_traced_values_are_traced(rng):
    """np.array([dx, dy, dz]) and np.asarray(f(x)) are traced as np.stack and f(x): nothing is frozen."""
    r = rng.random((3, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error", gputrace.TracerWarning)
        traced = gputrace.trace(array_of_traced_values, r)
    for shape in ((3, 6), (3, 2)):
        r = rng.random(shape)
        for got, want in zip(traced(r), array_of_traced_values(r)):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


def test_a_frozen_value_is_still_traced_without_the_check():
    """check_trace=False keeps the old contract: a warning, and the trace as recorded."""
    with pytest.warns(gputrace.TracerWarning, match="a NumPy array"):
        traced = gputrace.trace(array_of_a_traced_array_with_options, np.ones((3, 2)), check_trace=False)
    assert traced(np.ones((3, 2))).shape == (1, 3, 2)
