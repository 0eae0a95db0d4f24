"""gputrace fuzzer reproducer 3039980146: gputrace disagrees with NumPy.

  emulate: raised KernelCompileError: g++ could not build the emulated kernels (gt_fused_0_logaddexp_mean_subtract_etc):
  emulate (other input values): raised KernelCompileError: g++ could not build the emulated kernels (gt_fused_0_logaddexp_mean_subtract_etc):

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import ArrayInput, DType, Index, NumpyScalar, Op, Program, Ref

BACKENDS = ('numpy', 'emulate')
PROGRAM = Program(inputs=(ArrayInput(dtype='int32', shape=(1000, 1), layout='contiguous', values='normal', seed=0), ArrayInput(dtype='float32', shape=(), layout='contiguous', values='normal', seed=0)), ops=(Op(form='call', name='sum', args=(Ref(index=0),), kwargs=(('axis', (0, 1)),)), Op(form='call', name='add', args=(Ref(index=2), Ref(index=2)), kwargs=()), Op(form='call', name='arctan2', args=(Ref(index=3), Ref(index=3)), kwargs=()), Op(form='call', name='isnan', args=(Ref(index=3),), kwargs=()), Op(form='call', name='logaddexp', args=(Ref(index=0), Ref(index=0)), kwargs=()), Op(form='method', name='mean', args=(Ref(index=6),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='binop', name='-', args=(Ref(index=6), Ref(index=7)), kwargs=()), Op(form='binop', name='*', args=(Ref(index=8), Ref(index=8)), kwargs=()), Op(form='method', name='mean', args=(Ref(index=9),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='binop', name='+', args=(Ref(index=10), 1e-05), kwargs=()), Op(form='call', name='sqrt', args=(Ref(index=11),), kwargs=()), Op(form='binop', name='/', args=(Ref(index=8), Ref(index=12)), kwargs=()), Op(form='call', name='astype', args=(Ref(index=13), DType(name='float64')), kwargs=()), Op(form='method', name='mean', args=(Ref(index=14),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='binop', name='-', args=(Ref(index=14), Ref(index=15)), kwargs=()), Op(form='binop', name='*', args=(Ref(index=16), Ref(index=16)), kwargs=()), Op(form='method', name='mean', args=(Ref(index=17),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='binop', name='+', args=(Ref(index=18), 1e-05), kwargs=()), Op(form='call', name='sqrt', args=(Ref(index=19),), kwargs=()), Op(form='binop', name='/', args=(Ref(index=16), Ref(index=20)), kwargs=()), Op(form='call', name='expand_dims', args=(Ref(index=6), 0), kwargs=()), Op(form='call', name='add', args=(Ref(index=22), Ref(index=22)), kwargs=()), Op(form='method', name='max', args=(Ref(index=23),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='binop', name='-', args=(Ref(index=23), Ref(index=24)), kwargs=()), Op(form='call', name='exp', args=(Ref(index=25),), kwargs=()), Op(form='method', name='sum', args=(Ref(index=26),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='binop', name='/', args=(Ref(index=26), Ref(index=27)), kwargs=()), Op(form='method', name='max', args=(Ref(index=28),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='binop', name='-', args=(Ref(index=28), Ref(index=29)), kwargs=()), Op(form='call', name='exp', args=(Ref(index=30),), kwargs=()), Op(form='method', name='sum', args=(Ref(index=31),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='binop', name='/', args=(Ref(index=31), Ref(index=32)), kwargs=())), outputs=(33, 21))

# The same program as plain NumPy code:
import numpy as np
from tests.fuzz.program import draw_values


def program(x0, x1):
    v0 = np.sum(x0, axis=(0, 1))
    v1 = np.add(v0, v0)
    v2 = np.arctan2(v1, v1)
    v3 = np.isnan(v1)
    v4 = np.logaddexp(x0, x0)
    v5 = v4.mean(axis=0, keepdims=True)
    v6 = v4 - v5
    v7 = v6 * v6
    v8 = v7.mean(axis=0, keepdims=True)
    v9 = v8 + 1e-05
    v10 = np.sqrt(v9)
    v11 = v6 / v10
    v12 = np.astype(v11, np.float64)
    v13 = v12.mean(axis=0, keepdims=True)
    v14 = v12 - v13
    v15 = v14 * v14
    v16 = v15.mean(axis=0, keepdims=True)
    v17 = v16 + 1e-05
    v18 = np.sqrt(v17)
    v19 = v14 / v18
    v20 = np.expand_dims(v4, 0)
    v21 = np.add(v20, v20)
    v22 = v21.max(axis=0, keepdims=True)
    v23 = v21 - v22
    v24 = np.exp(v23)
    v25 = v24.sum(axis=0, keepdims=True)
    v26 = v24 / v25
    v27 = v26.max(axis=0, keepdims=True)
    v28 = v26 - v27
    v29 = np.exp(v28)
    v30 = v29.sum(axis=0, keepdims=True)
    v31 = v29 / v30
    return (v31, v19,)


def make_inputs():
    x0 = draw_values(np.dtype(np.int32), 1000, 'normal', 0).reshape((1000, 1))
    x1 = np.array([0.1257302165031433], dtype=np.float32).reshape(())
    return (x0, x1,)


if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
