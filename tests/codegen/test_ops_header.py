"""cuda_templates/gputrace_ops.cuh against NumPy: every loop NumPy has, on special and random values.

One C++ translation unit holds a loop per (function, loop type); g++ builds it once per module and ctypes
loads it. The same text, with kernel macros instead of loops, must compile under NVRTC (and, where a GPU
is present, gives the GPU's results, compared with looser ulp bounds for the transcendentals).
"""
from __future__ import annotations

import ctypes
import itertools
import math
import platform
import re
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

TEMPLATES = Path(__file__).resolve().parents[2] / "cuda_templates"
HOST_FLAGS = ["-std=c++20", "-O2", "-ffp-contract=off"]

UFUNCS = (
    "add subtract multiply true_divide floor_divide remainder fmod power negative positive absolute sign square "
    "reciprocal exp exp2 expm1 log log2 log10 log1p sqrt cbrt sin cos tan arcsin arccos arctan arctan2 sinh cosh "
    "tanh arcsinh arccosh arctanh hypot floor ceil trunc rint maximum minimum fmax fmin equal not_equal less "
    "less_equal greater greater_equal logical_and logical_or logical_xor logical_not bitwise_and bitwise_or "
    "bitwise_xor invert left_shift right_shift isnan isinf isfinite signbit copysign logaddexp logaddexp2 "
    "heaviside deg2rad rad2deg").split()
# Not correctly rounded anywhere: compared within an ulp bound (the rest must be bit-exact).
TRANSCENDENTAL = set(
    "exp exp2 expm1 log log2 log10 log1p cbrt sin cos tan arcsin arccos arctan arctan2 sinh cosh tanh arcsinh "
    "arccosh arctanh hypot power logaddexp logaddexp2".split())
HOST_ULPS = 4  # the host's libm against NumPy (whose float32 exp/log/sin/cos are its own SIMD code)
# CUDA's documented maximum errors (CUDA Math API, single/double precision tables), plus one for
# NumPy's own error; functions built from others (logaddexp, power) get more.
# logaddexp(a, b) = a + log1p(exp(b - a)) cancels when a < 0 < the log1p term: one ulp of the term is
# several of the result (measured on an H100: 8 ulp in float32, 6 in float64).
GPU_ULPS = {"float32": dict.fromkeys(TRANSCENDENTAL, 4) | {"power": 10, "tan": 5, "sinh": 4, "cosh": 4,
                                                            "logaddexp": 16, "logaddexp2": 16},
            "float64": dict.fromkeys(TRANSCENDENTAL, 3) | {"logaddexp": 8, "logaddexp2": 8}}

DTYPES = [np.dtype(c) for c in "?bBhHiIlLefd"]
C_TYPES = {"bool": "bool", "int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "uint16": "uint16_t",
           "int32": "int32_t", "uint32": "uint32_t", "int64": "int64_t", "uint64": "uint64_t",
           "float16": "float", "float32": "float", "float64": "double"}
HALF = np.dtype(np.float16)


@dataclass(frozen=True)
class Loop:
    """One device function applied elementwise: ``out[i] = post(fn(in0[i], ...))``."""
    name: str          # what it tests: a ufunc name, or cast / where / clip / round_half
    fn: str            # the C++ callee
    ins: tuple         # input dtypes (float16 travels as float32)
    out: np.dtype

    @property
    def symbol(self) -> str:
        chars = "".join(d.char for d in self.ins) + "_" + self.out.char
        return f"t_{self.name}_{chars}".replace("?", "B0")

    @property
    def id(self) -> str:
        return f"{self.name}-{''.join(d.char for d in self.ins)}->{self.out.char}"

    def c_line(self) -> str:
        post = "gt_round_half" if self.out == HALF else ""
        types = ", ".join(C_TYPES[d.name] for d in (self.out, *self.ins))
        return f"GT_LOOP{len(self.ins)}({self.symbol}, {self.fn}, {post}, {types})"


def numpy_loops(ufunc_name: str) -> list[Loop]:
    """The loops NumPy has for this ufunc over our dtypes, one per distinct C signature."""
    ufunc = getattr(np, ufunc_name)
    loops = {}
    for sig in ufunc.types:
        ins, out = sig.split("->")
        try:
            dtypes = [np.dtype(np.dtype(c).name) for c in ins + out]  # 'q' and 'l' are both int64
        except TypeError:
            continue
        if all(d in DTYPES for d in dtypes):
            loop = Loop(ufunc_name, f"gt_{ufunc_name}", tuple(dtypes[:-1]), dtypes[-1])
            loops.setdefault(loop.symbol, loop)
    return list(loops.values())


UFUNC_LOOPS = [loop for name in UFUNCS for loop in numpy_loops(name)]
NON_HALF = [d for d in DTYPES if d != HALF]
CAST_LOOPS = [Loop("cast", f"gt_cast<{C_TYPES[t.name]}>", (f,), t) for f in NON_HALF for t in NON_HALF]
WHERE_LOOPS = [Loop("where", "gt_where", (np.dtype(bool), d, d), d) for d in DTYPES]
CLIP_LOOPS = [Loop("clip", "gt_clip", (d, d, d), d) for d in DTYPES]
HALF_LOOPS = [Loop("round_half", "gt_round_half", (d,), np.dtype(np.float32)) for d in map(np.dtype, "fd")]
ALL_LOOPS = UFUNC_LOOPS + CAST_LOOPS + WHERE_LOOPS + CLIP_LOOPS + HALF_LOOPS

HOST_PRELUDE = """
#define __device__
#define __host__
#define __global__
#define __forceinline__ inline
#include <type_traits>
#include <utility>
#include "gputrace_half.cuh"
#define GT_CHECK(fn, O, ...) static_assert(std::is_same_v<decltype(fn(std::declval<__VA_ARGS__>())), O>);
#define GT_LOOP1(name, fn, post, O, A) GT_CHECK(fn, O, A) \\
    extern "C" void name(const A* a, O* o, long n) { for (long i = 0; i < n; ++i) o[i] = post(fn(a[i])); }
#define GT_LOOP2(name, fn, post, O, A, B) \\
    extern "C" void name(const A* a, const B* b, O* o, long n) { for (long i = 0; i < n; ++i) o[i] = post(fn(a[i], b[i])); }
#define GT_LOOP3(name, fn, post, O, A, B, C) \\
    extern "C" void name(const A* a, const B* b, const C* c, O* o, long n) { for (long i = 0; i < n; ++i) o[i] = post(fn(a[i], b[i], c[i])); }
"""
HOST_COPY_HALF = 'extern "C" void t_copy_half(const __half* a, __half* o, long n) { for (long i = 0; i < n; ++i) gt_store_half(o + i, gt_load_half(a + i)); }\n'
KERNEL_PRELUDE = """
#include "gputrace_half.cuh"
#define GT_INDEX const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; if (i >= n) return;
#define GT_LOOP1(name, fn, post, O, A) \\
    extern "C" __global__ void name(const A* a, O* o, long long n) { GT_INDEX o[i] = post(fn(a[i])); }
#define GT_LOOP2(name, fn, post, O, A, B) \\
    extern "C" __global__ void name(const A* a, const B* b, O* o, long long n) { GT_INDEX o[i] = post(fn(a[i], b[i])); }
#define GT_LOOP3(name, fn, post, O, A, B, C) \\
    extern "C" __global__ void name(const A* a, const B* b, const C* c, O* o, long long n) { GT_INDEX o[i] = post(fn(a[i], b[i], c[i])); }
extern "C" __global__ void t_copy_half(const __half* a, __half* o, long long n) { GT_INDEX gt_store_half(o + i, gt_load_half(a + i)); }
"""


def loops_source(prelude: str, loops: list[Loop]) -> str:
    return prelude + "\n".join(loop.c_line() for loop in loops) + "\n"


def overload_checks() -> str:
    """C++20 static_asserts that gt_<ufunc>(T...) compiles exactly for the T NumPy has a (T...) loop for."""
    lines = ["#define __device__", "#define __host__", "#define __forceinline__ inline", '#include "gputrace_ops.cuh"']
    for name in UFUNCS:
        params = ", ".join(["x"] * getattr(np, name).nin)
        lines.append(f"template <class T> constexpr bool has_{name} = requires(T x) {{ gt_{name}({params}); }};")
        have = {loop.ins[0] for loop in numpy_loops(name) if len(set(loop.ins)) == 1}
        for dtype in NON_HALF:
            c_type, want = C_TYPES[dtype.name], "true" if dtype in have else "false"
            lines.append(f'static_assert(has_{name}<{c_type}> == {want}, "gt_{name}({c_type})");')
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- building

def cuda_include_dirs() -> list[str]:
    """cuda_fp16.h's folder and the one with <nv/target> it needs outside NVRTC, as the emulate backend finds them."""
    try:
        from gputrace.backends.build import host_cuda_dirs
    except ImportError:
        return []
    return list(host_cuda_dirs())


def gxx(source: str, path: Path, *flags: str) -> subprocess.Popen:
    """g++ with the emulate backend's flags on ``source`` (written to ``path``), started in the background."""
    path.write_text(source)
    includes = [f"-I{d}" for d in (str(TEMPLATES), *cuda_include_dirs())]
    return subprocess.Popen(["g++", *HOST_FLAGS, *includes, str(path), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(job: subprocess.Popen) -> None:
    log, _ = job.communicate()
    assert job.returncode == 0, log[-6000:]


def require_host_compiler() -> None:
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    if not cuda_include_dirs():
        pytest.skip("no cuda_fp16.h for the host compiler")


@pytest.fixture(scope="module")
def host_lib(tmp_path_factory):
    """All test loops in one shared library: two halves compiled in parallel (about 3 s), then linked."""
    require_host_compiler()
    folder = tmp_path_factory.mktemp("ops_header")
    objects = [folder / f"loops{k}.o" for k in range(2)]
    jobs = [gxx(loops_source(HOST_PRELUDE + (HOST_COPY_HALF if k == 0 else ""), ALL_LOOPS[k::2]),
                folder / f"loops{k}.cpp", "-fPIC", "-c", "-o", str(objects[k])) for k in range(2)]
    for job in jobs:
        finish(job)
    lib = folder / "libops.so"
    finish(subprocess.Popen(["g++", "-shared", "-o", str(lib), *map(str, objects)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return ctypes.CDLL(str(lib))


def host_runner(lib):
    def run(loop: Loop, *arrays: np.ndarray) -> np.ndarray:
        arrays = [np.ascontiguousarray(a.astype(np.float32) if a.dtype == HALF else a) for a in arrays]
        out = np.empty(len(arrays[0]), np.float32 if loop.out == HALF else loop.out)
        fn = getattr(lib, loop.symbol)
        fn(*(ctypes.c_void_p(a.ctypes.data) for a in (*arrays, out)), ctypes.c_long(len(out)))
        return out.astype(HALF) if loop.out == HALF else out
    return run


@pytest.fixture(scope="module")
def run_host(host_lib):
    return host_runner(host_lib)


# ----------------------------------------------------------------------------- values

def float_values(dtype: np.dtype, rng: np.random.Generator, n: int) -> np.ndarray:
    """Special values (NaN, +-inf, +-0, +-1, halves, extremes, subnormals) followed by random ones."""
    info = np.finfo(dtype)
    specials = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 2.0,
                -3.0, 7.0, -7.0, 0.1, -1 / 3, 100.0, -1e5, 1e10, -1e30, math.pi, math.e, 0.75, -0.9999, 1.0000001,
                float(info.max), -float(info.max), float(info.tiny), -float(info.tiny), float(info.smallest_subnormal),
                -float(info.smallest_subnormal), float(info.eps), 3 * float(info.smallest_subnormal), 2.0 ** 24 + 2]
    with np.errstate(all="ignore"):
        special = np.array(specials, np.float64).astype(dtype)
        special[1] = -np.abs(special[1])  # -NaN
        low, high = np.log2(float(info.smallest_subnormal)), np.log2(float(info.max))
        scaled = rng.choice([-1, 1], n) * 2.0 ** rng.uniform(low, high, n)
        moderate = rng.uniform(-12, 12, n)
        integral = rng.integers(-40, 40, n).astype(np.float64)
        pick = rng.integers(0, 3, n)
        random = np.choose(pick, [scaled, moderate, integral]).astype(dtype)
    return np.concatenate([special, random])


def int_values(dtype: np.dtype, rng: np.random.Generator, n: int) -> np.ndarray:
    info = np.iinfo(dtype)
    specials = [info.min, info.min + 1, -129, -128, -65, -64, -63, -33, -32, -9, -8, -7, -3, -2, -1, 0, 1, 2, 3, 5, 7,
                8, 9, 15, 16, 31, 32, 33, 63, 64, 65, 127, 128, 255, 256, 65535, 1 << 31, info.max - 1, info.max]
    special = np.array([v for v in dict.fromkeys(specials) if info.min <= v <= info.max], dtype)
    full = rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    small = rng.integers(max(info.min, -20), 21, n).astype(dtype)
    return np.concatenate([special, np.where(rng.random(n) < 0.5, full, small)])


def values(dtype: np.dtype, rng: np.random.Generator, n: int = 600) -> np.ndarray:
    if dtype == np.bool_:
        return np.array([False, True])
    if dtype.kind == "f":
        return float_values(dtype, rng, n)
    return int_values(dtype, rng, n)


def operands(loop: Loop, rng: np.random.Generator) -> list[np.ndarray]:
    """Arguments for the loop: every pair (triple) of special values, plus random tuples."""
    pools = [values(d, rng) for d in loop.ins]
    if len(pools) == 1:
        return pools
    special = [p[:48] for p in pools]  # specials first, then a few random ones
    grid = [np.array(col, dtype=d) for col, d in zip(zip(*itertools.product(*special)), loop.ins)]
    n = 3000
    random = [rng.choice(p, n) for p in pools]
    return [np.concatenate([g, r]) for g, r in zip(grid, random)]


# ----------------------------------------------------------------------------- comparison

def ordered(x: np.ndarray) -> np.ndarray:
    """Float bits mapped to integers whose difference counts ulps (-0.0 and +0.0 both map to 0)."""
    bits = x.view({2: np.int16, 4: np.int32, 8: np.int64}[x.dtype.itemsize]).astype(np.int64)
    magnitude = bits & ((1 << (8 * x.dtype.itemsize - 1)) - 1)
    return np.where(bits < 0, -magnitude, magnitude)


def compare(ours: np.ndarray, ref: np.ndarray, args: list[np.ndarray], *, ulps: int = 0,
            zero_ties_free: bool = False) -> None:
    """Integers and bools equal; floats bit-equal (NaN where NaN), or within ``ulps`` with equal inf/0 signs."""
    assert ours.dtype == ref.dtype, (ours.dtype, ref.dtype)
    if ref.dtype.kind != "f":
        bad = np.flatnonzero(ours != ref)
    else:
        nan_ours, nan_ref = np.isnan(ours), np.isnan(ref)
        if ulps:
            exact = np.isinf(ref) | (ref == 0)
            distance = np.abs(ordered(ours) - ordered(ref))
            same_bits = ours.view(f"u{ours.itemsize}") == ref.view(f"u{ref.itemsize}")
            wrong = (exact & ~same_bits) | (~exact & (distance > ulps)) | np.isinf(ours) & ~np.isinf(ref)
        else:
            wrong = ours.view(f"u{ours.itemsize}") != ref.view(f"u{ref.itemsize}")
            if zero_ties_free:  # the sign of a zero result is unspecified: compare values
                wrong &= ~((ours == 0) & (ref == 0))
        bad = np.flatnonzero((nan_ours != nan_ref) | (~nan_ref & wrong))
    if bad.size:
        rows = [f"  args={[a[i].item() for a in args]} ours={ours[i].item()!r} numpy={ref[i].item()!r}" for i in bad[:12]]
        pytest.fail(f"{bad.size} of {ref.size} differ:\n" + "\n".join(rows))


def max_ulps(ours: np.ndarray, ref: np.ndarray) -> int:
    finite = np.isfinite(ours) & np.isfinite(ref)
    return int(np.max(np.abs(ordered(ours[finite]) - ordered(ref[finite])), initial=0))


def numpy_result(loop: Loop, args: list[np.ndarray]) -> np.ndarray:
    ufunc = getattr(np, loop.name)
    assert ufunc.resolve_dtypes((*loop.ins, None)) == (*loop.ins, loop.out)  # NumPy picks this very loop
    with np.errstate(all="ignore"):
        return ufunc(*args)


def check_ufunc_loop(run, loop: Loop, rng: np.random.Generator, ulps_for) -> None:
    args = operands(loop, rng)
    ours = run(loop, *args)
    if loop.name == "power" and loop.ins[0].kind == "i":  # NumPy raises on negative exponents; we give 0
        negative = args[1] < 0
        assert np.all(ours[negative] == 0)
        args = [a[~negative] for a in args]
        ours = ours[~negative]
    if loop.name in ("maximum", "minimum") and loop.out == HALF:
        # NumPy's float16 loop returns the first of two equal operands, ours (float32's) the second:
        # they differ only in the sign of a zero result.
        tie = (args[0] == 0) & (args[1] == 0)
        assert np.array_equal(np.signbit(ours[tie]), np.signbit(args[1][tie]))
        args, ours = [a[~tie] for a in args], ours[~tie]
    ref = numpy_result(loop, args)
    ulps = ulps_for(loop) if loop.name in TRANSCENDENTAL and loop.out.kind == "f" else 0
    compare(ours, ref, args, ulps=ulps, zero_ties_free=loop.name in ("fmax", "fmin"))


def host_ulps(loop: Loop) -> int:
    return 1 if loop.out == HALF else HOST_ULPS


def float_to_int_model(x: np.ndarray, to: np.dtype) -> np.ndarray:
    """The header's documented float -> int result for NaN, inf and out-of-range values, in Python."""
    bits = 8 * to.itemsize
    wide = 64 if bits == 64 or (bits == 32 and to.kind == "u") else 32
    lim = 2 ** (wide - 1)
    out = []
    for v in x.astype(np.float64).tolist():
        if to.kind == "u" and bits == 64 and v >= lim:
            t = v - lim
            r = (int(t) ^ lim) if t < lim else 0
        else:
            r = int(v) if -lim <= v < lim else -lim
        out.append(r % 2 ** bits)
    return np.array(out, np.uint64).astype(to)


def check_cast(run, loop: Loop) -> None:
    (source,), target = loop.ins, loop.out
    x = values(source, np.random.default_rng(2), 3000)
    if source.kind == "f":
        x = np.concatenate([x, np.array([300.5, -300.5, -1.5, 2.0 ** 31, -2.0 ** 31 - 4096, 4.2e9, -4.2e9, 2.0 ** 32,
                                         2.0 ** 63, -2.0 ** 63, 1.5 * 2.0 ** 63, 2.0 ** 64, -2.0 ** 64], source)])
    ours = run(loop, x)
    with np.errstate(all="ignore"):
        ref = x.astype(target)
    if source.kind == "f" and target.kind in "iu":
        info = np.iinfo(target)
        undefined = ~((x > float(info.min) - 1) & (x < float(info.max) + 1))  # NaN, inf, out of range
        model = float_to_int_model(x[undefined], target)
        assert np.array_equal(ours[undefined], model), (x[undefined], ours[undefined], model)
        # x86 NumPy gives the same, except for uint32, where its result depends on the array's length
        if platform.machine() in ("x86_64", "AMD64") and target != np.uint32:
            assert np.array_equal(ours[undefined], ref[undefined])
        x, ours, ref = x[~undefined], ours[~undefined], ref[~undefined]
    compare(ours, ref, [x])


def check_where(run, loop: Loop) -> None:
    rng = np.random.default_rng(3)
    a, b = (values(loop.out, rng) for _ in range(2))
    c = rng.random(len(a)) < 0.5
    compare(run(loop, c, a, b), np.where(c, a, b), [c, a, b])


def check_clip(run, loop: Loop) -> None:
    """As np.clip(x, lo, hi) with scalar bounds, the common case: ties return x, a NaN bound gives NaN."""
    dtype = loop.out
    pool = values(dtype, np.random.default_rng(4), 12)
    los, his = (np.repeat(np.array(b, dtype), len(pool)) for b in zip(*itertools.product(pool[:24], repeat=2)))
    xs = np.tile(pool, len(los) // len(pool))
    ours = run(loop, xs, los, his)
    with np.errstate(all="ignore"):
        ref = np.concatenate([np.clip(pool, lo, hi) for lo, hi in itertools.product(pool[:24], repeat=2)]).astype(dtype)
    compare(ours, ref, [xs, los, his])


def check_round_half(run, loop: Loop) -> None:
    """gt_round_half(x) is x.astype(float16): one rounding, also from double."""
    source = loop.ins[0]
    rng = np.random.default_rng(5)
    width = np.uint32 if source.itemsize == 4 else np.uint64
    ties = np.float16(np.arange(1, 64)).astype(source) * (1 + float(np.finfo(np.float16).eps) / 2)  # halfway
    x = np.concatenate([values(source, rng, 2000), rng.integers(0, np.iinfo(width).max, 20000, dtype=width).view(source),
                        (np.arange(-70000, 70000) + 0.5).astype(source), ties, np.nextafter(ties, 0), np.nextafter(ties, 2)])
    with np.errstate(all="ignore"):
        compare(run(loop, x).astype(HALF), x.astype(HALF), [x])


def check(run, loop: Loop, ulps_for) -> None:
    if loop.name == "cast":
        check_cast(run, loop)
    elif loop.name == "where":
        check_where(run, loop)
    elif loop.name == "clip":
        check_clip(run, loop)
    elif loop.name == "round_half":
        check_round_half(run, loop)
    else:
        check_ufunc_loop(run, loop, np.random.default_rng(zlib.crc32(loop.id.encode())), ulps_for)


# ----------------------------------------------------------------------------- tests: host compiler

@pytest.mark.parametrize("loop", ALL_LOOPS, ids=lambda loop: loop.id)
def test_matches_numpy(run_host, loop):
    check(run_host, loop, host_ulps)


def test_transcendentals_within_a_few_ulps_of_numpy(run_host):
    """The host libm against NumPy: float32 exp, log, tanh 2 ulp, sin, cos and float64 tanh 1, others 0."""
    worst = {}
    for loop in UFUNC_LOOPS:
        if loop.name in TRANSCENDENTAL and loop.out.kind == "f" and loop.out != HALF:
            args = operands(loop, np.random.default_rng(1))
            worst[loop.id] = max_ulps(run_host(loop, *args), numpy_result(loop, args))
    assert max(worst.values()) <= HOST_ULPS, worst


def test_half_load_store_round_trip(host_lib):
    x = np.arange(0, 1 << 16, dtype=np.uint16).view(HALF)
    out = np.empty_like(x)
    host_lib.t_copy_half(ctypes.c_void_p(x.ctypes.data), ctypes.c_void_p(out.ctypes.data), ctypes.c_long(len(x)))
    assert np.array_equal(out.view(np.uint16)[~np.isnan(x)], x.view(np.uint16)[~np.isnan(x)])
    assert np.array_equal(np.isnan(out), np.isnan(x))


def test_overloads_are_numpys_loops(tmp_path):
    """A call exists for exactly the types NumPy has a loop for: gt_sqrt(int) or gt_bitwise_and(float) do not compile."""
    require_host_compiler()
    finish(gxx(overload_checks(), tmp_path / "overloads.cpp", "-fsyntax-only"))


def test_integer_division_never_traps(run_host):
    """MIN // -1 and MIN % -1 raise SIGFPE as plain C on x86; NumPy gives MIN and 0, and 0 for division by 0."""
    for dtype in map(np.dtype, "bhil"):
        info = np.iinfo(dtype)
        a, b = np.array([info.min, info.min, 7, -7], dtype), np.array([-1, 0, 0, -1], dtype)
        loops = {loop.name: loop for loop in UFUNC_LOOPS if loop.ins == (dtype, dtype)}
        assert run_host(loops["floor_divide"], a, b).tolist() == [info.min, 0, 0, 7]
        assert run_host(loops["remainder"], a, b).tolist() == [0, 0, 0, 0]
        assert run_host(loops["fmod"], a, b).tolist() == [0, 0, 0, 0]


INT_DTYPES = [np.dtype(c) for c in "bBhHiIlL"]


def python_semantics(name: str, x: int, y: int, bits: int) -> int:
    """Python's big-integer arithmetic, reduced modulo 2**bits: an oracle independent of NumPy."""
    if name in ("floor_divide", "remainder", "fmod") and y == 0:
        return 0
    if name == "floor_divide":
        return x // y
    if name == "remainder":
        return x % y
    if name == "fmod":
        return x - y * (abs(x) // abs(y)) * (1 if (x < 0) == (y < 0) else -1)
    if name == "power":
        return pow(x, y, 2 ** bits) if y >= 0 else 0
    if name == "left_shift":
        return x << y if 0 <= y < bits else 0
    if name == "right_shift":
        return x >> y if 0 <= y < bits else (-1 if x < 0 else 0)
    return {"add": x + y, "subtract": x - y, "multiply": x * y}[name]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_integer_ops_follow_python_arithmetic(run_host, data):
    dtype = data.draw(st.sampled_from(INT_DTYPES))
    info, bits = np.iinfo(dtype), 8 * dtype.itemsize
    small = st.integers(max(info.min, -3), 70)
    xs = data.draw(st.lists(st.integers(info.min, info.max), min_size=1, max_size=16))
    ys = data.draw(st.lists(st.integers(info.min, info.max) | small, min_size=len(xs), max_size=len(xs)))
    a, b = np.array(xs, dtype), np.array(ys, dtype)
    for name in ("add", "subtract", "multiply", "floor_divide", "remainder", "fmod", "power", "left_shift", "right_shift"):
        (loop,) = [loop for loop in numpy_loops(name) if loop.ins == (dtype, dtype)]
        expected = np.array([python_semantics(name, x, y, bits) % 2 ** bits for x, y in zip(xs, ys)], np.uint64)
        assert run_host(loop, a, b).tolist() == expected.astype(dtype).tolist(), (name, xs, ys)


# ----------------------------------------------------------------------------- tests: NVRTC and the GPU

def nvrtc_compile(source: str, arch: str) -> str:
    try:
        from cupy.cuda import nvrtc
        nvrtc.getVersion()
    except Exception:  # no CuPy, or no libnvrtc
        pytest.skip("NVRTC (through CuPy) is not available")
    from gputrace.backends.nvrtc import cuda_include_dirs as nvrtc_include_dirs
    options = ["-std=c++17", f"-arch={arch}", "--fmad=false", *(f"-I{d}" for d in nvrtc_include_dirs())]
    program = nvrtc.createProgram(source, "ops_test.cu", [], [])
    try:
        nvrtc.compileProgram(program, options)
    except nvrtc.NVRTCError as exc:
        pytest.fail(f"{exc}\n{nvrtc.getProgramLog(program)[-6000:]}")
    ptx = nvrtc.getPTX(program)
    return ptx.decode() if isinstance(ptx, bytes) else ptx


@pytest.mark.parametrize("arch", ["compute_80", "sm_90"])
def test_every_overload_compiles_under_nvrtc(arch):
    """All loops as kernels: to PTX for sm_80, and through ptxas for sm_90."""
    ptx = nvrtc_compile(loops_source(KERNEL_PRELUDE, ALL_LOOPS), arch)
    assert ptx.count(".entry ") == len(ALL_LOOPS) + 1
    assert not re.search(r"^\s*\.global\s.*gt_", ptx, re.M), "the header should define no device variables"


def test_header_builds_for_sm_80():
    """Some loops through ptxas for sm_80 too (all of them take seconds)."""
    loops = [loop for loop in ALL_LOOPS if loop.name in ("floor_divide", "power", "cast", "logaddexp", "round_half")]
    nvrtc_compile(loops_source(KERNEL_PRELUDE, loops), "sm_80")


def gpu_runner():
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() == 0:
            raise RuntimeError("no device")
    except Exception:  # no CuPy, no driver or no device
        pytest.skip("no GPU")
    from gputrace.backends.nvrtc import load_raw_module  # gputrace's own options (cupy.RawModule flushes denormals)
    module = load_raw_module(loops_source(KERNEL_PRELUDE, ALL_LOOPS))

    def run(loop: Loop, *arrays: np.ndarray) -> np.ndarray:
        args = [cupy.asarray(a.astype(np.float32) if a.dtype == HALF else a) for a in arrays]
        out = cupy.empty(len(args[0]), np.float32 if loop.out == HALF else loop.out)
        module.get_function(loop.symbol)(((len(out) + 255) // 256,), (256,), (*args, out, np.int64(len(out))))
        result = cupy.asnumpy(out)
        return result.astype(HALF) if loop.out == HALF else result
    return run


def gpu_ulps(loop: Loop) -> int:
    return 1 if loop.out == HALF else GPU_ULPS[loop.out.name][loop.name]


@pytest.mark.gpu
def test_gpu_matches_numpy():
    """Every loop on the GPU, with CUDA's ulp bounds for the transcendentals; prints the worst ulps seen."""
    run = gpu_runner()
    failures, worst = [], {}
    for loop in ALL_LOOPS:
        try:
            check(run, loop, gpu_ulps)
        except (AssertionError, pytest.fail.Exception) as exc:
            failures.append(f"{loop.id}: {str(exc)[:600]}")
        if loop.name in TRANSCENDENTAL and loop.out.kind == "f" and loop.out != HALF:
            args = operands(loop, np.random.default_rng(zlib.crc32(loop.id.encode())))
            worst[loop.id] = max_ulps(run(loop, *args), numpy_result(loop, args))
    print("worst ulps on the GPU:", worst)
    assert not failures, "\n".join(failures)
