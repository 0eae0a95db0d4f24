"""Random elementwise graphs, fused into kernels, run on ``emulate`` and compared with NumPy.

The programs come from the differential fuzzer's generator (tests/fuzz/generate.py), restricted to
elementwise families, so that many ops land in one kernel: random ufunc DAGs (calls and operators),
``where``, ``clip``, ``astype``, fills, over broadcast shapes, every dtype, transposed, strided and
reversed inputs, special values (NaN, +-inf, -0.0, extremes) and Python and NumPy scalar operands.
A second property adds views (slices, transposes, expand_dims ...) of computed values, which the
fusion pass moves above the elementwise ops they read. The fuzzer's runner compares every output
(exactly computed floats bit for bit, libm results within a few ulp) and runs the traced program
again on other values: one build per program. The examples are the same on every run unless
$GPUTRACE_FUZZ_SEED is set.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, seed, settings

from gputrace.backends.host_compiler import host_compiler_info
from tests.fuzz.differential import run_program
from tests.fuzz.generate import programs

pytestmark = pytest.mark.skipif(not host_compiler_info()["available"], reason="no host C++ compiler for emulate")

ELEMENTWISE = ("binary",) * 8 + ("unary",) * 5 + ("where", "clip", "astype", "astype", "fill")
VIEWS = ("transpose", "index", "index", "expand_dims", "squeeze", "broadcast_to")
SEED = int(os.environ.get("GPUTRACE_FUZZ_SEED", "0"))


def examples(count: int):
    return settings(max_examples=count, deadline=None, database=None, derandomize=not SEED,
                    suppress_health_check=list(HealthCheck), print_blob=True)


def check(program) -> None:
    mismatches = run_program(program, ("numpy", "emulate"))
    assert not mismatches, "emulate or numpy disagrees with NumPy:\n" + "\n".join(map(str, mismatches)) + \
        f"\n{program.source()}"


@seed(SEED + 10)
@examples(10)
@given(programs(max_ops=24, error_share=0, families=ELEMENTWISE))
def test_random_elementwise_graphs(program):
    check(program)


@seed(SEED + 11)
@examples(6)
@given(programs(max_ops=16, max_inputs=3, error_share=0, families=ELEMENTWISE * 2 + VIEWS))
def test_random_elementwise_graphs_with_views(program):
    check(program)
