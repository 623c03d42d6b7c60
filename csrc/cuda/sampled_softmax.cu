// Sampled softmax on the GPU; see sampled_softmax.h for the contract and the order of the passes.
//
// Shapes: h (N, D), W (D, C), b (C,); samples s (S,), touched columns cols (k,) ascending;
// G (k + S, D) holds W[:, cols]^T in rows [0, k) and W[:, s]^T in rows [k, k + S) (Wg, Ws);
// Zs / dZs (N, S); dWs^T (splits, S, D') with D' = D + 1 when there is a bias: the GEMM reads h
// with a column of ones appended, so the bias gradient of each sample comes out of the same pass.
//
// Napkin math (N 1024, D 256, S 64, C 100k): 3 GEMMs of 2 N S D = 34 MFLOP each, the gather
// reads k + S <= 1.1k scattered columns of W (~9 MB of 32-byte sectors), everything else is
// under 1 MB: a ~10-20 us job dominated by launch latency and the small GEMMs' parallelism,
// hence 32x32 tiles for small outputs and split-K (shape-only) for dWs^T, whose K is N.
#include "cuda/sampled_softmax.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "cuda/elem_util.cuh"

namespace fastnn {
namespace cuda {
namespace {

using elem::block_sum;
using elem::kThreads;
using elem::kWarps;
using elem::warp_sum;

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
unsigned grid_dim(int64_t need, int64_t cap) {
  return unsigned(std::max<int64_t>(1, std::min(need, cap)));
}

// ------------------------------------------------------------------ workspace layout
// Tables (built on the host, uploaded in one copy) first, then the device-only buffers; every
// piece 256-byte aligned. A function of the shapes alone, computed identically by both phases.
struct Layout {
  size_t idx, slot_s, slot_y, off, ent, logq_s, logq_y, tables_end;
  size_t G, bg, Z, dzt, row_loss, loss, dWs, total;
};

Layout layout_of(int64_t N, int64_t D, int64_t S, int64_t k, size_t elem, bool has_bias,
                 int splits) {
  Layout L{};
  size_t at = 0;
  auto take = [&](size_t bytes) {
    const size_t here = at;
    at = (at + bytes + 255) / 256 * 256;
    return here;
  };
  L.idx = take(8 * size_t(k + S));     // int64: cols, then the samples
  L.slot_s = take(4 * size_t(S));      // int32: slot of each sample among cols
  L.slot_y = take(4 * size_t(N));      // int32: slot of each row's label
  L.off = take(4 * size_t(k + 1));     // int32: CSR offsets, column -> contributions
  L.ent = take(4 * size_t(S + N));     // int32: e < S a sample, else row e - S
  L.logq_s = take(8 * size_t(S));      // double: log E(s_j) (0 without subtract_log_q)
  L.logq_y = take(8 * size_t(N));      // double: log E(y_i) (0 unless correct_true_logit too)
  L.tables_end = at;
  L.G = take(elem * size_t(k + S) * size_t(D));
  L.bg = take(elem * size_t(k + S));
  L.Z = take(elem * size_t(N) * size_t(S));
  L.dzt = take(8 * size_t(N));
  L.row_loss = take(8 * size_t(N));
  L.loss = take(8);
  L.dWs = take(elem * size_t(splits) * size_t(S) * size_t(D + (has_bias ? 1 : 0)));
  L.total = at;
  return L;
}

// Slices of N for dWs^T = dZs^T @ h: enough blocks of 32x32 tiles to fill a GPU (~256), at least
// 128 rows a slice. Shapes only, so the rounding -- and the bits -- are the same on any GPU.
int splits_for(int64_t N, int64_t D, int64_t S, bool has_bias) {
  const int64_t tiles = cdiv(S, 32) * cdiv(D + (has_bias ? 1 : 0), 32);
  const int64_t want = cdiv(256, std::max<int64_t>(tiles, 1));
  return int(std::max<int64_t>(1, std::min<int64_t>({want, cdiv(N, 128), 32})));
}

// ------------------------------------------------------------------ tiled GEMM
// C (M, N) = op(A) (M, K) @ op(B) (K, N) for one K slice per blockIdx.z, with element strides:
// A(m, k) = A[m rsa + k csa], B(k, n) = B[k rsb + n csb]. Optional:
//   ones_col  B(k, ones_col) reads 1 (the bias column appended to h);
//   add_*     C[m, n] += add_scale[m] * add_rows[add_idx[m] add_ld + n] (dh's true-class term),
//             added in double as the CPU does.
// Each thread sums its outputs over k in increasing order whatever the tile size, so the tile
// choice never changes a bit; only the K slicing does.
template <class T>
struct TileGemm {
  int64_t M, N, K;
  const T* A;
  int64_t rsa, csa;
  const T* B;
  int64_t rsb, csb;
  T* C;
  int64_t ldc;
  int64_t k_slice;       // K per blockIdx.z
  int64_t slice_stride;  // elements between the slices' outputs
  int64_t ones_col;      // -1: none
  const double* add_scale;
  const T* add_rows;
  const int* add_idx;
  int64_t add_ld;
};

constexpr int BK = 16;

// 256 threads as 16 x 16; a thread owns rows ty + 16 i and columns tx + 16 j of the tile, so the
// shared-memory reads of a warp are 16 consecutive words plus a broadcast (no bank conflicts) and
// the stores to C run along rows. Tiles are staged with the unit-stride index fastest (coalesced
// for every layout the op uses); the +1 padding keeps the transposing stores conflict-free.
template <class T, int BM, int BN>
__global__ void __launch_bounds__(256) sampled_gemm_kernel(const TileGemm<T> g) {
  constexpr int TM = BM / 16, TN = BN / 16;
  __shared__ T As[BK][BM + 1];
  __shared__ T Bs[BK][BN + 1];
  const int t = threadIdx.x, tx = t % 16, ty = t / 16;
  const int64_t kbeg = int64_t(blockIdx.z) * g.k_slice;
  const int64_t kend = g.K < kbeg + g.k_slice ? g.K : kbeg + g.k_slice;
  T* C = g.C + int64_t(blockIdx.z) * g.slice_stride;
  const bool a_kfast = g.csa == 1, b_nfast = g.csb == 1;
  const int64_t tiles_m = (g.M + BM - 1) / BM, tiles_n = (g.N + BN - 1) / BN;
  for (int64_t tm = blockIdx.y; tm < tiles_m; tm += gridDim.y) {
    for (int64_t tn = blockIdx.x; tn < tiles_n; tn += gridDim.x) {
      const int64_t m0 = tm * BM, n0 = tn * BN;
      T acc[TM][TN];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = T(0);
      for (int64_t k0 = kbeg; k0 < kend; k0 += BK) {
#pragma unroll
        for (int r = 0; r < BM * BK / 256; ++r) {
          const int e = t + r * 256;
          const int kk = a_kfast ? e % BK : e / BM, m = a_kfast ? e / BK : e % BM;
          const int64_t gm = m0 + m, gk = k0 + kk;
          As[kk][m] = (gm < g.M && gk < kend) ? g.A[gm * g.rsa + gk * g.csa] : T(0);
        }
#pragma unroll
        for (int r = 0; r < BN * BK / 256; ++r) {
          const int e = t + r * 256;
          const int kk = b_nfast ? e / BN : e % BK, n = b_nfast ? e % BN : e / BK;
          const int64_t gn = n0 + n, gk = k0 + kk;
          T v = T(0);
          if (gk < kend && gn < g.N) v = gn == g.ones_col ? T(1) : g.B[gk * g.rsb + gn * g.csb];
          Bs[kk][n] = v;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
          T a[TM], b[TN];
#pragma unroll
          for (int i = 0; i < TM; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
          for (int j = 0; j < TN; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
          for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
      }
#pragma unroll
      for (int i = 0; i < TM; ++i) {
        const int64_t gm = m0 + ty + 16 * i;
        if (gm >= g.M) continue;
        const double scale = g.add_rows ? g.add_scale[gm] : 0.0;
        const T* extra = g.add_rows ? g.add_rows + int64_t(g.add_idx[gm]) * g.add_ld : nullptr;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
          const int64_t gn = n0 + tx + 16 * j;
          if (gn >= g.N) continue;
          T v = acc[i][j];
          if (extra) v = T(double(v) + scale * double(extra[gn]));
          C[gm * g.ldc + gn] = v;
        }
      }
    }
  }
}

// 64x64 tiles when there are enough of them to fill the GPU, 32x32 otherwise (a shape rule; the
// result is the same either way).
template <class T>
void launch_gemm(const TileGemm<T>& g, int slices, cudaStream_t s, const char* name) {
  if (g.M <= 0 || g.N <= 0) return;
  const int64_t big_tiles = cdiv(g.M, 64) * cdiv(g.N, 64);
  if (big_tiles * slices >= 256) {
    const dim3 grid(grid_dim(cdiv(g.N, 64), 1 << 20), grid_dim(cdiv(g.M, 64), 65535), slices);
    sampled_gemm_kernel<T, 64, 64><<<grid, 256, 0, s>>>(g);
  } else {
    const dim3 grid(grid_dim(cdiv(g.N, 32), 1 << 20), grid_dim(cdiv(g.M, 32), 65535), slices);
    sampled_gemm_kernel<T, 32, 32><<<grid, 256, 0, s>>>(g);
  }
  check_launch(name);
}

// ------------------------------------------------------------------ gather
// G (n, D): G[r, d] = W[d, idx[r]]; bg[r] = b[idx[r]]. 32 x 32 tiles through shared memory: the
// reads walk the column ids (sorted, and clustered at the frequent low ids for the log-uniform
// sampler, so neighbours often share a sector) along rows of W, the writes run along D.
template <class T>
__global__ void __launch_bounds__(256)
    sampled_gather_kernel(const T* __restrict__ W, const T* __restrict__ b, int64_t C, int64_t D,
                          const int64_t* __restrict__ idx, int64_t n, T* __restrict__ G,
                          T* __restrict__ bg) {
  __shared__ T tile[32][33];
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  for (int64_t r0 = int64_t(blockIdx.x) * 32; r0 < n; r0 += int64_t(gridDim.x) * 32) {
    const int64_t r = r0 + tx;
    const int64_t col = r < n ? idx[r] : 0;
    if (b && blockIdx.y == 0 && ty == 0 && r < n) bg[r] = b[col];
    for (int64_t d0 = int64_t(blockIdx.y) * 32; d0 < D; d0 += int64_t(gridDim.y) * 32) {
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int64_t d = d0 + ty + 8 * q;
        if (r < n && d < D) tile[ty + 8 * q][tx] = W[d * C + col];
      }
      __syncthreads();
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int64_t rr = r0 + ty + 8 * q, d = d0 + tx;
        if (rr < n && d < D) G[rr * D + d] = tile[tx][ty + 8 * q];
      }
      __syncthreads();
    }
  }
}

// ------------------------------------------------------------------ per-row softmax
__device__ __forceinline__ double warp_max(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// One warp per row, in double (cpu/sampled_softmax.cpp's formulas): the true logit
// zt = h_i . Wg[slot_y[i]] + b - log E(y_i), the sampled ones z_j = Zs_ij + b[s_j] - log E(s_j)
// (accidental hits, slot_s[j] == slot_y[i], left out), then with m = max and e = sum exp(z - m):
// row loss log e + m - zt, dzt_i = (e^(zt - m) / e - 1) / N, dZs_ij = e^(z_j - m) / e / N in
// place of Zs (0 for a masked j).
template <class T>
__global__ void __launch_bounds__(256)
    sampled_rows_kernel(const T* __restrict__ h, const T* __restrict__ Wg,
                        const T* __restrict__ bg, T* __restrict__ Z,
                        const int* __restrict__ slot_s, const int* __restrict__ slot_y,
                        const double* __restrict__ logq_s, const double* __restrict__ logq_y,
                        int64_t N, int64_t D, int64_t S, bool remove_hits,
                        double* __restrict__ dzt, double* __restrict__ row_loss) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  const double inv_n = 1.0 / double(N);
  for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; i < N; i += warps) {
    const int sy = slot_y[i];
    const T* hi = h + i * D;
    const T* wy = Wg + int64_t(sy) * D;
    double zt = 0;
    for (int64_t d = lane; d < D; d += 32) zt += double(hi[d]) * double(wy[d]);
    zt = warp_sum(zt) + (bg ? double(bg[sy]) : 0.0) - logq_y[i];
    T* zi = Z + i * S;
    auto logit = [&](int64_t j) {
      return double(zi[j]) + (bg ? double(bg[slot_s[j]]) : 0.0) - logq_s[j];
    };
    double m = zt;
    for (int64_t j = lane; j < S; j += 32)
      if (!(remove_hits && slot_s[j] == sy)) m = fmax(m, logit(j));
    m = warp_max(m);
    double e = 0;
    for (int64_t j = lane; j < S; j += 32)
      if (!(remove_hits && slot_s[j] == sy)) e += exp(logit(j) - m);
    const double et = exp(zt - m);
    e = warp_sum(e) + et;
    const double inv_e = 1.0 / e;
    for (int64_t j = lane; j < S; j += 32)
      zi[j] = (remove_hits && slot_s[j] == sy) ? T(0) : T(exp(logit(j) - m) * inv_e * inv_n);
    if (lane == 0) {
      row_loss[i] = log(e) + m - zt;
      dzt[i] = (et * inv_e - 1.0) * inv_n;
    }
  }
}

// ------------------------------------------------------------------ touched columns
// dW_cols[d, c] (and db_cols[c] at d == D when there is a bias) = the contributions of column c:
// a sample j adds dWs^T[j, d] summed over the K slices, a row i adds dzt_i h[i, d] (h[i, D] = 1).
// One block per (column, 32 features): lane tx takes feature d0 + tx, warp w every 8th
// contribution from the w-th (a fixed partition), then warp 0 adds the 8 partial sums in warp
// order -- in double, no atomics. A frequent class (a Zipf head holds a quarter of the rows) is
// thus summed by 8 warps, not by one thread walking a few hundred rows.
template <class T>
__global__ void __launch_bounds__(256)
    sampled_columns_kernel(const int* __restrict__ off, const int* __restrict__ ent, int64_t S,
                           int64_t k, int64_t D, bool has_bias, const T* __restrict__ dWs,
                           int splits, const double* __restrict__ dzt, const T* __restrict__ h,
                           T* __restrict__ dW_cols, T* __restrict__ db_cols) {
  __shared__ double part[8][32];
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  const int64_t Dp = D + (has_bias ? 1 : 0);  // dWs^T's row length
  const int64_t slice = S * Dp;
  for (int64_t c = blockIdx.x; c < k; c += gridDim.x) {
    const int e0 = off[c], e1 = off[c + 1];
    for (int64_t d0 = int64_t(blockIdx.y) * 32; d0 < Dp; d0 += int64_t(gridDim.y) * 32) {
      const int64_t d = d0 + tx;
      double acc = 0;
      if (d < Dp) {
#pragma unroll 4
        for (int e = e0 + ty; e < e1; e += 8) {  // uniform over the warp
          const int v = ent[e];
          if (v < S) {
            for (int p = 0; p < splits; ++p) acc += double(dWs[p * slice + v * Dp + d]);
          } else {
            const int64_t i = v - S;
            acc += dzt[i] * (d < D ? double(h[i * D + d]) : 1.0);
          }
        }
      }
      part[ty][tx] = acc;
      __syncthreads();
      if (ty == 0 && d < Dp) {
        double sum = part[0][tx];
#pragma unroll
        for (int w = 1; w < 8; ++w) sum += part[w][tx];
        if (d < D)
          dW_cols[d * k + c] = T(sum);
        else
          db_cols[c] = T(sum);
      }
      __syncthreads();
    }
  }
}

// The mean of the row losses, added in a fixed order by one block.
__global__ void __launch_bounds__(kThreads)
    sampled_loss_kernel(const double* __restrict__ row_loss, int64_t N, double* __restrict__ loss) {
  __shared__ double scratch[kWarps];
  double v = 0;
  for (int64_t i = threadIdx.x; i < N; i += kThreads) v += row_loss[i];
  v = block_sum(v, scratch);
  if (threadIdx.x == 0) *loss = v / double(N);
}

// dW[d, cols[c]] += dW_cols[d, c] over e = d k + c (reads coalesced), then db[cols[c]] +=
// db_cols[c]. The columns are distinct: every element has one writer.
template <class T>
__global__ void __launch_bounds__(256)
    sampled_scatter_kernel(const int64_t* __restrict__ cols, int64_t k, int64_t D, int64_t C,
                           const T* __restrict__ dW_cols, const T* __restrict__ db_cols,
                           T* __restrict__ dW, T* __restrict__ db) {
  const int64_t n = D * k + ((db && db_cols) ? k : 0);
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += int64_t(gridDim.x) * blockDim.x) {
    if (e < D * k) {
      const int64_t d = e / k, c = e - d * k;
      dW[d * C + cols[c]] += dW_cols[e];
    } else {
      const int64_t c = e - D * k;
      db[cols[c]] += db_cols[c];
    }
  }
}

}  // namespace

// ------------------------------------------------------------------ host side
template <class T>
SampledGpuPlan sampled_softmax_plan(const SampledSoftmaxArgs<T>& a) {
  SampledGpuPlan p;
  FASTNN_CHECK(a.D >= 0, "h: expected a non-negative number of features");
  p.plan = sampling::sampled_softmax_plan(a);  // labels checked, sample drawn, cols listed
  const std::vector<int64_t>& s = p.plan.sample.ids;
  const std::vector<int64_t>& cols = p.plan.cols;
  p.N = a.N, p.D = a.D, p.C = a.C, p.S = int64_t(s.size()), p.k = int64_t(cols.size());
  const int64_t N = p.N, S = p.S, k = p.k;
  // Slots, row and CSR indices are int32 on the device.
  if (N + S >= (int64_t(1) << 31))
    throw ValueError("h: the GPU sampled softmax takes fewer than 2**31 rows + samples, got " +
                     std::to_string(N + S));
  p.elem = sizeof(T);
  p.has_bias = a.b != nullptr;
  p.remove_accidental_hits = a.remove_accidental_hits;
  p.splits = splits_for(N, p.D, S, p.has_bias);
  const Layout L = layout_of(N, p.D, S, k, p.elem, p.has_bias, p.splits);
  p.workspace_bytes = L.total;
  p.tables.assign(L.tables_end, 0);
  unsigned char* base = p.tables.data();
  auto at = [&](size_t offset) { return base + offset; };

  std::vector<int64_t> idx(cols);
  idx.insert(idx.end(), s.begin(), s.end());
  std::memcpy(at(L.idx), idx.data(), idx.size() * sizeof(int64_t));
  auto slot_of = [&](int64_t c) {
    return int(std::lower_bound(cols.begin(), cols.end(), c) - cols.begin());
  };
  std::vector<int> slot_s(S), slot_y(N);
  std::vector<double> logq_s(S, 0.0), logq_y(N, 0.0);
  for (int64_t j = 0; j < S; ++j) {
    slot_s[j] = slot_of(s[j]);
    if (a.subtract_log_q) logq_s[j] = std::log(p.plan.sample.expected[j]);
  }
  for (int64_t i = 0; i < N; ++i) {
    slot_y[i] = slot_of(a.labels[i]);
    if (a.subtract_log_q && a.correct_true_logit)
      logq_y[i] = std::log(sampling::expected_count(a.labels[i], a.C, a.sampler, a.unique,
                                               a.num_sampled, p.plan.sample.tries));
  }
  // CSR by a counting sort: each column's samples (in draw order), then its rows (in order).
  std::vector<int> off(k + 1, 0), ent(S + N);
  for (int64_t j = 0; j < S; ++j) ++off[slot_s[j] + 1];
  for (int64_t i = 0; i < N; ++i) ++off[slot_y[i] + 1];
  for (int64_t c = 0; c < k; ++c) off[c + 1] += off[c];
  std::vector<int> cursor(off.begin(), off.end() - 1);
  for (int64_t j = 0; j < S; ++j) ent[cursor[slot_s[j]]++] = int(j);
  for (int64_t i = 0; i < N; ++i) ent[cursor[slot_y[i]]++] = int(S + i);
  std::memcpy(at(L.slot_s), slot_s.data(), slot_s.size() * sizeof(int));
  std::memcpy(at(L.slot_y), slot_y.data(), slot_y.size() * sizeof(int));
  std::memcpy(at(L.off), off.data(), off.size() * sizeof(int));
  std::memcpy(at(L.ent), ent.data(), ent.size() * sizeof(int));
  std::memcpy(at(L.logq_s), logq_s.data(), logq_s.size() * sizeof(double));
  std::memcpy(at(L.logq_y), logq_y.data(), logq_y.size() * sizeof(double));
  return p;
}

template <class T>
void sampled_softmax_cross_entropy(const SampledSoftmaxArgs<T>& a, const SampledGpuPlan& p,
                                   T* dh, T* dW_cols, T* db_cols, int64_t* cols_out,
                                   void* workspace, size_t workspace_bytes, void* stream) {
  if (p.elem != sizeof(T) || p.N != a.N || p.D != a.D || p.C != a.C ||
      p.has_bias != (a.b != nullptr))
    throw ValueError("sampled_softmax_cross_entropy: the plan was made for other arguments");
  if (!workspace || workspace_bytes < p.workspace_bytes)
    throw ValueError("workspace: expected " + std::to_string(p.workspace_bytes) + " bytes, got " +
                     std::to_string(workspace_bytes));
  if (!elem::aligned(workspace, 16))
    throw ValueError("workspace: expected a 16-byte aligned device pointer");
  if (p.has_bias && !db_cols) throw ValueError("db_cols: required when there is a bias");
  const int64_t N = p.N, D = p.D, C = p.C, S = p.S, k = p.k;
  const bool has_bias = p.has_bias;
  const Layout L = layout_of(N, D, S, k, p.elem, has_bias, p.splits);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  char* ws = static_cast<char*>(workspace);
  const auto idx = reinterpret_cast<const int64_t*>(ws + L.idx);
  const auto slot_s = reinterpret_cast<const int*>(ws + L.slot_s);
  const auto slot_y = reinterpret_cast<const int*>(ws + L.slot_y);
  const auto off = reinterpret_cast<const int*>(ws + L.off);
  const auto ent = reinterpret_cast<const int*>(ws + L.ent);
  const auto logq_s = reinterpret_cast<const double*>(ws + L.logq_s);
  const auto logq_y = reinterpret_cast<const double*>(ws + L.logq_y);
  T* G = reinterpret_cast<T*>(ws + L.G);
  T* bg = has_bias ? reinterpret_cast<T*>(ws + L.bg) : nullptr;
  T* Z = reinterpret_cast<T*>(ws + L.Z);
  double* dzt = reinterpret_cast<double*>(ws + L.dzt);
  double* row_loss = reinterpret_cast<double*>(ws + L.row_loss);
  double* loss = reinterpret_cast<double*>(ws + L.loss);
  T* dWs = reinterpret_cast<T*>(ws + L.dWs);
  const T* Ws = G + k * D;  // the samples' rows of G

  clear_launch_error();
  // Pageable source: the call returns once the bytes are staged, so `p` may go away after it.
  check(cudaMemcpyAsync(ws, p.tables.data(), p.tables.size(), cudaMemcpyHostToDevice, s),
        "copying the sampled-softmax tables to the GPU");

  sampled_gather_kernel<T><<<dim3(grid_dim(cdiv(k + S, 32), 1 << 20), grid_dim(cdiv(D, 32), 64)),
                             256, 0, s>>>(a.W, a.b, C, D, idx, k + S, G, bg);
  check_launch("sampled_gather_kernel");

  // Zs (N, S) = h (N, D) @ Ws^T: B(d, j) = Ws[j D + d].
  TileGemm<T> g{};
  g.M = N, g.N = S, g.K = D;
  g.A = a.h, g.rsa = D, g.csa = 1;
  g.B = Ws, g.rsb = 1, g.csb = D;
  g.C = Z, g.ldc = S;
  g.k_slice = std::max<int64_t>(D, 1), g.slice_stride = 0, g.ones_col = -1;
  launch_gemm(g, 1, s, "sampled_gemm_kernel (logits)");

  sampled_rows_kernel<T><<<grid_dim(cdiv(N, 8), int64_t(elem::sm_count()) * 8), 256, 0, s>>>(
      a.h, G, bg, Z, slot_s, slot_y, logq_s, logq_y, N, D, S, p.remove_accidental_hits, dzt,
      row_loss);
  check_launch("sampled_rows_kernel");

  // dh (N, D) = dZs (N, S) @ Ws (S, D) + dzt_i Wg[slot_y[i]].
  TileGemm<T> gh{};
  gh.M = N, gh.N = D, gh.K = S;
  gh.A = Z, gh.rsa = S, gh.csa = 1;
  gh.B = Ws, gh.rsb = D, gh.csb = 1;
  gh.C = dh, gh.ldc = D;
  gh.k_slice = S, gh.slice_stride = 0, gh.ones_col = -1;
  gh.add_scale = dzt, gh.add_rows = G, gh.add_idx = slot_y, gh.add_ld = D;
  launch_gemm(gh, 1, s, "sampled_gemm_kernel (dh)");

  // dWs^T (S, D') = dZs^T (S, N) @ [h | 1] (N, D'), in p.splits slices of N.
  const int64_t Dp = D + (has_bias ? 1 : 0);
  TileGemm<T> gw{};
  gw.M = S, gw.N = Dp, gw.K = N;
  gw.A = Z, gw.rsa = 1, gw.csa = S;
  gw.B = a.h, gw.rsb = D, gw.csb = 1;
  gw.C = dWs, gw.ldc = Dp;
  gw.k_slice = cdiv(N, p.splits), gw.slice_stride = S * Dp;
  gw.ones_col = has_bias ? D : -1;
  launch_gemm(gw, p.splits, s, "sampled_gemm_kernel (dW)");

  if (Dp > 0) {
    sampled_columns_kernel<T>
        <<<dim3(grid_dim(k, 1 << 24), grid_dim(cdiv(Dp, 32), 65535)), 256, 0, s>>>(
            off, ent, S, k, D, has_bias, dWs, p.splits, dzt, a.h, dW_cols, db_cols);
    check_launch("sampled_columns_kernel");
  }
  sampled_loss_kernel<<<1, kThreads, 0, s>>>(row_loss, N, loss);
  check_launch("sampled_loss_kernel");
  if (cols_out)
    check(cudaMemcpyAsync(cols_out, idx, size_t(k) * sizeof(int64_t),
                               cudaMemcpyDeviceToDevice, s),
               "copying the touched columns");
}

double sampled_softmax_loss(const SampledGpuPlan& p, const void* workspace, void* stream) {
  const Layout L = layout_of(p.N, p.D, p.S, p.k, p.elem, p.has_bias, p.splits);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  double loss = 0;
  check(cudaMemcpyAsync(&loss, static_cast<const char*>(workspace) + L.loss, sizeof(double),
                             cudaMemcpyDeviceToHost, s),
             "reading the sampled-softmax loss");
  // Faults in the kernels above surface here, at the first synchronising call.
  check(cudaStreamSynchronize(s),
        "CUDA kernels of sampled_softmax_cross_entropy (sampled_gather_kernel, "
             "sampled_gemm_kernel, sampled_rows_kernel, sampled_columns_kernel, "
             "sampled_loss_kernel)");
  return loss;
}

template <class T>
void scatter_add_columns(const int64_t* cols, int64_t k, int64_t D, int64_t C, const T* dW_cols,
                         const T* db_cols, T* dW, T* db, void* stream) {
  const int64_t n = D * k + ((db && db_cols) ? k : 0);
  if (n == 0) return;
  clear_launch_error();
  sampled_scatter_kernel<T><<<elem::grid_for(n), 256, 0, static_cast<cudaStream_t>(stream)>>>(
      cols, k, D, C, dW_cols, db_cols, dW, db);
  check_launch("sampled_scatter_kernel");
}

#define FASTNN_INSTANTIATE(T)                                                                   \
  template SampledGpuPlan sampled_softmax_plan<T>(const SampledSoftmaxArgs<T>&);          \
  template void sampled_softmax_cross_entropy<T>(const SampledSoftmaxArgs<T>&,            \
                                                 const SampledGpuPlan&, T*, T*, T*, int64_t*,  \
                                                 void*, size_t, void*);                        \
  template void scatter_add_columns<T>(const int64_t*, int64_t, int64_t, int64_t, const T*,    \
                                       const T*, T*, T*, void*);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace cuda
}  // namespace fastnn
