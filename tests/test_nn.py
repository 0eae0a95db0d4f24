"""Modules written with gputrace.nn, traced like torch.jit.trace: the seed's MyCell and friends."""
import re
import warnings

import numpy as np
import pytest

import gputrace
from gputrace import nn


def without_locations(graph):
    return re.sub(r"  # \S+:\d+:\d+", "", str(graph))


@pytest.fixture
def xh(rng):
    return rng.random((3, 4), dtype=np.float32), rng.random((3, 4), dtype=np.float32)


@pytest.fixture
def traced_cell(my_cell, xh):
    """The seed's MyCell (gputrace.cli.make_cell, as the demo traces it) traced on (x, h)."""
    return my_cell, gputrace.trace(my_cell, xh)


def test_printing_the_traced_module_names_its_submodules(traced_cell):
    _, traced = traced_cell
    assert str(traced) == "MyCell(\n  original_name=MyCell\n  (linear): Linear(original_name=Linear)\n)"


def test_graph_calls_submodules_like_torchscript(traced_cell):
    _, traced = traced_cell
    assert without_locations(traced.graph) == """\
graph(%self : __gputrace__.MyCell,
      %x : Float32(3, 4, strides=[4, 1], device=cpu),
      %h : Float32(3, 4, strides=[4, 1], device=cpu)):
  %linear : __gputrace__.Linear = prim::GetAttr[name="linear"](%self)
  %1 : Float32(3, 4, strides=[4, 1], device=cpu) = prim::CallMethod[name="forward"](%linear, %x)
  %2 : Float32(3, 4, strides=[4, 1], device=cpu) = np::add(%1, %h)
  %3 : Float32(3, 4, strides=[4, 1], device=cpu) = np::tanh(%2)
  return (%3, %3)"""
    cell, _ = traced_cell
    line = type(cell).forward.__code__.co_firstlineno + 1
    assert f"np::tanh(%2)  # mycell.py:{line}:16" in str(traced.graph)


def test_inlined_graph_is_flat(traced_cell):
    _, traced = traced_cell
    assert without_locations(traced.inlined_graph) == """\
graph(%self : __gputrace__.MyCell,
      %x : Float32(3, 4, strides=[4, 1], device=cpu),
      %h : Float32(3, 4, strides=[4, 1], device=cpu)):
  %linear : __gputrace__.Linear = prim::GetAttr[name="linear"](%self)
  %weight : Float32(4, 4, strides=[4, 1], device=cpu) = prim::GetAttr[name="weight"](%linear)
  %4 : Float32(4, 4, strides=[1, 4], device=cpu) = np::T(%weight)
  %5 : Float32(3, 4, strides=[4, 1], device=cpu) = np::matmul(%x, %4)
  %bias : Float32(4, strides=[1], device=cpu) = prim::GetAttr[name="bias"](%linear)
  %6 : Float32(3, 4, strides=[4, 1], device=cpu) = np::add(%5, %bias)
  %2 : Float32(3, 4, strides=[4, 1], device=cpu) = np::add(%6, %h)
  %3 : Float32(3, 4, strides=[4, 1], device=cpu) = np::tanh(%2)
  return (%3, %3)"""
    traced.inlined_graph.lint()


def test_code_is_python_like_torchscript_code(traced_cell, xh):
    cell, traced = traced_cell
    assert traced.code == """\
def forward(self, x, h):
    linear = self.linear
    _1 = linear.forward(x)
    _2 = np.add(_1, h)
    _3 = np.tanh(_2)
    return (_3, _3)
"""
    for got, want in zip(traced.python()(cell, *xh), cell(*xh)):
        np.testing.assert_array_equal(got, want)


def test_calling_the_traced_module_matches_eager(traced_cell, xh, rng):
    cell, traced = traced_cell
    for x, h in [xh, (rng.random((7, 4), dtype=np.float32), rng.random((7, 4), dtype=np.float32))]:
        got, want = traced(x, h), cell(x, h)
        assert isinstance(got, tuple) and len(got) == 2
        for g, w in zip(got, want):
            assert g.dtype == np.float32
            np.testing.assert_array_equal(g, w)


def test_parameters_updated_after_tracing_are_seen(traced_cell, xh, rng):
    cell, traced = traced_cell
    cell.linear.weight = nn.Parameter(rng.random((4, 4), dtype=np.float32))  # reassigned
    np.testing.assert_array_equal(traced(*xh)[0], cell(*xh)[0])
    cell.linear.bias *= 3  # changed in place (and assigned back: still a parameter)
    np.testing.assert_array_equal(traced(*xh)[0], cell(*xh)[0])
    assert [name for name, _ in cell.named_parameters()] == ["linear.weight", "linear.bias"]


@pytest.fixture
def mlp():
    return nn.Sequential(nn.Linear(4, 8, seed=0), nn.ReLU(), nn.Linear(8, 8, seed=1), nn.GELU(), nn.Tanh(),
                         nn.Sigmoid(), nn.SiLU(), nn.Softmax(axis=-1))


def test_sequential_with_activations_matches_eager(mlp, rng):
    x = rng.standard_normal((5, 4)).astype(np.float32)
    traced = gputrace.trace(mlp, x)
    np.testing.assert_array_equal(traced(x), mlp(x))
    x2 = rng.standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_array_equal(traced(x2), mlp(x2))
    assert str(traced).splitlines()[:4] == ["Sequential(", "  original_name=Sequential",
                                            "  (0): Linear(original_name=Linear)", "  (1): ReLU(original_name=ReLU)"]
    assert str(traced.graph).count("prim::CallMethod") == len(mlp) == 8


def test_sequential_code_runs(mlp):
    """Children named "0", "1", ... are not identifiers: .code reads them with getattr."""
    x = np.ones((2, 4), np.float32)
    traced = gputrace.trace(mlp, x)
    assert "_0 = getattr(self, '0')" in traced.code
    np.testing.assert_array_equal(traced.python()(mlp, x), mlp(x))


def test_module_repr_shows_configuration(mlp):
    assert repr(mlp).splitlines()[1] == "  (0): Linear(in_features=4, out_features=8, bias=True)"
    assert repr(nn.Softmax(axis=0)) == "Softmax(axis=0)"


class Shared(nn.Module):
    """One submodule called twice, a buffer, keyword arguments, and a second traced method."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4, seed=0)
        self.register_buffer("scale", np.full(4, 2, np.float32))

    def forward(self, x):
        return self.lin(self.lin(x=x)) * self.scale

    def encode(self, x, h):
        return np.maximum(self.lin(x), h)


def test_shared_submodule_buffers_and_several_methods(rng):
    m = Shared()
    x, h = rng.random((3, 4), dtype=np.float32), rng.random((3, 4), dtype=np.float32)
    traced = gputrace.trace_module(m, {"forward": (x,), "encode": (x, h)})
    assert str(traced.graph).count('prim::CallMethod[name="forward"](%lin') == 2
    assert 'prim::GetAttr[name="scale"](%self)' in str(traced.graph)
    np.testing.assert_array_equal(traced(x), m(x))
    np.testing.assert_array_equal(traced.encode(x, h), m.encode(x, h))
    assert sorted(traced.params) == ["lin.bias", "lin.weight", "scale"]
    m.scale = np.full(4, 5, np.float32)  # a buffer replaced after tracing
    np.testing.assert_array_equal(traced(x), m(x))


def test_linear_layout_and_parameters():
    layer = nn.Linear(3, 5, seed=0)
    assert layer.weight.shape == (5, 3) and layer.bias.shape == (5,)
    assert [name for name, _ in nn.Sequential(layer).named_parameters()] == ["0.weight", "0.bias"]
    no_bias = nn.Linear(3, 5, bias=False)
    x = np.ones((2, 3), np.float32)
    traced = gputrace.trace(no_bias, x)
    assert "bias" not in str(traced.inlined_graph)
    np.testing.assert_array_equal(traced(x), x @ no_bias.weight.T)


@pytest.mark.parametrize("make, error, message", [
    (lambda: nn.Linear(0, 3), ValueError, r"Linear\(in_features\): expected a positive int, got 0"),
    (lambda: nn.Sequential(nn.ReLU(), np.tanh), TypeError,
     r"Sequential\(modules\[1\]\): expected a gputrace.nn.Module"),
    (lambda: nn.Parameter([1.0]), TypeError, r"Parameter\(data\): expected a numpy.ndarray"),
])
def test_module_construction_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_forgetting_super_init_is_explained():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(3))

    with pytest.raises(AttributeError, match=r"Broken.__init__ must call super\(\).__init__\(\)"):
        Broken()


def test_trace_module_rejects_bad_arguments(my_cell):
    with pytest.raises(TypeError, match="expected a gputrace.nn.Module"):
        gputrace.trace_module(lambda x: x, {"forward": np.ones(3)})
    with pytest.raises(AttributeError, match="MyCell has no method 'backward'"):
        gputrace.trace_module(my_cell, {"backward": np.ones(3)})


SCALE = np.array([1, 2, 3, 4], np.float32)


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4, seed=0)

    def forward(self, x):
        return self.lin(x) * SCALE


def test_a_module_may_use_arrays_it_does_not_own(tmp_path):
    """A global array read by forward is a named param of the trace, like a module attribute."""
    model, x = Scaled(), np.ones((2, 4), np.float32)
    traced = gputrace.trace(model, x)
    assert 'prim::Param[name="SCALE"]()' in str(traced.frozen_graph)
    assert sorted(traced.params) == ["SCALE", "lin.bias", "lin.weight"]
    np.testing.assert_array_equal(traced(x), model(x))
    gputrace.save(traced, tmp_path / "scaled.gpt")
    np.testing.assert_array_equal(gputrace.load(tmp_path / "scaled.gpt")(x), model(x))


def test_random_numbers_inside_a_module_fail_the_check():
    class Noisy(nn.Module):
        def forward(self, x):
            return x + np.random.rand(3)

    with pytest.raises(gputrace.TracingCheckError, match="a constant differs between traces"):
        gputrace.trace(Noisy(), np.ones(3))


def test_updating_a_buffer_in_place_warns_that_the_module_keeps_its_value():
    class Accumulate(nn.Module):
        def __init__(self):
            super().__init__()
            self.total = np.zeros(3, np.float32)

        def forward(self, x):
            total = self.total
            total += x  # eager NumPy changes the buffer; the trace does not
            return total

    model = Accumulate()
    with pytest.warns(gputrace.TracerWarning, match="in-place `\\+=` on a captured array .* is traced out of place"):
        traced = gputrace.trace(model, np.ones(3, np.float32), check_trace=False)
    np.testing.assert_array_equal(traced(np.ones(3, np.float32)), np.ones(3))
    np.testing.assert_array_equal(model.total, np.zeros(3))


def _add_in_place(module, x):
    module.total += x


def _replace(module, x):
    module.total = x * 2


@pytest.mark.parametrize("update", [_add_in_place, _replace])
def test_assigning_a_traced_array_to_a_module_attribute_is_refused_and_leaves_the_module_alone(update):
    class Stateful(nn.Module):
        def __init__(self):
            super().__init__()
            self.total = np.zeros(3, np.float32)

        def forward(self, x):
            update(self, x)
            return x + 1

    model = Stateful()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gputrace.TracerWarning)  # `+=` warns first that it is out of place
        with pytest.raises(gputrace.TracingError, match=r"Stateful\.total = <traced array> .*cannot change module "
                                                        r"state.*keep the value in a local variable"):
            gputrace.trace(model, np.ones(3, np.float32))
    assert isinstance(model.total, np.ndarray) and not model.total.any()
    assert "total" in model._buffers
