"""Notebook and terminal views: graphs with their fusion groups, kernels, launch plans, check reports."""
import shutil
import sys

import numpy as np
import pytest

import gputrace
from gputrace import display
from gputrace.check import CheckReport, Difference, OutputCheck
from gputrace.codegen.kernel import Kernel
from gputrace.errors import KernelCompileError


def tanh_matmul_exp(x, w):
    return np.exp(np.tanh(x) @ w)


@pytest.fixture
def program():
    """Two fusion groups around a matmul: kernel, library call, kernel."""
    x, w = np.ones((3, 4), np.float32), np.ones((4, 2), np.float32)
    program = gputrace.trace(tanh_matmul_exp, (x, w)).lower(x, w)
    assert len(program.kernels) == 2  # rendering names the groups after their kernels
    return program


@pytest.fixture
def no_graphviz(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)


@pytest.fixture
def no_nvrtc(monkeypatch):
    def missing(self, arch="sm_90"):
        raise gputrace.BackendUnavailableError("NVRTC is not installed")
    for method in ("ptx", "sass", "resources"):
        monkeypatch.setattr(Kernel, method, missing)


def test_short_types_read_like_a_jaxpr():
    assert display.short_type(gputrace.TensorType(np.dtype(np.float32), (3, 4))) == "f32[3,4]"
    assert display.short_type(gputrace.TensorType(np.dtype(bool), ())) == "bool[]"
    assert display.short_type(gputrace.TensorType(np.dtype(np.int64), (4, 4), (1, 4))) == "i64[4,4, strided]"


def test_text_layout_frames_each_fusion_group(program):
    assert display.graph_text(program.graph) == "\n".join([
        "tanh_matmul_exp(%x: f32[3,4], %w: f32[4,2]):",
        "  ┌ fusion group gt_fused_0_tanh",
        "  │ %1: f32[3,4] = np::tanh %x",
        "  └ %4 = %1",
        "  %2: f32[3,2] = np::matmul %4 %w",
        "  ┌ fusion group gt_fused_1_exp",
        "  │ %3: f32[3,2] = np::exp %2",
        "  └ %5 = %3",
        "  return (%5)",
    ])


def test_text_layout_writes_constants_inline():
    traced = gputrace.trace(lambda x: x * 2.5 + 1, np.ones(3, np.float32))
    assert display.graph_text(traced.graph).splitlines()[1:] == [
        "  %2: f32[3] = np::multiply %x 2.5",
        "  %4: f32[3] = np::add %2 1",
        "  return (%4)",
    ]


def test_dot_source_has_one_cluster_per_fusion_group(program):
    dot = display.graph_dot(program.graph)
    assert dot.count("subgraph cluster_") == 2
    assert 'label="fusion group gt_fused_0_tanh"' in dot and 'label="fusion group gt_fused_1_exp"' in dot
    assert "np::matmul %4 %w" in dot
    assert dot.count("-> out;") == 1
    # edges stay at the top level: an edge written inside a cluster would draw both its ends inside
    assert all(line.startswith("  n") or line.startswith("  in") for line in dot.splitlines() if "->" in line)
    assert not [line for line in dot.splitlines() if "->" in line and line.startswith("    ")]


def test_dot_source_escapes_quotes_in_attributes():
    layer = gputrace.nn.Linear(4, 2, seed=0)
    traced = gputrace.trace(layer, np.ones((3, 4), np.float32))
    assert 'prim::GetAttr[name=\\"weight\\"]' in display.graph_dot(traced.inlined_graph)


def test_graph_html_falls_back_to_the_text_layout_without_graphviz(program, no_graphviz):
    html = program.graph._repr_html_()
    assert "<svg" not in html
    assert "┌ fusion group gt_fused_0_tanh" in html and "┌ fusion group gt_fused_1_exp" in html
    assert "<details><summary>IR</summary>" in html and "gt::FusionGroup" in html


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz (dot) is not installed")
def test_graph_html_draws_svg_with_graphviz(program):
    html = display.graph_html(program.graph)
    assert html.count("<svg") == 1 and "fusion group gt_fused_1_exp" in html


def test_fusion_group_html_names_its_kernel(program, no_graphviz):
    group = program.graph.find_nodes("gt::FusionGroup")[1]
    html = display.fusion_group_html(group)
    assert "fusion group gt_fused_1_exp" in html and "np::exp" in html


def test_kernel_html_highlights_the_source(program):
    pytest.importorskip("pygments")
    kernel = program.kernels[0]
    html = kernel._repr_html_()
    assert kernel.name in html
    assert '<span style="' in html  # Pygments' inline styles
    for section in ("PTX (sm_90)", "SASS (sm_90)", "resources (sm_90)"):
        assert f"<summary>{section}</summary>" in html


def test_kernel_html_without_pygments_escapes_the_source(program, monkeypatch, no_nvrtc):
    monkeypatch.setitem(sys.modules, "pygments", None)  # makes `import pygments` fail
    html = display.kernel_html(program.kernels[0])
    assert '<span style="' not in html
    assert "i &lt; n" in html and "i < n" not in html


def test_kernel_views_say_why_nvrtc_output_is_missing(program, no_nvrtc):
    kernel = program.kernels[0]
    html = display.kernel_html(kernel)
    assert html.count("not available (BackendUnavailableError: NVRTC is not installed)") == 3
    assert "python -m gputrace doctor" in html
    text = display.kernel_text(kernel)
    assert text.startswith("gt_fused_0_tanh(%x: f32[3,4]) -> (%4: f32[3,4]), 96 bytes\n")
    assert text.endswith("resources (sm_90): not available (BackendUnavailableError: NVRTC is not installed); "
                         "`python -m gputrace doctor` says what to install")


def test_kernel_text_reports_registers_when_nvrtc_is_present(program):
    pytest.importorskip("gputrace.backends.nvrtc")
    resources, error = display.kernel_resources(program.kernels[0])
    if resources is None:
        pytest.skip(f"NVRTC cannot compile here: {error}")
    assert f"resources (sm_90): {resources.registers} registers" in display.kernel_text(program.kernels[0])


def test_launch_plan_table_lists_kernels_and_library_calls(program, no_nvrtc):
    rows, missing = display.plan_rows(program)
    assert [row[1] for row in rows] == ["kernel: gt_fused_0_tanh", "library: cublas_matmul (CuPy)",
                                        "kernel: gt_fused_1_exp"]
    assert rows[1][2:4] == ["%4: f32[3,4], %w: f32[4,2]", "%2: f32[3,2]"]
    assert rows[0][4] == "96" and rows[2][4] == "48"  # 12 floats in and out; 6 floats in and out
    assert rows[1][4] == "104" and rows[1][5:] == ["", ""]  # matmul reads 12 + 8 floats, writes 6
    assert rows[0][5:] == ["–", "–"] and str(missing) == "NVRTC is not installed"


def test_traced_function_views(no_graphviz, no_nvrtc):
    x, w = np.ones((3, 4), np.float32), np.ones((4, 2), np.float32)
    traced = gputrace.trace(tanh_matmul_exp, (x, w))
    text = display.traced_function_text(traced)
    assert text.startswith("tanh_matmul_exp(%x: f32[3,4], %w: f32[4,2]) -> (f32[3,2]): 2 kernels, 1 library call\n")
    assert "registers and spills for sm_90: not available" in text
    html = traced._repr_html_()
    assert "<table>" in html and "library: cublas_matmul (CuPy)" in html
    assert "<summary>gt_fused_0_tanh</summary>" in html and "<summary>gt_fused_1_exp</summary>" in html


def test_traced_module_shows_its_forward(no_graphviz, no_nvrtc):
    layer = gputrace.nn.Linear(4, 2, seed=0)
    traced = gputrace.trace(layer, np.ones((3, 4), np.float32))
    assert "forward(%x: f32[3,4]) -&gt; (f32[3,2])" in traced._repr_html_()


def test_check_report_html_is_a_table_of_outputs_by_backend():
    report = CheckReport("numpy", [
        OutputCheck(0, "emulate", Difference(True, 1e-7, 2e-7)),
        OutputCheck(0, "cuda", Difference(True, 2e-7, 3e-7)),
        OutputCheck(1, "emulate", Difference(True, 0.0, 0.0)),
        OutputCheck(1, "cuda", Difference(False, 0.5, 0.25, reason="3 of 12 elements differ")),
    ])
    html = report._repr_html_()
    assert html.count("<tr>") == 3  # the header and one row per output
    assert "emulate: max abs" in html and "cuda: result" in html
    assert "mismatch</span> 3 of 12 elements differ" in html and html.count(">ok</span>") == 3
    assert "check against <b>numpy</b> (tolerance 1e-05): MISMATCH" in html


# ----------------------------------------------------------------------------- plain reprs


def test_plain_reprs_say_what_each_object_is(program):
    assert repr(program.graph) == str(program.graph)  # the IR, as a TorchScript graph prints
    assert repr(program) == "<Program tanh_matmul_exp(%x: f32[3,4], %w: f32[4,2]) -> (f32[3,2]): 2 kernels, " \
                            "1 library call>"
    first, second = program.graph.find_nodes("gt::FusionGroup")
    assert repr(first) == "<FusionGroup gt_fused_0_tanh(%x) -> (%4): np::tanh>"
    text = str(program.graph)  # named by number as TorchScript does, after code generation named the kernels
    assert "= gt::FusionGroup_0(%x)" in text and "with gt::FusionGroup_1 = graph(" in text
    assert repr(program.kernels[1]) == "<Kernel gt_fused_1_exp(%2) -> (%5): exp>"
    x, w = np.ones((3, 4), np.float32), np.ones((4, 2), np.float32)
    assert repr(gputrace.trace(tanh_matmul_exp, (x, w))) == "<TracedFunction tanh_matmul_exp(%x: f32[3,4], %w: f32[4,2])>"


def test_a_fusion_group_node_displays_itself_and_other_nodes_fall_back_to_text(program, no_graphviz):
    group = program.graph.find_nodes("gt::FusionGroup")[1]
    html = group._repr_html_()
    assert "fusion group gt_fused_1_exp" in html and "reads %2: f32[3,2]; writes %5: f32[3,2]" in html
    matmul = program.graph.find_nodes("np::matmul")[0]
    assert matmul._repr_html_() is None  # Jupyter then shows the repr


def test_a_program_displays_its_launch_plan(program, no_graphviz, no_nvrtc):
    html = program._repr_html_()
    assert "tanh_matmul_exp(%x: f32[3,4], %w: f32[4,2]) -&gt; (f32[3,2]): 2 kernels, 1 library call" in html
    assert html.count("<tr>") == 4 and "library: cublas_matmul (CuPy)" in html


def test_check_report_repr_is_its_table():
    report = CheckReport("numpy", [OutputCheck(0, "emulate", Difference(False, 0.5, 0.25, reason="1 of 4 differ"))])
    assert repr(report) == str(report)
    assert repr(report).splitlines()[-1].split() == ["0", "emulate", "0.5", "0.25", "MISMATCH", "1", "of", "4", "differ"]


def test_resources_without_ptxas_lines_raise_a_compile_error(program, monkeypatch):
    class CompiledWithoutPtxas:
        log = ""
    monkeypatch.setattr(Kernel, "compile", lambda self, arch="sm_90": CompiledWithoutPtxas())
    with pytest.raises(KernelCompileError, match="gt_fused_0_tanh: no register usage for sm_90: ptxas printed no "
                                                 "resource lines"):
        program.kernels[0].resources()
    resources, error = display.kernel_resources(program.kernels[0])
    assert resources is None and isinstance(error, KernelCompileError)  # the views say why instead of failing


def test_resources_for_a_virtual_architecture_say_it_needs_sm_xx(program):
    pytest.importorskip("gputrace.backends.nvrtc")
    ptx, error = display.attempt(lambda: program.kernels[0].ptx("compute_90"))
    if ptx is None:
        pytest.skip(f"NVRTC cannot compile here: {error}")
    with pytest.raises(KernelCompileError, match="resources need an sm_XX architecture"):
        program.kernels[0].resources("compute_90")
