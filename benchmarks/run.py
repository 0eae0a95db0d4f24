"""The benchmark suite of issue 4: one command, a printed table, RESULTS.md and results.json.

    PYTHONPATH=. python benchmarks/run.py [--sizes small,large] [--programs gelu,adam,...] [--repeat N]
                                          [--out benchmarks/RESULTS.md] [--budget SECONDS] [--quick]

Per program and size: gputrace, CuPy eager, cupy.fuse (pure elementwise
programs), PyTorch eager and torch.compile, timed with CUDA events against the
device's copy bandwidth measured in the same run; then the host time of a
one-kernel call, compile time per kernel (cold, warm from disk, warm from
memory), trace time and the reference executor's overhead. Without a GPU the
CPU-side figures are measured and every GPU row says "not measured (no GPU)".
See benchmarks/README.md for the columns.
"""
from __future__ import annotations

import argparse
import datetime
import functools
import importlib.util
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

from benchmarks import report  # noqa: E402
from benchmarks.programs import BENCHMARKS, SIZES, Benchmark  # noqa: E402

IMPLEMENTATIONS = ("gputrace", "cupy", "cupy.fuse", "torch", "torch.compile")
NO_GPU = "not measured (no GPU)"
OUT_OF_TIME = "not measured (time budget spent)"
REL_ERROR_LIMIT = 1e-3  # float32 arithmetic lands far below this against a float64 reference
TORCH_COMPILE_RESERVE_S = 45.0  # torch.compile is skipped when less than this is left of the budget
_START = time.perf_counter()


class NotApplicable(Exception):
    """This implementation does not apply to this program (recorded as 'n/a (reason)')."""


def status_of(exc: BaseException) -> str:
    if isinstance(exc, NotApplicable):
        return f"n/a ({exc})"
    if isinstance(exc, ModuleNotFoundError):
        return f"n/a (module {exc.name} not present)"
    text = " ".join(str(exc).split())
    return f"error: {type(exc).__name__}: {text[:200]}"


def say(message: str) -> None:
    print(f"[{time.perf_counter() - _START:7.1f}s] {message}", file=sys.stderr, flush=True)


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def per_call_seconds(call: Callable[[], Any], *, sync: Callable[[], None] = lambda: None, target_s: float = 0.05,
                     batches: int = 5, calls: int | None = None) -> float:
    """Median over ``batches`` of the wall time per call of back-to-back calls, one ``sync`` per batch."""
    for _ in range(3):
        call()
    sync()
    if calls is None:
        start = time.perf_counter()
        call()
        sync()
        calls = max(1, int(target_s / max(time.perf_counter() - start, 1e-7)))
    samples = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        sync()
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


class Budget:
    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


# ----------------------------------------------------------------------------- environment


def gpu_available() -> bool:
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def _version_text(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


def _git_revision() -> str | None:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        return rev.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(gpu: bool) -> dict:
    env: dict[str, Any] = {"python": platform.python_version(), "numpy": np.__version__,
                           "host": f"{_cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()}"}
    try:
        import gputrace
        revision = _git_revision()
        env["gputrace"] = gputrace.__version__ + (f" (git {revision})" if revision else "")
    except Exception as exc:
        env["gputrace"] = status_of(exc)
    try:
        import cupy
        env["cupy"] = cupy.__version__
        from cupy.cuda import nvrtc
        env["nvrtc"] = ".".join(map(str, nvrtc.getVersion()))
        if gpu:
            env["driver"] = _version_text(cupy.cuda.runtime.driverGetVersion())
            env["cuda_runtime"] = _version_text(cupy.cuda.runtime.runtimeGetVersion())
    except Exception as exc:
        env.setdefault("cupy", status_of(exc))
        env.setdefault("nvrtc", "not available")
    if gpu:
        try:
            import torch
            env["torch"] = f"{torch.__version__} (CUDA {torch.version.cuda})"
            try:
                import triton
                env["torch"] += f", triton {triton.__version__}"
            except ImportError:
                pass
        except Exception as exc:
            env["torch"] = f"not installed ({type(exc).__name__})"
    else:
        env["torch"] = "not used (no GPU)"
    return env


def device_info(gpu: bool) -> dict:
    if not gpu:
        return {"gpu": False, "name": f"no GPU (CPU: {_cpu_name()})", "summary": f"no GPU; CPU {_cpu_name()}"}
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    info = {"gpu": True, "name": name, "compute_capability": f"{props['major']}.{props['minor']}",
            "sms": props["multiProcessorCount"], "l2_bytes": props["l2CacheSize"],
            "memory_bytes": props["totalGlobalMem"]}
    info["summary"] = (f"{name} (sm_{props['major']}{props['minor']}, {info['sms']} SMs, "
                       f"{info['l2_bytes'] / 2**20:.0f} MiB L2, {info['memory_bytes'] / 2**30:.0f} GiB)")
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,clocks.max.mem,power.limit",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        if smi.returncode == 0:
            info["nvidia_smi"] = smi.stdout.strip().splitlines()[0]
            info["summary"] += (f"; nvidia-smi driver, max SM clock, max memory clock, power limit: "
                                f"{info['nvidia_smi']}")
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    return info


def program_table(benchmarks: list[Benchmark], sizes: list[str]) -> list[dict]:
    return [{"program": b.name, "description": b.description, "size": s, "dims": b.shape_text(s),
             "bytes": b.bytes_moved(s), "flops": b.flops(s)} for s in sizes for b in benchmarks]


# ----------------------------------------------------------------------------- CPU-side figures


class _ShapeOnly:
    """Stands in for a random array: keeps its shape and costs nothing (scaling and shifting keep it)."""

    def __init__(self, shape: tuple):
        self.shape = shape

    def __mul__(self, other: Any) -> "_ShapeOnly":
        return self

    __add__ = __mul__


class _ShapeRng:
    def random(self, shape: tuple, dtype: Any = None) -> _ShapeOnly:
        return _ShapeOnly(shape)

    standard_normal = random


def placeholder_inputs(bench: Benchmark, size: str) -> tuple:
    """Uninitialised NumPy inputs of the right shapes: lowering reads shapes, never values (and np.empty of a
    large size touches no memory)."""
    return tuple(np.empty(s.shape, np.float32) for s in bench.inputs(_ShapeRng(), size))


def plan_counts(program: Any) -> dict:
    """Generated kernels and library calls (matmul) one call of ``program`` launches, and its plan's traffic: the
    bytes its steps move over the bytes that must move."""
    plan = program.plan
    library = sum(type(step).__name__ == "LibraryCall" for step in plan)
    return {"kernels": len(plan) - library, "library_calls": library, "plan_moved_bytes": plan.bytes_moved,
            "plan_required_bytes": plan.bytes_required, "traffic_ratio": plan.traffic_ratio}


def kernel_counts(benchmarks: list[Benchmark], sizes: list[str]) -> dict[tuple[str, str], dict]:
    """Kernels per gputrace call for every program and size (lowered on the CPU; no GPU needed)."""
    import gputrace
    counts: dict[tuple[str, str], dict] = {}
    for bench in benchmarks:
        try:
            example = bench.inputs(np.random.default_rng(0), "tiny")
            traced = gputrace.trace(bench.fn, example, check_trace=False)
        except Exception as exc:
            counts.update({(bench.name, s): {"status": status_of(exc)} for s in sizes})
            continue
        for size in sizes:
            try:
                counts[bench.name, size] = plan_counts(traced.lower(*placeholder_inputs(bench, size)))
            except Exception as exc:
                counts[bench.name, size] = {"status": status_of(exc)}
    return counts


def trace_figures(benchmarks: list[Benchmark], size: str, repeats: int) -> list[dict]:
    import gputrace
    rows = []
    for bench in benchmarks:
        args = bench.inputs(np.random.default_rng(1), size)
        row: dict[str, Any] = {"program": bench.name, "size": size}
        try:
            row["trace_s"] = median_seconds(lambda: gputrace.trace(bench.fn, args, check_trace=False), repeats)
            row["trace_checked_s"] = median_seconds(lambda: gputrace.trace(bench.fn, args), repeats)
            lower, render = [], []
            for _ in range(repeats):
                traced = gputrace.trace(bench.fn, args, check_trace=False)
                start = time.perf_counter()
                program = traced.lower(*args)
                lowered = time.perf_counter()
                kernels = program.kernels
                render.append(time.perf_counter() - lowered)
                lower.append(lowered - start)
            row["lower_s"], row["render_s"] = statistics.median(lower), statistics.median(render)
            row["kernels"] = len(kernels)
            row["status"] = "ok"
        except Exception as exc:
            row["status"] = status_of(exc)
        rows.append(row)
    return rows


def reference_figures(benchmarks: list[Benchmark], sizes: list[str], quick: bool) -> list[dict]:
    """Reference executor (numpy backend) against eager NumPy, per call."""
    import gputrace
    rows = []
    timing = {"target_s": 0.01 if quick else 0.03, "batches": 3 if quick else 5}
    for size in sizes:
        for bench in benchmarks:
            row: dict[str, Any] = {"program": bench.name, "size": size}
            try:
                args = bench.inputs(np.random.default_rng(2), size)
                traced = gputrace.trace(bench.fn, args, check_trace=False)
                # alternate the two, twice, and keep each one's faster figure: load drifting on a shared
                # machine then weighs on both alike
                eager, interpreted = math.inf, math.inf
                for _ in range(2):
                    eager = min(eager, per_call_seconds(lambda: bench.fn(*args), **timing))
                    interpreted = min(interpreted, per_call_seconds(lambda: traced(*args), **timing))
                row.update(eager_us=eager * 1e6, traced_us=interpreted * 1e6,
                           overhead_us=(interpreted - eager) * 1e6, ratio=interpreted / eager, status="ok")
            except Exception as exc:
                row["status"] = status_of(exc)
            rows.append(row)
    return rows


# -- compile time: measured in fresh processes so that no in-memory cache survives


def _first_compile(arch: str) -> None:
    """Compile a kernel no cache can hold, so that loading NVRTC is not charged to the first real kernel."""
    from gputrace.backends.nvrtc import compile_cuda
    nonce = uuid.uuid4().hex
    compile_cuda(f'extern "C" __global__ void gt_bench_first_{nonce}(float* x) {{ x[threadIdx.x] *= 2.0f; }}\n',
                 arch=arch)


def _timed_builds(kernels: list, build: Callable[[Any], Any], first: Callable[[], None] | None = None) -> dict:
    out: dict[str, Any] = {"status": "ok"}
    try:
        if first is not None:
            start = time.perf_counter()
            first()
            out["process_first_s"] = time.perf_counter() - start
        for key in ("first_pass_s", "second_pass_s"):
            out[key], out[key.replace("_s", "_cpu_s")] = [], []
            for kernel in kernels:
                start, start_cpu = time.perf_counter(), time.process_time()
                build(kernel)
                out[key].append(time.perf_counter() - start)
                out[key.replace("_s", "_cpu_s")].append(time.process_time() - start_cpu)
    except Exception as exc:
        out["status"] = status_of(exc)
    return out


def compile_worker(spec: dict) -> dict:
    """Runs in a fresh process (``--compile-worker``): compile every distinct kernel twice, timing each."""
    import gputrace
    kernels, seen = [], set()
    try:
        for name in spec["programs"]:
            bench = BENCHMARKS[name]
            args = bench.inputs(np.random.default_rng(0), spec["size"])
            for kernel in gputrace.trace(bench.fn, args, check_trace=False).lower(*args).kernels:
                if kernel.source not in seen:
                    seen.add(kernel.source)
                    kernels.append(kernel)
    except Exception as exc:
        return {"status": status_of(exc)}
    arch = spec["arch"]
    result: dict[str, Any] = {"status": "ok", "kernels": [k.name for k in kernels]}
    result["nvrtc"] = _timed_builds(kernels, lambda k: k.compile(arch), first=lambda: _first_compile(arch))
    if result["nvrtc"]["status"] == "ok":  # NVRTC is loaded now; its own start-up is the row above
        result["first_call"] = first_call_figure(spec.get("first_call", spec["programs"][0]), spec["size"], arch)
    if not spec.get("emulate"):
        result["emulate"] = {"status": "not measured (--no-emulate)"}
    elif importlib.util.find_spec("gputrace.backends.host_compiler") is not None:
        from gputrace.backends.host_compiler import build_host_module
        result["emulate"] = _timed_builds(kernels, lambda k: build_host_module(k.source, [k.name]))
    else:
        result["emulate"] = {"status": "n/a (gputrace.backends.host_compiler not present)"}
    return result


def _compile_for_launch(kernels: list, arch: str) -> None:
    """NVRTC for ``arch`` as the cuda backend compiles a program's kernels before its first launch."""
    from gputrace.backends import nvrtc
    if hasattr(nvrtc, "compile_kernels"):
        nvrtc.compile_kernels(kernels, arch=arch)
    else:  # a gputrace from before issue 17: one compile per kernel, as load_raw_module did
        for kernel in kernels:
            nvrtc.compile_cuda(kernel.source, arch=arch)


def first_call_figure(name: str, size: str, arch: str) -> dict:
    """CPU side of a program's first call on the cuda backend up to its first launch, with an empty cache:
    trace (with the default check), lower, NVRTC for ``arch``. Nothing is launched (no GPU needed)."""
    import gputrace
    bench = BENCHMARKS[name]
    args = bench.inputs(np.random.default_rng(3), size)
    row: dict[str, Any] = {"program": name, "size": size, "arch": arch}
    try:
        start, start_cpu = time.perf_counter(), time.process_time()
        traced = gputrace.trace(bench.fn, args)
        traced_at = time.perf_counter()
        kernels = traced.lower(*args).kernels
        lowered_at = time.perf_counter()
        _compile_for_launch(kernels, arch)
        done = time.perf_counter()
        row.update(trace_s=traced_at - start, lower_s=lowered_at - traced_at, nvrtc_s=done - lowered_at,
                   total_s=done - start, total_cpu_s=time.process_time() - start_cpu, kernels=len(kernels),
                   status="ok")
    except Exception as exc:
        row["status"] = status_of(exc)
    return row


def _run_worker(spec: dict, cache: str, timeout: float) -> dict:
    env = dict(os.environ, GPUTRACE_CACHE_DIR=cache,
               PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    try:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--compile-worker", json.dumps(spec)],
                              env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"error: compile worker ran past {timeout:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = " ".join((done.stderr or done.stdout).split()[-40:])
    return {"status": f"error: compile worker exited {done.returncode}: {tail}"}


def compile_figures(benchmarks: list[Benchmark], size: str, arch: str, *, emulate: bool, timeout: float) -> dict:
    """Cold (empty cache folder, fresh process), warm from disk (second fresh process) and warm from memory."""
    names = [b.name for b in benchmarks]
    spec = {"programs": names, "size": size, "arch": arch, "emulate": emulate,
            "first_call": "mycell" if "mycell" in names else names[0]}
    cache = tempfile.mkdtemp(prefix="gputrace-bench-cache-")
    try:
        cold = _run_worker(spec, cache, timeout)
        entries = sum(len(files) for _, _, files in os.walk(cache))
        warm = _run_worker(spec, cache, timeout) if cold.get("status") == "ok" else cold
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    figures: dict[str, Any] = {"size": size, "arch": arch, "kernels": cold.get("kernels", []),
                               "cache_files_after_cold_run": entries,
                               "first_call": cold.get("first_call", {"status": cold.get("status", "not measured")})}
    for backend in ("nvrtc", "emulate"):
        first, second = cold.get(backend, {}), warm.get(backend, {})
        status = next((s for s in (cold.get("status"), first.get("status"), warm.get("status"), second.get("status"))
                       if s and s != "ok"), "ok")
        figures[backend] = {"status": status, "process_first_s": first.get("process_first_s"),
                            "cold_s": first.get("first_pass_s"), "warm_memory_s": first.get("second_pass_s"),
                            "warm_disk_s": second.get("first_pass_s"), "cold_cpu_s": first.get("first_pass_cpu_s")}
    if entries == 0 and figures["nvrtc"]["status"] == "ok":
        figures["nvrtc"]["status"] = "error: no cache files written, so 'warm (disk)' was not a disk hit"
    return figures


# ----------------------------------------------------------------------------- GPU: clocks, ceilings, rows


class Gpu:
    """What the GPU measurements share: CuPy, torch when it works, the device's L2 size."""

    def __init__(self, device: dict):
        import cupy
        self.cupy = cupy
        self.l2_bytes = device.get("l2_bytes", 50 << 20)
        self.torch, self.torch_reason, self.torch_numpy = None, "", None
        try:
            import torch
            if not torch.cuda.is_available():
                raise RuntimeError("torch.cuda.is_available() is False")
            torch.set_float32_matmul_precision("highest")  # full fp32 matmul, as CuPy does by default
            self.torch, self.torch_numpy = torch, torch_numpy(torch)
        except ModuleNotFoundError:
            self.torch_reason = "torch not installed"
        except Exception as exc:
            self.torch_reason = f"torch unusable: {type(exc).__name__}: {exc}"

    def sync(self) -> None:
        self.cupy.cuda.Device().synchronize()
        if self.torch is not None:
            self.torch.cuda.synchronize()

    def free(self) -> None:
        self.sync()
        self.cupy.get_default_memory_pool().free_all_blocks()
        if self.torch is not None:
            self.torch.cuda.empty_cache()


def torch_numpy(torch: Any) -> types.SimpleNamespace:
    """The NumPy names the programs use, on torch tensors."""
    return types.SimpleNamespace(
        exp=torch.exp, tanh=torch.tanh, sqrt=torch.sqrt, log=torch.log, abs=torch.abs, where=torch.where,
        max=lambda x, axis=None, keepdims=False: torch.amax(x, dim=axis, keepdim=keepdims),
        sum=lambda x, axis=None, keepdims=False: torch.sum(x, dim=axis, keepdim=keepdims),
        mean=lambda x, axis=None, keepdims=False: torch.mean(x, dim=axis, keepdim=keepdims),
        var=lambda x, axis=None, keepdims=False: torch.var(x, dim=axis, keepdim=keepdims, correction=0),
        split=lambda x, sections, axis=0: torch.chunk(x, sections, dim=axis))


class CupyClock:
    def __init__(self, cupy: Any):
        self.cupy = cupy

    def event(self) -> Any:
        return self.cupy.cuda.Event()

    def elapsed_ms(self, begin: Any, end: Any) -> float:
        return self.cupy.cuda.get_elapsed_time(begin, end)

    def sync(self) -> None:
        self.cupy.cuda.Device().synchronize()


class TorchClock:
    def __init__(self, torch: Any):
        self.torch = torch

    def event(self) -> Any:
        return self.torch.cuda.Event(enable_timing=True)

    def elapsed_ms(self, begin: Any, end: Any) -> float:
        return begin.elapsed_time(end)

    def sync(self) -> None:
        self.torch.cuda.synchronize()


def device_times_ms(call: Callable, argsets: list[tuple], repeat: int, clock: Any, start: int = 0) -> list[float]:
    """Event-timed calls, one pair of events per call, rotating over ``argsets``; one sync at the end."""
    pairs = [(clock.event(), clock.event()) for _ in range(repeat)]
    for i, (begin, end) in enumerate(pairs):
        args = argsets[(start + i) % len(argsets)]
        begin.record()
        call(*args)
        end.record()
    clock.sync()
    return [clock.elapsed_ms(b, e) for b, e in pairs]


def ceilings(gpu: Gpu, repeat: int, quick: bool) -> dict:
    """Copy bandwidth (bytes read + written; the larger of cudaMemcpy and a copy kernel) and fp32 matmul rate."""
    cupy, clock = gpu.cupy, CupyClock(gpu.cupy)
    out: dict[str, Any] = {"status": "ok"}
    try:
        free, _ = cupy.cuda.runtime.memGetInfo()
        nbytes = min(1 << (28 if quick else 30), free // 4) // 16 * 16
        rng = cupy.random.default_rng(7)
        src = rng.random(nbytes // 4, dtype=np.float32)
        dst = cupy.empty_like(src)
        copy_kernel = cupy.ElementwiseKernel("T x", "T y", "y = x", "gt_bench_copy")
        memcpy = lambda: dst.data.copy_from_device_async(src.data, nbytes)  # noqa: E731
        kernel = lambda: copy_kernel(src, dst)  # noqa: E731
        rates = {}
        for name, call in [("memcpy", memcpy), ("kernel", kernel)]:
            call()
            clock.sync()
            times = device_times_ms(call, [()], repeat, clock)
            rates[name] = 2 * nbytes / (statistics.median(times) * 1e-3) / 1e9
        assert bool(cupy.array_equal(src, dst)), "the copy kernel did not copy"
        out.update(copy_gbps=max(rates.values()), memcpy_gbps=rates["memcpy"], copy_kernel_gbps=rates["kernel"],
                   copy_note=f"larger of cudaMemcpy D2D {fmt_gbps(rates['memcpy'])} and a copy kernel "
                             f"{fmt_gbps(rates['kernel'])}; {nbytes / 2**20:.0f} MiB, read + write counted")
        del src, dst
        n = 2048 if quick else 8192
        a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
        a @ b
        times = device_times_ms(lambda: a @ b, [()], max(3, repeat // 5), clock)
        out["matmul_tflops"] = 2 * n**3 / (statistics.median(times) * 1e-3) / 1e12
        out["matmul_note"] = f"CuPy float32 {n}×{n}×{n}, TF32 {'on' if os.environ.get('CUPY_TF32') == '1' else 'off'}"
        del a, b
    except Exception as exc:
        out["status"] = status_of(exc)
    return out


def fmt_gbps(x: float) -> str:
    return f"{report.fmt(x)} GB/s"


def build_implementation(name: str, bench: Benchmark, sets: list[tuple], gpu: Gpu) -> tuple:
    """(callable, its argument sets, its clock, extra row fields) or NotApplicable."""
    cupy = gpu.cupy
    if name == "gputrace":
        import gputrace
        traced = gputrace.trace(bench.fn, sets[0], check_trace=False)
        return traced, sets, CupyClock(cupy), plan_counts(traced.lower(*sets[0]))
    if name == "cupy":
        return functools.partial(bench.fn, xp=cupy), sets, CupyClock(cupy), {}
    if name == "cupy.fuse":
        if not bench.elementwise:
            raise NotApplicable("not a pure elementwise program")

        def body(*args):
            return bench.fn(*args, xp=cupy)
        return cupy.fuse(kernel_name=f"fused_{bench.name}")(body), sets, CupyClock(cupy), {}
    torch = gpu.torch
    if torch is None:
        raise NotApplicable(gpu.torch_reason)
    torch_sets = [tuple(torch.from_dlpack(a) for a in args) for args in sets]
    namespace = gpu.torch_numpy

    def program(*args):
        return bench.fn(*args, xp=namespace)
    if name == "torch.compile":
        # Every row compiles the same closure code object: without a reset, Dynamo's recompile limit would
        # quietly fall back to eager after a few programs.
        torch._dynamo.reset()
        program = torch.compile(program, dynamic=False)
    return program, torch_sets, TorchClock(torch), {}


def check_outputs(outputs: Any, references: tuple, cupy: Any) -> tuple[float, str]:
    """(max over outputs of ‖out − ref‖ / ‖ref‖ against the float64 reference, status).

    NaN counts as an infinite error; outputs that are not float32 or of the wrong shape or number are wrong too.
    """
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    if len(outputs) != len(references):
        return math.inf, f"wrong ({len(outputs)} outputs, expected {len(references)})"
    worst = 0.0
    for out, ref in zip(outputs, references):
        out = cupy.asarray(out)
        if out.shape != ref.shape or out.dtype != np.float32:
            return math.inf, f"wrong (output {out.dtype}{list(out.shape)}, expected float32{list(ref.shape)})"
        err = float(cupy.linalg.norm((out.astype(cupy.float64) - ref).ravel()) / cupy.linalg.norm(ref.ravel()))
        worst = max(worst, err if math.isfinite(err) else math.inf)
    return worst, "ok" if worst <= REL_ERROR_LIMIT else f"wrong (rel. error {worst:.1e})"


def measure(name: str, bench: Benchmark, size: str, sets: list[tuple], references: tuple, gpu: Gpu,
            repeat: int, row: dict) -> None:
    """Fill ``row`` with one implementation's timing, or the reason it has none."""
    try:
        start = time.perf_counter()
        call, argsets, clock, extra = build_implementation(name, bench, sets, gpu)
        row.update(extra)
        outputs = call(*argsets[0])
        gpu.sync()
        row["setup_s"] = time.perf_counter() - start  # building (trace, compile) and the first call
        row["rel_error"], verdict = check_outputs(outputs, references, gpu.cupy)
        del outputs
        warmup = min(3, len(argsets))
        for i in range(1, warmup + 1):
            call(*argsets[i % len(argsets)])
        clock.sync()
        times = sorted(device_times_ms(call, argsets, repeat, clock, start=warmup + 1))
        seconds = statistics.median(times) * 1e-3
        row.update(time_us=seconds * 1e6, p10_us=times[len(times) // 10] * 1e3,
                   p90_us=times[(len(times) * 9) // 10] * 1e3, samples=len(times),
                   gbps=row["bytes"] / seconds / 1e9, tflops=row["flops"] / seconds / 1e12)
        row["status"] = verdict
    except Exception as exc:
        row["status"] = status_of(exc)


def input_sets(bench: Benchmark, size: str, gpu: Gpu) -> list[tuple]:
    """Enough fresh random input sets that rotating through them keeps the L2 cache from serving repeats."""
    moved = bench.bytes_moved(size)
    count = min(256, max(2, math.ceil(3 * gpu.l2_bytes / moved)))
    free, _ = gpu.cupy.cuda.runtime.memGetInfo()
    count = max(1, min(count, int(0.25 * free // moved)))  # a set and its outputs: at most a quarter of memory
    rng = gpu.cupy.random.default_rng(1000 + len(bench.name))
    return [bench.inputs(rng, size) for _ in range(count)]


def gpu_rows(benchmarks: list[Benchmark], sizes: list[str], gpu: Gpu, repeat: int, budget: Budget) -> list[dict]:
    rows = []
    for size in sizes:
        for bench in benchmarks:
            base = {"program": bench.name, "size": size, "bytes": bench.bytes_moved(size), "flops": bench.flops(size)}
            group = [dict(base, implementation=name) for name in IMPLEMENTATIONS]
            rows += group
            try:
                measure_group(bench, size, group, gpu, repeat, budget)
            except Exception as exc:  # a failure outside one implementation's row (inputs, reference, device)
                for row in group:
                    row.setdefault("status", status_of(exc))
            finally:
                try:
                    gpu.free()
                except Exception as exc:
                    say(f"could not free device memory: {status_of(exc)}")
    return rows


def measure_group(bench: Benchmark, size: str, group: list[dict], gpu: Gpu, repeat: int, budget: Budget) -> None:
    """Every implementation of one program at one size, on the same input sets and float64 reference."""
    if budget.left() <= 0:
        for row in group:
            row["status"] = OUT_OF_TIME
        return
    sets = input_sets(bench, size, gpu)
    references = bench.fn(*[a.astype(gpu.cupy.float64) for a in sets[0]], xp=gpu.cupy)
    references = references if isinstance(references, tuple) else (references,)
    say(f"{bench.name} {size}: {len(sets)} input sets")
    for row in group:
        name = row["implementation"]
        if budget.left() <= 0 or (name == "torch.compile" and budget.left() < TORCH_COMPILE_RESERVE_S):
            row["status"] = OUT_OF_TIME
            continue
        measure(name, bench, size, sets, references, gpu, repeat, row)
        say(f"  {name:14s} {report.fmt(row.get('time_us'))} µs  {row['status']}")


def host_overhead(gpu: Gpu, quick: bool) -> list[dict]:
    """Wall time per call on a tiny GELU: the host-side cost when the device work is negligible."""
    cupy = gpu.cupy
    bench = BENCHMARKS["gelu"]
    x, = bench.inputs(cupy.random.default_rng(3), "tiny")
    rows = []

    def make_gputrace():
        import gputrace
        traced = gputrace.trace(bench.fn, (x,), check_trace=False)
        return (lambda: traced(x)), plan_counts(traced.lower(x))["kernels"]

    def make_fuse():
        fused = cupy.fuse(kernel_name="fused_gelu_tiny")(lambda v: bench.fn(v, xp=cupy))
        return (lambda: fused(x)), 1

    candidates = [("gputrace", make_gputrace), ("cupy.fuse", make_fuse),
                  ("cupy eager (GELU, one kernel per op)", lambda: ((lambda: bench.fn(x, xp=cupy)), 8)),
                  ("cupy.tanh (a single CuPy ufunc)", lambda: ((lambda: cupy.tanh(x)), 1))]
    for name, make in candidates:
        row: dict[str, Any] = {"implementation": name}
        try:
            call, row["kernels"] = make()
            row["us_per_call"] = per_call_seconds(call, sync=gpu.sync, calls=200 if quick else 2000,
                                                  batches=3 if quick else 5) * 1e6
            row["status"] = "ok"
        except Exception as exc:
            row["status"] = status_of(exc)
        rows.append(row)
    return rows


def dispatch_overhead(quick: bool) -> dict:
    """gputrace's launch plan per call on a tiny GELU, the kernel launch replaced by nothing (NumPy arrays).

    Most of gputrace's own Python per call (the plan: outputs allocated, steps run; not the signature
    lookup of ``traced(x)``); the rest of a GPU call is CuPy's allocation and launch. Runs anywhere."""
    import gputrace
    from gputrace.backends.kernels import KernelExecutor, NoLaunch
    bench = BENCHMARKS["gelu"]
    x, = bench.inputs(np.random.default_rng(3), "tiny")
    row: dict[str, Any] = {"implementation": "gputrace launch plan only (CPU: launch a no-op, NumPy arrays)"}
    try:
        traced = gputrace.trace(bench.fn, (x,), check_trace=False)
        program = traced.lower(x)
        executor = KernelExecutor(program.lowered, "emulate", launcher=NoLaunch())
        row["kernels"] = plan_counts(program)["kernels"]
        row["us_per_call"] = per_call_seconds(lambda: executor.run((x,), traced.param),
                                              calls=2000 if quick else 20000, batches=3 if quick else 5) * 1e6
        row["status"] = "ok"
    except Exception as exc:
        row["status"] = status_of(exc)
    return row


# ----------------------------------------------------------------------------- the command


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="small,large", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--programs", default="all", help=f"comma-separated, of {', '.join(BENCHMARKS)}; or all")
    parser.add_argument("--repeat", type=int, default=50, help="timed calls per row (median reported)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "RESULTS.md"), help="the markdown report")
    parser.add_argument("--json", default=None, help="the JSON results (default: results.json beside --out)")
    parser.add_argument("--budget", type=float, default=360.0,
                        help="seconds from the start after which remaining GPU rows are skipped")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats, smaller ceilings, compile figures for the first program only")
    parser.add_argument("--no-emulate", action="store_true", help="skip the emulate (host compiler) build times")
    parser.add_argument("--compile-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    args.programs = list(BENCHMARKS) if args.programs == "all" else [p.strip() for p in args.programs.split(",")
                                                                       if p.strip()]
    for kind, chosen, known in [("size", args.sizes, SIZES), ("program", args.programs, BENCHMARKS)]:
        unknown = [c for c in chosen if c not in known]
        if unknown or not chosen:
            parser.error(f"unknown {kind} {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def finite(x: Any) -> Any:
    """``x`` with every NaN or infinity replaced by None (strict JSON; the row's status says what went wrong)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def main(argv: list[str] | None = None) -> dict:
    """Run the suite; write the markdown report and the JSON; return the results dict."""
    args = parse_args(argv)
    if args.compile_worker is not None:
        print("RESULT " + json.dumps(compile_worker(json.loads(args.compile_worker))), flush=True)
        return {}
    started = time.perf_counter()
    budget = Budget(args.budget)
    benchmarks = [BENCHMARKS[name] for name in args.programs]
    gpu_here = gpu_available()
    say(f"{'GPU found' if gpu_here else 'no GPU: CPU-side figures only'}; programs {', '.join(args.programs)}; "
        f"sizes {', '.join(args.sizes)}")
    results: dict[str, Any] = {
        "schema": 1, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "environment": environment(gpu_here), "device": device_info(gpu_here),
        "programs": program_table(benchmarks, args.sizes)}

    cpu_sizes = [s for s in args.sizes if s != "large"] or ["tiny"]
    say("trace times")
    results["trace"] = trace_figures(benchmarks, cpu_sizes[0], 2 if args.quick else 7)
    say("kernel counts")
    counts = kernel_counts(benchmarks, args.sizes)
    say("compile times (fresh processes)")
    if gpu_here:
        arch = "sm_" + results["device"]["compute_capability"].replace(".", "")
    else:
        from gputrace.codegen.kernel import DEFAULT_ARCH
        arch = DEFAULT_ARCH
    results["compile"] = compile_figures(benchmarks[:1] if args.quick else benchmarks, cpu_sizes[0], arch,
                                         emulate=not args.no_emulate, timeout=150)
    say("reference executor overhead")
    results["reference"] = reference_figures(benchmarks, sorted({"tiny", *args.sizes}, key=SIZES.index), args.quick)

    if gpu_here:
        gpu = Gpu(results["device"])
        say("device ceilings")
        results["ceilings"] = ceilings(gpu, 20, args.quick)
        say("host overhead")
        results["host_overhead"] = host_overhead(gpu, args.quick) + [dispatch_overhead(args.quick)]
        rows = gpu_rows(benchmarks, args.sizes, gpu, min(args.repeat, 5) if args.quick else args.repeat, budget)
    else:
        results["ceilings"] = {"status": NO_GPU}
        results["host_overhead"] = [{"implementation": "gputrace", "status": NO_GPU}, dispatch_overhead(args.quick)]
        rows = [{"program": b.name, "size": s, "implementation": name, "bytes": b.bytes_moved(s),
                 "flops": b.flops(s), "status": NO_GPU}
                for s in args.sizes for b in benchmarks for name in IMPLEMENTATIONS]
    for row in rows:
        if row["implementation"] == "gputrace":
            count = counts.get((row["program"], row["size"]), {})
            for key in ("kernels", "library_calls", "plan_moved_bytes", "plan_required_bytes", "traffic_ratio"):
                row.setdefault(key, count.get(key))
            if "status" in count and row["status"] == NO_GPU:
                row["status"] = f"{NO_GPU}; lowering: {count['status']}"
        copy = results["ceilings"].get("copy_gbps")
        if report.is_number(row.get("gbps")) and report.is_number(copy):
            row["pct_copy"] = 100 * row["gbps"] / copy
    results["rows"] = rows
    results["wall_s"] = time.perf_counter() - started
    results["targets"] = report.evaluate_targets(results)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = Path(args.json) if args.json else out.with_name("results.json")
    kept = report.kept_sections(out.read_text()) if out.is_file() else ""
    out.write_text(report.markdown(results) + kept)
    json_path.write_text(json.dumps(finite(results), indent=1, default=str, allow_nan=False) + "\n")
    print(report.console_text(results))
    say(f"wrote {out} and {json_path}")
    return results


if __name__ == "__main__":
    main()
