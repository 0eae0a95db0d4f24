// Reductions for gputrace's row kernels (reduction.cu): the block-wide reduction of a row that a block
// works on (warp shuffles first, then one value per warp through shared memory), the reduction of a
// short row over a group of lanes of one warp (shuffles only), argmax/argmin pairs,
// and the merge of a split row's parts' partial results by the part that finishes last.
#pragma once
#include "gputrace_kernel.cuh"

// (value, index) pairs for argmax / argmin; index -1 marks "no element yet".
template <class T>
struct GtArg {
    T v;
    long long i;
};

// One warp shuffle (a callable taking the value) for every type a reduction accumulates in:
// sub-word and 8-byte ints widened, argmax/argmin pairs a field at a time.
template <class T, class Shuffle>
__device__ __forceinline__ T gt_shuffle(T v, Shuffle shuffle)
{
    if constexpr (sizeof(T) < 4) {
        return (T)shuffle((int)v);
    } else if constexpr (sizeof(T) == 8 && (T)0.5 == 0) {
        return (T)shuffle((long long)v);
    } else {
        return shuffle(v);
    }
}

template <class T, class Shuffle>
__device__ __forceinline__ GtArg<T> gt_shuffle(GtArg<T> a, Shuffle shuffle)
{
    GtArg<T> r;
    r.v = gt_shuffle(a.v, shuffle);
    r.i = gt_shuffle(a.i, shuffle);
    return r;
}

template <class T>
__device__ __forceinline__ T gt_shfl_xor(T v, int mask)
{
    return gt_shuffle(v, [mask](auto x) { return __shfl_xor_sync(0xffffffffu, x, mask); });
}

// A partial result another block of this launch wrote (split reductions): read through volatile, so from
// L2, where the writer's __threadfence made it visible, never from a stale line in this SM's L1.
template <class T>
__device__ __forceinline__ T gt_load_partial(const T* p) { return *(const volatile T*)p; }

template <class T>
__device__ __forceinline__ GtArg<T> gt_load_partial(const GtArg<T>* p)
{
    GtArg<T> r;
    r.v = *(const volatile T*)&p->v;
    r.i = *(const volatile long long*)&p->i;
    return r;
}

// Compensated (Kahan) summation: `lost` carries what each addition rounded away and feeds it back, so a
// thread's long run of additions errs by a few ulp of the total, not by one per term. Kernels build
// without fused multiply-add, which would break the compensation. Once the sum is not finite the
// compensation stops (inf - inf would turn it into NaN).
template <class T>
__device__ __forceinline__ void gt_kahan_add(T& sum, T& lost, T value)
{
    const T corrected = value - lost;
    const T total = sum + corrected;
    lost = total - total == 0 ? (total - sum) - corrected : (T)0;
    sum = total;
}

template <class T>
__device__ __forceinline__ T gt_kahan_total(T sum, T lost) { return sum - sum == 0 ? sum - lost : sum; }

// The corrected two-pass sum of squared deviations: the error e of the rounded mean adds N e^2 =
// (sum of deviations)^2 / N to the squares. Squares that are not finite (overflowed, NaN) stay as they
// are, as NumPy's: the correction would turn an overflow into inf - inf = NaN.
template <class T>
__device__ __forceinline__ T gt_corrected_squares(T squares, T deviations, T count)
{
    if (!(squares - squares == 0)) return squares;
    const T corrected = squares - deviations * deviations / count;
    return corrected > 0 ? corrected : (T)0;
}

// A split row's part merged into the row's squared deviations (Chan et al.): the part's own plus n shift^2,
// shift the distance of the part's mean from the row's. Squares that are not finite stay as they are, as
// the two-pass sum's do: a part whose sum overflowed (mean inf, deviations -inf) makes NumPy's var inf,
// where inf - inf in the shift would make it NaN.
template <class T>
__device__ __forceinline__ T gt_merged_squares(T squares, T n, T shift)
{
    if (!(squares - squares == 0)) return squares;
    return gt_add(squares, gt_multiply(n, gt_multiply(shift, shift)));
}

template <class T>
__device__ __forceinline__ bool gt_is_nan(T v) { return v != v; }

// NumPy's argmax: the first maximum, and NaN counts as the maximum (its first occurrence).
template <class T, bool IsMax>
__device__ __forceinline__ GtArg<T> gt_arg_combine(GtArg<T> a, GtArg<T> b)
{
    if (a.i < 0) return b;
    if (b.i < 0) return a;
    const bool an = gt_is_nan(a.v), bn = gt_is_nan(b.v);
    if (an || bn) {
        if (an && bn) return a.i < b.i ? a : b;
        return an ? a : b;
    }
    const bool b_better = IsMax ? (b.v > a.v) : (b.v < a.v);
    if (b_better || (b.v == a.v && b.i < a.i)) return b;
    return a;
}

struct GtSum  { template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return gt_add(a, b); } };
struct GtProd { template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return gt_multiply(a, b); } };
struct GtMax  { template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return gt_maximum(a, b); } };
struct GtMin  { template <class T> __device__ __forceinline__ T operator()(T a, T b) const { return gt_minimum(a, b); } };
struct GtAny  { __device__ __forceinline__ bool operator()(bool a, bool b) const { return a || b; } };
struct GtAll  { __device__ __forceinline__ bool operator()(bool a, bool b) const { return a && b; } };
struct GtArgMax { template <class T> __device__ __forceinline__ GtArg<T> operator()(GtArg<T> a, GtArg<T> b) const { return gt_arg_combine<T, true>(a, b); } };
struct GtArgMin { template <class T> __device__ __forceinline__ GtArg<T> operator()(GtArg<T> a, GtArg<T> b) const { return gt_arg_combine<T, false>(a, b); } };

// ---- a thread's elements of a row (reduction.cu's phases: reduction.py fills in each loop's body)

// A row held in registers: this thread's Items elements of the row, register t at column j (RowThreads
// threads share the row, lane is this one's place among them; Width consecutive elements per vector).
template <int Items, int Width, int RowThreads, class Index, class Visit>
__device__ __forceinline__ void gt_for_held(int lane, Index cols, Visit visit)
{
#pragma unroll
    for (int t = 0; t < Items; ++t) {
        const Index j = Width > 1 ? (Index)((t / Width) * (RowThreads * Width) + lane * Width + t % Width)
                                  : (Index)(lane + t * RowThreads);
        if (j < cols) visit(t, j);
    }
}

// A row re-read in each phase: columns begin, begin + step, ... before end (register 0: none is held).
template <class Index, class Visit>
__device__ __forceinline__ void gt_for_strided(Index begin, Index end, Index step, Visit visit)
{
    for (Index j = begin; j < end; j += step) visit(0, j);
}

// A row held in registers and moved Width elements at a time: this thread's vectors of the row, vector q
// from column j0.
template <int Items, int Width, int RowThreads, class Index, class Visit>
__device__ __forceinline__ void gt_for_vectors(int lane, Visit visit)
{
#pragma unroll
    for (int q = 0; q < Items / Width; ++q) visit(q, (Index)(q * (RowThreads * Width) + lane * Width));
}

// The elements of vector q (register t, column j) that lie in the row.
template <int Width, class Index, class Visit>
__device__ __forceinline__ void gt_for_vector_elements(int q, Index j0, Index cols, Visit visit)
{
#pragma unroll
    for (int r = 0; r < Width; ++r) {
        const Index j = j0 + r;
        if (j < cols) visit(q * Width + r, j);
    }
}

// Load this thread's elements of a row (from row[0]) into registers, a vector at a time where the pointers
// are aligned and the vector lies in the row, else element by element.
template <int Width, int RowThreads, int Items, class Index, class T, class S>
__device__ __forceinline__ void gt_load_held(T (&held)[Items], const S* row, int lane, Index cols, bool aligned)
{
    gt_for_vectors<Items, Width, RowThreads, Index>(lane, [&](int q, Index j0) {
        if (aligned && j0 + Width <= cols) {
            const GtVector<S, Width> v = *reinterpret_cast<const GtVector<S, Width>*>(row + j0);
#pragma unroll
            for (int r = 0; r < Width; ++r) held[q * Width + r] = v.v[r];
        } else {
#pragma unroll
            for (int r = 0; r < Width; ++r)
                if (j0 + r < cols) held[q * Width + r] = row[j0 + r];
        }
    });
}

// Store vector q's elements computed into v at row[j0...]: at once where aligned and in the row, else
// those in the row one by one; nothing where the thread is not active (a spare lane redoing a row).
template <int Width, class Index, class T>
__device__ __forceinline__ void gt_store_vector(T* row, Index j0, Index cols, const GtVector<T, Width>& v,
                                                bool aligned, bool active)
{
    if (active && aligned && j0 + Width <= cols) {
        *reinterpret_cast<GtVector<T, Width>*>(row + j0) = v;
    } else {
#pragma unroll
        for (int r = 0; r < Width; ++r)
            if (active && j0 + r < cols) row[j0 + r] = v.v[r];
    }
}

// ---- what a thread accumulates over its elements of a row: add() each element, total() at the end

// Any combine op (max, prod, any, argmax, integer sums): acc = op(acc, value).
template <class T, class Op>
struct GtFold {
    T acc;
    __device__ __forceinline__ void add(T value) { acc = Op()(acc, value); }
    __device__ __forceinline__ T total() const { return acc; }
};

// Float sums, compensated (Kahan): a thread may add thousands of elements one after another; the tree of
// the block reduction adds the rest.
template <class T>
struct GtKahanSum {
    T sum, lost = 0;
    __device__ __forceinline__ void add(T value) { gt_kahan_add(sum, lost, value); }
    __device__ __forceinline__ T total() const { return gt_kahan_total(sum, lost); }
};

// max/min of floats: the hardware's fmax/fmin (which skip NaN), with NaN tracked aside. A NaN-propagating
// max in the loop costs 1.5x the time of the whole softmax (H100); the block reduction propagates NaN
// between threads.
struct GtFastMax {
    __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
    __device__ __forceinline__ double operator()(double a, double b) const { return fmax(a, b); }
};
struct GtFastMin {
    __device__ __forceinline__ float operator()(float a, float b) const { return fminf(a, b); }
    __device__ __forceinline__ double operator()(double a, double b) const { return fmin(a, b); }
};

template <class T, class Fast>
struct GtFastExtremum {
    T acc;
    bool nan = false;
    __device__ __forceinline__ void add(T value)
    {
        acc = Fast()(acc, value);
        nan = nan || value != value;
    }
    __device__ __forceinline__ T total() const
    {
        return nan ? gt_cast<T>(gt_double_from_bits(0x7ff8000000000000ULL)) : acc;
    }
};

// var/std's second pass: the squared deviations from the row's (or part's) mean; compensated for floats,
// with the deviations' own sum for the corrected two-pass formula (gt_corrected_squares).
template <class T>
struct GtDeviations {
    T squares;
    T mean;
    __device__ __forceinline__ void add(T value)
    {
        const T d = gt_subtract(value, mean);
        squares = gt_add(squares, gt_multiply(d, d));
    }
    __device__ __forceinline__ T total() const { return squares; }
};

template <class T>
struct GtKahanDeviations {
    T squares;
    T mean;
    T lost = 0, sum = 0, lost_sum = 0;
    __device__ __forceinline__ void add(T value)
    {
        const T d = gt_subtract(value, mean);
        gt_kahan_add(squares, lost, gt_multiply(d, d));
        gt_kahan_add(sum, lost_sum, d);
    }
    __device__ __forceinline__ T total() const { return gt_kahan_total(squares, lost); }
    __device__ __forceinline__ T deviations() const { return gt_kahan_total(sum, lost_sum); }
};

// Reduce one value per lane over each aligned group of Lanes lanes of a warp (a power of two, at most 32;
// a group per row when rows are shorter than a block); every lane of the group gets the group's first
// lane's result (lanes may differ where a combine is not bitwise commutative: max of +0 and -0).
// All 32 lanes of the warp take part.
template <int Lanes, class T, class Op>
__device__ __forceinline__ T gt_group_reduce(T v, Op op)
{
#pragma unroll
    for (int offset = Lanes / 2; offset > 0; offset >>= 1)
        v = op(v, gt_shfl_xor(v, offset));
    return gt_shuffle(v, [](auto x) { return __shfl_sync(0xffffffffu, x, 0, Lanes); });
}

// Reduce one value per thread over the block; every thread gets the result.
// blockDim.x must be a multiple of 32; scratch holds 33 values.
template <class T, class Op>
__device__ __forceinline__ T gt_block_reduce(T v, Op op, T identity, T* scratch)
{
    for (int offset = 16; offset > 0; offset >>= 1)
        v = op(v, gt_shfl_xor(v, offset));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? scratch[lane] : identity;
        for (int offset = 16; offset > 0; offset >>= 1)
            v = op(v, gt_shfl_xor(v, offset));
        if (lane == 0) scratch[32] = v;
    }
    __syncthreads();
    const T result = scratch[32];
    __syncthreads();  // scratch is reused by the next reduction
    return result;
}

// ---- rows split over blocks (or, side by side in memory, over threads): each part writes its partial
// results, and the row's last part to finish merges them (reduction.cu's split-row merge).

// Whether this block (PerThread: this thread) finished the last part of its row, counted on the row's
// ticket: only that one reads the parts' partial results and writes the row's results.
template <bool PerThread>
__device__ __forceinline__ bool gt_last_part(unsigned int* ticket, unsigned int parts)
{
    __threadfence();  // this part's partial results are visible before its ticket
    bool last;
    if constexpr (PerThread) {
        last = atomicAdd(ticket, 1u) == parts - 1;
    } else {
        __shared__ bool last_block;
        if (threadIdx.x == 0) last_block = atomicAdd(ticket, 1u) == parts - 1;
        __syncthreads();
        last = last_block;
    }
    if (last) __threadfence();
    return last;
}

// Visit the parts of a row this thread merges: all of them (PerThread), or every blockDim.x-th of them
// from threadIdx.x (the threads of the row's last block share them; a block reduction combines theirs).
template <bool PerThread, class Index, class Visit>
__device__ __forceinline__ void gt_for_parts(Index parts, Visit visit)
{
    if constexpr (PerThread) {
        for (Index p = 0; p < parts; ++p) visit(p);
    } else {
        for (Index p = threadIdx.x; p < parts; p += blockDim.x) visit(p);
    }
}

// The parts' partial results combined by op, from identity.
template <bool PerThread, class T, class Index, class Op>
__device__ __forceinline__ T gt_merge_parts(const T* partial, Index parts, Op op, T identity)
{
    T all = identity;
    gt_for_parts<PerThread>(parts, [&](Index p) { all = op(all, gt_load_partial(&partial[p])); });
    return all;
}

// The parts' float sums added up, compensated: one thread may add a thousand of them.
template <bool PerThread, class T, class Index>
__device__ __forceinline__ T gt_sum_parts(const T* partial, Index parts)
{
    T all = 0, lost = 0;
    gt_for_parts<PerThread>(parts, [&](Index p) { gt_kahan_add(all, lost, gt_load_partial(&partial[p])); });
    return gt_kahan_total(all, lost);
}

// Elements of part p of a row of cols split into parts of chunk (the last part ends with the row).
template <class T, class Index>
__device__ __forceinline__ T gt_part_size(Index p, Index chunk, Index cols)
{
    return gt_cast<T>(((p + 1) * chunk < cols ? (p + 1) * chunk : cols) - p * chunk);
}

// var/std of a split row, by Chan et al.'s merge of its parts: M2 = sum of M2_p + n_p (mean_p - mean)^2,
// where mean_p - mean = (m_p - mean) + s_p / n_p from the part's rounded mean m_p and the sum s_p of its
// deviations from m_p (no cancellation). First the row's sum, from the parts' means and sizes:
template <bool PerThread, class T, class Index>
__device__ __forceinline__ T gt_sum_part_means(const T* means, Index parts, Index chunk, Index cols)
{
    T all = 0, lost = 0;
    gt_for_parts<PerThread>(parts, [&](Index p) {
        gt_kahan_add(all, lost, gt_multiply(gt_part_size<T>(p, chunk, cols), gt_load_partial(&means[p])));
    });
    return gt_kahan_total(all, lost);
}

// ... then, around the row's (rounded) mean, the merged squared deviations and the sum of n_p (mean_p -
// mean), which corrects for the mean's rounding as in the two-pass formula (gt_corrected_squares).
template <bool PerThread, class T, class Index>
__device__ __forceinline__ void gt_merge_part_squares(const T* means, const T* deviations, const T* squares,
                                                      Index parts, Index chunk, Index cols, T row_mean,
                                                      T& merged, T& shifts)
{
    T all_d = 0, lost_d = 0, all_s = 0, lost_s = 0;
    gt_for_parts<PerThread>(parts, [&](Index p) {
        const T n = gt_part_size<T>(p, chunk, cols);
        const T shift = gt_add(gt_subtract(gt_load_partial(&means[p]), row_mean),
                               gt_true_divide(gt_load_partial(&deviations[p]), n));
        gt_kahan_add(all_d, lost_d, gt_merged_squares(gt_load_partial(&squares[p]), n, shift));
        gt_kahan_add(all_s, lost_s, gt_multiply(n, shift));
    });
    merged = gt_kahan_total(all_d, lost_d);
    shifts = gt_kahan_total(all_s, lost_s);
}
