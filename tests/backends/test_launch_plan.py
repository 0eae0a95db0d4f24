"""The straight-line Python a kernel backend runs per call (``KernelExecutor.plan``).

The plan is generated once per signature; these tests check what it must get right on every call:
parameters read afresh, outputs that never alias the caller's arrays, nested results, several steps.
"""
from __future__ import annotations

import numpy as np
import pytest

import gputrace
from gputrace import nn
from gputrace.backends.host_compiler import host_compiler_info
from tests.codegen.backend_agreement import KERNEL_BACKENDS, run_on

pytestmark = pytest.mark.skipif(not host_compiler_info()["available"], reason="no host C++ compiler for emulate")


@pytest.fixture(params=KERNEL_BACKENDS)
def backend(request):
    return request.param


def test_the_plan_is_one_line_per_step(rng):
    x = rng.random((4, 8), dtype=np.float32)
    w = rng.random((8, 8), dtype=np.float32)
    traced = gputrace.trace(lambda x, w: np.tanh(x @ w + 1.0).sum(axis=1), (x, w))
    plan = traced.lower(x, w).executor("emulate").plan
    lines = plan.source.splitlines()
    assert lines[0] == "def run_plan(inputs, params):"
    assert lines[1].strip() == "x, w = inputs"
    steps = [line for line in lines if "= step" in line]
    assert len(steps) == 2, plan.source  # the matmul, then one kernel (+1, tanh, sum)
    assert lines[-1].strip().startswith("return [")


def test_a_parameter_replaced_between_calls_is_read_afresh(rng, backend):
    layer = nn.Linear(4, 3, seed=0)
    x = rng.random((2, 4), dtype=np.float32)
    traced = gputrace.trace(layer, x)
    first = run_on(traced, [x], backend)[0]
    np.testing.assert_allclose(first, x @ layer.weight.T + layer.bias, rtol=1e-6)
    layer.bias = nn.Parameter(layer.bias + 10)  # same layout: the same compiled program runs
    again = run_on(traced, [x], backend)[0]
    np.testing.assert_allclose(again, x @ layer.weight.T + layer.bias, rtol=1e-6)
    assert "prepare(params('bias'))" in traced.lower(x).executor("emulate").plan.source


@pytest.mark.parametrize("fn", [lambda x: x, lambda x: x.T, lambda x: x[1:].copy(), lambda x: (x, x * 2),
                                lambda x: {"same": x.reshape(-1), "twice": [x + x]}],
                         ids=["identity", "T", "slice-copy", "tuple", "nested"])
def test_outputs_never_alias_the_callers_arrays(fn, backend):
    """Outputs that are views of inputs are copied, as on the numpy backend; nested results keep their shape."""
    xp = pytest.importorskip("cupy") if backend == "cuda" else np
    x = xp.arange(6, dtype=np.float32).reshape(2, 3)
    traced = gputrace.trace(fn, np.arange(6, dtype=np.float32).reshape(2, 3), strict=False)
    got, want = traced.run(x, backend=backend), fn(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert type(got) is type(want) and (not isinstance(want, dict) or list(got) == list(want))
    assert len(_leaves(got)) == len(_leaves(want))
    for out, expected in zip(_leaves(got), _leaves(want)):
        assert not xp.shares_memory(out, x)
        np.testing.assert_array_equal(out if xp is np else out.get(), expected)


def _leaves(result):
    if isinstance(result, dict):
        return [leaf for value in result.values() for leaf in _leaves(value)]
    if isinstance(result, (tuple, list)):
        return [leaf for value in result for leaf in _leaves(value)]
    return [result]


ONES = np.ones((5, 5), np.float32)


def test_arrays_the_function_captures_are_parameters_of_the_plan(rng, backend):
    """Captured arrays are read afresh each call; an array the function makes (np.ones) is a constant."""
    table = np.arange(5, dtype=np.float32)
    x = rng.random((3, 5), dtype=np.float32)
    traced = gputrace.trace(lambda x: x * table + x @ ONES + np.ones((3, 5), np.float32), x)
    for arg in (x, x + 1):
        out = run_on(traced, [arg], backend)[0]
        np.testing.assert_allclose(out, arg * table + arg @ ONES + 1, rtol=1e-6)
    source = traced.lower(x).executor("emulate").plan.source
    assert "table = prepare(params('table'))" in source and "ONES = prepare(params('ONES'))" in source, source
    assert source.count("prepare(params(") == 2, source
