"""gputrace fuzzer reproducer aef8adce7f: gputrace disagrees with NumPy.

  output 2 on emulate: v21: NaN differs at 1 positions, first at (0, 0, 0): np.float64(-0.0), NumPy np.float64(nan)
  output 2 on emulate (other input values): v21: NaN differs at 1 positions, first at (0, 0, 0): np.float64(-0.0), NumPy np.float64(nan)

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import ArrayInput, DType, Index, NumpyScalar, Op, Program, Ref

BACKENDS = ('numpy', 'emulate')
PROGRAM = Program(inputs=(ArrayInput(dtype='float64', shape=(4,), layout='contiguous', values='normal', seed=87), ArrayInput(dtype='float32', shape=(2, 0, 4), layout='contiguous', values='normal', seed=1598), ArrayInput(dtype='float64', shape=(0, 4), layout='contiguous', values='normal', seed=5000)), ops=(Op(form='binop', name='+', args=(Ref(index=2), Ref(index=1)), kwargs=()), Op(form='call', name='logical_xor', args=(Ref(index=0), Ref(index=3)), kwargs=()), Op(form='call', name='fmax', args=(Ref(index=4), Ref(index=1)), kwargs=()), Op(form='attr', name='T', args=(Ref(index=1),), kwargs=()), Op(form='call', name='ravel', args=(Ref(index=0),), kwargs=()), Op(form='call', name='subtract', args=(Ref(index=0), Ref(index=4)), kwargs=()), Op(form='method', name='squeeze', args=(Ref(index=3),), kwargs=()), Op(form='call', name='absolute', args=(Ref(index=7),), kwargs=()), Op(form='call', name='multiply', args=(Ref(index=7), Ref(index=9)), kwargs=()), Op(form='call', name='multiply', args=(Ref(index=11), Ref(index=11)), kwargs=()), Op(form='call', name='minimum', args=(Ref(index=12), NumpyScalar(dtype='float32', value=1.5)), kwargs=()), Op(form='call', name='astype', args=(Ref(index=8), DType(name='uint32')), kwargs=()), Op(form='call', name='add', args=(Ref(index=1), Ref(index=13)), kwargs=()), Op(form='call', name='absolute', args=(Ref(index=15),), kwargs=()), Op(form='call', name='multiply', args=(Ref(index=15), Ref(index=4)), kwargs=()), Op(form='call', name='add', args=(Ref(index=16), Ref(index=13)), kwargs=()), Op(form='call', name='add', args=(Ref(index=14), Ref(index=18)), kwargs=()), Op(form='call', name='not_equal', args=(Ref(index=13), Ref(index=12)), kwargs=()), Op(form='call', name='broadcast_to', args=(Ref(index=6), (3, 3, 4, 0, 2)), kwargs=()), Op(form='method', name='argmax', args=(Ref(index=10),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='call', name='positive', args=(Ref(index=22),), kwargs=()), Op(form='call', name='var', args=(Ref(index=4),), kwargs=(('keepdims', True), ('ddof', 1))), Op(form='call', name='astype', args=(Ref(index=9), DType(name='float32')), kwargs=()), Op(form='call', name='swapaxes', args=(Ref(index=6), -1, -2), kwargs=()), Op(form='call', name='matmul', args=(Ref(index=6), Ref(index=26)), kwargs=()), Op(form='call', name='logaddexp2', args=(Ref(index=22), Ref(index=26)), kwargs=()), Op(form='list_call', name='stack', args=(Ref(index=19), Ref(index=19), Ref(index=25)), kwargs=(('axis', 2),)), Op(form='call', name='clip', args=(Ref(index=9), inf, inf), kwargs=()), Op(form='call', name='std', args=(Ref(index=8),), kwargs=(('ddof', 1),)), Op(form='call', name='equal', args=(Ref(index=15), Ref(index=20)), kwargs=()), Op(form='call', name='power', args=(Ref(index=30), NumpyScalar(dtype='float32', value=1.5)), kwargs=()), Op(form='call', name='argmax', args=(Ref(index=25),), kwargs=(('axis', -3), ('keepdims', True))), Op(form='call', name='fmin', args=(Ref(index=17), NumpyScalar(dtype='float32', value=1.5)), kwargs=()), Op(form='binop', name='*', args=(Ref(index=29), Ref(index=22)), kwargs=()), Op(form='attr', name='T', args=(Ref(index=23),), kwargs=()), Op(form='call', name='reshape', args=(Ref(index=37), (1,)), kwargs=()), Op(form='call', name='swapaxes', args=(Ref(index=25), 1, 2), kwargs=()), Op(form='call', name='absolute', args=(Ref(index=16),), kwargs=()), Op(form='call', name='negative', args=(Ref(index=40),), kwargs=()), Op(form='call', name='maximum', args=(Ref(index=40), Ref(index=41)), kwargs=())), outputs=(42, 21, 24, 27, 35, 36))

# The same program as plain NumPy code:
import numpy as np


def program(x0, x1, x2):
    v0 = x2 + x1
    v1 = np.logical_xor(x0, v0)
    v2 = np.fmax(v1, x1)
    v3 = x1.T
    v4 = np.ravel(x0)
    v5 = np.subtract(x0, v1)
    v6 = v0.squeeze()
    v7 = np.absolute(v4)
    v8 = np.multiply(v4, v6)
    v9 = np.multiply(v8, v8)
    v10 = np.minimum(v9, np.float32(1.5))
    v11 = np.astype(v5, np.uint32)
    v12 = np.add(x1, v10)
    v13 = np.absolute(v12)
    v14 = np.multiply(v12, v1)
    v15 = np.add(v13, v10)
    v16 = np.add(v11, v15)
    v17 = np.not_equal(v10, v9)
    v18 = np.broadcast_to(v3, (3, 3, 4, 0, 2))
    v19 = v7.argmax(axis=0, keepdims=True)
    v20 = np.positive(v19)
    v21 = np.var(v1, keepdims=True, ddof=1)
    v22 = np.astype(v6, np.float32)
    v23 = np.swapaxes(v3, -1, -2)
    v24 = np.matmul(v3, v23)
    v25 = np.logaddexp2(v19, v23)
    v26 = np.stack([v16, v16, v22], axis=2)
    v27 = np.clip(v6, np.inf, np.inf)
    v28 = np.std(v5, ddof=1)
    v29 = np.equal(v12, v17)
    v30 = np.power(v27, np.float32(1.5))
    v31 = np.argmax(v22, axis=-3, keepdims=True)
    v32 = np.fmin(v14, np.float32(1.5))
    v33 = v26 * v19
    v34 = v20.T
    v35 = np.reshape(v34, (1,))
    v36 = np.swapaxes(v22, 1, 2)
    v37 = np.absolute(v13)
    v38 = np.negative(v37)
    v39 = np.maximum(v37, v38)
    return (v39, v18, v21, v24, v32, v33,)


def make_inputs():
    x0 = np.array([0.0004889527152960482, -0.00013078827379386796, 0.00048271027695304233, 0.0015564717616527995], dtype=np.float64).reshape((4,))
    x1 = np.array([], dtype=np.float32).reshape((2, 0, 4))
    x2 = np.array([], dtype=np.float64).reshape((0, 4))
    return (x0, x1, x2,)


if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
