"""gputrace fuzzer reproducer 138d4944f5: gputrace disagrees with NumPy.

  output 0 on emulate (other input values): v13: 33 of 33 elements beyond tolerance (rtol 0.005, scale 450, 33 terms), first at (0,): np.float16(2.018e+04), NumPy np.float16(inf)

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import ArrayInput, DType, Index, NumpyScalar, Op, Program, Ref

BACKENDS = ('numpy', 'emulate')
PROGRAM = Program(inputs=(ArrayInput(dtype='float16', shape=(33,), layout='contiguous', values='normal', seed=1),), ops=(Op(form='call', name='max', args=(Ref(index=0),), kwargs=()), Op(form='call', name='var', args=(Ref(index=0),), kwargs=(('ddof', 1),)), Op(form='call', name='add', args=(Ref(index=2), Ref(index=2)), kwargs=()), Op(form='method', name='max', args=(Ref(index=0),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='binop', name='-', args=(Ref(index=0), Ref(index=4)), kwargs=()), Op(form='call', name='exp', args=(Ref(index=5),), kwargs=()), Op(form='method', name='sum', args=(Ref(index=6),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='binop', name='/', args=(Ref(index=6), Ref(index=7)), kwargs=()), Op(form='call', name='negative', args=(Ref(index=8),), kwargs=()), Op(form='call', name='add', args=(Ref(index=9), Ref(index=9)), kwargs=()), Op(form='call', name='add', args=(Ref(index=10), Ref(index=10)), kwargs=()), Op(form='call', name='add', args=(Ref(index=11), Ref(index=11)), kwargs=()), Op(form='call', name='add', args=(Ref(index=12), Ref(index=12)), kwargs=()), Op(form='call', name='add', args=(Ref(index=13), Ref(index=3)), kwargs=())), outputs=(14,))

# The same program as plain NumPy code:
import numpy as np


def program(x0):
    v0 = np.max(x0)
    v1 = np.var(x0, ddof=1)
    v2 = np.add(v1, v1)
    v3 = x0.max(axis=0, keepdims=True)
    v4 = x0 - v3
    v5 = np.exp(v4)
    v6 = v5.sum(axis=0, keepdims=True)
    v7 = v5 / v6
    v8 = np.negative(v7)
    v9 = np.add(v8, v8)
    v10 = np.add(v9, v9)
    v11 = np.add(v10, v10)
    v12 = np.add(v11, v11)
    v13 = np.add(v12, v2)
    return (v13,)


def make_inputs():
    x0 = np.array([0.345703125, 0.82177734375, 0.330322265625, -1.302734375, 0.9052734375, 0.4462890625, -0.537109375, 0.5810546875, 0.364501953125, 0.294189453125, 0.0284271240234375, 0.546875, -0.736328125, -0.1629638671875, -0.482177734375, 0.5986328125, 0.03973388671875, -0.29248046875, -0.78173828125, -0.257080078125, 0.00814056396484375, -0.275634765625, 1.2939453125, 1.0068359375, -2.7109375, -1.888671875, -0.1748046875, -0.422119140625, 0.213623046875, 0.21728515625, 2.1171875, -1.1123046875, -0.377685546875], dtype=np.float16).reshape((33,))
    return (x0,)


if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
