// gputrace row kernel: each block reduces whole rows (the reduced axes), grid-stride over rows.
// ${name}: ${summary}
// Phases: one loop over the row per reduction, then one loop that writes the elementwise outputs.
// Filled in by gputrace/codegen/reduction.py; placeholders are $$-prefixed names in braces.
#include "gputrace_reduce.cuh"

extern "C" __global__ void ${name}(${params})
{
    typedef ${index_t} index_t;
${shared}
    for (index_t row = blockIdx.x; row < rows; row += gridDim.x) {
${row_setup}
${row_body}
    }
}
