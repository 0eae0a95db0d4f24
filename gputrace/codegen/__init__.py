"""Code generation: fusion groups become CUDA kernels rendered from ``cuda_templates/``; ``lower`` makes a
fused graph a ``LoweredProgram`` (layouts, kernels, launch plan)."""
from __future__ import annotations

from ..passes.fuse import fuse
from .kernel import Kernel, LaunchPlan, LibraryCall
from .lowered import LoweredProgram, bytes_required, launch_plan, lower, render_group

__all__ = ["fuse", "lower", "LoweredProgram", "launch_plan", "bytes_required", "Kernel", "LaunchPlan", "LibraryCall",
           "render_group"]
