"""Every kernel these programs generate compiles with NVRTC for sm_80 and sm_90 (no GPU needed)."""
import numpy as np
import pytest

import gputrace

nvrtc = pytest.importorskip("gputrace.backends.nvrtc")
pytestmark = pytest.mark.skipif(not nvrtc.nvrtc_available(), reason="NVRTC is not installed")


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def layernorm(x):
    m = x.mean(-1, keepdims=True)
    return (x - m) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)


PROGRAMS = {
    "gelu": (lambda x: 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3))), ["float32", "float16", "float64"]),
    "softmax": (softmax, ["float32", "float16"]),
    "layernorm": (layernorm, ["float32"]),
    "reductions": (lambda x: (x.sum(0), x.max(1), x.argmin(-1), x.any(), x.prod(1, keepdims=True)), ["float32", "int32"]),
    "integers": (lambda x: (x // 3, x % 5, x << 2, np.maximum(x, 7) - x.T), ["int8", "int64", "uint8"]),
    "strided": (lambda x: np.where(x[::2, ::-1] > 0, x[::2, ::-1], 0) + x[1::2, :1] * x.T[0], ["float32"]),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_generated_kernels_compile(name):
    fn, dtypes = PROGRAMS[name]
    for dtype in dtypes:
        x = (np.random.default_rng(0).standard_normal((6, 6)) * 4).astype(dtype)
        traced = gputrace.trace(fn, x)
        assert traced.kernels, "expected at least one generated kernel"
        for kernel in traced.kernels:
            for arch in ("sm_80", "sm_90"):
                compiled = kernel.compile(arch)
                assert ".entry " + kernel.name in compiled.ptx
                assert compiled.cubin.startswith(b"\x7fELF")
            assert kernel.resources("sm_90").spill_stores == 0


def test_compile_error_names_line():
    with pytest.raises(gputrace.KernelCompileError, match=r"(?s)error.*\|.*undefined_thing"):
        nvrtc.compile_cuda('extern "C" __global__ void k() { undefined_thing(); }')


def test_sass_of_a_kernel():
    traced = gputrace.trace(lambda x: np.exp(x) + 1, np.ones(8, np.float32))
    sass = traced.kernels[0].sass()
    assert traced.kernels[0].name in sass and "EXIT" in sass


@pytest.mark.parametrize("dtype, cols", [("float32", 64), ("float32", 255), ("float32", 8192), ("float64", 64),
                                         ("float64", 255), ("float64", 8192)])
@pytest.mark.parametrize("name", ["softmax", "layernorm", "rmsnorm"])
def test_norm_kernels_hold_their_rows_without_spilling(name, dtype, cols):
    """The benchmarks' norms over short rows (a group of lanes per row, 8 elements per lane) and long rows
    (a block per row, 16 per thread), half as many float64 (two registers each; a float64 row longer than
    32 lanes x 4 takes a block), fit the register budget of their launch bounds on sm_80 and sm_90."""
    import inspect

    from benchmarks import programs
    fn = getattr(programs, name)
    arrays = len([p for p in inspect.signature(fn).parameters.values() if p.kind == p.POSITIONAL_OR_KEYWORD])
    rng = np.random.default_rng(0)
    args = [rng.random((4096, cols), dtype=dtype)] + [rng.random(cols, dtype=dtype)] * (arrays - 1)
    [kernel] = gputrace.trace(fn, tuple(args), check_trace=False).kernels
    for arch in ("sm_80", "sm_90"):
        resources = kernel.resources(arch)
        assert resources.spill_stores == 0 and resources.spill_loads == 0, (arch, resources)


@pytest.mark.parametrize("name", ["softmax", "layernorm", "rmsnorm"])
def test_rows_a_block_covers_whole_are_read_without_bounds_checks(name):
    """512 threads hold a row of 8,192 float32, 16 elements each: every index a thread computes is inside
    the row. The kernel tells NVRTC the block size (__builtin_assume(threadIdx.x < 512)), so its SASS
    compares no column index with the row length (ISETP against 0x1fff or 0x2000); without that, 69-87
    such compares and branches around each element, and 59-64 registers instead of 42-51."""
    import inspect
    import re

    from benchmarks import programs
    fn = getattr(programs, name)
    arrays = len([p for p in inspect.signature(fn).parameters.values() if p.kind == p.POSITIONAL_OR_KEYWORD])
    args = [np.ones((64, 8192), np.float32)] + [np.ones(8192, np.float32)] * (arrays - 1)
    [kernel] = gputrace.trace(fn, tuple(args), check_trace=False).kernels
    assert "__launch_bounds__(512," in kernel.source  # the layout this test is about
    sass = kernel.sass("sm_90")
    column_checks = re.findall(r"ISETP\.\S+ P\d, PT, R\d+, 0x(?:1fff|2000),", sass)
    assert not column_checks, column_checks
    assert kernel.resources("sm_90").registers <= 56
