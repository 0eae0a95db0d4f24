"""Run a traced program on a kernel backend (``emulate``; ``cuda`` on a GPU) and on the ``numpy``
reference and compare every output.

Shared by the kernel program tests and the random elementwise graphs. Dtypes and shapes must be
equal; integers and bools exactly; floats bit-exact when no tolerance is given (NaN where NaN, the
sign of zero too), else within ``rtol`` of each value plus ``atol`` (NaN and +-inf where NumPy has
them in either case).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

import pytest

import gputrace
from gputrace.backends.nvrtc import gpu_available

# The kernel backends the program tests run on: emulate everywhere, cuda where there is a GPU.
KERNEL_BACKENDS = ["emulate", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not gpu_available(), reason="no CUDA GPU")])]

REDUCTIONS = ("sum", "mean", "prod", "max", "min", "argmax", "argmin", "any", "all", "var", "std")

# A few ulp for programs with transcendental functions (libm against NumPy's own SIMD code, per op).
TRANSCENDENTAL_RTOL = {np.dtype(np.float16): 2e-3, np.dtype(np.float32): 4e-6, np.dtype(np.float64): 1e-13}


def outputs_of(result: Any) -> list:
    return list(result) if isinstance(result, (tuple, list)) else [result]


def assert_arrays_agree(want: Any, got: Any, *, rtol: float = 0.0, atol: float = 0.0, what: str = "output") -> None:
    want, got = np.asarray(want), np.asarray(got)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, numpy gives {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, numpy gives {want.shape}"
    if want.dtype.kind != "f" or (rtol == 0 and atol == 0):
        np.testing.assert_array_equal(got, want, err_msg=what, strict=True)
        if want.dtype.kind == "f":
            numbers = ~np.isnan(want)
            wrong = np.signbit(got[numbers]) != np.signbit(want[numbers])
            assert not wrong.any(), f"{what}: the sign of zero differs at {int(wrong.sum())} positions"
        return
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol,
                               equal_nan=True, err_msg=what)


def trace(fn: Callable, inputs: Sequence[Any]) -> gputrace.TracedFunction:
    return gputrace.trace(fn, tuple(inputs), check_trace=False)


def run_on(traced: gputrace.TracedFunction, inputs: Sequence[Any], backend: str) -> list:
    """``traced`` run on ``backend``, its outputs as NumPy arrays (CuPy copies of the inputs for cuda)."""
    if backend == "cuda":
        import cupy
        on_gpu = lambda a: {k: cupy.asarray(v) for k, v in a.items()} if isinstance(a, dict) else cupy.asarray(a)  # noqa: E731
        outputs = outputs_of(traced.run(*[on_gpu(a) for a in inputs], backend="cuda"))
        return [o.get() if isinstance(o, cupy.ndarray) else o for o in outputs]
    return outputs_of(traced.run(*inputs, backend=backend))


def assert_backend_matches(backend: str, fn: Callable | gputrace.TracedFunction, inputs: Sequence[Any], *,
                           rtol: float = 0.0, atol: float = 0.0, scale_atol: bool = False) -> gputrace.TracedFunction:
    """``fn`` on ``backend`` agrees with the ``numpy`` backend on ``inputs``; returns the traced function.

    ``scale_atol``: ``atol`` is relative to each output's largest finite magnitude (cancellation in a
    chain of rounded operations loses digits of small results, not of the output's scale).
    """
    traced = fn if isinstance(fn, gputrace.TracedFunction) else trace(fn, inputs)
    want = outputs_of(traced.run(*inputs, backend="numpy"))
    got = run_on(traced, inputs, backend)
    assert len(got) == len(want)
    for k, (w, g) in enumerate(zip(want, got)):
        tolerance = atol
        if scale_atol and np.asarray(w).dtype.kind == "f":
            finite = np.abs(np.asarray(w, np.float64)[np.isfinite(w)])
            tolerance = atol * float(finite.max(initial=0.0))
        assert_arrays_agree(w, g, rtol=rtol, atol=tolerance, what=f"output {k} of {traced.name} on {backend}")
    return traced


def assert_emulate_matches(fn: Callable | gputrace.TracedFunction, inputs: Sequence[Any], **tolerances: Any):
    """:func:`assert_backend_matches` on ``emulate``."""
    return assert_backend_matches("emulate", fn, inputs, **tolerances)


def every_reduction(axis, keepdims, names=REDUCTIONS):
    """All reductions over one set of axes; they read ``x + x`` so that they share one kernel (its prologue)."""
    def reduce_all(x):
        y = x + x
        out = []
        for name in names:
            if name in ("argmax", "argmin") and isinstance(axis, tuple):
                continue  # NumPy's argmax takes one axis or None
            extra = {"ddof": 1} if name == "std" else {}
            out.append(getattr(np, name)(y, axis=axis, keepdims=keepdims, **extra))
        return tuple(out)
    reduce_all.__name__ = f"reduce_axis_{axis}_keepdims_{keepdims}".replace(" ", "").replace(",", "_")
    return reduce_all
