"""Traced functions on Dask arrays: whole programs per chunk, tree reductions with gputrace's numerics, matmul,
rechunks where rows split, pickling to worker processes, and a LocalCluster of two worker processes."""
import logging
import pickle

import numpy as np
import pytest

import gputrace
import gputrace.dask
from gputrace.backends import nvrtc

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def layer_norm(x, g, b):
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=-1, keepdims=True) + 1e-5) * g + b


def reductions(x, c):
    return (((x - c) ** 2).sum(), x.mean(axis=0), x.var(axis=0, ddof=1), x.std(), x.max(axis=1), np.nanmax(x),
            x.min(), x.argmax(), x.argmin(axis=0), (x > c).any(axis=0), x.sum(axis=1))


W = np.random.default_rng(7).standard_normal((6, 16)).astype(np.float32)
U = np.random.default_rng(8).standard_normal((4, 16)).astype(np.float32)


def lstm_step(x, h, c):
    z = x @ W + h @ U
    i, f, g, o = z[:, :4], z[:, 4:8], z[:, 8:12], z[:, 12:]
    sigmoid = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def dense(a, b, bias):
    return np.maximum(a @ b + bias, 0)


def gputrace_tasks(array) -> dict:
    """The tasks of gputrace's layers in a Dask array's graph, by layer name."""
    layers: dict = {}
    for key in dict(array.__dask_graph__()):
        name = key[0] if isinstance(key, tuple) else key
        if name.startswith("gputrace-"):
            layers[name] = layers.get(name, 0) + 1
    return layers


def first_step_kernels(array, *blocks) -> int:
    """The generated kernels of the first gputrace step in ``array``'s graph, on blocks like ``blocks``."""
    for key, task in dict(array.__dask_graph__()).items():
        if isinstance(key, tuple) and key[0].startswith("gputrace-") and "combine" not in key[0] and \
                "aggregate" not in key[0]:
            return len(task[1].fn.lower(*blocks).kernels)  # (function, the step's program, backend, blocks...)
    raise AssertionError("no gputrace step in the graph")


def assert_matches(got, want, rtol=1e-5):
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-6)


@pytest.fixture
def threads():
    with dask.config.set(scheduler="threads"):
        yield


# ----------------------------------------------------------------------------- pickling


def test_a_traced_function_pickles_as_save_writes_it(rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    traced = gputrace.trace(lstm_step, (x, x[:, :4].copy(), x[:, :4].copy()))
    data = pickle.dumps(traced)
    loaded = pickle.loads(data)
    assert loaded is pickle.loads(data)  # one object per process: its compiled programs are reused
    assert str(loaded.graph) == str(traced.frozen_graph) and np.array_equal(loaded.params["W"], W)
    args = [rng.standard_normal(s).astype(np.float32) for s in [(9, 6), (9, 4), (9, 4)]]
    assert_matches(loaded(*args), lstm_step(*args))
    assert gputrace.serialize.loads(gputrace.serialize.dumps(traced)) is loaded


# ----------------------------------------------------------------------------- whole programs per chunk


def test_row_wise_programs_run_once_per_chunk(rng, threads, caplog):
    x_np = rng.standard_normal((50, 12)).astype(np.float32)
    g, b = rng.standard_normal(12).astype(np.float32), rng.standard_normal(12).astype(np.float32)
    x = da.from_array(x_np, chunks=((20, 20, 10), 12))
    traced = gputrace.trace(softmax, x)
    assert traced.input_types[0].shape == (20, 12)  # traced on one chunk
    out = traced(x)
    assert isinstance(out, da.Array) and out.chunks == x.chunks
    assert list(gputrace_tasks(out).values()) == [3]  # one task per chunk; Dask's own code: one per op
    assert first_step_kernels(out, x_np[:20]) == 1  # the task is one kernel
    own = sum(1 for k in dict(softmax(x).__dask_graph__()) if "from-array" not in str(k) and "array-" not in str(k))
    assert 3 * 3 <= own  # at most a third of the tasks of Dask's own evaluation (7 per chunk)
    np.testing.assert_allclose(out.compute(), softmax(x_np), rtol=1e-6)
    norm = gputrace.trace(layer_norm, (x_np[:10], g, b))
    got = norm(x, g, da.from_array(b, chunks=5))  # NumPy and Dask arrays mixed: broadcast as in NumPy
    np.testing.assert_allclose(got.compute(), layer_norm(x_np, g, b), rtol=1e-5, atol=1e-6)
    # a row split across chunks: rechunked into whole rows, and the fusion log says so
    split = da.from_array(x_np, chunks=((20, 20, 10), (5, 7)))
    with caplog.at_level(logging.INFO, logger="gputrace.fusion"):
        lowering = traced.lower(split)
    assert "rechunk x axis 1 into one chunk: np::max reduces it" in caplog.text
    assert lowering.outputs.chunks == ((20, 20, 10), (12,))
    assert "per chunk: the whole of softmax (3 tasks)" in repr(lowering)
    np.testing.assert_allclose(lowering.outputs.compute(), softmax(x_np), rtol=1e-6)


def test_lstm_step_with_captured_weights_runs_per_row_chunk(rng, threads):
    args = [rng.standard_normal(s).astype(np.float32) for s in [(23, 6), (23, 4), (23, 4)]]
    traced = gputrace.trace(lstm_step, tuple(a[:5] for a in args))
    chunked = [da.from_array(a, chunks=((10, 8, 5), -1)) for a in args]
    lowering = traced.lower(*chunked)
    assert lowering.steps == ["per chunk: the whole of lstm_step (3 tasks, 2 outputs split out)"]
    assert_matches(dask.compute(*lowering.outputs), lstm_step(*args))


def test_dasks_progress_bar_counts_our_tasks(rng, threads, capsys):
    from dask.diagnostics import ProgressBar
    x_np = rng.standard_normal((50, 12)).astype(np.float32)
    traced = gputrace.trace(lambda x: (softmax(x), x.std()), x_np)
    with ProgressBar(minimum=0, dt=0.001):
        got = dask.compute(*traced(da.from_array(x_np, chunks=((20, 20, 10), 12))))
    assert "100% Completed" in capsys.readouterr().out
    assert_matches(got, (softmax(x_np), x_np.std()))


def column_softmax(x):
    e = np.exp(x - x.max(axis=0))
    return e / e.sum(axis=0)


def with_bias(x, b):
    return x * b, b * 2  # the second output has no row axis


def tiles_of(monkeypatch, nbytes: int) -> None:
    """Every block of a per-chunk step on NumPy chunks runs in tiles of ``nbytes`` of its largest input."""
    monkeypatch.setattr(gputrace.dask, "TILE_ABOVE", 0)
    monkeypatch.setattr(gputrace.dask, "TILE_BYTES", nbytes)


def test_large_numpy_blocks_run_in_tiles_with_the_same_bits(rng, threads, monkeypatch):
    x_np = rng.standard_normal((50, 12)).astype(np.float32)
    args = [rng.standard_normal(s).astype(np.float32) for s in [(23, 6), (23, 4), (23, 4)]]
    cube = rng.standard_normal((6, 10, 8)).astype(np.float32)
    cases = [  # (function, arguments, bytes of a tile, the step's log): tiles with a remainder in each
        (softmax, [da.from_array(x_np, chunks=((20, 20, 10), 12))], 8 * 12 * 4,
         "per chunk: the whole of softmax (3 tasks, in tiles of 8 along axis 0 of x)"),
        (lstm_step, [da.from_array(a, chunks=((10, 8, 5), -1)) for a in args], 4 * 6 * 4,
         "per chunk: the whole of lstm_step (3 tasks, 2 outputs split out, in tiles of 4 along axis 0 of x)"),
        (softmax, [da.from_array(cube, chunks=((4, 2), (3, 3, 4), 8))], 3 * 4 * 8 * 4,  # 4 = 3 + 1
         "per chunk: the whole of softmax (6 tasks, in tiles of 3 along axis 0 of x)"),
        (column_softmax, [da.from_array(x_np.T.copy(), chunks=(12, (20, 20, 10)))], 8 * 12 * 4,
         "per chunk: the whole of column_softmax (3 tasks, in tiles of 8 along axis 1 of x)"),
        (with_bias, [da.from_array(x_np, chunks=((20, 20, 10), 12)), x_np[0]], 8 * 12 * 4,
         "per chunk: the whole of with_bias (3 tasks, 2 outputs split out)"),  # an output not split: no tiles
    ]
    for fn, chunked, nbytes, step in cases:
        traced = gputrace.trace(fn, tuple(chunked))
        want = dask.compute(traced(*chunked))[0]
        with monkeypatch.context() as patch:
            tiles_of(patch, nbytes)
            lowering = traced.lower(*chunked)
            assert lowering.steps == [step]
            got = dask.compute(lowering.outputs)[0]
        for g, w, n in zip(_leaves(got), _leaves(want), _leaves(fn(*[np.asarray(x) for x in chunked]))):
            assert g.dtype == w.dtype and np.array_equal(g, w), fn.__name__  # bit for bit as the whole block
            np.testing.assert_allclose(g, n, rtol=1e-5, atol=1e-6)
    tiles_of(monkeypatch, 8)
    emulated = gputrace.trace(softmax, x_np).run(da.from_array(x_np, chunks=10), backend="emulate")
    assert {task[3] for key, task in dict(emulated.__dask_graph__()).items()
            if key[0].startswith("gputrace-")} == {None}  # tiles on the numpy backend only


# ----------------------------------------------------------------------------- tree reductions and matmul


def test_reductions_over_chunked_axes_keep_numpy_results(rng, threads):
    x_np = rng.standard_normal((50, 12)).astype(np.float32)
    x_np[3, 4] = x_np[30, 2] = np.nan  # max, min and argmax propagate NaN as NumPy does; nanmax skips it
    clean = np.abs(x_np) + 1
    traced = gputrace.trace(reductions, (x_np, np.float32(0.5)))
    for data in (x_np, clean):
        x = da.from_array(data, chunks=((20, 20, 10), (5, 7)))
        lowering = traced.lower(x, np.float32(0.5))
        chunk_layers = [n for n in gputrace_tasks(lowering.outputs[0]) if n.startswith("gputrace-chunk")]
        assert gputrace_tasks(lowering.outputs[0])[chunk_layers[0]] == 6  # one fused chunk step for all of them
        assert not any("rechunk" in s for s in lowering.steps)
        assert_matches(dask.compute(*lowering.outputs), reductions(data, np.float32(0.5)))
    # every reduction of x reads it in one chunk step, and one kernel where they reduce alike
    stats = gputrace.trace(lambda x: (x.std(), ((x - 0.5) ** 2).sum(), np.nanmax(x)), x_np)
    assert first_step_kernels(stats(x)[0], x_np[:20, :5]) == 1
    ints = rng.integers(-50, 50, (30, 7)).astype(np.int32)
    summed = gputrace.trace(lambda x: (x.sum(), x.mean(axis=0), x.argmax(axis=0), x.max()), ints)
    assert_matches(dask.compute(*summed(da.from_array(ints, chunks=(8, 3)))),
                   (ints.sum(), ints.mean(axis=0), ints.argmax(axis=0), ints.max()))


def column_stats(x, c):
    return (x.std(), x.var(axis=0, ddof=1), ((x - c) ** 2).sum(), x.argmax(), x.argmin(axis=0), np.nanmax(x),
            x.max(axis=0), x.mean(axis=0))


def test_chunk_steps_of_large_numpy_blocks_combine_their_tiles_states(rng, threads, monkeypatch):
    x_np = rng.standard_normal((50, 12)).astype(np.float32)
    x_np[27, 4] = np.nan  # in the first tile of the second chunk: argmax and max find it, nanmax skips it
    want = column_stats(x_np, np.float32(0.5))
    rows = da.from_array(x_np, chunks=((20, 20, 10), 12))
    traced = gputrace.trace(column_stats, (rows, np.float32(0.5)))
    tiles_of(monkeypatch, 8 * 12 * 4)
    lowering = traced.lower(rows, np.float32(0.5))
    assert lowering.steps[0].startswith("per chunk: column_stats prologue and partial std, var, sum, argmax, argmin, ")
    assert lowering.steps[0].endswith("(3 tasks, in tiles of 8 along axis 0 of x)")
    assert_matches(dask.compute(*lowering.outputs), want)
    both = da.from_array(x_np, chunks=((20, 20, 10), (5, 7)))  # flat reductions tiled along rows of 2-d blocks
    flat = gputrace.trace(lambda x: (x.std(), x.argmax(), x.argmin(), x.sum()), both)
    tiles_of(monkeypatch, 8 * 7 * 4)
    lowering = flat.lower(both)
    assert "in tiles of 8 along axis 0 of x" in lowering.steps[0]
    assert_matches(dask.compute(*lowering.outputs), (x_np.std(), x_np.argmax(), x_np.argmin(), x_np.sum()))
    assert_matches(dask.compute(*flat.lower(np.nan_to_num(both)).outputs),
                   (np.nan_to_num(x_np).std(), np.nan_to_num(x_np).argmax(), np.nan_to_num(x_np).argmin(),
                    np.nan_to_num(x_np).sum()))
    # reductions over different chunked axes share no letter to tile along: the block runs whole
    mixed = gputrace.trace(reductions, (both, np.float32(0.5)))
    lowering = mixed.lower(both, np.float32(0.5))
    assert "tiles" not in lowering.steps[0]
    assert_matches(dask.compute(*lowering.outputs), reductions(x_np, np.float32(0.5)))


def test_variance_over_many_chunks_merges_as_chan(rng, threads):
    # a large mean and a small spread: a naive sum of squares in float32 loses every digit
    x_np = (1e4 + rng.standard_normal(4000)).astype(np.float32)
    traced = gputrace.trace(lambda x: (x.var(), x.std(ddof=1), x.mean()), x_np[:100])
    got = dask.compute(*traced(da.from_array(x_np, chunks=100)))
    exact = x_np.astype(np.float64)
    np.testing.assert_allclose(got, (exact.var(), exact.std(ddof=1), exact.mean()), rtol=1e-6)
    naive = da.from_array(x_np, chunks=100).var().compute()  # Dask's own merge, from float32 chunk moments
    assert abs(naive - exact.var()) > 10 * abs(got[0] - exact.var())


def dask_layers(array) -> dict:
    """The tasks of each kind of layer in a Dask array's graph (``matmul``, ``gputrace-dense``, ...)."""
    found: dict = {}
    for key in dict(array.__dask_graph__()):
        name = (key[0] if isinstance(key, tuple) else key).rsplit("-", 1)[0]
        found[name] = found.get(name, 0) + 1
    return found


def test_matmul_is_dasks_blocked_matmul_with_a_gputrace_epilogue(rng, threads):
    a_np = rng.standard_normal((30, 20)).astype(np.float32)
    b_np = rng.standard_normal((20, 9)).astype(np.float32)
    bias = rng.standard_normal(9).astype(np.float32)
    traced = gputrace.trace(dense, (a_np, b_np, bias))
    a, b = da.from_array(a_np, chunks=((10, 15, 5), (8, 12))), da.from_array(b_np, chunks=((8, 12), (4, 5)))
    lowering = traced.lower(a, b, bias)
    assert lowering.steps[1:] == ["Dask's blocked matmul: da.matmul of (3, 2) by (2, 2) blocks",
                                  "per chunk: the whole of dense (6 tasks)"]  # + bias and relu: one task per block
    layers = dask_layers(lowering.outputs)
    assert layers["matmul"] == 3 * 2 * 2 and layers["gputrace-dense"] == 6  # Dask's product, our epilogue
    np.testing.assert_allclose(lowering.outputs.compute(), dense(a_np, b_np, bias), rtol=1e-5, atol=1e-5)
    # x @ x.T on chunked rows: every row block meets every other, as Dask's own x @ x.T does; no rechunk
    gram = gputrace.trace(lambda x, c: np.tanh(0.1 * (x - c) @ (x - c).T + c[:, :1]), (a_np, a_np[:, :1]))
    x = da.from_array(a_np, chunks=((10, 15, 5), 20))
    lowering = gram.lower(x, da.from_array(a_np[:, :1], chunks=((10, 15, 5), 1)))
    assert lowering.steps == ["per chunk: the operands of matmul in <lambda> (3 tasks, 2 outputs split out)",
                              "Dask's blocked matmul: da.matmul of (3, 1) by (1, 3) blocks",
                              "per chunk: the whole of <lambda> (9 tasks)"]
    assert lowering.outputs.chunks == ((10, 15, 5), (10, 15, 5))
    assert gputrace_tasks(lowering.outputs) == {lowering.outputs.name: 9, **{
        n: 3 for n in gputrace_tasks(lowering.outputs) if n != lowering.outputs.name}}
    c_np = a_np[:, :1]
    want = np.tanh(0.1 * (a_np - c_np) @ (a_np - c_np).T + c_np[:, :1])
    np.testing.assert_allclose(lowering.outputs.compute(), want, rtol=1e-5, atol=1e-5)
    rows = gputrace.trace(lambda x: softmax(x @ x.T), a_np)  # a row of the product split across blocks
    lowering = rows.lower(x)
    assert lowering.steps[1:] == ["rechunk the result of np::matmul to ((10, 15, 5), (30,)): what follows needs its "
                                  "axes whole", "per chunk: the whole of <lambda> (3 tasks)"]
    np.testing.assert_allclose(lowering.outputs.compute(), softmax(a_np @ a_np.T), rtol=1e-5, atol=1e-6)
    plain = gputrace.trace(lambda x: x @ x.T, a_np)  # its transpose is Dask's, fused into the product's blocks
    lowering = plain.lower(x)
    assert lowering.steps == ["Dask's blocked matmul: da.matmul of (3, 1) by (1, 3) blocks"]
    np.testing.assert_allclose(lowering.outputs.compute(), a_np @ a_np.T, rtol=1e-5, atol=1e-5)


def centre(x):
    return x - x.mean(axis=0), ((x - x.mean()) ** 2).mean(), np.swapaxes(x, 0, 1).max(axis=1), x.T.argmin(), x.T @ x


def test_a_reduction_whose_result_meets_its_axis_again(rng, threads):
    x_np = rng.standard_normal((40, 6)).astype(np.float32)
    traced = gputrace.trace(centre, x_np)
    x = da.from_array(x_np, chunks=(9, 4))
    lowering = traced.lower(x)  # small: the rows are rechunked into one chunk
    assert "rechunk x axis 0 into one chunk: np::mean reduces it and its result meets it again (a row split across " \
           "chunks)" in lowering.steps
    assert_matches(dask.compute(*lowering.outputs), centre(x_np))
    with dask.config.set({"array.chunk-size": "256B"}):  # too large for one chunk: a tree reduction, then the rest
        lowering = traced.lower(x)
    assert lowering.steps[0].startswith("two passes: np::mean reduces an axis its result meets again")
    assert lowering.outputs[0].chunks == ((9, 9, 9, 9, 4), (6,))
    assert_matches(dask.compute(*lowering.outputs), centre(x_np))


def test_axes_a_reshape_makes_are_not_split(rng, threads):
    x_np, y_np = rng.standard_normal(24).astype(np.float32), rng.standard_normal((6, 4)).astype(np.float32)
    traced = gputrace.trace(lambda x, y: np.tanh(x.reshape(6, 4) + y), (x_np, y_np))
    lowering = traced.lower(da.from_array(x_np, chunks=8), da.from_array(y_np, chunks=(2, 4)))
    assert lowering.steps[:2] == ["rechunk x axis 0 into one chunk: np::reshape reads across it",
                                  "rechunk y axis 0 into one chunk: it meets an axis made by a slice or reshape"]
    np.testing.assert_allclose(lowering.outputs.compute(), np.tanh(x_np.reshape(6, 4) + y_np), rtol=1e-6)


def mlp(x, params, *, act="relu", scale=1.0):
    h = x @ params["w"] + params["b"]
    h = np.maximum(h, 0) if act == "relu" else np.tanh(h)
    return h * scale, (h.mean(axis=0), h.std())


def test_nested_and_keyword_arguments_as_on_numpy_arrays(rng, threads):
    x_np = rng.standard_normal((30, 8)).astype(np.float32)
    p = {"w": rng.standard_normal((8, 4)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32)}
    traced = gputrace.trace(mlp, (x_np[:5], p), example_kwarg_inputs={"scale": 0.5})
    x = da.from_array(x_np, chunks=((7, 7, 7, 9), 8))
    params = {"w": da.from_array(p["w"], chunks=(3, 4)), "b": p["b"]}  # Dask and NumPy arrays in one dict
    calls = [((x, params), {"scale": 0.5}), ((), {"x": x, "params": params, "scale": 2.0}),  # a Python float leaf
             ((x, params), {"act": "tanh"}),  # another static value (and scale's default): traced again
             ((x.astype(np.float64), params), {})]  # another dtype: traced again, as on NumPy arrays
    for args, kwargs in calls:
        out, stats = traced(*args, **kwargs)
        assert isinstance(out, da.Array) and out.chunks == (x.chunks[0], (4,))
        numpy_args = [x_np.astype(args[0].dtype) if args else x_np, p]
        assert_matches([out.compute(), *dask.compute(*stats)], [np.asarray(r) for r in _leaves(
            mlp(*numpy_args, **{k: v for k, v in kwargs.items() if k not in ("x", "params")}))], rtol=2e-5)
    lowering = traced.lower(x, params=params, scale=0.5)
    assert lowering.steps[-1] == "per chunk: the whole of mlp (4 tasks)"  # the row-wise output: one per chunk
    out, stats = pickle.loads(pickle.dumps(traced))(x, params=params, scale=2.0)  # unpickled: nested, by keyword
    assert_matches([out.compute(), *dask.compute(*stats)], [np.asarray(r) for r in _leaves(mlp(x_np, p, scale=2.0))],
                   rtol=2e-5)
    # a tuple argument, and tracing on nested Dask arrays (their first chunks)
    step = gputrace.trace(lambda x, hc: lstm_step(x, *hc), (x_np[:5, :6], (x_np[:5, :4], x_np[:5, 4:])))
    hc = (da.from_array(x_np[:, :4], chunks=7), da.from_array(x_np[:, 4:], chunks=7))
    assert_matches(dask.compute(*step(da.from_array(x_np[:, :6], chunks=7), hc)),
                   lstm_step(x_np[:, :6], x_np[:, :4], x_np[:, 4:]))
    on_dask = gputrace.trace(mlp, (x, {"w": da.from_array(p["w"]), "b": da.from_array(p["b"])}))
    assert [t.shape for t in on_dask.input_types] == [(7, 8), (8, 4), (4,)]


def _leaves(tree) -> list:
    return [leaf for t in tree for leaf in _leaves(t)] if isinstance(tree, tuple) else [tree]


# ----------------------------------------------------------------------------- bad inputs


def test_bad_dask_inputs_raise_clear_errors(rng, threads, monkeypatch):
    x_np = rng.standard_normal((20, 6)).astype(np.float32)
    x = da.from_array(x_np, chunks=(5, 6))
    traced = gputrace.trace(softmax, x)
    with pytest.raises(gputrace.SignatureError, match="expected dtype float32 as traced, got float64"):
        traced(x.astype(np.float64))
    with pytest.raises(gputrace.SignatureError, match=r"argument 'x' \(position 0\): expected a numpy.ndarray or "
                                                      r"cupy.ndarray as traced, got a list of 1"):
        traced([x])  # as the same call on NumPy arrays says
    with pytest.raises(gputrace.SignatureError, match=r"softmax\(\) takes 1 array argument \(x\) but 2 were given"):
        traced(x, x)
    with pytest.raises(ValueError, match=r"unknown chunk sizes .* call x.compute_chunk_sizes\(\) first"):
        traced(x[x[:, 0] > 0])
    reads_shape = gputrace.trace(lambda x: x.sum(axis=0) / x.shape[0], x)
    with pytest.raises(gputrace.UnsupportedOperationError, match=r"reads array shapes .* traced at \[\(5, 6\)\]"):
        reads_shape(x)
    with pytest.raises(gputrace.BackendUnavailableError):  # a worker without CUDA asked for it
        traced.run(x, backend="cuda").compute()
    # tracing on Dask arrays runs on their first chunks: NumPy's error about those chunks' shapes says so
    with pytest.raises(ValueError, match=r"could not be broadcast") as error:
        gputrace.trace(lambda x, b: x * b, (x, np.ones((20, 1), np.float32)))
    assert "(20, 6) traced as its first chunk (5, 6)" in "".join(error.value.__notes__)
    monkeypatch.setitem(__import__("sys").modules, "dask.array", None)
    with pytest.raises(ImportError, match=r'pip install "gputrace\[dask\]"'):
        gputrace.dask.require_dask()


# ----------------------------------------------------------------------------- a cluster of worker processes


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
        yield client


def test_programs_run_on_two_worker_processes(rng, cluster):
    x_np = rng.standard_normal((50, 12)).astype(np.float32)
    x = da.from_array(x_np, chunks=((20, 20, 10), (5, 7)))
    traced = gputrace.trace(reductions, (x_np, np.float32(0.5)))
    args = [rng.standard_normal(s).astype(np.float32) for s in [(23, 6), (23, 4), (23, 4)]]
    step = gputrace.trace(lstm_step, tuple(args))
    row_wise = gputrace.trace(softmax, x)
    g, b = rng.standard_normal(12).astype(np.float32), rng.standard_normal(12).astype(np.float32)
    norm = gputrace.trace(layer_norm, (x_np[:10], g, b))
    a_np, w_np = rng.standard_normal((30, 20)).astype(np.float32), rng.standard_normal((20, 9)).astype(np.float32)
    dense_step = gputrace.trace(dense, (a_np, w_np, b[:9]))  # Dask's blocked matmul, our epilogue per block
    a, w = da.from_array(a_np, chunks=((10, 15, 5), (8, 12))), da.from_array(w_np, chunks=((8, 12), (4, 5)))
    with distributed.get_task_stream(cluster) as stream:  # what the dashboard's task stream shows
        outputs = cluster.compute([*traced(x, np.float32(0.5)), row_wise(x),
                                   *step(*[da.from_array(a, chunks=(10, -1)) for a in args]),
                                   norm(da.from_array(x_np, chunks=((20, 20, 10), 12)), g, b),
                                   dense_step(a, w, b[:9])], sync=True)
    assert_matches(outputs[:11], reductions(x_np, np.float32(0.5)))
    np.testing.assert_allclose(outputs[11], softmax(x_np), rtol=1e-6)
    assert_matches(outputs[12:14], lstm_step(*args))
    np.testing.assert_allclose(outputs[14], layer_norm(x_np, g, b), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs[15], dense(a_np, w_np, b[:9]), rtol=1e-5, atol=1e-5)
    assert len(cluster.scheduler_info()["workers"]) == 2
    ran = {task["key"][0] if isinstance(task["key"], tuple) else task["key"] for task in stream.data}
    assert {"gputrace-chunk", "gputrace-softmax", "gputrace-lstm_step", "gputrace-layer_norm", "gputrace-dense"} <= \
        {"-".join(k.split("-")[:2]) for k in ran}  # (Dask fuses its matmul blocks into our epilogue's tasks)
    assert len({task["worker"] for task in stream.data}) == 2  # both workers ran tasks
    # each worker unpickles each step once and compiles it once per chunk shape (17 pairs in all), not per task
    compiled = cluster.run(lambda: sum(len(f._programs) for f in gputrace.serialize._UNPICKLED.values()))
    assert 0 < sum(compiled.values()) and all(n <= 17 for n in compiled.values())


def shifted_softmax(x):
    return softmax(x - 1)


def test_tiles_compile_once_per_tile_shape_on_each_worker(rng, cluster, monkeypatch):
    x_np = rng.standard_normal((64, 12)).astype(np.float32)
    x = da.from_array(x_np, chunks=((20, 20, 20, 4), 12))
    traced = gputrace.trace(shifted_softmax, x)
    want = traced(x).compute(scheduler="threads")
    tiles_of(monkeypatch, 8 * 12 * 4)  # decided where the graph is built: the tasks carry it to the workers
    got = cluster.compute(traced(x), sync=True)
    assert np.array_equal(got, want)
    compiled = cluster.run(lambda: sum(len(f._programs) for f in gputrace.serialize._UNPICKLED.values()
                                       if f.name == "shifted_softmax"))
    assert 0 < sum(compiled.values()) and all(n <= 2 for n in compiled.values())  # 8 rows and 4 (20 = 8 + 8 + 4)


def test_a_trace_of_nested_arguments_is_submitted_to_a_worker_process(rng, cluster):
    x = rng.standard_normal((9, 8)).astype(np.float32)
    p = {"w": rng.standard_normal((8, 4)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32)}
    traced = gputrace.trace(mlp, (x[:5], p), example_kwarg_inputs={"scale": 0.5})
    got = cluster.submit(traced, x, params=p, scale=2.0).result()  # pickled as gputrace.save writes it
    assert_matches(_leaves(got), [np.asarray(r) for r in _leaves(mlp(x, p, scale=2.0))], rtol=2e-5)


@pytest.mark.slow
def test_emulate_chunks_on_threads(rng, threads):
    x_np = rng.standard_normal((40, 12)).astype(np.float32)
    traced = gputrace.trace(reductions, (x_np, np.float32(0.5)))
    x = da.from_array(x_np, chunks=(20, 6))  # one chunk shape: one emulate build per program
    assert_matches(dask.compute(*traced.run(x, np.float32(0.5), backend="emulate")), reductions(x_np, np.float32(0.5)))
    row_wise = gputrace.trace(softmax, x)
    np.testing.assert_allclose(row_wise.run(x, backend="emulate").compute(), softmax(x_np), rtol=1e-6)


@pytest.mark.slow
def test_emulate_on_two_worker_processes(rng, cluster):
    x_np = rng.standard_normal((40, 12)).astype(np.float32)
    x = da.from_array(x_np, chunks=(10, 6))
    traced = gputrace.trace(lambda x: (softmax(x), x.std(), x.argmax(axis=0)), x)
    assert_matches(cluster.compute(list(traced.run(x, backend="emulate")), sync=True),
                   (softmax(x_np), x_np.std(), x_np.argmax(axis=0)))


@pytest.mark.slow
def test_out_of_core_reduction_on_workers_with_1_gib(tmp_path):
    """4 GiB of float32, generated lazily in 64 MiB chunks, reduced by two workers limited to 1 GiB each."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, memory_limit="1GiB", dashboard_address=":0",
                                  silence_logs=logging.ERROR, local_directory=str(tmp_path)) as cluster, \
            distributed.Client(cluster) as client:
        x = da.random.default_rng(0).standard_normal((1 << 16, 1 << 14), chunks=(1 << 10, 1 << 14),
                                                     dtype=np.float32)
        traced = gputrace.trace(lambda x: (x.std(), ((x - 0.5) ** 2).sum(axis=0), x.max()), x)
        std, centred, top = client.compute(list(traced(x)), sync=True)
        sample = x[:4096].compute()
        assert abs(std - 1) < 1e-3 and abs(sample.std() - 1) < 0.01
        assert centred.shape == (1 << 14,) and np.all(np.abs(centred / x.shape[0] - 1.25) < 0.05)
        assert top >= sample.max()


def test_the_readme_example_runs():
    from pathlib import Path
    import re
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Beyond one GPU"):]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(example, "README.md", "exec"), {"__name__": "readme"})


@pytest.mark.gpu
@pytest.mark.skipif(not nvrtc.gpu_available(), reason="needs a CUDA GPU")
def test_cupy_chunks_on_a_local_cuda_cluster(rng):
    cupy = pytest.importorskip("cupy")
    dask_cuda = pytest.importorskip("dask_cuda")
    x_np = rng.standard_normal((4096, 512)).astype(np.float32)
    x = da.from_array(x_np, chunks=(1000, 512)).map_blocks(cupy.asarray)
    traced = gputrace.trace(lambda x: (softmax(x), x.std(), x.argmax(axis=0), x.T @ x), x)
    with dask_cuda.LocalCUDACluster(n_workers=1) as cluster, distributed.Client(cluster) as client:
        got = client.compute(list(traced(x)), sync=True)
    assert all(isinstance(g, cupy.ndarray) for g in got)
    want = (softmax(x_np), x_np.std(), x_np.argmax(axis=0), x_np.T @ x_np)
    for g, w in zip(got, want):
        np.testing.assert_allclose(cupy.asnumpy(g), w, rtol=1e-4, atol=1e-3)
