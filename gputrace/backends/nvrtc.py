"""NVRTC through CuPy's low-level bindings: compile for an explicit arch (no GPU needed), cache, inspect.

``cupy.cuda.nvrtc`` works without a driver; CuPy's high-level compile asks the
device for its architecture, so we name the architecture ourselves.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cache import DiskCache, cache_key
from ..codegen.templates import templates_dir
from ..errors import BackendUnavailableError, KernelCompileError

_INSTALL_HINT = "install the CUDA extra: pip install gputrace[cuda13]"


def _nvrtc():
    try:
        from cupy.cuda import nvrtc
    except Exception as exc:  # ImportError, or a CuPy that cannot find libnvrtc
        raise BackendUnavailableError(f"NVRTC is not available ({exc}); {_INSTALL_HINT}") from None
    return nvrtc


@functools.lru_cache(maxsize=None)
def nvrtc_version() -> tuple[int, int] | None:
    try:
        return tuple(_nvrtc().getVersion())
    except Exception:
        return None


def nvrtc_available() -> bool:
    return nvrtc_version() is not None


@functools.lru_cache(maxsize=None)
def _nvidia_roots() -> list[Path]:
    try:
        import nvidia
    except ImportError:
        return []
    return [Path(p) for p in nvidia.__path__]


@functools.lru_cache(maxsize=None)
def cuda_include_dirs() -> list[str]:
    """Folders holding cuda_fp16.h (the nvidia wheels, CUDA_PATH, /usr/local/cuda), then our templates."""
    candidates = []
    for root in _nvidia_roots():
        candidates += [root / "cu13" / "include", root / "cuda_runtime" / "include"]
    for env in (os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if env:
            candidates.append(Path(env) / "include")
    found = [str(c) for c in candidates if (c / "cuda_fp16.h").is_file()]
    return found[:1] + [str(templates_dir())]


@dataclass(frozen=True)
class CompiledCuda:
    ptx: str
    cubin: bytes | None
    log: str
    arch: str
    options: tuple[str, ...]


_memory: dict[str, CompiledCuda] = {}
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def numbered(source: str, around: set[int] | None = None, context: int = 3) -> str:
    lines = source.splitlines()
    keep = range(1, len(lines) + 1)
    if around and len(lines) > 60:
        keep = sorted({n for line in around for n in range(line - context, line + context + 1) if 1 <= n <= len(lines)})
    return "\n".join(f"{n:5d} | {lines[n - 1]}" for n in keep)


def compile_cuda(source: str, *, name: str = "kernel.cu", arch: str = "sm_90",
                 options: tuple[str, ...] = ()) -> CompiledCuda:
    """PTX (and a cubin for sm_XX) of ``source``; cached in memory and on disk by source, options, NVRTC version."""
    nvrtc = _nvrtc()
    full = ("-std=c++17", "--fmad=false", f"-arch={arch}", *[f"-I{d}" for d in cuda_include_dirs()],
            *(("-Xptxas", "-v") if arch.startswith("sm_") else ()), *options)
    key = cache_key([source, "\0".join(full), repr(nvrtc_version())])
    hit = _memory.get(key)
    if hit is not None:
        return hit
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        if key in _memory:
            return _memory[key]
        disk = DiskCache("nvrtc")
        payload = disk.get(key)
        if payload is None:
            payload = _encode(_compile(nvrtc, source, name, full))
            disk.put(key, payload)
        result = _decode(payload, arch, tuple(options))
        _memory[key] = result
        return result


def _compile(nvrtc, source: str, name: str, options: tuple[str, ...]) -> tuple[str, bytes | None, str]:
    program = nvrtc.createProgram(source, name, [], [])
    try:
        try:
            nvrtc.compileProgram(program, list(options))
        except nvrtc.NVRTCError:
            log = nvrtc.getProgramLog(program)
            lines = {int(m) for m in re.findall(r"\((\d+)\): error", log)}
            raise KernelCompileError(f"NVRTC could not compile {name}:\n{log}\n{numbered(source, lines)}") from None
        log = nvrtc.getProgramLog(program)
        ptx = nvrtc.getPTX(program)
        ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
        cubin = None
        if any(o.startswith("-arch=sm_") for o in options):
            cubin = _complete_elf(bytes(nvrtc.getCUBIN(program)))
        return ptx.rstrip("\0"), cubin, log
    finally:
        nvrtc.destroyProgram(program)


def _complete_elf(cubin: bytes) -> bytes:
    """CuPy 14 returns the cubin as a C string, dropping its last byte (a zero): put it back."""
    return cubin + b"\0"


def _encode(result: tuple[str, bytes | None, str]) -> bytes:
    ptx, cubin, log = result
    header = json.dumps({"ptx": ptx, "log": log, "cubin": cubin is not None}).encode()
    return len(header).to_bytes(8, "little") + header + (cubin or b"")


def _decode(payload: bytes, arch: str, options: tuple[str, ...]) -> CompiledCuda:
    size = int.from_bytes(payload[:8], "little")
    header = json.loads(payload[8:8 + size])
    cubin = payload[8 + size:] if header["cubin"] else None
    return CompiledCuda(header["ptx"], cubin, header["log"], arch, options)


@dataclass(frozen=True)
class KernelResources:
    registers: int = 0
    barriers: int = 0
    shared_bytes: int = 0
    constant_bytes: int = 0
    stack_bytes: int = 0
    spill_stores: int = 0
    spill_loads: int = 0

    def __str__(self) -> str:
        return (f"{self.registers} registers, {self.shared_bytes} B shared, {self.stack_bytes} B stack, "
                f"{self.spill_stores} B spill stores, {self.spill_loads} B spill loads")


def parse_resources(log: str) -> dict[str, KernelResources]:
    """Per kernel, what ptxas -v reported."""
    found: dict[str, KernelResources] = {}
    current = None
    values: dict[str, int] = {}
    for line in log.splitlines():
        m = re.search(r"Function properties for (\S+)", line) or re.search(r"Compiling entry function '(\S+)'", line)
        if m:
            if current and values:
                found[current] = KernelResources(**values)
            current, values = m.group(1), {}
            continue
        if current is None:
            continue
        for field, pattern in (("stack_bytes", r"(\d+) bytes stack frame"), ("spill_stores", r"(\d+) bytes spill stores"),
                               ("spill_loads", r"(\d+) bytes spill loads"), ("registers", r"Used (\d+) registers"),
                               ("barriers", r"used (\d+) barriers"), ("shared_bytes", r"(\d+) bytes smem"),
                               ("constant_bytes", r"(\d+) bytes cmem\[0\]")):
            m = re.search(pattern, line)
            if m:
                values[field] = int(m.group(1))
    if current and values:
        found[current] = KernelResources(**values)
    return found


def _nvdisasm() -> str | None:
    for root in _nvidia_roots():
        candidate = root / "cu13" / "bin" / "nvdisasm"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("nvdisasm")


@functools.lru_cache(maxsize=64)
def disassemble(cubin: bytes) -> str:
    """SASS of a cubin, through nvdisasm (the nvidia-cuda-nvdisasm wheel or the toolkit's)."""
    tool = _nvdisasm()
    if tool is None:
        raise BackendUnavailableError("nvdisasm was not found; pip install nvidia-cuda-nvdisasm (part of gputrace[cuda13])")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as handle:
        handle.write(cubin)
        handle.flush()
        done = subprocess.run([tool, "-c", handle.name], capture_output=True, text=True)
    if done.returncode != 0:
        raise BackendUnavailableError(f"nvdisasm failed: {done.stderr.strip()}")
    return done.stdout


@functools.lru_cache(maxsize=None)
def gpu_available() -> bool:
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


_modules: dict[tuple, Any] = {}


def load_raw_module(source: str, *, options: tuple[str, ...] = ()):
    """A cupy.RawModule of ``source`` for the current device, from our cached cubin."""
    import cupy
    device = cupy.cuda.Device()
    major, minor = device.compute_capability[:-1], device.compute_capability[-1]
    arch = f"sm_{major}{minor}"
    key = (source, options, device.id)
    module = _modules.get(key)
    if module is None:
        compiled = compile_cuda(source, arch=arch, options=options)
        with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as handle:
            handle.write(compiled.cubin)
        module = cupy.RawModule(path=handle.name)
        _modules[key] = module
    return module
