"""gputrace fuzzer reproducer 0fd10c1467: gputrace disagrees with NumPy.

  output 0 on emulate (other input values): v6: NaN differs at 6 positions, first at (0, 1): np.float32(nan), NumPy np.float32(-0.0)

  (A comparator issue of the fuzzer, kept as a regression: the row holds -3.4e38 twice and +3.4e38 once;
  NumPy's order adds +3.4e38 first (mean -4.9e37), the block reduction's tree adds the two -3.4e38 first
  (-inf). Both are float sums; which partial sums overflow is the order's choice. Sums whose terms of one
  sign reach the dtype's largest value are now unstable, as order-dependent products were.)

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import ArrayInput, DType, Index, NumpyScalar, Op, Program, Ref

BACKENDS = ('numpy', 'emulate')
PROGRAM = Program(inputs=(ArrayInput(dtype='float32', shape=(1, 7), layout='contiguous', values='special', seed=459), ArrayInput(dtype='float32', shape=(), layout='contiguous', values='normal', seed=0)), ops=(Op(form='method', name='mean', args=(Ref(index=0),), kwargs=(('axis', 1), ('keepdims', True))), Op(form='binop', name='-', args=(Ref(index=0), Ref(index=2)), kwargs=()), Op(form='binop', name='*', args=(Ref(index=3), Ref(index=3)), kwargs=()), Op(form='method', name='mean', args=(Ref(index=4),), kwargs=(('axis', 1), ('keepdims', True))), Op(form='binop', name='+', args=(Ref(index=5), 1e-05), kwargs=()), Op(form='call', name='sqrt', args=(Ref(index=6),), kwargs=()), Op(form='binop', name='/', args=(Ref(index=3), Ref(index=7)), kwargs=())), outputs=(8,))

# The same program as plain NumPy code:
import numpy as np


def program(x0, x1):
    v0 = x0.mean(axis=1, keepdims=True)
    v1 = x0 - v0
    v2 = v1 * v1
    v3 = v2.mean(axis=1, keepdims=True)
    v4 = v3 + 1e-05
    v5 = np.sqrt(v4)
    v6 = v1 / v5
    return (v6,)


def make_inputs():
    x0 = np.array([-0.0006397447432391346, 1048576.0, 0.000797468819655478, 0.00017050124006345868, -6.889189535286278e-05, -7.580474630231038e-05, -3.4028234663852886e+38], dtype=np.float32).reshape((1, 7))
    x1 = np.array([0.1257302165031433], dtype=np.float32).reshape(())
    return (x0, x1,)


if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
