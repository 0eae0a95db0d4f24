"""gputrace fuzzer reproducer cf153350ae: gputrace disagrees with NumPy.

  trace: gputrace.trace raised TracingCheckError: Tracing check failed on the check inputs: output 2 of the traced graph disagrees with eager execution of the Python function: NaN at 1 positions where the other has a number (tolerance 1e-05); NumPy computes the program

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import ArrayInput, DType, Index, NumpyScalar, Op, Program, Ref

BACKENDS = ('numpy', 'emulate')
PROGRAM = Program(inputs=(ArrayInput(dtype='float32', shape=(), layout='contiguous', values='normal', seed=7453), ArrayInput(dtype='float32', shape=(4,), layout='reversed', values='extreme', seed=659), ArrayInput(dtype='float16', shape=(1,), layout='transposed', values='extreme', seed=61807)), ops=(Op(form='method', name='min', args=(Ref(index=0),), kwargs=(('initial', -2),)), Op(form='method', name='astype', args=(Ref(index=1), DType(name='uint32')), kwargs=()), Op(form='call', name='reciprocal', args=(Ref(index=4),), kwargs=()), Op(form='binop', name='/', args=(Ref(index=3), Ref(index=4)), kwargs=()), Op(form='call', name='arcsin', args=(Ref(index=1),), kwargs=()), Op(form='method', name='astype', args=(Ref(index=5), DType(name='float32')), kwargs=()), Op(form='call', name='greater', args=(Ref(index=4), NumpyScalar(dtype='float32', value=1.5)), kwargs=()), Op(form='call', name='clip', args=(Ref(index=9), -2.5, None), kwargs=()), Op(form='method', name='astype', args=(Ref(index=6), DType(name='int8')), kwargs=()), Op(form='call', name='round', args=(Ref(index=8),), kwargs=()), Op(form='index', name='getitem', args=(Ref(index=3), Index(items=())), kwargs=()), Op(form='call', name='where', args=(Ref(index=9), nan, Ref(index=2)), kwargs=()), Op(form='index', name='getitem', args=(Ref(index=2), Index(items=())), kwargs=()), Op(form='method', name='var', args=(Ref(index=7),), kwargs=(('ddof', 1),)), Op(form='call', name='logaddexp2', args=(Ref(index=10), Ref(index=7)), kwargs=()), Op(form='call', name='where', args=(Ref(index=9), 255, Ref(index=12)), kwargs=()), Op(form='call', name='clip', args=(Ref(index=6), -2.5, None), kwargs=()), Op(form='index', name='getitem', args=(Ref(index=6), Index(items=())), kwargs=()), Op(form='call', name='subtract', args=(1e+30, Ref(index=13)), kwargs=()), Op(form='call', name='tanh', args=(Ref(index=9),), kwargs=()), Op(form='call', name='expand_dims', args=(Ref(index=7), 0), kwargs=()), Op(form='call', name='less', args=(1, Ref(index=13)), kwargs=()), Op(form='method', name='min', args=(Ref(index=13),), kwargs=(('keepdims', True),)), Op(form='method', name='sum', args=(Ref(index=22),), kwargs=(('axis', (-1,)), ('keepdims', True), ('dtype', DType(name='float64')))), Op(form='index', name='getitem', args=(Ref(index=0), Index(items=())), kwargs=()), Op(form='method', name='flatten', args=(Ref(index=7),), kwargs=())), outputs=(28, 11, 14, 15, 16, 18))

# The same program as plain NumPy code:
import numpy as np


def program(x0, x1, x2):
    v0 = x0.min(initial=-2)
    v1 = x1.astype(np.uint32)
    v2 = np.reciprocal(v1)
    v3 = v0 / v1
    v4 = np.arcsin(x1)
    v5 = v2.astype(np.float32)
    v6 = np.greater(v1, np.float32(1.5))
    v7 = np.clip(v6, -2.5, None)
    v8 = v3.astype(np.int8)
    v9 = np.round(v5)
    v10 = v0[()]
    v11 = np.where(v6, np.nan, x2)
    v12 = x2[()]
    v13 = v4.var(ddof=1)
    v14 = np.logaddexp2(v7, v4)
    v15 = np.where(v6, 255, v9)
    v16 = np.clip(v3, -2.5, None)
    v17 = v3[()]
    v18 = np.subtract(1e+30, v10)
    v19 = np.tanh(v6)
    v20 = np.expand_dims(v4, 0)
    v21 = np.less(1, v10)
    v22 = v10.min(keepdims=True)
    v23 = v19.sum(axis=(-1,), keepdims=True, dtype=np.float64)
    v24 = x0[()]
    v25 = v4.flatten()
    return (v25, v8, v11, v12, v13, v15,)


def make_inputs():
    x0 = np.array([1.1032286882400513], dtype=np.float32).reshape(())
    x1 = np.array([1.7919914286336444e+26, -3.4028234663852886e+38, -1.401298464324817e-45, 1.0], dtype=np.float32).reshape((4,))[::-1]
    x2 = np.array([-65504.0], dtype=np.float16).reshape((1,)).T
    return (x0, x1, x2,)


if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
