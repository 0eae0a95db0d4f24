"""Where a benchmark kernel's NVRTC compile goes: front end, NVVM, ptxas (NVRTC's ``-time``), CPU time, SASS size.

    PYTHONPATH=. python benchmarks/nvrtc_phases.py [--programs gelu,softmax,...] [--repeat 5] [--option=-X ...]

Compiles each program's kernels (``small``) exactly as ``Kernel.compile`` does, plus an empty kernel (the fixed
cost of any compile), in this one process after a first compile that loads NVRTC. Per kernel: the median
process CPU time (all threads), the median ``-time`` phases (NVRTC reports wall time: on a loaded machine only
their proportions mean something), and the SASS size (instructions without NOPs, registers, spill bytes).
``--option`` adds an NVRTC option, to see what it does to both.
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

from benchmarks.programs import BENCHMARKS  # noqa: E402

EMPTY = 'extern "C" __global__ void gt_empty(float* x) { x[threadIdx.x] *= 2.0f; }'
PHASES = ("CUDA C++ Frontend", "NVVM Optimizer", "PTX Translation")


def kernel_sources(names: list[str]) -> list[tuple[str, str]]:
    import gputrace
    found: dict[str, str] = {}
    for name in names:
        args = BENCHMARKS[name].inputs(np.random.default_rng(0), "small")
        for k, kernel in enumerate(gputrace.trace(BENCHMARKS[name].fn, args, check_trace=False).lower(*args).kernels):
            found.setdefault(kernel.source, f"{name}[{k}]")
    return [(label, source) for source, label in found.items()] + [("empty kernel", EMPTY)]


def measure(source: str, options: tuple[str, ...], repeat: int) -> dict:
    """CPU ms and ``-time`` phases (median of ``repeat``), and the SASS of the last build."""
    from cupy.cuda import nvrtc as lib

    from gputrace.backends import nvrtc
    flags = ["-std=c++17", "--fmad=false", "-arch=sm_90", *nvrtc._version_options(),
             *(f"-I{d}" for d in nvrtc.cuda_include_dirs()), "-Xptxas", "-v", *options]
    cpu, phases = [], {p: [] for p in PHASES}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            times = os.path.join(folder, "time.csv")
            program = lib.createProgram(source, "kernel.cu", [], [])
            try:
                start = time.process_time()
                lib.compileProgram(program, [*flags, f"-time={times}"])
                cpu.append(1e3 * (time.process_time() - start))
                cubin = nvrtc._whole_elf(bytes(lib.getCUBIN(program)))
                log = nvrtc._text(lib.getProgramLog(program))
            finally:
                lib.destroyProgram(program)
            for row in csv.reader(open(times)):
                if len(row) >= 3 and row[1].strip() in phases:
                    phases[row[1].strip()].append(float(row[2]))
    sass = [line for line in nvrtc.disassemble(cubin).splitlines() if re.match(r"\s+/\*[0-9a-f]{4}\*/", line)]
    resources = next(iter(nvrtc.parse_resources(log).values()))
    return {"cpu_ms": statistics.median(cpu), **{p: statistics.median(v) for p, v in phases.items() if v},
            "instructions": sum("NOP" not in line for line in sass), "registers": resources.registers,
            "spills": resources.spill_stores + resources.spill_loads}


def phase_rows(programs: list[str], options: tuple[str, ...] = (), repeat: int = 5) -> list[dict]:
    """One row per distinct kernel of ``programs`` (``small``), then the empty kernel's."""
    from gputrace.backends import nvrtc
    nvrtc.compile_cuda(EMPTY, arch="compute_90")  # loads NVRTC (and the CUDA headers) outside the figures
    return [{"kernel": label, **measure(source, options, repeat)} for label, source in kernel_sources(programs)]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", default="gelu,softmax,layernorm,mycell")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--option", action="append", default=[], help="an extra NVRTC option (repeatable)")
    args = parser.parse_args(argv)
    from gputrace.backends import nvrtc
    rows = phase_rows(args.programs.split(","), tuple(args.option), args.repeat)
    print(f"NVRTC {'.'.join(map(str, nvrtc.nvrtc_version()))}, sm_90, options: {' '.join(args.option) or '(none)'}")
    print(f"| kernel | CPU ms | {' | '.join(f'{p} (wall ms)' for p in PHASES)} | SASS instructions | registers | spills |")
    print("|---" * (5 + len(PHASES)) + "|")
    for row in rows:
        phases = " | ".join(f"{row.get(p, float('nan')):.0f}" for p in PHASES)
        print(f"| {row['kernel']} | {row['cpu_ms']:.0f} | {phases} | {row['instructions']} | {row['registers']} | "
              f"{row['spills']} |")
    return rows


if __name__ == "__main__":
    main()
