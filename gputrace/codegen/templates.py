"""Where the CUDA templates live: ``cuda_templates/`` in a source checkout, ``gputrace.cuda_templates`` when installed.

>>> (templates_dir() / "gputrace_ops.cuh").is_file()
True
"""
from __future__ import annotations

import functools
from pathlib import Path


@functools.lru_cache(maxsize=None)
def templates_dir() -> Path:
    """The folder of ``*.cu`` templates and ``*.cuh`` headers; NVRTC and the host compiler get it as ``-I``."""
    checkout = Path(__file__).resolve().parents[2] / "cuda_templates"
    if (checkout / "gputrace_ops.cuh").is_file():  # a name no other package's folder has
        return checkout
    # Installed: pyproject maps cuda_templates/ to the package gputrace.cuda_templates.
    import gputrace.cuda_templates as installed
    return Path(installed.__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def read_template(name: str) -> str:
    """The text of one template, e.g. ``read_template("elementwise.cu")``."""
    return (templates_dir() / name).read_text()
