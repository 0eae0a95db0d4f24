// Shared prelude of every generated kernel: NumPy-exact scalar ops and literal helpers.
#pragma once
#include "gputrace_ops.cuh"

// Non-finite float literals, bit-exact on NVRTC and on the host compiler.
__device__ __forceinline__ double gt_double_from_bits(unsigned long long bits)
{
    union { unsigned long long u; double d; } pun;
    pun.u = bits;
    return pun.d;
}

// W elements of T moved by one aligned access (ld.global.v4.f32 for float32 with W = 4).
template <class T, int W>
struct alignas(sizeof(T) * W) GtVector {
    T v[W];
};

template <int W, class T>
__device__ __forceinline__ bool gt_vector_aligned(const T* p)
{
    return (unsigned long long)p % (sizeof(T) * W) == 0;
}

// Gathers: an index read from an index array, counted from the end when negative (NumPy's rule for signed
// indices), is in bounds for an axis of n elements. A kernel reads the source element only then; otherwise it
// raises the launch's flag, and the runner raises NumPy's IndexError after the launch.
template <class I>
__device__ __forceinline__ bool gt_index_in_bounds(I raw, long long n, long long& index)
{
    if ((I)-1 < (I)0) {
        const long long q = (long long)raw;
        index = q < 0 ? q + n : q;
        return index >= 0 && index < n;
    }
    index = (long long)raw;
    return (unsigned long long)raw < (unsigned long long)n;
}

__device__ __forceinline__ void gt_flag_bad_index(unsigned int* flag)
{
    atomicOr(flag, 1u);
}
