"""A generated kernel: its CUDA source, what it reads and writes, and how to inspect it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence


from ..ir import TensorType, html_view
from ..passes.layout import Layout

DEFAULT_ARCH = "sm_90"


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
    layout: Layout | None = None  # a reduction's: how its rows map onto blocks, warps and threads

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
        """Bytes that must move: each input read once, each output written once."""
        return sum(t.nbytes for t in self.input_types) + sum(t.nbytes for t in self.output_types)

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

    def __repr__(self) -> str:
        return f"<LibraryCall {self.name}({', '.join('%' + n for n in self.inputs)})>"
