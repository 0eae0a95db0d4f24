"""The emulate backend's host build: CUDA kernels as NVRTC takes them, run on the CPU against NumPy."""
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from gputrace.backends import host_compiler
from gputrace.backends.host_compiler import EmulationError, build_host_module, host_compiler_info
from gputrace.cache import DiskCache
from gputrace.errors import KernelCompileError

KERNELS = r"""
#include <cuda_fp16.h>

extern "C" __global__ void scale_f32(const float* x, float* y, float a, long long n)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
        y[i] = a * x[i] + 1.0f;
}

extern "C" __global__ void affine_i64(const long long* x, long long* y, long long a, int b, long long n)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
        y[i] = a * x[i] + b;
}

extern "C" __global__ void half_scale(const __half* x, __half* y, float a, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        y[i] = __float2half_rn(__half2float(x[i]) * a);
}

// One partial sum per block: warp shuffles, then one value per warp through shared memory.
extern "C" __global__ void block_sum(const float* x, float* partial, long long n)
{
    __shared__ float warp_sums[32];
    float v = 0.0f;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
        v += x[i];
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < blockDim.x / 32 ? warp_sums[threadIdx.x] : 0.0f;
        for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
        if (threadIdx.x == 0) partial[blockIdx.x] = v;
    }
}

// One block per row; dynamic shared memory holds one value per warp.
extern "C" __global__ void row_softmax(const float* x, float* y, int cols)
{
    extern __shared__ float scratch[];
    const float* row = x + (long long)blockIdx.x * cols;
    float* out = y + (long long)blockIdx.x * cols;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    float m = -__int_as_float(0x7f800000);  // -inf
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, row[c]);
    for (int offset = 16; offset > 0; offset >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
    if (lane == 0) scratch[warp] = m;
    __syncthreads();
    m = scratch[0];
    for (int w = 1; w < warps; ++w) m = fmaxf(m, scratch[w]);
    __syncthreads();
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += expf(row[c] - m);
    for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(0xffffffffu, s, offset);
    if (lane == 0) scratch[warp] = s;
    __syncthreads();
    s = 0.0f;
    for (int w = 0; w < warps; ++w) s += scratch[w];
    for (int c = threadIdx.x; c < cols; c += blockDim.x) out[c] = expf(row[c] - m) / s;
}

// Each thread reads its left neighbour's value from shared memory: a race unless `sync`.
extern "C" __global__ void shift_right(const float* x, float* y, int sync)
{
    __shared__ float values[256];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    values[threadIdx.x] = x[i];
    if (sync) __syncthreads();
    y[i] = threadIdx.x > 0 ? values[threadIdx.x - 1] : 0.0f;
}

// Threads past n return before the barrier; the barrier must still open for the others.
extern "C" __global__ void reverse_prefix(const float* x, float* y, int n)
{
    __shared__ float values[128];
    if (threadIdx.x >= n) return;
    values[threadIdx.x] = x[threadIdx.x];
    __syncthreads();
    y[threadIdx.x] = values[n - 1 - threadIdx.x];
}

// Lanes 0-15 wait for the whole warp, lanes 16-31 wait at the block barrier: neither can end.
extern "C" __global__ void warp_barrier_deadlock(float* y)
{
    if (threadIdx.x % 32 < 16) __syncwarp();
    else __syncthreads();
    y[threadIdx.x] = 1.0f;
}

// 48 threads: warp 1 has lanes 0-15 only, so its shuffles from lanes 16-31 read nothing.
extern "C" __global__ void shuffles(float* down_float, int* out, unsigned* ballot)
{
    const int t = threadIdx.x, n = blockDim.x;
    down_float[t] = __shfl_down_sync(0xffffffffu, (float)t, 16);
    out[t] = __shfl_down_sync(0xffffffffu, t, 16);
    out[n + t] = __shfl_up_sync(0xffffffffu, t, 1);
    out[2 * n + t] = __shfl_sync(0xffffffffu, t, 3, 16);
    out[3 * n + t] = __shfl_xor_sync(0xffffffffu, t, 8);
    ballot[t] = __ballot_sync(0xffffffffu, t % 3 == 0);
}

extern "C" __global__ void scalar_widths(double* out, int a, long long b, float c, double d, unsigned char e, bool f)
{
    out[0] = a; out[1] = (double)b; out[2] = c; out[3] = d; out[4] = e; out[5] = f;
}

extern "C" __global__ void strided_copy(const float* x, long long stride, float* y, long long n)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
        y[i] = x[i * stride];
}

extern "C" __global__ void check_non_negative(const int* x)
{
    assert(x[threadIdx.x] >= 0);
}

// Written for blocks of 32 threads, which it tells NVRTC as the generated row kernels tell theirs.
extern "C" __global__ void assumes_32_threads(int* y)
{
    __builtin_assume(threadIdx.x < 32);
    y[threadIdx.x] = threadIdx.x;
}

// Two-dimensional blocks and grids, atomics across blocks, a barrier that counts.
__device__ __forceinline__ int thread_in_block() { return threadIdx.y * blockDim.x + threadIdx.x; }

extern "C" __global__ void __launch_bounds__(256) index_2d(int* __restrict__ ids, unsigned long long* total, int* largest,
                                                            float* count, int* below_ten)
{
    const int block = blockIdx.y * gridDim.x + blockIdx.x;
    const int id = block * blockDim.x * blockDim.y + thread_in_block();
    ids[id] = id;
    atomicAdd(total, (unsigned long long)id);
    atomicMax(largest, id);
    atomicAdd(count, 1.0f);
    const int below = __syncthreads_count(thread_in_block() < 10);
    if (thread_in_block() == 0) below_ten[block] = below;
}

// Dynamic shared memory declared at file scope with an alignment, as bytes, used as doubles.
extern __shared__ __align__(16) unsigned char shared_bytes[];

extern "C" __global__ void reverse_blocks(const double* x, double* y, double* unwritten)
{
    double* values = reinterpret_cast<double*>(shared_bytes);
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    values[threadIdx.x] = x[i];
    __syncthreads();
    y[i] = values[blockDim.x - 1 - threadIdx.x];
    if (threadIdx.x == 0) unwritten[blockIdx.x] = values[blockDim.x];
}
"""
NAMES = ["scale_f32", "affine_i64", "half_scale", "block_sum", "row_softmax", "shift_right", "reverse_prefix",
         "warp_barrier_deadlock", "shuffles", "scalar_widths", "strided_copy", "check_non_negative",
         "assumes_32_threads", "index_2d", "reverse_blocks"]

BROKEN = """extern "C" __global__ void broken(float* y)
{
    y[threadIdx.x] = undeclared_value;
}
"""


def kernels():
    return build_host_module(KERNELS, NAMES)  # built once per session, then from the in-memory cache


def test_elementwise_float32_grid_stride(rng):
    x = rng.standard_normal((1024, 1024), dtype=np.float32)
    y = np.empty_like(x)
    module = kernels()
    started = time.perf_counter()
    module.launch("scale_f32", 64, 256, [x, y, np.float32(2.5), np.int64(x.size)])
    assert time.perf_counter() - started < 1.0
    np.testing.assert_array_equal(y, np.float32(2.5) * x + np.float32(1))


def test_elementwise_int64_with_int32_scalar():
    x = np.arange(-5000, 5000, dtype=np.int64)
    y = np.empty_like(x)
    kernels().launch("affine_i64", (3,), (128, 1, 1), [x, y, np.int64(-7), np.int32(11), np.int64(x.size)])
    np.testing.assert_array_equal(y, -7 * x + 11)


def test_float16_conversions_round_like_numpy(rng):
    x = rng.standard_normal(4099).astype(np.float16)
    y = np.empty_like(x)
    kernels().launch("half_scale", 4, 256, [x, y, np.float32(1.7), np.int32(x.size)])
    np.testing.assert_array_equal(y, (x.astype(np.float32) * np.float32(1.7)).astype(np.float16))


def test_block_reduction_of_a_million_floats(rng):
    x = rng.random(10**6, dtype=np.float32)
    partial = np.zeros(64, np.float32)
    module = kernels()
    started = time.perf_counter()
    module.launch("block_sum", 64, 256, [x, partial, np.int64(x.size)])
    elapsed = time.perf_counter() - started
    assert partial.sum(dtype=np.float64) == pytest.approx(x.sum(dtype=np.float64), rel=1e-5)
    assert elapsed < 2.0


def test_row_softmax_with_dynamic_shared_memory(rng):
    x = rng.standard_normal((40, 3000), dtype=np.float32)
    y = np.empty_like(x)
    kernels().launch("row_softmax", x.shape[0], 1024, [x, y, np.int32(x.shape[1])], shared_mem=32 * 4)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("order", ["forward", "reverse", "random", "random:7"])
def test_barrier_makes_every_fiber_order_agree(order, monkeypatch):
    monkeypatch.setenv("GPUTRACE_EMULATE_ORDER", order)
    x = np.arange(1, 1025, dtype=np.float32)
    y = np.empty_like(x)
    kernels().launch("shift_right", 4, 256, [x, y, np.int32(1)])
    expected = np.roll(x, 1).reshape(4, 256)
    expected[:, 0] = 0
    np.testing.assert_array_equal(y, expected.ravel())


def test_fiber_orders_expose_a_missing_barrier(monkeypatch):
    x = np.arange(1, 1025, dtype=np.float32)
    expected = np.roll(x, 1).reshape(4, 256)
    expected[:, 0] = 0
    correct = {}
    for order in ("forward", "reverse", "random"):
        monkeypatch.setenv("GPUTRACE_EMULATE_ORDER", order)
        y = np.empty_like(x)
        kernels().launch("shift_right", 4, 256, [x, y, np.int32(0)])
        correct[order] = np.array_equal(y, expected.ravel())
    # Forward order happens to run each writer before its reader; the other orders do not.
    assert correct == {"forward": True, "reverse": False, "random": False}


def test_returned_threads_do_not_block_a_barrier():
    x = np.arange(128, dtype=np.float32)
    y = np.zeros_like(x)
    kernels().launch("reverse_prefix", 1, 128, [x, y, np.int32(100)])
    np.testing.assert_array_equal(y[:100], x[:100][::-1])
    assert not y[100:].any()


def line_of(text):
    return next(n for n, line in enumerate(KERNELS.splitlines(), 1) if text in line)


def test_deadlock_is_reported_not_hung():
    y = np.zeros(64, np.float32)
    with pytest.raises(EmulationError, match=r"deadlock in kernel warp_barrier_deadlock, block \(0,0,0\)") as error:
        kernels().launch("warp_barrier_deadlock", 1, 64, [y])
    message = str(error.value)
    assert f"threads 0-15, 32-47 wait in __syncwarp(mask 0xffffffff) at kernels.cu:{line_of('__syncwarp();')}" in message
    assert f"threads 16-31, 48-63 wait in __syncthreads() at kernels.cu:{line_of('else __syncthreads();')}" in message
    assert isinstance(error.value, RuntimeError)


def test_shuffles_follow_ptx_and_poison_missing_lanes():
    down_float = np.zeros(48, np.float32)
    out = np.zeros((4, 48), np.int32)
    ballot = np.zeros(48, np.uint32)
    kernels().launch("shuffles", 1, 48, [down_float, out, ballot])
    t, lane = np.arange(48), np.arange(48) % 32
    down, up, broadcast, xor = out
    # lanes 16-31 of warp 0 would read past the warp and keep their own value; warp 1 has no lanes 16-31
    np.testing.assert_array_equal(down[:32], np.where(lane[:32] < 16, t[:32] + 16, t[:32]))
    np.testing.assert_array_equal(down_float[:32], down[:32])
    assert (down[32:] == np.uint32(0xDEADBEEF).view(np.int32)).all() and np.isnan(down_float[32:]).all()
    np.testing.assert_array_equal(up, np.where(lane == 0, t, t - 1))
    np.testing.assert_array_equal(broadcast, t - lane % 16 + 3)
    np.testing.assert_array_equal(xor, t ^ 8)
    warp0 = sum(1 << lane for lane in range(32) if lane % 3 == 0)
    warp1 = sum(1 << lane for lane in range(16) if (32 + lane) % 3 == 0)
    np.testing.assert_array_equal(ballot, [warp0] * 32 + [warp1] * 16)


def test_two_dimensional_launch_with_atomics():
    ids = np.full(4 * 3 * 64, -1, np.int32)
    total, largest, count = np.zeros(1, np.uint64), np.zeros(1, np.int32), np.zeros(1, np.float32)
    below_ten = np.zeros(12, np.int32)
    kernels().launch("index_2d", (4, 3), (16, 4), [ids, total, largest, count, below_ten])
    np.testing.assert_array_equal(ids, np.arange(ids.size))
    assert total[0] == ids.sum() and largest[0] == ids.size - 1 and count[0] == ids.size
    np.testing.assert_array_equal(below_ten, 10)


def test_dynamic_shared_memory_at_file_scope_starts_poisoned():
    x = np.arange(3 * 96, dtype=np.float64)
    y = np.empty_like(x)
    unwritten = np.zeros(3)
    kernels().launch("reverse_blocks", 3, 96, [x, y, unwritten], shared_mem=97 * 8)
    np.testing.assert_array_equal(y, x.reshape(3, 96)[:, ::-1].ravel())
    assert np.isnan(unwritten).all()  # never written: reads as NaN, not as a plausible zero


def test_parameters_are_described_as_numpy_types():
    assert kernels().parameters("half_scale") == ["const*float16", "*float16", "float32", "int32"]
    assert kernels().parameters("scalar_widths") == ["*float64", "int32", "int64", "float32", "float64", "uint8", "bool"]


def test_scalars_pass_with_their_exact_width():
    out = np.zeros(6, np.float64)
    kernels().launch("scalar_widths", 1, 1, [out, np.int32(-3), 2**40 + 1, np.float32(0.1), 0.1, np.uint8(200), True])
    np.testing.assert_array_equal(out, [-3, 2**40 + 1, np.float64(np.float32(0.1)), 0.1, 200, 1])


@pytest.mark.parametrize("position, value, message", [
    (1, 5, r"argument 1 of kernel 'scalar_widths' is int32, got a Python int \(int64\).*np\.int32"),
    (1, np.int64(5), r"is int32, got np\.int64"),
    (3, 0.1, r"argument 3 .* is float32, got a Python float \(float64\)"),
    (0, np.zeros(6, np.float32), r"argument 0 .* is a pointer to float64, got an array of float32"),
    (2, np.zeros(1, np.int64), r"argument 2 .* is int64, got an array of int64"),
    (0, np.broadcast_to(np.zeros(1), (6,)), r"argument 0 .* is a pointer to float64 \(not const\), got a read-only"),
])
def test_wrong_argument_types_raise(position, value, message):
    args = [np.zeros(6, np.float64), np.int32(-3), np.int64(1), np.float32(0.1), 0.1, np.uint8(200), True]
    args[position] = value
    with pytest.raises(TypeError, match=message):
        kernels().launch("scalar_widths", 1, 1, args)
    with pytest.raises(TypeError, match="takes 7 arguments, got 6"):
        kernels().launch("scalar_widths", 1, 1, args[:6])


def test_non_contiguous_view_passes_its_first_element():
    base = np.arange(3000, dtype=np.float32)
    x = base[5::3]
    y = np.empty(x.size, np.float32)
    kernels().launch("strided_copy", 2, 128, [x, np.int64(x.strides[0] // x.itemsize), y, np.int64(x.size)])
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("grid, block, shared, message", [
    (1, 2048, 0, r"invalid block \(2048,1,1\) of 2048 threads"),
    (1, (32, 32, 2), 0, "at most 1024 threads per block"),
    (0, 32, 0, r"invalid grid \(0,1,1\)"),
    (1, 32, 64 * 1024, "65536 bytes of dynamic shared memory"),
])
def test_invalid_launch_configurations_raise(grid, block, shared, message):
    y = np.zeros(2048, np.float32)
    with pytest.raises(EmulationError, match=message):
        kernels().launch("scale_f32", grid, block, [y, y, np.float32(1), np.int64(0)], shared_mem=shared)


def test_device_assert_raises_instead_of_aborting():
    x = np.array([3, 1, -4, 1], np.int32)
    with pytest.raises(EmulationError, match=r"kernels.cu:\d+: assertion `x\[threadIdx.x\] >= 0' failed in .*"
                                             r"\(kernel check_non_negative, block \(0,0,0\), thread \(2,0,0\)\)"):
        kernels().launch("check_non_negative", 1, 4, [x])
    kernels().launch("check_non_negative", 1, 4, [np.abs(x)])  # the emulator is still usable


def test_an_assumption_that_does_not_hold_raises_instead_of_being_taken():
    """NVRTC may drop code an assumption makes dead; emulation checks the assumption instead."""
    y = np.full(64, -1, np.int32)
    kernels().launch("assumes_32_threads", 1, 32, [y])
    assert (y[:32] == np.arange(32)).all()
    with pytest.raises(EmulationError, match=r"kernels.cu:\d+: __builtin_assume\(threadIdx.x < 32\) does not hold "
                                             r"\(kernel assumes_32_threads, block \(0,0,0\), thread \((3[2-9]|[4-6]\d),0,0\)\)"):
        kernels().launch("assumes_32_threads", 1, 64, [y])


def test_worker_count_and_order_come_from_the_environment(monkeypatch, rng):
    x = rng.random(10**5, dtype=np.float32)
    partial = np.zeros(16, np.float32)
    for threads in ("1", "3"):
        monkeypatch.setenv("GPUTRACE_EMULATE_THREADS", threads)
        kernels().launch("block_sum", 16, 128, [x, partial, np.int64(x.size)])
        assert partial.sum(dtype=np.float64) == pytest.approx(x.sum(dtype=np.float64), rel=1e-5)
    monkeypatch.setenv("GPUTRACE_EMULATE_THREADS", "many")
    with pytest.raises(EmulationError, match="GPUTRACE_EMULATE_THREADS must be a number"):
        kernels().launch("block_sum", 16, 128, [x, partial, np.int64(x.size)])
    monkeypatch.delenv("GPUTRACE_EMULATE_THREADS")
    monkeypatch.setenv("GPUTRACE_EMULATE_ORDER", "sideways")
    with pytest.raises(EmulationError, match="must be forward, reverse, random or random:SEED"):
        kernels().launch("block_sum", 16, 128, [x, partial, np.int64(x.size)])


def test_compile_error_names_the_line():
    with pytest.raises(KernelCompileError) as error:
        build_host_module(BROKEN, ["broken"])
    message = str(error.value)
    assert "broken.cu:3:" in message and "undeclared_value" in message
    assert "    3 |     y[threadIdx.x] = undeclared_value;" in message


def test_disk_cache_hit_and_corrupted_entry(monkeypatch, caplog):
    source = f"// {uuid.uuid4()}\n" + KERNELS.split("// One partial sum")[0]
    names = ["scale_f32"]
    module = build_host_module(source, names)
    entry = DiskCache("emulate").path(module.key, ".bin")
    assert entry.is_file()

    monkeypatch.setattr(host_compiler.modules, "memory", {})  # as in a new process
    caplog.set_level(logging.DEBUG, logger="gputrace.cache")
    started = time.perf_counter()
    again = build_host_module(source, names)
    assert time.perf_counter() - started < 0.5
    assert again is not module and f"cache hit emulate/{module.key}" in caplog.text

    entry.write_bytes(b"junk" * 100)
    monkeypatch.setattr(host_compiler.modules, "memory", {})
    rebuilt = build_host_module(source, names)
    assert "corrupted; rebuilding" in caplog.text or "truncated; rebuilding" in caplog.text
    x = np.arange(10, dtype=np.float32)
    y = np.empty_like(x)
    rebuilt.launch("scale_f32", 1, 32, [x, y, np.float32(2), np.int64(10)])
    np.testing.assert_array_equal(y, 2 * x + 1)


def test_concurrent_builds_of_one_source_build_once():
    source = f"// {uuid.uuid4()}\n" + KERNELS.split("extern \"C\" __global__ void affine_i64")[0]
    with ThreadPoolExecutor(4) as pool:
        modules = list(pool.map(lambda _: build_host_module(source, ["scale_f32"]), range(4)))
    assert all(m is modules[0] for m in modules)


def test_host_compiler_info_names_the_compiler():
    info = host_compiler_info()
    assert info["available"] and "version" in info and info["compiler"]


def test_missing_compiler_is_a_clear_error(monkeypatch):
    from gputrace.errors import BackendUnavailableError
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.raises(BackendUnavailableError, match="needs a C\\+\\+20 compiler"):
        build_host_module(BROKEN, ["broken"])
    assert host_compiler_info()["available"] is False


def test_kernels_are_valid_cuda_for_nvrtc():
    from gputrace.backends.nvrtc import compile_cuda, nvrtc_available
    if not nvrtc_available():
        pytest.skip("NVRTC (cupy) is not available")
    compiled = compile_cuda(KERNELS, name="kernels.cu", arch="sm_90")
    assert all(f".entry {name}(" in compiled.ptx for name in NAMES)
