"""Issue 4's kernel-count targets: each program, example inputs, and what one call may launch.

The programs are the benchmark suite's (benchmarks/programs.py) plus logsumexp and attention.
tests/test_passes.py checks the counts; tests/codegen/test_emulate_programs.py runs the kernels.
Below them, programs over a few long rows, whose kernels end where a row's result is read back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from benchmarks import programs as bench


def logsumexp(x):
    m = x.max(axis=-1, keepdims=True)
    return np.log(np.exp(x - m).sum(axis=-1, keepdims=True)) + m


def attention(q, k, v, mask):
    return bench.softmax(q @ k.T * 0.125 + mask) @ v


@dataclass(frozen=True)
class Target:
    fn: Callable
    make: Callable[[np.random.Generator], tuple]
    kernels: int   # generated kernels per call
    matmuls: int   # library calls (cuBLAS through CuPy)


def _normal(rng, *shape, scale=1.0):
    return bench.normal(rng, shape, scale)


def _rows(rng):
    return _normal(rng, 7, 300, scale=3)


def _attention_inputs(rng):
    mask = np.where(rng.random((9, 11)) < 0.3, -np.inf, 0).astype(np.float32)
    return _normal(rng, 9, 16), _normal(rng, 11, 16), _normal(rng, 11, 8), mask


TARGETS = {
    "softmax": Target(bench.softmax, lambda rng: (_rows(rng),), 1, 0),
    "layernorm": Target(bench.layernorm, lambda rng: (_rows(rng), _normal(rng, 300), _normal(rng, 300)), 1, 0),
    "rmsnorm": Target(bench.rmsnorm, lambda rng: (_rows(rng), _normal(rng, 300)), 1, 0),
    "logsumexp": Target(logsumexp, lambda rng: (_rows(rng),), 1, 0),
    "gelu": Target(bench.gelu, lambda rng: (_rows(rng),), 1, 0),
    "adam": Target(bench.adam, lambda rng: bench.BENCHMARKS["adam"].inputs(rng, "tiny"), 1, 0),
    "mycell": Target(bench.mycell, lambda rng: (_normal(rng, 7, 40), _normal(rng, 7, 40),
                                                _normal(rng, 40, 40, scale=0.2), _normal(rng, 40)), 1, 1),
    "lstm": Target(bench.lstm, lambda rng: bench.BENCHMARKS["lstm"].make(rng, {"batch": 5, "inputs": 12,
                                                                             "hidden": 24}), 1, 2),
    "attention": Target(attention, _attention_inputs, 1, 2),
    # not one of issue 4's: statistics over the leading axis (a short batch: one kernel)
    "batchnorm": Target(bench.batchnorm, lambda rng: bench.BENCHMARKS["batchnorm"].make(
        rng, {"batch": 300, "features": 40}), 1, 0),
}


@dataclass(frozen=True)
class LongRows:
    fn: Callable
    kernels: int   # generated kernels per call on a few long rows (short rows: one)


# A few long rows are each split over blocks, and only a row's last block knows its result: an element that
# reads the result starts the next kernel. tests/test_passes.py checks where the kernels end,
# tests/codegen/test_emulate_programs.py runs them.
LONG_ROW_PROGRAMS = {
    "normalize": LongRows(lambda x: x / x.sum(axis=-1, keepdims=True), 2),
    "standardize": LongRows(lambda x: (x - x.mean()) / x.std(), 2),
    "squared deviations": LongRows(lambda x: ((x - x.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1), 2),
    "logsumexp": LongRows(logsumexp, 2),
    "softmax": LongRows(bench.softmax, 3),
}
