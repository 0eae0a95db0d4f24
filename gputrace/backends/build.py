"""What NVRTC and the host compiler share: CUDA's headers, the fingerprint of what a build reads, and
kernels built by their bodies (the caches themselves are :class:`gputrace.cache.BuildCache`).

``cuda_fp16.h`` comes from NVIDIA's wheels, ``$CUDA_PATH`` or ``/usr/local/cuda``, else from
NVRTC's own copy (unpacked by :mod:`.nvrtc`); the host compiler also needs ``<nv/target>``.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from ..cache import cache_key
from ..codegen.templates import templates_dir
from ..errors import KernelCompileError

# CUDA's headers a kernel may read besides ours (ours are fingerprinted whole)
CUDA_HEADERS = ("cuda_fp16.h", "cuda_fp16.hpp", "vector_types.h")


@functools.lru_cache(maxsize=None)
def nvidia_roots() -> tuple[Path, ...]:
    """The folders of the ``nvidia`` namespace package, where NVIDIA's wheels put headers and tools."""
    try:
        import nvidia
    except ImportError:
        return ()
    return tuple(Path(p) for p in nvidia.__path__)


def cuda_toolkits() -> list[Path]:
    """Local CUDA toolkits: ``$CUDA_PATH``, ``/usr/local/cuda``."""
    return [Path(t) for t in (os.environ.get("CUDA_PATH"), "/usr/local/cuda") if t]


def cuda_header_candidates() -> list[Path]:
    found = []
    for root in nvidia_roots():
        found += [root / "cu13" / "include", root / "cuda_runtime" / "include"]  # CUDA 13 and CUDA 12 wheel layouts
    return found + [toolkit / "include" for toolkit in cuda_toolkits()]


@functools.lru_cache(maxsize=None)
def cuda_fp16_dir() -> str | None:
    """The folder with ``cuda_fp16.h``; without one, NVRTC >= 13 unpacks the headers it carries into the cache."""
    found = next((str(d) for d in cuda_header_candidates() if (d / "cuda_fp16.h").is_file()), None)
    if found is None:
        from .nvrtc import bundled_headers
        found = bundled_headers()
    return found


@functools.lru_cache(maxsize=None)
def host_cuda_dirs() -> tuple[str, ...]:
    """For the host compiler: cuda_fp16.h's folder, plus one with ``<nv/target>``, which it includes outside NVRTC."""
    fp16 = cuda_fp16_dir()
    if fp16 is None:
        return ()
    candidates = [Path(fp16), Path(fp16) / "cccl"]
    for toolkit in cuda_toolkits():
        candidates += [toolkit / "include", toolkit / "include" / "cccl"]
    cupy = importlib.util.find_spec("cupy")
    if cupy is not None and cupy.submodule_search_locations:
        candidates.append(Path(cupy.submodule_search_locations[0]) / "_core" / "include" / "cupy" / "_cccl" / "libcudacxx")
    target = next((c for c in candidates if (c / "nv" / "target").is_file()), None)
    if target is None:
        return ()
    return tuple(dict.fromkeys([fp16, str(target)]))


@functools.lru_cache(maxsize=None)
def headers_fingerprint(folders: Sequence[str]) -> str:
    """What the headers a build may include contribute to its cache key: the include folders, our templates'
    headers by content, and CUDA's half-precision ones."""
    parts: list[str | bytes] = [*folders]
    parts += [b for p in sorted(templates_dir().glob("*.cuh")) for b in (p.name.encode(), p.read_bytes())]
    for folder in map(Path, folders):
        parts += [(folder / name).read_bytes() for name in CUDA_HEADERS if (folder / name).is_file()]
    return cache_key(parts)


# -- kernels by their bodies

BODY_ENTRY = "gt_kernel"  # the entry name of a kernel built by its body
T = TypeVar("T")


def kernel_body(kernel: Any) -> str:
    """A generated kernel's source with its name replaced by ``BODY_ENTRY``: kernels that differ only in their
    names (``gt_fused_3_add`` and ``gt_fused_7_add`` of a loop's steps) have one body, built once."""
    return kernel.source.replace(kernel.name, BODY_ENTRY)


def build_bodies(kernels: Sequence[Any], build: Callable[[str], T]) -> list[T]:
    """``build(body)`` once per distinct body of ``kernels``, on parallel threads when there are several
    (NVRTC and the host compiler run without the GIL); per kernel, what its body built."""
    body_of = [kernel_body(k) for k in kernels]
    names = {body: k.name for body, k in zip(reversed(body_of), reversed(kernels))}  # a body's first kernel names it
    bodies = list(dict.fromkeys(body_of))

    def build_named(body: str) -> T:
        try:
            return build(body)
        except KernelCompileError as exc:
            raise KernelCompileError(str(exc).replace(BODY_ENTRY, names[body])) from None

    if len(bodies) <= 1:
        built = [build_named(b) for b in bodies]
    else:
        with ThreadPoolExecutor(max_workers=min(len(bodies), os.cpu_count() or 1)) as pool:
            built = list(pool.map(build_named, bodies))
    by_body = dict(zip(bodies, built))
    return [by_body[body] for body in body_of]
