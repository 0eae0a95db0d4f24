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


def session_cache(tmp_path_factory) -> str:
    """The test session's own kernel cache, never the user's: under pytest-xdist (``-n``) one for all its workers
    (each worker's temporary folder lies in the run's), so a kernel two workers run is built once; the cache is
    safe for several processes at once."""
    base = tmp_path_factory.getbasetemp()
    return MUTATION_CACHE or str((base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "cache")


@pytest.fixture(scope="session")
def kernel_cache(tmp_path_factory) -> str:
    """The session's kernel cache folder, for fixtures of a wider scope than the test's ``_private_cache``."""
    return session_cache(tmp_path_factory)


@pytest.fixture(autouse=True)
def _private_cache(kernel_cache, monkeypatch):
    monkeypatch.setenv("GPUTRACE_CACHE_DIR", kernel_cache)


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
_emulated_kernels: dict[str, tuple[str, str]] = {}  # body -> (name, source) of the first kernel run with that body
_session_cache: list[str] = []  # the session's cache folder, for the compiles after the last test


@pytest.fixture(autouse=True, scope="session")
def _record_emulated_kernels(kernel_cache):
    from gputrace.backends.build import kernel_body
    from gputrace.backends.kernels import EmulatedLauncher
    _session_cache.append(kernel_cache)
    load_all = EmulatedLauncher.load_all

    def recording_load_all(self, kernels):
        for kernel in kernels:  # kernels that differ only in their names are one body: compiled once
            _emulated_kernels.setdefault(kernel_body(kernel), (kernel.name, kernel.source))
        return load_all(self, kernels)

    EmulatedLauncher.load_all = recording_load_all
    yield
    EmulatedLauncher.load_all = load_all


def _compile_with_nvrtc(kernels: dict[str, tuple[str, str]], archs: tuple, cache: str) -> tuple[list[str], float]:
    """Compile each (name, source) of ``kernels`` for ``archs`` with NVRTC: the failures, and the seconds taken."""
    from concurrent.futures import ThreadPoolExecutor
    import time
    from gputrace.backends.nvrtc import compile_cuda

    def compile_all_archs(kernel):
        name, source = kernel
        try:
            for arch in archs:
                assert compile_cuda(source, name=f"{name}.cu", arch=arch).cubin is not None
        except Exception as error:  # reported by the caller, with the kernel's name
            return f"{name}: {type(error).__name__}: {str(error)[:2000]}"
        return None

    start = time.perf_counter()
    with pytest.MonkeyPatch.context() as patch, ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        patch.setenv("GPUTRACE_CACHE_DIR", cache)
        failures = [f for f in pool.map(compile_all_archs, kernels.values()) if f]
    return failures, time.perf_counter() - start


_from_workers: dict[str, tuple[str, str]] = {}  # under pytest-xdist: the kernels every worker ran on emulate
_worker_cache: list[str] = []


@pytest.hookimpl(optionalhook=True)  # an xdist hook: without pytest-xdist, nothing calls it
def pytest_testnodedown(node, error):  # the controller: a worker is done, with what it ran on emulate
    found = getattr(node, "workeroutput", {}).get("emulated_kernels")
    if found is not None:
        _from_workers.update((body, tuple(kernel)) for body, kernel in found["kernels"].items())
        _worker_cache.append(found["cache"])


def pytest_sessionfinish(session, exitstatus):
    from gputrace.backends import nvrtc
    if not nvrtc.nvrtc_available() or MUTATION_CACHE:
        return
    workeroutput = getattr(session.config, "workeroutput", None)  # set in an xdist worker
    if workeroutput is not None:  # a worker hands its kernels to the controller, which compiles each body once
        workeroutput["emulated_kernels"] = {"kernels": dict(_emulated_kernels), "cache": _session_cache[0]} \
            if _session_cache else {"kernels": {}, "cache": ""}
        return
    kernels, cache = (_from_workers, _worker_cache) if _worker_cache else (_emulated_kernels, _session_cache)
    if not kernels:
        return
    archs = SLOW_TIER_NVRTC_ARCHS if session.config.getoption("--slow") else NVRTC_ARCHS
    failures, seconds = _compile_with_nvrtc(kernels, archs, next(c for c in cache if c))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"NVRTC: {len(kernels)} distinct kernels run on emulate, compiled for {' and '.join(archs)} "
                            f"in {seconds:.1f} s; {len(failures)} failed")
        for failure in failures:
            reporter.write_line(failure)
    if failures:
        session.exitstatus = 1
