"""The notebooks in notebooks/: committed with their outputs, built from build_notebooks.py, and they execute.

The outputs that matter (kernel counts, launch plans, check_trace tables, lines of the printed graphs and kernel
source, the HTML views) are checked here, on the committed outputs and on a fresh execution, by the tag
build_notebooks.py gives each code cell: nothing rests on asserts written inside the notebooks.
"""
import ast
import copy
import html
import importlib.util
import json
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
BENCHMARKS_DIR = NOTEBOOKS_DIR.parent / "benchmarks"


def load_builder():
    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOKS_DIR / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = load_builder()
NAMES = list(builder.NOTEBOOKS)


def read(name):
    return nbformat.read(NOTEBOOKS_DIR / name, as_version=4)


def tags(cell):
    return cell.metadata.get("tags", [])


@pytest.fixture(scope="module")
def executed():
    """Each notebook executed once for the module (nbclient raises CellExecutionError, naming the failing cell)."""
    notebooks = {}

    def execute(name):
        if name not in notebooks:
            notebooks[name] = builder.execute(copy.deepcopy(read(name)))
        return notebooks[name]
    return execute


# ----------------------------------------------------------------------------- reading a cell's outputs


def cell(notebook, tag):
    cells = [c for c in notebook.cells if tag in tags(c)]
    assert len(cells) == 1, f"{len(cells)} cells tagged {tag!r}"
    assert not [o for o in cells[0].outputs if o.output_type == "error"], f"cell {tag!r} raised"
    return cells[0]


def text(notebook, tag):
    """What the cell printed (stdout) and the plain-text form of what it displayed, in order."""
    parts = []
    for out in cell(notebook, tag).outputs:
        if out.output_type == "stream" and out.name == "stdout":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data") and "text/plain" in out.data:
            parts.append(out.data["text/plain"] + "\n")
    return "".join(parts)


def lines(notebook, tag):
    """The printed lines, stripped, without the source-location comments ('  # 1234.py:9:24')."""
    return [re.sub(r"\s+# \S+:\d+:\d+$", "", line).strip() for line in text(notebook, tag).splitlines()]


def rich(notebook, tag, mime):
    """The ``mime`` data of each display output of the cell (HTML unescaped to its text, tags removed)."""
    found = [o.data[mime] for o in cell(notebook, tag).outputs
             if o.output_type in ("execute_result", "display_data") and mime in o.data]
    return [html.unescape(re.sub(r"<[^>]+>", "", d)) if mime == "text/html" else d for d in found]


def in_order(expected, actual):
    """Whether the lines ``expected`` occur in ``actual`` in this order (other lines between them allowed)."""
    rest = iter(actual)
    return all(any(line == e for line in rest) for e in expected)


def printed_list(notebook, tag, prefix):
    """The Python list printed on the line that starts with ``prefix``."""
    found = [line[len(prefix):] for line in lines(notebook, tag) if line.startswith(prefix)]
    assert len(found) == 1, (tag, prefix, found)
    return ast.literal_eval(found[0].strip())


def checked_backends(notebook):
    """The backends the setup cell chose, less numpy (the reference): 'checking emulate and cuda against numpy'."""
    line, = lines(notebook, "setup")
    assert line.startswith("checking ") and line.endswith(" against numpy"), line
    return line[len("checking "):-len(" against numpy")].split(" and ")


def check_table(block, backends, outputs):
    """A check_trace report in plain text: every output on every backend, each one 'ok'; returns its rows."""
    head, columns, *rows = block.strip().splitlines()
    assert head.startswith("check against numpy (tolerance ") and columns.split() == \
        ["output", "backend", "max", "abs", "max", "rel", "result"], block
    rows = [row.split() for row in rows]
    assert [(r[0], r[1]) for r in rows] == [(str(o), b) for b in backends for o in range(outputs)], block
    assert all(r[4] == "ok" for r in rows), block
    assert all(float(r[2]) >= 0 and float(r[3]) >= 0 for r in rows), block
    return rows


def fusion_groups(printed):
    """{group name: the ops framed in it} of a graph printed by graph_text."""
    groups, current = {}, None
    for line in printed:
        if line.startswith("┌ fusion group "):
            current = groups.setdefault(line[len("┌ fusion group "):], [])
        elif line.startswith("│") and current is not None:
            current.append(re.search(r" = (\S+?)[\[ ]", line).group(1))
        elif line.startswith("└"):
            current = None
    return groups


# ----------------------------------------------------------------------------- what each notebook must show


def check_tracing_mycell(nb):
    backends = checked_backends(nb)
    assert lines(nb, "trace") == ["MyCell(", "original_name=MyCell", "(linear): Linear(original_name=Linear)", ")"]
    graph = lines(nb, "graph")
    f32 = "Float32(3, 4, strides=[4, 1], device=cpu)"
    assert in_order(["graph(%self : __gputrace__.MyCell,", f"%x : {f32},", f"%h : {f32}):",
                     f'%1 : {f32} = prim::CallMethod[name="forward"](%linear, %x)',
                     f"%2 : {f32} = np::add(%1, %h)", f"%3 : {f32} = np::tanh(%2)", "return (%3, %3)"], graph), graph
    assert all(re.search(r"  # \S+\.py:\d+:\d+$", line) for line in text(nb, "graph").splitlines() if " = " in line)
    inlined = lines(nb, "inlined-graph-and-code")
    assert in_order([f"%5 : {f32} = np::matmul(%x, %4)", f"%6 : {f32} = np::add(%5, %bias)",
                     f"%3 : {f32} = np::tanh(%2)", "def forward(self, x, h):", "_3 = np.tanh(_2)",
                     "return (_3, _3)"], inlined), inlined
    assert not [line for line in inlined if "prim::CallMethod" in line]
    assert printed_list(nb, "lowered", "launch plan:") == ["LibraryCall", "Kernel"]  # the matmul, one kernel
    picture, = [o.data["text/html"] for o in cell(nb, "lowered").outputs if "text/html" in o.get("data", {})]
    assert picture.startswith("<div class='gputrace-graph'>")
    assert "<svg" in picture or "┌ fusion group" in picture, picture  # Graphviz's drawing, else the text layout
    assert any("np::tanh" in line for line in lines(nb, "lowered"))
    view, = rich(nb, "traced-cell", "text/html")
    assert "forward(%x: f32[3,4], %h: f32[3,4]) -> (f32[3,4], f32[3,4]): 1 kernel, 1 library call" in view
    loaded = lines(nb, "saved-and-loaded")
    assert in_order(['%linear_weight : Float32(4, 4, strides=[4, 1], device=cpu) = prim::Param[name="linear.weight"]()',
                     "return (%3, %3)"], loaded), loaded
    check_table(text(nb, "check-trace"), backends, outputs=2)
    assert "all outputs agree" in rich(nb, "check-trace", "text/html")[0]


def check_fusion_and_kernels(nb):
    backends = checked_backends(nb)
    gelu_plan = printed_list(nb, "gelu-graph", "launch plan:")
    assert len(gelu_plan) == 1, gelu_plan  # every op of GELU in one kernel
    name, = gelu_plan
    assert fusion_groups(lines(nb, "gelu-graph")) == {name: ["np::multiply", "np::power", "np::multiply", "np::add",
                                                             "np::multiply", "np::tanh", "np::add", "np::multiply"]}
    kernel_view, = rich(nb, "gelu-kernel", "text/html")
    assert f"{name}(%x: f32[256,512]) -> (%14: f32[256,512]), {2 * 256 * 512 * 4:,} bytes" in kernel_view
    signature = [line for line in kernel_view.splitlines() if "__global__" in line]
    assert len(signature) == 1 and signature[0].startswith(f'extern "C" __global__ void {name}(const float*'), signature
    ptx = lines(nb, "ptx")
    assert ".target sm_90" in ptx and f".visible .entry {name}(" in ptx, ptx[:20]
    sass = lines(nb, "sass")
    count = int(re.fullmatch(r"(\d+) SASS instructions; the first 20:", sass[0]).group(1))
    assert count > 0 and len(sass) == 1 + min(count, 20) and all(line.startswith("/*0") for line in sass[1:])
    resources, = lines(nb, "resources")
    found = re.fullmatch(r"(\d+) registers, .*, (\d+) B spill stores, (\d+) B spill loads", resources)
    assert found and int(found.group(1)) > 0 and found.group(2) == found.group(3) == "0", resources
    printed = lines(nb, "row-kernels")
    plans = {line.split(":")[0][4:]: ast.literal_eval(line.split("launch plan ")[1])
             for line in printed if line.startswith("--- ")}
    assert list(plans) == ["softmax", "layernorm"] and all(len(plan) == 1 for plan in plans.values()), plans
    groups = fusion_groups(printed)
    assert sorted(groups) == sorted(plan[0] for plan in plans.values()) and len(groups) == 2, groups
    assert groups[plans["softmax"][0]] == ["np::max", "np::subtract", "np::exp", "np::sum", "np::divide"], groups
    view, = rich(nb, "layernorm", "text/html")
    assert ": 1 kernel, 0 library calls" in view
    attention = printed_list(nb, "attention", "launch plan:")
    assert len(attention) == 3 and attention[0] == attention[2] == "cublas_matmul (CuPy)", attention
    assert list(fusion_groups(lines(nb, "attention"))) == [attention[1]]
    table = [line.split("  ") for line in lines(nb, "backends")[2:]]
    table = [[c.strip() for c in row if c.strip()] for row in table]
    assert [(r[0], r[1]) for r in table] == [(p, b) for p in ("gelu", "softmax", "layernorm")
                                             for b in ("numpy", *backends)], table
    for program, backend, runs, first_ms, second_ms, error in table:
        assert runs == ("NumPy, op by op" if backend == "numpy" else "1 generated kernel(s)"), (program, runs)
        assert float(first_ms) > 0 and float(second_ms) > 0 and 0 <= float(error) < 1e-5, (program, backend)
    parameters, launched = lines(nb, "by-hand")
    assert parameters == f"{name} ['const*float32', '*float32', 'int32']"
    found = re.fullmatch(r"(\d+) blocks of (\d+) threads; max abs error vs NumPy (\S+)", launched)
    assert found and int(found.group(1)) > 0 and float(found.group(3)) < 1e-5, launched
    reports = re.split(r"^(gelu|softmax|layernorm)\n", text(nb, "check-trace"), flags=re.M)[1:]
    assert reports[::2] == ["gelu", "softmax", "layernorm"], reports
    for block in reports[1::2]:
        check_table(block, backends, outputs=1)
    assert [("all outputs agree" in view) for view in rich(nb, "check-trace", "text/html")] == [True] * 3


def check_validation(nb):
    backends = checked_backends(nb)
    check_table(text(nb, "check-trace"), backends, outputs=3)  # param, m, v
    exact = check_table(text(nb, "exact"), backends, outputs=3)
    assert text(nb, "exact").startswith("check against numpy (tolerance 0):")
    assert max(float(row[3]) for row in exact) < 1e-5
    warning, = lines(nb, "warning")
    assert warning.startswith("Converting a traced array to a Python bool at ") and \
        warning.endswith("(data-dependent control flow is not captured)"), warning
    assert lines(nb, "wrong-branch") == ["eager:  [1. 2. 3. 4.]", "traced: [-2. -4. -6. -8.]"]
    message = lines(nb, "check-inputs")
    assert message[0] == "Tracing check failed on check input 1: the graphs differ: this usually means " \
                         "data-dependent control flow.", message
    assert in_order(["First diverging operator:", "traced:    %4 : int = prim::Constant[value=2]()",
                     "re-traced: %4 : Float32(4, strides=[1], device=cpu) = np::negative(%x)"], message), message
    assert lines(nb, "noisy")[0].startswith("Tracing check failed on the check inputs: a constant differs between "
                                            "traces")


def check_performance(nb):
    checked_backends(nb)
    where, = lines(nb, "results")
    assert where.startswith("results from "), where
    folder = Path(where[len("results from "):].split(":")[0])
    if folder.name != "benchmarks":  # run on a GPU: a fresh run in a temporary folder, gone now
        assert rich(nb, "main-table", "text/markdown") and rich(nb, "bandwidth", "image/png")
        return
    results = json.loads((BENCHMARKS_DIR / "results.json").read_text())
    report = (BENCHMARKS_DIR / "RESULTS.md").read_text()
    main = report.split("<!-- gputrace:main:begin -->")[1].split("<!-- gputrace:main:end -->")[0].strip()
    assert rich(nb, "main-table", "text/markdown") == [main], \
        "benchmarks/RESULTS.md changed: run `python notebooks/build_notebooks.py --execute 04_performance.ipynb`"
    assert main.startswith("| program | size | implementation | kernels | time (µs) |")
    if any(isinstance(r.get("gbps"), (int, float)) for r in results["rows"]):
        assert len(rich(nb, "bandwidth", "image/png")) == 1 and not cell(nb, "cpu-costs").outputs
    else:
        assert lines(nb, "bandwidth")[0].startswith("No GPU numbers in these results yet")
        assert len(rich(nb, "cpu-costs", "image/png")) == 1 and len(rich(nb, "cpu-costs", "text/markdown")) == 1


CHECKS = {"01_tracing_mycell.ipynb": check_tracing_mycell, "02_fusion_and_kernels.ipynb": check_fusion_and_kernels,
          "03_validation.ipynb": check_validation, "04_performance.ipynb": check_performance}


# ----------------------------------------------------------------------------- tests


def test_there_are_four_notebooks():
    assert NAMES == list(CHECKS) == ["01_tracing_mycell.ipynb", "02_fusion_and_kernels.ipynb", "03_validation.ipynb",
                                     "04_performance.ipynb"]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_what_the_builder_writes_and_kept_its_outputs(name):
    committed = read(name)
    assert [(c.cell_type, c.source, tags(c)) for c in committed.cells] == \
        [(c.cell_type, c.source, tags(c)) for c in builder.build(name).cells], \
        f"{name} differs from notebooks/build_notebooks.py: run `python notebooks/build_notebooks.py --execute`"
    code_cells = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code_cells), f"{name} was committed without executing it"
    assert not [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    CHECKS[name](committed)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes_and_shows_what_it_should(name, executed):
    CHECKS[name](executed(name))


# A notebook whose output changed (one more kernel, a check that failed, a graph line gone) fails the checks.
BROKEN = [
    ("01_tracing_mycell.ipynb", "lowered", "['LibraryCall', 'Kernel']", "['LibraryCall', 'Kernel', 'Kernel']"),
    ("01_tracing_mycell.ipynb", "traced-cell", "1 kernel, 1 library call", "2 kernels, 1 library call"),
    ("01_tracing_mycell.ipynb", "graph", "np::tanh(%2)", "np::exp(%2)"),
    ("01_tracing_mycell.ipynb", "check-trace", "  ok", "  MISMATCH"),
    ("02_fusion_and_kernels.ipynb", "gelu-graph", "│ %10: f32[256,512] = np::tanh %9\n", ""),
    ("02_fusion_and_kernels.ipynb", "row-kernels", "launch plan ['gt_fused_0_max_subtract_exp_etc']",
     "launch plan ['gt_fused_0_max_subtract_exp_etc', 'gt_fused_1_divide']"),
    ("02_fusion_and_kernels.ipynb", "backends", "1 generated kernel(s)", "2 generated kernel(s)"),
    ("02_fusion_and_kernels.ipynb", "gelu-kernel", "__global__", "__device__"),
    ("02_fusion_and_kernels.ipynb", "resources", "0 B spill stores", "8 B spill stores"),
    ("03_validation.ipynb", "exact", "  ok", "  MISMATCH"),
    ("03_validation.ipynb", "wrong-branch", "traced: [-2. -4. -6. -8.]", "traced: [-1. -2. -3. -4.]"),
]


def replace_in_outputs(notebook, tag, old, new):
    hits = 0
    for out in cell(notebook, tag).outputs:
        if out.output_type == "stream":
            hits += out.text.count(old)
            out.text = out.text.replace(old, new)
        for mime, data in out.get("data", {}).items():
            if isinstance(data, str):
                hits += data.count(old)
                out.data[mime] = data.replace(old, new)
    assert hits, f"{old!r} is not in the outputs of cell {tag!r}: update BROKEN"


@pytest.mark.parametrize("name, tag, old, new", BROKEN, ids=[f"{b[0][:2]}-{b[1]}" for b in BROKEN])
def test_a_changed_output_fails_the_checks(name, tag, old, new):
    notebook = read(name)
    CHECKS[name](notebook)
    replace_in_outputs(notebook, tag, old, new)
    with pytest.raises(AssertionError):
        CHECKS[name](notebook)
