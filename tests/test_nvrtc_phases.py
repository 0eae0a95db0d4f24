"""The cold-start tools: benchmarks/nvrtc_phases.py (where a kernel's NVRTC compile goes) and scalar_loop_check.py."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gputrace.backends.nvrtc import nvrtc_available  # noqa: E402

pytestmark = pytest.mark.skipif(not nvrtc_available(), reason="needs NVRTC (the cuda extra)")


def test_phases_and_sass_of_a_benchmark_kernel_and_the_empty_one(capsys):
    from benchmarks.nvrtc_phases import PHASES, main
    rows = main(["--programs", "mycell", "--repeat", "1"])
    assert [row["kernel"] for row in rows] == ["mycell[0]", "empty kernel"]
    mycell, empty = rows
    for row in rows:
        assert row["cpu_ms"] > 0 and row["spills"] == 0
        assert all(row[phase] >= 0 for phase in PHASES), row  # NVRTC's -time file was read, every phase
    assert mycell["instructions"] > 10 * empty["instructions"] and mycell["registers"] > 0
    printed = capsys.readouterr().out
    assert "| mycell[0] |" in printed and "| empty kernel |" in printed


def test_scalar_loop_check_finds_the_elementwise_scalar_loop():
    """benchmarks/scalar_loop_check.py rewrites the scalar loop of elementwise.cu: it must still be there."""
    import numpy as np

    import gputrace
    from benchmarks.scalar_loop_check import SCALAR_LOOP, gelu, variants
    x = np.linspace(-3, 3, 1001, dtype=np.float32)
    kernel = gputrace.trace(gelu, (x,), check_trace=False).lower(x).kernels[0]
    built = variants(kernel)
    assert built["as generated"] == kernel.source
    assert built["unroll 1"].count("#pragma unroll 1\n" + SCALAR_LOOP) == 1
