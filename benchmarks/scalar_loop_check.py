"""GPU check for issue 17's cold start: what unrolling the elementwise kernels' scalar loop buys at run time.

    PYTHONPATH=. python benchmarks/scalar_loop_check.py

NVVM unrolls the scalar grid-stride loop of elementwise.cu 4x: a fifth to a quarter of an elementwise
kernel's NVRTC time (benchmarks/RESULTS.md, "Cold start, session 2"). When every pointer is aligned the loop
only finishes the last < W elements; it is the main loop only where a pointer is misaligned, and there the
unroll keeps 4 loads in flight per thread. This builds each kernel as generated and with ``#pragma unroll 1``
on that loop, prints their SASS size, and on a GPU times both on aligned and misaligned (offset by one
element) inputs. Without a GPU only the SASS sizes are printed.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

SCALAR_LOOP = "    for (index_t i = tail + first; i < n; i += stride) {"


def gelu(x):
    return 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))


def bias_tanh(x, b):
    return np.tanh(x + b)  # a broadcast operand: each element divides for its coordinates


CASES = {"gelu": (gelu, [(1 << 26,)]), "bias_tanh": (bias_tanh, [(8192, 8192), (8192,)])}


def variants(kernel) -> dict[str, str]:
    assert kernel.source.count(SCALAR_LOOP) == 1, "elementwise.cu's scalar loop changed: update SCALAR_LOOP"
    return {"as generated": kernel.source, "unroll 1": kernel.source.replace(SCALAR_LOOP, "#pragma unroll 1\n" + SCALAR_LOOP)}


def sass_size(source: str) -> tuple[int, int]:
    from gputrace.backends.nvrtc import compile_cuda, disassemble, parse_resources
    compiled = compile_cuda(source, arch="sm_90")
    lines = [line for line in disassemble(compiled.cubin).splitlines() if re.match(r"\s+/\*[0-9a-f]{4}\*/", line)]
    return sum("NOP" not in line for line in lines), next(iter(parse_resources(compiled.log).values())).registers


def time_launches(kernel, source: str, inputs: list, repeat: int = 20) -> float:
    """Median ms of one launch of ``source`` (``kernel``'s, perhaps changed) on ``inputs`` (CuPy arrays)."""
    import cupy
    from gputrace.backends.nvrtc import device_arch, compile_cuda, load_compiled
    function = load_compiled(compile_cuda(source, arch=device_arch())).get_function(kernel.name)
    outputs = [cupy.empty(t.shape, t.dtype) for t in kernel.output_types]
    grid = (kernel.grid(32 * cupy.cuda.Device().attributes["MultiProcessorCount"]),)
    args = kernel.arguments(inputs, outputs)
    function(grid, (kernel.block,), args)
    start, stop, times = cupy.cuda.Event(), cupy.cuda.Event(), []
    for _ in range(repeat):
        start.record()
        function(grid, (kernel.block,), args)
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop))
    return float(np.median(times))


def main() -> None:
    import gputrace
    from gputrace.backends.nvrtc import gpu_available
    rng = np.random.default_rng(0)
    gpu = gpu_available()
    print("| kernel | variant | SASS instructions | registers | aligned GB/s | misaligned GB/s |")
    print("|---|---|---|---|---|---|")
    for name, (fn, shapes) in CASES.items():
        args = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
        small = tuple(a[(slice(0, 64),) * a.ndim] for a in args)
        kernel = gputrace.trace(fn, small, check_trace=False).lower(*args).kernels[0]
        order = [next(i for i, a in enumerate(args) if a.shape == t.shape) for t in kernel.input_types]
        for variant, source in variants(kernel).items():
            instructions, registers = sass_size(source)
            rates = ["not measured (no GPU)"] * 2
            if gpu:
                import cupy
                moved = sum(a.nbytes for a in args) + args[0].nbytes
                rates = []
                for offset in (0, 1):  # one float32 off a 256-byte aligned allocation: the scalar loop does all
                    placed = []
                    for a in args:
                        buffer = cupy.empty(a.size + 1, a.dtype)
                        placed.append(buffer[offset:offset + a.size].reshape(a.shape))
                        placed[-1][...] = cupy.asarray(a)
                    ms = time_launches(kernel, source, [placed[i] for i in order])
                    rates.append(f"{moved / ms / 1e6:.0f}")
            print(f"| {name} | {variant} | {instructions} | {registers} | {rates[0]} | {rates[1]} |")


if __name__ == "__main__":
    main()
