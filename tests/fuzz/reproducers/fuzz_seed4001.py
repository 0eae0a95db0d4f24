"""gputrace fuzzer reproducer 362cdbc458: gputrace disagrees with NumPy.

  emulate: raised KeyError: %28
  emulate (other input values): raised KeyError: %28

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import ArrayInput, DType, Index, NumpyScalar, Op, Program, Ref

BACKENDS = ('numpy', 'emulate')
PROGRAM = Program(inputs=(ArrayInput(dtype='int8', shape=(1, 1), layout='contiguous', values='extreme', seed=259), ArrayInput(dtype='int64', shape=(), layout='contiguous', values='extreme', seed=7075)), ops=(Op(form='method', name='squeeze', args=(Ref(index=1),), kwargs=()), Op(form='call', name='clip', args=(Ref(index=1), None, Ref(index=0)), kwargs=()), Op(form='attr', name='T', args=(Ref(index=2),), kwargs=()), Op(form='call', name='swapaxes', args=(Ref(index=0), 0, 1), kwargs=()), Op(form='call', name='bitwise_xor', args=(Ref(index=3), Ref(index=4)), kwargs=()), Op(form='call', name='ravel', args=(Ref(index=0),), kwargs=()), Op(form='call', name='multiply', args=(Ref(index=6), Ref(index=6)), kwargs=()), Op(form='call', name='clip', args=(Ref(index=5), Ref(index=8), 1), kwargs=()), Op(form='call', name='clip', args=(Ref(index=9), None, 1), kwargs=()), Op(form='call', name='maximum', args=(Ref(index=10), Ref(index=6)), kwargs=()), Op(form='call', name='radians', args=(Ref(index=11),), kwargs=()), Op(form='call', name='multiply', args=(Ref(index=10), Ref(index=12)), kwargs=()), Op(form='call', name='log1p', args=(Ref(index=12),), kwargs=()), Op(form='call', name='isnan', args=(Ref(index=9),), kwargs=()), Op(form='call', name='swapaxes', args=(Ref(index=13), -1, -2), kwargs=()), Op(form='call', name='matmul', args=(Ref(index=13), Ref(index=16)), kwargs=()), Op(form='method', name='max', args=(Ref(index=16),), kwargs=()), Op(form='call', name='broadcast_to', args=(Ref(index=3), (1, 2)), kwargs=()), Op(form='call', name='ones_like', args=(Ref(index=17),), kwargs=(('dtype', DType(name='float32')),)), Op(form='method', name='sum', args=(Ref(index=6),), kwargs=(('keepdims', True),)), Op(form='list_call', name='concatenate', args=(Ref(index=21), Ref(index=21), Ref(index=15)), kwargs=(('axis', 0),)), Op(form='call', name='swapaxes', args=(Ref(index=15), 1, -1), kwargs=()), Op(form='list_call', name='stack', args=(Ref(index=20), Ref(index=17), Ref(index=15)), kwargs=(('axis', 0),)), Op(form='call', name='argmin', args=(Ref(index=2),), kwargs=(('keepdims', True),)), Op(form='binop', name='!=', args=(Ref(index=15), Ref(index=8)), kwargs=()), Op(form='call', name='max', args=(Ref(index=16),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='call', name='subtract', args=(Ref(index=16), Ref(index=27)), kwargs=()), Op(form='call', name='exp', args=(Ref(index=28),), kwargs=()), Op(form='call', name='sum', args=(Ref(index=29),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='call', name='log', args=(Ref(index=30),), kwargs=()), Op(form='binop', name='+', args=(Ref(index=31), Ref(index=27)), kwargs=())), outputs=(32, 7, 14, 18, 19, 22))

# The same program as plain NumPy code:
import numpy as np


def program(x0, x1):
    v0 = x1.squeeze()
    v1 = np.clip(x1, None, x0)
    v2 = v0.T
    v3 = np.swapaxes(x0, 0, 1)
    v4 = np.bitwise_xor(v1, v2)
    v5 = np.ravel(x0)
    v6 = np.multiply(v4, v4)
    v7 = np.clip(v3, v6, 1)
    v8 = np.clip(v7, None, 1)
    v9 = np.maximum(v8, v4)
    v10 = np.radians(v9)
    v11 = np.multiply(v8, v10)
    v12 = np.log1p(v10)
    v13 = np.isnan(v7)
    v14 = np.swapaxes(v11, -1, -2)
    v15 = np.matmul(v11, v14)
    v16 = v14.max()
    v17 = np.broadcast_to(v1, (1, 2))
    v18 = np.ones_like(v15, dtype=np.float32)
    v19 = v4.sum(keepdims=True)
    v20 = np.concatenate([v19, v19, v13], axis=0)
    v21 = np.swapaxes(v13, 1, -1)
    v22 = np.stack([v18, v15, v13], axis=0)
    v23 = np.argmin(v0, keepdims=True)
    v24 = v13 != v6
    v25 = np.max(v14, axis=0, keepdims=True)
    v26 = np.subtract(v14, v25)
    v27 = np.exp(v26)
    v28 = np.sum(v27, axis=0, keepdims=True)
    v29 = np.log(v28)
    v30 = v29 + v25
    return (v30, v5, v12, v16, v17, v20,)


def make_inputs():
    x0 = np.array([126], dtype=np.int8).reshape((1, 1))
    x1 = np.array([63], dtype=np.int64).reshape(())
    return (x0, x1,)


if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
