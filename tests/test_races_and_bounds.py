"""Slow tier: the default tier runs again with the emulated threads scheduled in reverse and in a
random order (a missing barrier or a race between threads shows as a wrong value or a deadlock), and with every
kernel built with AddressSanitizer (an access out of bounds fails): each kernel the default tier generates runs
under all three. One pytest process per setting, as the mutation check runs its tests."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gputrace.backends.build import nvidia_roots
from gputrace.backends.host_compiler import host_compiler

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TIER = ["tests", "-m", "not slow and not gpu"]


def run_default_tier(tmp_path: Path, env: dict) -> subprocess.CompletedProcess:
    # GPUTRACE_MUTATION_CACHE: one kernel cache for the run, and no end-of-session NVRTC build (the default tier
    # does that); -x: the first failure is the answer
    env = {**os.environ, "GPUTRACE_MUTATION_CACHE": str(tmp_path / "cache"), **env}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *DEFAULT_TIER],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=3 * 3600)


def assert_passed(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout.splitlines()[-1], done.stdout[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("order", ["reverse", "random:20261202"])
def test_the_default_tier_passes_with_emulated_threads_in_another_order(tmp_path, order):
    assert_passed(run_default_tier(tmp_path, {"GPUTRACE_EMULATE_ORDER": order}))


@pytest.mark.slow
def test_the_default_tier_passes_with_kernels_built_with_address_sanitizer(tmp_path):
    if "g++" not in host_compiler().name:
        pytest.skip("AddressSanitizer's runtime is looked up with g++")
    # libstdc++ preloaded beside ASan's runtime: else a child process that loads C++ late (the notebooks' Jupyter
    # kernel) dies in ASan's own check of its __cxa_throw interceptor, outside any kernel
    runtime = " ".join(subprocess.run([*host_compiler().command, f"-print-file-name={library}"], capture_output=True,
                                      text=True, check=True).stdout.strip() for library in ("libasan.so", "libstdc++.so"))
    # with ASan's runtime preloaded, NVRTC's dlopen of its builtins library no longer searches NVRTC's own folder
    nvrtc_folders = [str(p.parent) for root in nvidia_roots() for p in root.glob("*/lib/libnvrtc-builtins.so*")]
    library_path = os.pathsep.join([*nvrtc_folders, os.environ.get("LD_LIBRARY_PATH", "")]).strip(os.pathsep)
    done = run_default_tier(tmp_path, {"GPUTRACE_EMULATE_FLAGS": "-fsanitize=address -fno-omit-frame-pointer",
                                        "LD_PRELOAD": runtime, "ASAN_OPTIONS": "detect_leaks=0",
                                        "LD_LIBRARY_PATH": library_path})
    output = done.stdout + done.stderr
    (tmp_path / "default-tier-under-asan.txt").write_text(output)  # the whole report, for the one who reads it
    at = output.find("ERROR: AddressSanitizer")
    assert at < 0, output[max(at - 3000, 0):at + 4000]
    assert_passed(done)
