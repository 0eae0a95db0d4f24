"""The differential runner: one program run eagerly by NumPy, then traced and run on every backend.

Every output is compared with NumPy's: the dtype and shape exactly; integers,
bools and exactly computed floats exactly (NaN where NaN, zero signs aside);
floats that went through the math library, a sum, a product or a matrix
product within a tolerance by dtype, scaled by the magnitude of the inexact
values they were computed from (a reassociated sum is off relative to its
terms, not to its result). A program NumPy rejects must be rejected by
gputrace with the same kind of error (ValueError, TypeError, IndexError, ...).
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

import gputrace

from .program import EXACT, INEXACT, UNSTABLE, Evaluation, Program, evaluate

# relative error allowed per dtype for inexact results: a few ulp of libm, float16 rounding after each op
RTOL = {np.dtype(np.float16): 5e-3, np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}
ERROR_KINDS = (IndexError, ValueError, TypeError, OverflowError, ZeroDivisionError, FloatingPointError)


@dataclass(frozen=True)
class Mismatch:
    """One way gputrace disagreed with NumPy: where (trace or a backend), which output, what."""
    stage: str
    description: str
    output: int | None = None

    def __str__(self) -> str:
        where = f"output {self.output} on {self.stage}" if self.output is not None else self.stage
        return f"{where}: {self.description}"


def available_backends(requested: Sequence[str]) -> tuple[str, ...]:
    """``requested`` without ``cuda`` where there is no GPU."""
    if "cuda" not in requested:
        return tuple(requested)
    from gputrace.backends.nvrtc import gpu_available
    return tuple(b for b in requested if b != "cuda" or gpu_available())


# ----------------------------------------------------------------------------- comparing


def error_kinds(error: BaseException) -> set[type]:
    return {kind for kind in ERROR_KINDS if isinstance(error, kind)}


def describe_error(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:200]}"


def to_host(x: Any) -> np.ndarray:
    if hasattr(x, "get") and not isinstance(x, (np.ndarray, np.generic)):
        x = x.get()
    return np.asarray(x)


def tolerance_scale(program: Program, evaluation: Evaluation, index: int) -> tuple[float, int, float]:
    """The largest finite magnitude among the inexact values ``index`` comes from, and their operands;
    the longest sum among them (error grows with the number of terms); and the relative tolerance of the
    least precise of them (a float32 sum cast to float64 keeps its float32 error)."""
    n_inputs = len(program.inputs)
    scale, terms, rtol = 0.0, 1, 0.0
    for i in program.ancestors(index):
        if evaluation.exactness[i] != INEXACT:
            continue
        rtol = max(rtol, RTOL.get(np.asarray(evaluation.values[i]).dtype, 0.0))
        related = [i]
        if i >= n_inputs:
            op = program.ops[i - n_inputs]
            related += op.refs()
            terms = max([terms] + [int(np.size(evaluation.values[r])) for r in op.refs()])
            scale = max([scale] + [abs(a) for a in op.args if isinstance(a, (int, float)) and math.isfinite(a)])
        for r in related:
            values = np.asarray(evaluation.values[r])
            if values.dtype.kind in "fiu" and values.size:
                finite = np.abs(values[np.isfinite(values)].astype(np.float64))
                scale = max(scale, float(finite.max(initial=0.0)))
    return scale, terms, rtol


def first_position(mask: np.ndarray) -> tuple:
    return tuple(int(i) for i in np.argwhere(mask)[0]) if mask.ndim else ()


def compare_output(expected: Any, actual: Any, exactness: str, scale: float = 0.0, terms: int = 1,
                   source_rtol: float = 0.0) -> str | None:
    """None when ``actual`` is NumPy's ``expected`` up to what ``exactness`` allows, else what differs.
    ``source_rtol``: the tolerance of a less precise inexact value the output was computed from."""
    e, a = np.asarray(expected), to_host(actual)
    if e.dtype != a.dtype:
        return f"dtype {a.dtype}, NumPy gives {e.dtype}"
    if e.shape != a.shape:
        return f"shape {a.shape}, NumPy gives {e.shape}"
    if exactness == UNSTABLE or e.size == 0:
        return None
    if e.dtype.kind in "biu":
        wrong = e != a
        if wrong.any():
            at = first_position(wrong)
            return f"{int(wrong.sum())} of {e.size} elements differ, first at {at}: {a[at]!r}, NumPy {e[at]!r}"
        return None
    e64, a64 = e.astype(np.float64), a.astype(np.float64)
    nan_e, nan_a = np.isnan(e64), np.isnan(a64)
    if (nan_e != nan_a).any():
        at = first_position(nan_e != nan_a)
        return f"NaN differs at {int((nan_e != nan_a).sum())} positions, first at {at}: {a[at]!r}, NumPy {e[at]!r}"
    if exactness == EXACT:
        wrong = ~nan_e & (e64 != a64)
        if wrong.any():
            at = first_position(wrong)
            return (f"{int(wrong.sum())} of {e.size} exactly computed elements differ, first at {at}: "
                    f"{a[at]!r}, NumPy {e[at]!r}")
        return None
    rtol = max(RTOL[e.dtype], source_rtol)
    big = np.finfo(e.dtype).max / 2
    inf_e, inf_a = np.isinf(e64), np.isinf(a64)
    overflowed = (inf_e != inf_a) & (np.maximum(np.abs(np.where(inf_e, a64, e64)), 0) >= big)
    both_finite = ~inf_e & ~inf_a & ~nan_e
    allowed = rtol * np.abs(e64) + rtol * scale * (1 + math.sqrt(terms))
    wrong = (inf_e != inf_a) & ~overflowed | (inf_e & inf_a & (e64 != a64)) | \
        (both_finite & (np.abs(e64 - a64) > allowed))
    if wrong.any():
        at = first_position(wrong)
        return (f"{int(wrong.sum())} of {e.size} elements beyond tolerance (rtol {rtol:g}, scale {scale:.3g}, "
                f"{terms} terms), first at {at}: {a[at]!r}, NumPy {e[at]!r}")
    return None


# ----------------------------------------------------------------------------- running


def run_program(program: Program, backends: Sequence[str] = ("numpy", "emulate")) -> list[Mismatch]:
    """Every disagreement between NumPy and gputrace on ``program`` (empty: all agree)."""
    evaluation = evaluate(program)
    inputs = program.make_inputs()
    pristine = [x.copy() for x in inputs]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            traced = gputrace.trace(program.function(), program.arguments(inputs))
        except Exception as error:
            if isinstance(error, gputrace.TracingCheckError) and evaluation.error is None and any(
                    evaluation.undefined[i] or evaluation.exactness[i] == UNSTABLE for i in program.outputs):
                return []  # trace's own check met a value NumPy leaves undefined (an out-of-range cast), or one
                # that may differ in any order of evaluation (an overflow in one order only)
            return [_rejection_mismatch(evaluation, error)] if not _same_rejection(evaluation, error) else []
        if evaluation.error is not None:
            return [Mismatch("trace", f"NumPy raises {describe_error(evaluation.error)} at "
                                      f"`{evaluation.failed_statement}`, gputrace.trace accepted the program")]
        mismatches = []
        changed = [i for i, (x, y) in enumerate(zip(inputs, pristine)) if not _identical(x, y)]
        if changed:
            mismatches.append(Mismatch("trace", f"tracing modified input arrays {changed}"))
        for backend in backends:  # each on fresh inputs: a program may update its inputs in place
            mismatches += _run_backend(program, evaluation, traced, program.make_inputs(), backend)
        # the traced program on other values of the same types: nothing of the first values may be baked in
        mismatches += _run_variant(program.with_other_values(), traced, backends, "other input values")
        # and on inputs of other shapes (same dtypes and ndim), compiled anew on the reference backend
        mismatches += _run_variant(program.with_other_shapes(), traced, ("numpy",), "other input shapes")
    return mismatches


def _run_variant(variant: Program, traced, backends: Sequence[str], what: str) -> list[Mismatch]:
    """Run ``traced`` on ``variant``'s inputs: NumPy's rejections must be gputrace's, results must agree."""
    evaluation = evaluate(variant)
    mismatches = []
    if evaluation.error is not None and variant.has_value_dependent_errors():
        return []  # e.g. integer ** negative: NumPy checks values, a compiled kernel does not
    for backend in backends:
        if evaluation.error is not None:
            try:
                traced.run(*variant.arguments(variant.make_inputs()), backend=backend)
            except Exception as error:
                if not _same_rejection(evaluation, error):
                    rejection = _rejection_mismatch(evaluation, error)
                    mismatches.append(Mismatch(f"{backend} ({what})", rejection.description))
                continue
            mismatches.append(Mismatch(f"{backend} ({what})", f"NumPy raises {describe_error(evaluation.error)} at "
                                       f"`{evaluation.failed_statement}`, gputrace ran the program"))
            continue
        mismatches += [dataclasses.replace(m, stage=f"{m.stage} ({what})") for m in
                       _run_backend(variant, evaluation, traced, variant.make_inputs(), backend)]
    return mismatches


def _same_rejection(evaluation: Evaluation, error: BaseException) -> bool:
    return evaluation.error is not None and bool(error_kinds(evaluation.error) & error_kinds(error))


def _rejection_mismatch(evaluation: Evaluation, error: BaseException) -> Mismatch:
    if evaluation.error is None:
        return Mismatch("trace", f"gputrace.trace raised {describe_error(error)}; NumPy computes the program")
    return Mismatch("trace", f"NumPy raises {describe_error(evaluation.error)} at `{evaluation.failed_statement}`, "
                             f"gputrace.trace raised {describe_error(error)}")


def _identical(x: np.ndarray, y: np.ndarray) -> bool:
    return x.shape == y.shape and x.tobytes() == y.tobytes()


def _run_backend(program: Program, evaluation: Evaluation, traced, inputs, backend: str) -> list[Mismatch]:
    """Run ``traced`` on ``inputs`` (fresh arrays of ``program``) and compare its outputs, and the inputs after the
    call, with what NumPy computed and left in its own copies of the inputs."""
    pristine = [x.copy() for x in inputs]
    try:
        got = traced.run(*program.arguments(inputs), backend=backend)
    except Exception as error:
        return [Mismatch(backend, f"raised {describe_error(error)}")]
    expected = evaluation.outputs(program)
    if not isinstance(got, tuple) or len(got) != len(expected):
        return [Mismatch(backend, f"returned {type(got).__name__} of {len(got)} values, NumPy {len(expected)}")]
    mismatches = []
    for k, (index, want, have) in enumerate(zip(program.outputs, expected, got)):
        exactness = evaluation.exactness[index]
        if evaluation.undefined[index]:
            exactness = UNSTABLE  # NumPy's own result is undefined (NaN or out-of-range cast to an integer)
        scale, terms, source_rtol = tolerance_scale(program, evaluation, index) if exactness == INEXACT else (0, 1, 0)
        difference = compare_output(want, have, exactness, scale, terms, source_rtol)
        if difference:
            mismatches.append(Mismatch(backend, f"{program.names[index]}: {difference}", k))
    return mismatches + _compare_inputs_after(program, evaluation, inputs, pristine, backend)


def _compare_inputs_after(program: Program, evaluation: Evaluation, inputs, pristine, backend: str) -> list[Mismatch]:
    """Inputs NumPy left alone must be untouched (bit for bit); inputs the program updated in place must hold
    what NumPy left in its copies, compared as outputs are."""
    mismatches = []
    for i, (after, before) in enumerate(zip(inputs, pristine)):
        want = evaluation.values[i]
        if _identical(np.asarray(want), before):
            if not _identical(after, before):
                mismatches.append(Mismatch(backend, f"input array {program.names[i]} was modified"))
            continue
        exactness = UNSTABLE if evaluation.undefined[i] else evaluation.exactness[i]
        scale, terms, source_rtol = tolerance_scale(program, evaluation, i) if exactness == INEXACT else (0, 1, 0)
        difference = compare_output(want, after, exactness, scale, terms, source_rtol)
        if difference:
            mismatches.append(Mismatch(backend, f"input {program.names[i]} after the call (updated in place): "
                                                f"{difference}"))
    return mismatches
