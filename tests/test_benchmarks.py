"""The benchmark command runs on the CPU in a few seconds and writes a report the notebook can parse."""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import report  # noqa: E402
from benchmarks.programs import BENCHMARKS  # noqa: E402
from benchmarks.run import IMPLEMENTATIONS, gpu_available, main  # noqa: E402

SECTIONS = ("targets", "main", "programs", "host_overhead", "compile", "trace", "reference")
QUICK = ["--sizes", "tiny", "--programs", "gelu,softmax", "--repeat", "3", "--quick"]


def between_markers(text: str, name: str) -> list[list[str]]:
    """The rows (header first) of the markdown table between a section's markers."""
    body = re.search(rf"<!-- gputrace:{name}:begin -->\n(.*?)\n<!-- gputrace:{name}:end -->", text, re.S)
    assert body, f"section {name} missing"
    lines = [line for line in body.group(1).splitlines() if not line.startswith("|---")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def strict_json(path: Path) -> dict:
    def no_constants(name):
        raise AssertionError(f"{name} in {path}: not strict JSON")
    return json.loads(path.read_text(), parse_constant=no_constants)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    results = main([*QUICK, "--out", str(out)])
    return results, out


def test_report_has_every_section_and_the_main_table_parses(quick_run):
    results, out = quick_run
    text = out.read_text()
    assert "| date |" in text and "| device |" in text and "| gputrace |" in text
    for name in SECTIONS:
        between_markers(text, name)
    header, *rows = between_markers(text, "main")
    assert header[:6] == ["program", "size", "implementation", "kernels", "plan traffic", "time (µs)"]
    assert [(r[0], r[1], r[2]) for r in rows] == [(p, "tiny", i) for p in ("gelu", "softmax") for i in IMPLEMENTATIONS]
    gputrace_rows = [r for r in rows if r[2] == "gputrace"]
    assert [r[3] for r in gputrace_rows] == ["1", "1"]  # one kernel each, counted by lowering on the CPU
    assert [r[4] for r in gputrace_rows] == ["1.00", "1.00"]  # each byte moved once


def test_json_holds_the_same_rows(quick_run):
    results, out = quick_run
    data = strict_json(out.with_name("results.json"))
    assert data["schema"] == 1 and data["date"] and data["device"]["name"]
    assert [(r["program"], r["implementation"]) for r in data["rows"]] == \
        [(p, i) for p in ("gelu", "softmax") for i in IMPLEMENTATIONS]
    assert len(data["targets"]) == len(report.evaluate_targets(data)) == 15
    for t in data["targets"]:
        assert t["verdict"] in ("PASS", "FAIL") or t["verdict"].startswith("not measured"), t


def test_cpu_figures_are_positive_numbers(quick_run):
    results, _ = quick_run
    for row in results["trace"]:
        assert row["status"] == "ok", row
        for key in ("trace_s", "trace_checked_s", "lower_s", "render_s"):
            assert report.is_number(row[key]) and row[key] > 0, (key, row)
    for row in results["reference"]:
        assert row["status"] == "ok", row
        assert row["eager_us"] > 0 and row["traced_us"] > 0 and row["ratio"] > 0
    compiled = results["compile"]
    for backend in ("nvrtc", "emulate"):
        figures = compiled[backend]
        if figures["status"] != "ok":
            continue
        for key in ("cold_s", "warm_disk_s", "warm_memory_s"):
            assert figures[key] and all(t > 0 for t in figures[key]), (backend, key, figures)
    if importlib.util.find_spec("gputrace.backends.nvrtc") is not None:
        assert compiled["nvrtc"]["status"] == "ok", compiled["nvrtc"]
        assert compiled["nvrtc"]["process_first_s"] > 0
    plan_only = [r for r in results["host_overhead"] if r["implementation"].startswith("gputrace launch plan only")]
    assert len(plan_only) == 1 and plan_only[0]["status"] == "ok", results["host_overhead"]
    assert plan_only[0]["kernels"] == 1 and plan_only[0]["us_per_call"] > 0


@pytest.mark.skipif(gpu_available(), reason="checks the no-GPU report")
def test_without_a_gpu_the_gpu_rows_say_not_measured(quick_run):
    results, out = quick_run
    assert all(r["status"].startswith("not measured (no GPU)") for r in results["rows"])
    text = out.read_text()
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
    results = main(["--sizes", "small", "--programs", "gelu,softmax", "--repeat", "10", "--quick",
                    "--out", str(tmp_path / "RESULTS.md")])
    assert results["ceilings"]["copy_gbps"] > 0
    for row in results["rows"]:
        if row["implementation"] in ("gputrace", "cupy"):
            assert row["status"] == "ok", row
            assert row["time_us"] > 0 and row["gbps"] > 0 and row["pct_copy"] > 0
            assert row["rel_error"] <= 1e-3
    host = next(r for r in results["host_overhead"] if r["implementation"] == "gputrace")
    assert host["status"] == "ok" and host["us_per_call"] > 0
