"""gputrace fuzzer reproducer 62f91c04dd: gputrace disagrees with NumPy.

  output 0 on emulate (other input values): v7: NaN differs at 1 positions, first at (): np.float32(nan), NumPy np.float32(0.0)

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import ArrayInput, DType, Index, NumpyScalar, Op, Program, Ref

BACKENDS = ('numpy', 'emulate')
PROGRAM = Program(inputs=(ArrayInput(dtype='float32', shape=(3, 3), layout='contiguous', values='special', seed=8009), ArrayInput(dtype='float32', shape=(), layout='contiguous', values='normal', seed=0), ArrayInput(dtype='float32', shape=(), layout='contiguous', values='normal', seed=0), ArrayInput(dtype='float32', shape=(), layout='contiguous', values='normal', seed=0)), ops=(Op(form='call', name='add', args=(Ref(index=0), Ref(index=3)), kwargs=()), Op(form='call', name='max', args=(Ref(index=4),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='call', name='subtract', args=(Ref(index=4), Ref(index=5)), kwargs=()), Op(form='call', name='exp', args=(Ref(index=6),), kwargs=()), Op(form='call', name='sum', args=(Ref(index=7),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='call', name='log', args=(Ref(index=8),), kwargs=()), Op(form='binop', name='+', args=(Ref(index=9), Ref(index=5)), kwargs=()), Op(form='call', name='prod', args=(Ref(index=6),), kwargs=())), outputs=(11,))

# The same program as plain NumPy code:
import numpy as np


def program(x0, x1, x2, x3):
    v0 = np.add(x0, x3)
    v1 = np.max(v0, axis=0, keepdims=True)
    v2 = np.subtract(v0, v1)
    v3 = np.exp(v2)
    v4 = np.sum(v3, axis=0, keepdims=True)
    v5 = np.log(v4)
    v6 = v5 + v1
    v7 = np.prod(v2)
    return (v7,)


def make_inputs():
    x0 = np.array([1.6512329578399658, -0.0, 0.0, -0.06053853780031204, -2.196901321411133, 1.6814906597137451, 0.0, 0.970048189163208, 1.2290269136428833], dtype=np.float32).reshape((3, 3))
    x1 = np.array([0.1257302165031433], dtype=np.float32).reshape(())
    x2 = np.array([0.1257302165031433], dtype=np.float32).reshape(())
    x3 = np.array([0.1257302165031433], dtype=np.float32).reshape(())
    return (x0, x1, x2, x3,)


if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
