"""The emulate backend's builder: the CUDA source NVRTC compiles, built by the host C++ compiler.

``cuda_templates/emulate.cuh`` supplies the device API (threads as fibers, ``__shared__``,
barriers, warp shuffles, atomics); the kernels run on NumPy arrays, so the kernels gputrace
generates can be checked without a GPU.

>>> module = build_host_module(source, ["add"])                     # doctest: +SKIP
>>> module.launch("add", grid=4, block=256, args=[x, y, out, np.int64(x.size)])  # doctest: +SKIP

Two kinds of library come from the header: the runtime (scheduler, fibers, worker pool), built
once per compiler and flags, and kernel modules, which link against it and hold only kernels and
launch wrappers. Both are cached on disk (``DiskCache("emulate")``) by everything they depend on,
and kernel modules in memory too; a precompiled header per compiler and flags saves most of each
module's build. Each load gets a fresh file name, since ``dlopen`` returns a library already
loaded from the same path.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..cache import BuildCache, DiskCache, cache_key, named_lock, write_atomic
from ..codegen.templates import templates_dir
from ..errors import BackendUnavailableError, GputraceError, KernelCompileError
from .build import headers_fingerprint, host_cuda_dirs
from .nvrtc import numbered

log = logging.getLogger("gputrace.cache")

HEADER = "emulate.cuh"
# -ffp-contract=off matches NVRTC's --fmad=false; -fno-strict-aliasing keeps the casts CUDA code is full of safe.
COMPILE_FLAGS = ("-std=c++20", "-O2", "-fPIC", "-pthread", "-ffp-contract=off", "-fno-math-errno", "-fno-strict-aliasing",
                 "-fvisibility=hidden")
_ERROR_BYTES = 8192
_COMPILERS = ("g++", "c++", "clang++")


class EmulationError(GputraceError, RuntimeError):
    """An emulated launch failed: a deadlock, an invalid launch configuration, a device assert."""


# -- the compiler and its inputs

@dataclass(frozen=True)
class HostCompiler:
    command: tuple[str, ...]
    version: str

    @property
    def name(self) -> str:
        return Path(self.command[0]).name

    @property
    def is_gcc(self) -> bool:  # only GCC's precompiled headers are used (clang's work differently)
        return "clang" not in self.version.lower()


def host_compiler() -> HostCompiler:
    """The C++ compiler: ``$CXX``, else the first of g++, c++, clang++ on the PATH."""
    return _find_compiler(os.environ.get("CXX", ""))


@functools.lru_cache(maxsize=None)
def _find_compiler(cxx: str) -> HostCompiler:
    candidates = [shlex.split(cxx)] if cxx.strip() else [[name] for name in _COMPILERS]
    for command in candidates:
        path = shutil.which(command[0])
        if path is None:
            continue
        try:
            done = subprocess.run([path, *command[1:], "--version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0 and done.stdout.strip():
            return HostCompiler((path, *command[1:]), done.stdout.splitlines()[0].strip())
    tried = f"CXX={cxx!r}" if cxx.strip() else ", ".join(_COMPILERS)
    raise BackendUnavailableError(f"the emulate backend needs a C++20 compiler and found none ({tried}); "
                                  "install g++ (apt install g++) or point CXX at one")


def host_compiler_info() -> dict[str, Any]:
    """What the emulate backend builds with, or why it cannot: for ``gputrace doctor``."""
    try:
        compiler = host_compiler()
    except BackendUnavailableError as exc:
        return {"available": False, "error": str(exc)}
    cuda = host_cuda_dirs()
    return {
        "available": True,
        "compiler": " ".join(compiler.command),
        "version": compiler.version,
        "precompiled_header": compiler.is_gcc,
        "cuda_headers": cuda[0] if cuda else "not found: kernels using cuda_fp16.h will not build",
        "threads": os.environ.get("GPUTRACE_EMULATE_THREADS") or os.cpu_count(),
        "order": os.environ.get("GPUTRACE_EMULATE_ORDER") or "forward",
        "extra_flags": " ".join(environment_flags()),
    }


def environment_flags() -> list[str]:
    """``$GPUTRACE_EMULATE_FLAGS``: more compiler flags for every emulated build, e.g. ``-fsanitize=address`` to
    check the kernels' memory accesses (run Python with ``LD_PRELOAD=$(g++ -print-file-name=libasan.so)``)."""
    return shlex.split(os.environ.get("GPUTRACE_EMULATE_FLAGS", ""))


def _include_dirs() -> tuple[str, ...]:
    return (str(templates_dir()), *host_cuda_dirs())


# -- building

modules: BuildCache["HostModule"] = BuildCache("emulate")
runtimes: BuildCache["_Runtime"] = BuildCache("emulate")


def build_host_module(source: str, kernel_names: Sequence[str], *, extra_flags: Sequence[str] = ()) -> "HostModule":
    """Build ``source`` (CUDA C++ as NVRTC takes it) with the host compiler; kernels ``kernel_names`` become launchable.

    Raises KernelCompileError with the compiler's log and the numbered source when it does not build,
    BackendUnavailableError when there is no C++ compiler.
    """
    names = list(kernel_names)
    if not names or not all(re.fullmatch(r"[A-Za-z_]\w*", n) for n in names):
        raise ValueError(f"kernel_names must name extern \"C\" kernels, got {names!r}")
    compiler = host_compiler()
    flags = (*COMPILE_FLAGS, *extra_flags, *environment_flags())
    key = cache_key([source, "\0".join(names), "\0".join(flags), compiler.version, headers_fingerprint(_include_dirs())])
    module = modules.memory.get(key)
    if module is not None:  # a module in memory needs no runtime; one loaded from disk or built does, first
        return module
    runtime = _runtime(compiler, flags)
    return modules.get(key, lambda: _build_module(source, names, flags, compiler, runtime),
                       lambda payload: HostModule(_load(payload, key), names, key), ", ".join(names))


@dataclass(frozen=True)
class _Runtime:
    soname: str  # how modules name it; the loader matches it to the loaded copy
    payload: bytes
    library: ctypes.CDLL


def _runtime(compiler: HostCompiler, flags: tuple[str, ...]) -> _Runtime:
    """The runtime library for these flags, loaded: modules link against it."""
    key = cache_key(["runtime", "\0".join(flags), compiler.version, headers_fingerprint(_include_dirs())])
    soname = f"libgputrace_emulate_{key[:16]}.so"
    arguments = [*flags, "-shared", "-DGT_EMU_RUNTIME", f"-Wl,-soname,{soname}", *_include_flags(),
                 "-include", str(templates_dir() / HEADER), "-x", "c++", "/dev/null"]

    def build() -> bytes:
        done, payload = _run_compiler(compiler, arguments, {})
        if payload is None:
            raise KernelCompileError(f"{compiler.name} could not build the emulation runtime from "
                                     f"{templates_dir() / HEADER}:\n{done.stderr.strip()}")
        return payload

    return runtimes.get(key, build, lambda payload: _Runtime(soname, payload, _load(payload, key)), "emulation runtime")


# `extern __shared__ T name[];` has no g++ meaning: it becomes a pointer to the block's dynamic shared memory.
_EXTERN_SHARED = re.compile(r"\bextern\s+__shared__\s+(?P<type>[^;\[\]]*?)\s*\b(?P<name>\w+)\s*\[\s*\]\s*;")


def _host_source(source: str, names: list[str]) -> str:
    def pointer(match: re.Match) -> str:
        lines = "\n" * match.group(0).count("\n")  # keep line numbers for the compiler's messages
        return f"thread_local {match['type']}* const {match['name']} = gt_emu::dynamic_shared();{lines}"
    exports = "".join(f"GT_EMU_EXPORT({name})\n" for name in names)
    return f"{_EXTERN_SHARED.sub(pointer, source)}\n{exports}"


def _build_module(source: str, names: list[str], flags: tuple[str, ...], compiler: HostCompiler, runtime: _Runtime) -> bytes:
    file = f"{names[0]}.cu" if len(names) == 1 else "kernels.cu"  # as the compiler's messages name it
    files = {file: _host_source(source, names).encode(), runtime.soname: runtime.payload}

    def build(header: Path):
        arguments = [*flags, "-Winvalid-pch", "-shared", *_include_flags(), "-include", str(header), "-x", "c++", file,
                     "-x", "none", runtime.soname]
        return _run_compiler(compiler, arguments, files)

    header = _precompiled_header(compiler, flags) if compiler.is_gcc else templates_dir() / HEADER
    done, payload = build(header)
    # A damaged precompiled header fails the build ("cannot read PCH file", "while reading precompiled header")
    # or, with -Winvalid-pch, is reported and skipped ("not a PCH file"): drop it (the next build makes it again).
    if header != templates_dir() / HEADER and re.search(r"PCH|precompiled header", done.stderr):
        log.warning("precompiled header %s.gch does not load; removing it", header)
        Path(f"{header}.gch").unlink(missing_ok=True)
        if payload is None:
            done, payload = build(templates_dir() / HEADER)
    if payload is None:
        lines = {int(m) for m in re.findall(rf"^{re.escape(file)}:(\d+):\d+: error", done.stderr, re.M)}
        raise KernelCompileError(f"{compiler.name} could not build the emulated kernels ({', '.join(names)}):\n"
                                 f"{done.stderr.strip()}\n{numbered(source, lines)}")
    return payload


def _run_compiler(compiler: HostCompiler, arguments: list[str],
                  files: dict[str, bytes]) -> tuple[subprocess.CompletedProcess, bytes | None]:
    """Run the compiler in a scratch folder holding ``files``; the output library's bytes, or None."""
    with tempfile.TemporaryDirectory(prefix="gputrace-emulate-") as work:
        for name, content in files.items():
            Path(work, name).write_bytes(content)
        done = subprocess.run([*compiler.command, *arguments, "-o", "output.so"], cwd=work, capture_output=True, text=True)
        return done, (Path(work, "output.so").read_bytes() if done.returncode == 0 else None)


def _include_flags() -> list[str]:
    return [f"-I{d}" for d in _include_dirs()]


def _precompiled_header(compiler: HostCompiler, flags: tuple[str, ...]) -> Path:
    """A copy of emulate.cuh beside its precompiled form for these flags, which g++ reads instead (0.9 s -> 0.4 s a build).

    Both are plain files of the cache folder, so ``gputrace cache clear`` removes them with the rest.
    """
    folder = DiskCache("emulate").folder
    header = folder / f"pch-{cache_key(['pch', chr(0).join(flags), compiler.version, headers_fingerprint(_include_dirs())])}.cuh"
    compiled = header.with_name(header.name + ".gch")
    with named_lock(f"emulate/{header.name}"):
        if not compiled.is_file():
            write_atomic(header, (templates_dir() / HEADER).read_bytes())
            scratch = header.with_name(f"{header.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            command = [*compiler.command, *flags, *_include_flags(), "-x", "c++-header", str(header), "-o", str(scratch)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode == 0:
                os.replace(scratch, compiled)  # atomic: other processes see all of it or none
            else:  # the build without it reports the same errors in context
                scratch.unlink(missing_ok=True)
                log.warning("could not precompile %s:\n%s", HEADER, done.stderr.strip())
    return header if compiled.is_file() else templates_dir() / HEADER


def _load(payload: bytes, key: str) -> ctypes.CDLL:
    """dlopen the library from a fresh path (dlopen caches by path), deleted once mapped."""
    folder = DiskCache("emulate").folder
    folder.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=folder, prefix=f"{key}.", suffix=".so")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        return ctypes.CDLL(path)
    finally:
        os.unlink(path)


# -- launching

# Scalars travel in ctypes objects of their exact width (others, such as float16, as raw bytes).
_CTYPES = {np.dtype(t): c for t, c in (
    (np.bool_, ctypes.c_bool), (np.int8, ctypes.c_int8), (np.uint8, ctypes.c_uint8), (np.int16, ctypes.c_int16),
    (np.uint16, ctypes.c_uint16), (np.int32, ctypes.c_int32), (np.uint32, ctypes.c_uint32), (np.int64, ctypes.c_int64),
    (np.uint64, ctypes.c_uint64), (np.float32, ctypes.c_float), (np.float64, ctypes.c_double))}


@dataclass(frozen=True)
class _Parameter:
    """A kernel parameter as the library describes it: ``int64``, ``bytes8`` (a struct), ``const*float32``,
    ``*float32`` (a pointer the kernel may write through), ``*`` (untyped)."""
    text: str

    @functools.cached_property
    def pointer(self) -> bool:
        return "*" in self.text

    @functools.cached_property
    def writes(self) -> bool:
        return self.pointer and not self.text.startswith("const")

    @functools.cached_property
    def dtype(self) -> np.dtype | None:  # of the value, or of what it points to; None when untyped or a struct
        name = self.text.rpartition("*")[2]
        return None if not name or name.startswith("bytes") else np.dtype(name)

    @functools.cached_property
    def size(self) -> int:  # bytes of a scalar
        return self.dtype.itemsize if self.dtype is not None else int(self.text[5:] or 0)

    def __str__(self) -> str:
        if self.pointer:
            return f"a pointer to {self.dtype}" if self.dtype is not None else "an untyped pointer"
        return str(self.dtype) if self.dtype is not None else f"a {self.size}-byte struct"


class _HostKernel:
    def __init__(self, library: ctypes.CDLL, name: str):
        self.name = name
        self.launcher = getattr(library, f"gt_launch_{name}")
        self.launcher.restype = ctypes.c_int
        self.launcher.argtypes = [ctypes.c_uint] * 6 + [ctypes.c_size_t, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        describe = getattr(library, f"gt_params_{name}")
        describe.restype = ctypes.c_char_p
        text = describe().decode()
        self.parameters = [_Parameter(t) for t in text.split(",")] if text else []

    def pack(self, args: Sequence[Any]) -> tuple[ctypes.Array, list[Any]]:
        """The argument pointer array cudaLaunchKernel takes, and the ctypes objects holding the values."""
        if len(args) != len(self.parameters):
            raise TypeError(f"kernel {self.name!r} takes {len(self.parameters)} arguments, got {len(args)}")
        cells = [self._cell(i, p, a) for i, (p, a) in enumerate(zip(self.parameters, args))]
        pointers = (ctypes.c_void_p * max(1, len(cells)))(*map(ctypes.addressof, cells))
        return pointers, cells

    def _cell(self, index: int, parameter: _Parameter, value: Any):
        if isinstance(value, np.ndarray):
            if not parameter.pointer or (parameter.dtype is not None and value.dtype != parameter.dtype):
                raise TypeError(f"argument {index} of kernel {self.name!r} is {parameter}, got an array of {value.dtype}")
            if parameter.writes and not value.flags.writeable:  # writing could change another array, or fault
                raise TypeError(f"argument {index} of kernel {self.name!r} is {parameter} (not const), "
                                "got a read-only array")
            return ctypes.c_void_p(value.ctypes.data)  # a view's address of its first element
        scalar = _as_scalar(value) if not parameter.pointer else None
        if scalar is None:
            raise TypeError(f"argument {index} of kernel {self.name!r} is {parameter}, got {type(value).__name__}: "
                            "pass NumPy arrays and scalars")
        if scalar.dtype == parameter.dtype or (parameter.dtype is None and scalar.itemsize == parameter.size):
            ctype = _CTYPES.get(scalar.dtype)
            return ctype(scalar) if ctype else ctypes.create_string_buffer(scalar.tobytes(), scalar.itemsize)
        given = f"np.{scalar.dtype}" if isinstance(value, np.generic) else f"a Python {type(value).__name__} ({scalar.dtype})"
        raise TypeError(f"argument {index} of kernel {self.name!r} is {parameter}, got {given}: a scalar passes "
                        f"with its exact width, as on the GPU; pass np.{parameter.dtype}(...)")


def _as_scalar(value: Any) -> np.generic | None:
    """A scalar as CuPy passes it: NumPy scalars as they are, Python bool/int/float as bool/int64/float64."""
    if isinstance(value, np.generic):
        return value
    for kind, dtype in ((bool, np.bool_), (int, np.int64), (float, np.float64)):
        if isinstance(value, kind):
            return dtype(value)
    return None


def _dims(value: Any, what: str) -> tuple[int, int, int]:
    dims = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, (int, np.integer)) and 0 <= d < 2**32 for d in dims):
        raise ValueError(f"{what} must be a non-negative int or a tuple of up to 3 of them, got {value!r}")
    return tuple(int(d) for d in dims) + (1,) * (3 - len(dims))  # type: ignore[return-value]


class HostModule:
    """Kernels built for the CPU; ``launch`` runs one like ``cudaLaunchKernel`` on NumPy arrays."""

    def __init__(self, library: ctypes.CDLL, kernel_names: Sequence[str], key: str):
        self.key = key
        self._library = library
        self._kernels = {name: _HostKernel(library, name) for name in kernel_names}

    @property
    def kernel_names(self) -> list[str]:
        return list(self._kernels)

    def parameters(self, name: str) -> list[str]:
        """The kernel's parameters as NumPy types: ``['const*float32', '*float32', 'int64']`` (see ``_Parameter``)."""
        return [p.text for p in self._kernel(name).parameters]

    def launch(self, name: str, grid: Any, block: Any, args: Sequence[Any], shared_mem: int = 0) -> None:
        """Run kernel ``name`` on ``grid`` x ``block`` threads (ints or tuples of up to 3).

        ``args``: NumPy arrays (their data pointer; views pass the address of their first element)
        and scalars (NumPy scalars with their width; Python bool/int/float as bool/int64/float64).
        """
        kernel = self._kernel(name)
        pointers, cells = kernel.pack(args)  # cells hold the values until the launch returns
        error = ctypes.create_string_buffer(_ERROR_BYTES)
        status = kernel.launcher(*_dims(grid, "grid"), *_dims(block, "block"), int(shared_mem), pointers, error, _ERROR_BYTES)
        if status != 0:
            raise EmulationError(error.value.decode(errors="replace"))

    def _kernel(self, name: str) -> _HostKernel:
        kernel = self._kernels.get(name)
        if kernel is None:
            raise KeyError(f"no kernel {name!r} in this module; it has {', '.join(self._kernels)}")
        return kernel

    def __repr__(self) -> str:
        return f"<HostModule {', '.join(self._kernels)}>"
