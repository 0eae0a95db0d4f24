"""The mutation check: break gputrace on purpose, one small edit at a time, and see a deterministic test fail.

``python -m tests.mutation`` (options: ``--only TEXT``, ``--jobs N``, ``--list``). Mutants:
- every elementwise op of the op table rendered with another op's device function of the same arity
  and dtype class (NumPy loops: the partner has every loop of the op, with the same output types);
  where and clip, the only three-operand ops, with their operands swapped (astype is every cast's
  render_cast, not a device function of the table);
- every reduction's identity perturbed (max/min's initial= ignored, or one more than given), and its
  finishing step (mean's division, var's and std's ddof and two-pass correction, std's square root,
  argmax's index; the rest: the result rounded through
  float32), plus a few edits of the shared combining code.
Each mutant is a text edit of a copy of the source tree; the copy's tests run in a fresh process
(``pytest -x --slow``: stopping at the first failure, the kernels the edit leaves alone shared through
one kernel cache) and must fail. A run first checks that the unmutated copy passes. Survivors are
either listed in EXPLAINED (equivalent on every input the tests can give, with the reason) or fail the
check (exit status 1).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("gputrace", "cuda_templates", "tests", "benchmarks", "pyproject.toml")
OP_TESTS = ("tests/codegen/test_op_table_kernels.py",)
REDUCTION_TESTS = ("tests/codegen/test_reduction_rows.py",
                   "tests/codegen/test_emulate_programs.py::test_float32_sums_are_at_least_as_accurate_as_numpy",
                   "tests/codegen/test_emulate_programs.py::test_var_and_std_of_few_long_rows_are_split_over_blocks")

INITIAL_TESTS = (*REDUCTION_TESTS, "tests/codegen/test_emulate_programs.py::test_max_and_min_start_at_initial")


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str            # relative to the repository root
    old: str             # text that occurs exactly once in the file
    new: str
    tests: tuple[str, ...]

    def apply(self, root: Path) -> None:
        file = root / self.path
        text = file.read_text()
        if text.count(self.old) != 1:
            raise ValueError(f"{self.name}: {self.old!r} occurs {text.count(self.old)} times in {self.path}")
        file.write_text(text.replace(self.old, self.new))


# ----------------------------------------------------------------------------- the op table

# The nearest partner of each op: the one whose results differ on the fewest inputs (NaN handling, a sign,
# rounding direction, a boundary), so that a kill says the tests look closely.
PARTNERS = {
    "add": "multiply", "subtract": "add", "multiply": "add", "floor_divide": "remainder", "remainder": "fmod",
    "fmod": "remainder", "power": "multiply", "divide": "floor_divide", "negative": "positive", "positive": "floor",
    "absolute": "trunc", "sign": "negative", "square": "absolute", "reciprocal": "sign",
    "exp": "exp2", "exp2": "exp", "expm1": "exp", "log": "log1p", "log2": "log10", "log10": "log2", "log1p": "log",
    "sqrt": "cbrt", "cbrt": "sqrt", "sin": "cos", "cos": "sin", "tan": "arctan", "arcsin": "arccos",
    "arccos": "arcsin", "arctan": "tanh", "sinh": "arcsinh", "cosh": "sinh", "tanh": "arctan", "arcsinh": "sinh",
    "arccosh": "arcsinh", "arctanh": "tanh", "arctan2": "hypot", "hypot": "arctan2", "floor": "ceil",
    "ceil": "trunc", "trunc": "floor", "rint": "trunc", "maximum": "fmax", "minimum": "fmin", "fmax": "maximum",
    "fmin": "minimum", "equal": "less_equal", "not_equal": "less", "less": "less_equal", "less_equal": "less",
    "greater": "greater_equal", "greater_equal": "greater", "logical_and": "logical_or",
    "logical_or": "logical_xor", "logical_xor": "not_equal", "logical_not": "isnan", "bitwise_and": "bitwise_or",
    "bitwise_or": "bitwise_xor", "bitwise_xor": "bitwise_or", "invert": "trunc", "left_shift": "right_shift",
    "right_shift": "left_shift", "isnan": "isinf", "isinf": "isfinite", "isfinite": "isnan", "signbit": "isnan",
    "copysign": "heaviside", "heaviside": "copysign", "logaddexp": "logaddexp2", "logaddexp2": "logaddexp",
    "deg2rad": "rad2deg", "rad2deg": "deg2rad",
}
# where and clip have no partner of their arity that compiles for their operands: their operands swapped
# (where's device function is named by render_op itself, which casts its condition to bool)
THREE_OPERANDS = {"clip": "[](auto x, auto lo, auto hi) { return gt_clip(x, hi, lo); }"}
WHERE = Mutant("where with operands swapped", "gputrace/codegen/elementwise.py", 'return f"gt_where({cond}, {a}, {b})"',
               'return f"gt_where({cond}, {b}, {a})"', OP_TESTS)


def numpy_loops(name: str) -> tuple[int, dict]:
    """(inputs, {input dtypes: output dtypes}) of a ufunc's loops over the dtypes gputrace supports."""
    ufunc = getattr(np, "true_divide" if name == "divide" else name)
    loops = {}
    for signature in ufunc.types:
        ins, outs = signature.split("->")
        if all(c in "?bBhHiIlLqQefd" for c in ins + outs):
            loops[tuple(np.dtype(c).name for c in ins)] = tuple(np.dtype(c).name for c in outs)
    return ufunc.nin, loops


def same_class(op: str, partner: str) -> bool:
    """Whether ``partner`` has every loop of ``op``, with the same output dtypes (so it compiles in its place)."""
    (n, loops), (m, theirs) = numpy_loops(op), numpy_loops(partner)
    return n == m and all(theirs.get(ins) == outs for ins, outs in loops.items())


def op_mutants() -> list[Mutant]:
    from gputrace import ops
    anchor = "# ----------------------------------------------------------------------------- inference entry point"
    mutants = []
    for op in sorted(ops.OPS.values(), key=lambda o: o.name):
        if op.category != ops.ELEMENTWISE or op.cuda is None or op.name == "astype":
            continue  # astype is rendered by render_cast (every operand's cast), not by its device function
        if op.name == "where":
            mutants.append(WHERE)
            continue
        if op.name in THREE_OPERANDS:
            cuda = THREE_OPERANDS[op.name]
            what = f"{op.name} with operands swapped"
        else:
            partner = PARTNERS[op.name]
            assert same_class(op.name, partner), f"{partner} cannot stand for {op.name}"
            cuda = ops.lookup(f"np::{partner}").cuda
            what = f"{op.name} rendered as {partner}"
        edit = (f"import dataclasses as _mutation\n"
                f"OPS[{op.kind!r}] = _mutation.replace(OPS[{op.kind!r}], cuda={cuda!r})\n\n\n")
        mutants.append(Mutant(what, "gputrace/ops.py", anchor, edit + anchor, OP_TESTS))
    return mutants


# ----------------------------------------------------------------------------- reductions

REDUCTION = "gputrace/codegen/reduction.py"
HEADER = "cuda_templates/gputrace_reduce.cuh"
IDENTITY_AT = "    name, ctype = node.op, compute_type(acc)\n"
FINISH_AT = "        out_dtype = node.output.type.dtype\n        source_dtype = np.dtype(np.int64) if is_arg else acc\n"
IDENTITIES = {  # a wrong start for each reduction, every dtype at once
    "sum": 'f"gt_cast<{ctype}>(1)"', "mean": 'f"gt_cast<{ctype}>(1)"', "var": 'f"gt_cast<{ctype}>(1)"',
    "std": 'f"gt_cast<{ctype}>(1)"', "prod": 'f"gt_cast<{ctype}>(2)"', "max": 'f"gt_cast<{ctype}>(0)"',
    "min": 'f"gt_cast<{ctype}>(0)"', "any": '"true"', "all": '"false"',
    "argmax": 'f"GtArg<{ctype}>{{gt_cast<{ctype}>(0), 0LL}}"', "argmin": 'f"GtArg<{ctype}>{{gt_cast<{ctype}>(0), 0LL}}"',
}


def _finish(name: str, statement: str) -> Mutant:
    return Mutant(f"{name}: finishing step {statement.split('=', 1)[1].strip()}", REDUCTION, FINISH_AT,
                  f"        if name == {name!r}:\n            {statement}\n" + FINISH_AT, REDUCTION_TESTS)


def reduction_mutants() -> list[Mutant]:
    mutants = [Mutant(f"{name}: identity {value}", REDUCTION, IDENTITY_AT,
                      IDENTITY_AT + f"    if name == {name!r} and 'initial' not in node.attrs:\n        return {value}\n",
                      REDUCTION_TESTS) for name, value in IDENTITIES.items()]
    mutants.append(Mutant("max/min: initial= ignored (the default identity instead)", REDUCTION,
                          '    if "initial" in node.attrs:  # max/min', '    if False:  # max/min', INITIAL_TESTS))
    mutants.append(Mutant("max/min: initial= one more than given", REDUCTION,
                          '        return f"gt_cast<{ctype}>({text})"\n    if isinstance(identity, bool)',
                          '        return f"gt_cast<{ctype}>({text} + 1)"\n    if isinstance(identity, bool)',
                          INITIAL_TESTS))
    mutants.append(Mutant("float max: identity 0 instead of -inf (the audit's)", REDUCTION,
                          "render_literal(np.inf if big else -np.inf)", "render_literal(np.inf if big else 0.0)",
                          REDUCTION_TESTS))
    # each reduction's finishing step: the value rounded through float32, or its own step broken
    for name in ("sum", "prod", "max", "min"):
        mutants.append(_finish(name, 'result = f"gt_cast<float>({result})"'))
    for name in ("any", "all"):
        mutants.append(_finish(name, 'result = f"!({result})"'))
    for name in ("argmax", "argmin"):
        mutants.append(_finish(name, 'result = f"({result} + 1)"'))
    mutants += [
        Mutant("mean: divided by N + 1", REDUCTION, 'result = f"gt_true_divide({result}, gt_cast<{ctype}>({count}))"',
               'result = f"gt_true_divide({result}, gt_cast<{ctype}>({count} + 1))"', REDUCTION_TESTS),
        Mutant("mean of integers: divided in float32", REDUCTION,
               'result, acc, ctype = f"gt_cast<double>({result})", np.dtype(np.float64), "double"',
               'result, acc, ctype = f"gt_cast<float>({result})", np.dtype(np.float32), "float"', REDUCTION_TESTS),
        Mutant("var: divided by N - ddof - 1", REDUCTION, 'divisor = max(cols - node.attrs.get("ddof", 0), 0)',
               'divisor = max(cols - node.attrs.get("ddof", 0) - (name == "var"), 0)', REDUCTION_TESTS),
        Mutant("std: ddof ignored", REDUCTION, 'divisor = max(cols - node.attrs.get("ddof", 0), 0)',
               'divisor = max(cols - (0 if name == "std" else node.attrs.get("ddof", 0)), 0)', REDUCTION_TESTS),
        Mutant("std: no square root", REDUCTION, '                result = f"gt_sqrt({result})"',
               '                result = result', REDUCTION_TESTS),
        Mutant("var/std: no two-pass correction", REDUCTION,
               'result = f"gt_corrected_squares({result}, red{reduced.number}s, gt_cast<{ctype}>(cols))"',
               'result = result', REDUCTION_TESTS),
        Mutant("var/std: negative corrected squares kept", HEADER, "return corrected > 0 ? corrected : (T)0;",
               "return corrected;", REDUCTION_TESTS),
        # the op table's reduction rows, which the renderer reads
        Mutant("std: its row finishes without the square root", "gputrace/ops.py",
               'Reduction(np.std, "GtSum", 0, "result", (VARIANCE, SQRT))',
               'Reduction(np.std, "GtSum", 0, "result", (VARIANCE,))', REDUCTION_TESTS),
        Mutant("min: its row starts at the lowest value", "gputrace/ops.py",
               'Reduction(np.min, "GtMin", HIGHEST, "input"', 'Reduction(np.min, "GtMin", LOWEST, "input"',
               REDUCTION_TESTS),
        Mutant("mean: its row accumulates in the input's dtype", "gputrace/ops.py",
               'Reduction(np.mean, "GtSum", 0, "result", (MEAN,))', 'Reduction(np.mean, "GtSum", 0, "input", (MEAN,))',
               REDUCTION_TESTS),
        # the combining code every reduction shares
        Mutant("max of floats in a thread: fminf", HEADER, "(float a, float b) const { return fmaxf(a, b); }",
               "(float a, float b) const { return fminf(a, b); }", REDUCTION_TESTS),
        Mutant("argmax: NaN does not win", HEADER, "return an ? a : b;", "return an ? b : a;", REDUCTION_TESTS),
        Mutant("argmax: ties keep the later index", HEADER, "(b.v == a.v && b.i < a.i)", "(b.v == a.v && b.i > a.i)",
               REDUCTION_TESTS),
        Mutant("split var: parts' shifts not weighted by their sizes", HEADER,
               "return gt_add(squares, gt_multiply(n, gt_multiply(shift, shift)));",
               "return gt_add(squares, gt_multiply(shift, shift));", REDUCTION_TESTS),
        Mutant("split var: parts' squares that are not finite merged like the rest", HEADER,
               "    if (!(squares - squares == 0)) return squares;\n    return gt_add(squares, gt_multiply(n,",
               "    return gt_add(squares, gt_multiply(n,", REDUCTION_TESTS),
        Mutant("Kahan sum: compensation added, not subtracted", HEADER,
               "gt_kahan_total(T sum, T lost) { return sum - sum == 0 ? sum - lost : sum; }",
               "gt_kahan_total(T sum, T lost) { return sum - sum == 0 ? sum + lost : sum; }", REDUCTION_TESTS),
    ]
    return mutants


def all_mutants() -> list[Mutant]:
    return op_mutants() + reduction_mutants()


# Survivors that no test can kill, with the reason: each is equivalent on every input that reaches it.
EXPLAINED: dict[str, str] = {
    "positive rendered as floor":
        "never rendered: the normalize pass replaces np.positive by its operand (same dtype and shape, in "
        "every dtype NumPy accepts), so no kernel calls gt_positive",
    "var/std: negative corrected squares kept":
        "the clamp is defensive: the sum of the rounded deviations' squares is at least their sum squared over "
        "N (Cauchy-Schwarz), and with compensated sums both sides round alike; no row found where it acts "
        "(6,000 random near-constant float32/float64 rows searched, every special row of the tests)",
    "Kahan sum: compensation added, not subtracted":
        "moves a thread's compensated total by at most one ulp (the compensation stays below half an ulp of "
        "the running sum), the size of the rounding of the threads' uncompensated tree combination: no "
        "deterministic comparison with NumPy or the float64 answer can tell it from rounding",
}


# ----------------------------------------------------------------------------- running


@dataclass
class Outcome:
    mutant: Mutant
    killed: bool
    detail: str
    seconds: float


def copy_tree(target: Path) -> Path:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target / name)
    return target


def run_tests(root: Path, tests: tuple[str, ...], cache: Path, timeout: float) -> tuple[bool, str]:
    """(passed, first failure or error) of ``tests`` run in the tree at ``root`` by a fresh process."""
    env = dict(os.environ, GPUTRACE_MUTATION_CACHE=str(cache), PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    command = [sys.executable, "-m", "pytest", "-x", "-q", "--slow", "-p", "no:cacheprovider", "-k", "not cuda",
               *tests]
    try:
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    if done.returncode == 0:
        return True, ""
    output = done.stdout + done.stderr
    first = re.search(r"^(FAILED|ERROR) (\S+)", output, re.MULTILINE)
    return False, first.group(2) if first else output.strip().splitlines()[-1] if output.strip() else "no output"


def check_imports_copy(root: Path) -> None:
    """The copy's tests must import the copy's gputrace, not the installed one."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    where = subprocess.run([sys.executable, "-c", "import gputrace; print(gputrace.__file__)"], cwd=root, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    if not Path(where).is_relative_to(root):
        raise RuntimeError(f"the copy at {root} imports gputrace from {where}")


def run_mutant(mutant: Mutant, root: Path, cache: Path, timeout: float) -> Outcome:
    file = root / mutant.path
    original = file.read_text()
    start = time.monotonic()
    try:
        mutant.apply(root)
        passed, detail = run_tests(root, mutant.tests, cache, timeout)
    finally:
        file.write_text(original)
    return Outcome(mutant, not passed, detail, time.monotonic() - start)


def run_all(mutants: list[Mutant], jobs: int, timeout: float, report=print) -> list[Outcome]:
    with tempfile.TemporaryDirectory(prefix="gputrace-mutation-") as scratch:
        scratch = Path(scratch)
        cache = scratch / "cache"
        roots = [copy_tree(scratch / f"tree{k}") for k in range(jobs)]
        check_imports_copy(roots[0])
        tests = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
        start = time.monotonic()
        passed, detail = run_tests(roots[0], tests, cache, timeout * 4)
        if not passed:
            raise RuntimeError(f"the unmutated tests fail ({detail}): nothing to learn from the mutants")
        report(f"unmutated: {len(tests)} test selections pass ({time.monotonic() - start:.0f} s); "
               f"{len(mutants)} mutants, {jobs} at a time")
        free = list(roots)
        outcomes = []
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            def job(mutant: Mutant) -> Outcome:
                root = free.pop()
                try:
                    return run_mutant(mutant, root, cache, timeout)
                finally:
                    free.append(root)
            for outcome in pool.map(job, mutants):
                outcomes.append(outcome)
                status = "killed" if outcome.killed else ("explained" if outcome.mutant.name in EXPLAINED
                                                          else "SURVIVED")
                report(f"  {status:9s} {outcome.seconds:5.0f} s  {outcome.mutant.name}"
                       + (f"  <- {outcome.detail}" if outcome.killed else ""))
        return outcomes


def summary(outcomes: list[Outcome]) -> tuple[str, list[Outcome]]:
    killed = sum(o.killed for o in outcomes)
    survivors = [o for o in outcomes if not o.killed]
    unexplained = [o for o in survivors if o.mutant.name not in EXPLAINED]
    lines = [f"mutation score: {killed} of {len(outcomes)} killed ({100 * killed / max(len(outcomes), 1):.0f}%)"]
    lines += [f"  explained survivor: {o.mutant.name}: {EXPLAINED[o.mutant.name]}" for o in survivors
              if o.mutant.name in EXPLAINED]
    lines += [f"  UNEXPLAINED survivor: {o.mutant.name}" for o in unexplained]
    return "\n".join(lines), unexplained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[],
                        help="run only mutants whose name contains this text (may be given again)")
    parser.add_argument("--jobs", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    parser.add_argument("--timeout", type=float, default=900, help="seconds per mutant's test run")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    args = parser.parse_args(argv)
    mutants = [m for m in all_mutants() if not args.only or any(text in m.name for text in args.only)]
    if args.list:
        print("\n".join(f"{m.name}  ({m.path})" for m in mutants))
        return 0
    start = time.monotonic()
    outcomes = run_all(mutants, args.jobs, args.timeout, report=lambda line: print(line, flush=True))
    text, unexplained = summary(outcomes)
    print(f"{text}\n{time.monotonic() - start:.0f} s in all")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
