"""gputrace fuzzer reproducer 20a31d99f5: gputrace disagrees with NumPy.

  emulate: raised AssertionError: internal error: %2 has strides (1, 2, 0), its type says (2, 1, 0)
  emulate (other input values): raised AssertionError: internal error: %2 has strides (1, 2, 0), its type says (2, 1, 0)

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import ArrayInput, DType, Index, NumpyScalar, Op, Program, Ref

BACKENDS = ('numpy', 'emulate')
PROGRAM = Program(inputs=(ArrayInput(dtype='float32', shape=(2, 2, 1), layout='transposed', values='normal', seed=0), ArrayInput(dtype='float32', shape=(), layout='contiguous', values='normal', seed=0)), ops=(Op(form='call', name='positive', args=(Ref(index=0),), kwargs=()), Op(form='call', name='broadcast_to', args=(Ref(index=2), (2, 2, 2)), kwargs=())), outputs=(3,))

# The same program as plain NumPy code:
import numpy as np


def program(x0, x1):
    v0 = np.positive(x0)
    v1 = np.broadcast_to(v0, (2, 2, 2))
    return (v1,)


def make_inputs():
    x0 = np.array([0.1257302165031433, -0.13210485875606537, 0.6404226422309875, 0.10490011423826218], dtype=np.float32).reshape((1, 2, 2)).T
    x1 = np.array([0.1257302165031433], dtype=np.float32).reshape(())
    return (x0, x1,)


if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
