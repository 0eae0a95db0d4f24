"""save/load round trips; anything else raises GraphFormatError and executes nothing."""
import io
import json
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import gputrace


@pytest.fixture
def saved(tmp_path):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    traced = gputrace.trace(lambda x: np.tanh(x @ w) + x.sum(axis=1, keepdims=True), np.ones((2, 3), np.float32))
    path = tmp_path / "f.gpt"
    gputrace.save(traced, path)
    return traced, path


def test_round_trip(saved):
    traced, path = saved
    loaded = gputrace.load(path)
    x = np.random.default_rng(0).random((5, 3), dtype=np.float32)
    np.testing.assert_array_equal(loaded(x), traced(x))
    assert str(loaded.graph).count("np::") == str(traced.frozen_graph).count("np::")


def test_round_trip_module(tmp_path):
    cell = gputrace.nn.Sequential(gputrace.nn.Linear(4, 4, seed=0), gputrace.nn.GELU())
    x = np.ones((3, 4), np.float32)
    traced = gputrace.trace(cell, x)
    gputrace.save(traced, tmp_path / "m.gpt")
    np.testing.assert_array_equal(gputrace.load(tmp_path / "m.gpt")(x), cell(x))


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


@pytest.mark.parametrize("mutate, message", [
    (edit_json(lambda d: d.update(version=99)), "version 99"),
    (edit_json(lambda d: d["graph"]["nodes"][1].update(kind="os::system")), "unknown op"),
    (edit_json(lambda d: d["graph"]["inputs"][0]["type"].update(shape=[2**60, 3])), "dimension"),
    (lambda m: m.update({"graph.json": b"{not json"}), "not valid JSON"),
    (lambda m: m.update({"../evil": b""}), "expected members"),
    (lambda m: m.update({"params.npz": b"garbage"}), "params.npz"),
])
def test_hostile_files(saved, mutate, message):
    _, path = saved
    rewrite(path, mutate)
    with pytest.raises(gputrace.GraphFormatError, match=message):
        gputrace.load(path)


def test_truncated_and_foreign_files(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    (tmp_path / "t.gpt").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.gpt").write_text("hello")
    for name in ("t.gpt", "text.gpt"):
        with pytest.raises(gputrace.GraphFormatError):
            gputrace.load(tmp_path / name)


def test_zip_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.gpt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("graph.json", b"{" + b" " * 50_000_000 + b"}")
        z.writestr("params.npz", b"")
    with pytest.raises(gputrace.GraphFormatError, match="unpack"):
        gputrace.load(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_bytes_never_escape_as_other_errors(saved, tmp_path_factory, data):
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
