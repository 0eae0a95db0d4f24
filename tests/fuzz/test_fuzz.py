"""The CI fuzz run: random NumPy programs, NumPy eagerly vs gputrace traced, on a bounded budget.

Most programs run on the numpy backend (tracing, passes and fusion, ~0.1 s each);
a fixed number also run their generated kernels on emulate (a host-compiler
build each, ~1-2 s). A failure is shrunk by hypothesis and written as a
reproducer (tests/fuzz/reproducers/, or $GPUTRACE_FUZZ_REPRODUCERS). The
programs are the same on every run unless $GPUTRACE_FUZZ_SEED is set.
Longer runs: ``python -m tests.fuzz --count N`` (see tests/fuzz/README.md).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings

import gputrace
from tests.fuzz.differential import (MAX_UNCHECKED, Checks, Expected, Mismatch, available_backends,
                                     compare_output, run_program)
from tests.fuzz.generate import programs
from tests.fuzz.program import (EXACT, INEXACT, UNSTABLE, Arange, ArrayInput, DType, Index, IntList, Op, Param,
                               Program, Ref, SelfMask, evaluate, value_exactness)
from tests.fuzz.reproducer import load_reproducer, write_reproducer

NUMPY_PROGRAMS = 250
KERNEL_PROGRAMS = 12
FUZZ_SEED = int(os.environ.get("GPUTRACE_FUZZ_SEED", "0"))


def check(program: Program, backends: tuple[str, ...], name: str, checks: Checks) -> None:
    mismatches = run_program(program, backends, checks)
    if mismatches:
        path = write_reproducer(program, mismatches, backends, name=name)  # the last write is the shrunk one
        pytest.fail("gputrace disagrees with NumPy:\n" + "\n".join(map(str, mismatches))
                    + f"\nreproducer: {path}\n{program.source()}")


def ci_settings(examples: int):
    return settings(max_examples=examples, deadline=None, database=None, derandomize=not FUZZ_SEED,
                    suppress_health_check=list(HealthCheck), print_blob=True)


def fuzz(strategy, examples: int, offset: int, backends: tuple[str, ...], name: str) -> None:
    """Run ``examples`` programs; then the run must have compared most outputs (MAX_UNCHECKED)."""
    checks = Checks()

    @seed(FUZZ_SEED + offset)
    @ci_settings(examples)
    @given(strategy)
    def one_program(program):
        check(program, backends, name, checks)

    one_program()
    print(checks.summary())
    assert checks.unchecked_share() <= MAX_UNCHECKED, f"too many outputs unchecked: {checks.summary()}"


def test_numpy_backend_agrees_with_numpy():
    fuzz(programs(max_ops=30), NUMPY_PROGRAMS, 0, ("numpy",), "failing_numpy_backend")


def test_generated_kernels_agree_with_numpy():
    fuzz(programs(max_ops=20, error_share=0), KERNEL_PROGRAMS, 1, available_backends(("numpy", "emulate", "cuda")),
         "failing_generated_kernels")


# ----------------------------------------------------------------------------- the fuzzer itself


def test_a_source_runs_as_the_program_evaluates():
    program = Program((ArrayInput("float32", (2, 3), "transposed", "special", 5), ArrayInput("int8", (3,))),
                      (Op("binop", "+", (Ref(0), Ref(1))), Op("method", "sum", (Ref(2),), (("axis", 0),)),
                       Op("call", "exp", (Ref(3),))), (4, 2))
    namespace: dict = {}
    exec(program.source(), namespace)
    inputs = namespace["make_inputs"]()
    assert inputs[0].strides != np.empty((2, 3), np.float32).strides  # the layout is rebuilt, not just the values
    with np.errstate(all="ignore"):
        got = namespace["program"](*inputs)
    evaluation = evaluate(program)
    np.testing.assert_array_equal(got[0], evaluation.values[4])
    assert evaluation.exactness[2:] == [EXACT, INEXACT, INEXACT]


def test_discontinuous_functions_of_inexact_values_are_unstable():
    program = Program((ArrayInput("float64", (4,)),),
                      (Op("call", "exp", (Ref(0),)), Op("call", "floor", (Ref(1),)), Op("call", "floor", (Ref(0),))),
                      (2, 3))
    assert evaluate(program).exactness[1:] == [INEXACT, UNSTABLE, EXACT]


def test_a_product_that_may_overflow_is_unstable():
    """The order of multiplication decides between inf, NaN (inf times a later zero) and a finite product:
    NumPy's [0, -271, -3.4e38] gives 0, a tree of partial products gives (-271 * -3.4e38) * 0 = NaN."""
    prod = Op("call", "prod", (Ref(0),))
    big, small = np.float32([0, -271, -3.4e38]), np.float32([0.5, -3, 2e30])
    assert value_exactness(prod, [EXACT], np.prod(big), [big]) == UNSTABLE
    assert value_exactness(prod, [EXACT], np.prod(small), [small]) == INEXACT


@pytest.mark.parametrize("name", ["sum", "mean"])
def test_a_sum_whose_partial_sums_may_overflow_is_unstable(name):
    """NumPy's order adds 3.4e38 - 3.4e38 first (finite), a block's tree may add -3.4e38 - 3.4e38 (-inf)."""
    op = Op("call", name, (Ref(0),))
    big, ordinary = np.float32([3.4e38, -3.4e38, 1, -3.4e38]), np.float32([3e38, -2e38, 1, -1e38])
    assert value_exactness(op, [EXACT], getattr(np, name)(big), [big]) == UNSTABLE
    assert value_exactness(op, [EXACT], getattr(np, name)(ordinary), [ordinary]) == INEXACT


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the point of the test
def test_a_float16_variance_whose_squares_may_overflow_is_unstable():
    """NumPy sums float16 squares in float16: 33 deviations of about 45 give inf, float32 sums give 2,000."""
    var = Op("call", "var", (Ref(0),))
    wide, narrow = np.float16(np.resize([-45, 45], 33)), np.float16(np.resize([-4, 4], 33))
    assert value_exactness(var, [EXACT], np.var(wide), [wide]) == UNSTABLE
    assert value_exactness(var, [EXACT], np.var(narrow), [narrow]) == INEXACT


@pytest.mark.parametrize("expected, actual, why", [
    (Expected(np.float32([1, 2])), np.float32([1, np.nextafter(2, 3, dtype=np.float32)]), "elements differ"),
    (Expected(np.float32([1, 2])), np.float64([1, 2]), "dtype float64"),
    (Expected(np.int8([1, 2])), np.int8([1, 3]), "1 of 2 elements differ"),
    (Expected(np.float32([-0.0, 1])), np.float32([0.0, 1]), "1 of 2 elements differ"),  # a zero's sign
    (Expected(np.float64([1, np.nan])), np.float64([1, 0]), "1 of 2 elements differ"),
])
def test_comparison_finds_differences(expected, actual, why):
    assert why in compare_output(expected, actual)


def inexact(numpy_value, exact, samples=()) -> Expected:
    """An inexact output: NumPy's value, the long double reference and its perturbed runs."""
    return Expected(np.asarray(numpy_value), INEXACT, exact=np.asarray(exact, np.longdouble),
                    samples=[np.asarray(s, np.longdouble) for s in samples])


def test_each_element_is_held_to_the_error_numpy_or_a_perturbed_run_makes_there():
    one = float(np.spacing(np.float32(1)))
    expected = inexact(np.float32([1, 1e-3]), [1, 1e-3], [[1 + 2 * one, 1e-3]])
    checks = Checks()
    assert compare_output(expected, np.float32([1 + 8 * one, 1e-3]), checks) is None  # K * 2 ulp at 1
    assert checks.elements == {"bound": 2, "exact": 0, "unchecked": 0}
    # the bound is per element: 1e-3 may be off by a few ulp of 1e-3, not of its neighbour 1
    assert "beyond the bound" in compare_output(expected, np.float32([1, 1e-3 + 100 * one * 1e-3]))
    # a value near 3.4e38 elsewhere in the output widens nothing (fuzz_seed41008: arcsin near 1.57 was allowed 2e34)
    wide = inexact(np.float32([1.5707964, 3.4e38]), [1.5707963267948966, 3.4e38])
    assert "first at (0,)" in compare_output(wide, np.float32([1.5707964 * (1 + 1e-3), 3.4e38]))


def test_elements_where_numpy_is_far_off_are_unchecked_but_infinities_where_all_agree_are_compared():
    expected = inexact(np.float32([np.inf, np.inf, np.nan, 0.0]), [np.inf, 3e38, np.nan, -1e-3],
                       [[np.inf, 3e38, np.nan, 1e-3]])
    checks = Checks()
    assert compare_output(expected, np.float32([np.inf, 1, np.nan, 5e-3]), checks) is None
    assert checks.elements == {"exact": 2, "unchecked": 2, "bound": 0} and checks.outputs["unchecked"] == 1
    assert "1 of 4 elements" in compare_output(expected, np.float32([-np.inf, 1, np.nan, 5e-3]))
    assert "1 of 4 elements" in compare_output(expected, np.float32([np.inf, 1, 0, 5e-3]))
    # NumPy's 0 is far off the reference's -1e-3: unchecked, yet held to K times that distance
    assert "first at (3,)" in compare_output(expected, np.float32([np.inf, 1, np.nan, 5]))


def test_signed_zeros_are_compared_unless_a_sum_or_maximum_chose_them():
    exact_zero = inexact(np.float32([-0.0, 1]), [-0.0, 1], [[-0.0, 1]])
    assert "1 of 2 elements" in compare_output(exact_zero, np.float32([0.0, 1]))
    assert compare_output(Expected(np.float32([-0.0]), zero_sign_free=True), np.float32([0.0])) is None
    summed = inexact(np.float32([-0.0]), [-0.0], [[-0.0]])
    summed.zero_sign_free = True
    assert compare_output(summed, np.float32([0.0])) is None


def test_a_discontinuous_function_of_inexact_values_is_compared_where_every_run_agrees():
    expected = Expected(np.array([True, False]), UNSTABLE, exact=np.array([True, True]),
                        samples=[np.array([True, False])])
    checks = Checks()
    assert compare_output(expected, np.array([True, True]), checks) is None
    assert checks.elements == {"exact": 1, "unchecked": 1, "bound": 0}
    assert "1 of 2 elements" in compare_output(expected, np.array([False, True]))


def test_an_undefined_cast_leaves_only_its_own_elements_unchecked():
    """NaN, inf and 1.7e38 cast to int32 are the machine's choice (x86 and a GPU differ); the other elements, and
    what is computed from them, are compared exactly."""
    program = Program((ArrayInput("float32", (12,), "contiguous", "special", 5),),
                      (Op("method", "astype", (Ref(0), DType("int32"))), Op("binop", "+", (Ref(1), 1))), (2,))
    values = program.make_inputs()[0]
    undefined = int((~(np.abs(values) < 2.0 ** 31)).sum())
    assert 0 < undefined < values.size
    checks = Checks()
    assert run_program(program, ("numpy",), checks) == []
    assert checks.elements == {"exact": values.size - undefined, "unchecked": undefined, "bound": 0}


def test_an_ill_conditioned_program_that_fails_traces_own_check_is_compared_without_it():
    """v ** v of 16 times an einsum (about 17 ** 17): gputrace's einsum sums in another order, and the power turns
    its ulp into 3e-5, beyond trace's check (1e-5 for every program) and within the reference's bound (found by
    fuzz seed 14)."""
    program = Program((ArrayInput("float32", (4, 2), "transposed", "normal", 22345),),
                      (Op("call", "einsum", ("ij,ik->", Ref(0), Ref(0))),) +
                      tuple(Op("call", "add", (Ref(k), Ref(k))) for k in range(1, 5)) +
                      (Op("call", "power", (Ref(5), Ref(5))),), (6,))
    with pytest.raises(gputrace.TracingCheckError, match="tolerance 1e-05"):
        gputrace.trace(program.function(), program.arguments(program.make_inputs()))
    checks = Checks()
    assert run_program(program, ("numpy",), checks) == []
    assert checks.outputs["bound"] == 1


def plant(monkeypatch, kind: str, wrong) -> None:
    """A bug in the numpy backend: its steps for ops of ``kind`` return ``wrong(result)`` (the backend runs a
    ReferencePlan's steps; tracing and its check, which record with the Interpreter, stay right)."""
    from gputrace.backends import reference
    make_plan = reference.ReferencePlan.__init__

    def planted(self, graph, xp=np):
        make_plan(self, graph, xp)
        for k, (node, _, _) in enumerate(self.nodes):
            if node.kind == kind:
                self.steps[k] = lambda *args, _step=self.steps[k], **kwargs: wrong(_step(*args, **kwargs))

    monkeypatch.setattr(reference.ReferencePlan, "__init__", planted)


def test_a_planted_libm_error_is_found_beside_huge_values(monkeypatch):
    """sin off by 1e-3 relative in a program whose other input holds +-3.4e38: the old tolerance, scaled by the
    largest magnitude among an output's ancestors, let it pass."""
    program = Program((ArrayInput("float32", (5,), "contiguous", "normal", 3),
                       ArrayInput("float32", (5,), "contiguous", "extreme", 659)),
                      (Op("binop", "*", (Ref(0), Ref(1))), Op("call", "sin", (Ref(0),)),
                       Op("binop", "+", (Ref(3), Ref(2)))), (3, 4))
    checks = Checks()
    assert run_program(program, ("numpy",), checks) == []
    assert checks.outputs["unchecked"] == 0 and checks.outputs["bound"] == 2
    plant(monkeypatch, "np::sin", lambda r: r * np.float32(1 + 1e-3))
    mismatches = run_program(program, ("numpy",))
    assert mismatches and "v1: 5 of 5 elements beyond the bound" in str(mismatches[0])


def test_numpy_off_by_an_ulp_before_an_overflow_is_unchecked():
    """A mean of huge float32 values that NumPy's order and a kernel's round an ulp apart, then x - mean squared:
    0 in one order, about 6e45 (inf in float32, then NaN) in the other (fuzz seed 703): numerical instability,
    which the reference finds, not a disagreement."""
    program = Program((ArrayInput("float32", (15,), "contiguous", "normal", 2),),
                      (Op("binop", "*", (Ref(0), 0.0)), Op("binop", "-", (Ref(1), 3.2e29)),
                       Op("method", "mean", (Ref(2),), (("keepdims", True),)), Op("binop", "-", (Ref(2), Ref(3))),
                       Op("call", "square", (Ref(4),)), Op("binop", "-", (Ref(5), Ref(5)))), (6,))
    checks = Checks()
    assert run_program(program, ("numpy",), checks) == []
    assert checks.outputs["unchecked"] == 1


def test_a_planted_bug_is_found_and_written_as_a_reproducer(monkeypatch, tmp_path):
    plant(monkeypatch, "np::sum", lambda r: r + 1)
    program = Program((ArrayInput("int32", (3, 4), "strided"),), (Op("method", "sum", (Ref(0),), (("axis", 1),)),),
                      (1,))
    mismatches = run_program(program, ("numpy",))
    assert mismatches and all(isinstance(m, Mismatch) for m in mismatches)
    assert "elements differ" in str(mismatches[0]) and mismatches[0].stage == "numpy"
    path = write_reproducer(program, mismatches, ("numpy",), directory=tmp_path)
    loaded, backends = load_reproducer(path)
    assert loaded == program and backends == ("numpy",)
    assert "elements differ" in path.read_text() and "def program(x0):" in path.read_text()


def test_rejections_must_match_numpy():
    program = Program((ArrayInput("float32", (2, 3)), ArrayInput("float32", (4,))),
                      (Op("call", "add", (Ref(0), Ref(1))),), (2,))
    assert isinstance(evaluate(program).error, ValueError)
    assert run_program(program, ("numpy",)) == []  # gputrace raises a ValueError too


# ----------------------------------------------------------------------------- gathers, assignments, arguments

EVERY_NEW_FORM = Program(
    inputs=(ArrayInput("float32", (3, 4), "transposed", "special", 5), ArrayInput("int64", (4,), "reversed", "index",
                                                                                  7, bound=3),
            ArrayInput("uint8", (3,), "contiguous", "unique", 2, bound=3), ArrayInput("float64", (4,), "strided")),
    ops=(Op("index", "getitem", (Ref(0), Index((Ref(1),)))),                                      # 4: x[idx]
         Op("index", "getitem", (Ref(0), Index(((None, None, None), Ref(2))))),                   # 5: x[:, idx]
         Op("index", "getitem", (Ref(0), Index((Arange(3), Ref(2))))),                            # 6: x[arange, idx]
         Op("call", "take", (Ref(0), Ref(1)), (("axis", -2),)),                                   # 7
         Op("call", "argsort", (Ref(3),), (("axis", 0), ("kind", "stable"))),                     # 8
         Op("call", "take_along_axis", (Ref(3), Ref(8)), (("axis", 0),)),                         # 9
         Op("assign", "=", (Ref(0), Index(((None, None, None), Ref(2))), Ref(5)), (("copy", "call"),)),  # 10
         Op("assign", "add.at", (Ref(3), Index((IntList((0, 0, -1)),)), 3), (("copy", "mul"),)),  # 11
         Op("assign", "mask_apply", (Ref(0), Index((SelfMask(">", 0),)), ("*", 2)), (("copy", "method"),)),
         Op("assign", "+=", (Ref(3), Index(((1, None, 2),)), Param()), (("copy", "inplace"),)),   # 13: x3 updated
         Op("call", "pad", (Ref(0), ((1, 0), (0, 2))), (("mode", "reflect"),)),
         Op("list_call", "hstack", (Ref(0), Ref(5))), Op("call", "roll", (Ref(4), -1), (("axis", 1),)),
         Op("call", "tril", (Ref(0),), (("k", -1),)), Op("call", "repeat", (Ref(3), IntList((0, 1, 2, 1))))),
    outputs=(6, 7, 9, 10, 11, 12, 14, 15, 16, 17, 18, 13), signature="nested", scalar=3.0)


def test_every_new_form_renders_as_the_program_evaluates():
    program = EVERY_NEW_FORM
    source = program.source()
    assert "v1[v1 > 0] = v1[v1 > 0] * 2" not in source and "v8[v8 > 0] = v8[v8 > 0] * 2" in source
    assert "x3[1::2,] += s; v9 = x3" in source and "rest[1]['b'][0]" in source and "    s = 3.0" in source
    namespace: dict = {}
    exec(source, namespace)
    got = namespace["program"](*namespace["make_inputs"]())
    evaluation = evaluate(program)
    assert evaluation.error is None
    for g, w in zip(got, evaluation.outputs(program)):
        np.testing.assert_array_equal(g, w)
    assert run_program(program, ("numpy",)) == []
    other = program.with_other_values()
    assert other.scalar != program.scalar and evaluate(other).error is None  # indices stay in range
    # np.arange(3) is a constant of the program: on 2 rows NumPy raises IndexError (and gputrace must alike)
    assert isinstance(evaluate(program.with_other_shapes()).error, IndexError)


def test_an_input_updated_wrongly_is_found(monkeypatch):
    """The inputs after the call are compared with what NumPy left in its copies: a planted bug in assignments
    (one more than the value assigned) is found in an input the program updates in place and does not return."""
    program = Program((ArrayInput("int32", (5,)), ArrayInput("int64", (2,), values="unique", bound=5)),
                      (Op("assign", "=", (Ref(0), Index((Ref(1),)), 7), (("copy", "inplace"),)),
                       Op("call", "negative", (Ref(1),))), (3,), signature="dict")
    assert run_program(program, ("numpy",)) == []
    plant(monkeypatch, "np::setitem", lambda r: r + 1)
    mismatches = run_program(program, ("numpy",))
    assert mismatches and "input x0 after the call (updated in place)" in str(mismatches[0])
