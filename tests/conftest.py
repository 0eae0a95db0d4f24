import os

import numpy as np
import pytest

from gputrace.cli import make_cell


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run the slow tier (tests marked slow)")


def pytest_collection_modifyitems(config, items):
    """Tests marked slow run with --slow (or -m slow) only: the default run stays within CI's time."""
    if config.getoption("--slow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow tier: python -m pytest -q --slow -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# The mutation check (python -m tests.mutation) runs the tests once per mutant: its runs share one kernel
# cache (the kernels a mutant leaves alone are built once) and skip the NVRTC compiles at the session's end.
MUTATION_CACHE = os.environ.get("GPUTRACE_MUTATION_CACHE")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test session builds into its own kernel cache, never the user's."""
    monkeypatch.setenv("GPUTRACE_CACHE_DIR", MUTATION_CACHE or str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def my_cell():
    """The seed's MyCell, written with gputrace.nn: the demo's (its source reads as file mycell.py)."""
    return make_cell()


# ----------------------------------------------------------------------------- every emulated kernel through NVRTC
# Every kernel that a test runs on `emulate` is also compiled by NVRTC for sm_90 when the session ends (and for
# sm_80 too in the slow tier; the op header's every overload is built for both in the default tier): the CUDA
# source checked on the CPU is the source that must build for the GPU. A failure fails the session.
NVRTC_ARCHS = ("sm_90",)
SLOW_TIER_NVRTC_ARCHS = ("sm_80", "sm_90")
_emulated_kernels: dict[str, object] = {}  # body -> Kernel, the first one run with that body
_session_cache: list = []  # the session's private cache folder, for the compiles after the last test


@pytest.fixture(autouse=True, scope="session")
def _record_emulated_kernels(tmp_path_factory):
    from gputrace.backends.build import kernel_body
    from gputrace.backends.kernels import EmulatedLauncher
    _session_cache.append(tmp_path_factory.getbasetemp() / "cache")
    load_all = EmulatedLauncher.load_all

    def recording_load_all(self, kernels):
        for kernel in kernels:  # kernels that differ only in their names are one body: compiled once
            _emulated_kernels.setdefault(kernel_body(kernel), kernel)
        return load_all(self, kernels)

    EmulatedLauncher.load_all = recording_load_all
    yield
    EmulatedLauncher.load_all = load_all


def pytest_sessionfinish(session, exitstatus):
    from gputrace.backends import nvrtc
    if not _emulated_kernels or not nvrtc.nvrtc_available() or MUTATION_CACHE:
        return
    from concurrent.futures import ThreadPoolExecutor
    import time

    def compile_all_archs(kernel):
        try:
            for arch in archs:
                kernel.cubin(arch)
        except Exception as error:  # reported below, with the kernel's name
            return f"{kernel.name}: {type(error).__name__}: {str(error)[:2000]}"
        return None

    archs = SLOW_TIER_NVRTC_ARCHS if session.config.getoption("--slow") else NVRTC_ARCHS
    start = time.perf_counter()
    with pytest.MonkeyPatch.context() as patch, ThreadPoolExecutor(max_workers=2) as pool:
        patch.setenv("GPUTRACE_CACHE_DIR", str(_session_cache[0]))
        failures = [f for f in pool.map(compile_all_archs, _emulated_kernels.values()) if f]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    summary = (f"NVRTC: {len(_emulated_kernels)} distinct kernels run on emulate, compiled for "
               f"{' and '.join(archs)} in {time.perf_counter() - start:.1f} s; {len(failures)} failed")
    if reporter is not None:
        reporter.write_line(summary)
        for failure in failures:
            reporter.write_line(failure)
    if failures:
        session.exitstatus = 1
