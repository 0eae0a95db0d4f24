// NumPy-exact scalar operations for gputrace kernels (NVRTC and the host compiler alike).
// gt_<ufunc>(a, b) takes both operands in the ufunc's loop type and returns its result type.
// Choices where NumPy is undefined or raises: integer division or remainder by zero gives 0,
// MIN // -1 gives MIN, integer reciprocal(0) gives MIN, negative integer powers give 0,
// float -> int casts of NaN or out-of-range values give the type's minimum (x86's answer).
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
#include <cuda_fp16.h>

template <class T> struct gt_traits { static constexpr bool is_float = false; static constexpr int bits = 8 * (int)sizeof(T); };
template <> struct gt_traits<float> { static constexpr bool is_float = true; static constexpr int bits = 32; };
template <> struct gt_traits<double> { static constexpr bool is_float = true; static constexpr int bits = 64; };
template <class T> struct gt_unsigned { typedef T type; };
template <> struct gt_unsigned<int8_t> { typedef uint8_t type; };
template <> struct gt_unsigned<int16_t> { typedef uint16_t type; };
template <> struct gt_unsigned<int32_t> { typedef uint32_t type; };
template <> struct gt_unsigned<int64_t> { typedef uint64_t type; };

#define GT_FLOAT(T) gt_traits<T>::is_float
#define GT_BOOL(T) (sizeof(T) == 1 && (T)2 == (T)1)
#define GT_SIGNED(T) ((T)(-1) < (T)0)
#define GT_FN template <class T> __device__ __forceinline__

template <class T> __device__ __forceinline__ T gt_min_of() { return GT_SIGNED(T) ? (T)((typename gt_unsigned<T>::type)1 << (8 * sizeof(T) - 1)) : (T)0; }

// -- arithmetic (integers wrap like NumPy: computed in the unsigned type)
GT_FN T gt_add(T a, T b) { if constexpr (GT_FLOAT(T)) return a + b; else if constexpr (GT_BOOL(T)) return a || b; else return (T)((typename gt_unsigned<T>::type)a + (typename gt_unsigned<T>::type)b); }
GT_FN T gt_subtract(T a, T b) { if constexpr (GT_FLOAT(T)) return a - b; else return (T)((typename gt_unsigned<T>::type)a - (typename gt_unsigned<T>::type)b); }
GT_FN T gt_multiply(T a, T b) { if constexpr (GT_FLOAT(T)) return a * b; else if constexpr (GT_BOOL(T)) return a && b; else return (T)((typename gt_unsigned<T>::type)a * (typename gt_unsigned<T>::type)b); }
GT_FN T gt_true_divide(T a, T b) { return a / b; }
GT_FN T gt_negative(T a) { if constexpr (GT_FLOAT(T)) return -a; else return (T)(0 - (typename gt_unsigned<T>::type)a); }
GT_FN T gt_positive(T a) { return a; }
GT_FN T gt_square(T a) { return gt_multiply(a, a); }
GT_FN T gt_absolute(T a) { if constexpr (GT_FLOAT(T)) return a < 0 ? -a : (a == 0 ? a * a : a); else if constexpr (GT_SIGNED(T)) return a < 0 ? gt_negative(a) : a; else return a; }
GT_FN T gt_sign(T a) { if constexpr (GT_FLOAT(T)) return a > 0 ? (T)1 : (a < 0 ? (T)-1 : (a == 0 ? (T)0 : a)); else if constexpr (GT_SIGNED(T)) return a > 0 ? (T)1 : (a < 0 ? (T)-1 : (T)0); else return a > 0 ? (T)1 : (T)0; }
GT_FN T gt_reciprocal(T a) { if constexpr (GT_FLOAT(T)) return (T)1 / a; else return a == 0 ? gt_min_of<T>() : (T)(1 / a); }

GT_FN T gt_fmod(T a, T b) {
    if constexpr (sizeof(T) == 4 && GT_FLOAT(T)) return fmodf(a, b);
    else if constexpr (GT_FLOAT(T)) return fmod(a, b);
    else { if (b == 0) return 0; if constexpr (GT_SIGNED(T)) { if (b == (T)-1) return 0; } return a % b; }
}

// NumPy's npy_divmod for floats; Python's floor rules for integers.
GT_FN T gt_floor_divide(T a, T b) {
    if constexpr (GT_FLOAT(T)) {
        if (b == 0) return a / b;
        T mod = gt_fmod(a, b);
        T div = (a - mod) / b;
        if (mod != 0 && ((b < 0) != (mod < 0))) div -= (T)1;
        if (div != 0) { T fl = floor(div); if (div - fl > (T)0.5) fl += (T)1; return fl; }
        return copysign((T)0, a / b);
    } else {
        if (b == 0) return 0;
        if constexpr (GT_SIGNED(T)) {
            if (b == (T)-1) return gt_negative(a);
            T q = a / b;
            if ((a % b != 0) && ((a < 0) != (b < 0))) q -= 1;
            return q;
        } else return a / b;
    }
}
GT_FN T gt_remainder(T a, T b) {
    if constexpr (GT_FLOAT(T)) {
        if (b == 0) return gt_fmod(a, b);
        T mod = gt_fmod(a, b);
        if (mod != 0) { if ((b < 0) != (mod < 0)) mod += b; }
        else mod = copysign((T)0, b);
        return mod;
    } else {
        if (b == 0) return 0;
        if constexpr (GT_SIGNED(T)) {
            if (b == (T)-1) return 0;
            T r = a % b;
            if (r != 0 && ((r < 0) != (b < 0))) r += b;
            return r;
        } else return a % b;
    }
}
GT_FN T gt_power(T a, T b) {
    if constexpr (sizeof(T) == 4 && GT_FLOAT(T)) return powf(a, b);
    else if constexpr (GT_FLOAT(T)) return pow(a, b);
    else if constexpr (GT_BOOL(T)) return a || !b;
    else {
        if constexpr (GT_SIGNED(T)) { if (b < 0) return 0; }
        typename gt_unsigned<T>::type base = (typename gt_unsigned<T>::type)a, result = 1;
        for (T e = b; e > 0; e >>= 1) { if (e & 1) result *= base; base *= base; }
        return (T)result;
    }
}

// -- float functions: float and double overloads of the C math library
#define GT_UNARY_MATH(name, f32, f64) \
    __device__ __forceinline__ float gt_##name(float a) { return f32(a); } \
    __device__ __forceinline__ double gt_##name(double a) { return f64(a); }
GT_UNARY_MATH(exp, expf, exp) GT_UNARY_MATH(exp2, exp2f, exp2) GT_UNARY_MATH(expm1, expm1f, expm1)
GT_UNARY_MATH(log, logf, log) GT_UNARY_MATH(log2, log2f, log2) GT_UNARY_MATH(log10, log10f, log10)
GT_UNARY_MATH(log1p, log1pf, log1p) GT_UNARY_MATH(sqrt, sqrtf, sqrt) GT_UNARY_MATH(cbrt, cbrtf, cbrt)
GT_UNARY_MATH(sin, sinf, sin) GT_UNARY_MATH(cos, cosf, cos) GT_UNARY_MATH(tan, tanf, tan)
GT_UNARY_MATH(arcsin, asinf, asin) GT_UNARY_MATH(arccos, acosf, acos) GT_UNARY_MATH(arctan, atanf, atan)
GT_UNARY_MATH(sinh, sinhf, sinh) GT_UNARY_MATH(cosh, coshf, cosh) GT_UNARY_MATH(tanh, tanhf, tanh)
GT_UNARY_MATH(arcsinh, asinhf, asinh) GT_UNARY_MATH(arccosh, acoshf, acosh) GT_UNARY_MATH(arctanh, atanhf, atanh)
#define GT_BINARY_MATH(name, f32, f64) \
    __device__ __forceinline__ float gt_##name(float a, float b) { return f32(a, b); } \
    __device__ __forceinline__ double gt_##name(double a, double b) { return f64(a, b); }
GT_BINARY_MATH(arctan2, atan2f, atan2) GT_BINARY_MATH(hypot, hypotf, hypot) GT_BINARY_MATH(copysign, copysignf, copysign)

GT_FN T gt_floor(T a) { if constexpr (GT_FLOAT(T)) return floor(a); else return a; }
GT_FN T gt_ceil(T a) { if constexpr (GT_FLOAT(T)) return ceil(a); else return a; }
GT_FN T gt_trunc(T a) { if constexpr (GT_FLOAT(T)) return trunc(a); else return a; }
GT_FN T gt_rint(T a) { if constexpr (GT_FLOAT(T)) return rint(a); else return a; }
GT_FN T gt_deg2rad(T a) { return a * (T)(3.14159265358979323846 / 180.0); }
GT_FN T gt_rad2deg(T a) { return a * (T)(180.0 / 3.14159265358979323846); }
GT_FN T gt_heaviside(T a, T h0) { return a < 0 ? (T)0 : (a > 0 ? (T)1 : (a == 0 ? h0 : a)); }
GT_FN T gt_logaddexp(T a, T b) {
    if (a == b) return a + (T)0.693147180559945309417232121458176568;
    const T d = a - b;
    if (d > 0) return a + gt_log1p(gt_exp(-d));
    if (d <= 0) return b + gt_log1p(gt_exp(d));
    return d;
}
GT_FN T gt_logaddexp2(T a, T b) {
    if (a == b) return a + (T)1;
    const T d = a - b;
    if (d > 0) return a + gt_log1p(gt_exp2(-d)) * (T)1.442695040888963407359924681001892137;
    if (d <= 0) return b + gt_log1p(gt_exp2(d)) * (T)1.442695040888963407359924681001892137;
    return d;
}

// -- NaN-propagating maximum/minimum (ties return the second operand, as NumPy does); fmax/fmin skip NaN
GT_FN T gt_maximum(T a, T b) { if constexpr (GT_FLOAT(T)) return (a > b || a != a) ? a : b; else return a > b ? a : b; }
GT_FN T gt_minimum(T a, T b) { if constexpr (GT_FLOAT(T)) return (a < b || a != a) ? a : b; else return a < b ? a : b; }
GT_FN T gt_fmax(T a, T b) { if constexpr (GT_FLOAT(T)) return (a > b || b != b) ? a : b; else return gt_maximum(a, b); }
GT_FN T gt_fmin(T a, T b) { if constexpr (GT_FLOAT(T)) return (a < b || b != b) ? a : b; else return gt_minimum(a, b); }
GT_FN T gt_clip(T x, T lo, T hi) { return gt_minimum(gt_maximum(x, lo), hi); }
GT_FN T gt_where(bool c, T a, T b) { return c ? a : b; }

// -- comparisons, logic, bits
GT_FN bool gt_equal(T a, T b) { return a == b; }
GT_FN bool gt_not_equal(T a, T b) { return a != b; }
GT_FN bool gt_less(T a, T b) { return a < b; }
GT_FN bool gt_less_equal(T a, T b) { return a <= b; }
GT_FN bool gt_greater(T a, T b) { return a > b; }
GT_FN bool gt_greater_equal(T a, T b) { return a >= b; }
GT_FN bool gt_logical_and(T a, T b) { return a != 0 && b != 0; }
GT_FN bool gt_logical_or(T a, T b) { return a != 0 || b != 0; }
GT_FN bool gt_logical_xor(T a, T b) { return (a != 0) != (b != 0); }
GT_FN bool gt_logical_not(T a) { return !(a != 0); }
GT_FN T gt_bitwise_and(T a, T b) { return a & b; }
GT_FN T gt_bitwise_or(T a, T b) { return a | b; }
GT_FN T gt_bitwise_xor(T a, T b) { return a ^ b; }
GT_FN T gt_invert(T a) { if constexpr (GT_BOOL(T)) return !a; else return (T)~a; }
GT_FN T gt_left_shift(T a, T b) {
    if (b < 0 || b >= (T)(8 * sizeof(T))) return 0;
    return (T)((typename gt_unsigned<T>::type)a << b);
}
GT_FN T gt_right_shift(T a, T b) {
    if (b < 0 || b >= (T)(8 * sizeof(T))) return a < 0 ? (T)-1 : (T)0;
    return a >> b;
}
GT_FN bool gt_isnan(T a) { return a != a; }
GT_FN bool gt_isinf(T a) { if constexpr (GT_FLOAT(T)) return a == a && a - a != a - a; else return false; }
GT_FN bool gt_isfinite(T a) { if constexpr (GT_FLOAT(T)) return a - a == a - a; else return true; }
GT_FN bool gt_signbit(T a) { if constexpr (GT_FLOAT(T)) return signbit(a); else return a < 0; }

// -- casts, as NumPy's astype (unsafe casting)
template <class To, class From>
__device__ __forceinline__ To gt_cast(From x)
{
    if constexpr (GT_BOOL(To)) return x != 0;
    else if constexpr (GT_FLOAT(From) && !GT_FLOAT(To)) {
        if (!(x >= (From)-9223372036854775808.0 && x < (From)9223372036854775808.0)) {
            if constexpr (sizeof(To) == 8 && !GT_SIGNED(To)) { if (x >= (From)0 && x < (From)18446744073709551616.0) return (To)x; }
            return gt_min_of<To>() == 0 ? (To)0 : (To)(typename gt_unsigned<To>::type)((uint64_t)1 << 63);
        }
        return (To)(int64_t)x;
    } else return (To)x;
}

// -- float16: values are held as float and rounded to half after every op
__device__ __forceinline__ float gt_round_half(float x) { return __half2float(__float2half_rn(x)); }
__device__ __forceinline__ float gt_load_half(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ void gt_store_half(__half* p, float v) { *p = __float2half_rn(v); }
