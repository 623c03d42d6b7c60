// Shared by the CUDA families: grid sizing, typed math wrappers and warp / block reductions
// (launch checking is core/cuda_check.h's). Device code only where marked.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "core/cuda_check.h"
#include "core/typed_math.h"

namespace fastnn {
namespace cuda {
namespace elem {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// Multiprocessors of the current device, asked once per device.
inline int sm_count() {
  static int cached[64] = {0};
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  if (dev < 0 || dev >= 64) dev = 0;
  if (cached[dev] == 0) {
    int n = 0;
    check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev),
          "cudaDeviceGetAttribute(MultiProcessorCount)");
    cached[dev] = n > 0 ? n : 1;
  }
  return cached[dev];
}

// Blocks for `items` independent items handled kThreads at a time by a grid-stride loop: enough
// blocks to fill every SM several times over, never more than the items need. (Memory-bound
// kernels gain nothing from more blocks than resident slots; fewer launches no idle tail.)
inline unsigned grid_for(int64_t items, int per_block = kThreads) {
  const int64_t need = (items + per_block - 1) / per_block;
  const int64_t cap = int64_t(sm_count()) * 8;
  const int64_t g = need < cap ? need : cap;
  return unsigned(g > 0 ? g : 1);
}

inline bool aligned(const void* p, uintptr_t bytes) {
  return (reinterpret_cast<uintptr_t>(p) % bytes) == 0;
}

#ifdef __CUDACC__
template <class A>
__device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (kThreads threads), the same tree for every call: deterministic. Every
// thread gets the total. `scratch` holds kWarps values; the leading barrier makes it reusable.
template <class A>
__device__ __forceinline__ A block_sum(A v, A* scratch) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  A t = lane < kWarps ? scratch[lane] : A(0);
  return warp_sum(t);
}

// Online max and sum (Milakov & Gimelshein 2018): a running (m, s) with s = sum e^(x - m),
// rescaled when m grows. s is kept in double: the element equal to the maximum adds exactly 1 and
// the rest keep their own relative precision, so log s stays accurate when one class dominates.
// -inf elements add nothing once a finite maximum is seen (their scaled count becomes 0), a NaN
// makes s NaN, and a row with +inf gives NaN where x - max is inf - inf, as on the CPU.
struct MaxSum {
  double m, s;
};

template <class T>
__device__ __forceinline__ void online_add(MaxSum& a, T x) {
  const double xd = double(x);
  if (xd > a.m) {
    a.s = a.s * double(typed_math::exp_(T(a.m - xd))) + 1.0;
    a.m = xd;
  } else {
    a.s += xd == a.m ? 1.0 : double(typed_math::exp_(T(xd - a.m)));
  }
}

// (m1, s1) + (m2, s2); a side whose max equals the result passes unscaled (also when both are
// -inf, which would otherwise give e^(-inf + inf) = NaN).
template <class T>
__device__ __forceinline__ MaxSum online_merge(MaxSum a, MaxSum b) {
  const double m = a.m > b.m ? a.m : b.m;
  const double sa = a.m == m ? a.s : a.s * double(typed_math::exp_(T(a.m - m)));
  const double sb = b.m == m ? b.s : b.s * double(typed_math::exp_(T(b.m - m)));
  return {m, sa + sb};
}

// Rows of a matrix are spread over groups of G threads: G <= 32 aligned lanes of a warp (32 / G
// rows per warp), or G == kThreads, the whole block. The reductions below combine a group's values
// and hand the result to every thread of the group. The xor butterfly never leaves an aligned
// group of G lanes; all 32 lanes of the warp must call (the full shuffle mask), and for
// G == kThreads every thread of the block (shared memory and barriers).
template <int G>
struct RowGroup {
  static_assert(G == kThreads || (G <= 32 && (G & (G - 1)) == 0), "group: a power of 2 <= 32, or the block");
  static constexpr int kRowsPerBlock = kThreads / G;
  static constexpr int kShuffle = G < 32 ? G : 32;  // lanes reduced by shuffles
};

template <class T, int G>
__device__ __forceinline__ MaxSum group_merge(MaxSum v) {
#pragma unroll
  for (int o = RowGroup<G>::kShuffle / 2; o > 0; o >>= 1) {
    MaxSum w{__shfl_xor_sync(0xffffffffu, v.m, o), __shfl_xor_sync(0xffffffffu, v.s, o)};
    v = online_merge<T>(v, w);
  }
  if constexpr (G == kThreads) {
    __shared__ double sm[kWarps], ss[kWarps];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();  // the previous call's readers are done with the scratch
    if (lane == 0) {
      sm[warp] = v.m;
      ss[warp] = v.s;
    }
    __syncthreads();
    v = lane < kWarps ? MaxSum{sm[lane], ss[lane]} : MaxSum{-INFINITY, 0.0};
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      MaxSum w{__shfl_xor_sync(0xffffffffu, v.m, o), __shfl_xor_sync(0xffffffffu, v.s, o)};
      v = online_merge<T>(v, w);
    }
  }
  return v;
}

template <class A, int G>
__device__ __forceinline__ A group_sum(A v) {
#pragma unroll
  for (int o = RowGroup<G>::kShuffle / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if constexpr (G == kThreads) {
    __shared__ A scratch[kWarps];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = warp_sum(lane < kWarps ? scratch[lane] : A(0));
  }
  return v;
}

// The group size for rows of `cols` elements: lanes are not left idle on narrow rows (2-class and
// 10-class outputs), a warp takes a row up to 1024 columns, the block above.
enum class RowShape { G4, G16, G32, Block };
inline RowShape row_shape(int64_t cols) {
  return cols <= 4 ? RowShape::G4 : cols <= 16 ? RowShape::G16 : cols <= 1024 ? RowShape::G32
                                                                             : RowShape::Block;
}
#endif

}  // namespace elem
}  // namespace cuda
}  // namespace fastnn
