"""Each pass is a function graph -> (graph, changed); golden text on printed graphs, lint after each."""
import re

import numpy as np
import pytest

import gputrace
from benchmarks import programs as bench
from gputrace import nn, ops
from gputrace.backends.host_compiler import host_compiler_info
from gputrace.codegen import LibraryCall
from gputrace.ir import Graph, ScalarType, TensorType, contiguous_strides
from gputrace.passes import cse, dce, fold, freeze, inline, normalize, optimize
from tests.fusion_targets import LONG_ROW_PROGRAMS, TARGETS, WRITTEN_PLAINLY
from tests.test_bad_inputs import huge


def traced_graph(fn, *arrays):
    return gputrace.trace(fn, arrays, check_trace=False).graph.copy()


def text(graph):
    """The printed graph without source locations."""
    return re.sub(r"  # \S+:\d+:\d+", "", str(graph))


def kinds(graph):
    return [n.kind for n in graph.nodes]


def run(pass_, graph):
    """Apply a pass, check its contract (graph, changed), lint, and that a second run changes nothing."""
    result, changed = pass_(graph)
    assert isinstance(result, Graph) and isinstance(changed, bool)
    result.lint()
    again, changed_again = pass_(result.copy())
    assert not changed_again and text(again) == text(result), f"{pass_.__name__} is not idempotent"
    return result, changed


X = np.ones((2, 3), np.float32)


# ----------------------------------------------------------------------------- inline and freeze


class MyCell(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 3, seed=0)

    def forward(self, x, h):
        return np.tanh(self.linear(x) + h)


def test_inline_replaces_calls_by_the_callee_graph():
    traced = gputrace.trace(MyCell(), (X, X))
    graph, changed = run(inline, traced.graph.copy())
    assert changed
    assert text(graph) == """\
graph(%self : __gputrace__.MyCell,
      %x : Float32(2, 3, strides=[3, 1], device=cpu),
      %h : Float32(2, 3, strides=[3, 1], device=cpu)):
  %linear : __gputrace__.Linear = prim::GetAttr[name="linear"](%self)
  %weight : Float32(3, 3, strides=[3, 1], device=cpu) = prim::GetAttr[name="weight"](%linear)
  %4 : Float32(3, 3, strides=[1, 3], device=cpu) = np::T(%weight)
  %5 : Float32(2, 3, strides=[3, 1], device=cpu) = np::matmul(%x, %4)
  %bias : Float32(3, strides=[1], device=cpu) = prim::GetAttr[name="bias"](%linear)
  %6 : Float32(2, 3, strides=[3, 1], device=cpu) = np::add(%5, %bias)
  %2 : Float32(2, 3, strides=[3, 1], device=cpu) = np::add(%6, %h)
  %3 : Float32(2, 3, strides=[3, 1], device=cpu) = np::tanh(%2)
  return (%3)"""
    assert "prim::CallMethod" in text(traced.graph)  # the pass worked on a copy


def test_inline_flattens_nested_calls():
    model = nn.Sequential(nn.Sequential(nn.Linear(3, 3, seed=1), nn.Tanh()), nn.ReLU())
    traced = gputrace.trace(model, X)
    assert kinds(traced.graph).count("prim::CallMethod") == 2
    graph, _ = run(inline, traced.graph.copy())
    assert [k for k in kinds(graph) if k.startswith("np::")] == ["np::T", "np::matmul", "np::add", "np::tanh",
                                                                  "np::maximum"]


def test_freeze_turns_attribute_reads_into_named_params():
    traced = gputrace.trace(MyCell(), (X, X))
    graph, _ = inline(traced.graph.copy())
    graph, changed = run(freeze, graph)
    assert changed
    assert text(graph) == """\
graph(%x : Float32(2, 3, strides=[3, 1], device=cpu),
      %h : Float32(2, 3, strides=[3, 1], device=cpu)):
  %linear_weight : Float32(3, 3, strides=[3, 1], device=cpu) = prim::Param[name="linear.weight"]()
  %4 : Float32(3, 3, strides=[1, 3], device=cpu) = np::T(%linear_weight)
  %5 : Float32(2, 3, strides=[3, 1], device=cpu) = np::matmul(%x, %4)
  %linear_bias : Float32(3, strides=[1], device=cpu) = prim::Param[name="linear.bias"]()
  %6 : Float32(2, 3, strides=[3, 1], device=cpu) = np::add(%5, %linear_bias)
  %2 : Float32(2, 3, strides=[3, 1], device=cpu) = np::add(%6, %h)
  %3 : Float32(2, 3, strides=[3, 1], device=cpu) = np::tanh(%2)
  return (%3)"""


def test_freeze_needs_an_inlined_graph():
    traced = gputrace.trace(MyCell(), (X, X))
    with pytest.raises(gputrace.TracingError, match="freeze needs an inlined graph: run inline first"):
        freeze(traced.graph.copy())


def test_freeze_leaves_function_graphs_alone():
    graph, changed = freeze(traced_graph(lambda x: x + 1, X))
    assert not changed


# ----------------------------------------------------------------------------- normalize


@pytest.mark.parametrize("fn", [lambda x: x.T, lambda x: np.transpose(x), lambda x: x.transpose(1, 0),
                                lambda x: np.swapaxes(x, 0, 1), lambda x: x.swapaxes(-1, -2),
                                lambda x: np.moveaxis(x, 0, 1), lambda x: x.mT],
                         ids=["T", "transpose", "method", "swapaxes", "swapaxes-negative", "moveaxis", "mT"])
def test_normalize_gives_one_transpose_op(fn):
    graph, _ = run(normalize, traced_graph(fn, X))
    (node,) = graph.nodes
    assert text(graph).splitlines()[1:] == [
        f"  %{node.output.name} : Float32(3, 2, strides=[1, 3], device=cpu) = np::transpose[axes=(1, 0)](%x)",
        f"  return (%{node.output.name})"]


def test_normalize_rewrites_each_spelling_to_its_canonical_op():
    def fn(x):
        return (np.dot(x, x.T), np.zeros_like(x), np.ones_like(x, dtype=np.int8), np.stack([x, x], axis=1),
                np.split(x, [1], axis=1)[1], x.ravel(), x.copy(), x.astype(np.float32), +x, np.transpose(x, (0, 1)))

    graph, changed = run(normalize, traced_graph(fn, X))
    assert changed
    graph, _ = dce(graph)
    assert text(graph) == """\
graph(%x : Float32(2, 3, strides=[3, 1], device=cpu)):
  %13 : Float32(3, 2, strides=[1, 3], device=cpu) = np::transpose[axes=(1, 0)](%x)
  %14 : Float32(2, 2, strides=[2, 1], device=cpu) = np::matmul(%x, %13)
  %15 : Float32(2, 3, strides=[3, 1], device=cpu) = np::full_like[fill_value=0, dtype=float32](%x)
  %16 : Int8(2, 3, strides=[3, 1], device=cpu) = np::full_like[fill_value=1, dtype=int8](%x)
  %17 : Float32(2, 1, 3, strides=[3, 0, 1], device=cpu) = np::expand_dims[axis=(1,)](%x)
  %18 : Float32(2, 1, 3, strides=[3, 0, 1], device=cpu) = np::expand_dims[axis=(1,)](%x)
  %19 : Float32(2, 2, 3, strides=[6, 3, 1], device=cpu) = np::concatenate[axis=1](%17, %18)
  %21 : Float32(2, 2, strides=[3, 1], device=cpu) = np::getitem[index=(:, 1:3)](%x)
  %22 : Float32(6, strides=[1], device=cpu) = np::reshape[shape=(-1,)](%x)
  return (%14, %15, %16, %19, %21, %22, %x, %x, %x, %x)"""


def test_normalize_drops_views_of_the_whole_array():
    """x[...], x[:, :] and x[0:2] of an axis of 2 are x; a reversed, sliced or widened view is not."""
    graph, _ = run(normalize, traced_graph(lambda x: (x[...], x[:, :], x[0:2, ::1], x[::-1], x[:, 1:], x[None]), X))
    graph, _ = dce(graph)
    assert kinds(graph) == ["np::getitem"] * 3
    assert [node.attrs["index"] for node in graph.nodes] == [(slice(None, None, -1),), (slice(None), slice(1, None)),
                                                             (None,)]


def test_a_whole_array_view_inside_softmax_leaves_one_kernel():
    def softmax(x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))[...]
        return e[:, :] / e.sum(axis=-1, keepdims=True)

    assert len(gputrace.trace(softmax, X).kernels) == 1


def test_normalize_keeps_dot_where_matmul_would_round_differently():
    """np.dot of vectors or of a stack of matrices sums in another order than np.matmul."""
    v, batch, m = np.ones(4, np.float32), np.ones((2, 3, 4), np.float32), np.ones((4, 5), np.float32)
    for args in [(v, v), (batch, m), (m.T, v)]:
        graph, _ = run(normalize, traced_graph(np.dot, *args))
        assert kinds(graph) == ["np::dot"]
    graph, _ = run(normalize, traced_graph(lambda x: np.dot(x, 2.0), v))
    assert kinds(graph) == ["prim::Constant", "np::multiply"]


# ----------------------------------------------------------------------------- fold


def handmade_graph():
    """``x + exp(float32(2) * float32(3))`` times 1: what specialisation and inlining leave behind."""
    graph = Graph("f")
    x = graph.add_input(TensorType(np.float32, (3,)), "x")

    def node(kind, *inputs, **attrs):
        types = ops.infer_types(kind, [v.type for v in inputs], attrs)
        return graph.add_node(kind, list(inputs), types, attrs=attrs).output

    def constant(value, type_):
        return graph.add_node("prim::Constant", [], [type_], attrs={"value": value}).output

    scalar = TensorType(np.float32, ())
    six = node("np::multiply", constant(np.float32(2), scalar), constant(np.float32(3), scalar))
    y = node("np::add", x, node("np::exp", six))
    graph.outputs = [node("np::multiply", y, constant(1, ScalarType(int)))]
    return graph


def test_fold_evaluates_constant_subexpressions_and_identities():
    graph, changed = run(fold, handmade_graph())
    assert changed
    graph, _ = dce(graph)
    assert text(graph) == """\
graph(%x : Float32(3, strides=[1], device=cpu)):
  %9 : Float32(strides=[], device=cpu) = prim::Constant[value=403.42877]()
  %5 : Float32(3, strides=[1], device=cpu) = np::add(%x, %9)
  return (%5)"""
    folded = graph.find_nodes("prim::Constant")[0].attrs["value"]
    assert folded.dtype == np.float32 and folded == np.exp(np.float32(2) * np.float32(3))


@pytest.mark.parametrize("fn", [lambda x: x * 1, lambda x: 1 * x, lambda x: x / 1, lambda x: x ** 1,
                                lambda x: x - 0, lambda x: (x * 1) / 1 - 0],
                         ids=["x*1", "1*x", "x/1", "x**1", "x-0", "chain"])
def test_fold_removes_exact_identities(fn):
    graph, changed = run(fold, traced_graph(fn, X))
    graph, _ = dce(graph)
    assert changed and text(graph).splitlines()[1:] == ["  return (%x)"]


@pytest.mark.parametrize("fn, x", [
    (lambda x: x + 0.0, X),  # -0.0 + 0.0 is +0.0
    (lambda x: x * 1.0, np.ones(3, np.int8)),  # int8 * 1.0 is float64
    (lambda x: x * True, X),  # a bool is not the number 1 here
    (lambda x: x * np.float64(1), X),  # float32 * float64 is float64
    (lambda x: x.T * 1, X),  # the strides of the result differ from the view's
], ids=["float+0", "int*1.0", "x*True", "float32*float64(1)", "view*1"])
def test_fold_keeps_what_is_not_an_identity(fn, x):
    graph, changed = run(fold, traced_graph(fn, x))
    assert not changed and len([k for k in kinds(graph) if k.startswith("np::")]) >= 1


def test_integer_plus_zero_is_an_identity():
    graph, changed = run(fold, traced_graph(lambda x: 0 + x + 0, np.arange(3)))
    assert changed and text(dce(graph)[0]).splitlines()[1:] == ["  return (%x)"]


# ----------------------------------------------------------------------------- cse and dce


def test_cse_merges_identical_nodes_only():
    graph, changed = run(cse, traced_graph(lambda x: (np.exp(x) + np.exp(x), x * 0.0 + x * -0.0 + x * 0), X))
    assert changed
    graph, _ = dce(graph)
    assert text(graph) == """\
graph(%x : Float32(2, 3, strides=[3, 1], device=cpu)):
  %1 : Float32(2, 3, strides=[3, 1], device=cpu) = np::exp(%x)
  %3 : Float32(2, 3, strides=[3, 1], device=cpu) = np::add(%1, %1)
  %4 : float = prim::Constant[value=0.0]()
  %5 : Float32(2, 3, strides=[3, 1], device=cpu) = np::multiply(%x, %4)
  %6 : float = prim::Constant[value=-0.0]()
  %7 : Float32(2, 3, strides=[3, 1], device=cpu) = np::multiply(%x, %6)
  %8 : Float32(2, 3, strides=[3, 1], device=cpu) = np::add(%5, %7)
  %9 : int = prim::Constant[value=0]()
  %10 : Float32(2, 3, strides=[3, 1], device=cpu) = np::multiply(%x, %9)
  %11 : Float32(2, 3, strides=[3, 1], device=cpu) = np::add(%8, %10)
  return (%3, %11)"""


def test_cse_merges_the_params_of_a_shared_submodule():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3, seed=0)

        def forward(self, x):
            return self.lin(x) + self.lin(x)

    traced = gputrace.trace(Twice(), X)
    graph = traced.frozen_graph.copy()
    assert kinds(graph).count("prim::Param") == 4
    graph, _ = run(cse, graph)
    assert kinds(graph).count("prim::Param") == 2 and kinds(graph).count("np::matmul") == 1


def test_dce_drops_unused_nodes_and_keeps_outputs():
    graph, changed = run(dce, traced_graph(lambda x: (np.sin(x), np.cos(x) * 2)[1], X))
    assert changed
    assert text(graph) == """\
graph(%x : Float32(2, 3, strides=[3, 1], device=cpu)):
  %2 : Float32(2, 3, strides=[3, 1], device=cpu) = np::cos(%x)
  %3 : int = prim::Constant[value=2]()
  %4 : Float32(2, 3, strides=[3, 1], device=cpu) = np::multiply(%2, %3)
  return (%4)"""
    graph, changed = dce(traced_graph(lambda x: np.sin(x), X))
    assert not changed


# ----------------------------------------------------------------------------- lint, optimize, fuse


def test_lint_reports_broken_invariants():
    graph = traced_graph(lambda x: np.exp(x) + 1, X)
    graph.lint()
    graph.nodes.reverse()
    with pytest.raises(AssertionError, match="np::add uses %1 before it is defined"):
        graph.lint()
    graph = traced_graph(lambda x: np.exp(x) + 1, X)
    graph.nodes[0].outputs[0].users.clear()
    with pytest.raises(AssertionError, match="does not list np::add as a user"):
        graph.lint()


def test_optimize_keeps_results_and_leaves_its_input_alone():
    x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(4, 6)
    fn = lambda x: np.where(x > 0, np.exp(-x), x * 1 * x).sum(axis=0) + np.zeros_like(x).T.sum(axis=1)
    traced = gputrace.trace(fn, x)
    before = text(traced.graph)
    graph = optimize(traced.graph)
    assert text(traced.graph) == before
    assert "np::zeros_like" not in kinds(graph) and "np::T" not in kinds(graph)
    np.testing.assert_array_equal(traced(x), fn(x))


# ----------------------------------------------------------------------------- fusion


def program_of(fn, *args):
    return gputrace.trace(fn, args, check_trace=False).lower(*args)


def launches(program):
    """(generated kernels, matmuls) one call runs."""
    return len(program.kernels), kinds(program.graph).count("np::matmul")


def test_elementwise_chains_diamonds_and_gelu_are_one_kernel():
    x = np.ones((4, 8), np.float32)
    chain = lambda x: np.tanh(np.exp(np.sin(x) * 2 + 1) - 3)
    assert launches(program_of(chain, x)) == (1, 0)
    assert launches(program_of(lambda x: (np.exp(x) + 1, np.exp(x) * 2), x)) == (1, 0)  # a diamond, two outputs
    gelu = lambda x: 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))
    assert launches(program_of(gelu, x)) == (1, 0)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_kernel_count_targets(name):
    """Issue 4: softmax ... attention each in one generated kernel, next to their matmuls."""
    target = TARGETS[name]
    program = program_of(target.fn, *target.make(np.random.default_rng(0)))
    assert launches(program) == (target.kernels, target.matmuls), program.plan


@pytest.mark.parametrize("name", sorted(WRITTEN_PLAINLY))
def test_kernel_count_targets_of_programs_written_plainly(name):
    """Issue 17: cross-entropy in 2 kernels (1 with one-hot targets: the mean of the per-row losses finishes in
    the row kernel), batch norm from running statistics in 1, a GPT-2 block written per
    head in 6 next to its matmuls (a view of a reduction's result, a per-channel scale computed from vectors and
    a bias add before np.split used to end or start kernels), and nothing copied: the RK4 step's np.stack and the
    GPT-2 heads' np.hstack are written in place by the kernel and the matmuls computing their pieces."""
    target = WRITTEN_PLAINLY[name]
    inputs = target.make(np.random.default_rng(0))
    traced = gputrace.trace(target.fn, inputs, check_trace=False)
    plan = traced.lower(*inputs).plan
    assert launches(traced.lower(*inputs)) == (target.kernels, target.matmuls), plan
    assert [step.name for step in plan if isinstance(step, LibraryCall) and "matmul" not in step.name] == [], plan
    want = target.fn(*inputs)  # the fused graph, run by the numpy backend (the kernels: test_emulate_programs)
    np.testing.assert_allclose(traced.run(*inputs, backend="numpy"), want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


# bytes moved over bytes that must move, at the large size, where a program does not reach 1.05 yet: a leading-axis
# reduction's columns too long to hold on chip end its kernel, and the epilogue reads x again
LARGE_TRAFFIC_LEFT = {"batchnorm": 1.51}


@pytest.mark.parametrize("name", sorted(set(bench.BENCHMARKS) - {"mycell", "lstm"}))
def test_benchmark_plans_move_each_byte_about_once_at_the_large_size(name):
    """Issue 17: the launch plan's traffic (its steps' bytes over the program's) at most 1.05 at the large size
    (lowered from uninitialised inputs: nothing is computed)."""
    from benchmarks.run import placeholder_inputs
    benchmark = bench.BENCHMARKS[name]
    traced = gputrace.trace(benchmark.fn, benchmark.inputs(np.random.default_rng(0), "tiny"), check_trace=False)
    plan = traced.lower(*placeholder_inputs(benchmark, "large")).plan
    assert plan.bytes_required == benchmark.bytes_moved("large")
    assert plan.traffic_ratio <= LARGE_TRAFFIC_LEFT.get(name, 1.05), plan.traffic()


@pytest.mark.parametrize("name", ["mycell", "lstm"])
def test_a_plan_moves_more_than_its_program_only_through_its_matmuls_results(name):
    """cuBLAS writes a matmul's result and the kernel of its epilogue reads it back: the only traffic beyond the
    program's own inputs and outputs (each read or written once)."""
    benchmark = bench.BENCHMARKS[name]
    program = program_of(benchmark.fn, *benchmark.inputs(np.random.default_rng(0), "tiny"))
    products = [n.output.type.nbytes for n in program.graph.nodes if n.kind == "np::matmul"]
    assert program.plan.bytes_moved == program.plan.bytes_required + 2 * sum(products), program.plan.traffic()
    assert sum(step.bytes_moved for step in program.plan) == program.plan.bytes_moved


def test_plans_of_programs_written_plainly_report_their_traffic():
    """Batch norm from running statistics moves each byte about once (its 3-channel vectors are read by two
    views); cross-entropy's per-row losses stay in its one kernel (the mean finishes there)."""
    rng = np.random.default_rng(0)
    batchnorm = program_of(WRITTEN_PLAINLY["batchnorm_inference"].fn,
                           *WRITTEN_PLAINLY["batchnorm_inference"].make(rng)).plan
    assert batchnorm.traffic_ratio <= 1.05, batchnorm.traffic()
    logits, onehot = WRITTEN_PLAINLY["cross_entropy_onehot"].make(rng)
    loss = program_of(WRITTEN_PLAINLY["cross_entropy_onehot"].fn, logits, onehot).plan
    assert loss.bytes_required == logits.nbytes + onehot.nbytes + 4
    assert loss.bytes_moved == loss.bytes_required, loss.traffic()
    assert loss.traffic().splitlines()[-1] == (f"moves {loss.bytes_moved:,} bytes, must move {loss.bytes_required:,}: "
                                               f"ratio {loss.traffic_ratio:.2f}")


def test_independent_outputs_of_one_input_share_a_kernel():
    x = np.ones((4, 8), np.float32)
    assert launches(program_of(lambda x: (x + 1, np.exp(x), x > 0), x)) == (1, 0)
    assert launches(program_of(lambda x: (x.sum(0), x.max(0), x.argmin(0)), x)) == (1, 0)
    assert launches(program_of(lambda x: (x.sum(0), x.sum(1), x * 2), x)) == (3, 0)  # three iteration spaces
    assert launches(program_of(lambda x, y: (x + 1, y + 1), x, x)) == (2, 0)  # nothing read twice


def test_siblings_of_one_space_share_a_kernel_whichever_reader_comes_first():
    x = np.ones((4, 8), np.float32)
    # the reductions over all axes read x after one over axis 1: they still find each other
    fn = lambda x: (x.var(axis=1), x.var(), x.std(ddof=2), x.mean(axis=1), x.sum(0), x.max(), x.min(0))
    assert launches(program_of(fn, x)) == (3, 0)


def split_rows(program):
    """Per generated kernel: whether its rows are split over blocks (more launch units than rows)."""
    return [k.elements > min(int(np.prod(t.shape)) for t in k.output_types) for k in program.kernels]


@pytest.mark.parametrize("name", sorted(LONG_ROW_PROGRAMS))
def test_a_long_row_reduction_ends_its_kernel_where_its_result_is_read_back(name):
    """A few long rows are split over blocks; an element reading its row's result waits for the row's last
    block, so it starts the next kernel. Short rows keep the whole program in one kernel."""
    target = LONG_ROW_PROGRAMS[name]
    long_rows, short_rows = np.ones(100_000, np.float32), np.ones(1000, np.float32)
    program = program_of(target.fn, long_rows)
    assert len(program.kernels) == target.kernels, program.plan
    assert split_rows(program) == [any(op in ops.REDUCTIONS for op in k.ops) for k in program.kernels]
    assert launches(program_of(target.fn, short_rows)) == (1, 0)


def c_ordered_type_only(shape):
    """A float32 array of ``shape`` and C-order strides for lowering only (kernels are rendered for its type,
    not run): one element is allocated, the rest is never read."""
    return huge(shape, tuple(4 * s for s in contiguous_strides(shape)))


@pytest.mark.parametrize("shape, split", [((100_000, 2048), True), ((40_000, 64), True), ((4096, 256), False),
                                          ((17_000, 40_000), False)], ids=str)
def test_a_reduction_over_a_leading_axis_splits_its_columns_where_they_are_too_few(shape, split):
    """Columns too long to hold on chip and too few to fill the GPU with a thread each are split over
    threads, so centring (batch-norm style) ends the reduction's kernel where the mean is read back: a split
    column reduction and an elementwise kernel. Columns held in registers (4096 long), or enough of them
    (40,000), keep one kernel, as before."""
    x = c_ordered_type_only(shape)
    center = lambda x: (x - x.mean(axis=0)) / x.std(axis=0)  # noqa: E731
    program = gputrace.trace(center, (np.ones((4, 4), np.float32),), check_trace=False).lower(x)
    assert [k.ops for k in program.kernels] == ([["mean", "std"], ["subtract", "divide"]] if split else
                                                [["mean", "subtract", "std", "divide"]])
    assert split_rows(program)[0] == split
    column_sums = gputrace.trace(lambda x: x.sum(axis=0) * 2, (np.ones((4, 4), np.float32),), check_trace=False)
    assert split_rows(column_sums.lower(x)) == [shape[1] < 40_000], "split too where nothing reads the sums back"


def test_element_values_after_a_split_row_are_computed_again_where_reading_them_costs_more():
    """Softmax over one long row: the division's kernel computes exp(x - max) again from x (4 bytes an
    element) instead of the exp kernel writing it and the division reading it back (8). A value whose
    inputs take as many bytes as it does twice (a * b, both full) is written and read."""
    n = 100_000
    x = np.ones(n, np.float32)
    program = program_of(bench.softmax, x)
    assert [k.ops for k in program.kernels] == [["max"], ["subtract", "exp", "sum"], ["subtract", "exp", "divide"]]
    assert [len(k.outputs) for k in program.kernels] == [1, 1, 1], "only the row results and the softmax"
    assert sum(k.bytes_moved for k in program.kernels) == 4 * n * 4 + 5 * 4  # x read 3 times, one write
    program.graph.lint()

    def product_then_normalize(a, b):
        p = a * b
        return p / p.sum()

    program = program_of(product_then_normalize, x, x)
    assert [k.ops for k in program.kernels] == [["multiply", "sum"], ["divide"]]
    assert len(program.kernels[0].outputs) == 2, "the product is written for the division"

    def normalize_then_also_return(x):
        e = np.exp(x)
        return e / e.sum(), e

    program = program_of(normalize_then_also_return, x)
    assert [k.ops for k in program.kernels] == [["exp", "sum"], ["divide"]], "e is written anyway"


def test_a_per_row_value_that_broadcasting_lines_up_with_columns_ends_the_kernel():
    """``x + x.sum(axis=1)`` for a square x: NumPy lines the (3,) sums up with the last axis, so element (i, j)
    reads row j's sum, which a row kernel does not have: a reduction kernel, then an elementwise one (it was
    one kernel adding row i's sum: silently wrong, found by the fuzzer). The keepdims form, and the dropped
    form of a reduction over the leading axis, line up with the rows: one kernel."""
    x = np.arange(9, dtype=np.float32).reshape(3, 3)
    cases = {lambda x: x + x.sum(axis=1): 2, lambda x: np.maximum(x, x.max(axis=-1)) * 2: 2,
             lambda x: x + x.sum(axis=1, keepdims=True): 1, lambda x: x - x.mean(axis=0): 1, lambda x: x * x.max(): 1}
    for fn, kernels in cases.items():
        traced = gputrace.trace(fn, (x,))
        assert len(traced.kernels) == kernels
        for backend in ("numpy", "emulate") if host_compiler_info()["available"] else ("numpy",):
            np.testing.assert_array_equal(traced.run(x, backend=backend), fn(x))


def test_siblings_joined_through_a_library_call_stay_apart():
    """Merging tanh(x) and exp(x) + m would make a cycle through the matmul between them."""
    x, w = np.ones((4, 4), np.float32), np.eye(4, dtype=np.float32)
    fn = lambda x, w: np.exp(x) + np.tanh(x) @ w
    program = program_of(fn, x, w)
    assert launches(program) == (2, 1)
    program.graph.lint()
    np.testing.assert_allclose(gputrace.trace(fn, (x, w)).run(x, w), fn(x, w), rtol=1e-6)


def test_views_of_a_computed_array_move_above_it():
    """The slices (and transposes) of an elementwise result are computed from sliced inputs, in one kernel."""
    x = np.arange(24, dtype=np.float32).reshape(4, 6)

    def gates(x, y):
        g = x * y + 1
        a, b, c = np.split(g, 3, axis=1)
        return np.tanh(a) * b - c.T.T

    program = program_of(gates, x, x)
    assert launches(program) == (1, 0)
    assert kinds(program.graph).count("np::multiply") == 0  # only inside the group
    np.testing.assert_array_equal(gputrace.trace(gates, (x, x)).run(x, x), gates(x, x))


def test_an_array_split_into_pieces_that_matmuls_read_is_computed_by_one_kernel():
    """A bias add before np.split into heads, each head read by a matmul: the views stay below the add, which
    runs once (moving each head's view above it launched a kernel per head). One piece alone still moves up:
    only its elements are computed."""
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 8)), rng.standard_normal(8)

    def heads(x, w, b):
        q, k = np.split(x @ w + b, 2, axis=-1)
        return tuple(qh @ kh.T for qh, kh in zip(np.split(q, 2, axis=-1), np.split(k, 2, axis=-1)))

    program = program_of(heads, x, w, b)
    assert launches(program) == (1, 3)
    assert program.kernels[0].output_types[0].shape == (5, 8)
    np.testing.assert_array_equal(gputrace.trace(heads, (x, w, b)).run(x, w, b), heads(x, w, b))
    one_piece = program_of(lambda x, w: (x + 1)[:, :2] @ w[:2], x, w)
    assert launches(one_piece) == (1, 1) and one_piece.kernels[0].output_types[0].shape == (5, 2)


def test_a_small_operand_computed_from_vectors_is_computed_again_where_it_is_broadcast():
    """A per-channel scale from vectors is computed per element of the image it scales (no kernel of its own);
    one also returned keeps its kernel (computed once, then read); a per-row value of a reduction stays
    computed once per row (layernorm's sqrt of the variance)."""
    rng = np.random.default_rng(0)
    x, gamma, var = rng.standard_normal((4, 3, 6, 5)), rng.standard_normal(3), rng.random(3) + 0.5
    scaled = lambda x, g, v: x * (g / np.sqrt(v + 1e-5)).reshape(1, -1, 1, 1)  # noqa: E731
    program = program_of(scaled, x, gamma, var)
    assert launches(program) == (1, 0) and len(program.plan) == 1, program.plan
    np.testing.assert_allclose(gputrace.trace(scaled, (x, gamma, var)).run(x, gamma, var), scaled(x, gamma, var),
                               rtol=1e-15)
    assert launches(program_of(lambda x, g: (g * 2, x * (g * 2)[:, None, None]), x, gamma)) == (2, 0)
    layernorm = program_of(TARGETS["layernorm"].fn, *TARGETS["layernorm"].make(rng))
    sqrt, = [n for n in layernorm.graph.find_nodes("gt::FusionGroup")[0].subgraph.nodes if n.kind == "np::sqrt"]
    assert sqrt.output.type.shape == (7, 1)


def test_a_gather_of_a_few_elements_computes_them_again_from_gathered_inputs():
    """log_probs[range(n), y] picks n of n * c log-probabilities: they are computed again from the gathered
    logits in the mean's kernel, and the first kernel writes only per-row values (it wrote the whole array)."""
    target = WRITTEN_PLAINLY["cross_entropy_labels"]
    logits, y = target.make(np.random.default_rng(0))
    program = program_of(target.fn, logits, y)
    assert [t.shape for t in program.kernels[0].output_types] == [(40, 1), (40, 1)]
    assert launches(program) == (2, 0)


def test_a_computed_array_read_whole_is_not_recomputed_per_view():
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    fn = lambda x: (lambda g: (g, g[:, :3] + 1))(np.exp(x))  # g is returned: computed once, the slice read from it
    program = program_of(fn, x)
    group_ops = [n.kind for group in program.graph.find_nodes("gt::FusionGroup") for n in group.subgraph.nodes]
    assert group_ops.count("np::exp") == 1
