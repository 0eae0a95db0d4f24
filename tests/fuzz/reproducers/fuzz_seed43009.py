"""gputrace fuzzer reproducer 58378a57f7: gputrace disagrees with NumPy.

  trace: gputrace.trace raised TracingCheckError: Tracing check failed on the check inputs: output 5 of the traced graph disagrees with eager execution of the Python function: NaN at 1 positions where the other has a number (tolerance 1e-05); NumPy computes the program

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import ArrayInput, DType, Index, NumpyScalar, Op, Program, Ref

BACKENDS = ('numpy', 'emulate')
PROGRAM = Program(inputs=(ArrayInput(dtype='float32', shape=(2, 2), layout='contiguous', values='special', seed=1910),), ops=(Op(form='call', name='max', args=(Ref(index=0),), kwargs=()), Op(form='call', name='ravel', args=(Ref(index=0),), kwargs=()), Op(form='call', name='isinf', args=(Ref(index=2),), kwargs=()), Op(form='method', name='max', args=(Ref(index=1),), kwargs=(('keepdims', True), ('initial', 0))), Op(form='call', name='rad2deg', args=(Ref(index=0),), kwargs=()), Op(form='call', name='nansum', args=(Ref(index=4),), kwargs=(('keepdims', True),)), Op(form='call', name='broadcast_to', args=(Ref(index=2), (2, 4)), kwargs=()), Op(form='call', name='exp', args=(Ref(index=5),), kwargs=()), Op(form='call', name='copy', args=(Ref(index=7),), kwargs=()), Op(form='call', name='expand_dims', args=(Ref(index=8), -2), kwargs=()), Op(form='call', name='clip', args=(Ref(index=9), None, 1), kwargs=()), Op(form='attr', name='T', args=(Ref(index=11),), kwargs=()), Op(form='method', name='mean', args=(Ref(index=8),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='binop', name='-', args=(Ref(index=8), Ref(index=13)), kwargs=()), Op(form='call', name='square', args=(Ref(index=14),), kwargs=()), Op(form='method', name='sum', args=(Ref(index=15),), kwargs=(('axis', 0),)), Op(form='call', name='expand_dims', args=(Ref(index=9), -2), kwargs=()), Op(form='call', name='arcsinh', args=(Ref(index=10),), kwargs=()), Op(form='binop', name='//', args=(Ref(index=7), Ref(index=17)), kwargs=()), Op(form='call', name='einsum', args=('ij,ik->k', Ref(index=9), Ref(index=0)), kwargs=()), Op(form='call', name='moveaxis', args=(Ref(index=11), 0, -1), kwargs=()), Op(form='call', name='ceil', args=(Ref(index=2),), kwargs=())), outputs=(22, 3, 6, 16, 18, 20))

# The same program as plain NumPy code:
import numpy as np


def program(x0):
    v0 = np.max(x0)
    v1 = np.ravel(x0)
    v2 = np.isinf(v1)
    v3 = v0.max(keepdims=True, initial=0)
    v4 = np.rad2deg(x0)
    v5 = np.nansum(v3, keepdims=True)
    v6 = np.broadcast_to(v1, (2, 4))
    v7 = np.exp(v4)
    v8 = np.copy(v6)
    v9 = np.expand_dims(v7, -2)
    v10 = np.clip(v8, None, 1)
    v11 = v10.T
    v12 = v7.mean(axis=0, keepdims=True)
    v13 = v7 - v12
    v14 = np.square(v13)
    v15 = v14.sum(axis=0)
    v16 = np.expand_dims(v8, -2)
    v17 = np.arcsinh(v9)
    v18 = v6 // v16
    v19 = np.einsum('ij,ik->k', v8, x0)
    v20 = np.moveaxis(v10, 0, -1)
    v21 = np.ceil(v1)
    return (v21, v2, v5, v15, v17, v19,)


def make_inputs():
    x0 = np.array([146.78085327148438, 1.0, -60.990928649902344, 1.7014117331926443e+38], dtype=np.float32).reshape((2, 2))
    return (x0,)


if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
