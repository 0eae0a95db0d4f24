// gputrace elementwise kernel: grid-stride loop over the output elements.
// ${name}: ${summary}
// Filled in by gputrace/codegen/elementwise.py; placeholders are $$-prefixed names in braces.
//
// Operands read contiguously over the whole iteration space, and the outputs, move W elements
// per aligned vector access when every such pointer is aligned (16-byte loads for float32);
// the scalar loop does the remaining elements, or all of them when a pointer is not aligned.
// A thread loads U vectors, a grid stride apart, before it computes any: where few operands are
// read, that keeps enough bytes in flight per SM to cover the memory latency.
#include "gputrace_kernel.cuh"

extern "C" __global__ void ${name}(${params})
{
    typedef ${index_t} index_t;
    constexpr int W = ${vector_width};
    constexpr int U = ${vectors_per_thread};
    const index_t stride = (index_t)blockDim.x * gridDim.x;
    const index_t first = (index_t)blockIdx.x * blockDim.x + threadIdx.x;
    index_t tail = 0;
    if (W > 1 && ${vectors_aligned}) {
        const index_t vectors = n / W;
        for (index_t v0 = first; v0 < vectors; v0 += stride * U) {
${vector_loads}
#pragma unroll
            for (int u = 0; u < U; ++u) {
                const index_t v = v0 + u * stride;
                if (v >= vectors) break;
${vector_outputs}
#pragma unroll
                for (int lane = 0; lane < W; ++lane) {
                    const index_t i = v * W + lane;
                    (void)i;  // read only by operands that are not contiguous
${vector_element}
                }
${vector_stores}
            }
        }
        tail = vectors * W;
    }
    for (index_t i = tail + first; i < n; i += stride) {
${element}
    }
}
