"""gputrace fuzzer reproducer 9f07aa9e7a: gputrace disagrees with NumPy.

  trace: NumPy raises TypeError: float() argument must be a string or a real number, not 'NumpyScalar' at `np.power(np.float32(1.5), v3)`, gputrace.trace accepted the program

  (A fuzzer bug, kept as a regression: classifying power's operands passed the NumpyScalar record itself
  to NumPy instead of np.float32(1.5), and the evaluator blamed NumPy for that error. Now a failure of the
  fuzzer's own bookkeeping raises FuzzerError.)

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import ArrayInput, DType, Index, NumpyScalar, Op, Program, Ref

BACKENDS = ('numpy', 'emulate')
PROGRAM = Program(inputs=(ArrayInput(dtype='float32', shape=(), layout='contiguous', values='normal', seed=0),), ops=(Op(form='call', name='sum', args=(Ref(index=0),), kwargs=(('dtype', DType(name='float64')),)), Op(form='call', name='add', args=(Ref(index=1), Ref(index=1)), kwargs=()), Op(form='call', name='add', args=(Ref(index=2), Ref(index=2)), kwargs=()), Op(form='call', name='add', args=(Ref(index=3), Ref(index=3)), kwargs=()), Op(form='call', name='power', args=(NumpyScalar(dtype='float32', value=1.5), Ref(index=4)), kwargs=())), outputs=(5,))

# The same program as plain NumPy code:
import numpy as np


def program(x0):
    v0 = np.sum(x0, dtype=np.float64)
    v1 = np.add(v0, v0)
    v2 = np.add(v1, v1)
    v3 = np.add(v2, v2)
    v4 = np.power(np.float32(1.5), v3)
    return (v4,)


def make_inputs():
    x0 = np.array([0.1257302165031433], dtype=np.float32).reshape(())
    return (x0,)


if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
