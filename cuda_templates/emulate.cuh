// CUDA on the CPU: the device API that g++ needs to build unmodified NVRTC kernel source.
// Included before the kernel (g++ -include); gputrace/backends/host_compiler.py builds and loads it.
//
// Model: the blocks of a grid are spread over worker OS threads; one block runs on one worker at a
// time, its CUDA threads as cooperative fibers that switch only at barriers and warp operations.
// So __shared__ is thread_local storage, a barrier opens when every running thread of the block
// waits at it (threads that returned do not count, as on sm_70+), a warp operation completes when
// every running lane of its mask has arrived, and a block in which every running thread waits with
// nothing able to complete is a deadlock, reported instead of hanging. Fibers run in the order
// GPUTRACE_EMULATE_ORDER names (forward, reverse, random, random:SEED) to expose missing barriers;
// GPUTRACE_EMULATE_THREADS sets the number of workers (default: all cores). Errors (deadlocks, bad
// launch configurations, device asserts, __trap) end the launch and come back as a message from
// the exported launcher; they never abort the process.
//
// Two builds come from this file: kernel modules (the kernels, the device API, small launch
// wrappers) and, with GT_EMU_RUNTIME defined, the runtime library every module links against:
// fibers, scheduler and a persistent worker pool, compiled once instead of into every module.
#pragma once

// Standard headers first: they use names such as __noinline__ that the CUDA keywords below redefine.
#include <atomic>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <source_location>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#ifdef GT_EMU_RUNTIME
#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>
#include <sys/mman.h>
#include <unistd.h>
#if !defined(__x86_64__) || defined(__SANITIZE_ADDRESS__)
#include <ucontext.h>
#endif
#endif

// -- CUDA keywords ------------------------------------------------------------------------------
// Must precede the CUDA headers: their host_defines.h keeps an existing __shared__.
#define __shared__ thread_local
#if __has_include(<cuda_fp16.h>)
#include <cuda_fp16.h>  // also brings vector_types.h: uint3, dim3, float4, ...
#else
struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};
#endif
#ifndef __device__
#define __device__
#endif
#ifndef __host__
#define __host__
#endif
#ifndef __global__
#define __global__
#endif
#ifndef __forceinline__
#define __forceinline__ inline __attribute__((always_inline))
#endif
#ifndef __noinline__
#define __noinline__ __attribute__((noinline))
#endif
#ifndef __align__
#define __align__(n) __attribute__((aligned(n)))
#endif
#ifndef __constant__
#define __constant__
#endif
#ifndef __grid_constant__
#define __grid_constant__
#endif
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif

// -- math: CUDA has float overloads of the C math functions in the global namespace ---------------
using std::abs; using std::fabs; using std::sqrt; using std::cbrt; using std::exp; using std::exp2;
using std::expm1; using std::log; using std::log2; using std::log10; using std::log1p; using std::pow;
using std::sin; using std::cos; using std::tan; using std::asin; using std::acos; using std::atan;
using std::atan2; using std::sinh; using std::cosh; using std::tanh; using std::asinh; using std::acosh;
using std::atanh; using std::floor; using std::ceil; using std::trunc; using std::round; using std::rint;
using std::nearbyint; using std::fmod; using std::remainder; using std::fmin; using std::fmax;
using std::hypot; using std::copysign; using std::erf; using std::erfc; using std::tgamma; using std::lgamma;
using std::isnan; using std::isinf; using std::isfinite; using std::signbit; using std::fma; using std::ldexp;
using std::frexp; using std::modf; using std::fdim; using std::scalbn; using std::nextafter; using std::lround;
using std::llround; using std::lrint; using std::llrint;

// The fast intrinsics are computed accurately here; on a GPU they differ from these by a few ulp.
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return exp10f(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline void __sincosf(float x, float* s, float* c) { sincosf(x, s, c); }
inline float __fdividef(float a, float b) { return a / b; }
inline float fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f); }  // NaN gives 0
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }

inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline float __uint_as_float(unsigned int x) { return std::bit_cast<float>(x); }
inline unsigned int __float_as_uint(float x) { return std::bit_cast<unsigned int>(x); }
inline double __longlong_as_double(long long x) { return std::bit_cast<double>(x); }
inline long long __double_as_longlong(double x) { return std::bit_cast<long long>(x); }

// PTX's cvt.rni/rzi: saturate to the integer range, NaN gives 0.
namespace gt_emu {
template <class I, class F>
I saturate_to(F x)
{
    if (x != x) return 0;
    if (x <= (F)std::numeric_limits<I>::min()) return std::numeric_limits<I>::min();
    if (x >= (F)std::numeric_limits<I>::max()) return std::numeric_limits<I>::max();
    return (I)x;
}
}  // namespace gt_emu
inline int __float2int_rn(float x) { return gt_emu::saturate_to<int>(rintf(x)); }
inline int __float2int_rz(float x) { return gt_emu::saturate_to<int>(truncf(x)); }
inline int __float2int_rd(float x) { return gt_emu::saturate_to<int>(floorf(x)); }
inline int __float2int_ru(float x) { return gt_emu::saturate_to<int>(ceilf(x)); }
inline unsigned int __float2uint_rn(float x) { return gt_emu::saturate_to<unsigned int>(rintf(x)); }
inline unsigned int __float2uint_rz(float x) { return gt_emu::saturate_to<unsigned int>(truncf(x)); }
inline long long __float2ll_rn(float x) { return gt_emu::saturate_to<long long>(rintf(x)); }
inline long long __float2ll_rz(float x) { return gt_emu::saturate_to<long long>(truncf(x)); }
inline int __double2int_rn(double x) { return gt_emu::saturate_to<int>(rint(x)); }
inline int __double2int_rz(double x) { return gt_emu::saturate_to<int>(trunc(x)); }
inline long long __double2ll_rn(double x) { return gt_emu::saturate_to<long long>(rint(x)); }
inline long long __double2ll_rz(double x) { return gt_emu::saturate_to<long long>(trunc(x)); }
inline float __int2float_rn(int x) { return (float)x; }
inline float __uint2float_rn(unsigned int x) { return (float)x; }
inline float __ll2float_rn(long long x) { return (float)x; }
inline float __double2float_rn(double x) { return (float)x; }

inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned int)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned int __brev(unsigned int x)
{
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    return __builtin_bswap32(x);
}
inline unsigned long long __brevll(unsigned long long x)
{
    return ((unsigned long long)__brev((unsigned int)x) << 32) | __brev((unsigned int)(x >> 32));
}
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline unsigned int __umulhi(unsigned int a, unsigned int b) { return (unsigned int)(((unsigned long long)a * b) >> 32); }
inline long long __mul64hi(long long a, long long b) { return (long long)(((__int128)a * b) >> 64); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b)
{
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
inline int __mul24(int a, int b) { return ((a << 8) >> 8) * ((b << 8) >> 8); }
inline unsigned int __umul24(unsigned int a, unsigned int b) { return (a & 0xffffffu) * (b & 0xffffffu); }

// CUDA's global min/max overloads; float and double ones ignore NaN like fminf/fmaxf.
#define GT_EMU_MIN_MAX(R, A, B)                                            \
    inline R min(A a, B b) { return (R)a < (R)b ? (R)a : (R)b; }           \
    inline R max(A a, B b) { return (R)a > (R)b ? (R)a : (R)b; }
GT_EMU_MIN_MAX(int, int, int)
GT_EMU_MIN_MAX(unsigned int, unsigned int, unsigned int)
GT_EMU_MIN_MAX(unsigned int, int, unsigned int)
GT_EMU_MIN_MAX(unsigned int, unsigned int, int)
GT_EMU_MIN_MAX(long, long, long)
GT_EMU_MIN_MAX(unsigned long, unsigned long, unsigned long)
GT_EMU_MIN_MAX(long long, long long, long long)
GT_EMU_MIN_MAX(unsigned long long, unsigned long long, unsigned long long)
GT_EMU_MIN_MAX(unsigned long long, long long, unsigned long long)
GT_EMU_MIN_MAX(unsigned long long, unsigned long long, long long)
#undef GT_EMU_MIN_MAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline double min(float a, double b) { return fmin(a, b); }
inline double max(float a, double b) { return fmax(a, b); }
inline double min(double a, float b) { return fmin(a, b); }
inline double max(double a, float b) { return fmax(a, b); }
inline unsigned int umin(unsigned int a, unsigned int b) { return min(a, b); }
inline unsigned int umax(unsigned int a, unsigned int b) { return max(a, b); }
inline long long llmin(long long a, long long b) { return min(a, b); }
inline long long llmax(long long a, long long b) { return max(a, b); }
inline unsigned long long ullmin(unsigned long long a, unsigned long long b) { return min(a, b); }
inline unsigned long long ullmax(unsigned long long a, unsigned long long b) { return max(a, b); }

// -- the runtime library's interface ----------------------------------------------------------
#define GT_EMU_API extern "C" __attribute__((visibility("default")))

// One launch as a module describes it to the runtime.
struct gt_emu_kernel {
    const char* name;
    const void* bound;                        // the kernel and its arguments
    void (*run_thread)(const void* bound);   // runs the kernel as the current CUDA thread
    void (*enter_block)(uint3 block_idx, dim3 block_dim, dim3 grid_dim);  // sets the module's built-ins
    void (*enter_thread)(uint3 thread_idx);
};

// Runs the grid; 0 on success, else 1 with the message in `error` (cut to error_size).
GT_EMU_API int gt_emu_run_grid(const gt_emu_kernel* kernel, dim3 grid, dim3 block, size_t dynamic_shared,
                               char* error, size_t error_size);
// Called on a CUDA thread: wait at the block barrier; returns the threads with a true predicate.
GT_EMU_API unsigned gt_emu_barrier(const char* what, int predicate, unsigned* arrived, const char* file, unsigned line);
// Called on a CUDA thread: a warp operation (gt_emu::WarpOp) over the lanes in mask.
GT_EMU_API unsigned long long gt_emu_warp_op(int op, const char* what, unsigned mask, unsigned long long value,
                                             unsigned arg, int width, int* valid, const char* file, unsigned line);
GT_EMU_API unsigned gt_emu_active_mask();
GT_EMU_API void* gt_emu_dynamic_shared();
GT_EMU_API __attribute__((noreturn)) void gt_emu_fail(const char* message, const char* file, unsigned line);

namespace gt_emu {
enum class WarpOp : int { sync, shfl_idx, shfl_up, shfl_down, shfl_xor, ballot, any, all };
}  // namespace gt_emu

// -- the device API -----------------------------------------------------------------------------
// CUDA's built-in variables, per worker thread; the runtime sets threadIdx at every fiber switch.
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
constexpr int warpSize = 32;

#define GT_EMU_HERE std::source_location where = std::source_location::current()
#define GT_EMU_AT where.file_name(), where.line()

inline void __syncthreads(GT_EMU_HERE) { gt_emu_barrier("__syncthreads", 0, nullptr, GT_EMU_AT); }
inline int __syncthreads_count(int predicate, GT_EMU_HERE)
{
    return gt_emu_barrier("__syncthreads_count", predicate != 0, nullptr, GT_EMU_AT);
}
inline int __syncthreads_and(int predicate, GT_EMU_HERE)
{
    unsigned arrived = 0;
    return gt_emu_barrier("__syncthreads_and", predicate != 0, &arrived, GT_EMU_AT) == arrived;
}
inline int __syncthreads_or(int predicate, GT_EMU_HERE)
{
    return gt_emu_barrier("__syncthreads_or", predicate != 0, nullptr, GT_EMU_AT) != 0;
}

#define GT_EMU_VOTE(op, name, mask, value) \
    gt_emu_warp_op((int)gt_emu::WarpOp::op, name, mask, value, 0, 32, nullptr, GT_EMU_AT)
inline void __syncwarp(unsigned mask = 0xffffffffu, GT_EMU_HERE) { GT_EMU_VOTE(sync, "__syncwarp", mask, 0); }
inline unsigned __ballot_sync(unsigned mask, int predicate, GT_EMU_HERE)
{
    return (unsigned)GT_EMU_VOTE(ballot, "__ballot_sync", mask, predicate != 0);
}
inline int __any_sync(unsigned mask, int predicate, GT_EMU_HERE) { return (int)GT_EMU_VOTE(any, "__any_sync", mask, predicate != 0); }
inline int __all_sync(unsigned mask, int predicate, GT_EMU_HERE) { return (int)GT_EMU_VOTE(all, "__all_sync", mask, predicate != 0); }
#undef GT_EMU_VOTE
inline unsigned __activemask() { return gt_emu_active_mask(); }

namespace gt_emu {
// What a shuffle from an inactive or missing lane gives: NaN, or 0xdeadbeef... for integers.
template <class T>
T poison()
{
    unsigned long long bits = 0xdeadbeefdeadbeefull;
    if constexpr (std::is_floating_point_v<T>) return std::numeric_limits<T>::quiet_NaN();
#ifdef __CUDA_FP16_TYPES_EXIST__
    else if constexpr (std::is_same_v<T, __half>) bits = 0x7fff;
#endif
    T value;
    std::memcpy(&value, &bits, sizeof(T));
    return value;
}

template <class T>
T shuffle(WarpOp op, const char* what, unsigned mask, T value, unsigned arg, int width, const std::source_location& where)
{
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp shuffles move values of up to 8 bytes");
    unsigned long long bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    int valid = 0;
    bits = gt_emu_warp_op((int)op, what, mask, bits, arg, width, &valid, GT_EMU_AT);
    if (!valid) return poison<T>();
    std::memcpy(&value, &bits, sizeof(T));
    return value;
}
}  // namespace gt_emu

template <class T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize, GT_EMU_HERE)
{
    return gt_emu::shuffle(gt_emu::WarpOp::shfl_idx, "__shfl_sync", mask, var, (unsigned)src_lane, width, where);
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize, GT_EMU_HERE)
{
    return gt_emu::shuffle(gt_emu::WarpOp::shfl_up, "__shfl_up_sync", mask, var, delta, width, where);
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize, GT_EMU_HERE)
{
    return gt_emu::shuffle(gt_emu::WarpOp::shfl_down, "__shfl_down_sync", mask, var, delta, width, where);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize, GT_EMU_HERE)
{
    return gt_emu::shuffle(gt_emu::WarpOp::shfl_xor, "__shfl_xor_sync", mask, var, (unsigned)lane_mask, width, where);
}

// Blocks run concurrently on the workers, so atomics are real (relaxed, like CUDA's).
namespace gt_emu {
template <class T>
std::atomic_ref<T> atomic(T* address) { return std::atomic_ref<T>(*address); }

template <class T, class Update>
T atomic_update(T* address, Update update)
{
    std::atomic_ref<T> cell(*address);
    T old = cell.load(std::memory_order_relaxed);
    while (!cell.compare_exchange_weak(old, update(old), std::memory_order_relaxed)) {}
    return old;
}

template <class T>
T compare_and_swap(T* address, T compare, T val)
{
    atomic(address).compare_exchange_strong(compare, val, std::memory_order_relaxed);
    return compare;  // the old value, whether or not it was replaced
}
}  // namespace gt_emu

#define GT_EMU_ATOMIC(T, name, expression) \
    inline T name(T* address, T val) { return expression; }
#define GT_EMU_FETCH(T, name, method) GT_EMU_ATOMIC(T, name, gt_emu::atomic(address).method(val, std::memory_order_relaxed))
GT_EMU_FETCH(int, atomicAdd, fetch_add)
GT_EMU_FETCH(unsigned int, atomicAdd, fetch_add)
GT_EMU_FETCH(unsigned long long, atomicAdd, fetch_add)
GT_EMU_FETCH(float, atomicAdd, fetch_add)
GT_EMU_FETCH(double, atomicAdd, fetch_add)
GT_EMU_FETCH(int, atomicSub, fetch_sub)
GT_EMU_FETCH(unsigned int, atomicSub, fetch_sub)
GT_EMU_FETCH(int, atomicExch, exchange)
GT_EMU_FETCH(unsigned int, atomicExch, exchange)
GT_EMU_FETCH(unsigned long long, atomicExch, exchange)
GT_EMU_FETCH(float, atomicExch, exchange)
GT_EMU_FETCH(int, atomicAnd, fetch_and)
GT_EMU_FETCH(unsigned int, atomicAnd, fetch_and)
GT_EMU_FETCH(unsigned long long, atomicAnd, fetch_and)
GT_EMU_FETCH(int, atomicOr, fetch_or)
GT_EMU_FETCH(unsigned int, atomicOr, fetch_or)
GT_EMU_FETCH(unsigned long long, atomicOr, fetch_or)
GT_EMU_FETCH(int, atomicXor, fetch_xor)
GT_EMU_FETCH(unsigned int, atomicXor, fetch_xor)
GT_EMU_FETCH(unsigned long long, atomicXor, fetch_xor)
#define GT_EMU_MIN_MAX_ATOMICS(T)                                                                               \
    GT_EMU_ATOMIC(T, atomicMin, gt_emu::atomic_update(address, [=](T old) { return val < old ? val : old; })) \
    GT_EMU_ATOMIC(T, atomicMax, gt_emu::atomic_update(address, [=](T old) { return val > old ? val : old; }))
GT_EMU_MIN_MAX_ATOMICS(int)
GT_EMU_MIN_MAX_ATOMICS(unsigned int)
GT_EMU_MIN_MAX_ATOMICS(long long)
GT_EMU_MIN_MAX_ATOMICS(unsigned long long)
GT_EMU_ATOMIC(unsigned int, atomicInc, gt_emu::atomic_update(address, [=](unsigned int old) { return old >= val ? 0u : old + 1; }))
GT_EMU_ATOMIC(unsigned int, atomicDec, gt_emu::atomic_update(address, [=](unsigned int old) { return old == 0 || old > val ? val : old - 1; }))
#undef GT_EMU_MIN_MAX_ATOMICS
#undef GT_EMU_FETCH
#undef GT_EMU_ATOMIC
inline int atomicCAS(int* address, int compare, int val) { return gt_emu::compare_and_swap(address, compare, val); }
inline unsigned int atomicCAS(unsigned int* address, unsigned int compare, unsigned int val)
{
    return gt_emu::compare_and_swap(address, compare, val);
}
inline unsigned long long atomicCAS(unsigned long long* address, unsigned long long compare, unsigned long long val)
{
    return gt_emu::compare_and_swap(address, compare, val);
}
inline unsigned short atomicCAS(unsigned short* address, unsigned short compare, unsigned short val)
{
    return gt_emu::compare_and_swap(address, compare, val);
}

inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }

template <class T>
T __ldg(const T* address) { return *address; }

[[noreturn]] inline void __trap(GT_EMU_HERE) { gt_emu_fail("__trap() called", GT_EMU_AT); }

// CUDA's __builtin_assume(cond) lets the compiler take cond as true; emulation checks it instead.
inline void gt_emu_assume(bool holds, const char* condition, GT_EMU_HERE)
{
    if (!holds) gt_emu_fail((std::string("__builtin_assume(") + condition + ") does not hold").c_str(), GT_EMU_AT);
}
#define __builtin_assume(cond) gt_emu_assume((cond), #cond)
#undef GT_EMU_AT
#undef GT_EMU_HERE

// -- kernel modules: dynamic shared memory, launch wrappers --------------------------------------
#ifndef GT_EMU_RUNTIME
// A failed device assert ends the launch with its message instead of aborting the process.
extern "C" void __assert_fail(const char* assertion, const char* file, unsigned int line, const char* function) noexcept
{
    const std::string message = std::string("assertion `") + assertion + "' failed in " + function;
    gt_emu_fail(message.c_str(), file, line);
}

namespace gt_emu {
// What `extern __shared__ T name[]` becomes (the builder rewrites it): a pointer to the worker's buffer.
struct DynamicShared {
    template <class T>
    operator T*() const { return static_cast<T*>(gt_emu_dynamic_shared()); }
};
inline DynamicShared dynamic_shared() { return {}; }

template <class T>
T load_argument(void* address)
{
    T value;
    std::memcpy(&value, address, sizeof(T));
    return value;
}

// A parameter as NumPy names it: "float32", "bytesN" for structs; pointers "*float32", "const*float32"
// ("*" alone: untyped).
template <class T>
std::string dtype_name()
{
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_same_v<U, bool>) return "bool";
    else if constexpr (std::is_same_v<U, float>) return "float32";
    else if constexpr (std::is_same_v<U, double>) return "float64";
#ifdef __CUDA_FP16_TYPES_EXIST__
    else if constexpr (std::is_same_v<U, __half>) return "float16";
#endif
    else if constexpr (std::is_integral_v<U> && !std::is_same_v<U, char>)
        return (std::is_signed_v<U> ? "int" : "uint") + std::to_string(8 * sizeof(U));
    else return "bytes" + std::to_string(sizeof(U));
}

template <class T>
std::string parameter_descriptor()
{
    if constexpr (std::is_pointer_v<T>) {
        using P = std::remove_cv_t<std::remove_pointer_t<T>>;
        const std::string pointer = std::is_const_v<std::remove_pointer_t<T>> ? "const*" : "*";
        if constexpr (std::is_void_v<P> || std::is_same_v<P, char> || std::is_same_v<P, unsigned char>) return pointer;
        else return pointer + dtype_name<P>();
    } else {
        return dtype_name<T>();
    }
}

inline void enter_block(uint3 block_idx, dim3 block_dim, dim3 grid_dim)
{
    blockIdx = block_idx;
    blockDim = block_dim;
    gridDim = grid_dim;
}
inline void enter_thread(uint3 thread_idx) { threadIdx = thread_idx; }
}  // namespace gt_emu

// Runs `kernel` over the grid; args point at each argument, as for cudaLaunchKernel.
template <class... A>
int gt_emu_launch(const char* name, void (*kernel)(A...), dim3 grid, dim3 block, size_t dynamic_shared,
                  void** args, char* error, size_t error_size)
{
    struct Bound {
        void (*kernel)(A...);
        std::tuple<std::decay_t<A>...> params;
    };
    const Bound bound{kernel, [&]<size_t... I>(std::index_sequence<I...>) {
                          return std::tuple<std::decay_t<A>...>(gt_emu::load_argument<std::decay_t<A>>(args[I])...);
                      }(std::index_sequence_for<A...>{})};
    const gt_emu_kernel launch{name, &bound,
                               [](const void* b) {
                                   const Bound& self = *static_cast<const Bound*>(b);
                                   std::apply(self.kernel, self.params);
                               },
                               &gt_emu::enter_block, &gt_emu::enter_thread};
    return gt_emu_run_grid(&launch, grid, block, dynamic_shared, error, error_size);
}

// The kernel's parameters, comma-separated, for the Python side to check arguments against.
template <class... A>
const char* gt_emu_signature(void (*)(A...))
{
    static const std::string text = [] {
        std::string joined;
        ((joined += (joined.empty() ? "" : ",") + gt_emu::parameter_descriptor<std::decay_t<A>>()), ...);
        return joined;
    }();
    return text.c_str();
}

// The C entry points of one kernel: gt_launch_<name> and gt_params_<name>.
#define GT_EMU_EXPORT(name)                                                                                      \
    GT_EMU_API int gt_launch_##name(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, \
                                    size_t dynamic_shared, void** args, char* error, size_t error_size)           \
    {                                                                                                            \
        return gt_emu_launch(#name, name, dim3(gx, gy, gz), dim3(bx, by, bz), dynamic_shared, args, error,       \
                             error_size);                                                                        \
    }                                                                                                            \
    GT_EMU_API const char* gt_params_##name() { return gt_emu_signature(name); }
#endif  // !GT_EMU_RUNTIME

// -- the runtime library: fibers, scheduler, worker pool ------------------------------------------
#ifdef GT_EMU_RUNTIME

namespace gt_emu {

constexpr unsigned max_block_threads = 1024;
constexpr unsigned lanes_per_warp = 32;
constexpr size_t max_dynamic_shared_bytes = 48 * 1024;  // CUDA's limit unless a kernel opts in
constexpr size_t fiber_stack_bytes = 256 * 1024;  // local arrays of CUDA threads can be large; untouched pages cost nothing

// Switching between fibers: saving the callee-saved registers by hand is ~10x faster than
// swapcontext, which makes a system call for the signal mask. AddressSanitizer follows
// swapcontext but not a hand-written switch.
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
struct Context { void* sp = nullptr; };

extern "C" void gt_emu_switch_stack(void** save_sp, void* next_sp);
asm(R"(
    .text
    .p2align 4
    .hidden gt_emu_switch_stack
    .type gt_emu_switch_stack, @function
gt_emu_switch_stack:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size gt_emu_switch_stack, .-gt_emu_switch_stack
)");

// A new stack that "returns" into entry, aligned as after a call.
inline void make_context(Context& context, char* stack_top, size_t, void (*entry)())
{
    auto** sp = reinterpret_cast<void**>(stack_top);
    *--sp = nullptr;                         // entry's own return address: it never returns
    *--sp = reinterpret_cast<void*>(entry);  // popped by the ret of gt_emu_switch_stack
    for (int reg = 0; reg < 6; ++reg) *--sp = nullptr;
    context.sp = sp;
}

inline void switch_context(Context& from, Context& to) { gt_emu_switch_stack(&from.sp, to.sp); }
#else
struct Context { ucontext_t uc; };

inline void make_context(Context& context, char* stack_top, size_t size, void (*entry)())
{
    getcontext(&context.uc);
    context.uc.uc_stack.ss_sp = stack_top - size;
    context.uc.uc_stack.ss_size = size;
    context.uc.uc_link = nullptr;
    makecontext(&context.uc, entry, 0);
}

inline void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

// Fiber stacks for one worker, each above a guard page; a stack is reused as soon as its thread returns.
class StackPool {
public:
    StackPool() : page_(sysconf(_SC_PAGESIZE)), slot_(fiber_stack_bytes + page_)
    {
        void* region = mmap(nullptr, slot_ * max_block_threads, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (region == MAP_FAILED) throw std::runtime_error("cannot map fiber stacks");
        region_ = static_cast<char*>(region);
        free_.reserve(max_block_threads);
    }
    StackPool(const StackPool&) = delete;
    StackPool& operator=(const StackPool&) = delete;
    ~StackPool() { munmap(region_, slot_ * max_block_threads); }

    // The top of a free stack (16-byte aligned).
    char* acquire()
    {
        if (!free_.empty()) {
            char* top = free_.back();
            free_.pop_back();
            return top;
        }
        char* slot = region_ + slot_ * carved_++;
        mprotect(slot, page_, PROT_NONE);  // an overflow faults instead of corrupting the next stack
        return slot + slot_;
    }
    void release(char* top) { free_.push_back(top); }

private:
    size_t page_, slot_;
    unsigned carved_ = 0;  // at most one stack per thread of a block is ever in use
    char* region_ = nullptr;
    std::vector<char*> free_;
};

enum class Order { forward, reverse, random };

// One kernel launch: configuration, the shared block counter and the first error.
struct Launch {
    const gt_emu_kernel* kernel;
    dim3 grid, block;
    size_t dynamic_shared;
    Order order = Order::forward;
    unsigned long long seed = 0;
    unsigned workers = 1;
    std::atomic<unsigned long long> next_block{0};
    std::atomic<bool> failed{false};
    std::mutex error_mutex;
    std::string error;

    void report(const std::string& message)
    {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (error.empty()) error = message;
        failed.store(true, std::memory_order_relaxed);
    }
};

enum class Wait : unsigned char { ready, barrier, warp, done };

struct Fiber {
    Context context;
    char* stack = nullptr;  // held from the thread's first run until it returns
    uint3 index{};
    unsigned lane = 0, warp = 0, linear = 0;
    Wait wait = Wait::ready;
    // The warp operation it waits in: operands in, result out.
    unsigned mask = 0, arg = 0;
    int width = 32;
    unsigned long long value = 0, result = 0;
    bool result_valid = false;
    // Where it waits, for deadlock reports.
    const char* what = "";
    const char* file = "";
    unsigned line = 0;
};

// Lanes of one warp waiting in the same operation with the same mask.
struct WarpGroup {
    unsigned mask;
    WarpOp op;
    unsigned arrived;
};

struct Warp {
    unsigned running = 0;  // lanes that exist and have not returned
    std::vector<WarpGroup> pending;
};

// What a worker keeps between launches, so that a launch costs no system calls.
struct WorkerState {
    StackPool stacks;
    std::vector<Fiber> fibers;
    std::vector<unsigned> order;
    std::vector<Warp> warps;
    alignas(16) unsigned char dynamic_shared[max_dynamic_shared_bytes];
};

inline unsigned long long mix_bits(unsigned long long x)  // splitmix64's finaliser
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Source lane of a shuffle as PTX's shfl.sync computes it; reads outside the segment keep the own value.
inline unsigned source_lane(WarpOp op, unsigned lane, unsigned arg, int width)
{
    const unsigned first = lane & ~(unsigned)(width - 1), last = first + width - 1, delta = arg & 31;
    switch (op) {
    case WarpOp::shfl_idx: return first + (arg & (width - 1));
    case WarpOp::shfl_up: return lane >= first + delta ? lane - delta : lane;
    case WarpOp::shfl_down: return lane + delta <= last ? lane + delta : lane;
    default: return (lane ^ delta) <= last ? lane ^ delta : lane;
    }
}

inline std::string hex(unsigned x)
{
    char text[16];
    std::snprintf(text, sizeof text, "0x%08x", x);
    return text;
}

inline std::string triple(uint3 v)
{
    return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

// "0-15, 32-47" for sorted thread numbers.
inline std::string ranges(const std::vector<unsigned>& sorted)
{
    std::string text;
    for (size_t i = 0; i < sorted.size();) {
        size_t j = i;
        while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
        text += (text.empty() ? "" : ", ") + std::to_string(sorted[i]);
        if (j > i) text += "-" + std::to_string(sorted[j]);
        i = j + 1;
    }
    return text;
}

class BlockRunner;
inline thread_local BlockRunner* current_runner = nullptr;

// Runs the blocks one worker takes for one launch, each block's threads as fibers on this OS thread.
class BlockRunner {
public:
    BlockRunner(Launch& launch, WorkerState& state)
        : launch_(launch), state_(state), kernel_(*launch.kernel),
          threads_(launch.block.x * launch.block.y * launch.block.z),
          fibers_(state.fibers), order_(state.order), warps_(state.warps)
    {
        fibers_.resize(threads_);
        order_.resize(threads_);
        warps_.resize((threads_ + lanes_per_warp - 1) / lanes_per_warp);
        for (unsigned t = 0; t < threads_; ++t) {
            Fiber& f = fibers_[t];
            f.index = uint3{t % launch.block.x, t / launch.block.x % launch.block.y, t / (launch.block.x * launch.block.y)};
            f.linear = t;
            f.lane = t % lanes_per_warp;
            f.warp = t / lanes_per_warp;
            f.stack = nullptr;
            order_[t] = launch.order == Order::reverse ? threads_ - 1 - t : t;
        }
        current_runner = this;
    }
    BlockRunner(const BlockRunner&) = delete;
    BlockRunner& operator=(const BlockRunner&) = delete;
    ~BlockRunner()
    {
        for (Fiber& f : fibers_)  // threads of a failed block never return: take their stacks back
            if (f.stack) state_.stacks.release(f.stack);
        current_runner = nullptr;
    }

    // Runs block number `number` (x fastest); false when the launch failed.
    bool run(unsigned long long number)
    {
        const dim3 g = launch_.grid;
        block_index_ = uint3{(unsigned)(number % g.x), (unsigned)(number / g.x % g.y), (unsigned)(number / g.x / g.y)};
        kernel_.enter_block(block_index_, launch_.block, launch_.grid);
        std::memset(state_.dynamic_shared, 0xff, launch_.dynamic_shared);  // reads before writes give NaN or -1
        for (Fiber& f : fibers_) f.wait = Wait::ready;
        for (unsigned w = 0; w < warps_.size(); ++w) {
            const unsigned lanes = std::min(lanes_per_warp, threads_ - w * lanes_per_warp);
            warps_[w].running = lanes == 32 ? ~0u : (1u << lanes) - 1;
            warps_[w].pending.clear();
        }
        running_ = threads_;
        at_barrier_ = votes_ = 0;
        random_ = mix_bits(launch_.seed ^ mix_bits(number));
        if (launch_.order == Order::random) std::iota(order_.begin(), order_.end(), 0u);
        shuffle_order();
        // Sweeps: the ready threads run in order, each until it waits or returns, switching directly
        // from one to the next; threads made ready behind the sweep run in the next one.
        while (running_ > 0) {
            cursor_ = 0;
            ran_ = false;
            switch_to_next(scheduler_);
            if (launch_.failed.load(std::memory_order_relaxed)) return false;
            if (at_barrier_ > 0 && at_barrier_ == running_) {
                open_barrier();
            } else if (!ran_) {
                launch_.report(deadlock_report());
                return false;
            }
        }
        return true;
    }

    void* dynamic_shared() { return state_.dynamic_shared; }

    // -- called on a fiber, through the gt_emu_* functions

    unsigned barrier(const char* what, bool predicate, unsigned* arrived, const char* file, unsigned line)
    {
        Fiber& f = *current_;
        note_wait(f, Wait::barrier, what, file, line);
        ++at_barrier_;
        votes_ += predicate;
        yield();
        if (arrived) *arrived = barrier_arrived_;
        return barrier_votes_;
    }

    unsigned long long warp_op(WarpOp op, const char* what, unsigned mask, unsigned long long value, unsigned arg,
                               int width, int* valid, const char* file, unsigned line)
    {
        Fiber& f = *current_;
        if (!(mask >> f.lane & 1))
            fail(std::string(what) + ": the mask " + hex(mask) + " leaves out the calling lane " + std::to_string(f.lane), file, line);
        if (width < 1 || width > 32 || (width & (width - 1)))
            fail(std::string(what) + ": width must be a power of 2 up to 32, got " + std::to_string(width), file, line);
        note_wait(f, Wait::warp, what, file, line);
        f.mask = mask;
        f.value = value;
        f.arg = arg;
        f.width = width;
        std::vector<WarpGroup>& pending = warps_[f.warp].pending;
        auto group = std::find_if(pending.begin(), pending.end(), [&](const WarpGroup& g) { return g.mask == mask && g.op == op; });
        if (group == pending.end()) group = pending.insert(pending.end(), WarpGroup{mask, op, 0});
        group->arrived |= 1u << f.lane;
        complete_warp_groups(f.warp);
        yield();
        if (valid) *valid = f.result_valid;
        return f.result;
    }

    unsigned active_mask() const { return warps_[current_->warp].running; }

    [[noreturn]] void fail(const std::string& message, const char* file, unsigned line)
    {
        launch_.report(std::string(file) + ":" + std::to_string(line) + ": " + message + " (kernel " + kernel_.name +
                       ", block " + triple(block_index_) + ", thread " + triple(current_->index) + ")");
        yield();  // the launch has failed: this fiber is never resumed
        __builtin_unreachable();
    }

private:
    static void fiber_main()
    {
        BlockRunner& self = *current_runner;
        self.kernel_.run_thread(self.kernel_.bound);
        self.finish();
    }

    // Leaves `from` for the next ready thread of the sweep, or for the scheduler when the sweep is
    // over or the launch failed. `finished` is the stack of a thread that returned: free only once
    // the next thread has its own, as the switch itself still runs on it.
    void switch_to_next(Context& from, char* finished = nullptr)
    {
        while (cursor_ < threads_ && !launch_.failed.load(std::memory_order_relaxed)) {
            Fiber& f = fibers_[order_[cursor_++]];
            if (f.wait != Wait::ready) continue;
            ran_ = true;
            current_ = &f;
            kernel_.enter_thread(f.index);
            if (!f.stack) {
                f.stack = state_.stacks.acquire();
                make_context(f.context, f.stack, fiber_stack_bytes, &BlockRunner::fiber_main);
            }
            if (finished) state_.stacks.release(finished);
            switch_context(from, f.context);
            return;
        }
        if (finished) state_.stacks.release(finished);
        if (&from != &scheduler_) switch_context(from, scheduler_);
    }

    void yield() { switch_to_next(current_->context); }

    [[noreturn]] void finish()
    {
        Fiber& f = *current_;
        f.wait = Wait::done;
        --running_;
        warps_[f.warp].running &= ~(1u << f.lane);
        complete_warp_groups(f.warp);  // they no longer wait for this lane
        char* stack = f.stack;
        f.stack = nullptr;
        switch_to_next(f.context, stack);
        __builtin_unreachable();
    }

    static void note_wait(Fiber& f, Wait wait, const char* what, const char* file, unsigned line)
    {
        f.wait = wait;
        f.what = what;
        f.file = file;
        f.line = line;
    }

    void open_barrier()
    {
        barrier_votes_ = votes_;
        barrier_arrived_ = at_barrier_;
        at_barrier_ = votes_ = 0;
        for (Fiber& f : fibers_)
            if (f.wait == Wait::barrier) f.wait = Wait::ready;
        shuffle_order();
    }

    // A new random order at every block start and barrier; a block's orders depend on its number only.
    void shuffle_order()
    {
        if (launch_.order != Order::random) return;
        for (unsigned i = threads_; i > 1; --i) {
            random_ = mix_bits(random_);
            std::swap(order_[i - 1], order_[random_ % i]);
        }
    }

    void complete_warp_groups(unsigned warp)
    {
        Warp& w = warps_[warp];
        for (size_t i = 0; i < w.pending.size();) {
            const WarpGroup g = w.pending[i];
            if (g.arrived != (g.mask & w.running)) {
                ++i;
                continue;
            }
            w.pending.erase(w.pending.begin() + i);
            complete(warp, g);
        }
    }

    void complete(unsigned warp, const WarpGroup& g)
    {
        Fiber* lanes = &fibers_[warp * lanes_per_warp];
        unsigned votes = 0;
        for (unsigned l = 0; l < lanes_per_warp; ++l)
            if ((g.arrived >> l & 1) && lanes[l].value) votes |= 1u << l;
        for (unsigned l = 0; l < lanes_per_warp; ++l) {
            if (!(g.arrived >> l & 1)) continue;
            Fiber& f = lanes[l];
            f.result_valid = true;
            switch (g.op) {
            case WarpOp::sync: break;
            case WarpOp::ballot: f.result = votes; break;
            case WarpOp::any: f.result = votes != 0; break;
            case WarpOp::all: f.result = votes == g.arrived; break;
            default: {
                const unsigned src = source_lane(g.op, l, f.arg, f.width);
                f.result_valid = g.arrived >> src & 1;  // a lane outside the operation has no value to give
                f.result = f.result_valid ? lanes[src].value : 0;
            }
            }
            f.wait = Wait::ready;
        }
    }

    std::string deadlock_report() const
    {
        std::map<std::string, std::vector<unsigned>> sites;
        for (const Fiber& f : fibers_) {
            if (f.wait == Wait::done) continue;
            const std::string call = std::string(f.what) + (f.wait == Wait::warp ? "(mask " + hex(f.mask) + ")" : "()");
            sites[call + " at " + f.file + ":" + std::to_string(f.line)].push_back(f.linear);
        }
        std::string text = std::string("deadlock in kernel ") + kernel_.name + ", block " + triple(block_index_) + ": " +
                           std::to_string(running_) + " threads have not returned, all wait, and no wait can end:";
        for (const auto& [site, threads] : sites) text += "\n  threads " + ranges(threads) + " wait in " + site;
        if (at_barrier_ > 0)
            text += "\n  (a barrier needs every thread that has not returned: " + std::to_string(at_barrier_) + " of " +
                    std::to_string(running_) + " arrived)";
        return text;
    }

    Launch& launch_;
    WorkerState& state_;
    const gt_emu_kernel& kernel_;
    unsigned threads_;
    std::vector<Fiber>& fibers_;
    std::vector<unsigned>& order_;
    std::vector<Warp>& warps_;
    Context scheduler_;
    Fiber* current_ = nullptr;
    uint3 block_index_{};
    unsigned cursor_ = 0;  // position of the current sweep in order_
    bool ran_ = false;     // whether the current sweep ran any thread
    unsigned running_ = 0, at_barrier_ = 0, votes_ = 0, barrier_votes_ = 0, barrier_arrived_ = 0;
    unsigned long long random_ = 0;
};

inline std::string configure(Launch& launch)
{
    const dim3 g = launch.grid, b = launch.block;
    const unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
    if (b.x == 0 || b.y == 0 || b.z == 0 || b.x > 1024 || b.y > 1024 || b.z > 64 || threads > max_block_threads)
        return "invalid block " + triple(b) + " of " + std::to_string(threads) +
               " threads: CUDA allows at most 1024 threads per block (x, y <= 1024, z <= 64)";
    if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 2147483647u || g.y > 65535 || g.z > 65535)
        return "invalid grid " + triple(g) + ": CUDA allows 1..2^31-1 blocks in x, 1..65535 in y and z";
    if (launch.dynamic_shared > max_dynamic_shared_bytes)
        return std::to_string(launch.dynamic_shared) + " bytes of dynamic shared memory requested; CUDA allows " +
               std::to_string(max_dynamic_shared_bytes) + " unless the kernel opts in";
    const char* order = std::getenv("GPUTRACE_EMULATE_ORDER");
    const std::string order_text = order ? order : "";
    if (order_text.empty() || order_text == "forward") {
        launch.order = Order::forward;
    } else if (order_text == "reverse") {
        launch.order = Order::reverse;
    } else if (order_text == "random" || order_text.rfind("random:", 0) == 0) {
        char* end = nullptr;
        launch.order = Order::random;
        launch.seed = order_text.size() > 7 ? std::strtoull(order_text.c_str() + 7, &end, 10) : 0;
        if (end && *end) return "GPUTRACE_EMULATE_ORDER=random:SEED needs a number, got '" + order_text + "'";
    } else {
        return "GPUTRACE_EMULATE_ORDER must be forward, reverse, random or random:SEED, got '" + order_text + "'";
    }
    const char* workers = std::getenv("GPUTRACE_EMULATE_THREADS");
    char* end = nullptr;
    const unsigned long requested = workers && *workers ? std::strtoul(workers, &end, 10) : 0;
    if (end && *end) return std::string("GPUTRACE_EMULATE_THREADS must be a number of threads, got '") + workers + "'";
    static const unsigned cores = std::max(1u, std::thread::hardware_concurrency());  // reads /sys: once
    const unsigned long long wanted = requested ? requested : cores;
    launch.workers = (unsigned)std::min(wanted, (unsigned long long)g.x * g.y * g.z);
    return "";
}

inline thread_local std::unique_ptr<WorkerState> worker_state;

// Takes blocks until none are left or the launch failed.
inline void work(Launch& launch)
{
    try {
        if (!worker_state) worker_state = std::make_unique<WorkerState>();
        BlockRunner runner(launch, *worker_state);
        const unsigned long long blocks = (unsigned long long)launch.grid.x * launch.grid.y * launch.grid.z;
        while (!launch.failed.load(std::memory_order_relaxed)) {
            const unsigned long long number = launch.next_block.fetch_add(1, std::memory_order_relaxed);
            if (number >= blocks || !runner.run(number)) break;
        }
    } catch (const std::exception& error) {
        launch.report(std::string("emulator error: ") + error.what());
    }
}

// Helper threads that live as long as the process; the launching thread works too. Launches from
// several threads take turns.
class WorkerPool {
public:
    const pid_t pid = getpid();

    void run(Launch& launch)
    {
        std::lock_guard<std::mutex> turn(launch_mutex_);
        const unsigned helpers = launch.workers - 1;
        while (threads_.size() < helpers) {
            const unsigned id = (unsigned)threads_.size();
            threads_.emplace_back([this, id] { serve(id); });
        }
        {
            std::lock_guard<std::mutex> lock(mutex_);
            launch_ = &launch;
            helpers_ = helpers;
            busy_ = helpers;
            ++generation_;
        }
        wake_.notify_all();
        work(launch);
        std::unique_lock<std::mutex> lock(mutex_);
        done_.wait(lock, [&] { return busy_ == 0; });
        launch_ = nullptr;
    }

    // The pool of this process; a forked child starts its own, as it has none of the parent's threads.
    static WorkerPool& instance()
    {
        static std::atomic<WorkerPool*> current{nullptr};
        WorkerPool* pool = current.load();
        if (pool == nullptr || pool->pid != getpid()) {
            auto* fresh = new WorkerPool;  // never deleted: its threads run until the process exits
            pool = current.compare_exchange_strong(pool, fresh) ? fresh : (delete fresh, current.load());
        }
        return *pool;
    }

private:
    void serve(unsigned id)
    {
        unsigned long long seen = 0;
        for (;;) {
            Launch* launch;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return generation_ != seen && id < helpers_; });
                seen = generation_;
                launch = launch_;
            }
            work(*launch);
            std::lock_guard<std::mutex> lock(mutex_);
            if (--busy_ == 0) done_.notify_one();
        }
    }

    std::mutex launch_mutex_, mutex_;
    std::condition_variable wake_, done_;
    std::vector<std::thread> threads_;
    Launch* launch_ = nullptr;
    unsigned helpers_ = 0, busy_ = 0;
    unsigned long long generation_ = 0;
};

}  // namespace gt_emu

GT_EMU_API int gt_emu_run_grid(const gt_emu_kernel* kernel, dim3 grid, dim3 block, size_t dynamic_shared,
                               char* error, size_t error_size)
{
    gt_emu::Launch launch;
    launch.kernel = kernel;
    launch.grid = grid;
    launch.block = block;
    launch.dynamic_shared = dynamic_shared;
    std::string problem = gt_emu::configure(launch);
    if (problem.empty()) {
        try {
            gt_emu::WorkerPool::instance().run(launch);
        } catch (const std::exception& failure) {  // e.g. no thread could be started
            launch.report(std::string("emulator error: ") + failure.what());
        }
        problem = launch.error;
    }
    if (problem.empty()) return 0;
    if (error_size > 0) {
        const size_t n = std::min(problem.size(), error_size - 1);
        std::memcpy(error, problem.data(), n);
        error[n] = '\0';
    }
    return 1;
}

GT_EMU_API unsigned gt_emu_barrier(const char* what, int predicate, unsigned* arrived, const char* file, unsigned line)
{
    return gt_emu::current_runner->barrier(what, predicate != 0, arrived, file, line);
}

GT_EMU_API unsigned long long gt_emu_warp_op(int op, const char* what, unsigned mask, unsigned long long value,
                                             unsigned arg, int width, int* valid, const char* file, unsigned line)
{
    return gt_emu::current_runner->warp_op((gt_emu::WarpOp)op, what, mask, value, arg, width, valid, file, line);
}

GT_EMU_API unsigned gt_emu_active_mask() { return gt_emu::current_runner->active_mask(); }

GT_EMU_API void* gt_emu_dynamic_shared() { return gt_emu::current_runner->dynamic_shared(); }

GT_EMU_API void gt_emu_fail(const char* message, const char* file, unsigned line)
{
    gt_emu::current_runner->fail(message, file, line);
}
#endif  // GT_EMU_RUNTIME
