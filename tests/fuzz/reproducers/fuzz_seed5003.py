"""gputrace fuzzer reproducer a5caa6e815: gputrace disagrees with NumPy.

  trace: gputrace.trace raised TracingCheckError: Tracing check failed on the check inputs: output 0 of the traced graph disagrees with eager execution of the Python function: max abs error 6.1e-05, max rel error 0.00123 (tolerance 1e-05); NumPy computes the program

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import ArrayInput, DType, Index, NumpyScalar, Op, Program, Ref

BACKENDS = ('numpy', 'emulate')
PROGRAM = Program(inputs=(ArrayInput(dtype='float32', shape=(), layout='contiguous', values='normal', seed=0), ArrayInput(dtype='float32', shape=(), layout='contiguous', values='normal', seed=0), ArrayInput(dtype='float16', shape=(33, 2), layout='transposed', values='normal', seed=0)), ops=(Op(form='method', name='max', args=(Ref(index=2),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='binop', name='-', args=(Ref(index=2), Ref(index=3)), kwargs=()), Op(form='call', name='exp', args=(Ref(index=4),), kwargs=()), Op(form='method', name='sum', args=(Ref(index=5),), kwargs=(('axis', 0), ('keepdims', True))), Op(form='binop', name='/', args=(Ref(index=5), Ref(index=6)), kwargs=())), outputs=(7,))

# The same program as plain NumPy code:
import numpy as np
from tests.fuzz.program import draw_values


def program(x0, x1, x2):
    v0 = x2.max(axis=0, keepdims=True)
    v1 = x2 - v0
    v2 = np.exp(v1)
    v3 = v2.sum(axis=0, keepdims=True)
    v4 = v2 / v3
    return (v4,)


def make_inputs():
    x0 = np.array([0.1257302165031433], dtype=np.float32).reshape(())
    x1 = np.array([0.1257302165031433], dtype=np.float32).reshape(())
    x2 = draw_values(np.dtype(np.float16), 66, 'normal', 0).reshape((2, 33)).T
    return (x0, x1, x2,)


if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
