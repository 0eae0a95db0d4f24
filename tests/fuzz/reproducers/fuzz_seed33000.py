"""gputrace fuzzer reproducer d548e3a93e: gputrace disagrees with NumPy.

  output 0 on emulate: v12: NaN differs at 2 positions, first at (0, 1): np.float64(2.0), NumPy np.float64(nan)
  output 0 on emulate (other input values): v12: NaN differs at 2 positions, first at (0, 1): np.float64(nan), NumPy np.float64(0.0)

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import ArrayInput, DType, Index, NumpyScalar, Op, Program, Ref

BACKENDS = ('numpy', 'emulate')
PROGRAM = Program(inputs=(ArrayInput(dtype='int64', shape=(2, 2), layout='contiguous', values='normal', seed=0),), ops=(Op(form='call', name='sum', args=(Ref(index=0),), kwargs=(('axis', 1),)), Op(form='call', name='heaviside', args=(Ref(index=1), Ref(index=1)), kwargs=()), Op(form='call', name='fmod', args=(Ref(index=2), Ref(index=2)), kwargs=()), Op(form='call', name='add', args=(Ref(index=3), Ref(index=3)), kwargs=()), Op(form='call', name='add', args=(Ref(index=4), Ref(index=4)), kwargs=()), Op(form='call', name='add', args=(Ref(index=5), Ref(index=5)), kwargs=()), Op(form='call', name='add', args=(Ref(index=6), Ref(index=6)), kwargs=()), Op(form='call', name='add', args=(Ref(index=7), Ref(index=7)), kwargs=()), Op(form='call', name='add', args=(Ref(index=8), Ref(index=8)), kwargs=()), Op(form='call', name='add', args=(Ref(index=9), Ref(index=9)), kwargs=()), Op(form='call', name='add', args=(Ref(index=10), Ref(index=10)), kwargs=()), Op(form='call', name='astype', args=(Ref(index=11), DType(name='float16')), kwargs=()), Op(form='call', name='add', args=(Ref(index=12), Ref(index=0)), kwargs=())), outputs=(13,))

# The same program as plain NumPy code:
import numpy as np


def program(x0):
    v0 = np.sum(x0, axis=1)
    v1 = np.heaviside(v0, v0)
    v2 = np.fmod(v1, v1)
    v3 = np.add(v2, v2)
    v4 = np.add(v3, v3)
    v5 = np.add(v4, v4)
    v6 = np.add(v5, v5)
    v7 = np.add(v6, v6)
    v8 = np.add(v7, v7)
    v9 = np.add(v8, v8)
    v10 = np.add(v9, v9)
    v11 = np.astype(v10, np.float16)
    v12 = np.add(v11, x0)
    return (v12,)


def make_inputs():
    x0 = np.array([6, 2, 0, -4], dtype=np.int64).reshape((2, 2))
    return (x0,)


if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
