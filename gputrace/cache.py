"""On-disk cache for build artefacts (NVRTC output, host-compiled libraries).

Entries are files named by a hash of everything that determines them (source,
options, compiler version). Writes go to a temporary file in the same folder
and are renamed into place, so readers never see a partial entry and several
processes may build the same entry at once (the last rename wins, all equal).
Each entry carries a header with its length and a SHA-256 of its payload; an
entry that fails the check (truncated, corrupted) is treated as missing and
rebuilt.
"""
from __future__ import annotations

import hashlib
import logging
import os
import struct
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Generic, Iterable, TypeVar

log = logging.getLogger("gputrace.cache")

_MAGIC = b"GPTC1\0"
_HEADER = struct.Struct("<6sQ32s")  # magic, payload length, sha256(payload)


def cache_dir() -> Path:
    """The cache folder: ``$GPUTRACE_CACHE_DIR``, else ``$XDG_CACHE_HOME/gputrace``, else ``~/.cache/gputrace``."""
    explicit = os.environ.get("GPUTRACE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gputrace"


def cache_key(parts: Iterable[str | bytes]) -> str:
    """A hex digest naming an entry; ``parts`` are everything the entry depends on."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:40]


class DiskCache:
    """A folder of checked, atomically written entries: ``DiskCache("nvrtc").get(key)``."""

    def __init__(self, namespace: str, root: Path | None = None):
        self.namespace = namespace
        self._root = root

    @property
    def folder(self) -> Path:
        return (self._root or cache_dir()) / self.namespace

    def path(self, key: str, suffix: str = "") -> Path:
        return self.folder / (key + suffix)

    def get(self, key: str) -> bytes | None:
        """The payload stored under ``key``, or None when missing or failing its check."""
        path = self.path(key, ".bin")
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if len(data) < _HEADER.size:
            log.warning("cache entry %s is truncated; rebuilding", path)
            return None
        magic, length, checksum = _HEADER.unpack_from(data)
        payload = data[_HEADER.size:]
        if magic != _MAGIC or length != len(payload) or hashlib.sha256(payload).digest() != checksum:
            log.warning("cache entry %s is corrupted; rebuilding", path)
            return None
        return payload

    def put(self, key: str, payload: bytes) -> None:
        """Store ``payload`` under ``key`` atomically; failures to write only log."""
        header = _HEADER.pack(_MAGIC, len(payload), hashlib.sha256(payload).digest())
        try:
            write_atomic(self.path(key, ".bin"), header + payload)
        except OSError as exc:  # a read-only or full disk must not break compilation
            log.warning("could not write cache entry %s: %s", key, exc)

    def get_or_build(self, key: str, build: Callable[[], bytes]) -> bytes:
        payload = self.get(key)
        if payload is None:
            log.debug("cache miss %s/%s: building", self.namespace, key)
            payload = build()
            self.put(key, payload)
        else:
            log.debug("cache hit %s/%s", self.namespace, key)
        return payload


T = TypeVar("T")
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def named_lock(name: str) -> threading.Lock:
    """One lock per name in this process: threads building the same entry wait for one build."""
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())


class BuildCache(Generic[T]):
    """Build artefacts (NVRTC output, host libraries) in memory, then on disk, else built: one build per key at
    a time in a process, and ``builds`` counts them. ``load`` turns a payload into what callers get; a payload
    it rejects with OSError (a checksummed library that still does not load) is rebuilt."""

    def __init__(self, namespace: str):
        self.namespace = namespace
        self.memory: dict[str, T] = {}
        self.builds = 0

    def get(self, key: str, build: Callable[[], bytes], load: Callable[[bytes], T], what: str = "") -> T:
        hit = self.memory.get(key)
        if hit is not None:
            return hit
        with named_lock(f"{self.namespace}/{key}"):
            hit = self.memory.get(key)
            if hit is None:
                hit = self.memory[key] = self._load_or_build(key, build, load, what)
        return hit

    def _load_or_build(self, key: str, build: Callable[[], bytes], load: Callable[[bytes], T], what: str) -> T:
        disk = DiskCache(self.namespace)
        payload = disk.get(key)
        if payload is not None:
            try:
                loaded = load(payload)
                log.debug("cache hit %s/%s %s", self.namespace, key, what)
                return loaded
            except OSError as exc:
                log.warning("cached library %s/%s does not load (%s); rebuilding", self.namespace, key, exc)
        started = time.perf_counter()
        payload = build()
        self.builds += 1
        log.debug("cache miss %s/%s %s: built in %.3f s", self.namespace, key, what, time.perf_counter() - started)
        disk.put(key, payload)
        return load(payload)

    def forget(self) -> None:
        """Drop what is held in memory (as a new process would start), keeping the disk entries."""
        self.memory.clear()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def cache_info() -> dict:
    """Location, entry count and size of every namespace in the cache."""
    root = cache_dir()
    info = {"location": str(root), "namespaces": {}}
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            files = [p for p in folder.iterdir() if p.is_file()]
            info["namespaces"][folder.name] = {
                "entries": len(files),
                "bytes": sum(p.stat().st_size for p in files),
            }
    return info


def clear_cache() -> int:
    """Delete every cache entry; returns how many files were removed."""
    root = cache_dir()
    removed = 0
    if root.is_dir():
        for folder in root.iterdir():
            if folder.is_dir():
                for entry in folder.iterdir():
                    if entry.is_file():
                        entry.unlink(missing_ok=True)
                        removed += 1
    return removed
