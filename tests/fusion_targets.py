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


# ----------------------------------------------------------------------------- issue 17: programs written plainly
# Programs written the way NumPy users write them (dict parameters, np.split and np.hstack, x[range(n), y],
# np.stack), with the kernels one call may launch. tests/test_passes.py checks the counts,
# tests/codegen/test_emulate_programs.py runs them all as one program on emulate.

def cross_entropy_onehot(logits, onehot):
    """Mean cross-entropy over rows from one-hot targets: logsumexp minus the target's logit."""
    m = logits.max(axis=-1, keepdims=True)
    logsumexp = np.log(np.exp(logits - m).sum(axis=-1)) + m[:, 0]
    return (logsumexp - (logits * onehot).sum(axis=-1)).mean()


def cross_entropy_labels(logits, y):
    """Mean cross-entropy over rows from integer labels (after CS231n's softmax loss)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[range(logits.shape[0]), y].mean()


def batchnorm_inference(x, params, eps=1e-5):
    """BatchNorm2d at inference over NCHW images: a per-channel scale and shift from the running statistics."""
    scale = params["weight"] / np.sqrt(params["running_var"] + eps)
    shift = params["bias"] - params["running_mean"] * scale
    return x * scale.reshape(1, -1, 1, 1) + shift[:, None, None]


def gpt2_block(x, block):
    """One GPT-2 transformer block as picoGPT writes it: attention per head through np.split and np.hstack."""
    from tests import real_programs
    return real_programs.transformer_block(x, **block, n_head=4)


def rk4_step(y, t, dt):
    """One Runge-Kutta step of a damped, driven oscillator whose state is stacked with np.stack."""
    def f(t, y):
        position, velocity = y[0], y[1]
        return np.stack([velocity, -position - 0.1 * velocity + 0.5 * np.cos(t)])
    k1 = f(t, y)
    k2 = f(t + dt / 2, y + dt / 2 * k1)
    k3 = f(t + dt / 2, y + dt / 2 * k2)
    k4 = f(t + dt, y + dt * k3)
    return y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def _logits_and_labels(rng, rows=50):
    return _normal(rng, rows, 13, scale=3), rng.integers(0, 13, rows)


def _batchnorm_inputs(rng):
    stats = {"weight": _normal(rng, 3) + 1, "bias": _normal(rng, 3), "running_mean": _normal(rng, 3),
             "running_var": bench.uniform(rng, (3,), 0.5, 2.0)}
    return _normal(rng, 4, 3, 6, 5), stats


def _gpt2_block_inputs(rng):
    from tests import real_programs
    return _normal(rng, 9, 16), real_programs.gpt2_params(rng, n_embd=16, n_layer=1)["blocks"][0]


WRITTEN_PLAINLY = {
    "cross_entropy_onehot": Target(cross_entropy_onehot, lambda rng: (
        lambda logits, y: (logits, np.eye(13, dtype=np.float32)[y]))(*_logits_and_labels(rng)), 1, 0),  # the mean too
    "cross_entropy_labels": Target(cross_entropy_labels, lambda rng: _logits_and_labels(rng, 40), 2, 0),
    "batchnorm_inference": Target(batchnorm_inference, _batchnorm_inputs, 1, 0),
    "gpt2_block": Target(gpt2_block, _gpt2_block_inputs, 6, 12),  # 12 matmuls: qkv, 2 per head, 3 more
    "rk4_step": Target(rk4_step, lambda rng: (_normal(rng, 2, 40), np.float32(0.3), np.float32(0.01)), 1, 0),
}
