"""NVRTC through CuPy's low-level bindings: compile for a named architecture (no GPU needed), cache, inspect.

CuPy's high-level compilers (``RawKernel.compile``, ``compile_using_nvrtc``) ask
the driver for the device's architecture and fail without a GPU;
``cupy.cuda.nvrtc`` does not, so we name the architecture ourselves. Results
are cached in memory and on disk, keyed by everything that determines them.

>>> compiled = compile_cuda('extern "C" __global__ void twice(float* x) { x[threadIdx.x] *= 2.0f; }')
>>> ".entry twice" in compiled.ptx, compiled.cubin[:4]
(True, b'\\x7fELF')
>>> parse_resources(compiled.log)["twice"].spill_stores
0
>>> "EXIT" in disassemble(compiled.cubin)
True
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..cache import BuildCache, cache_dir, cache_key
from ..codegen.templates import templates_dir
from ..errors import BackendUnavailableError, KernelCompileError
from .build import BODY_ENTRY, build_bodies, cuda_fp16_dir, cuda_toolkits, headers_fingerprint, nvidia_roots

logger = logging.getLogger("gputrace.kernels")

INSTALL_HINT = "install the CUDA extra: pip install gputrace[cuda13]"
ENTRY_FORMAT = "nvrtc-entry-2"  # part of every cache key: change it when the payload layout changes


# -- NVRTC and its headers

def _nvrtc() -> Any:
    """CuPy's NVRTC module, checked to reach libnvrtc (CuPy loads the library lazily)."""
    try:
        from cupy.cuda import nvrtc
        nvrtc.getVersion()
    except Exception as exc:  # ImportError, or a CuPy that cannot load libnvrtc
        raise BackendUnavailableError(f"NVRTC is not available ({type(exc).__name__}: {exc}); {INSTALL_HINT}") from None
    return nvrtc


@functools.lru_cache(maxsize=None)
def nvrtc_version() -> tuple[int, int] | None:
    """NVRTC's (major, minor), or None when CuPy or libnvrtc is missing."""
    try:
        return tuple(_nvrtc().getVersion())
    except BackendUnavailableError:
        return None


def nvrtc_available() -> bool:
    return nvrtc_version() is not None


def _version_options() -> tuple[str, ...]:
    """Options this NVRTC knows that every compile gets.

    ``--no-cache``: with a driver present, NVRTC 13 reuses cubins from the driver's ComputeCache (~/.nv), and a
    reused cubin comes with an empty log: no registers, no spills; our own cache takes its place.
    ``-minimal``: leaves out texture, surface and device-runtime declarations no generated kernel uses, about a
    sixth of a small kernel's compile (the PTX is the same).
    """
    return tuple(option for option in ("--no-cache", "-minimal") if _accepts(option))


@functools.lru_cache(maxsize=None)
def _accepts(option: str) -> bool:
    nvrtc = _nvrtc()
    program = nvrtc.createProgram("", "probe.cu", [], [])
    try:
        # Options are checked in order before anything compiles (0.1 ms): the log names the first unknown one.
        nvrtc.compileProgram(program, [option, "--gputrace-probe"])
    except nvrtc.NVRTCError:
        pass
    try:
        return option not in _text(nvrtc.getProgramLog(program))
    finally:
        nvrtc.destroyProgram(program)


def cuda_include_dirs() -> list[str]:
    """The folder with ``cuda_fp16.h`` (see :mod:`.build`), then our templates."""
    cuda = cuda_fp16_dir()
    return [*([cuda] if cuda else []), str(templates_dir())]


def bundled_headers() -> str | None:
    """Unpack NVRTC's own copy of CUDA's headers (``--use-bundled-headers``, NVRTC 13) once; None if unsupported."""
    version = nvrtc_version()
    if version is None:
        return None
    folder = cache_dir() / "nvrtc-headers" / ".".join(map(str, version))
    if (folder / "cuda_fp16.h").is_file():
        return str(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Unpack beside the final folder and rename: other processes never see a half-written header set.
    unpacking = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".unpacking-"))
    try:
        _run_nvrtc(_nvrtc(), 'extern "C" __global__ void gt_unpack_headers() {}', "unpack_headers.cu",
                   ("-arch=compute_75", f"--use-bundled-headers={unpacking}"), want_cubin=False)
        os.rename(unpacking, folder)
    except (KernelCompileError, OSError) as exc:  # an older NVRTC, or another process renamed first
        shutil.rmtree(unpacking, ignore_errors=True)
        if not (folder / "cuda_fp16.h").is_file():
            logger.warning("no CUDA headers found and NVRTC cannot unpack its own: %s", exc)
            return None
    return str(folder)


# -- compiling

@dataclass(frozen=True)
class CompiledCuda:
    """What NVRTC made of one source: PTX, a cubin (None for ``compute_XX``), the log, and every flag used."""
    ptx: str
    cubin: bytes | None
    log: str
    arch: str
    options: tuple[str, ...]

    def __repr__(self) -> str:  # the dataclass repr would print all of the PTX and cubin
        cubin = f"{len(self.cubin)} B cubin" if self.cubin is not None else "no cubin"
        return f"<CompiledCuda {self.arch}: {self.ptx.count(chr(10))} lines of PTX, {cubin}>"


compiled_cache: BuildCache[CompiledCuda] = BuildCache("nvrtc")


def compile_cuda(source: str, *, name: str = "kernel.cu", arch: str = "sm_90",
                 options: tuple[str, ...] = ()) -> CompiledCuda:
    """Compile ``source`` with NVRTC for ``arch`` (``sm_XX``: PTX and cubin; ``compute_XX``: PTX only).

    Always passes ``-std=c++17 --fmad=false`` (fused multiply-add would break
    NumPy-exact results), ``--no-cache -minimal``, the include folders, and ``-Xptxas -v``
    for ``sm_XX`` so the log reports registers and spills. Cached in memory and
    on disk by source, name, flags, headers and NVRTC version; threads asking
    for the same kernel wait for one build. Raises KernelCompileError with
    NVRTC's log and the numbered source, BackendUnavailableError when CuPy or
    NVRTC is missing.
    """
    nvrtc = _nvrtc()
    want_cubin = arch.startswith("sm_")
    folders = cuda_include_dirs()
    flags = ("-std=c++17", "--fmad=false", f"-arch={arch}", *_version_options(),
             *(f"-I{d}" for d in folders), *(("-Xptxas", "-v") if want_cubin else ()), *options)
    key = cache_key([ENTRY_FORMAT, source, name, *flags, repr(nvrtc_version()), headers_fingerprint(tuple(folders))])
    return compiled_cache.get(key, lambda: _encode(*_run_nvrtc(nvrtc, source, name, flags, want_cubin)),
                              lambda payload: CompiledCuda(*_decode(payload), arch, flags), name)


def compile_kernels(kernels: Sequence[Any], *, arch: str) -> list[CompiledCuda]:
    """What the cuda backend loads for ``kernels`` (generated :class:`Kernel` objects): per kernel, the NVRTC
    output of its body (entry ``BODY_ENTRY``); kernels that differ only in their names share one compile."""
    return build_bodies(kernels, lambda body: compile_cuda(body, name=f"{BODY_ENTRY}.cu", arch=arch))


def _run_nvrtc(nvrtc: Any, source: str, name: str, flags: tuple[str, ...],
               want_cubin: bool) -> tuple[str, bytes | None, str]:
    start = time.perf_counter()
    program = nvrtc.createProgram(source, name, [], [])
    try:
        try:
            nvrtc.compileProgram(program, list(flags))
        except nvrtc.NVRTCError as exc:
            compile_log = _text(nvrtc.getProgramLog(program)) or str(exc)
            raise KernelCompileError(_compile_error(source, name, compile_log)) from None
        ptx = _text(nvrtc.getPTX(program))
        cubin = _whole_elf(bytes(nvrtc.getCUBIN(program))) if want_cubin else None
        compile_log = _text(nvrtc.getProgramLog(program))
    finally:
        nvrtc.destroyProgram(program)
    logger.debug("NVRTC compiled %s (%s) in %.0f ms", name, " ".join(flags), 1e3 * (time.perf_counter() - start))
    return ptx, cubin, compile_log


def _text(value: str | bytes) -> str:
    """CuPy 14 returns the PTX as bytes and the log with its C terminator; we want plain text."""
    return (value.decode() if isinstance(value, bytes) else value).rstrip("\0")


def _whole_elf(data: bytes) -> bytes:
    """Pad a cubin to its ELF's own extent: CuPy 14.2's getCUBIN slices off the last byte (a zero) as if a C string."""
    if len(data) < 64 or data[:5] != b"\x7fELF\x02":  # NVRTC writes 64-bit ELF only; leave anything else alone
        return data
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x36)
    end = max(phoff + phentsize * phnum, shoff + shentsize * shnum)
    for entry in (shoff + i * shentsize for i in range(shnum)):
        if entry + 0x28 > len(data):
            break
        kind, = struct.unpack_from("<I", data, entry + 4)
        offset, size = struct.unpack_from("<QQ", data, entry + 0x18)
        if kind != 8:  # SHT_NOBITS sections take no room in the file
            end = max(end, offset + size)
    return data + b"\0" * max(0, end - len(data))


def _encode(ptx: str, cubin: bytes | None, compile_log: str) -> bytes:
    """A payload: 8-byte header length, a JSON header with the texts, then the cubin's bytes."""
    header = json.dumps({"ptx": ptx, "log": compile_log, "cubin": cubin is not None}).encode()
    return len(header).to_bytes(8, "little") + header + (cubin or b"")


def _decode(payload: bytes) -> tuple[str, bytes | None, str]:
    size = int.from_bytes(payload[:8], "little")
    header = json.loads(payload[8:8 + size])
    return header["ptx"], payload[8 + size:] if header["cubin"] else None, header["log"]


def _compile_error(source: str, name: str, compile_log: str) -> str:
    lines = {int(n) for n in re.findall(rf"^{re.escape(name)}\((\d+)\): (?:catastrophic )?error", compile_log, re.M)}
    return f"NVRTC could not compile {name}:\n{compile_log.strip()}\n\n{numbered(source, lines)}"


def numbered(source: str, around: Iterable[int] = (), context: int = 3, short: int = 60) -> str:
    """``source`` with line numbers: all of it up to ``short`` lines, else ``context`` lines around ``around``'s."""
    lines = source.splitlines()
    keep = sorted({n for line in around for n in range(line - context, line + context + 1) if 1 <= n <= len(lines)})
    if len(lines) <= short or not keep:
        keep = list(range(1, len(lines) + 1))
    shown, previous = [], 0
    for n in keep:
        if n > previous + 1:
            shown.append("  ...")
        shown.append(f"{n:5d} | {lines[n - 1]}")
        previous = n
    if previous < len(lines):
        shown.append("  ...")
    return "\n".join(shown)


# -- inspecting

@dataclass(frozen=True)
class KernelResources:
    """What ptxas reported for one kernel; sizes in bytes."""
    registers: int = 0
    barriers: int = 0
    shared_bytes: int = 0
    constant_bytes: int = 0
    stack_bytes: int = 0
    spill_stores: int = 0
    spill_loads: int = 0

    def __str__(self) -> str:
        return (f"{self.registers} registers, {self.barriers} barriers, {self.shared_bytes} B shared, "
                f"{self.constant_bytes} B constant, {self.stack_bytes} B stack, "
                f"{self.spill_stores} B spill stores, {self.spill_loads} B spill loads")


_RESOURCE_PATTERNS = {
    "registers": r"Used (\d+) registers", "barriers": r"used (\d+) barriers", "shared_bytes": r"(\d+) bytes smem",
    "stack_bytes": r"(\d+) bytes stack frame", "spill_stores": r"(\d+) bytes spill stores",
    "spill_loads": r"(\d+) bytes spill loads",
}


def parse_resources(log: str) -> dict[str, KernelResources]:
    """Per kernel (its mangled or ``extern "C"`` name), the resources in ``ptxas -v``'s lines of an NVRTC log."""
    entries: dict[str, dict[str, int]] = {}
    functions: dict[str, dict[str, int]] = {}  # stack and spills: ptxas reports them for device functions too
    entry = function = None
    for line in log.splitlines():
        if m := re.search(r"Compiling entry function '([^']+)'", line):
            entry = m.group(1)
            entries[entry] = {}
        elif m := re.search(r"Function properties for (\S+)", line):
            function = m.group(1)
            functions[function] = {}
        elif "stack frame" in line and function is not None:
            _read_resources(line, functions[function])
        elif entry is not None:
            _read_resources(line, entries[entry])
    return {name: KernelResources(**{**values, **functions.get(name, {})}) for name, values in entries.items()}


def _read_resources(line: str, into: dict[str, int]) -> None:
    for field, pattern in _RESOURCE_PATTERNS.items():
        if m := re.search(pattern, line):
            into[field] = int(m.group(1))
    if banks := re.findall(r"(\d+) bytes cmem\[\d+\]", line):  # older ptxas lists constant banks
        into["constant_bytes"] = sum(map(int, banks))


def _nvdisasm() -> str | None:
    candidates = [root / sub / "bin" / "nvdisasm" for root in nvidia_roots() for sub in ("cu13", "cuda_nvdisasm")]
    candidates += [toolkit / "bin" / "nvdisasm" for toolkit in cuda_toolkits()]
    found = next((str(c) for c in candidates if c.is_file()), None)
    return found or shutil.which("nvdisasm")


_sass: dict[str, str] = {}


def disassemble(cubin: bytes) -> str:
    """The SASS of a cubin (``nvdisasm -c``, from the nvidia-cuda-nvdisasm wheel or a CUDA toolkit)."""
    digest = hashlib.sha256(cubin).hexdigest()
    if digest not in _sass:
        tool = _nvdisasm()
        if tool is None:
            raise BackendUnavailableError(f"nvdisasm was not found (wheel nvidia-cuda-nvdisasm or a CUDA toolkit); "
                                          f"{INSTALL_HINT}")
        with tempfile.NamedTemporaryFile(suffix=".cubin") as handle:
            handle.write(cubin)
            handle.flush()
            done = subprocess.run([tool, "-c", handle.name], capture_output=True, text=True)
        if done.returncode != 0:  # e.g. an nvdisasm older than the cubin's architecture
            raise BackendUnavailableError(f"{tool} could not disassemble the cubin: {done.stderr.strip()}")
        _sass[digest] = done.stdout
    return _sass[digest]


# -- running on a GPU

@functools.lru_cache(maxsize=None)
def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, a driver too old for CuPy's CUDA: all mean "no GPU"
        return False


_modules: dict[tuple[bytes, int], Any] = {}


def load_raw_module(source: str, *, options: tuple[str, ...] = ()) -> Any:
    """A ``cupy.cuda.function.Module`` of ``source`` on the current device; ``.get_function(name)`` gives kernels.

    Loads the cubin that :func:`compile_cuda` built (and cached) for the device's
    own architecture, so the program runs exactly the code ``.sass()`` shows.
    """
    return load_compiled(compile_cuda(source, arch=device_arch(), options=tuple(options)))


def device_arch() -> str:
    """``sm_XX`` of the current CUDA device."""
    import cupy
    return f"sm_{cupy.cuda.Device().compute_capability}"


def load_compiled(compiled: CompiledCuda) -> Any:
    """``compiled``'s cubin loaded on the current device (cuModuleLoadData), once per cubin and device."""
    import cupy
    from cupy.cuda.function import Module

    key = (hashlib.sha256(compiled.cubin or b"").digest(), cupy.cuda.Device().id)
    module = _modules.get(key)
    if module is None:
        module = Module()
        module.load(compiled.cubin)
        module = _modules.setdefault(key, module)
    return module
