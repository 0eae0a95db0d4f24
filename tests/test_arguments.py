"""Calling conventions as real code has them: nested dict/list parameters (pytrees), Python floats that stay
weakly typed (NEP 50), NumPy scalars, static ints/strings/modules that select a specialisation, keywords."""
import enum
import warnings

import numpy as np
import pytest

import gputrace
from gputrace.backends.host_compiler import host_compiler_info

BACKENDS = ["numpy", pytest.param("emulate", marks=pytest.mark.skipif(
    not host_compiler_info()["available"], reason="no host C++ compiler for emulate"))]


def init_params(rng, d_in=4, d=8, blocks=2):
    return {"w1": rng.standard_normal((d_in, d)).astype(np.float32), "b1": np.zeros(d, np.float32),
            "blocks": [{"w": rng.standard_normal((d, d)).astype(np.float32) / d,
                        "ln": {"g": np.ones(d, np.float32), "b": np.zeros(d, np.float32)}} for _ in range(blocks)]}


def mlp(params, x, lr, act="tanh", xp=np):
    """Parameters in a nested dict, a Python float, a static string and an array module, as users write."""
    h = x @ params["w1"] + params["b1"]
    for block in params["blocks"]:
        h = getattr(xp, act)(h @ block["w"])
        mu = h.mean(-1, keepdims=True)
        h = (h - mu) / np.sqrt(((h - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * block["ln"]["g"] + block["ln"]["b"]
    return h * lr, h.sum() * (lr * 0.5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nested_parameters_and_a_python_float(backend, rng):
    params, x = init_params(rng), rng.standard_normal((3, 4)).astype(np.float32)
    traced = gputrace.trace(mlp, (params, x, 0.1))
    assert traced.input_names == ["params_w1", "params_b1", "params_blocks_0_w", "params_blocks_0_ln_g",
                                  "params_blocks_0_ln_b", "params_blocks_1_w", "params_blocks_1_ln_g",
                                  "params_blocks_1_ln_b", "x", "lr"]
    for lr in (0.1, 0.37, -2.0):  # new values of every kind: parameters, inputs, the float
        params, x = init_params(rng), rng.standard_normal((5, 4)).astype(np.float32)
        got, want = traced.run(params, x, lr, backend=backend), mlp(params, x, lr)
        for g, w in zip(got, want):
            assert np.asarray(g).dtype == np.asarray(w).dtype == np.float32  # lr is weak: float32 stays
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)
    assert not traced._retraced  # a new learning rate or a new shape ran the same trace


def test_python_floats_follow_nep_50(rng):
    """x_f32 * lr is float32, x_int * lr float64, lr * 0.5 is still a Python float, np.exp(lr) is not."""
    def f(x32, xi, lr):
        return x32 * lr, xi * lr, x32 * (lr * 0.5 + 1), x32 * np.exp(lr), x32 > lr, np.where(x32 > 0, x32, lr)

    args = (rng.random(4, dtype=np.float32), np.arange(4, dtype=np.int16), 0.25)
    traced = gputrace.trace(f, args)
    got, want = traced(*args[:2], 0.7), f(*args[:2], 0.7)
    assert [g.dtype for g in got] == [np.asarray(w).dtype for w in want] == \
        [np.float32, np.float64, np.float32, np.float64, np.bool_, np.float32]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_numpy_scalars_are_zero_d_inputs_of_their_dtype(rng):
    def scale(x, a):
        return x * a

    x = rng.random((2, 3)).astype(np.float16)
    traced = gputrace.trace(scale, (x, np.float32(2.5)))
    assert str(traced.graph.inputs[1].type).startswith("Float32(")
    got = traced(x, np.float32(-1.5))
    assert got.dtype == np.float32  # a NumPy scalar is strongly typed, as in NumPy
    np.testing.assert_array_equal(got, scale(x, np.float32(-1.5)))
    with pytest.raises(gputrace.SignatureError, match=r"argument 'a' \(position 1\): expected dtype float32 as "
                                                      r"traced, got float64"):
        traced(x, np.float64(2))


class Mode(enum.Enum):
    SUM = "sum"
    MAX = "max"


def pool(x, axis, mode, keepdims=False, xp=np):
    reduce = xp.sum if mode is Mode.SUM else xp.max
    return reduce(x, axis=axis, keepdims=keepdims)


@pytest.mark.parametrize("backend", BACKENDS)
def test_static_arguments_select_a_specialisation_per_value(backend, rng):
    x = rng.standard_normal((4, 5))
    traced = gputrace.trace(pool, (x, 1, Mode.SUM))
    calls = [(1, Mode.SUM, False), (0, Mode.MAX, False), (1, Mode.MAX, True), (0, Mode.MAX, False),
             (1, Mode.SUM, True)]
    for axis, mode, keepdims in calls:
        y = rng.standard_normal((4, 5))
        got = traced.run(y, axis, mode, keepdims=keepdims, backend=backend)
        np.testing.assert_allclose(got, pool(y, axis, mode, keepdims), rtol=1e-12)
    assert len(traced._retraced) == 3  # each new combination traced once, then reused


def test_a_module_passed_as_xp_and_keywords_bind_as_python_binds_them(rng):
    x, lr = rng.standard_normal((3, 4)).astype(np.float32), 0.5
    params = init_params(rng)
    traced = gputrace.trace(mlp, (params, x), example_kwarg_inputs={"lr": lr, "xp": np})
    by_keyword = traced(params, x, lr=0.25, xp=np)
    by_position = traced(params, x, 0.25, "tanh", np)  # the default given explicitly is the default
    for a, b, w in zip(by_keyword, by_position, mlp(params, x, 0.25)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, w, rtol=2e-5, atol=1e-6)
    assert not traced._retraced
    np.testing.assert_allclose(traced(params, x, lr=0.25, act="sin")[0], mlp(params, x, 0.25, act="sin")[0],
                               rtol=2e-5, atol=1e-6)
    assert len(traced._retraced) == 1


def test_a_float_argument_then_an_int_traces_again(rng):
    """lr=1 after lr=0.1 is a static int: NumPy types it otherwise (x_int * 1 stays int)."""
    def step(x, lr):
        return x * lr

    x = np.arange(6, dtype=np.int32)
    traced = gputrace.trace(step, (x, 0.5))
    assert traced(x, 2).dtype == np.int32 and traced(x, 0.25).dtype == np.float64
    np.testing.assert_array_equal(traced(x, 2), x * 2)


def test_len_of_a_list_argument_and_a_static_loop_count(rng):
    """Lists of arrays unrolled by Python loops: their length is part of the structure."""
    def stack_layers(layers, x, n_heads):
        for w in layers:
            x = np.tanh(x @ w)
        return np.stack(np.split(x, n_heads, axis=-1))

    layers = [rng.standard_normal((6, 6)) for _ in range(3)]
    x = rng.standard_normal((2, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error", gputrace.TracerWarning)
        traced = gputrace.trace(stack_layers, (layers, x, 2))
    np.testing.assert_allclose(traced(layers, x, 3), stack_layers(layers, x, 3), rtol=1e-12)


# ----------------------------------------------------------------------------- bad arguments


def test_a_pytree_whose_structure_changed_names_the_leaf(rng):
    params, x = init_params(rng), rng.standard_normal((3, 4)).astype(np.float32)
    traced = gputrace.trace(mlp, (params, x, 0.1))
    missing = {**params, "blocks": [params["blocks"][0], {"w": params["blocks"][1]["w"]}]}
    with pytest.raises(gputrace.SignatureError, match=r"argument 'params' \(position 0\)\['blocks'\]\[1\]: expected "
                                                      r"a dict with keys \['w', 'ln'\] as traced, got a dict with keys "
                                                      r"\['w'\]; the arguments must nest as they did when traced"):
        traced(missing, x, 0.1)
    with pytest.raises(gputrace.SignatureError, match=r"\['blocks'\]: expected a list of 2 as traced, got a list of 3"):
        traced({**params, "blocks": params["blocks"] + params["blocks"][:1]}, x, 0.1)
    with pytest.raises(gputrace.SignatureError, match=r"argument 'params' \(position 0\)\['w1'\]: expected dtype "
                                                      r"float32 as traced, got float64"):
        traced({**params, "w1": params["w1"].astype(np.float64)}, x, 0.1)
    with pytest.raises(gputrace.SignatureError, match=r"argument 'x' \(position 1\): expected a numpy.ndarray or "
                                                      r"cupy.ndarray as traced, got a Python float"):
        traced(params, 1.0, 0.1)


def test_unhashable_static_arguments_are_refused_naming_the_argument(rng):
    x = rng.standard_normal((4, 5))
    message = r"argument 'axis' \(position 1\): a set is neither an array, a Python float nor a hashable static value"
    with pytest.raises(gputrace.SignatureError, match=message.replace("argument 'axis' \\(position 1\\)",
                                                                      r"example_inputs\[1\]")):
        gputrace.trace(pool, (x, {1}, Mode.SUM))
    traced = gputrace.trace(pool, (x, 1, Mode.SUM))
    with pytest.raises(gputrace.SignatureError, match=message):
        traced(x, {1}, Mode.SUM)
    with pytest.raises(gputrace.SignatureError, match=r"pool\(\): missing a required argument: 'axis'"):
        traced(x, axes=1, mode=Mode.SUM)
