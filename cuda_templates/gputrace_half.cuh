// float16 for gputrace kernels: values are held as float and rounded to half after every op.
// Included (by gputrace/codegen/kernel.py) only into kernels that use __half.
#pragma once
#include <cuda_fp16.h>
#include "gputrace_ops.cuh"

GT_FN float gt_round_half(float x) { return __half2float(__float2half_rn(x)); }
GT_FN float gt_round_half(double x) { return __half2float(__double2half(x)); }  // one rounding, as NumPy's double -> half
GT_FN float gt_load_half(const __half* p) { return __half2float(*p); }
GT_FN void gt_store_half(__half* p, float v) { *p = __float2half_rn(v); }
