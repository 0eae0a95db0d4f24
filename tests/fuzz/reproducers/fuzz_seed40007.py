"""gputrace fuzzer reproducer 88b654728a: gputrace disagrees with NumPy.

  output 1 on emulate: v5: 224 of 3000 elements differ, first at (5,): np.False_, NumPy np.True_
  output 1 on emulate (other input values): v5: 217 of 3000 elements differ, first at (4,): np.False_, NumPy np.True_

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import ArrayInput, DType, Index, NumpyScalar, Op, Program, Ref

BACKENDS = ('numpy', 'emulate')
PROGRAM = Program(inputs=(ArrayInput(dtype='float16', shape=(3000,), layout='contiguous', values='normal', seed=0), ArrayInput(dtype='uint8', shape=(3000,), layout='contiguous', values='normal', seed=0)), ops=(Op(form='call', name='fmod', args=(Ref(index=0), Ref(index=1)), kwargs=()), Op(form='call', name='add', args=(Ref(index=2), Ref(index=2)), kwargs=()), Op(form='call', name='add', args=(Ref(index=3), Ref(index=3)), kwargs=()), Op(form='call', name='not_equal', args=(Ref(index=4), Ref(index=4)), kwargs=()), Op(form='call', name='arctan2', args=(Ref(index=5), Ref(index=5)), kwargs=()), Op(form='call', name='signbit', args=(Ref(index=4),), kwargs=()), Op(form='call', name='add', args=(Ref(index=7), Ref(index=7)), kwargs=()), Op(form='call', name='add', args=(Ref(index=8), Ref(index=8)), kwargs=()), Op(form='method', name='max', args=(Ref(index=6),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='binop', name='-', args=(Ref(index=6), Ref(index=10)), kwargs=()), Op(form='call', name='exp', args=(Ref(index=11),), kwargs=()), Op(form='method', name='sum', args=(Ref(index=12),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='binop', name='/', args=(Ref(index=12), Ref(index=13)), kwargs=()), Op(form='attr', name='T', args=(Ref(index=14),), kwargs=()), Op(form='call', name='square', args=(Ref(index=15),), kwargs=())), outputs=(16, 7))

# The same program as plain NumPy code:
import numpy as np
from tests.fuzz.program import draw_values


def program(x0, x1):
    v0 = np.fmod(x0, x1)
    v1 = np.add(v0, v0)
    v2 = np.add(v1, v1)
    v3 = np.not_equal(v2, v2)
    v4 = np.arctan2(v3, v3)
    v5 = np.signbit(v2)
    v6 = np.add(v5, v5)
    v7 = np.add(v6, v6)
    v8 = v4.max(axis=0, keepdims=True)
    v9 = v4 - v8
    v10 = np.exp(v9)
    v11 = v10.sum(axis=0, keepdims=True)
    v12 = v10 / v11
    v13 = v12.T
    v14 = np.square(v13)
    return (v14, v5,)


def make_inputs():
    x0 = draw_values(np.dtype(np.float16), 3000, 'normal', 0).reshape((3000,))
    x1 = draw_values(np.dtype(np.uint8), 3000, 'normal', 0).reshape((3000,))
    return (x0, x1,)


if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
