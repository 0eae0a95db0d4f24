"""Writing a failing (shrunk) program as a standalone reproducer file.

The file holds the program as plain NumPy code (``program`` and
``make_inputs``), the mismatches found, and the program as data (``PROGRAM``)
so that ``python <file>`` re-runs the differential check and a regression test
can import it.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

from .program import Program

DEFAULT_DIRECTORY = Path(__file__).parent / "reproducers"


def reproducer_directory() -> Path:
    """``$GPUTRACE_FUZZ_REPRODUCERS`` if set, else ``tests/fuzz/reproducers``."""
    return Path(os.environ.get("GPUTRACE_FUZZ_REPRODUCERS") or DEFAULT_DIRECTORY)


def program_id(program: Program) -> str:
    return hashlib.sha1(repr(program).encode()).hexdigest()[:10]


def reproducer_source(program: Program, mismatches: Sequence[object], backends: Sequence[str]) -> str:
    found = "\n".join(f"  {m}" for m in mismatches)
    return f'''"""gputrace fuzzer reproducer {program_id(program)}: gputrace disagrees with NumPy.

{found}

Run ``python -m tests.fuzz.reproducers.<name>`` from the repository root to check again.
"""
from math import inf, nan

from tests.fuzz.program import Arange, ArrayInput, DType, Index, IntList, NumpyScalar, Op, Param, Program, Ref, SelfMask

BACKENDS = {tuple(backends)!r}
PROGRAM = {program!r}

# The same program as plain NumPy code:
{program.source()}

if __name__ == "__main__":
    from tests.fuzz.differential import run_program
    for mismatch in run_program(PROGRAM, BACKENDS) or ["no mismatch: fixed"]:
        print(mismatch)
'''


def write_reproducer(program: Program, mismatches: Sequence[object], backends: Sequence[str],
                     name: str | None = None, directory: Path | None = None) -> Path:
    """Write the reproducer as ``<directory>/<name>.py`` (name: the program's hash) and return its path."""
    directory = Path(directory) if directory is not None else reproducer_directory()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name or 'program_' + program_id(program)}.py"
    path.write_text(reproducer_source(program, mismatches, backends))
    return path


def load_reproducer(path: Path) -> tuple[Program, tuple[str, ...]]:
    """PROGRAM and BACKENDS of a reproducer file."""
    namespace: dict = {"__name__": "gputrace_fuzz_reproducer"}
    exec(compile(Path(path).read_text(), str(path), "exec"), namespace)
    return namespace["PROGRAM"], namespace["BACKENDS"]
