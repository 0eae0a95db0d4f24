"""The benchmark programs: plain NumPy functions, their input makers and what they must cost.

Every program is written once against the NumPy API. ``xp`` (keyword-only,
NumPy by default) lets the same body run eagerly on CuPy (``xp=cupy``) and on
PyTorch (``xp=`` a small namespace of torch functions, see ``run.py``);
gputrace traces it with the default ``xp=np``.

Each :class:`Benchmark` declares, per size, the dimensions it runs at, the
bytes it must move (every input read once, every output written once, all
float32) and its flop count (one per elementwise arithmetic or transcendental
operation per element, as written; a matmul is 2*M*N*K).

>>> bench = BENCHMARKS["gelu"]
>>> x, = bench.inputs(np.random.default_rng(0), "tiny")
>>> bench.fn(x).shape == x.shape, bench.bytes_moved("tiny") == 2 * x.nbytes
(True, True)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

F32 = 4  # bytes per element: every benchmark runs in float32

# "tiny" is for tests and the host-overhead figure; "small" moves about 1 MB; "large" at least 256 MB.
SIZES = ("tiny", "small", "large")


# ----------------------------------------------------------------------------- the programs


def gelu(x, *, xp=np):
    """GELU, tanh approximation (as in BERT and GPT-2)."""
    return 0.5 * x * (1.0 + xp.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))


RISK_FREE, VOLATILITY = 0.02, 0.30


def normal_cdf(d, xp=np):
    """Abramowitz & Stegun 26.2.17 (|error| < 7.5e-8), as in the CUDA samples' Black-Scholes: no erf needed."""
    k = 1.0 / (1.0 + 0.2316419 * xp.abs(d))
    poly = k * (0.31938153 + k * (-0.356563782 + k * (1.781477937 + k * (-1.821255978 + k * 1.330274429))))
    tail = 0.3989422804014327 * xp.exp(-0.5 * d * d) * poly
    return xp.where(d > 0, 1.0 - tail, tail)


def black_scholes(price, strike, years, *, xp=np):
    """European call and put prices (fixed rate and volatility)."""
    sqrt_t = xp.sqrt(years)
    d1 = (xp.log(price / strike) + (RISK_FREE + 0.5 * VOLATILITY * VOLATILITY) * years) / (VOLATILITY * sqrt_t)
    d2 = d1 - VOLATILITY * sqrt_t
    cdf1, cdf2 = normal_cdf(d1, xp), normal_cdf(d2, xp)
    discounted = strike * xp.exp(-RISK_FREE * years)
    call = price * cdf1 - discounted * cdf2
    put = discounted * (1.0 - cdf2) - price * (1.0 - cdf1)
    return call, put


LR, BETA1, BETA2, EPS, STEP = 1e-3, 0.9, 0.999, 1e-8, 10


def adam(param, grad, m, v, *, xp=np):
    """One Adam step; returns the new parameter, first and second moments."""
    m = BETA1 * m + (1.0 - BETA1) * grad
    v = BETA2 * v + (1.0 - BETA2) * grad * grad
    m_hat = m / (1.0 - BETA1 ** STEP)
    v_hat = v / (1.0 - BETA2 ** STEP)
    return param - LR * m_hat / (xp.sqrt(v_hat) + EPS), m, v


def softmax(x, *, xp=np):
    """Softmax over the last axis, max-subtracted."""
    e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


def layernorm(x, weight, bias, *, xp=np):
    """Layer normalisation over the last axis, with weight and bias."""
    mean = xp.mean(x, axis=-1, keepdims=True)
    centred = x - mean
    var = xp.mean(centred * centred, axis=-1, keepdims=True)
    return centred / xp.sqrt(var + 1e-5) * weight + bias


def batchnorm(x, weight, bias, *, xp=np):
    """Batch normalisation as in training: each feature's statistics over the batch (the leading axis)."""
    centred = x - xp.mean(x, axis=0, keepdims=True)
    return centred / xp.sqrt(xp.var(x, axis=0, keepdims=True) + 1e-5) * weight + bias


def rmsnorm(x, weight, *, xp=np):
    """RMS normalisation over the last axis, with weight."""
    return x / xp.sqrt(xp.mean(x * x, axis=-1, keepdims=True) + 1e-6) * weight


def mycell(x, h, w, b, *, xp=np):
    """The seed's MyCell: ``tanh(linear(x) + h)``."""
    return xp.tanh(x @ w.T + b + h)


def sigmoid(z, xp=np):
    return 1.0 / (1.0 + xp.exp(-z))


def lstm(x, h, c, w_ih, w_hh, b, *, xp=np):
    """An LSTM cell: two matmuls, then the gates; returns the new h and c."""
    gates = x @ w_ih.T + h @ w_hh.T + b
    i, f, g, o = xp.split(gates, 4, axis=1)
    c_new = sigmoid(f, xp) * c + sigmoid(i, xp) * xp.tanh(g)
    return sigmoid(o, xp) * xp.tanh(c_new), c_new


# ----------------------------------------------------------------------------- inputs


def uniform(rng: Any, shape: tuple, low: float, high: float):
    """float32 uniform in [low, high); ``rng`` is a NumPy or CuPy ``Generator``."""
    return rng.random(shape, dtype=np.float32) * np.float32(high - low) + np.float32(low)


def normal(rng: Any, shape: tuple, scale: float = 1.0):
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)


@dataclass(frozen=True)
class Benchmark:
    """A program, its sizes and its costs. ``dims[size]`` is a dict of named dimensions."""

    name: str
    fn: Callable
    dims: dict[str, dict[str, int]]
    make: Callable[[Any, dict], tuple]        # make(rng, dims) -> input arrays
    elements: Callable[[dict], tuple[int, int]]  # elements(dims) -> (input elements, output elements)
    flop_count: Callable[[dict], int]
    elementwise: bool = False                 # pure elementwise: cupy.fuse applies
    description: str = ""

    def inputs(self, rng: Any, size: str) -> tuple:
        return self.make(rng, self.dims[size])

    def bytes_moved(self, size: str) -> int:
        """Bytes that must move: every input read once, every output written once (float32)."""
        read, written = self.elements(self.dims[size])
        return F32 * (read + written)

    def flops(self, size: str) -> int:
        return self.flop_count(self.dims[size])

    def shape_text(self, size: str) -> str:
        return " ".join(f"{k}={v}" for k, v in self.dims[size].items())


def _rows(d):
    return d["rows"] * d["cols"]


# the row-wise programs (softmax, layernorm, RMSNorm): issue 4's targets are at 8192x8192
ROW_DIMS = {"tiny": {"rows": 4, "cols": 33}, "small": {"rows": 128, "cols": 1024},
            "large": {"rows": 8192, "cols": 8192}}
# rows shorter than a block (attention over 64 keys): a group of lanes of one warp per row
SHORT_ROW_DIMS = {"tiny": {"rows": 37, "cols": 5}, "small": {"rows": 2048, "cols": 64},
                  "large": {"rows": 1 << 19, "cols": 64}}


SOFTMAX = Benchmark(
    "softmax", softmax,
    dims=ROW_DIMS,
    make=lambda rng, d: (normal(rng, (d["rows"], d["cols"]), 3.0),),
    elements=lambda d: (_rows(d), _rows(d)),
    flop_count=lambda d: 5 * _rows(d),
    description="softmax over the last axis")

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in [
    Benchmark(
        "gelu", gelu,
        dims={"tiny": {"n": 1024}, "small": {"n": 1 << 17}, "large": {"n": 1 << 26}},
        make=lambda rng, d: (normal(rng, (d["n"],), 2.0),),
        elements=lambda d: (d["n"], d["n"]),
        flop_count=lambda d: 8 * d["n"],
        elementwise=True, description="GELU (tanh approximation)"),
    Benchmark(
        "black_scholes", black_scholes,
        dims={"tiny": {"n": 1024}, "small": {"n": 1 << 16}, "large": {"n": 1 << 24}},
        make=lambda rng, d: (uniform(rng, (d["n"],), 5.0, 30.0), uniform(rng, (d["n"],), 1.0, 100.0),
                             uniform(rng, (d["n"],), 0.25, 10.0)),
        elements=lambda d: (3 * d["n"], 2 * d["n"]),
        flop_count=lambda d: 2 * 21 * d["n"] + 20 * d["n"],  # two normal_cdf calls + the pricing formula
        elementwise=True, description="Black-Scholes call and put (A&S normal CDF)"),
    Benchmark(
        "adam", adam,
        dims={"tiny": {"n": 1024}, "small": {"n": 1 << 15}, "large": {"n": 1 << 24}},
        make=lambda rng, d: (normal(rng, (d["n"],)), normal(rng, (d["n"],), 0.01),
                             normal(rng, (d["n"],), 0.01), uniform(rng, (d["n"],), 0.0, 1e-4)),
        elements=lambda d: (4 * d["n"], 3 * d["n"]),
        flop_count=lambda d: 14 * d["n"],
        elementwise=True, description="Adam step (param, m, v out)"),
    SOFTMAX,
    Benchmark(
        "layernorm", layernorm,
        dims=ROW_DIMS,
        make=lambda rng, d: (normal(rng, (d["rows"], d["cols"]), 2.0) + np.float32(0.5),
                             normal(rng, (d["cols"],)), normal(rng, (d["cols"],))),
        elements=lambda d: (_rows(d) + 2 * d["cols"], _rows(d)),
        flop_count=lambda d: 7 * _rows(d) + 4 * d["rows"],
        description="layer norm over the last axis, weight and bias"),
    dataclasses.replace(SOFTMAX, name="softmax_short_rows", dims=SHORT_ROW_DIMS,
                        description="softmax over the last axis, 64 columns"),
    Benchmark(
        "batchnorm", batchnorm,
        dims={"tiny": {"batch": 5, "features": 4}, "small": {"batch": 128, "features": 1024},
              "large": {"batch": 32768, "features": 1024}},
        make=lambda rng, d: (normal(rng, (d["batch"], d["features"]), 2.0) + np.float32(0.5),
                             normal(rng, (d["features"],)), normal(rng, (d["features"],))),
        elements=lambda d: (d["batch"] * d["features"] + 2 * d["features"], d["batch"] * d["features"]),
        flop_count=lambda d: 8 * d["batch"] * d["features"],
        description="batch norm: statistics over the leading axis"),
    Benchmark(
        "rmsnorm", rmsnorm,
        dims=ROW_DIMS,
        make=lambda rng, d: (normal(rng, (d["rows"], d["cols"]), 2.0), normal(rng, (d["cols"],))),
        elements=lambda d: (_rows(d) + d["cols"], _rows(d)),
        flop_count=lambda d: 4 * _rows(d) + 3 * d["rows"],
        description="RMS norm over the last axis, weight"),
    Benchmark(
        "mycell", mycell,
        dims={"tiny": {"batch": 3, "features": 4}, "small": {"batch": 256, "features": 256},
              "large": {"batch": 16384, "features": 2048}},
        make=lambda rng, d: (normal(rng, (d["batch"], d["features"])), normal(rng, (d["batch"], d["features"])),
                             normal(rng, (d["features"], d["features"]), d["features"] ** -0.5),
                             normal(rng, (d["features"],))),
        elements=lambda d: (2 * d["batch"] * d["features"] + d["features"] ** 2 + d["features"],
                            d["batch"] * d["features"]),
        flop_count=lambda d: 2 * d["batch"] * d["features"] ** 2 + 3 * d["batch"] * d["features"],
        description="tanh(x @ w.T + b + h)"),
    Benchmark(
        "lstm", lstm,
        dims={"tiny": {"batch": 3, "inputs": 5, "hidden": 4}, "small": {"batch": 128, "inputs": 128, "hidden": 128},
              "large": {"batch": 16384, "inputs": 1024, "hidden": 1024}},
        make=lambda rng, d: (normal(rng, (d["batch"], d["inputs"])), normal(rng, (d["batch"], d["hidden"])),
                             normal(rng, (d["batch"], d["hidden"])),
                             normal(rng, (4 * d["hidden"], d["inputs"]), d["inputs"] ** -0.5),
                             normal(rng, (4 * d["hidden"], d["hidden"]), d["hidden"] ** -0.5),
                             normal(rng, (4 * d["hidden"],))),
        elements=lambda d: (d["batch"] * (d["inputs"] + 2 * d["hidden"]) + 4 * d["hidden"] * (d["inputs"] + d["hidden"])
                            + 4 * d["hidden"], 2 * d["batch"] * d["hidden"]),
        flop_count=lambda d: (2 * d["batch"] * 4 * d["hidden"] * (d["inputs"] + d["hidden"])
                              + 2 * 4 * d["batch"] * d["hidden"] + 18 * d["batch"] * d["hidden"]),
        description="LSTM cell: x @ w_ih.T + h @ w_hh.T + b, gates; h and c out"),
]}
