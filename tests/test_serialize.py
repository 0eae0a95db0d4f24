"""save/load round trips; a corrupted, truncated, foreign or hostile file raises GraphFormatError and runs nothing."""
import inspect
import io
import json
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import gputrace
from gputrace import nn

W = np.arange(12, dtype=np.float32).reshape(3, 4)


def head_fn(x):
    y = np.tanh(x @ W) + x.sum(axis=1, keepdims=True)
    return y[:, ::2].T, np.where(y > 1, y, 0.5).astype(np.float16)


@pytest.fixture
def saved(tmp_path):
    traced = gputrace.trace(head_fn, np.ones((2, 3), np.float32))
    path = tmp_path / "f.gpt"
    gputrace.save(traced, path)
    return traced, path


# ----------------------------------------------------------------------------- round trips


def test_function_round_trip(saved, rng):
    traced, path = saved
    loaded = gputrace.load(path)
    assert str(loaded.graph) == str(traced.frozen_graph)
    assert loaded.params.keys() == {"W"} and np.array_equal(loaded.params["W"], W)
    for shape in [(2, 3), (5, 3)]:
        x = rng.random(shape, dtype=np.float32)
        for got, want in zip(loaded(x), head_fn(x)):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(loaded.python()(x)[0], head_fn(x)[0])  # .code reads the saved params


def test_module_round_trip(my_cell, tmp_path, rng):
    cell = my_cell
    x, h = rng.random((3, 4), dtype=np.float32), rng.random((3, 4), dtype=np.float32)
    gputrace.save(gputrace.trace(cell, (x, h)), tmp_path / "cell.gpt")
    loaded = gputrace.load(tmp_path / "cell.gpt")
    assert 'prim::Param[name="linear.weight"]()' in str(loaded.graph)
    got, want = loaded(x, h), cell(x, h)
    assert isinstance(got, tuple) and len(got) == 2
    np.testing.assert_array_equal(got[1], want[1])
    cell.linear.weight = nn.Parameter(np.zeros((4, 4), np.float32))  # the file keeps the weights it saved
    np.testing.assert_array_equal(loaded(x, h)[0], got[0])


def test_non_strict_outputs_round_trip(tmp_path):
    x = np.arange(3, dtype=np.float32)
    traced = gputrace.trace(lambda x: {"a": [x * 2, x + 1]}, x, strict=False)
    gputrace.save(traced, tmp_path / "d.gpt")
    got = gputrace.load(tmp_path / "d.gpt")(x)
    assert list(got) == ["a"] and isinstance(got["a"], list)
    np.testing.assert_array_equal(got["a"][1], x + 1)


def test_loaded_trace_checks_signatures(saved):
    loaded = gputrace.load(saved[1])
    with pytest.raises(gputrace.SignatureError, match=r"argument 'x' \(position 0\): expected dtype float32"):
        loaded(np.ones((2, 3)))


def test_a_loaded_trace_that_read_shapes_cannot_be_respecialised(tmp_path):
    traced = gputrace.trace(lambda x: x.reshape(x.shape[0], -1), np.ones((2, 3, 4), np.float32))
    gputrace.save(traced, tmp_path / "r.gpt")
    loaded = gputrace.load(tmp_path / "r.gpt")
    np.testing.assert_array_equal(loaded(np.ones((2, 3, 4), np.float32)), np.ones((2, 12)))
    with pytest.raises(gputrace.SignatureError, match=r"reads array shapes, so it cannot be re-specialised "
                                                      r"to \[\(5, 3, 4\)\] without the Python function"):
        loaded(np.ones((5, 3, 4), np.float32))


def rows_scaled(x):
    return x * np.full(x.shape[1], 1.0 / x.shape[0], np.float32) + W[:1, :x.shape[1]]


def test_specialisations_travel_with_the_trace(rng):
    traced = gputrace.trace(rows_scaled, rng.random((4, 3), dtype=np.float32))
    for n in (2, 7):
        traced(rng.random((n, 3), dtype=np.float32))  # traced again at each shape
    for loaded in (pickle.loads(pickle.dumps(traced)), gputrace.load(io.BytesIO(gputrace.serialize.dumps(traced)))):
        assert loaded.fn is None and len(loaded.specializations()) == 2
        for n in (4, 2, 7):  # run without the Python function: nothing re-traced on a worker
            x = rng.random((n, 3), dtype=np.float32)
            np.testing.assert_array_equal(loaded(x), rows_scaled(x))
        with pytest.raises(gputrace.SignatureError, match=r"cannot be re-specialised to \[\(5, 3\)\]"):
            loaded(rng.random((5, 3), dtype=np.float32))


def test_a_modules_specialisations_store_its_weights_once(tmp_path, rng):
    from test_specialization import CausalAttention
    module = CausalAttention(4)
    traced = gputrace.trace(module, rng.random((6, 4)).astype(np.float32))  # np.sqrt(4): an np.float64 constant
    traced(rng.random((3, 4)).astype(np.float32))
    gputrace.save(traced, tmp_path / "m.gpt")
    with zipfile.ZipFile(tmp_path / "m.gpt") as archive:
        document = json.loads(archive.read("graph.json"))
        stored = np.load(io.BytesIO(archive.read("params.npz"))).files
    assert document["specializations"][0]["params"] == {"proj.weight": "param:proj.weight",
                                                        "proj.bias": "param:proj.bias"}
    assert sorted(k for k in stored if k.startswith("param:")) == ["param:proj.bias", "param:proj.weight"]
    loaded = gputrace.load(tmp_path / "m.gpt")
    for t in (6, 3):
        x = rng.random((t, 4)).astype(np.float32)
        np.testing.assert_allclose(loaded(x), module(x), rtol=1e-5, atol=1e-7)


def test_a_file_written_before_specialisations_were_saved_loads(rng):
    from pathlib import Path
    loaded = gputrace.load(Path(__file__).parent / "data" / "head_fn-format1-2026-12-02.gpt")
    assert loaded.specializations() == [] and loaded.call is None  # nor was the call: arrays by position
    x = rng.random((5, 3), dtype=np.float32)
    for got, want in zip(loaded(x), head_fn(x)):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(gputrace.SignatureError, match=r"head_fn\(\) takes arrays by position only, got the keyword "
                                                      r"arguments \['x'\]"):
        loaded(x=x)


def test_bad_specialisations_raise_graph_format_error(tmp_path, rng):
    traced = gputrace.trace(rows_scaled, rng.random((4, 3), dtype=np.float32))
    traced(rng.random((2, 3), dtype=np.float32))
    data = gputrace.serialize.dumps(traced)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        document, npz = json.loads(archive.read("graph.json")), archive.read("params.npz")

    def rewritten(change) -> io.BytesIO:
        changed = json.loads(json.dumps(document))
        change(changed)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("graph.json", json.dumps(changed))
            archive.writestr("params.npz", npz)
        out.seek(0)
        return out
    bad = [(lambda d: d.update(specializations={}), "the specializations are not a list"),
           (lambda d: d["specializations"][0].update(params={"W": "spec9:W"}), "'spec9:W' is missing"),
           (lambda d: d["specializations"][0].update(graph={"inputs": [], "nodes": [], "outputs": []}),
            "takes other inputs than the graph")]
    for change, message in bad:
        with pytest.raises(gputrace.GraphFormatError, match=message):
            gputrace.load(rewritten(change))


# ----------------------------------------------------------------------------- nested and keyword arguments


def sgd_step(params, grads, lr):
    for name in params:
        params[name] -= lr * grads[name]
    return sum((p ** 2).sum() for p in params.values())


def init_layers(rng, sizes=(4, 8, 3)):
    return [{"W": rng.standard_normal((m, n)).astype(np.float32) / m, "b": rng.standard_normal(n).astype(np.float32)}
            for m, n in zip(sizes, sizes[1:])]


def forward(layers, x, activation="relu"):
    for layer in layers[:-1]:
        x = x @ layer["W"] + layer["b"]
        x = np.maximum(x, 0) if activation == "relu" else np.tanh(x)
    return x @ layers[-1]["W"] + layers[-1]["b"]


def standardize(x, axis=0, dtype=np.float32):
    n = x.shape[axis]  # read: a trace per shape
    mean = x.sum(axis=axis, keepdims=True) / n
    return ((x - mean) / np.sqrt(((x - mean) ** 2).sum(axis=axis, keepdims=True) / n)).astype(dtype)


def round_trip(traced, tmp_path=None):
    if tmp_path is None:
        return pickle.loads(pickle.dumps(traced))
    gputrace.save(traced, tmp_path / "t.gpt")
    return gputrace.load(tmp_path / "t.gpt")


def error_of(call) -> str:
    with pytest.raises(gputrace.GputraceError) as error:
        call()
    return f"{type(error.value).__name__}: {error.value}"


@pytest.mark.parametrize("backend", ["numpy", "emulate"])
def test_an_sgd_step_over_a_dict_of_parameters_pickles(backend, rng):
    params = {"W": rng.standard_normal((4, 3)).astype(np.float32), "b": rng.standard_normal(3).astype(np.float32)}
    grads = {name: rng.standard_normal(p.shape).astype(np.float32) for name, p in params.items()}
    traced = gputrace.trace(sgd_step, ({k: p.copy() for k, p in params.items()}, grads, 0.1))
    loaded = round_trip(traced)
    assert loaded.fn is None and loaded.call.roots == ["params", "grads", "lr"]
    for lr in (0.03, 1.5):  # a new learning rate and new arrays run the same trace
        params = {name: rng.standard_normal(p.shape).astype(np.float32) for name, p in params.items()}
        grads = {name: rng.standard_normal(p.shape).astype(np.float32) for name, p in params.items()}
        expected = {name: p.copy() for name, p in params.items()}
        want = sgd_step(expected, grads, lr)
        got = loaded.run(params, grads, lr, backend=backend)
        for name in params:  # the caller's arrays updated in place, as NumPy updates them
            assert params[name].dtype == np.float32
            np.testing.assert_array_equal(params[name], expected[name])
        assert np.asarray(got).dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5)
    assert not loaded._retraced


def test_an_mlp_over_a_list_of_layers_saves_with_its_keywords(tmp_path, rng):
    layers, x = init_layers(rng), rng.standard_normal((5, 4)).astype(np.float32)
    tanh_calls = [lambda l, x: ((l, x, "tanh"), {}), lambda l, x: ((l, x), {"activation": "tanh"}),
                  lambda l, x: ((), {"x": x, "layers": l, "activation": "tanh"})]
    relu_calls = [lambda l, x: ((l, x), {}), lambda l, x: ((l,), {"x": x, "activation": "relu"})]  # the default
    for traced_with, calls in [({"activation": "tanh"}, tanh_calls), ({}, relu_calls)]:
        traced = gputrace.trace(forward, (layers, x), example_kwarg_inputs=traced_with)
        loaded = round_trip(traced, tmp_path)
        for make in calls:
            layers, x = init_layers(rng), rng.standard_normal((7, 4)).astype(np.float32)
            args, kwargs = make(layers, x)
            np.testing.assert_allclose(loaded(*args, **kwargs), forward(*args, **kwargs), rtol=1e-5, atol=1e-6)
        # a call that nests otherwise: the error of the function as traced
        for bad in [lambda f: f(layers[:1], x, **traced_with), lambda f: f([layers[0], (1, 2)], x, **traced_with),
                    lambda f: f(layers, x=list(x), **traced_with)]:
            assert error_of(lambda: bad(loaded)) == error_of(lambda: bad(traced))
        assert not loaded._retraced
    with pytest.raises(gputrace.SignatureError, match=r"forward\(\) was loaded without its Python function, so it "
                                                      r"runs the arguments it was traced with only: argument "
                                                      r"'activation' \(position 2\) is passed, where the traced call "
                                                      r"left it to its default \('relu'\); trace the function again"):
        loaded(layers, x, activation="tanh")
    np.testing.assert_allclose(traced(layers, x, activation="tanh"), forward(layers, x, "tanh"), rtol=1e-5, atol=1e-6)


def test_a_static_int_and_dtype_select_the_saved_trace(tmp_path, rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    traced = gputrace.trace(standardize, (x, 1), example_kwarg_inputs={"dtype": np.float64})
    traced(rng.standard_normal((3, 5)).astype(np.float32), axis=1, dtype=np.float64)  # traced again: it reads shapes
    loaded = round_trip(traced, tmp_path)
    assert len(loaded.specializations()) == 1
    for shape in [(4, 6), (3, 5)]:
        x = rng.standard_normal(shape).astype(np.float32)
        for got in (loaded(x, 1, np.float64), loaded(x, axis=1, dtype=np.float64)):
            assert got.dtype == np.float64
            np.testing.assert_array_equal(got, standardize(x, 1, np.float64))
    for call, how in [(lambda: loaded(x, dtype=np.float64), "argument 'axis' is not passed, where the traced call "
                                                            "passed it"),
                      (lambda: loaded(x, True, np.float64), r"argument 'axis' \(position 1\) is bool \(True\) where it "
                                                            r"was int \(1\) when traced"),
                      (lambda: loaded(x, 1), "argument 'dtype' is not passed"),
                      (lambda: loaded(x, 1, np.float16), r"argument 'dtype' \(position 2\) is type "
                                                         r"\(<class 'numpy.float16'>\) where it was type")]:
        with pytest.raises(gputrace.SignatureError, match="loaded without its Python function.*: " + how):
            call()
    with pytest.raises(gputrace.SignatureError, match=r"cannot be re-specialised to \[\(2, 2\)\]"):
        loaded(np.ones((2, 2), np.float32), 1, np.float64)


def test_what_cannot_be_saved_is_refused_naming_the_argument(tmp_path, rng):
    from collections import namedtuple
    Dense = namedtuple("Dense", "W b")
    x = rng.standard_normal((3, 4)).astype(np.float32)

    def dense(x, layer, xp):
        w, b = layer
        return xp.tanh(x @ w + b)
    def dense_in_dict(params, x):
        return np.tanh(x @ params["layer"].W + params["layer"].b)
    layer = Dense(np.ones((4, 2), np.float32), np.zeros(2, np.float32))
    for traced, message in [(gputrace.trace(dense, (x, layer, np)), r"save: layer is a namedtuple Dense, which cannot "
                                                                    r"be saved: a saved trace keeps dicts"),
                            (gputrace.trace(dense, (x, tuple(layer), np)),
                             r"save: xp is the static value the module numpy, which cannot be saved"),
                            (gputrace.trace(dense_in_dict, ({"layer": layer}, x)),
                             r"save: params\['layer'\] is a namedtuple Dense")]:
        with pytest.raises(gputrace.UnsupportedOperationError, match=message):
            gputrace.save(traced, tmp_path / "f.gpt")
        with pytest.raises(gputrace.UnsupportedOperationError, match=message):
            pickle.dumps(traced)


def test_a_default_that_cannot_be_saved_is_left_to_the_function(tmp_path, rng):
    from test_arguments import init_params, mlp  # mlp(params, x, lr, act="tanh", xp=np)
    params, x = init_params(rng), rng.standard_normal((3, 4)).astype(np.float32)
    traced = gputrace.trace(mlp, (params, x, 0.1))
    loaded = round_trip(traced, tmp_path)
    for got, want in zip(loaded(params, x, 0.2, act="tanh"), mlp(params, x, 0.2)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    with pytest.raises(gputrace.SignatureError, match=r"argument 'xp' is passed, where the traced call left it to its "
                                                      r"default \(<the module numpy, not saved>\)"):
        loaded(params, x, 0.2, xp=np)
    again = round_trip(loaded)  # a loaded trace saves its signature as it was loaded
    assert str(inspect.signature(again.call.fn)) == str(inspect.signature(loaded.call.fn)) == \
        "(params, x, lr, act='tanh', xp=<the module numpy, not saved>)"


def nest(depth):
    return "array" if depth == 0 else {"list": [nest(depth - 1)]}


HOSTILE_CALLS = [  # a change of the saved call of sgd_step(params, grads, lr), and the error it gives
    (lambda c: c.update(arguments={"params": "array"}), "not an object with arguments"),
    (lambda c: c["arguments"].__setitem__(0, {"set": [["W", "array"]]}), "unrecognised argument"),
    (lambda c: c["arguments"].__setitem__(0, nest(40)), "nest too deeply"),
    (lambda c: c["arguments"][0]["dict"].append(["c", "array"]), "more arrays than the graph has inputs"),
    (lambda c: c["arguments"].__setitem__(2, {"static": 1}), "fewer arrays than the graph has inputs"),
    (lambda c: c["arguments"][0]["dict"][0].__setitem__(1, "float"), "a Python float argument is the graph input"),
    (lambda c: c["arguments"].__setitem__(2, "array"), None),  # loads, and takes lr as a 0-d array
    (lambda c: c["arguments"][0]["dict"][1].__setitem__(0, "W"), "keys that are not distinct"),
    (lambda c: c["arguments"][0]["dict"][1].__setitem__(0, [1]), "unrecognised attribute"),
    (lambda c: c["arguments"][0]["dict"][1].__setitem__(1, {"static": {"array": "const0"}}), "missing from params"),
    (lambda c: c["arguments"][0]["dict"].append(["c", {"static": {"scalar": "float32", "value": 1.0}}]),
     "do not bind to its signature as saved"),  # a NumPy scalar is an array leaf: one leaf more than inputs
    (lambda c: c["signature"][0].update(name="a b"), "a parameter name that is not an identifier: 'a b'"),
    (lambda c: c["signature"][0].update(name=""), "a parameter name that is not an identifier"),
    (lambda c: c["signature"][0].update(name="lambda"), "bad parameter"),
    (lambda c: c["signature"][0].update(kind="SOMETIMES"), "not an object with a name and a kind"),
    (lambda c: c["signature"][0].update(kind="KEYWORD_ONLY"), "signature is not valid"),
    (lambda c: c["signature"][1].update(name="params"), "duplicate parameter name"),
    (lambda c: c["signature"].pop(), "do not bind to its signature"),
    (lambda c: c.update(signature="f(params, grads, lr)"), "not a list of parameters"),
    (lambda c: c.update(positional=4), "positional count or keyword names"),
    (lambda c: c.update(positional=True), "positional count or keyword names"),
    (lambda c: c.update(positional=2, keywords=["lr"]), "do not bind to its signature as saved"),  # lr: positional
    (lambda c: c.update(positional=2, keywords=["lr()"]), "positional count or keyword names"),
    (lambda c: c["signature"][2].update(default=0.0), "do not bind to its signature as saved"),  # lr=0.0 is dropped
]


@pytest.mark.parametrize("change, message", HOSTILE_CALLS)
def test_hostile_calls_raise_graph_format_error(change, message, rng):
    params = {"W": np.ones((4, 3), np.float32), "b": np.ones(3, np.float32)}
    document, npz = None, None
    with zipfile.ZipFile(io.BytesIO(gputrace.serialize.dumps(gputrace.trace(sgd_step, (params, params, 0.0))))) as z:
        document, npz = json.loads(z.read("graph.json")), z.read("params.npz")
    change(document["call"])
    target = io.BytesIO()
    with zipfile.ZipFile(target, "w") as z:
        z.writestr("graph.json", json.dumps(document))
        z.writestr("params.npz", npz)
    target.seek(0)
    if message is None:
        loaded = gputrace.load(target)
        params = {"W": rng.random((4, 3), dtype=np.float32), "b": rng.random(3, dtype=np.float32)}
        want = sgd_step({k: p.copy() for k, p in params.items()}, params, 0.5)
        np.testing.assert_allclose(loaded(params, params, np.float64(0.5)), want, rtol=1e-5)
        return
    with pytest.raises(gputrace.GraphFormatError, match=message):
        gputrace.load(target)


def test_save_rejects_what_is_not_a_trace(tmp_path):
    with pytest.raises(TypeError, match="expected a TracedFunction or TracedModule, got function"):
        gputrace.save(head_fn, tmp_path / "f.gpt")


# ----------------------------------------------------------------------------- bad files


def rewrite(path, mutate):
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    mutate(members)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def edit_json(edit):
    def mutate(members):
        doc = json.loads(members["graph.json"])
        edit(doc)
        members["graph.json"] = json.dumps(doc)
    return mutate


def node_of(doc, kind):
    return next(n for n in doc["graph"]["nodes"] if n["kind"] == kind)


def npz_bytes(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def deflate_bomb():
    """A params.npz whose one member inflates 1000-fold: a 24 MB array from a few kB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        array = io.BytesIO()
        np.save(array, np.zeros(3_000_000))
        z.writestr("param:W.npy", array.getvalue())
    return buffer.getvalue()


HOSTILE = {
    "wrong-version": (edit_json(lambda d: d.update(version=99)), "format version 99; this gputrace reads version 1"),
    "not-a-trace": (edit_json(lambda d: d.update(format="something-else")), "graph.json is not a gputrace trace"),
    "unknown-op": (edit_json(lambda d: node_of(d, "np::tanh").update(kind="os::system")), "unknown op 'os::system'"),
    "kind-not-a-string": (edit_json(lambda d: node_of(d, "np::tanh").update(kind=["np::tanh"])), "unknown op"),
    "oversized-dimension": (edit_json(lambda d: d["graph"]["inputs"][0]["type"].update(shape=[2**60, 3])),
                            r"a dimension must be an integer in \[0, 281474976710656\)"),
    "oversized-size": (edit_json(lambda d: d["graph"]["inputs"][0]["type"].update(shape=[2**30, 2**30])),
                       "is too large"),
    "lying-type": (edit_json(lambda d: node_of(d, "np::tanh")["outputs"][0]["type"].update(shape=[7, 4])),
                   r"np::tanh claims types \['Float32\(7, 4"),
    "forward-reference": (edit_json(lambda d: node_of(d, "np::tanh").update(inputs=[99])),
                          "np::tanh refers to an undefined value"),
    "attribute-injection": (edit_json(lambda d: node_of(d, "np::sum")["attrs"].update(
        {"x=__import__('os').system('echo hacked')) #": 1})), "attribute name that is not an identifier"),
    "unknown-attribute": (edit_json(lambda d: node_of(d, "np::tanh")["attrs"].update(dtype={"dtype": "float32"})),
                          r"np::tanh has attributes it does not take: \['dtype'\]"),
    "constant-of-another-type": (edit_json(lambda d: node_of(d, "prim::Constant")["attrs"].update(value="text")),
                                 "a constant's value does not match its type"),
    "subgraph-on-an-op": (edit_json(lambda d: node_of(d, "np::tanh").update(subgraph={"inputs": [], "nodes": []})),
                          "np::tanh has a subgraph"),
    "object-input": (edit_json(lambda d: d["graph"]["inputs"][0].update(type={"object": "Module"})),
                     "the graph's inputs must all be arrays"),
    "missing-param": (lambda m: m.update({"params.npz": npz_bytes()}), "parameter 'W' is missing from params.npz"),
    "param-of-another-shape": (lambda m: m.update({"params.npz": npz_bytes(**{"param:W": np.ones(3, np.float32)})}),
                               "parameter 'W' does not match its type in the graph"),
    "bad-json": (lambda m: m.update({"graph.json": b"{not json"}), "graph.json is not valid JSON"),
    "json-not-utf8": (lambda m: m.update({"graph.json": b"\xff\xfe{}"}), "graph.json is not valid JSON"),
    "extra-member": (lambda m: m.update({"../evil": b"x"}), r"expected members \['graph.json', 'params.npz'\]"),
    "missing-member": (lambda m: m.pop("params.npz"), "expected members"),
    "npz-garbage": (lambda m: m.update({"params.npz": b"garbage"}), "params.npz is not a valid array archive"),
    "npz-is-a-npy": (lambda m: m.update({"params.npz": m["params.npz"][m["params.npz"].index(b"\x93NUMPY"):]}),
                     "params.npz is not a valid array archive"),
    "npz-complex-param": (lambda m: m.update({"params.npz": npz_bytes(**{"param:W": np.ones((3, 4), np.complex64)})}),
                          "has unsupported dtype complex64"),
    "npz-deflate-bomb": (lambda m: m.update({"params.npz": deflate_bomb()}), r"params.npz/param:W.npy would unpack"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_files_raise_graph_format_error(saved, name):
    mutate, message = HOSTILE[name]
    _, path = saved
    rewrite(path, mutate)
    with pytest.raises(gputrace.GraphFormatError, match=message):
        gputrace.load(path)


class CreatesAFile:
    """Unpickling this object would create a file: the proof that pickles are never loaded."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_pickled_arrays_are_refused_and_never_unpickled(saved, tmp_path):
    _, path = saved
    evidence = tmp_path / "unpickled"
    payload = np.array([CreatesAFile(evidence)], dtype=object)
    pickle.dumps(payload)  # the payload really is a pickle
    rewrite(path, lambda m: m.update({"params.npz": npz_bytes(**{"param:W": payload})}))
    with pytest.raises(gputrace.GraphFormatError, match="params.npz is not a valid array archive"):
        gputrace.load(path)
    assert not evidence.exists()


def test_nothing_is_extracted_to_disk(saved, tmp_path):
    _, path = saved
    rewrite(path, lambda m: m.update({"../escaped.txt": b"x", "/tmp/absolute.txt": b"x"}))
    with pytest.raises(gputrace.GraphFormatError):
        gputrace.load(path)
    assert not (path.parent.parent / "escaped.txt").exists()


def test_a_member_declaring_a_huge_size_is_refused_before_reading(saved):
    """A zip bomb: the central directory says graph.json unpacks to almost 4 GiB."""
    _, path = saved
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")  # graph.json's central directory record, written first
    assert data[entry + 46:entry + 56] == b"graph.json"
    data[entry + 24:entry + 28] = (0xFFFF_FFF0).to_bytes(4, "little")  # uncompressed size
    path.write_bytes(bytes(data))
    with pytest.raises(gputrace.GraphFormatError, match=r"graph.json would unpack to 4294967280 bytes"):
        gputrace.load(path)


def test_an_encrypted_member_is_refused(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02")
    data[entry + 8] |= 1  # the "encrypted" flag
    path.write_bytes(bytes(data))
    with pytest.raises(gputrace.GraphFormatError, match="not a readable zip archive"):
        gputrace.load(path)


def test_a_member_stored_twice_is_refused(saved, tmp_path):
    """Zip readers disagree on which copy counts: a file with two graph.json is no trace."""
    _, path = saved
    other = tmp_path / "other.gpt"
    gputrace.save(gputrace.trace(lambda x: x * 3, np.ones((2, 3), np.float32)), other)
    with zipfile.ZipFile(path) as z, zipfile.ZipFile(other) as o:
        members = [(n, z.read(n)) for n in z.namelist()] + [("graph.json", o.read("graph.json"))]
    with pytest.warns(UserWarning, match="Duplicate name: 'graph.json'"), zipfile.ZipFile(path, "w") as z:
        for name, data in members:
            z.writestr(name, data)
    with pytest.raises(gputrace.GraphFormatError,
                       match=r"expected members \['graph.json', 'params.npz'\], found \['graph.json', 'graph.json', "):
        gputrace.load(path)


def nested_groups(input_type: dict, depth: int) -> str:
    """A graph that is ``depth`` fusion groups inside each other, each passing its input through (written by hand:
    json.dumps itself cannot nest this deep)."""
    t = json.dumps(input_type)
    node = ('{"name": "g", "inputs": [{"name": "x", "type": %s}], "nodes": [{"kind": "gt::FusionGroup", "inputs": [0], '
            '"attrs": {}, "outputs": [{"name": "y", "type": %s}], "subgraph": ' % (t, t))
    innermost = '{"name": "g", "inputs": [{"name": "x", "type": %s}], "nodes": [], "outputs": [0]}' % t
    return node * depth + innermost + '}], "outputs": [1]}' * depth


@pytest.mark.parametrize("depth", [20, 5000])
def test_deeply_nested_subgraphs_load_or_are_refused(saved, depth):
    _, path = saved

    def nest(members):
        doc = json.loads(members["graph.json"])
        graph = nested_groups(doc.pop("graph")["inputs"][0]["type"], depth)
        members["graph.json"] = json.dumps(doc)[:-1] + ', "graph": ' + graph + "}"

    rewrite(path, nest)
    if depth > 1000:  # deeper than Python's recursion limit: refused, never a RecursionError
        with pytest.raises(gputrace.GraphFormatError, match="graph.json is not valid JSON .*recursion"):
            gputrace.load(path)
        return
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(gputrace.load(path)(x), x)


def test_load_executes_nothing(saved, monkeypatch):
    """Loading parses and type-checks the graph; no op of it runs until the trace is called."""
    _, path = saved

    def no_running(kind, *args, **kwargs):
        raise AssertionError(f"load ran {kind}")

    with monkeypatch.context() as patch:
        patch.setattr(gputrace.ops, "run_op", no_running)
        loaded = gputrace.load(path)
    x = np.ones((2, 3), np.float32)
    for got, want in zip(loaded(x), head_fn(x)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("content", [b"", b"hello, this is text", b"PK\x03\x04 truncated"],
                         ids=["empty", "text", "zip-magic"])
def test_foreign_files(tmp_path, content):
    path = tmp_path / "foreign.gpt"
    path.write_bytes(content)
    with pytest.raises(gputrace.GraphFormatError, match="not a readable zip archive"):
        gputrace.load(path)


def test_a_random_zip_is_not_a_trace(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(gputrace.GraphFormatError, match=r"expected members .* found \['readme.txt'\]"):
        gputrace.load(path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated_files(saved, fraction):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(gputrace.GraphFormatError):
        gputrace.load(path)


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        gputrace.load(tmp_path / "nowhere.gpt")


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.data())
def test_mutated_bytes_load_or_raise_graph_format_error(saved, tmp_path_factory, data):
    _, path = saved
    blob = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    target = tmp_path_factory.mktemp("m") / "m.gpt"
    target.write_bytes(bytes(blob))
    try:
        gputrace.load(target)
    except gputrace.GraphFormatError:
        pass


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                         max_size=3), max_leaves=6)


def json_paths(value, path=()):
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from json_paths(child, path + (key,))


@SETTINGS
@given(st.data())
def test_mutated_json_loads_and_runs_or_raises_graph_format_error(saved, tmp_path_factory, data):
    """Replace any value of graph.json with any JSON: load either refuses it or gives a trace that runs."""
    _, path = saved
    with zipfile.ZipFile(path) as z:
        doc, params = json.loads(z.read("graph.json")), z.read("params.npz")
    where = data.draw(st.sampled_from(list(json_paths(doc))[1:]))
    owner = doc
    for key in where[:-1]:
        owner = owner[key]
    owner[where[-1]] = data.draw(JSON_VALUES)
    target = tmp_path_factory.mktemp("j") / "j.gpt"
    with zipfile.ZipFile(target, "w") as z:
        z.writestr("graph.json", json.dumps(doc))
        z.writestr("params.npz", params)
    try:
        loaded = gputrace.load(target)
    except gputrace.GraphFormatError:
        return
    loaded(np.ones((2, 3), np.float32))
    loaded.python()
