"""The differential runner: one program run eagerly by NumPy, then traced and run on every backend.

Every output is compared with NumPy's: the dtype and shape exactly; integers, bools and exactly computed floats
bit for bit (NaN where NaN, the sign of a zero too unless a sum, maximum or sort made it); floats that went
through the math library or an accumulation element by element against a long double run of the same program
(reference.py), within K times what NumPy's own value or a perturbed run is off there, plus a few ulp. A program
NumPy rejects must be rejected by gputrace with the same kind of error (ValueError, TypeError, IndexError, ...).
"""
from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

import gputrace

from .program import EXACT, Evaluation, Program
from .reference import Reference, evaluate_with_reference

K = 4      # an element may be K times as far from the reference as NumPy's value or a perturbed run is
ULPS = 4   # ... plus a few ulp of the output's dtype at the element's magnitude
# K times NumPy's own error beyond this share of the value: NumPy is far off there, the element counts as unchecked
LOOSE = {np.dtype(np.float16): 2 ** -5, np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-3}
MAX_UNCHECKED = 0.05  # a run with more unchecked outputs than this fails: its green would say little
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


@dataclass
class Expected:
    """What an output (or an input updated in place) must be: NumPy's value, how it was computed, and the long
    double reference with its perturbed runs (reference.py)."""
    value: Any
    exactness: str = EXACT
    undefined: bool = False      # NumPy's result comes from an undefined one (a NaN or out-of-range cast to an
                                 # integer): floats unchecked, integers where every run agrees (if scrambled)
    exact: Any = None            # the reference; None where it could not be computed
    samples: Sequence[Any] = ()
    zero_sign_free: bool = False  # a sum, maximum, sort... on the way: the sign of a zero is not compared
    unscrambled: bool = False    # undefined, and alike in every run of the reference (reference.SCRAMBLED)


CLASSES = ("exact", "bound", "unchecked")


@dataclass
class Checks:
    """How thoroughly a run's outputs were compared: per output and per element, checked exactly (bit for bit,
    NaN where NaN), within a bound of the reference, or unchecked (NumPy itself is far off, or undefined)."""
    outputs: Counter = dataclasses.field(default_factory=Counter)
    elements: Counter = dataclasses.field(default_factory=Counter)

    def record(self, classes: np.ndarray) -> None:
        counts = {c: int((classes == c).sum()) for c in CLASSES}
        self.elements.update(counts)
        self.outputs["empty" if not classes.size else "unchecked" if counts["unchecked"] else
                     "bound" if counts["bound"] else "exact"] += 1

    def unchecked_share(self) -> float:
        return self.outputs["unchecked"] / max(sum(self.outputs.values()), 1)

    def summary(self) -> str:
        outputs = ", ".join(f"{self.outputs[c]} {c}" for c in CLASSES + ("empty",))
        elements = ", ".join(f"{self.elements[c]} {c}" for c in CLASSES)
        return (f"{sum(self.outputs.values())} outputs: {outputs} ({100 * self.unchecked_share():.1f}% unchecked); "
                f"elements: {elements}")


def first_position(mask: np.ndarray) -> tuple:
    return tuple(int(i) for i in np.argwhere(mask)[0]) if mask.ndim else ()


def compare_output(expected: Expected, actual: Any, checks: Checks | None = None) -> str | None:
    """None when ``actual`` is what ``expected`` allows, else what differs; ``checks`` counts how each element
    was compared."""
    e, a = np.asarray(expected.value), to_host(actual)
    if e.dtype != a.dtype:
        return f"dtype {a.dtype}, NumPy gives {e.dtype}"
    if e.shape != a.shape:
        return f"shape {a.shape}, NumPy gives {e.shape}"
    classes = np.full(e.shape, "unchecked", dtype=object)
    wrong, bound = np.zeros(e.shape, bool), None
    if expected.undefined and (e.dtype.kind == "f" or expected.unscrambled):
        pass
    elif expected.exactness == EXACT and not expected.undefined:
        classes[...], wrong = "exact", _differs(e, a, zero_signs=not expected.zero_sign_free)
    elif e.dtype.kind != "f":  # a discontinuous function of inexact values, or an integer from an undefined cast
        # (which each perturbed run makes up anew): where every run agrees with NumPy
        robust = _all_runs_agree(expected, e)
        classes[robust], wrong = "exact", robust & (e != a)
    else:
        classes, wrong, bound = _within_bound(expected, e, a)
    if checks is not None:
        checks.record(classes)
    if not wrong.any():
        return None
    at = first_position(wrong)
    how = f"beyond the bound {bound[at]:.3g} of the reference {_rounded(expected.exact, e.dtype)[at]!r}" \
        if bound is not None and classes[at] != "exact" else "differ"
    return f"{int(wrong.sum())} of {e.size} elements {how}, first at {at}: {a[at]!r}, NumPy {e[at]!r}"


def _differs(e: np.ndarray, a: np.ndarray, zero_signs: bool) -> np.ndarray:
    """Elements not bit for bit alike (NaN payloads and signs aside; zero signs where ``zero_signs``)."""
    if e.dtype.kind != "f":
        return e != a
    nan = np.isnan(e)
    wrong = (nan != np.isnan(a)) | (~nan & (e != a))
    return wrong | (zero_signs & (e == 0) & (a == 0) & (np.signbit(e) != np.signbit(a)))


def _rounded(x: Any, dtype: np.dtype) -> np.ndarray:
    return np.asarray(x).astype(dtype)


def _reference_runs(expected: Expected, shape: tuple, dtype: np.dtype) -> list[np.ndarray] | None:
    """The reference and its perturbed runs, each rounded to ``dtype``; None if one is missing or misshapen."""
    runs = [expected.exact, *expected.samples]
    if any(r is None or np.shape(r) != shape for r in runs):
        return None
    return [_rounded(r, dtype) for r in runs]


def _all_runs_agree(expected: Expected, e: np.ndarray) -> np.ndarray:
    runs = _reference_runs(expected, e.shape, e.dtype)
    if runs is None:
        return np.zeros(e.shape, bool)
    return np.logical_and.reduce([r == e for r in runs]) if runs else np.ones(e.shape, bool)


def ulp(x: np.ndarray) -> np.ndarray:
    """The spacing of ``x``'s dtype at each element's magnitude (below it: finite at the dtype's largest value), in
    float64."""
    magnitude = np.abs(x)
    below = np.abs(magnitude - np.nextafter(magnitude, magnitude.dtype.type(0)))
    return np.maximum(below, np.finfo(x.dtype).smallest_subnormal).astype(np.float64)


def _pattern(x: np.ndarray) -> np.ndarray:
    """0 finite, 1 NaN, 2 +inf, 3 -inf."""
    return np.where(np.isnan(x), 1, np.where(x == np.inf, 2, np.where(x == -np.inf, 3, 0)))


def _within_bound(expected: Expected, e: np.ndarray, a: np.ndarray):
    """Per element: its class, whether ``a`` is wrong there, and the bound it is held to.

    Where NumPy, the reference and its perturbed runs agree on NaN and infinities, ``a`` must too (elsewhere the
    element is unchecked: ill-conditioned, such as a sum that overflows in one order only); a finite element must
    lie within K times the largest distance from the reference of NumPy's value or of a perturbed run's, plus ULPS
    ulp; where K times NumPy's own distance exceeds ``LOOSE`` of the value (NumPy itself is far off: cancellation)
    the element counts as unchecked, though it is still held to the bound."""
    classes = np.full(e.shape, "unchecked", dtype=object)
    runs = _reference_runs(expected, e.shape, e.dtype)
    if runs is None:
        return classes, np.zeros(e.shape, bool), None
    ref, e64, a64 = runs[0].astype(np.float64), e.astype(np.float64), a.astype(np.float64)
    pattern = _pattern(ref)
    agree = np.logical_and.reduce([_pattern(x) == pattern for x in [e] + runs[1:]])
    special = agree & (pattern != 0)
    finite = agree & (pattern == 0)
    with np.errstate(all="ignore"):
        numpy_off = np.abs(e64 - ref)
        spread = np.maximum.reduce([numpy_off] + [np.abs(x.astype(np.float64) - ref) for x in runs[1:]])
        bound = K * spread + ULPS * ulp(runs[0])
        off = np.abs(a64 - ref)
        loose = K * numpy_off > LOOSE[e.dtype] * np.maximum(np.abs(ref), np.finfo(e.dtype).smallest_normal)
    wrong = special & (_pattern(a) != pattern) | finite & ~(off <= bound)
    zeros = finite & np.logical_and.reduce([(x == 0) & (np.signbit(x) == np.signbit(e)) for x in [e] + runs])
    if not expected.zero_sign_free:
        wrong |= zeros & ((a != 0) | (np.signbit(a) != np.signbit(e)))
    classes[special | zeros] = "exact"
    classes[finite & ~zeros & ~loose] = "bound"
    return classes, wrong, np.where(finite, bound, 0.0)


# ----------------------------------------------------------------------------- running


def run_program(program: Program, backends: Sequence[str] = ("numpy", "emulate"),
                checks: Checks | None = None) -> list[Mismatch]:
    """Every disagreement between NumPy and gputrace on ``program`` (empty: all agree); ``checks`` counts how the
    outputs of the first backend on the program's own inputs were compared."""
    evaluation, ref = evaluate_with_reference(program)
    inputs = program.make_inputs()
    pristine = [x.copy() for x in inputs]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            traced = gputrace.trace(program.function(), program.arguments(inputs))
        except gputrace.TracingCheckError as error:
            if evaluation.error is not None:
                return [_rejection_mismatch(evaluation, error)]
            # trace's own check (eager vs traced on these inputs, one tolerance for every program) disagreed: the
            # element-wise comparison below, which knows how ill-conditioned each element is, decides
            inputs = program.make_inputs()
            traced = gputrace.trace(program.function(), program.arguments(inputs), check_trace=False)
        except Exception as error:
            return [_rejection_mismatch(evaluation, error)] if not _same_rejection(evaluation, error) else []
        if evaluation.error is not None:
            return [Mismatch("trace", f"NumPy raises {describe_error(evaluation.error)} at "
                                      f"`{evaluation.failed_statement}`, gputrace.trace accepted the program")]
        mismatches = []
        changed = [i for i, (x, y) in enumerate(zip(inputs, pristine)) if not _identical(x, y)]
        if changed:
            mismatches.append(Mismatch("trace", f"tracing modified input arrays {changed}"))
        expected = expectations(evaluation, ref)
        for k, backend in enumerate(backends):  # each on fresh inputs: a program may update its inputs in place
            mismatches += _run_backend(program, expected, traced, program.make_inputs(), backend,
                                       checks if k == 0 else None)
        # the traced program on other values of the same types: nothing of the first values may be baked in
        mismatches += _run_variant(program.with_other_values(), traced, backends, "other input values")
        # and on inputs of other shapes (same dtypes and ndim), compiled anew on the reference backend
        mismatches += _run_variant(program.with_other_shapes(), traced, ("numpy",), "other input shapes")
    return mismatches


def expectations(evaluation: Evaluation, ref: Reference) -> list[Expected]:
    """What each value of a program NumPy accepts must be (inputs: as the call leaves them)."""
    return [Expected(value, exactness, undefined, ref.exact[i], ref.samples[i], ref.zero_sign_free[i],
                     ref.unscrambled[i])
            for i, (value, exactness, undefined) in
            enumerate(zip(evaluation.values, evaluation.exactness, evaluation.undefined))]


def _run_variant(variant: Program, traced, backends: Sequence[str], what: str) -> list[Mismatch]:
    """Run ``traced`` on ``variant``'s inputs: NumPy's rejections must be gputrace's, results must agree."""
    evaluation, ref = evaluate_with_reference(variant)
    mismatches = []
    if evaluation.error is not None and variant.has_value_dependent_errors():
        return []  # e.g. integer ** negative: NumPy checks values, a compiled kernel does not
    expected = expectations(evaluation, ref) if evaluation.error is None else []
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
                       _run_backend(variant, expected, traced, variant.make_inputs(), backend)]
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


def _run_backend(program: Program, expected: list[Expected], traced, inputs, backend: str,
                 checks: Checks | None = None) -> list[Mismatch]:
    """Run ``traced`` on ``inputs`` (fresh arrays of ``program``) and compare its outputs, and the inputs after the
    call, with what NumPy computed and left in its own copies of the inputs."""
    pristine = [x.copy() for x in inputs]
    try:
        got = traced.run(*program.arguments(inputs), backend=backend)
    except Exception as error:
        return [Mismatch(backend, f"raised {describe_error(error)}")]
    if not isinstance(got, tuple) or len(got) != len(program.outputs):
        return [Mismatch(backend, f"returned {type(got).__name__} of {len(got)} values, "
                                  f"NumPy {len(program.outputs)}")]
    mismatches = []
    for k, (index, have) in enumerate(zip(program.outputs, got)):
        difference = compare_output(expected[index], have, checks)
        if difference:
            mismatches.append(Mismatch(backend, f"{program.names[index]}: {difference}", k))
    return mismatches + _compare_inputs_after(program, expected, inputs, pristine, backend, checks)


def _compare_inputs_after(program: Program, expected: list[Expected], inputs, pristine, backend: str,
                          checks: Checks | None) -> list[Mismatch]:
    """Inputs NumPy left alone must be untouched (bit for bit); inputs the program updated in place must hold
    what NumPy left in its copies, compared as outputs are."""
    mismatches = []
    for i, (after, before) in enumerate(zip(inputs, pristine)):
        if _identical(np.asarray(expected[i].value), before):
            if not _identical(after, before):
                mismatches.append(Mismatch(backend, f"input array {program.names[i]} was modified"))
            continue
        difference = compare_output(expected[i], after, checks)
        if difference:
            mismatches.append(Mismatch(backend, f"input {program.names[i]} after the call (updated in place): "
                                                f"{difference}"))
    return mismatches
