// gputrace elementwise kernel: one thread per output element, grid-stride loop.
// ${name}: ${summary}
// Filled in by gputrace/codegen/elementwise.py; placeholders are $$-prefixed names in braces.
#include "gputrace_ops.cuh"

extern "C" __global__ void ${name}(${params})
{
    typedef ${index_t} index_t;
    const index_t stride = (index_t)blockDim.x * gridDim.x;
    for (index_t i = (index_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
${index_setup}
${loads}
${body}
${stores}
    }
}
