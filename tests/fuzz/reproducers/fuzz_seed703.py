"""gputrace fuzzer reproducer c9c63f8da8: gputrace disagrees with NumPy.

  output 0 on emulate: v36: 2 of 3 elements beyond tolerance (rtol 1e-12, scale 2.07e+264, 45 terms), first at (0, 0): np.float64(2.70805020110221), NumPy np.float64(2.0664975707976633e+264)

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import Arange, ArrayInput, DType, Index, IntList, NumpyScalar, Op, Param, Program, Ref, SelfMask

BACKENDS = ('numpy', 'emulate')
PROGRAM = Program(inputs=(ArrayInput(dtype='int32', shape=(), layout='contiguous', values='special', seed=175, bound=0), ArrayInput(dtype='float32', shape=(), layout='contiguous', values='extreme', seed=1000, bound=0), ArrayInput(dtype='uint64', shape=(), layout='contiguous', values='normal', seed=4732, bound=0), ArrayInput(dtype='float32', shape=(5,), layout='contiguous', values='normal', seed=24615, bound=0)), ops=(Op(form='list_call', name='concatenate', args=(Ref(index=3), Ref(index=3), Ref(index=3)), kwargs=(('axis', -1),)), Op(form='call', name='floor', args=(Ref(index=2),), kwargs=()), Op(form='call', name='add', args=(0, Ref(index=1)), kwargs=()), Op(form='binop', name='+', args=(Ref(index=5), NumpyScalar(dtype='float16', value=0.1)), kwargs=()), Op(form='index', name='getitem', args=(Ref(index=7), Index(items=())), kwargs=()), Op(form='call', name='power', args=(Ref(index=6), NumpyScalar(dtype='int64', value=5)), kwargs=()), Op(form='call', name='add', args=(Ref(index=9), Ref(index=9)), kwargs=()), Op(form='call', name='subtract', args=(Ref(index=10), Ref(index=10)), kwargs=()), Op(form='call', name='add', args=(Ref(index=7), Ref(index=4)), kwargs=()), Op(form='call', name='add', args=(Ref(index=12), Ref(index=9)), kwargs=()), Op(form='call', name='linalg.norm', args=(Ref(index=12),), kwargs=(('ord', -inf), ('axis', 0))), Op(form='call', name='var', args=(Ref(index=13), (-1,)), kwargs=()), Op(form='index', name='getitem', args=(Ref(index=12), Index(items=())), kwargs=()), Op(form='list_call', name='stack', args=(Ref(index=15), Ref(index=15), Ref(index=9)), kwargs=(('axis', 0),)), Op(form='call', name='transpose', args=(Ref(index=1), ()), kwargs=()), Op(form='call', name='outer', args=(Ref(index=17), Ref(index=12)), kwargs=()), Op(form='call', name='power', args=(Ref(index=1), Ref(index=16)), kwargs=()), Op(form='call', name='expand_dims', args=(Ref(index=10), -1), kwargs=()), Op(form='call', name='linalg.norm', args=(Ref(index=13),), kwargs=(('ord', None), ('axis', 0))), Op(form='index', name='getitem', args=(Ref(index=22), Index(items=())), kwargs=()), Op(form='call', name='minimum', args=(Ref(index=0), False), kwargs=()), Op(form='call', name='hypot', args=(Ref(index=1), nan), kwargs=()), Op(form='method', name='squeeze', args=(Ref(index=17),), kwargs=()), Op(form='method', name='max', args=(Ref(index=19),), kwargs=(('axis', -1), ('keepdims', True))), Op(form='binop', name='-', args=(Ref(index=19), Ref(index=27)), kwargs=()), Op(form='call', name='exp', args=(Ref(index=28),), kwargs=()), Op(form='method', name='sum', args=(Ref(index=29),), kwargs=(('axis', -1), ('keepdims', True))), Op(form='binop', name='/', args=(Ref(index=29), Ref(index=30)), kwargs=()), Op(form='assign', name='+=', args=(Ref(index=3), Index(items=(Ellipsis,)), -2.5), kwargs=(('copy', 'inplace'),)), Op(form='call', name='power', args=(Ref(index=30), Ref(index=12)), kwargs=()), Op(form='list_call', name='concatenate', args=(Ref(index=29), Ref(index=28)), kwargs=(('axis', -2),)), Op(form='call', name='max', args=(Ref(index=19),), kwargs=(('axis', -1), ('keepdims', True))), Op(form='call', name='subtract', args=(Ref(index=19), Ref(index=35)), kwargs=()), Op(form='call', name='exp', args=(Ref(index=36),), kwargs=()), Op(form='call', name='sum', args=(Ref(index=37),), kwargs=(('axis', -1), ('keepdims', True))), Op(form='call', name='log', args=(Ref(index=38),), kwargs=()), Op(form='binop', name='+', args=(Ref(index=39), Ref(index=35)), kwargs=())), outputs=(40, 8, 11, 14, 20, 24), signature='flat', scalar=None)

# The same program as plain NumPy code:
import numpy as np


def program(x0, x1, x2, x3):
    v0 = np.concatenate([x3, x3, x3], axis=-1)
    v1 = np.floor(x2)
    v2 = np.add(0, x1)
    v3 = v1 + np.float16(0.1)
    v4 = v3[()]
    v5 = np.power(v2, np.int64(5))
    v6 = np.add(v5, v5)
    v7 = np.subtract(v6, v6)
    v8 = np.add(v3, v0)
    v9 = np.add(v8, v5)
    v10 = np.linalg.norm(v8, ord=-np.inf, axis=0)
    v11 = np.var(v9, (-1,))
    v12 = v8[()]
    v13 = np.stack([v11, v11, v5], axis=0)
    v14 = np.transpose(x1, ())
    v15 = np.outer(v13, v8)
    v16 = np.power(x1, v12)
    v17 = np.expand_dims(v6, -1)
    v18 = np.linalg.norm(v9, ord=None, axis=0)
    v19 = v18[()]
    v20 = np.minimum(x0, False)
    v21 = np.hypot(x1, np.nan)
    v22 = v13.squeeze()
    v23 = v15.max(axis=-1, keepdims=True)
    v24 = v15 - v23
    v25 = np.exp(v24)
    v26 = v25.sum(axis=-1, keepdims=True)
    v27 = v25 / v26
    x3[...,] += -2.5; v28 = x3
    v29 = np.power(v26, v8)
    v30 = np.concatenate([v25, v24], axis=-2)
    v31 = np.max(v15, axis=-1, keepdims=True)
    v32 = np.subtract(v15, v31)
    v33 = np.exp(v32)
    v34 = np.sum(v33, axis=-1, keepdims=True)
    v35 = np.log(v34)
    v36 = v35 + v31
    return (v36, v4, v7, v10, v16, v20,)


def make_inputs():
    x0 = np.array([4], dtype=np.int32).reshape(())
    x1 = np.array([-3.2133021611765666e+29], dtype=np.float32).reshape(())
    x2 = np.array([4], dtype=np.uint64).reshape(())
    x3 = np.array([0.0008769991109147668, -0.00025542950606904924, -9.62613194133155e-05, 0.0016753475647419691, -9.55189170781523e-06], dtype=np.float32).reshape((5,))
    return (x0, x1, x2, x3,)


if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
