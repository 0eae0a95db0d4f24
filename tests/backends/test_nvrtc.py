"""NVRTC compile, cache, inspect (no GPU needed); loading onto a GPU where there is one."""
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import gputrace
from gputrace.cache import DiskCache
from gputrace.codegen.templates import templates_dir
from gputrace.errors import KernelCompileError
from gputrace.backends import build

nvrtc = pytest.importorskip("gputrace.backends.nvrtc")
pytestmark = pytest.mark.skipif(not nvrtc.nvrtc_available(), reason="NVRTC is not installed")

REPO = Path(gputrace.__file__).resolve().parents[1]

SAXPY = r"""
extern "C" __global__ void saxpy(float a, const float* x, float* y, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}
"""

HALF_SCALE = r"""
#include <cuda_fp16.h>
extern "C" __global__ void half_scale(const __half* x, __half* y, float scale, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __hmul(x[i], __float2half(scale));
}
"""

BROKEN = """extern "C" __global__ void broken(float* y) {
    int i = threadIdx.x;
    y[i] = undeclared_value;
}
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private disk cache and an empty memory cache: every compile here starts cold."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("GPUTRACE_CACHE_DIR", str(folder))
    monkeypatch.setattr(nvrtc.compiled_cache, "memory", {})
    return folder


@pytest.fixture
def builds(monkeypatch):
    """The names of the sources NVRTC actually compiled (cache misses) during the test."""
    compiled = []
    real = nvrtc._run_nvrtc

    def counted(nvrtc_module, source, name, *args, **kwargs):
        compiled.append(name)
        return real(nvrtc_module, source, name, *args, **kwargs)

    monkeypatch.setattr(nvrtc, "_run_nvrtc", counted)
    return compiled


def forget_memory(monkeypatch):
    monkeypatch.setattr(nvrtc.compiled_cache, "memory", {})


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_compile_gives_ptx_cubin_and_resources(cache, arch):
    compiled = nvrtc.compile_cuda(SAXPY, arch=arch)
    assert ".entry saxpy" in compiled.ptx and f".target {arch}" in compiled.ptx
    assert compiled.cubin.startswith(b"\x7fELF")
    assert nvrtc._whole_elf(compiled.cubin) == compiled.cubin  # complete: nothing left to pad
    assert nvrtc._whole_elf(compiled.cubin[:-1]) == compiled.cubin  # what CuPy 14.2 returns, restored
    assert compiled.arch == arch and "--fmad=false" in compiled.options and "-std=c++17" in compiled.options
    resources = nvrtc.parse_resources(compiled.log)["saxpy"]
    assert resources.registers > 0 and resources.spill_stores == resources.spill_loads == 0
    assert str(resources).startswith(f"{resources.registers} registers")


def test_every_compile_reports_resources(tmp_path, monkeypatch):
    """With a GPU driver, NVRTC 13 reuses cubins from ~/.nv/ComputeCache and logs nothing unless told --no-cache."""
    for attempt in range(2):  # a fresh gputrace cache each time: NVRTC itself compiles twice
        monkeypatch.setenv("GPUTRACE_CACHE_DIR", str(tmp_path / str(attempt)))
        monkeypatch.setattr(nvrtc.compiled_cache, "memory", {})
        assert nvrtc.parse_resources(nvrtc.compile_cuda(SAXPY).log)["saxpy"].registers > 0


def test_no_fused_multiply_add_so_results_match_numpy(cache):
    ptx = nvrtc.compile_cuda(SAXPY).ptx
    assert "mul.rn.f32" in ptx and "add.rn.f32" in ptx and "fma" not in ptx


def test_fp16_kernel_finds_cuda_headers(cache):
    assert any(Path(d, "cuda_fp16.h").is_file() for d in nvrtc.cuda_include_dirs())
    compiled = nvrtc.compile_cuda(HALF_SCALE)
    assert ".entry half_scale" in compiled.ptx and compiled.cubin.startswith(b"\x7fELF")


def test_templates_folder_is_on_the_include_path(cache):
    assert nvrtc.cuda_include_dirs()[-1] == str(templates_dir())
    source = '#include "gputrace_ops.cuh"\nextern "C" __global__ void k(float* x) { x[0] = 1.0f; }\n'
    assert ".entry k" in nvrtc.compile_cuda(source).ptx


def test_compute_arch_gives_ptx_only(cache):
    compiled = nvrtc.compile_cuda(SAXPY, arch="compute_90")
    assert ".entry saxpy" in compiled.ptx and compiled.cubin is None
    assert "-Xptxas" not in compiled.options and nvrtc.parse_resources(compiled.log) == {}


def test_sass_through_nvdisasm(cache):
    cubin = nvrtc.compile_cuda(SAXPY).cubin
    sass = nvrtc.disassemble(cubin)
    assert "saxpy" in sass and "EXIT" in sass
    assert nvrtc.disassemble(cubin) is sass  # cached by the cubin's hash


def test_compile_error_shows_log_and_numbered_source(cache):
    with pytest.raises(KernelCompileError) as error:
        nvrtc.compile_cuda(BROKEN)
    message = str(error.value)
    assert 'kernel.cu(3): error: identifier "undeclared_value" is undefined' in message
    assert "    3 |     y[i] = undeclared_value;" in message
    assert '    1 | extern "C" __global__ void broken(float* y) {' in message  # short: every line shown


def test_compile_error_in_a_long_source_shows_a_window(cache):
    lines = [f"// filler {n}" for n in range(1, 70)] + ["__global__ void k() { undeclared_call(); }"]
    lines += [f"// more {n}" for n in range(71, 101)]
    with pytest.raises(KernelCompileError) as error:
        nvrtc.compile_cuda("\n".join(lines), name="long.cu")
    message = str(error.value)
    assert "long.cu(70): error" in message and "   70 | __global__ void k() { undeclared_call(); }" in message
    assert "   67 | // filler 67" in message and "   73 | // more 73" in message
    assert "   66 |" not in message and "   74 |" not in message and "  ..." in message


def test_parse_resources_reads_entries_not_device_functions():
    log = """ptxas info    : 16 bytes gmem
ptxas info    : Compiling entry function 'd' for 'sm_90'
ptxas info    : Function properties for d
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 8 registers, used 0 barriers, 380 bytes cmem[0], 8 bytes cmem[2]
ptxas info    : Function properties for _Z1ff
ptxas         .     16 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function '_Z1bIfEvPT_' for 'sm_90'
ptxas info    : Function properties for _Z1bIfEvPT_
ptxas         .     248 bytes stack frame, 244 bytes spill stores, 240 bytes spill loads
ptxas info    : Used 24 registers, used 0 barriers, 248 bytes cumulative stack size
ptxas info    : Compiling entry function 'a' for 'sm_90'
ptxas info    : Function properties for a
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 10 registers, used 1 barriers, 256 bytes smem
"""
    found = nvrtc.parse_resources(log)
    assert list(found) == ["d", "_Z1bIfEvPT_", "a"]
    assert found["d"] == nvrtc.KernelResources(registers=8, constant_bytes=388)
    assert found["_Z1bIfEvPT_"] == nvrtc.KernelResources(registers=24, stack_bytes=248,
                                                         spill_stores=244, spill_loads=240)
    assert found["a"] == nvrtc.KernelResources(registers=10, barriers=1, shared_bytes=256)
    assert str(found["a"]) == ("10 registers, 1 barriers, 256 B shared, 0 B constant, 0 B stack, "
                               "0 B spill stores, 0 B spill loads")


def test_memory_then_disk_cache(cache, builds, monkeypatch):
    start = time.perf_counter()
    cold = nvrtc.compile_cuda(SAXPY)
    cold_s = time.perf_counter() - start
    start = time.perf_counter()
    assert nvrtc.compile_cuda(SAXPY) is cold
    memory_s = time.perf_counter() - start
    forget_memory(monkeypatch)
    start = time.perf_counter()
    warm = nvrtc.compile_cuda(SAXPY)
    disk_s = time.perf_counter() - start
    assert builds == ["kernel.cu"] and warm == cold
    assert disk_s < cold_s / 3 and memory_s < disk_s, (cold_s, disk_s, memory_s)


def test_key_covers_arch_options_and_name(cache, builds):
    nvrtc.compile_cuda(SAXPY)
    nvrtc.compile_cuda(SAXPY, arch="sm_80")
    nvrtc.compile_cuda(SAXPY, options=("-DEXTRA=1",))
    nvrtc.compile_cuda(SAXPY, name="other.cu")
    assert len(builds) == 4 and len(list((cache / "nvrtc").iterdir())) == 4


@pytest.mark.parametrize("damage", [lambda b: b"garbage" * 10, lambda b: b[: len(b) // 2], lambda b: b[:-1] + b"x"])
def test_damaged_disk_entry_is_rebuilt(cache, builds, monkeypatch, damage):
    first = nvrtc.compile_cuda(SAXPY)
    [entry] = (cache / "nvrtc").iterdir()
    entry.write_bytes(damage(entry.read_bytes()))
    forget_memory(monkeypatch)
    again = nvrtc.compile_cuda(SAXPY)
    assert (again.ptx, again.cubin) == (first.ptx, first.cubin)  # the log differs: it holds ptxas' compile time
    assert len(builds) == 2 and DiskCache("nvrtc").get(entry.stem) is not None  # rebuilt and rewritten


def test_threads_compiling_one_kernel_build_it_once(cache, builds):
    start = threading.Barrier(8)
    results = [None] * 8

    def compile_one(i):
        start.wait()
        results[i] = nvrtc.compile_cuda(SAXPY)

    threads = [threading.Thread(target=compile_one, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert builds == ["kernel.cu"] and all(r is results[0] for r in results)


CHILD = """
import sys
from gputrace.backends import nvrtc
print("ready", flush=True)
sys.stdin.readline()
print(len(nvrtc.compile_cuda(sys.argv[1]).cubin), flush=True)
"""


def test_processes_compiling_one_kernel_leave_one_entry(cache, builds):
    env = {**os.environ, "GPUTRACE_CACHE_DIR": str(cache),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, SAXPY], env=env, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for _ in range(2)]
    for child in children:  # both imported: now let them compile at the same moment
        assert child.stdout.readline().strip() == "ready"
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    results = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0], results
    [entry] = (cache / "nvrtc").iterdir()  # one entry, no temporary files left behind
    assert entry.suffix == ".bin" and DiskCache("nvrtc").get(entry.stem) is not None
    compiled = nvrtc.compile_cuda(SAXPY)
    assert builds == [] and [int(out) for out, _ in results] == [len(compiled.cubin)] * 2


def test_missing_cupy_says_how_to_install():
    script = ("import sys; sys.modules['cupy'] = None\n"
              "from gputrace.backends import nvrtc\n"
              "assert not nvrtc.nvrtc_available()\n"
              "nvrtc.compile_cuda('__global__ void k() {}')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode != 0
    assert "BackendUnavailableError" in done.stderr and "pip install gputrace[cuda13]" in done.stderr


@pytest.fixture
def no_cuda_headers(monkeypatch):
    monkeypatch.setattr(build, "cuda_header_candidates", lambda: [])
    for cached in (build.cuda_fp16_dir, build.host_cuda_dirs, build.headers_fingerprint):
        cached.cache_clear()
    yield
    for cached in (build.cuda_fp16_dir, build.host_cuda_dirs, build.headers_fingerprint):
        cached.cache_clear()


def test_without_cuda_headers_nvrtc_unpacks_its_own(cache, no_cuda_headers):
    folder = nvrtc.cuda_include_dirs()[0]
    if folder == str(templates_dir()):
        pytest.skip(f"NVRTC {nvrtc.nvrtc_version()} has no --use-bundled-headers")
    assert Path(folder).is_relative_to(cache) and Path(folder, "cuda_fp16.h").is_file()
    assert nvrtc.bundled_headers() == folder  # unpacked once
    assert nvrtc.compile_cuda(HALF_SCALE).cubin.startswith(b"\x7fELF")


@pytest.mark.gpu
@pytest.mark.skipif(not nvrtc.gpu_available(), reason="needs a CUDA GPU")
def test_load_raw_module_runs_the_cached_cubin(cache):
    import cupy
    module = nvrtc.load_raw_module(SAXPY)
    assert nvrtc.load_raw_module(SAXPY) is module
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    y = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    d_y = cupy.asarray(y)
    module.get_function("saxpy")((4,), (256,), (np.float32(2.5), cupy.asarray(x), d_y, np.int64(x.size)))
    np.testing.assert_array_equal(d_y.get(), np.float32(2.5) * x + y)  # bit-exact: no fused multiply-add
    arch = f"sm_{cupy.cuda.Device().compute_capability}"
    assert any(c.arch == arch for c in nvrtc.compiled_cache.memory.values())
