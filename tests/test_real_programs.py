"""Public NumPy programs (tests/real_programs.py), traced as written: on numpy and emulate, at three shapes
and on new values, against eager NumPy; the caller's arrays they update in place are compared too."""
import copy

import numpy as np
import pytest

import gputrace
from gputrace.backends.host_compiler import host_compiler_info

from tests import real_programs as rp

NO_EMULATE = pytest.mark.skipif(not host_compiler_info()["available"], reason="no host C++ compiler for emulate")


def gpt2_inputs(rng, n):
    params = rp.gpt2_params(rng)
    return (rng.integers(0, 50, n),), {**params, "n_head": 2}


def two_layer_inputs(rng, n):
    params = {"W1": rng.standard_normal((5, 10)) * 0.5, "b1": rng.standard_normal(10) * 0.1,
              "W2": rng.standard_normal((10, 3)) * 0.5, "b2": rng.standard_normal(3) * 0.1}
    return (params, rng.standard_normal((n, 5)), rng.integers(0, 3, n), 1e-3, 0.1), {}


def lstm_inputs(rng, n):
    d, input_size, b = 6, 5, 3
    return (rng.standard_normal((n, b, input_size)), rng.standard_normal((input_size + d + 1, 4 * d)) * 0.2,
            rng.standard_normal((n, b, d))), {}


def nbody_inputs(rng, n):
    return (rng.standard_normal((n, 3)), rng.standard_normal((n, 3)), rng.random((n, 1)) + 0.5, 0.01, 1.0, 0.1), {}


def heat_inputs(rng, n):
    return (rng.random((n, n + 3)), 0.1, 0.01, 1.0), {}


def life_inputs(rng, n):
    return (rng.random((n, n + 1)) > 0.6,), {}


def kmeans_inputs(rng, n):
    return (rng.standard_normal((n, 2)), rng.standard_normal((3, 2))), {}


# program, its inputs at a size, sizes (the first traced), float tolerance, kernels at the first size
PROGRAMS = {
    "gpt2": (rp.gpt2, gpt2_inputs, (8, 5, 13), 2e-4, 11),
    "two_layer_net_step": (rp.two_layer_net_step, two_layer_inputs, (6, 9, 2), 1e-10, 10),
    "lstm_forward_backward": (rp.lstm_forward_backward, lstm_inputs, (4, 2, 5), 1e-10, 43),
    "nbody_step": (rp.nbody_step, nbody_inputs, (8, 5, 11), 1e-10, 4),
    "heat_step": (rp.heat_step, heat_inputs, (16, 7, 9), 1e-12, 1),
    "life_step": (rp.life_step, life_inputs, (16, 5, 12), 0, 2),
    "kmeans_assign": (rp.kmeans_assign, kmeans_inputs, (20, 7, 33), 1e-12, 4),
    "kmeans_step": (rp.kmeans_step, kmeans_inputs, (20, 7, 33), 1e-12, 3),  # counts: in the argmin's kernel
}
# g++ builds each new kernel in about a second: the default tier runs these on emulate at the traced size, and
# the slow tier every program at every size (the LSTM unrolls to 43 kernels a size, GPT-2 to 11)
QUICK_ON_EMULATE = ("nbody_step", "heat_step", "life_step", "kmeans_assign", "kmeans_step")
CASES = [pytest.param(name, "numpy", id=f"{name}-numpy") for name in PROGRAMS] + [
    pytest.param(name, "emulate", id=f"{name}-emulate",
                 marks=[NO_EMULATE] + ([] if name in QUICK_ON_EMULATE else [pytest.mark.slow]))
    for name in PROGRAMS]


def leaves(tree):
    if isinstance(tree, dict):
        return [leaf for value in tree.values() for leaf in leaves(value)]
    if isinstance(tree, (list, tuple)):
        return [leaf for value in tree for leaf in leaves(value)]
    return [tree]


def assert_same(got, want, tolerance, what):
    got, want = leaves(got), leaves(want)
    assert len(got) == len(want), what
    for k, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, f"{what} {k}: {g.dtype}{g.shape} != {w.dtype}{w.shape}"
        np.testing.assert_allclose(g, w, rtol=tolerance, atol=tolerance, err_msg=f"{what} {k}")


@pytest.mark.parametrize("name, backend", CASES)
def test_a_public_program_traces_as_written(name, backend, request):
    fn, make, sizes, tolerance, kernels = PROGRAMS[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    args, kwargs = make(rng, sizes[0])
    traced = gputrace.trace(fn, args, example_kwarg_inputs=kwargs or None)
    assert len(traced.kernels) == kernels
    if backend != "numpy" and not request.node.get_closest_marker("slow"):
        sizes = sizes[:1]  # other sizes on numpy here, on emulate in the slow tier
    for size in sizes + sizes[:1]:
        args, kwargs = make(rng, size)  # new values at every size, the traced size again at the end
        eager_args, eager_kwargs = copy.deepcopy((args, kwargs))
        want = fn(*eager_args, **eager_kwargs)
        got = traced.run(*args, backend=backend, **kwargs)
        assert_same(got, want, tolerance, f"{name} at size {size}: output")
        # arrays the function updates in place (an optimiser step, the particles' positions) as NumPy left them
        assert_same((args, kwargs), (eager_args, eager_kwargs), tolerance, f"{name} at size {size}: argument")
