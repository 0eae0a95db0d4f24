// gputrace row kernel: each block reduces whole rows (the reduced axes), grid-stride over rows; or each
// thread, for rows side by side in memory; or a group of lanes of one warp, for rows shorter than a block.
// Few long rows are each split over several blocks, or side by side over several threads (units).
// ${name}: ${summary}
// Phases: one loop over the row per reduction, then one loop that writes the elementwise outputs. A reduction
// of every row's value (the mean of per-row losses) is finished after the rows by the launch's last block.
// Rows that fit are held in registers (cache<a>[t]); __launch_bounds__ keeps enough blocks per SM that
// one block's loads overlap another's reductions.
// Filled in by gputrace/codegen/reduction.py; placeholders are $$-prefixed names in braces.
#include "gputrace_reduce.cuh"

extern "C" __global__ void __launch_bounds__(${block}, ${min_blocks}) ${name}(${params})
{
    __builtin_assume(threadIdx.x < ${block});  // launched with ${block} threads: guards a whole row meets fold away
    typedef ${index_t} index_t;
${constants}
${shared}
    for (index_t unit = ${first_unit}; unit < units; unit += ${unit_step}) {
${row_setup}
${row_body}
    }
${after_rows}
}
