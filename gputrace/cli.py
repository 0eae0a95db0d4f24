"""The ``gputrace`` command line: ``demo``, ``doctor``, ``inspect``, ``bench`` and ``cache``.

``python -m gputrace demo`` traces the TorchScript tutorial's ``MyCell`` and
prints what the compiler made of it; ``doctor`` says which backends work on
this machine and what to install for the others. ``GPUTRACE_LOG`` (or
``--log``) switches on debug logging by topic.
"""
from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import cache, log
from .codegen.kernel import DEFAULT_ARCH
from .display import attempt, describe, graphviz_dot, kernel_text, text_table, traced_function_text
from .errors import GputraceError

INSTALL_HINT = "pip install gputrace[cuda13]"
BENCHMARKS_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


def section(title: str) -> None:
    print(f"\n=== {title} ===")


def gpu_present() -> bool:
    available, _ = attempt(lambda: _nvrtc().gpu_available())
    return bool(available)


def _nvrtc() -> Any:
    from .backends import nvrtc
    return nvrtc


def print_compiled(traced: Any, arch: str) -> None:
    """The fused graph, the launch plan and every kernel's source with its resources."""
    section("fused graph and launch plan")
    print(traced_function_text(traced, arch))
    for kernel in traced.kernels:
        section(f"kernel {kernel.name}")
        print(kernel_text(kernel, arch))


# ----------------------------------------------------------------------------- demo


# The tutorial's cell as a listing compiled under its own file name, so the graph's source comments point
# at lines of the listing the demo prints (the tracer skips frames inside the gputrace package).
MYCELL_SOURCE = """\
import numpy as np
from gputrace import nn


class MyCell(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4, seed=0)

    def forward(self, x, h):
        new_h = np.tanh(self.linear(x) + h)
        return new_h, new_h
"""


def make_cell() -> Any:
    """The TorchScript tutorial's ``MyCell`` written with gputrace.nn, with fixed weights."""
    namespace = {"__name__": "mycell"}
    exec(compile(MYCELL_SOURCE, "mycell.py", "exec"), namespace)
    return namespace["MyCell"]()


def run_demo(args: argparse.Namespace) -> int:
    import gputrace
    backend = args.backend if args.backend != "auto" else ("cuda" if gpu_present() else "emulate")
    rng = np.random.default_rng(0)
    x, h = rng.random((3, 4), dtype=np.float32), rng.random((3, 4), dtype=np.float32)
    traced = gputrace.trace(make_cell(), (x, h))
    section("mycell.py")
    print(MYCELL_SOURCE.rstrip())
    section("module")
    print(traced)
    section("code")
    print(traced.code)
    section("graph")
    print(traced.graph)
    section("inlined graph")
    print(traced.inlined_graph)
    print_compiled(traced, args.arch)
    section(f"check: numpy vs {backend}")
    try:
        report = gputrace.check_trace(traced, (x, h), backends=("numpy", backend))
    except gputrace.BackendUnavailableError as exc:
        print(f"the {backend} backend is not available here: {exc}\nrun `python -m gputrace doctor` to see why")
        return 1
    except gputrace.TracingCheckError as exc:
        print(exc)
        return 1
    print(report)
    return 0


# ----------------------------------------------------------------------------- doctor


def _version(module: str) -> str:
    return importlib.import_module(module).__version__


def _gputrace() -> str:
    return f"{_version('gputrace')} (Python {platform.python_version()}, NumPy {np.__version__})"


# the smallest kernel: compiling it shows NVRTC works for DEFAULT_ARCH (and the cache keeps it for next time)
PROBE_KERNEL = 'extern "C" __global__ void gt_doctor_probe(float* x) { x[threadIdx.x] *= 2.0f; }\n'


def _compiled_probe() -> Any:
    return _nvrtc().compile_cuda(PROBE_KERNEL, name="doctor_probe.cu", arch=DEFAULT_ARCH)


def _nvrtc_check() -> str:
    _compiled_probe()  # raises, saying why, when NVRTC is missing or broken
    return f"{'.'.join(map(str, _nvrtc().nvrtc_version()))}, compiles for {DEFAULT_ARCH}"


def _nvdisasm_check() -> str:
    sass = _nvrtc().disassemble(_compiled_probe().cubin)
    return f"disassembles {DEFAULT_ARCH} cubins ({sum('/*0' in line for line in sass.splitlines())} instructions in the probe)"


class Absent(Exception):
    """Something doctor looked for and did not find; the message says all (no exception type in front)."""


def _gpu() -> str:
    import cupy
    runtime = cupy.cuda.runtime
    driver = runtime.driverGetVersion()  # 0 when no driver is installed
    driver_text = f"driver CUDA {driver // 1000}.{driver % 1000 // 10}" if driver else "no NVIDIA driver"
    if not _nvrtc().gpu_available():
        raise Absent(f"no GPU ({driver_text})")
    props = runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return f"{name} (sm_{props['major']}{props['minor']}), {runtime.getDeviceCount()} device(s), {driver_text}"


def _host_compiler() -> str:
    from .backends.host_compiler import host_compiler_info
    info = host_compiler_info()
    if not info["available"]:
        raise Absent(info["error"])
    return f"{info['version']}, {info['threads']} threads; CUDA headers: {info['cuda_headers']}"


def _graphviz() -> str:
    dot = graphviz_dot()
    if dot is None:
        raise Absent("`dot` is not on PATH")
    return dot


def _entries(count: int) -> str:
    return f"{count} entr{'y' if count == 1 else 'ies'}"


def _cache() -> str:
    info = cache.cache_info()
    spaces = info["namespaces"]
    size = sum(s["bytes"] for s in spaces.values())
    return (f"{info['location']}: {_entries(sum(s['entries'] for s in spaces.values()))}, "
            f"{size / 1e6:.1f} MB in {len(spaces)} namespace(s)")


DOCTOR_CHECKS: list[tuple[str, Callable[[], str], str]] = [
    # (component, probe returning a description, what to do when it fails)
    ("gputrace", _gputrace, ""),
    ("NVRTC", _nvrtc_check, f"compiles kernels (cuda backend, .ptx(), .resources()): {INSTALL_HINT}"),
    ("nvdisasm", _nvdisasm_check, f"shows SASS (.sass()): {INSTALL_HINT}"),
    ("CuPy", lambda: _version("cupy"), f"runs kernels on the GPU: {INSTALL_HINT}"),
    ("GPU and driver", _gpu, "the cuda backend needs an NVIDIA GPU and driver; emulate runs the kernels on the CPU"),
    ("host compiler", _host_compiler, "the emulate backend builds kernels with g++: apt-get install g++"),
    ("graphviz", _graphviz, "optional, draws graphs in notebooks: apt-get install graphviz"),
    ("pygments", lambda: _version("pygments"), "optional: highlights CUDA in notebooks: pip install gputrace[notebook]"),
    ("cache", _cache, "set GPUTRACE_CACHE_DIR to a writable folder"),
]


def doctor_report() -> tuple[list[list[str]], dict[str, bool]]:
    """Rows of component, status and detail (with what to do under a missing one), and which backends work."""
    rows, found = [], {}
    for component, probe, remedy in DOCTOR_CHECKS:
        # doctor must describe every failure, whatever it is, rather than stop at the first
        detail, error = attempt(probe, errors=(Exception,))
        found[component] = error is None
        if error is not None:
            detail = str(error) if isinstance(error, Absent) else describe(error)
        rows.append([component, "ok" if error is None else "MISSING", detail])
        if error is not None and remedy:
            rows.append(["", "", f"-> {remedy}"])
    backends = {"numpy": True, "emulate": found["host compiler"],
                "cuda": found["NVRTC"] and found["CuPy"] and found["GPU and driver"]}
    return rows, backends


def run_doctor(args: argparse.Namespace) -> int:
    rows, backends = doctor_report()
    print(text_table(["component", "status", "detail"], rows))
    print("\nbackends: " + ", ".join(f"{name} {'yes' if ok else 'no'}" for name, ok in backends.items()))
    return 0


# ----------------------------------------------------------------------------- inspect, bench, cache


def run_inspect(args: argparse.Namespace) -> int:
    import gputrace
    try:
        traced = gputrace.load(args.file)
    except (OSError, GputraceError) as exc:
        print(f"gputrace inspect: cannot load {args.file}: {exc}", file=sys.stderr)
        return 1
    section(f"{args.file}: graph")
    print(traced.graph)
    print_compiled(traced, args.arch)
    return 0


def load_benchmarks(script: Path) -> Any:
    """``benchmarks/run.py`` of the source checkout, imported by path (it is not part of the package)."""
    if not script.is_file():
        raise FileNotFoundError(f"{script} not found: `gputrace bench` runs the benchmark suite of a source "
                                f"checkout (benchmarks/ next to the gputrace package)")
    spec = importlib.util.spec_from_file_location("gputrace_benchmarks_run", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_bench(args: argparse.Namespace) -> int:
    try:
        module = load_benchmarks(BENCHMARKS_SCRIPT)
    except FileNotFoundError as exc:
        print(f"gputrace bench: {exc}", file=sys.stderr)
        return 1
    argv = args.extra[1:] if args.extra[:1] == ["--"] else args.extra  # `bench -- --help` reaches run.py
    result = module.main(list(argv))
    return result if isinstance(result, int) else 0  # run.py's main returns its results; failures raise


def run_cache(args: argparse.Namespace) -> int:
    if args.action == "clear":
        removed = cache.clear_cache()
        print(f"removed {_entries(removed)} from {cache.cache_dir()}")
        return 0
    info = cache.cache_info()
    print(f"location: {info['location']}")
    rows = [[name, str(s["entries"]), f"{s['bytes']:,}"] for name, s in info["namespaces"].items()]
    print(text_table(["namespace", "entries", "bytes"], rows) if rows else "empty")
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gputrace", description="gputrace: trace NumPy programs, fuse them into "
                                     "CUDA kernels, check them against NumPy. `gputrace COMMAND --help` for more.")
    parser.add_argument("--log", metavar="TOPICS", help=f"debug logging for topics ({', '.join(log.TOPICS)} "
                                                        f"or all), as GPUTRACE_LOG does")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    demo = command("demo", run_demo, "trace the TorchScript tutorial's MyCell and print its graphs, kernels "
                                     "and the check against NumPy (on the GPU if present, else emulate)")
    demo.add_argument("--backend", choices=["auto", "cuda", "emulate"], default="auto",
                      help="backend checked against numpy (default: cuda if a GPU is present, else emulate)")
    command("doctor", run_doctor, "report NVRTC, GPU and driver, CuPy, the host compiler for emulate and the "
                                  "cache, and what to install for what is missing")
    inspect = command("inspect", run_inspect, "print a saved trace (gputrace.save): graph, kernels, sources")
    inspect.add_argument("file", help="a file written by gputrace.save")
    for printing_kernels in (demo, inspect):
        printing_kernels.add_argument("--arch", default=DEFAULT_ARCH,
                                      help=f"architecture for registers and spills (default {DEFAULT_ARCH})")
    command("bench", run_bench, "run the benchmark suite (benchmarks/run.py of a source checkout); "
                                "arguments after `bench` go to benchmarks/run.py")
    cache_command = command("cache", run_cache, "show or clear the kernel cache")
    cache_command.add_argument("action", choices=["info", "clear"], help="info: location and size; clear: delete")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    # bench passes what it does not know to benchmarks/run.py (argparse.REMAINDER drops leading options)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra  # GPUTRACE_LOG was read when gputrace was imported
    if args.log:
        try:
            log.enable(args.log)
        except ValueError as exc:
            print(f"gputrace: --log: {exc}", file=sys.stderr)
            return 2
    return args.run(args)
