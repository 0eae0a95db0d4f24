"""Each pass is a function graph -> (graph, changed); golden text on printed graphs."""
import numpy as np

import gputrace
from gputrace.passes import cse, dce, fold, inline, normalize, optimize
from gputrace.passes.fuse import fuse


def traced_graph(fn, *arrays):
    return gputrace.trace(fn, arrays, check_trace=False).graph.copy()


def kinds(graph):
    return [n.kind for n in graph.nodes]


def test_normalize_gives_one_transpose_op():
    x = np.ones((2, 3), np.float32)
    for fn in (lambda x: x.T, lambda x: np.transpose(x), lambda x: np.swapaxes(x, 0, 1), lambda x: np.moveaxis(x, 0, 1)):
        graph, _ = normalize(traced_graph(fn, x))
        assert kinds(graph) == ["np::transpose"]
        assert "np::transpose[axes=(1, 0)](%x)" in str(graph)


def test_normalize_dot_stack_split_zeros_like():
    x = np.ones((2, 3), np.float32)
    graph, changed = normalize(traced_graph(lambda x: np.dot(x, x.T), x))
    assert changed and "np::matmul" in kinds(graph) and "np::dot" not in kinds(graph)
    graph, _ = dce(normalize(traced_graph(lambda x: np.stack([x, x]), x))[0])
    assert kinds(graph) == ["np::expand_dims", "np::expand_dims", "np::concatenate"]
    graph, _ = normalize(traced_graph(lambda x: tuple(np.split(x, 3, axis=1)), x))
    assert kinds(graph) == ["np::getitem"] * 3
    graph, _ = normalize(traced_graph(lambda x: np.zeros_like(x), x))
    assert "np::full_like[fill_value=0, dtype=float32](%x)" in str(graph)


def test_cse_and_dce():
    x = np.ones(3, np.float32)
    graph = traced_graph(lambda x: np.exp(x) + np.exp(x), x)
    graph, changed = cse(graph)
    assert changed and kinds(graph).count("np::exp") == 1
    graph.lint()
    graph = traced_graph(lambda x: (np.sin(x), x * 2)[1], x)
    graph, changed = dce(graph)
    assert changed and "np::sin" not in kinds(graph)


def test_fold_identities_and_constants():
    x = np.ones(3, np.float32)
    graph, changed = fold(traced_graph(lambda x: (x * 1) / 1 - 0, x))
    graph, _ = dce(graph)
    assert changed and [k for k in kinds(graph) if k.startswith("np::")] == []
    graph, _ = fold(traced_graph(lambda x: x + 0.0, x))  # -0.0 + 0.0 is +0.0: not an identity
    assert "np::add" in kinds(graph)


def test_inline_flattens_module_calls():
    cell = gputrace.nn.Sequential(gputrace.nn.Linear(3, 3, seed=1), gputrace.nn.Tanh())
    traced = gputrace.trace(cell, np.ones((2, 3), np.float32))
    assert kinds(traced.graph).count("prim::CallMethod") == 2
    graph, changed = inline(traced.graph.copy())
    assert changed and "prim::CallMethod" not in kinds(graph)
    graph.lint()


def test_fusion_counts():
    x = np.ones((4, 8), np.float32)

    def groups(fn, *args):
        traced = gputrace.trace(fn, args)
        return kinds(traced.lower(*args).graph).count("gt::FusionGroup")

    chain = lambda x: np.tanh(np.exp(np.sin(x) * 2 + 1) - 3)
    assert groups(chain, x) == 1
    assert groups(lambda x: (np.exp(x) + 1, np.exp(x) * 2), x) == 1  # a diamond with two outputs
    gelu = lambda x: 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))
    assert groups(gelu, x) == 1

    def softmax(x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    assert groups(softmax, x) == 1

    def layernorm(x, w, b):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + 1e-5) * w + b
    assert groups(layernorm, x, np.ones(8, np.float32), np.zeros(8, np.float32)) == 1

    w = np.ones((8, 8), np.float32)
    traced = gputrace.trace(lambda x, h: np.tanh(x @ w.T + 1 + h), (x, x))
    program = traced.lower(x, x)
    assert kinds(program.graph).count("np::matmul") == 1 and len(program.kernels) == 1


def test_optimize_keeps_results():
    x = np.linspace(-3, 3, 24, dtype=np.float32).reshape(4, 6)
    fn = lambda x: np.where(x > 0, np.exp(-x), x * x).sum(axis=0)
    traced = gputrace.trace(fn, x)
    graph = optimize(traced.graph)
    assert "np::where" in kinds(graph)
    np.testing.assert_allclose(traced(x), fn(x), rtol=1e-6)
