"""``python -m gputrace``: every subcommand, its --help, and doctor on a machine without a GPU."""
import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gputrace
from gputrace import cli, log
from gputrace.cache import DiskCache

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ["demo", "doctor", "inspect", "bench", "cache"]


def run(capsys, *argv):
    """``gputrace ARGV`` in this process: (exit status, stdout, stderr)."""
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUTRACE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def emulate_available() -> bool:
    from gputrace.backends.host_compiler import host_compiler_info
    return host_compiler_info()["available"]


def test_python_dash_m_gputrace_lists_every_command():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "gputrace", "--help"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: gputrace [-h] [--log TOPICS] COMMAND ...")
    for command in COMMANDS:
        assert f"\n    {command} " in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as exit:
        cli.main([command, "--help"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: gputrace {command} [-h]")


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main([])
    assert exit.value.code == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err


# ----------------------------------------------------------------------------- demo


@pytest.fixture(scope="module")
def demo_output(kernel_cache):
    """``gputrace demo``'s exit status and output, run once for the tests below (building the kernels takes seconds)."""
    if not emulate_available():
        pytest.skip("no host C++ compiler for the emulate backend")
    with pytest.MonkeyPatch.context() as patch:  # the session's private cache, as conftest sets for each test
        patch.setenv("GPUTRACE_CACHE_DIR", kernel_cache)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = cli.main(["demo"])
    return status, out.getvalue()


def demo_sections(text):
    """``{title: body}`` for the ``=== title ===`` sections of the demo's output."""
    return dict(re.findall(r"^=== (.+?) ===\n(.*?)(?=^=== |^```|\Z)", text, re.S | re.M))


def test_demo_prints_graphs_kernels_and_a_passing_check(demo_output):
    status, out = demo_output
    assert status == 0, out
    backend = "cuda" if cli.gpu_present() else "emulate"
    sections = [line for line in out.splitlines() if line.startswith("=== ")]
    assert sections == ["=== mycell.py ===", "=== module ===", "=== code ===", "=== graph ===", "=== inlined graph ===",
                        "=== fused graph and launch plan ===", "=== kernel gt_fused_0_add_tanh ===",
                        f"=== check: numpy vs {backend} ==="]
    assert "MyCell(\n  original_name=MyCell\n  (linear): Linear(original_name=Linear)\n)" in out
    assert "prim::CallMethod[name=\"forward\"](%linear, %x)  # mycell.py:11:24" in out
    assert "┌ fusion group gt_fused_0_add_tanh" in out
    assert "forward(%x: f32[3,4], %h: f32[3,4]) -> (f32[3,4], f32[3,4]): 1 kernel, 1 library call" in out
    assert "0  library: cublas_matmul (CuPy)" in out and "1  kernel: gt_fused_0_add_tanh" in out
    assert 'extern "C" __global__ void gt_fused_0_add_tanh(' in out
    check = out.split(f"=== check: numpy vs {backend} ===\n")[1].splitlines()
    assert check[0] == "check against numpy (tolerance 1e-05):"
    assert [row.split()[:2] + row.split()[-1:] for row in check[2:]] == [["0", backend, "ok"], ["1", backend, "ok"]]


def test_the_readme_shows_what_the_demo_prints(demo_output):
    readme = demo_sections((REPO / "README.md").read_text())
    printed = demo_sections(demo_output[1])
    assert readme["graph"] == printed["graph"]
    fused = "fused graph and launch plan"
    assert readme[fused].split("launch plan")[0] == printed[fused].split("launch plan")[0]
    kernel = readme["kernel gt_fused_0_add_tanh"].splitlines()
    trimmed = [line for line in kernel if "trimmed" not in line and not line.startswith("resources (sm_90)")]
    assert trimmed and set(trimmed) <= set(printed["kernel gt_fused_0_add_tanh"].splitlines()), \
        "README.md shows a kernel the demo no longer prints: paste the new one"


def test_demo_on_the_cuda_backend_without_a_gpu_says_what_to_do(capsys, cache_dir):
    if cli.gpu_present():
        pytest.skip("this machine has a GPU")
    status, out, _ = run(capsys, "demo", "--backend", "cuda")
    assert status == 1
    assert "the cuda backend is not available here" in out and "python -m gputrace doctor" in out


# ----------------------------------------------------------------------------- doctor


def test_doctor_reports_every_component(capsys, cache_dir):
    status, out, _ = run(capsys, "doctor")
    assert status == 0
    components = [row[0] for row in cli.DOCTOR_CHECKS]
    for component in components:
        assert any(line.startswith(component + " ") for line in out.splitlines()), component
    assert f"cache           ok       {cache_dir}: " in out
    assert "\nbackends: numpy yes, emulate " in out


def test_doctor_without_a_gpu_says_so_and_what_still_works(capsys, cache_dir):
    if cli.gpu_present():
        pytest.skip("this machine has a GPU")
    status, out, _ = run(capsys, "doctor")
    assert status == 0
    assert "GPU and driver  MISSING  no GPU (" in out
    assert "-> the cuda backend needs an NVIDIA GPU and driver" in out
    assert out.rstrip().endswith("cuda no")


def test_doctor_reports_versions_and_the_emulate_compiler(capsys, cache_dir):
    host_compiler = pytest.importorskip("gputrace.backends.host_compiler")
    info = host_compiler.host_compiler_info()
    if not info["available"]:
        pytest.skip(info["error"])
    status, out, _ = run(capsys, "doctor")
    assert status == 0
    rows = {line[:16].strip(): line[16:] for line in out.splitlines() if line[:1].strip()}
    assert rows["host compiler"].startswith(f"ok       {info['version']}, ")
    assert "backends: numpy yes, emulate yes, " in out
    if rows["NVRTC"].startswith("ok"):
        from gputrace.backends.nvrtc import nvrtc_version
        assert rows["NVRTC"] == f"ok       {'.'.join(map(str, nvrtc_version()))}, compiles for sm_90"
    if rows["CuPy"].startswith("ok"):
        assert rows["CuPy"] == f"ok       {__import__('cupy').__version__}"


def test_doctor_names_the_package_to_install_for_a_missing_piece(capsys, cache_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # as if CuPy were not installed
    status, out, _ = run(capsys, "doctor")
    assert status == 0
    assert "CuPy            MISSING  ModuleNotFoundError: import of cupy halted" in out
    assert "-> runs kernels on the GPU: pip install gputrace[cuda13]" in out


def test_doctor_without_a_host_compiler_says_emulate_is_off(capsys, cache_dir, monkeypatch):
    host_compiler = pytest.importorskip("gputrace.backends.host_compiler")
    monkeypatch.setattr(host_compiler, "host_compiler_info",
                        lambda: {"available": False, "error": "no C++ compiler found (tried g++, clang++)"})
    status, out, _ = run(capsys, "doctor")
    assert status == 0
    assert "host compiler   MISSING  no C++ compiler found (tried g++, clang++)" in out
    assert "-> the emulate backend builds kernels with g++: apt-get install g++" in out
    assert "backends: numpy yes, emulate no, " in out


def test_doctor_survives_a_probe_that_fails_unexpectedly(capsys, cache_dir, monkeypatch):
    def broken():
        raise KeyError("driver table")
    monkeypatch.setattr(cli, "DOCTOR_CHECKS", [(c, broken, "fix it") if c == "GPU and driver" else (c, p, r)
                                               for c, p, r in cli.DOCTOR_CHECKS])
    status, out, _ = run(capsys, "doctor")
    assert status == 0
    assert "GPU and driver  MISSING  KeyError: 'driver table'" in out and "-> fix it" in out


# ----------------------------------------------------------------------------- inspect


def test_inspect_prints_a_saved_trace(capsys, tmp_path, cache_dir):
    x = np.ones((2, 3), np.float32)
    path = tmp_path / "scaled_exp.gpt"
    gputrace.save(gputrace.trace(lambda x: np.exp(x) * 3, x), path)
    status, out, _ = run(capsys, "inspect", str(path))
    assert status == 0
    assert f"=== {path}: graph ===\ngraph(%x : Float32(2, 3, strides=[3, 1], device=cpu)):" in out
    assert "┌ fusion group gt_fused_0_exp_multiply" in out
    assert "=== kernel gt_fused_0_exp_multiply ===" in out and "resources (sm_90): " in out
    assert 'extern "C" __global__ void gt_fused_0_exp_multiply(' in out


def test_inspect_of_a_file_that_is_not_a_trace_fails_cleanly(capsys, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    status, out, err = run(capsys, "inspect", str(path))
    assert status == 1 and out == ""
    assert err.startswith(f"gputrace inspect: cannot load {path}: ")


# ----------------------------------------------------------------------------- bench


def test_bench_without_the_benchmarks_folder_explains(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "BENCHMARKS_SCRIPT", tmp_path / "benchmarks" / "run.py")
    status, _, err = run(capsys, "bench")
    assert status == 1
    assert f"gputrace bench: {tmp_path / 'benchmarks' / 'run.py'} not found" in err
    assert "benchmark suite of a source checkout" in err


def test_bench_passes_its_arguments_to_run_py(capsys, tmp_path, monkeypatch):
    script = tmp_path / "benchmarks" / "run.py"
    script.parent.mkdir()
    script.write_text("def main(argv):\n    print('run.py', argv)\n    return {'rows': []} if argv else 3\n")
    monkeypatch.setattr(cli, "BENCHMARKS_SCRIPT", script)
    assert run(capsys, "bench", "--sizes", "tiny", "gelu")[:2] == (0, "run.py ['--sizes', 'tiny', 'gelu']\n")
    assert run(capsys, "bench", "--", "--help")[:2] == (0, "run.py ['--help']\n")
    assert run(capsys, "bench")[:2] == (3, "run.py []\n")  # an int from main is the exit status


def test_other_commands_reject_unknown_arguments(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["cache", "info", "--sizes", "tiny"])
    assert exit.value.code == 2
    assert "unrecognized arguments: --sizes tiny" in capsys.readouterr().err


# ----------------------------------------------------------------------------- cache and logging


def test_cache_info_and_clear(capsys, cache_dir):
    assert run(capsys, "cache", "info")[:2] == (0, f"location: {cache_dir}\nempty\n")
    DiskCache("nvrtc").put("k1", b"ptx")
    DiskCache("nvrtc").put("k2", b"ptx")
    size = sum(entry.stat().st_size for entry in (cache_dir / "nvrtc").iterdir())
    status, out, _ = run(capsys, "cache", "info")
    assert status == 0 and out.splitlines()[-1].split() == ["nvrtc", "2", str(size)]
    assert run(capsys, "cache", "clear")[:2] == (0, f"removed 2 entries from {cache_dir}\n")
    assert run(capsys, "cache", "info")[1].splitlines()[-1].split() == ["nvrtc", "0", "0"]


def test_log_option_enables_topics(capsys, cache_dir, monkeypatch):
    enabled = []
    monkeypatch.setattr(log, "enable", enabled.append)
    monkeypatch.setenv("GPUTRACE_LOG", "")
    assert run(capsys, "--log", "cache,graph", "cache", "info")[0] == 0
    assert enabled == ["cache,graph"]


def test_log_option_rejects_an_unknown_topic(capsys, cache_dir):
    status, _, err = run(capsys, "--log", "everything", "cache", "info")
    assert status == 2
    assert "gputrace: --log: unknown gputrace log topic everything" in err


@pytest.mark.skipif(not emulate_available(), reason="no host C++ compiler for the emulate backend")
def test_the_readme_example_runs(capsys):
    example = re.search(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    exec(compile(example, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "= prim::CallMethod[name=\"forward\"](%linear, %x)" in out
    assert "┌ fusion group gt_fused_0_add_tanh" in out and 'extern "C" __global__ void gt_fused_0_add_tanh(' in out
    assert out.rstrip().endswith("ok") and "MISMATCH" not in out
