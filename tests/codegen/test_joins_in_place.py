"""np.stack / np.concatenate of computed pieces: the kernels (and matmuls) that compute the pieces write straight
into their slice of the joined array (gputrace/passes/joins.py), on ``emulate`` (and ``cuda`` on a GPU) against
the ``numpy`` backend. A piece no kernel writes (an input's view) or one the function also returns is copied in."""
from __future__ import annotations

import numpy as np
import pytest

from gputrace.backends.host_compiler import host_compiler_info
from gputrace.codegen import Kernel

from .backend_agreement import KERNEL_BACKENDS, assert_backend_matches, run_on, trace

pytestmark = pytest.mark.skipif(not host_compiler_info()["available"], reason="no host C++ compiler for emulate")


@pytest.fixture(params=KERNEL_BACKENDS)
def backend(request):
    return request.param


def copies(plan) -> list[list[str]]:
    """The inputs of each step that copies pieces into a joined array."""
    return [step.inputs for step in plan if not isinstance(step, Kernel) and "matmul" not in step.name]


def test_pieces_of_stacks_along_the_first_and_the_last_axis_are_written_in_place(backend, rng):
    """A kernel per stack computes its pieces (they share an iteration space) and writes each into its slice:
    rows of the first stack (contiguous, at an offset), columns of the second (a stride of 3), rows of the third
    (whose pieces the ops after it moved into), and a kernel that reads and writes nothing contiguous. No copy
    but the input's view."""
    def stacks(x, y):
        return (np.stack([x * 2 + y, x - y]), np.stack([x * y, y + 1, x - 3 * y], axis=-1),
                np.stack([y, x - 1], axis=1) * 3 + x[:, None], np.stack([x[:, ::2] * 2, y[:, ::2]], axis=-1))

    x, y = (rng.standard_normal((5, 7)).astype(np.float32) for _ in range(2))
    traced = trace(stacks, (x, y))
    plan = traced.lower(x, y).plan
    assert [len(step.outputs) for step in plan if isinstance(step, Kernel)] == [2, 3, 2, 1], plan
    assert [len(pieces) for pieces in copies(plan)] == [1], plan
    assert_backend_matches(backend, traced, (x, y))  # bit-exact: a piece in the wrong place shows


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_pieces_of_different_sizes_are_written_into_a_concatenation(backend, rng, dtype):
    """np.hstack of pieces of 3, 5 and 3 columns (two kernels: the pieces of one shape share one) and np.vstack of a
    computed piece and an input's transpose, which no kernel writes: it alone is copied in."""
    def joins(a, b):
        return np.hstack([a * 2, b - 1, a + 1]), np.vstack([a.T * 3, b.T])

    a, b = rng.standard_normal((4, 3)).astype(dtype), rng.standard_normal((4, 5)).astype(dtype)
    traced = trace(joins, (a, b))
    plan = traced.lower(a, b).plan
    assert sorted(step.ops for step in plan if isinstance(step, Kernel)) == [["multiply"], ["multiply", "add"],
                                                                            ["subtract"]]
    copy, = [step for step in plan if not isinstance(step, Kernel)]
    assert len(copy.inputs) == 1 and copy.bytes_moved == 2 * b.nbytes  # b.T read, its rows written
    assert_backend_matches(backend, traced, (a, b))


def test_a_piece_the_function_returns_is_copied_and_shares_no_memory(backend, rng):
    """A piece that is also returned is written once, to an array of its own, and copied into the join: the
    caller's two results must not share memory. Its sibling piece is still written in place."""
    def returned(x):
        e = x * 2
        return np.concatenate([e, x + 1]), e

    x = rng.standard_normal((6, 4)).astype(np.float32)
    traced = trace(returned, (x,))
    plan = traced.lower(x).plan
    assert len([s for s in plan if isinstance(s, Kernel)]) == 1 and len(copies(plan)) == 1, plan
    assert_backend_matches(backend, traced, (x,))
    joined, e = run_on(traced, (x,), backend)
    assert not np.shares_memory(joined, e)


def test_matmuls_write_the_heads_into_their_columns(backend, rng):
    """Per-head products joined by np.hstack (as GPT-2's attention ends): each matmul writes its columns of the
    joined array (``out=``); the plan copies nothing. Node by node (check_trace's run) gives the same."""
    def heads(x, w1, w2, w3):
        return np.hstack([x @ w1, x @ w2]) @ w3

    x, w1, w2, w3 = (rng.standard_normal(shape).astype(np.float32) for shape in ((5, 4), (4, 3), (4, 3), (6, 2)))
    traced = trace(heads, (x, w1, w2, w3))
    program = traced.lower(x, w1, w2, w3)
    assert [step.name for step in program.plan] == ["cublas_matmul (CuPy)"] * 3
    assert_backend_matches(backend, traced, (x, w1, w2, w3), rtol=1e-6, atol=1e-6)
    if backend == "emulate":
        executor = program.executor("emulate")
        stepwise, = executor.run([x, w1, w2, w3], program.param, record={})
        np.testing.assert_allclose(stepwise, heads(x, w1, w2, w3), rtol=1e-6, atol=1e-6)
