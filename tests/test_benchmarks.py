"""The benchmark command runs on the CPU in a few seconds and writes a report the notebook can parse.

Every figure of the report is checked by its name's unit (benchmarks/report.py: UNITS): finite, of the right
sign, whole where it counts; figures computed from others (GB/s, ratios, ...) equal their formula; every program
has its figures at every size; and RESULTS.md shows the numbers of results.json. The checks iterate over the
report, so a new column is checked as soon as it is written.
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import math
import re
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import report  # noqa: E402
from benchmarks.programs import BENCHMARKS  # noqa: E402
from benchmarks.run import IMPLEMENTATIONS, finite, gpu_available, main  # noqa: E402

SECTIONS = ("targets", "main", "programs", "host_overhead", "compile", "first_call", "trace", "reference")
PROGRAMS, SIZES = ["gelu", "softmax"], ["tiny", "small"]
# --no-emulate: the cold host-compiler build of a kernel takes 10-20 s on 2 busy cores; the slow tier measures it
QUICK = ["--sizes", ",".join(SIZES), "--programs", ",".join(PROGRAMS), "--repeat", "3", "--quick", "--no-emulate"]


def between_markers(text: str, name: str) -> list[list[str]]:
    """The rows (header first) of the markdown table between a section's markers."""
    body = re.search(rf"<!-- gputrace:{name}:begin -->\n(.*?)\n<!-- gputrace:{name}:end -->", text, re.S)
    assert body, f"section {name} missing"
    return markdown_rows(body.group(1))


def markdown_rows(body: str) -> list[list[str]]:
    lines = [line.strip() for line in body.strip().splitlines() if not line.startswith("|---")]
    return [[cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line[1:-1])] for line in lines]


def strict_json(path: Path) -> dict:
    def no_constants(name):
        raise AssertionError(f"{name} in {path}: not strict JSON")
    return json.loads(path.read_text(), parse_constant=no_constants)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        results = main([*QUICK, "--out", str(out)])
    return SimpleNamespace(results=results, out=out, text=out.read_text(), printed=printed.getvalue(),
                           json=strict_json(out.with_name("results.json")))


# ----------------------------------------------------------------------------- checks over every figure


def figures(data, path=()):
    """(path, name, value) of every number in the results; the numbers of a list take the list's name."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from figures(value, (*path, key))
    elif isinstance(data, (list, tuple)):
        for k, value in enumerate(data):
            yield from figures(value, (*path, k))
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        yield path, next(p for p in reversed(path) if isinstance(p, str)), data


def check_figures(results: dict) -> None:
    """Every figure has a unit, is finite, and takes the values its unit allows."""
    for path, name, value in figures(results):
        where = ".".join(map(str, path))
        unit = report.unit_of(name)
        assert unit is not None, f"{where}: no unit for a figure named {name!r}; name it as report.UNITS says"
        assert math.isfinite(value), f"{where} = {value}"
        if unit.values == "count":
            assert isinstance(value, int) and value >= 0, f"{where} = {value!r}: a count"
        elif unit.values == "positive":
            assert value > 0, f"{where} = {value!r} {unit.symbol}"
        elif unit.values == "non-negative":
            assert value >= 0, f"{where} = {value!r}"


def rows_of(results: dict, table: str) -> list[dict]:
    data = results.get(table, [])
    return data if isinstance(data, list) else [data]


def speedup(results: dict, row: dict) -> float | None:
    """This row's time over gputrace's for the same program and size (the main table's 'gputrace speed-up')."""
    ours = next((r for r in results["rows"] if (r["program"], r["size"], r["implementation"]) ==
                 (row["program"], row["size"], "gputrace")), None)
    if row["implementation"] == "gputrace" or not all(r and r.get("status") == "ok" and
                                                      report.is_number(r.get("time_us")) for r in (row, ours)):
        return None
    return row["time_us"] / ours["time_us"]


# Figures computed from others: (table, figure, its formula from its row and the results). A rate, ratio or
# percentage not listed here fails check_derived until it is: each must be checked against its sources.
DERIVED = [
    ("rows", "gbps", lambda r, res: r["bytes"] / (r["time_us"] * 1e-6) / 1e9),
    ("rows", "tflops", lambda r, res: r["flops"] / (r["time_us"] * 1e-6) / 1e12),
    ("rows", "traffic_ratio", lambda r, res: r["plan_moved_bytes"] / r["plan_required_bytes"]),
    ("rows", "pct_copy", lambda r, res: 100 * r["gbps"] / res["ceilings"]["copy_gbps"]),
    ("reference", "overhead_us", lambda r, res: r["traced_us"] - r["eager_us"]),
    ("reference", "ratio", lambda r, res: r["traced_us"] / r["eager_us"]),
    ("ceilings", "copy_gbps", lambda r, res: max(r["memcpy_gbps"], r["copy_kernel_gbps"])),
]
MEASURED_RATES = {("ceilings", "memcpy_gbps"), ("ceilings", "copy_kernel_gbps"), ("ceilings", "matmul_tflops")}
DERIVED_UNITS = {"GB/s", "TFLOP/s", "%", "×"}


def check_derived(results: dict) -> None:
    """Rates, ratios and differences equal the quotient (or difference) of the figures they come from."""
    formulas = {(table, figure): formula for table, figure, formula in DERIVED}
    for table in results:
        if table == "targets":
            continue
        for k, row in enumerate(rows_of(results, table)):
            if not isinstance(row, dict):
                continue
            for name, value in row.items():
                if not report.is_number(value):
                    continue
                formula = formulas.get((table, name))
                if formula is None:
                    unit = report.unit_of(name)
                    assert (table, name) in MEASURED_RATES or unit is None or unit.symbol not in DERIVED_UNITS, \
                        f"{table}[{k}].{name}: a {unit.symbol} figure with no formula in DERIVED"
                    continue
                try:
                    expected = formula(row, results)
                except KeyError as missing:
                    raise AssertionError(f"{table}[{k}].{name} = {value} without its source {missing}") from None
                assert value == pytest.approx(expected, rel=1e-9), f"{table}[{k}].{name} = {value}, not {expected}"
    for row in results["rows"]:
        if report.is_number(row.get("time_us")):
            assert row["p10_us"] <= row["time_us"] <= row["p90_us"], row
            assert isinstance(row["samples"], int) and row["samples"] >= 1, row


def check_targets(results: dict) -> None:
    """A target with a measured value PASSes exactly when the value meets its threshold."""
    for t in results["targets"]:
        if t["measured"] is None:
            assert t["verdict"].startswith("not measured"), t
            continue
        relation, limit = t["threshold"].split()
        met = t["measured"] >= float(limit) if relation == "≥" else t["measured"] <= float(limit)
        assert relation in "≥≤" and t["verdict"] == ("PASS" if met else "FAIL"), \
            f"target {t['target']!r}: {t['measured']} against {t['threshold']} is no {t['verdict']}"


def check_complete(results: dict, programs: list[str], sizes: list[str]) -> None:
    """Every program at every size run, in every per-program table; rows alike have the same figures."""
    assert [(r["program"], r["size"], r["implementation"]) for r in results["rows"]] == \
        [(p, s, i) for s in sizes for p in programs for i in IMPLEMENTATIONS]
    assert [(r["program"], r["size"]) for r in results["programs"]] == [(p, s) for s in sizes for p in programs]
    for table, data in results.items():
        if not (isinstance(data, list) and data and isinstance(data[0], dict) and "program" in data[0]):
            continue
        table_sizes = list(dict.fromkeys(r["size"] for r in data))
        assert set(table_sizes) <= {"tiny", *sizes}, (table, table_sizes)
        for size in table_sizes:
            shown = sorted(r["program"] for r in data if r["size"] == size)
            assert shown == sorted(programs * (len(IMPLEMENTATIONS) if table == "rows" else 1)), \
                f"{table} at size {size}: rows for {shown}"
        alike: dict[tuple, set] = {}
        for r in data:
            have = {k for k, v in r.items() if report.is_number(v)}
            key = (r.get("implementation"), r.get("status"))
            assert alike.setdefault(key, have) == have, f"{table}: {r} has figures {sorted(have)}, " \
                                                       f"another row alike {sorted(alike[key])}"
    for backend in ("nvrtc", "emulate"):
        figures_of = results["compile"][backend]
        if figures_of["status"] == "ok":
            for key, value in figures_of.items():
                if isinstance(value, list):
                    assert len(value) == len(results["compile"]["kernels"]), (backend, key, value)


# -- RESULTS.md against the JSON: every number shown is a figure of its row, in the unit its column names

DISPLAY_UNITS = {"s": ("time", 1.0), "ms": ("time", 1e-3), "µs": ("time", 1e-6), "B": ("bytes", 1.0),
                 "MiB": ("bytes", 2.0**20), "flop": ("flop", 1.0), "MFLOP": ("flop", 1e6), "GB/s": ("GB/s", 1.0),
                 "TFLOP/s": ("TFLOP/s", 1.0), "%": ("%", 1.0)}
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:e[+-]\d+)?")
SECTION_DATA = {"main": "rows"}  # the JSON list each section shows is results[section name], except these


def section_data(results: dict, name: str):
    if name == "first_call":  # one row, measured in the compile figures' cold process
        return [results["compile"]["first_call"]]
    return results[SECTION_DATA.get(name, name)]


def shown_as(token: str, value: float) -> bool:
    """Whether ``token`` (as report.fmt writes numbers) is ``value`` to the digits it shows."""
    mantissa, _, exponent = token.replace(",", "").partition("e")
    decimals = len(mantissa.partition(".")[2])
    half_step = 0.5 * 10.0 ** (int(exponent or 0) - decimals)
    return abs(float(mantissa + ("e" + exponent if exponent else "")) - value) <= half_step * (1 + 1e-9)


def candidates(header: str, row: dict, extra: dict) -> list[tuple[str, float]]:
    """(which, value) of each figure of ``row`` (and ``extra``) a column headed ``header`` may show, in the
    column's unit; a list of figures offers its median, slowest, fastest and length."""
    shown = [DISPLAY_UNITS[t] for t in re.split(r"[\s()]+", header) if t in DISPLAY_UNITS]
    values = []
    for name, value in [*row.items(), *extra.items()]:
        if isinstance(value, list) and value and all(report.is_number(v) for v in value):
            values += [(name, "median", statistics.median(value)), (name, "max", max(value)),
                       (name, "min", min(value)), ("kernels", "length", len(value))]
        elif report.is_number(value):
            values.append((name, name, value))
    if not shown:
        return [(which, value) for _, which, value in values]
    (dimension, factor), = shown
    out = []
    for name, which, value in values:
        unit = report.unit_of(name)
        if unit and unit.symbol in DISPLAY_UNITS and DISPLAY_UNITS[unit.symbol][0] == dimension:
            out.append((which, value * DISPLAY_UNITS[unit.symbol][1] / factor))
    return out


def check_markdown(results: dict, text: str) -> None:
    """Each section's table has a row per JSON row, every number in it is a figure of that row in the column's
    unit, and a column shows the same figure in every row."""
    sections = re.findall(r"<!-- gputrace:(\w+):begin -->\n(.*?)\n<!-- gputrace:\1:end -->", text, re.S)
    assert [name for name, _ in sections] == report_sections(text), "unbalanced markers"
    for name, body in sections:
        header, *rows = markdown_rows(body)
        data = section_data(results, name)
        if isinstance(data, dict):  # compile: a row per backend and cache (a label), from the backend's figures
            paired = [(cells, dict(data[cells[0]], backend=cells[0], label=cells[1])) for cells in rows]
        else:
            assert len(rows) == len(data), f"{name}: {len(rows)} rows for {len(data)} in the JSON"
            paired = list(zip(rows, data))
        shows: dict[tuple[str, int], set[str]] = {}  # (column, k-th number in its cells) -> figures it may be
        for cells, row in paired:
            assert len(cells) == len(header), (name, cells)
            extra = {"speed_up": speedup(results, row)} if name == "main" else {}
            texts = {report.fmt(v) for v in row.values() if isinstance(v, str)}
            for column, cell in zip(header, cells):
                if cell == "—" or cell in texts:
                    continue
                tokens = NUMBER.findall(cell)
                assert tokens, f"{name}: {column} = {cell!r} is neither a figure nor a text of {row}"
                allowed = candidates(column, row, extra)
                for k, token in enumerate(tokens):
                    which = {w for w, v in allowed if shown_as(token, v)}
                    assert which, f"{name}: {column} = {cell!r}: {token} is no figure of {row}"
                    shows[column, k] = shows.get((column, k), which) & which
                    assert shows[column, k], f"{name}: column {column!r} shows different figures in its rows"


def check_header(results: dict, text: str) -> None:
    """The figures in the table at the top of RESULTS.md (wall time, ceilings) are those of the JSON."""
    top = [line for line in text.split("\n## ")[0].splitlines() if line.startswith("|")]
    figures_at_top = {**{k: v for k, v in results.items() if report.is_number(v)}, **results.get("ceilings", {})}
    for label, value in markdown_rows("\n".join(top))[1:]:
        found = re.match(rf"({NUMBER.pattern}) (\S+)", value)
        if found and found.group(2) in DISPLAY_UNITS:
            assert any(shown_as(found.group(1), v) for _, v in candidates(found.group(2), figures_at_top, {})), \
                f"{label} = {value}: no such figure in {figures_at_top}"


def report_sections(text: str) -> list[str]:
    return re.findall(r"<!-- gputrace:(\w+):begin -->", text)


def check_report(results: dict, text: str, programs: list[str], sizes: list[str]) -> None:
    check_figures(results)
    check_derived(results)
    check_targets(results)
    check_complete(results, programs, sizes)
    check_markdown(results, text)
    check_header(results, text)


# ----------------------------------------------------------------------------- tests


def test_every_figure_of_the_report_is_finite_consistent_and_shown_as_in_the_json(quick_run):
    check_report(quick_run.results, quick_run.text, PROGRAMS, SIZES)
    assert quick_run.json == json.loads(json.dumps(finite(quick_run.results), default=str))
    check_figures(quick_run.json)
    # what the command prints is the report, then the targets again
    printed_targets = quick_run.printed.split("## Targets again")[1].split("\n\n", 1)[1]
    assert quick_run.printed.startswith(quick_run.text)
    assert markdown_rows(printed_targets) == between_markers(quick_run.text, "targets")


def test_the_committed_results_pass_the_checks():
    """benchmarks/results.json and RESULTS.md as committed (a GPU run): its rates, ratios and tables agree."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    results = strict_json(folder / "results.json")
    programs = list(dict.fromkeys(r["program"] for r in results["programs"]))
    sizes = list(dict.fromkeys(r["size"] for r in results["programs"]))
    check_report(results, (folder / "RESULTS.md").read_text(), programs, sizes)


# One figure made wrong, and what the checks must say: (name, how, the message's start)
def _gpu_row(results, row=None, gbps_factor=1.0, time_us=100.0, **extra):
    """Timing figures in a main-table row (the first by default) as a GPU run writes them."""
    row = results["rows"][0] if row is None else row
    row.update(dict(status="ok", time_us=time_us, p10_us=0.9 * time_us, p90_us=1.2 * time_us, samples=3,
                    gbps=row["bytes"] / (time_us * 1e-6) / 1e9 * gbps_factor,
                    tflops=row["flops"] / (time_us * 1e-6) / 1e12), **extra)


BROKEN = {
    "ratio": (lambda r: r["reference"][0].update(ratio=r["reference"][0]["ratio"] * 1.01), r"reference\[0\]\.ratio"),
    "difference": (lambda r: r["reference"][0].update(overhead_us=r["reference"][0]["overhead_us"] + 1),
                   r"reference\[0\]\.overhead_us"),
    "GB/s": (lambda r: _gpu_row(r, gbps_factor=1.01), r"rows\[0\]\.gbps"),
    "rate without a formula": (lambda r: _gpu_row(r, plan_gbps=1.0), r"rows\[0\]\.plan_gbps: a GB/s figure"),
    "fractional count": (lambda r: r["rows"][0].update(kernels=1.5), r"rows\.0\.kernels = 1\.5: a count"),
    "negative time": (lambda r: r["trace"][0].update(plan_us=-1.0), r"trace\.0\.plan_us = -1\.0 µs"),
    "figure without unit": (lambda r: r["trace"][0].update(plan_widgets=3.0), r"trace\.0\.plan_widgets: no unit"),
    "nan": (lambda r: r["trace"][0].update(lower_s=math.nan), r"trace\.0\.lower_s = nan"),
    "source missing": (lambda r: r["reference"][-1].pop("eager_us"), r"reference\[3\]\.overhead_us = .* without"),
    "figure missing in one row": (lambda r: r["trace"][-1].pop("render_s"), r"trace: .* has figures"),
    "program missing at one size": (lambda r: r["reference"].pop(), r"reference at size small: rows for \['gelu'\]"),
    "verdict": (lambda r: next(t for t in r["targets"] if t["measured"] is not None).update(verdict="maybe"),
                r"target '.*': .* is no maybe"),
}


@pytest.mark.parametrize("how", BROKEN)
def test_a_wrong_figure_fails_the_checks(quick_run, how):
    results = copy.deepcopy(quick_run.results)
    spoil, message = BROKEN[how]
    spoil(results)
    with pytest.raises(AssertionError, match=message):
        check_report(results, quick_run.text, PROGRAMS, SIZES)


def test_a_table_that_differs_from_the_json_fails_the_checks(quick_run):
    eager = quick_run.results["reference"][0]["eager_us"]
    shown = f"| {report.fmt(eager)} |"
    assert shown in quick_run.text
    text = quick_run.text.replace(shown, f"| {report.fmt(eager * 1.01)} |", 1)
    with pytest.raises(AssertionError, match=r"reference: eager NumPy \(µs\) = .* is no figure"):
        check_report(quick_run.results, text, PROGRAMS, SIZES)


def test_a_wall_time_that_differs_from_the_json_fails_the_checks(quick_run):
    shown = f"| wall time of this run | {report.fmt(quick_run.results['wall_s'])} s |"
    assert shown in quick_run.text
    text = quick_run.text.replace(shown, f"| wall time of this run | {report.fmt(quick_run.results['wall_s'] * 2)} s |")
    with pytest.raises(AssertionError, match="wall time of this run = .* no such figure"):
        check_report(quick_run.results, text, PROGRAMS, SIZES)


def test_a_report_with_gpu_figures_passes_the_checks(quick_run):
    """The rates, percentages and speed-ups a GPU run adds pass the checks (here without a GPU: figures that
    agree, put in by hand, as run.py computes them), in the JSON and as RESULTS.md shows them."""
    results = copy.deepcopy(quick_run.results)
    results["ceilings"] = {"status": "ok", "memcpy_gbps": 3000.0, "copy_kernel_gbps": 3100.0, "copy_gbps": 3100.0}
    for row, time_us in zip(results["rows"][:2], (4.0, 12.6)):  # gelu tiny: gputrace, cupy
        _gpu_row(results, row=row, time_us=time_us, p10_us=time_us - 1, p90_us=time_us + 1,
                 rel_error=1e-7, setup_s=0.1)
        row["pct_copy"] = 100 * row["gbps"] / 3100.0
    results["targets"] = report.evaluate_targets(results)
    text = report.markdown(results)
    assert "| 3.15 |" in text  # cupy's time over gputrace's, the speed-up column
    check_report(results, text, PROGRAMS, SIZES)
    gbps = results["rows"][0]["gbps"]
    with pytest.raises(AssertionError, match=r"main: GB/s = .* is no figure"):
        check_markdown(results, text.replace(f"| {report.fmt(gbps)} |", f"| {report.fmt(gbps * 1.02)} |", 1))


def test_report_has_every_section_and_the_main_table_parses(quick_run):
    text = quick_run.text
    assert "| date |" in text and "| device |" in text and "| gputrace |" in text
    for name in SECTIONS:
        between_markers(text, name)
    header, *rows = between_markers(text, "main")
    assert header[:6] == ["program", "size", "implementation", "kernels", "plan traffic", "time (µs)"]
    assert [(r[0], r[1], r[2]) for r in rows] == [(p, s, i) for s in SIZES for p in PROGRAMS for i in IMPLEMENTATIONS]
    gputrace_rows = [r for r in rows if r[2] == "gputrace"]
    assert [r[3] for r in gputrace_rows] == ["1"] * 4  # one kernel each, counted by lowering on the CPU
    assert [r[4] for r in gputrace_rows] == ["1.00"] * 4  # each byte moved once
    assert [r["kernels"] for r in quick_run.results["trace"]] == [1, 1]  # and by lowering in the trace figures


def test_json_holds_the_same_rows(quick_run):
    data = quick_run.json
    assert data["schema"] == 1 and data["date"] and data["device"]["name"]
    assert [(r["program"], r["implementation"]) for r in data["rows"]] == \
        [(p, i) for _ in SIZES for p in PROGRAMS for i in IMPLEMENTATIONS]
    assert len(data["targets"]) == len(report.evaluate_targets(data)) == 15
    for t in data["targets"]:
        assert t["verdict"] in ("PASS", "FAIL") or t["verdict"].startswith("not measured"), t


def test_cpu_figures_are_measured(quick_run):
    results = quick_run.results
    for row in results["trace"]:
        assert row["status"] == "ok", row
        for key in ("trace_s", "trace_checked_s", "lower_s", "render_s"):
            assert report.is_number(row[key]) and row[key] > 0, (key, row)
    for row in results["reference"]:
        assert row["status"] == "ok", row
        assert row["eager_us"] > 0 and row["traced_us"] > 0 and row["ratio"] > 0
    compiled = results["compile"]
    assert compiled["emulate"]["status"] == "not measured (--no-emulate)"  # the slow tier measures it
    for backend in ("nvrtc", "emulate"):
        figures = compiled[backend]
        if figures["status"] != "ok":
            continue
        for key in ("cold_s", "warm_disk_s", "warm_memory_s"):
            assert figures[key] and all(t > 0 for t in figures[key]), (backend, key, figures)
    if importlib.util.find_spec("gputrace.backends.nvrtc") is not None:
        assert compiled["nvrtc"]["status"] == "ok", compiled["nvrtc"]
        assert compiled["nvrtc"]["process_first_s"] > 0
        first = compiled["first_call"]  # gelu's first call: trace, lower, NVRTC, each timed
        assert first["status"] == "ok" and first["program"] == "gelu" and first["kernels"] == 1, first
        assert 0 < first["trace_s"] + first["lower_s"] + first["nvrtc_s"] <= first["total_s"]
    plan_only = [r for r in results["host_overhead"] if r["implementation"].startswith("gputrace launch plan only")]
    assert len(plan_only) == 1 and plan_only[0]["status"] == "ok", results["host_overhead"]
    assert plan_only[0]["kernels"] == 1 and plan_only[0]["us_per_call"] > 0


@pytest.mark.slow
def test_emulate_build_times_are_measured(tmp_path):
    quick = [a for a in QUICK if a != "--no-emulate"]
    quick[quick.index("--sizes") + 1] = "tiny"
    with contextlib.redirect_stdout(io.StringIO()):
        results = main([*quick, "--out", str(tmp_path / "RESULTS.md")])
    check_report(results, (tmp_path / "RESULTS.md").read_text(), PROGRAMS, ["tiny"])
    emulate = results["compile"]["emulate"]
    assert emulate["status"] == "ok" and all(len(emulate[key]) == 1 for key in ("cold_s", "warm_disk_s",
                                                                                  "warm_memory_s")), emulate


@pytest.mark.skipif(gpu_available(), reason="checks the no-GPU report")
def test_without_a_gpu_the_gpu_rows_say_not_measured(quick_run):
    results, text = quick_run.results, quick_run.text
    assert all(r["status"].startswith("not measured (no GPU)") for r in results["rows"])
    assert "not measured (no GPU)" in text
    gpu_targets = [t for t in results["targets"] if "compile" not in t["target"]]
    assert all(t["verdict"].startswith("not measured") for t in gpu_targets)


def test_programs_declare_the_bytes_they_move_and_their_flops():
    rng = np.random.default_rng(0)
    for bench in BENCHMARKS.values():
        inputs = bench.inputs(rng, "tiny")
        outputs = bench.fn(*inputs)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        assert all(a.dtype == np.float32 for a in (*inputs, *outputs)), bench.name
        assert bench.bytes_moved("tiny") == sum(a.nbytes for a in (*inputs, *outputs)), bench.name
        assert bench.flops("tiny") > 0
        assert 0.75 * 2**20 <= bench.bytes_moved("small") <= 1.5 * 2**20, bench.name  # "about 1 MB"
        assert bench.bytes_moved("large") >= 256 * 2**20, bench.name


def test_targets_pass_fail_and_not_measured():
    def row(program, impl, time_us, pct=None):
        return {"program": program, "size": "large", "implementation": impl, "status": "ok", "time_us": time_us,
                "pct_copy": pct}
    results = {"device": {"name": "some GPU"},
               "rows": [row("gelu", "gputrace", 100.0, 90.0), row("gelu", "cupy", 400.0),
                        row("softmax", "gputrace", 120.0, 70.0), row("softmax", "torch.compile", 100.0)],
               "host_overhead": [{"implementation": "gputrace", "us_per_call": 12.0, "status": "ok"}],
               "compile": {"nvrtc": {"status": "ok", "cold_s": [0.1, 0.6], "warm_disk_s": [0.001],
                                     "warm_memory_s": [1e-5]}}}
    verdicts = {t["target"]: t["verdict"] for t in report.evaluate_targets(results)}
    assert verdicts["gelu large: gputrace share of copy bandwidth"] == "PASS"
    assert verdicts["gelu large: speed-up over CuPy eager"] == "PASS"
    assert verdicts["softmax 8192×8192: gputrace share of copy bandwidth"] == "FAIL"
    assert verdicts["softmax 8192×8192: time relative to torch.compile"] == "FAIL"
    assert verdicts["adam large: speed-up over CuPy eager"].startswith("not measured")
    assert verdicts["host time of a one-kernel call (tiny GELU)"] == "PASS"
    assert verdicts["cold NVRTC compile, slowest kernel"] == "FAIL"
    assert verdicts["warm compile (disk cache, fresh process), slowest kernel"] == "PASS"


def test_unknown_program_is_a_usage_error():
    with pytest.raises(SystemExit):
        main(["--programs", "gelu,nope"])


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs a CUDA GPU")
def test_gpu_rows_are_timed(tmp_path):
    results = main(["--sizes", "small", "--programs", ",".join(PROGRAMS), "--repeat", "10", "--quick",
                    "--out", str(tmp_path / "RESULTS.md")])
    check_report(results, (tmp_path / "RESULTS.md").read_text(), PROGRAMS, ["small"])
    assert results["ceilings"]["copy_gbps"] > 0
    for row in results["rows"]:
        if row["implementation"] in ("gputrace", "cupy"):
            assert row["status"] == "ok", row
            assert row["time_us"] > 0 and row["gbps"] > 0 and row["pct_copy"] > 0
            assert row["rel_error"] <= 1e-3
    host = next(r for r in results["host_overhead"] if r["implementation"] == "gputrace")
    assert host["status"] == "ok" and host["us_per_call"] > 0


def test_a_new_report_keeps_the_hand_written_records_after_the_kept_marker(tmp_path):
    old = "# old report\n| stale | table |\n" + report.KEPT + "\n## Before and after\n\n| a | b |\n"
    assert report.kept_sections(old) == "\n" + old[old.index(report.KEPT):]
    assert report.kept_sections("# a report without records\n") == ""
