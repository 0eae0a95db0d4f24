"""gputrace fuzzer reproducer bafb647a79: gputrace disagrees with NumPy.

  trace: gputrace.trace raised TracingCheckError: Tracing check failed on the check inputs: output 0 of the traced graph disagrees with eager execution of the Python function: NaN at 1 positions where the other has a number (tolerance 1e-05); NumPy computes the program

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import ArrayInput, DType, Index, NumpyScalar, Op, Program, Ref

BACKENDS = ('numpy', 'emulate')
PROGRAM = Program(inputs=(ArrayInput(dtype='float32', shape=(2,), layout='contiguous', values='special', seed=0),), ops=(Op(form='call', name='einsum', args=('i,j->', Ref(index=0), Ref(index=0)), kwargs=()),), outputs=(1,))

# The same program as plain NumPy code:
import numpy as np


def program(x0):
    v0 = np.einsum('i,j->', x0, x0)
    return (v0,)


def make_inputs():
    x0 = np.array([-np.inf, 1.7014117331926443e+38], dtype=np.float32).reshape((2,))
    return (x0,)


if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
