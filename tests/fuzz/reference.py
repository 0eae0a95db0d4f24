"""The high-precision reference: a program run again in long double, once as written and a few times perturbed.

NumPy's float results are one approximation of the program's real-number result, gputrace's another. The
reference runs every statement again on long double values, except that values NumPy computes exactly (integers,
views, ``x + y`` of exact floats) are taken from NumPy, so comparisons, indices and casts of exact values are the
program's own. The perturbed runs put each inexact operation's own error back in at random (a few ulp of the
result's dtype for the math library, operands off by an ulp for a sum or a product, which reorders them), so that
an element's spread over the runs says how far another correct implementation may land from the real result; the
last one also marks (NaN, or inf where NaN) the elements of a sum that may overflow in another order.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .program import (ACCUMULATING, EXACT, TRANSCENDENTAL, UNSTABLE, DType, Evaluation, Evaluator, NumpyScalar, Op,
                      Program, Ref, evaluate, render_statement)

WIDE = np.longdouble      # 64 significant bits on x86 (113 on aarch64): 11 more than float64's
SAMPLES = 3               # perturbed runs
LIBM_ULPS = 4             # error of a math-library function of an exact operand, in ulp of its result
# accumulations whose terms' magnitudes add up to the same accumulation of their operands' magnitudes
LINEAR_ACCUMULATIONS = frozenset("matmul @ dot einsum sum mean nansum nanmean cumsum nancumsum add.at".split())
# operations whose undefined elements (a NaN cast to an integer, the sign of a NaN) each perturbed run makes up anew
SCRAMBLED = frozenset(("astype", "signbit"))
# operations that round their result (others, such as negative, maximum or a view, only pass their operands'
# errors on)
ROUNDING = frozenset("add subtract multiply divide true_divide + - * / += -= *= square reciprocal sqrt deg2rad "
                     "rad2deg degrees radians astype".split())
# operations after which the sign of a zero is the implementation's choice (the order of a sum, which of
# -0.0 and 0.0 a maximum keeps or a sort puts first)
ZERO_SIGN_FREE = ACCUMULATING | frozenset(
    "max min nanmax nanmin ptp maximum minimum fmax fmin clip sort add.at cumsum cumprod nancumsum".split())


@dataclass
class Reference:
    """Per value of the program (inputs: their state after the call): the long double result, its perturbed
    results (None where the reference could not run the statement), whether a zero's sign is defined, and whether
    NumPy's undefined elements are left alike in every run."""
    exact: list[Any]
    samples: list[list[Any]]
    zero_sign_free: list[bool]
    unscrambled: list[bool]  # undefined in NumPy (a cast in an assignment, copysign of a NaN) and in every run alike


def evaluate_with_reference(program: Program) -> tuple[Evaluation, Reference | None]:
    """NumPy's evaluation of ``program`` and, where NumPy accepts the program, its long double reference."""
    inputs = program.make_inputs()
    runs = [_Run(program, inputs, None)] + [_Run(program, inputs, np.random.default_rng(s)) for s in
                                            range(1, SAMPLES + 1)]
    runs[-1].marks_overflow = True
    zero_sign_free = [False] * len(inputs)
    unscrambled = [False] * len(inputs)  # undefined where the perturbed runs do not make up other values

    def after_step(op: Op, numpy_side: Evaluator) -> None:
        index = len(numpy_side.values) - 1
        exact = numpy_side.exactness[index] == EXACT and not numpy_side.undefined[index]
        unstable = numpy_side.exactness[index] == UNSTABLE
        statement = render_statement(wide_op(op), program.names, program.names[index])
        code = compile(statement, "<reference>", "exec")
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            for run in runs:
                run.step(op, code, numpy_side.values[index] if exact else None, numpy_side.values[index], unstable)
        name = "" if op.form == "assign" and op.name != "add.at" else op.name
        free = name in ZERO_SIGN_FREE or any(zero_sign_free[i] for i in op.refs())
        made_undefined = numpy_side.undefined[index] and not any(numpy_side.undefined[i] for i in op.refs())
        unexplained = made_undefined and op.name not in SCRAMBLED or any(unscrambled[i] for i in op.refs())
        zero_sign_free.append(free)
        unscrambled.append(unexplained)
        if op.form == "assign" and op.copy_style == "inplace":
            zero_sign_free[op.args[0].index], unscrambled[op.args[0].index] = free, unexplained

    evaluation = evaluate(program, inputs, after_step)
    if evaluation.error is not None:
        return evaluation, None
    for run in runs:
        run.finish()
    return evaluation, Reference(runs[0].values, [[run.values[i] for run in runs[1:]]
                                                  for i in range(len(runs[0].values))], zero_sign_free,
                                  unscrambled)


def widen(x: Any) -> Any:
    """Floats as long double (arrays copied), everything else as it is."""
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        return x.astype(WIDE)
    if isinstance(x, np.floating):
        return WIDE(x)
    return np.array(x, copy=True) if isinstance(x, np.ndarray) else x


def _wide_argument(arg: Any) -> Any:
    """A float dtype argument as long double, a NumPy float scalar as a long double of the same value."""
    if isinstance(arg, DType) and np.dtype(arg.name).kind == "f":
        return DType("longdouble")
    if isinstance(arg, NumpyScalar) and np.dtype(arg.dtype).kind == "f":
        return NumpyScalar("longdouble", float(arg.numpy()))
    if isinstance(arg, tuple):
        return tuple(_wide_argument(a) for a in arg)
    return arg


def wide_op(op: Op) -> Op:
    return dataclasses.replace(op, args=_wide_argument(op.args),
                               kwargs=tuple((k, _wide_argument(v)) for k, v in op.kwargs))


class _Run:
    """One long double run: ``rng`` None for the unperturbed one."""

    def __init__(self, program: Program, inputs: tuple, rng: np.random.Generator | None):
        self.names = program.names
        self.inputs = len(inputs)
        self.namespace: dict[str, Any] = {"np": np, "s": program.scalar,
                                          **{n: widen(x) for n, x in zip(self.names, inputs)}}
        self.values: list[Any] = list(self.namespace[n] for n in self.names[:self.inputs])
        self.rng = rng
        self.broken = set()  # values (and inputs updated in place) the reference could not compute
        self.marks_overflow = False  # NaN where another order of accumulation may overflow (or meet inf * 0)

    def step(self, op: Op, code, exact_value: Any, numpy_value: Any, unstable: bool = False) -> None:
        """Run ``op`` (``code``: its statement on long doubles, compiled); ``exact_value``: NumPy's result where it
        is exactly computed (taken as it is); ``unstable``: the program's classing found that the operation may
        overflow in some order of evaluation."""
        name = self.names[len(self.values)]
        inplace = op.form == "assign" and op.copy_style == "inplace"
        target = self.names[op.args[0].index] if inplace else None
        if any(i in self.broken for i in op.refs()):
            return self._fail(op, name, target)
        namespace = self.namespace
        if self.rng is not None and exact_value is None and _accumulates(op):
            namespace = {**namespace, **self._jittered_operands(op, numpy_value)}
        try:
            exec(code, namespace)
            result = namespace[name]
        except Exception:
            if exact_value is None:
                return self._fail(op, name, target)
            result = None
        if exact_value is not None:
            result = _take_exact(result, exact_value)
        else:
            result = widen(result) if not isinstance(result, np.ndarray) or result.dtype.kind == "f" else result
            if self.rng is not None:
                result = self._undefined_scrambled(op, self._perturbed(op, result, numpy_value))
            result = _overflowed(result, numpy_value)
            if self.marks_overflow and _accumulates(op) and np.asarray(result).dtype.kind == "f":
                result = self._overflow_marked(op, code, name, result, numpy_value, unstable)
        self.namespace[name] = result
        if inplace:
            self.namespace[target] = result
        self.values.append(result)

    def _fail(self, op: Op, name: str, target: str | None) -> None:
        self.broken.add(len(self.values))
        if target is not None:
            self.broken.add(self.names.index(target))
        self.namespace[name] = None
        self.values.append(None)

    def _jittered_operands(self, op: Op, numpy_value: Any) -> dict[str, Any]:
        """The float operands of a sum or product, each element off by up to an ulp times the depth of a
        summation tree over them (what another order of accumulation may add up to)."""
        eps = _working_eps(numpy_value)
        jittered = {}
        for arg in op.args:
            if not isinstance(arg, Ref):
                continue
            x = self.namespace[self.names[arg.index]]
            if isinstance(x, (np.ndarray, np.floating)) and np.asarray(x).dtype.kind == "f":
                x = np.asarray(x)
                depth = 1 + math.log2(1 + max(x.size, 1) / max(np.size(numpy_value), 1))
                jittered[self.names[arg.index]] = x * (1 + depth * eps * self._signs(x.shape))
        return jittered

    def _overflow_marked(self, op: Op, code, name: str, result: Any, numpy_value: Any, unstable: bool) -> Any:
        """``result`` with NaN where the sum of the magnitudes of an element's terms would round to inf in NumPy's
        dtype (another order may overflow where NumPy's did not, or the other way round) and,
        for a contraction, where an infinity meets other terms (inf * 0 in one order, a finite product in
        another); for the other accumulations the program's classing decides for the whole value."""
        dtype = np.asarray(numpy_value).dtype
        if op.name not in LINEAR_ACCUMULATIONS:
            return _unlike(result) if unstable else result
        magnitudes, finite_magnitudes = {}, {}
        for arg in op.args:
            x = self.namespace[self.names[arg.index]] if isinstance(arg, Ref) else None
            if x is not None and np.asarray(x).dtype.kind == "f":
                magnitudes[self.names[arg.index]] = np.abs(np.asarray(x, dtype=WIDE))
                finite_magnitudes[self.names[arg.index]] = np.nan_to_num(magnitudes[self.names[arg.index]],
                                                                         nan=0.0, posinf=0.0)
        try:
            whole = _run_statement(code, {**self.namespace, **magnitudes}, name)
            finite = _run_statement(code, {**self.namespace, **finite_magnitudes}, name)
        except Exception:
            return _unlike(result)
        if op.name in ("mean", "nanmean"):  # the sum before the division may overflow
            finite = finite * (max(np.size(self.namespace[self.names[op.args[0].index]]), 1) / max(finite.size, 1))
        largest = np.finfo(dtype).max
        overflow = WIDE(largest) + (WIDE(largest) - WIDE(np.nextafter(largest, dtype.type(0)))) / 2  # rounds to inf
        risky = ~(finite < overflow)
        if op.name == "einsum":  # which sums einsum does before multiplying is its choice (and gputrace's)
            risky |= ~np.isfinite(whole)
        marked = np.where(risky, _unlike(result), result)
        return marked if np.ndim(result) else WIDE(marked)

    def _undefined_scrambled(self, op: Op, result: Any) -> Any:
        """``result`` with other values where NumPy leaves it undefined (a NaN or out-of-range float cast to an
        integer, the sign of a NaN): another machine's choice, so that what comes of it differs between runs."""
        value = np.asarray(result)
        if op.name not in SCRAMBLED or value.dtype.kind not in "biu" or not isinstance(op.args[0], Ref):
            return result
        x = np.asarray(self.namespace[self.names[op.args[0].index]])
        if x.dtype.kind != "f":
            return result
        if op.name == "signbit":
            undefined, flips = np.isnan(x), np.True_
        else:
            info = np.iinfo(value.dtype)
            undefined = ~np.isfinite(x) | (x <= info.min - 1) | (x >= info.max + 1)
            flips = self.rng.integers(1, info.max, size=value.shape, endpoint=True, dtype=value.dtype)
        if not undefined.any():
            return result
        scrambled = np.where(undefined, value ^ flips, value).astype(value.dtype)  # (never NumPy's value)
        return scrambled if isinstance(result, np.ndarray) else scrambled[()]

    def _perturbed(self, op: Op, result: Any, numpy_value: Any) -> Any:
        """``result`` off by the operation's own rounding (or the math library's few ulp), at random."""
        if np.asarray(result).dtype.kind != "f" or np.asarray(numpy_value).dtype.kind != "f":
            return result
        rounding = _eps(numpy_value) / 2
        value = np.asarray(result)
        representable = value.astype(np.asarray(numpy_value).dtype).astype(WIDE) == value
        if op.name in TRANSCENDENTAL or op.name == "mask_apply" or _accumulates(op):
            relative = max(LIBM_ULPS * _working_eps(numpy_value), rounding)
            exact = ~_accumulates(op) & representable & np.isin(value, (0, 1, -1))  # exp(0), cos(0), log(1)
        elif op.name in ROUNDING and op.form != "unop":  # (unary - and + are exact)
            relative, exact = rounding, representable  # correctly rounded: an exact result is exact everywhere
        else:
            return result
        noisy = value * (1 + np.where(exact, 0, relative) * self._signs(value.shape))
        return noisy if isinstance(result, np.ndarray) else WIDE(noisy)

    def _signs(self, shape) -> np.ndarray:
        return self.rng.choice(np.array([-1, 1], dtype=WIDE), size=shape)

    def finish(self) -> None:
        """Inputs hold their state after the call (updated in place by the program, or not)."""
        for i in range(self.inputs):
            self.values[i] = None if i in self.broken else self.namespace[self.names[i]]


def _unlike(result: Any) -> Any:
    """A marker that differs from ``result`` in kind wherever it is: NaN, or inf where ``result`` is NaN."""
    return np.where(np.isnan(result), WIDE(np.inf), WIDE(np.nan))


def _run_statement(code, namespace: dict, name: str) -> Any:
    exec(code, namespace)
    return np.asarray(namespace[name])


def _accumulates(op: Op) -> bool:
    return op.name in ACCUMULATING or op.name == "add.at"


def _eps(numpy_value: Any) -> float:
    """The relative rounding error of ``numpy_value``'s dtype (float64's for integers)."""
    dtype = np.asarray(numpy_value).dtype
    return float(np.finfo(dtype if dtype.kind == "f" else np.float64).eps)


def _working_eps(numpy_value: Any) -> float:
    """The relative error of the arithmetic ``numpy_value`` is computed in: float16 math and sums run in float32
    (in NumPy and in gputrace's kernels), and only the result is rounded to float16."""
    return min(_eps(numpy_value), float(np.finfo(np.float32).eps))


def _overflowed(result: Any, numpy_value: Any) -> Any:
    """``result`` with infinities where it is beyond the range of NumPy's dtype for it, as a correctly rounded
    computation in that dtype gives (exp(100) is inf in float32, and so is arcsinh of it)."""
    dtype = np.asarray(numpy_value).dtype
    if dtype.kind != "f" or np.asarray(result).dtype.kind != "f":
        return result
    rounded = np.asarray(result).astype(dtype)
    beyond = np.isinf(rounded) & np.isfinite(np.asarray(result))
    if not beyond.any():
        return result
    clamped = np.where(beyond, rounded.astype(WIDE), result)
    return clamped if isinstance(result, np.ndarray) else WIDE(clamped)


def _take_exact(result: Any, exact_value: Any) -> Any:
    """NumPy's exactly computed value in place of the reference's (written into the reference's array where it
    is one of the same type, so that views of it stay views)."""
    exact = widen(exact_value)
    if isinstance(result, np.ndarray) and result.flags.writeable and isinstance(exact, np.ndarray) and \
            result.shape == exact.shape and result.dtype == exact.dtype:
        result[...] = exact
        return result
    return exact
