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


# ----------------------------------------------------------------------------- traffic: the bytes each step moves

def test_a_kernel_reading_views_of_one_array_under_many_names_reads_it_once():
    """An RK4 step reads y[0] and y[1] once per stage, each time under a new name, and t and dt broadcast several
    times: its kernel reads y, t and dt once, and writes the stacked result once (ratio 1: it was 3.99)."""
    from tests.fusion_targets import WRITTEN_PLAINLY
    y, t, dt = WRITTEN_PLAINLY["rk4_step"].make(np.random.default_rng(0))
    plan = gputrace.trace(WRITTEN_PLAINLY["rk4_step"].fn, (y, t, dt), check_trace=False).lower(y, t, dt).plan
    assert plan.bytes_required == 2 * y.nbytes + t.nbytes + dt.nbytes
    assert plan.bytes_moved == plan.bytes_required, plan.traffic()


def test_a_region_read_under_several_names_is_read_once():
    """The rows of a state's first two (of three) rows, read under a new name per stage: two rows are read."""
    def heun(states, dt):
        y = states[:2]
        f = lambda y: np.stack([y[1], -y[0] - 0.1 * y[1]])  # noqa: E731
        k1 = f(y)
        return y + dt / 2 * (k1 + f(y + dt * k1))

    states, dt = np.ones((3, 40), np.float32), np.float32(0.1)
    kernel, = gputrace.trace(heun, (states, dt), check_trace=False).lower(states, dt).plan
    assert len(kernel.inputs) > 4 and kernel.bytes_read == 2 * 40 * 4 + 4, kernel


@pytest.mark.parametrize("fn, read", [(lambda x: x * x.T, 1), (lambda x: x[0] * x[0] + x[0], 1 / 4),
                                      (lambda x: x[:2] - x[2:], 1), (lambda x: x[:, 1:] + x[:, :-1], 1)],
                         ids=["x and x.T", "one row twice", "two halves", "overlapping columns"])
def test_views_of_one_array_in_a_kernel_count_each_region_once_and_never_more_than_the_array(fn, read):
    x = np.ones((4, 4), np.float32)
    kernel, = gputrace.trace(fn, (x,), check_trace=False).lower(x).plan
    assert kernel.bytes_read == read * x.nbytes, kernel


def test_a_gather_reads_the_elements_it_picks_not_its_whole_source():
    """Cross-entropy from integer labels: the loss kernel reads one logit per row (and the labels, the row
    numbers and two per-row results), not all the logits (the plan's ratio was 2.00)."""
    from tests.fusion_targets import WRITTEN_PLAINLY
    logits, y = WRITTEN_PLAINLY["cross_entropy_labels"].make(np.random.default_rng(0))
    n = len(logits)
    rows, loss = gputrace.trace(WRITTEN_PLAINLY["cross_entropy_labels"].fn, (logits, y),
                                check_trace=False).lower(logits, y).plan
    assert rows.bytes_moved == logits.nbytes + 2 * n * 4  # all logits read, max and log-sum per row written
    assert loss.bytes_read == n * 4 + 2 * n * 8 + 2 * n * 4  # a logit per row, labels and row numbers, the rows
    assert loss.bytes_moved == loss.bytes_read + 4
