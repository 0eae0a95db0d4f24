"""Hash every generated kernel of a broad set of programs: a refactor of code generation shows as changed lines.

    python -m tests.codegen.kernel_snapshot > before.txt    # then, after a change:
    python -m tests.codegen.kernel_snapshot | diff before.txt -
    python -m tests.codegen.kernel_snapshot --sources DIR   # also writes each kernel's source into DIR

One line per kernel: program, kernel number and name, a hash of its CUDA source and a hash of how it is
launched (elements, block, work per block, workspace, empty-input error). Kernels are rendered for the
inputs' types only (nothing runs): long rows are read from one allocated element.
"""
from __future__ import annotations

import hashlib
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

import gputrace
from benchmarks import programs as bench
from gputrace.ir import contiguous_strides
from tests.codegen.backend_agreement import every_reduction
from tests.codegen.test_emulate_programs import (bool_logic, float_arithmetic, integer_arithmetic, layout_program,
                                                 reduced_values_broadcast_back, short_row_program,
                                                 softmax_of_a_sum_and_the_sum)
from tests.codegen.test_reduction_rows import DTYPES, LAYOUTS
from tests.fusion_targets import LONG_ROW_PROGRAMS, TARGETS


def type_only(shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
    """An array of ``shape`` and C-order strides for lowering only: one element is allocated."""
    one = np.ones(1, dtype)
    return np.lib.stride_tricks.as_strided(one, shape, tuple(one.itemsize * s for s in contiguous_strides(shape)),
                                           writeable=False)


def reduction_variants(x):
    """Reductions with their arguments: dtype=, initial=, ddof= and correction=, keepdims, argmax's axis."""
    return (np.sum(x, axis=-1, dtype=np.float64), np.max(x, axis=-1, initial=0.5), np.min(x, -1, None, True, 2),
            np.var(x, 0, None, None, 1), np.std(x, axis=-1, correction=1.5), np.mean(x, axis=-1, keepdims=True),
            x.argmax(axis=-1, keepdims=True), np.argmin(x, 0), np.prod(x, axis=-1, initial=2.0),
            (x > 0).all(-1), (x > 0).any(0))


def integer_means(x):
    return np.mean(x, axis=-1), np.mean(x, axis=-1, dtype=np.int64), np.var(x, axis=0), x.std(-1, dtype=np.float32)


def programs() -> Iterator[tuple[str, Callable, tuple, list[tuple]]]:
    """(name, function, example inputs, other inputs to lower it for)."""
    rng = np.random.default_rng(0)
    for name, target in sorted(TARGETS.items()):
        yield f"target/{name}", target.fn, target.make(rng), []
    for name, long_rows in sorted(LONG_ROW_PROGRAMS.items()):
        yield f"long/{name}", long_rows.fn, (np.ones(1000, np.float32),), [(type_only((100_000,)),)]
        yield f"long/{name}/2-d", long_rows.fn, (np.ones((5, 300), np.float32),), [(type_only((3, 70_000)),)]
    for layout, (shape, axis) in LAYOUTS.items():
        for dtype in DTYPES:
            for keepdims in (False, True):
                x = np.ones(shape, dtype)
                yield f"rows/{layout}/{dtype.name}/{keepdims}", every_reduction(axis, keepdims), (x,), []
    for axis in ((0, 2), (1, 2), (0, 1), 1, None):
        yield f"axes/{axis}", every_reduction(axis, False), (np.ones((3, 5, 7), np.float32),), [
            (type_only((40, 3, 2000)),), (type_only((3, 0, 7)),)]
    for dtype in (np.float32, np.float16, np.float64):
        x = np.ones((6, 40), dtype)
        yield f"variants/{np.dtype(dtype).name}", reduction_variants, (x,), [(type_only((40_000, 3), dtype),),
                                                                             (type_only((4, 100_000), dtype),)]
    for dtype in (np.int32, np.uint8, np.int64):
        yield f"integer means/{np.dtype(dtype).name}", integer_means, (np.ones((6, 40), dtype),), [
            (type_only((3, 100_000), dtype),), (type_only((50_000, 3), dtype),)]
    yield "empty rows", every_reduction(1, True, ("sum", "mean", "prod", "any", "all", "var")), \
        (np.ones((3, 4), np.float32),), [(np.zeros((3, 0), np.float32),)]
    for name in ("max", "argmin", "min", "argmax"):
        yield f"empty {name}", every_reduction(1, False, (name,)), (np.ones((3, 4), np.float32),), [
            (np.zeros((3, 0), np.float32),)]
    yield "short rows", short_row_program, (np.ones((4099, 10), np.float32)[:, ::-2],), [
        (type_only((4099, c)),) for c in (1, 2, 3, 8, 17, 33, 100, 255, 300)]
    yield "softmax of a sum", softmax_of_a_sum_and_the_sum, (np.ones((5, 4096), np.float32),) * 2, [
        (type_only((1, 4094)),) * 2]
    for shape in ((3, 3), (2, 3, 3), (3, 1, 3)):
        yield f"broadcast back/{shape}", reduced_values_broadcast_back, (np.ones(shape, np.float32),), []
    yield "layouts", layout_program, (np.ones((6, 8), np.float32), np.ones((6, 8), np.float32)), []
    for dtype in (np.float32, np.float16, np.float64):
        yield f"float arithmetic/{np.dtype(dtype).name}", float_arithmetic, (np.ones(100, dtype),) * 2, []
    for dtype in (np.int8, np.uint32, np.int64):
        yield f"integer arithmetic/{np.dtype(dtype).name}", integer_arithmetic, (np.ones(100, dtype),) * 2, []
    yield "bool logic", bool_logic, (np.ones(100, bool),) * 2, []
    for name, benchmark in sorted(bench.BENCHMARKS.items()):
        tiny = benchmark.inputs(rng, "tiny")
        others = [benchmark.inputs(rng, "small")]
        if name not in ("mycell", "lstm"):  # (they read shapes: lowering traces them again, running the matmul)
            large = benchmark.make(_ShapeOnly(), benchmark.dims["large"])
            others.append(tuple(type_only(a.shape, a.dtype) for a in large))
        yield f"bench/{name}", benchmark.fn, tiny, others


class _ShapeOnly:
    """A stand-in for a random Generator whose arrays have a shape and no memory (benchmarks' large inputs)."""

    def standard_normal(self, shape, dtype=np.float64):
        return np.broadcast_to(np.ones((), dtype), shape)

    random = standard_normal


def launch_summary(kernel) -> str:
    return repr((kernel.elements, kernel.block, kernel.work_per_block, kernel.empty_error,
                 [(np.dtype(d).name, n, z) for d, n, z in kernel.workspace]))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def snapshot(sources: str | None = None) -> Iterator[str]:
    for name, fn, example, others in programs():
        traced = gputrace.trace(fn, example, check_trace=False)
        for k, inputs in enumerate([example, *others]):
            program = traced.lower(*inputs)
            shapes = "x".join(str(tuple(getattr(a, "shape", ()))) for a in inputs)
            for number, kernel in enumerate(program.kernels):
                line = f"{name} @ {shapes} #{number} {kernel.name}"
                if sources is not None:
                    Path(sources, re.sub(r"[^\w.@#-]+", "_", line) + ".cu").write_text(kernel.source)
                yield f"{line} {digest(kernel.source)} {digest(launch_summary(kernel))}"


def main() -> None:
    warnings.simplefilter("ignore")
    sources = sys.argv[sys.argv.index("--sources") + 1] if "--sources" in sys.argv else None
    if sources is not None:
        Path(sources).mkdir(parents=True, exist_ok=True)
    for line in snapshot(sources):
        print(line)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
