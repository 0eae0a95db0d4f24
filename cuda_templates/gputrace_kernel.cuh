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
