"""A generated kernel: its CUDA source, what it reads and writes, and how to inspect it."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..ir import TensorType, html_view
from ..passes.layout import GroupLayout

DEFAULT_ARCH = "sm_90"
HALF_HEADER = '#include "gputrace_half.cuh"'
_USES_HALF = re.compile(r"\b(__half2?|gt_(round|load|store)_half)\b")


def with_needed_headers(source: str) -> str:
    """``source`` with ``gputrace_half.cuh`` included where it uses float16: the templates include only what
    float32 kernels need (cuda_fp16.h is a sixth of their NVRTC time)."""
    if HALF_HEADER in source or not _USES_HALF.search(source):
        return source
    first = re.search(r"^#include\b", source, re.M)
    at = first.start() if first else 0
    return f"{source[:at]}{HALF_HEADER}\n{source[at:]}"


def memory_bytes(t: Any) -> int:
    """The bytes of memory an array of type ``t`` covers: a broadcast operand's (stride 0) elements count once."""
    if not isinstance(t, TensorType) or t.size == 0:
        return 0
    return t.dtype.itemsize * math.prod(n for n, stride in zip(t.shape, t.strides) if stride != 0)


@dataclass
class Kernel:
    """One CUDA kernel of a Program.

    ``source`` is complete CUDA C++ (NVRTC compiles it as is); ``inputs`` and
    ``outputs`` name the graph values it reads and writes; ``scalar_args`` are
    the trailing size and stride arguments for this signature.
    """

    name: str
    source: str
    inputs: list[str]
    input_types: list[TensorType]
    outputs: list[str]
    output_types: list[TensorType]
    scalar_args: list[Any] = field(default_factory=list)
    elements: int = 0
    block: int = 256
    shared_mem: int = 0
    work_per_block: int | None = None  # elements one block covers per grid-stride step (default: block)
    empty_error: str | None = None      # NumPy's error for reductions without identity over no elements
    workspace: list = field(default_factory=list)  # (dtype, count, zeroed) scratch arrays after the outputs
    # gathers read in the kernel: (source input, index, index array inputs); the last workspace array is then a
    # flag the kernel raises for an index out of bounds
    index_checks: list = field(default_factory=list)
    ops: list[str] = field(default_factory=list)
    layout: GroupLayout | None = None  # passes/layout.py's decision for its group, which it was rendered from
    bytes_read: int | None = None  # each distinct region of memory its inputs are read from, once (traffic.py)

    def __post_init__(self):
        self.source = with_needed_headers(self.source)

    # -- launching
    def grid(self, max_blocks: int) -> int:
        per_block = self.work_per_block or self.block
        return max(1, min((self.elements + per_block - 1) // per_block, max_blocks))

    def arguments(self, inputs: Sequence[Any], outputs: Sequence[Any], workspace: Sequence[Any] = ()) -> tuple:
        """The launch's arguments, in the order of the kernel's parameters."""
        return (*inputs, *outputs, *workspace, *self.scalar_args)

    def allocate_workspace(self, xp: Any) -> list[Any]:
        """Fresh scratch arrays for one launch (per call, so concurrent calls never share them)."""
        return [xp.zeros(n, dtype) if zeroed else xp.empty(n, dtype) for dtype, n, zeroed in self.workspace]

    @property
    def bytes_moved(self) -> int:
        """Bytes that must move: what it reads (``bytes_read``; else each input once), each output written once."""
        read = sum(map(memory_bytes, self.input_types)) if self.bytes_read is None else self.bytes_read
        return read + sum(map(memory_bytes, self.output_types))

    # -- inspection (compiled with NVRTC for an explicit architecture; no GPU needed)
    def compile(self, arch: str = DEFAULT_ARCH):
        from ..backends.nvrtc import compile_cuda
        return compile_cuda(self.source, name=f"{self.name}.cu", arch=arch)

    def ptx(self, arch: str = DEFAULT_ARCH) -> str:
        return self.compile(arch).ptx

    def cubin(self, arch: str = DEFAULT_ARCH) -> bytes:
        cubin = self.compile(arch if arch.startswith("sm_") else "sm_" + arch.split("_")[-1]).cubin
        assert cubin is not None
        return cubin

    def sass(self, arch: str = DEFAULT_ARCH) -> str:
        from ..backends.nvrtc import disassemble
        return disassemble(self.cubin(arch))

    def resources(self, arch: str = DEFAULT_ARCH):
        from ..backends.nvrtc import parse_resources
        found = parse_resources(self.compile(arch).log)
        if self.name in found:
            return found[self.name]
        if not found:  # ptxas reports only for sm_XX targets, and only when NVRTC ran it with -v
            from ..errors import KernelCompileError
            compile_log = self.compile(arch).log.strip() or "(empty)"
            raise KernelCompileError(f"{self.name}: no register usage for {arch}: ptxas printed no resource lines "
                                     f"(resources need an sm_XX architecture). NVRTC log:\n{compile_log}")
        return next(iter(found.values()))

    def __repr__(self) -> str:
        ins = ", ".join(f"%{n}" for n in self.inputs)
        outs = ", ".join(f"%{n}" for n in self.outputs)
        return f"<Kernel {self.name}({ins}) -> ({outs}): {' '.join(self.ops)}>"

    def _repr_html_(self) -> str | None:
        return html_view(self)


@dataclass
class LibraryCall:
    """A step of the launch plan run by a library (cuBLAS matmul through CuPy), not a generated kernel."""
    name: str
    inputs: list[str]
    outputs: list[str]
    input_types: list = field(default_factory=list)
    output_types: list = field(default_factory=list)

    @property
    def bytes_moved(self) -> int:
        """Bytes that must move: each array read once, each result written once."""
        return sum(map(memory_bytes, [*self.input_types, *self.output_types]))

    def __repr__(self) -> str:
        return f"<LibraryCall {self.name}({', '.join('%' + n for n in self.inputs)})>"


class LaunchPlan(list):
    """What a call does on the device, in order (kernels and library calls), and the memory traffic it costs.

    Each step's ``bytes_moved`` reads each region of memory its inputs lie in once (a kernel: ``traffic.py``) and
    writes its outputs once; ``bytes_moved`` adds them up,
    ``bytes_required`` is what the program itself must move (its inputs and parameters read once, its outputs
    written once) and ``traffic_ratio`` the first over the second: 1.0 where nothing goes through memory twice.
    """

    def __init__(self, steps: list, bytes_required: int):
        super().__init__(steps)
        self.bytes_required = bytes_required

    @property
    def bytes_moved(self) -> int:
        return sum(step.bytes_moved for step in self)

    @property
    def traffic_ratio(self) -> float:
        return self.bytes_moved / self.bytes_required if self.bytes_required else 1.0

    def traffic(self) -> str:
        """Per step and in total: ``fused_0: 2,048 bytes`` ... ``moves 4,096 bytes, must move 2,048: ratio 2.00``."""
        lines = [f"{step.name}: {step.bytes_moved:,} bytes" for step in self]
        lines.append(f"moves {self.bytes_moved:,} bytes, must move {self.bytes_required:,}: "
                     f"ratio {self.traffic_ratio:.2f}")
        return "\n".join(lines)
