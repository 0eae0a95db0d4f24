// NumPy-exact scalar operations for gputrace kernels, compiled by NVRTC and by the host compiler alike.
//
// gt_<ufunc>(...) takes its operands already cast to the ufunc's loop type (np.<ufunc>.resolve_dtypes)
// and returns the loop's output type. Each function exists only for the loops NumPy has (a call with
// any other type does not compile); float16 is computed as float and rounded with gt_round_half.
// Kinds: b = bool, i = int8..int64, u = uint8..uint64, f = float, double.
//
//   function                    kinds   NumPy behaviour kept / choice where NumPy is undefined or raises
//   add multiply                b i u f bool: logical or / and; integers wrap modulo 2^n
//   subtract negative square    i u f   integers wrap (negative of unsigned, -MIN == MIN, MIN*MIN ...)
//   positive                    i u f
//   true_divide                 f       integer inputs resolve to a float loop
//   floor_divide remainder      i u f   ints: Python's floor rules; x // 0 == x % 0 == 0 (NumPy warns);
//                                       MIN // -1 == MIN, MIN % -1 == 0 (never traps).
//                                       floats: NumPy's npy_divmod (signed zeros, x % inf, inf % x, b == 0)
//   fmod                        i u f   ints: C's truncating %, x fmod 0 == 0, MIN fmod -1 == 0; floats: fmod
//   power                       i u f   ints: squaring, wraps; negative exponent (NumPy raises
//                                       "Integers to negative integer powers are not allowed") gives 0
//   absolute                    b i u f abs(MIN) == MIN; floats clear the sign bit
//   sign                        i u f   -1/0/1; sign(-0.0) == +0.0; sign(NaN) == NaN
//   reciprocal                  i u f   ints: (T)(1.0 / x) as NumPy computes it: 1 -> 1, -1 -> -1, other
//                                       nonzero -> 0; x == 0 gives the cast of inf below (MIN for
//                                       int32/int64, 0 otherwise: x86 NumPy's values)
//   exp exp2 expm1 log log2 log10 log1p sqrt cbrt sin cos tan arcsin arccos arctan sinh cosh tanh
//   arcsinh arccosh arctanh     f       the C math library (CUDA's on the GPU: a few ulp, see below)
//   arctan2 hypot               f       atan2, hypot
//   copysign                    f       sign bit copied, NaNs included
//   logaddexp logaddexp2        f       npy_logaddexp: x == y gives x + log(2) (x + 1), NaN propagates
//   heaviside                   f       NaN -> NaN, 0 -> h0, <0 -> 0, >0 -> 1
//   deg2rad rad2deg             f       x * (pi / 180), the constant rounded as NumPy's npy_deg2rad[f]
//   floor ceil trunc            b i u f identity on bool and integers
//   rint                        f       round half to even
//   maximum minimum             b i u f NaN in either operand propagates; equal operands (-0.0 vs +0.0)
//                                       give the second one, as x86 NumPy's float32/float64 loops do
//                                       (NumPy's float16 loop gives the first: the renderer swaps the operands)
//   fmax fmin                   b i u f NaN ignored unless both are; ties (+-0) give the second
//                                       (NumPy's own result there depends on array length and stride)
//   equal ... greater_equal     b i u f also int64 vs uint64 (NumPy's qQ/Qq loops), compared exactly
//   logical_and/or/xor/not      b i u f x != 0, so NaN is true
//   bitwise_and/or/xor invert   b i u   bool: logical
//   left_shift right_shift      i u     shift >= width or negative: << gives 0, >> gives 0 or -1 by sign
//   isnan isinf isfinite        b i u f false, false, true on bool and integers
//   signbit                     f       the sign bit, so signbit(-NaN) is true
//   gt_where(c, a, b)           any     c ? a : b
//   gt_clip(x, lo, hi)          b i u f np.clip: max with lo, then min with hi (lo > hi gives hi); a NaN
//                                       in x, lo or hi gives NaN; ties return x (NumPy's result with
//                                       scalar bounds; with array bounds NumPy returns the bound)
//   gt_cast<To>(x)              any     astype (unsafe casting): to bool x != 0 (NaN is true); from bool
//                                       0/1; int -> int wraps; float -> int truncates toward zero.
//                                       Undefined in NumPy (NaN, inf, out of range): what a scalar
//                                       C cast compiles to with gcc on x86-64, which is x86 NumPy's
//                                       result for every target but uint32 (NumPy's own uint32 result
//                                       depends on the array length: SIMD body or scalar tail). The
//                                       value goes through int32 (int64 for int64 and uint32), NaN and
//                                       out-of-range values giving that type's MIN, and is then wrapped
//                                       (so -1.0 -> uint8 is 255, 300.0 -> int8 is 44, NaN -> int32 is
//                                       MIN, NaN -> int8 is 0); uint64 takes [2^63, 2^64) exactly and
//                                       gives 0 above, 2^63 for NaN and below -2^63. Never UB or a trap.
//   gt_round_half(float|double) round to float16 (nearest even) and back; double rounds once (gputrace_half.cuh)
//   gt_load_half / gt_store_half                                                        (gputrace_half.cuh)
//
// Transcendentals are the platform's libm on the host and CUDA's math library on the GPU; neither is
// bit-exact with NumPy (whose float32 exp/log/sin/cos and, on AVX-512 machines, many float64 functions
// are its own SIMD code), but all are within a few ulp (tests/codegen/test_ops_header.py measures).
// Everything else is bit-exact with NumPy, except NaN payloads and signs of NaN.
#pragma once
#ifdef __CUDACC_RTC__
typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef short int16_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long long int64_t;
typedef unsigned long long uint64_t;
#else
#include <cmath>
#include <cstdint>
#endif
// float16 (gt_round_half, gt_load_half, gt_store_half) is in gputrace_half.cuh: cuda_fp16.h costs a float32
// kernel's NVRTC compile about a sixth of its time, so only kernels that use __half include it.

// Functions are static too, so the header stays linkable when the host build defines __forceinline__ empty.
#define GT_FN static __device__ __forceinline__

// -- type kinds: enums, not static members, so that NVRTC emits no globals for them
enum { GT_B = 1, GT_I = 2, GT_U = 4, GT_F = 8, GT_INT = GT_I | GT_U, GT_ALL = GT_B | GT_I | GT_U | GT_F };
template <class T> struct gt_kind {
    enum : int {
        is_bool = (T)2 == (T)1,
        is_float = !is_bool && (T)0.5 != (T)0,
        is_signed = !is_bool && !is_float && (T)-1 < (T)0,
        value = is_bool ? GT_B : is_float ? GT_F : is_signed ? GT_I : GT_U,
        bits = 8 * (int)sizeof(T),
    };
};
template <bool C, class R> struct gt_enable {};
template <class R> struct gt_enable<true, R> { typedef R type; };
// gt_if<T, kinds, R>: R when T is one of the kinds, else the overload does not exist.
template <class T, int Kinds, class R = T>
using gt_if = typename gt_enable<(gt_kind<T>::value & Kinds) != 0, R>::type;

template <int Bytes> struct gt_uint_of;
template <> struct gt_uint_of<1> { typedef uint8_t type; typedef int8_t signed_type; };
template <> struct gt_uint_of<2> { typedef uint16_t type; typedef int16_t signed_type; };
template <> struct gt_uint_of<4> { typedef uint32_t type; typedef int32_t signed_type; };
template <> struct gt_uint_of<8> { typedef uint64_t type; typedef int64_t signed_type; };
// Integer arithmetic is done in an unsigned type at least as wide as unsigned int: wraps, never UB
// (uint16 * uint16 would promote to a signed int and overflow).
template <class T> using gt_wide = typename gt_uint_of<(sizeof(T) < 4 ? 4 : sizeof(T))>::type;
template <class T> using gt_bits_t = typename gt_uint_of<sizeof(T)>::type;

// -- float bits
#if defined(__CUDA_ARCH__) || defined(__CUDACC_RTC__)
GT_FN uint32_t gt_to_bits(float x) { return __float_as_uint(x); }
GT_FN uint64_t gt_to_bits(double x) { return (uint64_t)__double_as_longlong(x); }
GT_FN float gt_from_bits(uint32_t b) { return __uint_as_float(b); }
GT_FN double gt_from_bits(uint64_t b) { return __longlong_as_double((long long)b); }
#else
GT_FN uint32_t gt_to_bits(float x) { return __builtin_bit_cast(uint32_t, x); }
GT_FN uint64_t gt_to_bits(double x) { return __builtin_bit_cast(uint64_t, x); }
GT_FN float gt_from_bits(uint32_t b) { return __builtin_bit_cast(float, b); }
GT_FN double gt_from_bits(uint64_t b) { return __builtin_bit_cast(double, b); }
#endif
template <class T> GT_FN T gt_inf() { return gt_from_bits((gt_bits_t<T>)((gt_bits_t<T>)(sizeof(T) == 4 ? 0xffu : 0x7ffu) << (sizeof(T) == 4 ? 23 : 52))); }
template <class T> GT_FN gt_bits_t<T> gt_sign_mask() { return (gt_bits_t<T>)1 << (8 * sizeof(T) - 1); }

// -- casts, as astype (unsafe casting); see the table for float -> int out of range
// What a scalar C cast compiles to with gcc on x86-64: through int32 (int64 for int64 and uint32 targets)
// with "integer indefinite" (MIN) for NaN and out-of-range values, then wrapped to the target; uint64
// takes [2^63, 2^64) exactly and maps larger values and +inf to 0.
template <class To, class From>
GT_FN To gt_float_to_int(From x)
{
    constexpr int bits = 8 * (int)sizeof(To);
    constexpr int wide = (bits == 64 || (bits == 32 && !gt_kind<To>::is_signed)) ? 64 : 32;
    typedef typename gt_uint_of<wide / 8>::signed_type I;
    typedef typename gt_uint_of<wide / 8>::type U;
    const U top = (U)1 << (wide - 1);
    const From lim = (From)top;  // 2^31 or 2^63, exact in float and double
    if constexpr (bits == 64 && !gt_kind<To>::is_signed) {
        if (x >= lim) {
            const From t = x - lim;  // exact
            return t < lim ? (To)((U)(I)t ^ top) : (To)0;
        }
    }
    const I i = (x >= -lim && x < lim) ? (I)x : (I)top;  // NaN fails both tests
    return (To)(U)i;
}

template <class To, class From>
GT_FN To gt_cast(From x)
{
    if constexpr (gt_kind<To>::is_bool) return x != (From)0;
    else if constexpr (gt_kind<From>::is_float && !gt_kind<To>::is_float) return gt_float_to_int<To>(x);
    else return (To)x;
}

// -- arithmetic
template <class T> GT_FN gt_if<T, GT_ALL> gt_add(T a, T b)
{
    if constexpr (gt_kind<T>::is_bool) return a || b;
    else if constexpr (gt_kind<T>::is_float) return a + b;
    else return (T)((gt_wide<T>)a + (gt_wide<T>)b);
}
template <class T> GT_FN gt_if<T, GT_INT | GT_F> gt_subtract(T a, T b)
{
    if constexpr (gt_kind<T>::is_float) return a - b;
    else return (T)((gt_wide<T>)a - (gt_wide<T>)b);
}
template <class T> GT_FN gt_if<T, GT_ALL> gt_multiply(T a, T b)
{
    if constexpr (gt_kind<T>::is_bool) return a && b;
    else if constexpr (gt_kind<T>::is_float) return a * b;
    else return (T)((gt_wide<T>)a * (gt_wide<T>)b);
}
template <class T> GT_FN gt_if<T, GT_F> gt_true_divide(T a, T b) { return a / b; }
template <class T> GT_FN gt_if<T, GT_INT | GT_F> gt_negative(T a)
{
    if constexpr (gt_kind<T>::is_float) return -a;
    else return (T)((gt_wide<T>)0 - (gt_wide<T>)a);
}
template <class T> GT_FN gt_if<T, GT_INT | GT_F> gt_positive(T a) { return a; }
template <class T> GT_FN gt_if<T, GT_INT | GT_F> gt_square(T a) { return gt_multiply(a, a); }
template <class T> GT_FN gt_if<T, GT_ALL> gt_absolute(T a)
{
    if constexpr (gt_kind<T>::is_float) return gt_from_bits((gt_bits_t<T>)(gt_to_bits(a) & ~gt_sign_mask<T>()));
    else if constexpr (gt_kind<T>::is_signed) return a < 0 ? gt_negative(a) : a;
    else return a;
}
template <class T> GT_FN gt_if<T, GT_INT | GT_F> gt_sign(T a)
{
    if constexpr (gt_kind<T>::is_float) return a > 0 ? (T)1 : (a < 0 ? (T)-1 : (a == 0 ? (T)0 : a));
    else return (T)((a > 0) - (a < 0));
}
template <class T> GT_FN gt_if<T, GT_INT | GT_F> gt_reciprocal(T a)
{
    if constexpr (gt_kind<T>::is_float) return (T)1 / a;
    else {
        if (a == 0) return gt_cast<T>(gt_inf<double>());
        if (a == 1) return (T)1;
        if constexpr (gt_kind<T>::is_signed) { if (a == (T)-1) return (T)-1; }
        return (T)0;
    }
}

template <class T> GT_FN gt_if<T, GT_INT | GT_F> gt_fmod(T a, T b)
{
    if constexpr (gt_kind<T>::is_float) { if constexpr (sizeof(T) == 4) return fmodf(a, b); else return fmod(a, b); }
    else {
        if (b == 0) return (T)0;
        if constexpr (gt_kind<T>::is_signed) { if (b == (T)-1) return (T)0; }  // MIN % -1 traps on x86
        return (T)(a % b);
    }
}
template <class T> GT_FN gt_if<T, GT_F> gt_copysign(T a, T b)
{
    return gt_from_bits((gt_bits_t<T>)((gt_to_bits(a) & ~gt_sign_mask<T>()) | (gt_to_bits(b) & gt_sign_mask<T>())));
}
// floor, ceil, trunc: integers and bool pass through.
template <class T> GT_FN gt_if<T, GT_ALL> gt_floor(T a)
{
    if constexpr (!gt_kind<T>::is_float) return a;
    else if constexpr (sizeof(T) == 4) return floorf(a);
    else return floor(a);
}
template <class T> GT_FN gt_if<T, GT_ALL> gt_ceil(T a)
{
    if constexpr (!gt_kind<T>::is_float) return a;
    else if constexpr (sizeof(T) == 4) return ceilf(a);
    else return ceil(a);
}
template <class T> GT_FN gt_if<T, GT_ALL> gt_trunc(T a)
{
    if constexpr (!gt_kind<T>::is_float) return a;
    else if constexpr (sizeof(T) == 4) return truncf(a);
    else return trunc(a);
}

// NumPy's npy_divmod: floor quotient and Python-style modulus of floats (b != 0).
template <class T> GT_FN T gt_float_divmod(T a, T b, T* modulus)
{
    T mod = gt_fmod(a, b);
    T div = (a - mod) / b;
    if (mod != 0) {
        if ((b < 0) != (mod < 0)) { mod += b; div -= (T)1; }
    } else {
        mod = gt_copysign((T)0, b);
    }
    T floordiv;
    if (div != 0) {
        floordiv = gt_floor(div);
        if (div - floordiv > (T)0.5) floordiv += (T)1;
    } else {
        floordiv = gt_copysign((T)0, a / b);
    }
    *modulus = mod;
    return floordiv;
}
template <class T> GT_FN gt_if<T, GT_INT | GT_F> gt_floor_divide(T a, T b)
{
    if constexpr (gt_kind<T>::is_float) {
        if (b == 0) return a / b;
        T mod;
        return gt_float_divmod(a, b, &mod);
    } else {
        if (b == 0) return (T)0;
        if constexpr (gt_kind<T>::is_signed) {
            if (b == (T)-1) return gt_negative(a);  // MIN // -1 == MIN, no trap
            T q = (T)(a / b);
            if ((T)(a % b) != 0 && ((a < 0) != (b < 0))) q = (T)(q - 1);
            return q;
        } else return (T)(a / b);
    }
}
template <class T> GT_FN gt_if<T, GT_INT | GT_F> gt_remainder(T a, T b)
{
    if constexpr (gt_kind<T>::is_float) {
        if (b == 0) return gt_fmod(a, b);
        T mod;
        gt_float_divmod(a, b, &mod);
        return mod;
    } else {
        if (b == 0) return (T)0;
        if constexpr (gt_kind<T>::is_signed) {
            if (b == (T)-1) return (T)0;
            T r = (T)(a % b);
            if (r != 0 && ((r < 0) != (b < 0))) r = (T)(r + b);
            return r;
        } else return (T)(a % b);
    }
}
template <class T> GT_FN gt_if<T, GT_INT | GT_F> gt_power(T a, T b)
{
    if constexpr (gt_kind<T>::is_float) {
        if constexpr (sizeof(T) == 4) {
            // x**3 and x**4 (GELU's cube) as products in double: exact to 2^-52, so correctly rounded to
            // float but for double rounding (~1 in 2^28), where powf costs ~10x as many instructions.
            // The exponent is a constant of the kernel: the compiler keeps one branch.
            if (b == 3.0f) { const double x = a; return (float)(x * x * x); }
            if (b == 4.0f) { const double x2 = (double)a * a; return (float)(x2 * x2); }
            return powf(a, b);
        }
        else return pow(a, b);
    }
    else {
        if constexpr (gt_kind<T>::is_signed) { if (b < 0) return (T)0; }  // NumPy raises
        gt_wide<T> base = (gt_wide<T>)a, result = 1;
        for (gt_bits_t<T> e = (gt_bits_t<T>)b; e != 0; e >>= 1) {
            if (e & 1) result *= base;
            base *= base;
        }
        return (T)result;
    }
}

// -- float functions: the C math library's float and double versions
#define GT_MATH1(name, f32, f64) \
    template <class T> GT_FN gt_if<T, GT_F> gt_##name(T a) { if constexpr (sizeof(T) == 4) return f32(a); else return f64(a); }
GT_MATH1(exp, expf, exp) GT_MATH1(exp2, exp2f, exp2) GT_MATH1(expm1, expm1f, expm1)
GT_MATH1(log, logf, log) GT_MATH1(log2, log2f, log2) GT_MATH1(log10, log10f, log10)
GT_MATH1(log1p, log1pf, log1p) GT_MATH1(sqrt, sqrtf, sqrt) GT_MATH1(cbrt, cbrtf, cbrt)
GT_MATH1(sin, sinf, sin) GT_MATH1(cos, cosf, cos) GT_MATH1(tan, tanf, tan)
GT_MATH1(arcsin, asinf, asin) GT_MATH1(arccos, acosf, acos) GT_MATH1(arctan, atanf, atan)
GT_MATH1(sinh, sinhf, sinh) GT_MATH1(cosh, coshf, cosh) GT_MATH1(tanh, tanhf, tanh)
GT_MATH1(arcsinh, asinhf, asinh) GT_MATH1(arccosh, acoshf, acosh) GT_MATH1(arctanh, atanhf, atanh)
GT_MATH1(rint, rintf, rint)
#undef GT_MATH1
template <class T> GT_FN gt_if<T, GT_F> gt_arctan2(T a, T b) { if constexpr (sizeof(T) == 4) return atan2f(a, b); else return atan2(a, b); }
template <class T> GT_FN gt_if<T, GT_F> gt_hypot(T a, T b)
{
    const T r = sizeof(T) == 4 ? hypotf(a, b) : hypot(a, b);
#ifdef __CUDACC_RTC__
    // CUDA's double hypot overflows to inf for finite results near DBL_MAX (hypot(1, DBL_MAX)); rescale.
    if (r - r != 0 && a - a == 0 && b - b == 0) {
        const T big = fmax(fabs(a), fabs(b)), small = fmin(fabs(a), fabs(b)), q = small / big;  // both finite
        return big * sqrt((T)1 + q * q);
    }
#endif
    return r;
}

// NPY_PI/180 is rounded in T, as NumPy's npy_deg2rad[f] does.
template <class T> GT_FN gt_if<T, GT_F> gt_deg2rad(T a) { return a * ((T)3.141592653589793238462643383279502884 / (T)180); }
template <class T> GT_FN gt_if<T, GT_F> gt_rad2deg(T a) { return a * ((T)180 / (T)3.141592653589793238462643383279502884); }
template <class T> GT_FN gt_if<T, GT_F> gt_heaviside(T x, T h0)
{
    if (x != x) return x;
    if (x == 0) return h0;
    return x < 0 ? (T)0 : (T)1;
}
template <class T> GT_FN gt_if<T, GT_F> gt_logaddexp(T a, T b)
{
    if (a == b) return a + (T)0.693147180559945309417232121458176568;  // also inf + inf without NaN
    const T d = a - b;
    if (d > 0) return a + gt_log1p(gt_exp(-d));
    if (d <= 0) return b + gt_log1p(gt_exp(d));
    return d;  // NaN
}
template <class T> GT_FN gt_if<T, GT_F> gt_logaddexp2(T a, T b)
{
    const T log2e = (T)1.442695040888963407359924681001892137;
    if (a == b) return a + (T)1;
    const T d = a - b;
    if (d > 0) return a + log2e * gt_log1p(gt_exp2(-d));
    if (d <= 0) return b + log2e * gt_log1p(gt_exp2(d));
    return d;
}

// -- maximum/minimum propagate NaN; fmax/fmin skip it. Ties give the second operand.
template <class T> GT_FN gt_if<T, GT_ALL> gt_maximum(T a, T b)
{
    if constexpr (gt_kind<T>::is_float) return (a > b || a != a) ? a : b;
    else return a > b ? a : b;
}
template <class T> GT_FN gt_if<T, GT_ALL> gt_minimum(T a, T b)
{
    if constexpr (gt_kind<T>::is_float) return (a < b || a != a) ? a : b;
    else return a < b ? a : b;
}
template <class T> GT_FN gt_if<T, GT_ALL> gt_fmax(T a, T b)
{
    if constexpr (gt_kind<T>::is_float) return (a > b || b != b) ? a : b;
    else return a > b ? a : b;
}
template <class T> GT_FN gt_if<T, GT_ALL> gt_fmin(T a, T b)
{
    if constexpr (gt_kind<T>::is_float) return (a < b || b != b) ? a : b;
    else return a < b ? a : b;
}
template <class T> GT_FN gt_if<T, GT_ALL> gt_clip(T x, T lo, T hi)
{
    if constexpr (gt_kind<T>::is_float) {
        if (x != x) return x;
        if (lo != lo) return lo;
        if (hi != hi) return hi;
    }
    const T m = x < lo ? lo : x;
    return m > hi ? hi : m;
}
template <class T> GT_FN T gt_where(bool c, T a, T b) { return c ? a : b; }

// -- comparisons, also NumPy's exact int64/uint64 loops
template <class T> GT_FN gt_if<T, GT_ALL, bool> gt_equal(T a, T b) { return a == b; }
template <class T> GT_FN gt_if<T, GT_ALL, bool> gt_not_equal(T a, T b) { return a != b; }
template <class T> GT_FN gt_if<T, GT_ALL, bool> gt_less(T a, T b) { return a < b; }
template <class T> GT_FN gt_if<T, GT_ALL, bool> gt_less_equal(T a, T b) { return a <= b; }
template <class T> GT_FN gt_if<T, GT_ALL, bool> gt_greater(T a, T b) { return a > b; }
template <class T> GT_FN gt_if<T, GT_ALL, bool> gt_greater_equal(T a, T b) { return a >= b; }
GT_FN bool gt_equal(int64_t a, uint64_t b) { return a >= 0 && (uint64_t)a == b; }
GT_FN bool gt_equal(uint64_t a, int64_t b) { return gt_equal(b, a); }
GT_FN bool gt_not_equal(int64_t a, uint64_t b) { return !gt_equal(a, b); }
GT_FN bool gt_not_equal(uint64_t a, int64_t b) { return !gt_equal(b, a); }
GT_FN bool gt_less(int64_t a, uint64_t b) { return a < 0 || (uint64_t)a < b; }
GT_FN bool gt_less(uint64_t a, int64_t b) { return b >= 0 && a < (uint64_t)b; }
GT_FN bool gt_less_equal(int64_t a, uint64_t b) { return !gt_less(b, a); }
GT_FN bool gt_less_equal(uint64_t a, int64_t b) { return !gt_less(b, a); }
GT_FN bool gt_greater(int64_t a, uint64_t b) { return gt_less(b, a); }
GT_FN bool gt_greater(uint64_t a, int64_t b) { return gt_less(b, a); }
GT_FN bool gt_greater_equal(int64_t a, uint64_t b) { return !gt_less(a, b); }
GT_FN bool gt_greater_equal(uint64_t a, int64_t b) { return !gt_less(a, b); }

// -- logic and bits
template <class T> GT_FN gt_if<T, GT_ALL, bool> gt_logical_and(T a, T b) { return a != (T)0 && b != (T)0; }
template <class T> GT_FN gt_if<T, GT_ALL, bool> gt_logical_or(T a, T b) { return a != (T)0 || b != (T)0; }
template <class T> GT_FN gt_if<T, GT_ALL, bool> gt_logical_xor(T a, T b) { return (a != (T)0) != (b != (T)0); }
template <class T> GT_FN gt_if<T, GT_ALL, bool> gt_logical_not(T a) { return a == (T)0; }
template <class T> GT_FN gt_if<T, GT_B | GT_INT> gt_bitwise_and(T a, T b) { return (T)(a & b); }
template <class T> GT_FN gt_if<T, GT_B | GT_INT> gt_bitwise_or(T a, T b) { return (T)(a | b); }
template <class T> GT_FN gt_if<T, GT_B | GT_INT> gt_bitwise_xor(T a, T b) { return (T)(a ^ b); }
template <class T> GT_FN gt_if<T, GT_B | GT_INT> gt_invert(T a)
{
    if constexpr (gt_kind<T>::is_bool) return !a;
    else return (T)~(gt_wide<T>)a;
}
// A negative shift converts to a huge unsigned one, as in NumPy's npy_lshift/npy_rshift.
template <class T> GT_FN gt_if<T, GT_INT> gt_left_shift(T a, T b)
{
    if ((uint64_t)b >= (uint64_t)(8 * sizeof(T))) return (T)0;
    return (T)((gt_wide<T>)a << b);
}
template <class T> GT_FN gt_if<T, GT_INT> gt_right_shift(T a, T b)
{
    if ((uint64_t)b >= (uint64_t)(8 * sizeof(T))) return a < 0 ? (T)-1 : (T)0;
    return (T)(a >> b);
}

// -- float classification (NumPy also has bool and integer loops for isnan, isinf, isfinite)
template <class T> GT_FN gt_if<T, GT_ALL, bool> gt_isnan(T a)
{
    if constexpr (gt_kind<T>::is_float) return a != a;
    else return false;
}
template <class T> GT_FN gt_if<T, GT_ALL, bool> gt_isinf(T a)
{
    if constexpr (gt_kind<T>::is_float) return (gt_to_bits(a) & ~gt_sign_mask<T>()) == gt_to_bits(gt_inf<T>());
    else return false;
}
template <class T> GT_FN gt_if<T, GT_ALL, bool> gt_isfinite(T a)
{
    if constexpr (gt_kind<T>::is_float) return (gt_to_bits(a) & gt_to_bits(gt_inf<T>())) != gt_to_bits(gt_inf<T>());
    else return true;
}
template <class T> GT_FN gt_if<T, GT_F, bool> gt_signbit(T a) { return (gt_to_bits(a) & gt_sign_mask<T>()) != 0; }
