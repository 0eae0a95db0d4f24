"""The on-disk kernel cache: its location, atomic writes, damaged entries rebuilt, processes building at once.

DiskCache itself, then the two caches built on it: the emulate backend's libraries (and its precompiled
header) and NVRTC's PTX and cubins.
"""
import logging
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from gputrace import cache as cache_module
from gputrace.backends import host_compiler, nvrtc
from gputrace.cache import DiskCache, cache_dir, cache_info, clear_cache

REPO = Path(__file__).resolve().parents[1]
needs_compiler = pytest.mark.skipif(not host_compiler.host_compiler_info()["available"], reason="no host C++ compiler")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A private, empty cache folder."""
    monkeypatch.setenv("GPUTRACE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def leftovers(root: Path) -> list[str]:
    """Temporary files a writer left behind."""
    return sorted(p.name for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".unpacking-"))


# ----------------------------------------------------------------------------- location


def test_location_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GPUTRACE_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("GPUTRACE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "gputrace"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "gputrace"


def test_info_and_clear(folder):
    DiskCache("one").put("a", b"x" * 10)
    DiskCache("two").put("b", b"y")
    info = cache_info()
    assert info["location"] == str(folder)
    assert info["namespaces"]["one"]["entries"] == 1 and info["namespaces"]["one"]["bytes"] > 10
    assert clear_cache() == 2 and DiskCache("one").get("a") is None


# ----------------------------------------------------------------------------- atomic writes


def test_round_trip_and_overwrite(folder):
    disk = DiskCache("t")
    assert disk.get("k") is None
    disk.put("k", b"first")
    disk.put("k", b"second, longer")
    assert disk.get("k") == b"second, longer" and leftovers(folder) == []


def test_a_failed_rename_keeps_the_old_entry_and_no_temporary_file(folder, monkeypatch, caplog):
    disk = DiskCache("t")
    disk.put("k", b"old")

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(cache_module.os, "replace", disk_full)
        disk.put("k", b"new")  # only logs: a cache that cannot be written must not break compilation
    assert "could not write cache entry k: [Errno 28] No space left on device" in caplog.text
    assert disk.get("k") == b"old" and leftovers(folder) == []


def test_a_writer_interrupted_halfway_leaves_the_old_entry(folder, monkeypatch):
    disk = DiskCache("t")
    disk.put("k", b"old")
    real_fdopen = os.fdopen

    class HalfWrite:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[:len(data) // 2])
            raise KeyboardInterrupt  # as if the process were stopped mid-write

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(cache_module.os, "fdopen", lambda fd, mode: HalfWrite(real_fdopen(fd, mode)))
        disk.put("k", b"new" * 1000)
    assert disk.get("k") == b"old" and leftovers(folder) == []


def test_readers_see_a_whole_entry_or_none_while_it_is_rewritten(folder):
    disk = DiskCache("t")
    versions = [bytes([i]) * 2_000_000 for i in (1, 2)]
    seen, stop = set(), threading.Event()

    def write():
        for i in range(20):
            disk.put("k", versions[i % 2])
        stop.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not stop.is_set():
        payload = disk.get("k")
        seen.add(None if payload is None else versions.index(payload))  # ValueError on a partial payload
    writer.join()
    assert seen - {None} and leftovers(folder) == []


def test_an_unwritable_cache_folder_still_builds(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GPUTRACE_CACHE_DIR", str(blocker / "cache"))
    assert DiskCache("t").get_or_build("k", lambda: b"built") == b"built"
    assert "could not write cache entry k" in caplog.text


# ----------------------------------------------------------------------------- damaged entries


def flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x40]) + data[position + 1:]


DAMAGE = {
    "empty": (lambda b: b"", "truncated"),
    "inside-the-header": (lambda b: b[:20], "truncated"),
    "payload-truncated": (lambda b: b[:-5], "corrupted"),
    "payload-extended": (lambda b: b + b"\0", "corrupted"),
    "payload-byte-flipped": (lambda b: flip(b, len(b) - 3), "corrupted"),
    "checksum-byte-flipped": (lambda b: flip(b, 20), "corrupted"),
    "magic-changed": (lambda b: b"XXXXXX" + b[6:], "corrupted"),
    "length-changed": (lambda b: flip(b, 7), "corrupted"),
}


@pytest.mark.parametrize("name", DAMAGE)
def test_damaged_entries_are_detected_and_rebuilt(folder, caplog, name):
    damage, word = DAMAGE[name]
    disk = DiskCache("t")
    payload = bytes(range(256)) * 4
    disk.put("k", payload)
    entry = disk.path("k", ".bin")
    entry.write_bytes(damage(entry.read_bytes()))
    assert disk.get("k") is None
    assert f"cache entry {entry} is {word}; rebuilding" in caplog.text
    builds = []
    assert disk.get_or_build("k", lambda: builds.append(1) or payload) == payload
    assert builds == [1] and disk.get("k") == payload  # rebuilt and rewritten whole


# ----------------------------------------------------------------------------- the emulate backend's libraries

KERNEL = """
extern "C" __global__ void add_one(const float* x, float* y, int n)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] + 1.0f;
}
"""


def fresh_kernel() -> str:
    """A kernel source no cache holds yet."""
    return f"// {uuid.uuid4()}\n{KERNEL}"


def add_one_works(module):
    x = np.arange(100, dtype=np.float32)
    y = np.empty_like(x)
    module.launch("add_one", 1, 128, [x, y, np.int32(100)])
    np.testing.assert_array_equal(y, x + 1)


def seed_build_tools(folder: Path) -> None:
    """Copy the emulation runtime and the precompiled header (built once per compiler) into ``folder``."""
    session = DiskCache("emulate").folder
    host_compiler.build_host_module(fresh_kernel(), ["add_one"])  # both exist in the session's cache now
    runtime = host_compiler._runtime(host_compiler.host_compiler(), host_compiler.COMPILE_FLAGS)
    key = runtime.soname.removeprefix("libgputrace_emulate_").removesuffix(".so")
    (folder / "emulate").mkdir(parents=True)
    for path in [*session.glob(f"{key}*.bin"), *session.glob("pch-*")]:
        (folder / "emulate" / path.name).write_bytes(path.read_bytes())


@pytest.fixture
def compiler_runs(monkeypatch):
    """Sources the host compiler really built during the test; the memory cache starts empty, as in a new process."""
    runs = []
    real = host_compiler._run_compiler

    def counted(compiler, arguments, files):
        runs.append(next((n for n in files if n.endswith(".cu")), "runtime"))
        return real(compiler, arguments, files)

    monkeypatch.setattr(host_compiler, "_run_compiler", counted)
    monkeypatch.setattr(host_compiler.modules, "memory", {})
    return runs


@needs_compiler
@pytest.mark.parametrize("damage", ["truncated", "not-a-library"])
def test_a_damaged_emulate_library_is_rebuilt(compiler_runs, monkeypatch, caplog, damage):
    caplog.set_level(logging.WARNING, logger="gputrace.cache")
    source = fresh_kernel()
    module = host_compiler.build_host_module(source, ["add_one"])
    disk = DiskCache("emulate")
    entry = disk.path(module.key, ".bin")
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:entry.stat().st_size // 3])
        expected = f"cache entry {entry} is corrupted; rebuilding"
    else:  # an entry that passes its checksum but is no library (an older writer, a full disk ...)
        disk.put(module.key, b"\x7fELF but not really a shared library")
        expected = f"cached library emulate/{module.key} does not load"
    monkeypatch.setattr(host_compiler.modules, "memory", {})
    rebuilt = host_compiler.build_host_module(source, ["add_one"])
    assert expected in caplog.text and [r for r in compiler_runs if r != "runtime"] == ["add_one.cu"] * 2
    add_one_works(rebuilt)
    assert disk.get(module.key) is not None and disk.get(module.key)[:4] == b"\x7fELF"


@needs_compiler
def test_a_damaged_precompiled_header_is_dropped_and_the_build_succeeds(tmp_path, monkeypatch, caplog):
    if not host_compiler.host_compiler().is_gcc:
        pytest.skip("precompiled headers are used with GCC only")
    seed_build_tools(tmp_path / "cache")  # a copy to damage: the session's stays whole for the other tests
    monkeypatch.setenv("GPUTRACE_CACHE_DIR", str(tmp_path / "cache"))
    [gch] = DiskCache("emulate").folder.glob("pch-*.cuh.gch")
    whole = gch.read_bytes()
    # g++ fails on the first two ("while reading precompiled header", "cannot read PCH file"), skips the third
    for damaged in [whole[:1000], whole[:len(whole) // 2], bytes(4096)]:
        gch.write_bytes(damaged)
        add_one_works(host_compiler.build_host_module(fresh_kernel(), ["add_one"]))
        assert not gch.exists()  # dropped: the next build makes it again
    assert caplog.text.count("does not load; removing it") == 3


# ----------------------------------------------------------------------------- NVRTC's PTX and cubins


@pytest.mark.skipif(not nvrtc.nvrtc_available(), reason="NVRTC (cupy) is not available")
@pytest.mark.parametrize("damage", [lambda b: b[:len(b) // 2], lambda b: flip(b, len(b) - 100)], ids=["cut", "flipped"])
def test_a_damaged_cubin_entry_is_rebuilt(folder, monkeypatch, caplog, damage):
    import gputrace
    monkeypatch.setattr(nvrtc.compiled_cache, "memory", {})
    [kernel] = gputrace.trace(lambda x: np.exp(x) + 1, np.ones(3, np.float32)).kernels
    cubin = kernel.cubin()
    [entry] = (folder / "nvrtc").glob("*.bin")
    entry.write_bytes(damage(entry.read_bytes()))
    monkeypatch.setattr(nvrtc.compiled_cache, "memory", {})  # as in a new process
    assert kernel.cubin() == cubin and f"cache entry {entry} is corrupted; rebuilding" in caplog.text
    assert DiskCache("nvrtc").get(entry.stem) is not None  # rewritten whole


# ----------------------------------------------------------------------------- processes building at once

CHILD = r"""
import sys
import numpy as np
import gputrace
from gputrace.backends import host_compiler, nvrtc

PROGRAMS = {
    "shared": lambda x: np.tanh(x) * 2 + 1,
    "rows": lambda x: np.exp(x).sum(axis=1),
    "softmax": lambda x: np.exp(x - x.max(axis=1, keepdims=True)) / np.exp(x - x.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True),
}
out, names = sys.argv[1], sys.argv[2:]
compiled = []  # what the host compiler and NVRTC really had to build
for module, function in ((host_compiler, "_run_compiler"), (nvrtc, "_run_nvrtc")):
    real = getattr(module, function)
    setattr(module, function, lambda *args, real=real: compiled.append(function) or real(*args))
x = np.linspace(-3, 3, 1200, dtype=np.float32).reshape(12, 100)
traced = {name: gputrace.trace(PROGRAMS[name], x) for name in names}
print("ready", flush=True)
sys.stdin.readline()
for name in names:
    np.save(f"{out}-{name}.npy", traced[name].run(x, backend="emulate"))
    if nvrtc.nvrtc_available():
        with open(f"{out}-{name}.ptx", "w") as handle:
            handle.write("".join(kernel.ptx() for kernel in traced[name].kernels))
print(len(compiled), flush=True)
"""
JOBS = [["shared", "rows"], ["shared", "rows"], ["shared", "softmax"], ["softmax", "shared"]]


def child_programs() -> dict:
    """The children's programs, for their NumPy results."""
    namespace: dict = {}
    exec(CHILD.split("out, names")[0], namespace)
    return namespace["PROGRAMS"]


def run_at_once(jobs: list[list[str]], folder: Path, out: Path) -> list[int]:
    """Run CHILD in a process per job, all building at the same moment; how many builds each needed."""
    env = {**os.environ, "GPUTRACE_CACHE_DIR": str(folder), "GPUTRACE_EMULATE_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(out / f"p{i}"), *names], env=env, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for i, names in enumerate(jobs)]
    for child in children:  # all traced: now let them build at once
        assert child.stdout.readline().strip() == "ready", child.communicate()
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    results = [child.communicate(timeout=240) for child in children]
    assert [child.returncode for child in children] == [0] * len(jobs), results
    return [int(stdout) for stdout, _ in results]


@needs_compiler
def test_four_processes_building_into_one_cold_cache(tmp_path):
    """Same and different kernels, built at the same moment into a cache without them; all succeed and agree,
    and a fifth process then finds every one of them in the cache.

    The runtime and precompiled header are copied in first, so that the test's time goes to the kernels.
    """
    folder = tmp_path / "cache"
    seed_build_tools(folder)
    assert all(builds > 0 for builds in run_at_once(JOBS, folder, tmp_path))
    assert leftovers(folder) == []
    for namespace in ("emulate", "nvrtc"):
        for entry in (folder / namespace).glob("*.bin"):
            assert DiskCache(namespace, root=folder).get(entry.stem) is not None, entry  # every entry whole

    programs = child_programs()
    (tmp_path / "again").mkdir()
    assert run_at_once([list(programs)], folder, tmp_path / "again") == [0]  # nothing built again
    x = np.linspace(-3, 3, 1200, dtype=np.float32).reshape(12, 100)
    for name, fn in programs.items():
        ran = [tmp_path / f"p{i}-{name}" for i, names in enumerate(JOBS) if name in names] + [tmp_path / "again" / f"p0-{name}"]
        outputs = [np.load(f"{prefix}.npy") for prefix in ran]
        assert all(np.array_equal(o, outputs[0]) for o in outputs), name  # the same kernel: the same bits
        np.testing.assert_allclose(outputs[0], fn(x), rtol=2e-6, atol=1e-6)
        if nvrtc.nvrtc_available():
            assert len({Path(f"{prefix}.ptx").read_text() for prefix in ran}) == 1, name
