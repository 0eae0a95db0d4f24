"""Where the CUDA templates live: ``cuda_templates/`` in a checkout, ``gputrace.cuda_templates`` when installed."""
from __future__ import annotations

import functools
from pathlib import Path


@functools.lru_cache(maxsize=None)
def templates_dir() -> Path:
    checkout = Path(__file__).resolve().parents[2] / "cuda_templates"
    if (checkout / "elementwise.cu").is_file():
        return checkout
    import gputrace.cuda_templates as installed
    return Path(installed.__file__).parent


@functools.lru_cache(maxsize=None)
def read_template(name: str) -> str:
    return (templates_dir() / name).read_text()
