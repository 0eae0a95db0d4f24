"""Kernels are built by their bodies (a loop's steps compile once), and include only the headers they need."""
from __future__ import annotations

import functools
import re
import uuid

import numpy as np
import pytest

import gputrace
from gputrace.backends import host_compiler, nvrtc
from gputrace.backends.build import BODY_ENTRY, kernel_body
from gputrace.codegen.templates import templates_dir


def descent(w, features, target, rate):
    """Five gradient steps: ten kernels between the matrix products, two distinct bodies."""
    for _ in range(5):
        error = np.tanh(features @ w) - target
        w = w - rate * (features.T @ error)
    return w


def traced_descent():
    """The traced descent, with a learning rate no other test uses: its kernels are in no cache."""
    rate = 0.1 + uuid.uuid4().int % 10**6 / 10**9
    rng = np.random.default_rng(7)
    args = (np.zeros(8, np.float32), rng.random((64, 8), np.float32), rng.random(64, np.float32))
    return gputrace.trace(functools.partial(descent, rate=rate), args), args, rate


def test_kernels_differing_only_in_name_build_once_on_emulate():
    traced, args, rate = traced_descent()
    kernels = traced.lower(*args).kernels
    assert len(kernels) == 10 and len({k.name for k in kernels}) == 10
    assert len({kernel_body(k) for k in kernels}) == 2
    before = host_compiler.modules.builds
    np.testing.assert_allclose(traced.run(*args, backend="emulate"), descent(*args, rate), rtol=1e-5)
    assert host_compiler.modules.builds - before == 2


@pytest.mark.skipif(not nvrtc.nvrtc_available(), reason="NVRTC is not installed")
def test_kernels_differing_only_in_name_compile_once_with_nvrtc():
    traced, args, _ = traced_descent()
    kernels = traced.lower(*args).kernels
    before = nvrtc.compiled_cache.builds
    compiled = nvrtc.compile_kernels(kernels, arch="sm_90")
    assert nvrtc.compiled_cache.builds - before == 2
    assert len({id(c) for c in compiled}) == 2 and all(f".entry {BODY_ENTRY}" in c.ptx for c in compiled)
    assert compiled[0] is compiled[2] is compiled[8]  # every step's first kernel: one module serves them all


def included_files(source: str) -> set[str]:
    """Every header ``source`` includes, following ours (in cuda_templates/) transitively."""
    found: set[str] = set()
    pending = [source]
    while pending:
        for name in re.findall(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', pending.pop(), re.M):
            if name not in found:
                found.add(name)
                if (templates_dir() / name).is_file():
                    pending.append((templates_dir() / name).read_text())
    return found


def test_float32_kernels_include_no_half_header_and_half_kernels_run_on_emulate():
    def program(x, y):
        return x * x + 1.5 * x - y, (x - y).max(axis=-1)

    rng = np.random.default_rng(3)
    x32, y32 = rng.standard_normal((2, 8, 300)).astype(np.float32)
    for kernel in gputrace.trace(program, (x32, y32)).lower(x32, y32).kernels:
        assert not {"cuda_fp16.h", "gputrace_half.cuh"} & included_files(kernel.source), kernel.name
        assert "gputrace_ops.cuh" in included_files(kernel.source)

    x16, y16 = x32.astype(np.float16), y32.astype(np.float16)
    traced = gputrace.trace(program, (x16, y16))
    kernels = traced.lower(x16, y16).kernels
    assert len(kernels) == 2 and all({"cuda_fp16.h", "gputrace_half.cuh"} <= included_files(k.source) for k in kernels)
    for got, want in zip(traced.run(x16, y16, backend="emulate"), program(x16, y16)):
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got, want)  # float16 arithmetic and max: bit-exact with NumPy
    if nvrtc.nvrtc_available():
        assert all(".entry" in k.ptx() for k in kernels)
