"""gputrace fuzzer reproducer 951e01c02f: gputrace disagrees with NumPy.

  output 0 on emulate (other input values): v1: 1 of 1 elements beyond tolerance (rtol 1e-12, scale 1.3, 4 terms), first at (): np.float64(0.19448214769363403), NumPy np.float64(0.1944822072982788)

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import ArrayInput, DType, Index, NumpyScalar, Op, Program, Ref

BACKENDS = ('numpy', 'emulate')
PROGRAM = Program(inputs=(ArrayInput(dtype='float32', shape=(4,), layout='contiguous', values='normal', seed=0),), ops=(Op(form='call', name='sum', args=(Ref(index=0),), kwargs=()), Op(form='call', name='sum', args=(Ref(index=1),), kwargs=(('dtype', DType(name='float64')),))), outputs=(2,))

# The same program as plain NumPy code:
import numpy as np


def program(x0):
    v0 = np.sum(x0)
    v1 = np.sum(v0, dtype=np.float64)
    return (v1,)


def make_inputs():
    x0 = np.array([0.1257302165031433, -0.13210485875606537, 0.6404226422309875, 0.10490011423826218], dtype=np.float32).reshape((4,))
    return (x0,)


if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
