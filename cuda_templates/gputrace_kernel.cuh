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
