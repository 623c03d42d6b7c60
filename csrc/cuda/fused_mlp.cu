// The fully fused MLP (see fused_mlp.h): one launch runs a whole stack of narrow layers, forward
// or backward, for a slab of 16 to 128 rows per block (one warp per 16 rows).
//
// X (M, in_0), W_l (in_l, out_l), b_l (out_l,), outputs[l] (M, out_l), dY, dZ[l] (M, out_l),
// dX (M, in_0); every width <= 128.
//
// Per block, in shared memory (see Smem):
//   Z: the raw products of the current layer for the slab, rows x (Wp + 4) floats, where Wp is the
//      widest width of the stack rounded up to 32.
//   A: the next product's operand (the activations forward, the gradients backward), rounded to
//      the precision: Z itself for FP32/TF32, packed bf16 pairs for BF16. Columns past a layer's
//      width are zeros, so the next product may run over the padded K.
//   B: the current layer's weights as the product's (K, N) operand: W_l in the forward pass,
//      W_l^T in the backward pass, zero-padded to K, N multiples of 16; two buffers, alternating.
//   bias: b_l, two buffers, alternating.
// Each warp owns 16 rows of the slab and computes all N columns of those rows: the product needs
// no cross-warp reduction and the epilogue touches only the warp's rows, so one block barrier per
// layer (after staging B) is all; the product -> epilogue hand-off is __syncwarp.
//
// Arithmetic (FP32 accumulators throughout):
//   FP32: SIMT FMAs. A lane owns 4 rows (r, r + 4, r + 8, r + 12) by 4 columns in each 32-column
//         block; per 4 k's it reads 4 float4 of A and 4 float4 of B per column block: 20 shared
//         loads for 256 FMAs at width 128.
//   TF32: mma.sync m16n8k8, operands rounded (cvt.rna, as gemm_tf32.cu) as they are stored to A
//         and B, so fragment loads are plain 32-bit reads.
//   BF16: mma.sync m16n8k16, A and B stored as bf16 pairs along k (round to nearest even), one
//         32-bit word per fragment register.
// Row strides are padded so that fragment reads hit 32 distinct banks: A words g * lda + t with
// lda = 4 (mod 32); B words t * ldb + g with ldb = 8 (mod 32).
//
// Forward: out_l = act_l(A @ W_l + b_l) in registers -> outputs[l] (global, when not null) and
// back into A (rounded to the precision) for layer l + 1.
// Backward: A = dZ_last = dY * act'(out_last); then for l = last .. 0: dIn = A @ W_l^T, and in
// the same epilogue dZ_{l-1} = dIn * act'_{l-1}(out_{l-1}) -> dZ[l-1] and A (or dIn -> dX for
// l = 0). act' comes from the output, by the formulas of every kernel (core/act_math.h).
//
// Rows past M are zeros in A and never stored; they only see finite act(bias) values and never mix
// with real rows (every product is row-wise), so the edge slab needs no other masking.
#include "cuda/fused_mlp.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>

#include "core/act_math.h"
#include "core/error.h"
#include "cuda/elem_util.cuh"

namespace fastnn {
namespace cuda {
namespace {

constexpr int kMaxRows = 128;          // rows per block (slab): 16, 32, 64 or 128 (MlpDev::rows)
constexpr int kMaxThreads = 256;       // one warp per 16 rows: 2 threads per slab row
constexpr int kMaxWidth = int(kFusedMlpMaxWidth);
constexpr int kMaxLayers = int(kFusedMlpMaxLayers);
static_assert(kMaxThreads / 32 * 16 == kMaxRows, "one warp per 16 rows");
static_assert(kMaxWidth % 32 == 0, "widths pad to whole 32-column blocks");

struct LayerDev {
  const float* W;   // (in, out)
  const float* b;   // (out,) or null
  const float* y;   // backward: the forward's output (M, out)
  float* dst;       // forward: outputs[l] (may be null); backward: dZ[l]
  int in, out;
  Act act;
  float param;
};

struct MlpDev {
  LayerDev layer[kMaxLayers];
  int count;
  int64_t M;
  const float* X;   // forward input (M, in_0)
  const float* dY;  // backward: (M, out_last); may alias layer[count - 1].dst
  float* dX;        // backward: (M, in_0) or null
  int rows;              // slab rows per block; blockDim.x == 2 * rows
  int ldz, lda, ldb;     // row strides of Z, A and B in 32-bit words
  int a_words, b_words;  // words of A (0: A is Z) and of each B buffer
};

__host__ __device__ constexpr int round_up(int x, int m) { return (x + m - 1) / m * m; }

// Loops whose bodies read global memory run in chunks of kChunk items per thread: every load of a
// chunk first, then every use. One DRAM round trip (~0.5 us) per item would otherwise be exposed
// once per iteration with only 8 warps per SM; chunking keeps kChunk loads per thread in flight.
// (It also lets dZ[last] alias dY: a chunk reads all its elements before writing any.)
constexpr int kChunk = 8;

// ------------------------------------------------------------------ operand rounding
__device__ __forceinline__ uint32_t tf32_bits(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}

// lo in the low half (the smaller k), as mma.sync expects; round to nearest even.
__device__ __forceinline__ uint32_t bf16_pair(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// Stores A's columns (c, c + 1) of slab row r (c even) in the precision's storage.
template <Precision P>
__device__ __forceinline__ void put_pair(uint32_t* A, int lda, int r, int c, float v0, float v1) {
  if constexpr (P == Precision::BF16) {
    A[r * lda + c / 2] = bf16_pair(v0, v1);
  } else {
    uint2 w;
    w.x = P == Precision::TF32 ? tf32_bits(v0) : __float_as_uint(v0);
    w.y = P == Precision::TF32 ? tf32_bits(v1) : __float_as_uint(v1);
    *reinterpret_cast<uint2*>(A + r * lda + c) = w;
  }
}

// B (Kp, Nc) = op(W) zero-padded, op(W)(k, n) = W[k * N + n] (forward: W is (K, N)) or, with
// `transposed`, W[n * K + k] (backward: W is (N, K), B = W^T). The thread order follows W's rows
// so that the global reads are coalesced. BF16 stores the pairs (k, k + 1) in one word. Every
// thread runs whole warps' worth of indices (blockDim.x and the totals are multiples of 32).
template <Precision P>
__device__ __forceinline__ void stage_b(uint32_t* B, int ldb, const float* __restrict__ W, int K,
                                        int N, int Kp, int Nc, bool transposed) {
  // Positions of item idx: (k, n) of B, or for BF16 (kk, n) with the pair k = 2kk, 2kk + 1.
  auto position = [&](int idx, int& k, int& n) {
    if constexpr (P == Precision::BF16) {
      const int Kh = Kp / 2;
      if (transposed) {
        // A warp takes 4 k pairs (one 32-byte sector of a W row) of 8 rows: whole sectors from
        // memory, and the stores kk * ldb + n (ldb = 8 mod 32) fall in 32 distinct banks.
        const int group = idx / 32, lane = idx % 32, kblocks = Kh / 4;
        k = (group % kblocks) * 4 + lane % 4;
        n = (group / kblocks) * 8 + lane / 4;
      } else {
        k = idx / Nc;
        n = idx - k * Nc;
      }
    } else {
      if (transposed) {
        // A warp takes 8 k's (one 32-byte sector of a W row) of 4 rows: whole sectors from
        // memory, and the stores k * ldb + n (ldb = 8 mod 32) conflict only 2-way.
        const int group = idx / 32, lane = idx % 32, kblocks = Kp / 8;
        k = (group % kblocks) * 8 + lane % 8;
        n = (group / kblocks) * 4 + lane / 8;
      } else {
        k = idx / Nc;
        n = idx - k * Nc;
      }
    }
  };
  auto at = [&](int k, int n) {  // op(W)(k, n), zero outside (K, N)
    return k < K && n < N ? __ldg(W + (transposed ? n * K + k : k * N + n)) : 0.f;
  };
  const int total = (P == Precision::BF16 ? Kp / 2 : Kp) * Nc;
  // kChunk items per thread loaded before any is stored: that many L2 reads in flight.
  const int threads = blockDim.x;
#pragma unroll 1
  for (int base = threadIdx.x; base < total; base += threads * kChunk) {
    float2 v[kChunk];
#pragma unroll
    for (int u = 0; u < kChunk; ++u) {
      const int idx = base + threads * u;
      if (idx < total) {
        int k, n;
        position(idx, k, n);
        if constexpr (P == Precision::BF16) v[u] = make_float2(at(2 * k, n), at(2 * k + 1, n));
        else v[u].x = at(k, n);
      }
    }
#pragma unroll
    for (int u = 0; u < kChunk; ++u) {
      const int idx = base + threads * u;
      if (idx < total) {
        int k, n;
        position(idx, k, n);
        if constexpr (P == Precision::BF16) B[k * ldb + n] = bf16_pair(v[u].x, v[u].y);
        else B[k * ldb + n] = P == Precision::TF32 ? tf32_bits(v[u].x) : __float_as_uint(v[u].x);
      }
    }
  }
}

// ------------------------------------------------------------------ the per-warp products
__device__ __forceinline__ void mma_tf32(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ float lane_of(const float4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// Z (rows, Np) = A (rows, Kp) @ B (Kp, Np) for this warp's 16 rows, stored raw (FP32) to Z:
// the caller's epilogue then walks the warp's rows in a plain loop (for_warp_pairs), so the
// activation code is emitted once, not once per accumulator. Every warp reads and writes only its
// own rows of A and Z, so __syncwarp() orders the product's reads of A before Z's writes (Z may be
// A) and those writes before the epilogue's reads. Kp and Np are multiples of 16; WIDE: Np may
// reach 128, else 64.
template <Precision P, bool WIDE>
__device__ __forceinline__ void layer_product(const uint32_t* A, int lda, const uint32_t* B,
                                              int ldb, int Kp, int Np, float* Z, int ldz) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if constexpr (P == Precision::FP32) {
    constexpr int NJ = WIDE ? 4 : 2;  // 32-column blocks
    const int rg = lane / 8, cg = lane % 8;
    const int r0 = warp * 16 + rg;  // rows r0 + 4i: 4 distinct banks for the A reads
    float acc[4][NJ][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < NJ; ++j)
#pragma unroll
        for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.f;
    const float* Af = reinterpret_cast<const float*>(A);
    const float* Bf = reinterpret_cast<const float*>(B);
    for (int k = 0; k < Kp; k += 4) {
      float4 a[4];
#pragma unroll
      for (int i = 0; i < 4; ++i)
        a[i] = *reinterpret_cast<const float4*>(Af + (r0 + 4 * i) * lda + k);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
        for (int j = 0; j < NJ; ++j) {
          if (32 * j >= Np) break;
          const float4 w = *reinterpret_cast<const float4*>(Bf + (k + kk) * ldb + 32 * j + 4 * cg);
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const float ai = lane_of(a[i], kk);
            acc[i][j][0] = fmaf(ai, w.x, acc[i][j][0]);
            acc[i][j][1] = fmaf(ai, w.y, acc[i][j][1]);
            acc[i][j][2] = fmaf(ai, w.z, acc[i][j][2]);
            acc[i][j][3] = fmaf(ai, w.w, acc[i][j][3]);
          }
        }
      }
    }
    __syncwarp();
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
      const int c = 32 * j + 4 * cg;
      if (c >= Np) continue;  // Np is a multiple of 16, so c < Np means c + 3 < Np
#pragma unroll
      for (int i = 0; i < 4; ++i)
        *reinterpret_cast<float4*>(Z + (r0 + 4 * i) * ldz + c) =
            make_float4(acc[i][j][0], acc[i][j][1], acc[i][j][2], acc[i][j][3]);
    }
  } else {
    constexpr int NT = WIDE ? 16 : 8;  // 8-column MMA tiles
    const int g = lane / 4, t = lane % 4;
    const int r = warp * 16 + g;
    const int nt = Np / 8;
    float acc[NT][4];
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[j][e] = 0.f;
    if constexpr (P == Precision::TF32) {
      for (int k0 = 0; k0 < Kp; k0 += 8) {
        // a0 (g, t), a1 (g + 8, t), a2 (g, t + 4), a3 (g + 8, t + 4); b0 (t, g), b1 (t + 4, g)
        const uint32_t a[4] = {A[r * lda + k0 + t], A[(r + 8) * lda + k0 + t],
                               A[r * lda + k0 + t + 4], A[(r + 8) * lda + k0 + t + 4]};
        const uint32_t* b = B + (k0 + t) * ldb + g;
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          if (j >= nt) break;
          mma_tf32(acc[j], a, b[8 * j], b[4 * ldb + 8 * j]);
        }
      }
    } else {
      for (int k0 = 0; k0 < Kp; k0 += 16) {
        // Words hold k pairs: a0 (g, pair t), a1 (g + 8, t), a2 (g, t + 4), a3 (g + 8, t + 4);
        // b0 (pair t, g), b1 (pair t + 4, g).
        const int kw = k0 / 2;
        const uint32_t a[4] = {A[r * lda + kw + t], A[(r + 8) * lda + kw + t],
                               A[r * lda + kw + t + 4], A[(r + 8) * lda + kw + t + 4]};
        const uint32_t* b = B + (kw + t) * ldb + g;
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          if (j >= nt) break;
          mma_bf16(acc[j], a, b[8 * j], b[4 * ldb + 8 * j]);
        }
      }
    }
    __syncwarp();
    // Accumulator e of tile j: row g (+8 for e >= 2), columns 8j + 2t + (e & 1).
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      if (j >= nt) break;
      *reinterpret_cast<float2*>(Z + r * ldz + 8 * j + 2 * t) = make_float2(acc[j][0], acc[j][1]);
      *reinterpret_cast<float2*>(Z + (r + 8) * ldz + 8 * j + 2 * t) =
          make_float2(acc[j][2], acc[j][3]);
    }
  }
  __syncwarp();
}

// f(r, c) for every column pair (c, c + 1), c < Np, of this warp's 16 rows; consecutive lanes take
// consecutive pairs of a row, so the epilogue's global reads and writes are coalesced.
template <class F>
__device__ __forceinline__ void for_warp_pairs(int Np, F&& f) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int half = Np / 2;
#pragma unroll 1
  for (int idx = lane; idx < 16 * half; idx += 32) {
    const int r = idx / half;
    f(warp * 16 + r, 2 * (idx - r * half));
  }
}

// use(r, c, load(r, c)) for the column pairs of this warp's rows, as for_warp_pairs.
template <class Load, class Use>
__device__ __forceinline__ void for_warp_pairs_loaded(int Np, Load&& load, Use&& use) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int half = Np / 2, total = 16 * half;
  using V = decltype(load(0, 0));
#pragma unroll 1
  for (int base = lane; base < total; base += 32 * kChunk) {
    V v[kChunk];
#pragma unroll
    for (int u = 0; u < kChunk; ++u) {
      const int idx = base + 32 * u;
      if (idx < total) {
        const int r = idx / half;
        v[u] = load(warp * 16 + r, 2 * (idx - r * half));
      }
    }
#pragma unroll
    for (int u = 0; u < kChunk; ++u) {
      const int idx = base + 32 * u;
      if (idx < total) {
        const int r = idx / half;
        use(warp * 16 + r, 2 * (idx - r * half), v[u]);
      }
    }
  }
}

// The same over the whole slab (`rows` rows of `half` pairs), spread over the block's threads.
template <class Load, class Use>
__device__ __forceinline__ void for_slab_pairs_loaded(int rows, int half, Load&& load, Use&& use) {
  const int total = rows * half, threads = blockDim.x;
  using V = decltype(load(0, 0));
#pragma unroll 1
  for (int base = threadIdx.x; base < total; base += threads * kChunk) {
    V v[kChunk];
#pragma unroll
    for (int u = 0; u < kChunk; ++u) {
      const int idx = base + threads * u;
      if (idx < total) {
        const int r = idx / half;
        v[u] = load(r, 2 * (idx - r * half));
      }
    }
#pragma unroll
    for (int u = 0; u < kChunk; ++u) {
      const int idx = base + threads * u;
      if (idx < total) {
        const int r = idx / half;
        use(r, 2 * (idx - r * half), v[u]);
      }
    }
  }
}

// Columns B is staged with: the SIMT product reads whole 32-column blocks.
template <Precision P>
__device__ __forceinline__ int staged_cols(int N) {
  return P == Precision::FP32 ? round_up(N, 32) : round_up(N, 16);
}

// Shared memory: Z (rows, ldz) floats, the raw products; A, the next product's operand, is Z
// itself for FP32/TF32 (rounded in place for TF32) and a packed bf16 array for BF16; B twice (layer
// l + 1 is staged while slower warps still read layer l's); bias twice.
struct Smem {
  float* Z;
  uint32_t* A;
  uint32_t* B;    // B[2][b_words]: layer l uses B + (l & 1) * b_words
  float* bias;    // bias[2][kMaxWidth]
};

__device__ __forceinline__ Smem carve(uint32_t* smem, const MlpDev& p) {
  Smem s;
  s.Z = reinterpret_cast<float*>(smem);
  uint32_t* q = smem + p.rows * p.ldz;
  s.A = p.a_words ? q : smem;
  q += p.a_words;
  s.B = q;
  s.bias = reinterpret_cast<float*>(q + 2 * p.b_words);
  return s;
}

// ------------------------------------------------------------------ kernels
// One block barrier per layer, after staging B and bias: it also orders the previous layer's
// epilogue (A) before this product, and every warp's reads of B[l & 1] (layer l) before layer
// l + 2 restages it.
template <Precision P, bool WIDE>
__global__ void __launch_bounds__(kMaxThreads, WIDE ? 1 : 2)
    fused_mlp_forward_kernel(const MlpDev p) {
  extern __shared__ __align__(16) uint32_t smem[];
  const Smem s = carve(smem, p);
  const int64_t m0 = int64_t(blockIdx.x) * p.rows;

  {  // A = the slab of X, zero-padded to (rows, Kp)
    const int K = p.layer[0].in;
    for_slab_pairs_loaded(
        p.rows, round_up(K, 16) / 2,
        [&](int r, int c) {
          const int64_t row = m0 + r;
          float2 v = make_float2(0.f, 0.f);
          if (row < p.M) {
            const float* x = p.X + row * K;
            if (c < K) v.x = x[c];
            if (c + 1 < K) v.y = x[c + 1];
          }
          return v;
        },
        [&](int r, int c, float2 v) { put_pair<P>(s.A, p.lda, r, c, v.x, v.y); });
  }

  for (int l = 0; l < p.count; ++l) {
    const LayerDev& L = p.layer[l];
    const int K = L.in, N = L.out, Kp = round_up(K, 16), Np = round_up(N, 16);
    // Offsets, not a 2-entry array: a dynamically indexed array would live in local memory.
    uint32_t* B = s.B + (l & 1) * p.b_words;
    float* bias = s.bias + (l & 1) * kMaxWidth;
    stage_b<P>(B, p.ldb, L.W, K, N, Kp, staged_cols<P>(N), false);
    for (int n = threadIdx.x; n < kMaxWidth; n += blockDim.x)
      bias[n] = L.b != nullptr && n < N ? __ldg(L.b + n) : 0.f;
    __syncthreads();

    layer_product<P, WIDE>(s.A, p.lda, B, p.ldb, Kp, Np, s.Z, p.ldz);

    const bool last = l + 1 == p.count;
    const Act act = L.act;
    const float param = L.param;
    float* out = L.dst;
    for_warp_pairs(Np, [&](int r, int c) {
      const float z0 = s.Z[r * p.ldz + c], z1 = s.Z[r * p.ldz + c + 1];
      // Columns past N stay zero: the next layer's padded K runs over them.
      const float y0 = c < N ? act_math::forward(act, param, z0 + bias[c]) : 0.f;
      const float y1 = c + 1 < N ? act_math::forward(act, param, z1 + bias[c + 1]) : 0.f;
      const int64_t row = m0 + r;
      if (out != nullptr && row < p.M) {
        float* o = out + row * N;
        if (c < N) o[c] = y0;
        if (c + 1 < N) o[c + 1] = y1;
      }
      if (!last) put_pair<P>(s.A, p.lda, r, c, y0, y1);
    });
  }
}

template <Precision P, bool WIDE>
__global__ void __launch_bounds__(kMaxThreads, WIDE ? 1 : 2)
    fused_mlp_backward_kernel(const MlpDev p) {
  extern __shared__ __align__(16) uint32_t smem[];
  const Smem s = carve(smem, p);
  const int64_t m0 = int64_t(blockIdx.x) * p.rows;

  {  // A = dZ_last = dY * act'(out_last) -> dZ[last]. dZ[last] may alias dY: each element is
     // read, then written, by the same thread (a chunk reads all its elements first).
    const LayerDev& L = p.layer[p.count - 1];
    const int N = L.out;
    const Act act = L.act;
    const float param = L.param;
    for_slab_pairs_loaded(
        p.rows, round_up(N, 16) / 2,
        [&](int r, int c) {  // (dy_c, dy_c+1, y_c, y_c+1)
          const int64_t row = m0 + r;
          float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
          if (row < p.M) {
            const int64_t o = row * N + c;
            if (c < N) {
              v.x = p.dY[o];
              v.z = L.y[o];
            }
            if (c + 1 < N) {
              v.y = p.dY[o + 1];
              v.w = L.y[o + 1];
            }
          }
          return v;
        },
        [&](int r, int c, float4 v) {
          const int64_t row = m0 + r;
          float v0 = 0.f, v1 = 0.f;
          if (row < p.M) {
            const int64_t o = row * N + c;
            if (c < N) {
              v0 = v.x * act_math::derivative_from_output(act, param, v.z);
              L.dst[o] = v0;
            }
            if (c + 1 < N) {
              v1 = v.y * act_math::derivative_from_output(act, param, v.w);
              L.dst[o + 1] = v1;
            }
          }
          put_pair<P>(s.A, p.lda, r, c, v0, v1);
        });
  }

  for (int l = p.count - 1; l >= 0; --l) {
    if (l == 0 && p.dX == nullptr) break;
    const LayerDev& L = p.layer[l];
    // dIn (rows, in) = dZ_l (rows, out) @ W_l^T: K = out, N = in.
    const int K = L.out, N = L.in, Kp = round_up(K, 16), Np = round_up(N, 16);
    uint32_t* B = s.B + (l & 1) * p.b_words;
    stage_b<P>(B, p.ldb, L.W, K, N, Kp, staged_cols<P>(N), true);
    __syncthreads();

    layer_product<P, WIDE>(s.A, p.lda, B, p.ldb, Kp, Np, s.Z, p.ldz);

    if (l > 0) {
      const LayerDev& Lp = p.layer[l - 1];  // its output is this layer's input
      const Act act = Lp.act;
      const float param = Lp.param;
      const float* y = Lp.y;
      float* dz = Lp.dst;
      for_warp_pairs_loaded(
          Np,
          [&](int r, int c) {  // the forward's output at (row, c), (row, c + 1)
            const int64_t row = m0 + r;
            float2 v = make_float2(0.f, 0.f);
            if (row < p.M) {
              const int64_t o = row * N + c;
              if (c < N) v.x = __ldg(y + o);
              if (c + 1 < N) v.y = __ldg(y + o + 1);
            }
            return v;
          },
          [&](int r, int c, float2 yv) {
            const float d0 = s.Z[r * p.ldz + c], d1 = s.Z[r * p.ldz + c + 1];
            const int64_t row = m0 + r;
            float v0 = 0.f, v1 = 0.f;
            if (row < p.M) {
              const int64_t o = row * N + c;
              if (c < N) {
                v0 = d0 * act_math::derivative_from_output(act, param, yv.x);
                dz[o] = v0;
              }
              if (c + 1 < N) {
                v1 = d1 * act_math::derivative_from_output(act, param, yv.y);
                dz[o + 1] = v1;
              }
            }
            put_pair<P>(s.A, p.lda, r, c, v0, v1);
          });
    } else {
      float* dX = p.dX;
      for_warp_pairs(Np, [&](int r, int c) {
        const int64_t row = m0 + r;
        if (row < p.M) {
          if (c < N) dX[row * N + c] = s.Z[r * p.ldz + c];
          if (c + 1 < N) dX[row * N + c + 1] = s.Z[r * p.ldz + c + 1];
        }
      });
    }
  }
}

// ------------------------------------------------------------------ host side
// Shared-memory plan for the stack (wp: the widest width rounded up to 32) and p.rows: strides with
// the bank properties above, B sized for the widest layer.
void plan_smem(MlpDev& p, int wp, Precision precision) {
  p.ldz = wp + 4;
  p.ldb = wp + 8;
  if (precision == Precision::BF16) {
    p.lda = round_up(wp / 2, 32) + 4;  // words of k pairs
    p.a_words = p.rows * p.lda;
    p.b_words = (wp / 2) * p.ldb;
  } else {
    p.lda = p.ldz;  // A is Z
    p.a_words = 0;
    p.b_words = wp * p.ldb;
  }
}

size_t smem_bytes(const MlpDev& p) {
  return sizeof(uint32_t) *
         (size_t(p.rows) * p.ldz + p.a_words + 2 * size_t(p.b_words) + 2 * kMaxWidth);
}

// The current device's opt-in shared memory per block, asked once per device: 227 KiB on an
// H100, 163 KiB on an A100, 99 KiB on 8.6 / 8.9 GPUs (RTX 30xx / 40xx, A10, L4).
size_t smem_limit() {
  static std::atomic<int> cached[64];
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  std::atomic<int>& c = cached[dev >= 0 && dev < 64 ? dev : 0];
  if (c.load() == 0) {
    int limit = 0;
    check(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
          "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
    c.store(limit > 0 ? limit : 1);
  }
  return size_t(c.load());
}

// Plans the largest slab of at most `rows` rows (halving down to 16) whose shared memory fits in
// `limit` bytes; returns its rows, or 0 where even 16 rows do not fit (the widest layers on GPUs
// with less shared memory than an H100: the engine then runs the layers one by one). Each row's
// arithmetic is the same for any slab size, so a smaller slab never changes a result.
int fit_rows(MlpDev& p, int wp, Precision precision, int rows, size_t limit) {
  for (; rows >= 16; rows /= 2) {
    p.rows = rows;
    plan_smem(p, wp, precision);
    if (smem_bytes(p) <= limit) return rows;
  }
  return 0;
}

using KernelFn = void (*)(MlpDev);

// Raises the kernel's dynamic shared memory limit (48 KiB by default) once per device.
template <Precision P, bool WIDE, bool BACKWARD>
void allow_smem(KernelFn kernel, size_t bytes, const char* name) {
  static std::atomic<int> granted[64];
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  std::atomic<int>& g = granted[dev >= 0 && dev < 64 ? dev : 0];
  if (size_t(g.load()) >= bytes) return;
  // Granted up to the device's opt-in maximum at once, so that the attribute is set once.
  int limit = 0;
  check(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
        "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
  if (size_t(limit) < bytes)
    throw CudaError(std::string("fastnn: CUDA kernel ") + name + " needs " +
                    std::to_string(bytes) + " bytes of shared memory; the device allows " +
                    std::to_string(limit));
  const int set = limit;
  const cudaError_t err =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, set);
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw CudaError(std::string("fastnn: cudaFuncSetAttribute(MaxDynamicSharedMemorySize) for ") +
                    name + " failed: " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
  }
  g.store(set);
}

template <Precision P, bool WIDE, bool BACKWARD>
void launch(const MlpDev& p, cudaStream_t stream) {
  KernelFn kernel =
      BACKWARD ? fused_mlp_backward_kernel<P, WIDE> : fused_mlp_forward_kernel<P, WIDE>;
  const char* name = BACKWARD ? "fused_mlp_backward_kernel" : "fused_mlp_forward_kernel";
  const size_t bytes = smem_bytes(p);
  allow_smem<P, WIDE, BACKWARD>(kernel, bytes, name);
  const int64_t blocks = (p.M + p.rows - 1) / p.rows;
  FASTNN_CHECK(blocks <= int64_t(0x7fffffff), std::string("cuda ") + name + ": M too large");
  clear_launch_error();
  kernel<<<unsigned(blocks), 2 * p.rows, bytes, stream>>>(p);
  check_launch(name);
}

template <bool BACKWARD>
void dispatch(const MlpDev& p, int wp, Precision precision, cudaStream_t stream) {
  const bool wide = wp > 64;
  switch (precision) {
    case Precision::FP32:
      return wide ? launch<Precision::FP32, true, BACKWARD>(p, stream)
                  : launch<Precision::FP32, false, BACKWARD>(p, stream);
    case Precision::TF32:
      return wide ? launch<Precision::TF32, true, BACKWARD>(p, stream)
                  : launch<Precision::TF32, false, BACKWARD>(p, stream);
    case Precision::BF16:
      return wide ? launch<Precision::BF16, true, BACKWARD>(p, stream)
                  : launch<Precision::BF16, false, BACKWARD>(p, stream);
  }
}

// Fills the per-layer fields and the shared-memory plan; returns the padded widest width.
int plan(const FusedMlpLayer* layers, int64_t count, Precision precision, MlpDev& p,
             const char* what) {
  FASTNN_CHECK(fused_mlp_fits_device(layers, count, precision),
               std::string("cuda ") + what +
                   ": the fused MLP does not apply (1 to 16 layers, widths 1 to 128 chained "
                   "in -> out, activations whose gradient follows from the output, a 16-row slab of "
                   "the widest layer within the device's shared memory)");
  p = MlpDev{};
  p.count = int(count);
  int wmax = int(layers[0].in);
  for (int64_t l = 0; l < count; ++l) {
    const FusedMlpLayer& L = layers[l];
    FASTNN_CHECK(L.W != nullptr, std::string("cuda ") + what + ": layer " + std::to_string(l) +
                                     " has no weights");
    LayerDev& d = p.layer[l];
    d.W = L.W;
    d.b = L.b;
    d.in = int(L.in);
    d.out = int(L.out);
    d.act = L.act;
    d.param = L.act_param;
    if (d.out > wmax) wmax = d.out;
  }
  return round_up(wmax, 32);
}

// Slab rows for M rows: 128 (8 warps) unless that leaves SMs without a block; halved down to 16
// (one warp) for small batches, so that M = 1000 runs 63 blocks rather than 8. Each row's
// arithmetic is the same for any slab size, so the choice never changes a result.
int slab_rows(int64_t M) {
  const int64_t sms = elem::sm_count();
  int rows = kMaxRows;
  while (rows > 16 && (M + rows - 1) / rows < sms) rows /= 2;
  return rows;
}

}  // namespace

bool fused_mlp_applies(const FusedMlpLayer* layers, int64_t count, Precision precision) {
  if (layers == nullptr || count < 1 || count > kFusedMlpMaxLayers) return false;
  if (precision != Precision::FP32 && precision != Precision::TF32 &&
      precision != Precision::BF16)
    return false;
  for (int64_t l = 0; l < count; ++l) {
    const FusedMlpLayer& L = layers[l];
    if (L.in < 1 || L.in > kFusedMlpMaxWidth || L.out < 1 || L.out > kFusedMlpMaxWidth)
      return false;
    if (l > 0 && L.in != layers[l - 1].out) return false;
    if (!act_grad_from_output_ok(L.act, double(L.act_param))) return false;
  }
  return true;
}

bool fused_mlp_fits_device(const FusedMlpLayer* layers, int64_t count, Precision precision) {
  if (!fused_mlp_applies(layers, count, precision)) return false;
  int wmax = int(layers[0].in);
  for (int64_t l = 0; l < count; ++l) wmax = std::max(wmax, int(layers[l].out));
  MlpDev probe{};
  return fit_rows(probe, round_up(wmax, 32), precision, 16, smem_limit()) > 0;
}

void fused_mlp_forward(const FusedMlpLayer* layers, int64_t count, const float* X, int64_t M,
                       float* const* outputs, Precision precision, void* stream) {
  MlpDev p;
  const int wp = plan(layers, count, precision, p, "fused_mlp_forward");
  FASTNN_CHECK(M >= 0, "cuda fused_mlp_forward: M must be non-negative");
  FASTNN_CHECK(outputs != nullptr && outputs[count - 1] != nullptr,
               "cuda fused_mlp_forward: the last layer's output is required");
  if (M == 0) return;
  FASTNN_CHECK(X != nullptr, "cuda fused_mlp_forward: X is null");
  for (int64_t l = 0; l < count; ++l) p.layer[l].dst = outputs[l];
  p.M = M;
  p.X = X;
  fit_rows(p, wp, precision, slab_rows(M), smem_limit());  // > 0: plan() checked that 16 fit
  dispatch<false>(p, wp, precision, static_cast<cudaStream_t>(stream));
}

void fused_mlp_backward(const FusedMlpLayer* layers, int64_t count, const float* X,
                        const float* const* outputs, const float* dY, int64_t M,
                        float* const* dZ, float* dX, Precision precision, void* stream) {
  (void)X;  // the weight gradients, which need X, are the caller's GEMMs
  MlpDev p;
  const int wp = plan(layers, count, precision, p, "fused_mlp_backward");
  FASTNN_CHECK(M >= 0, "cuda fused_mlp_backward: M must be non-negative");
  FASTNN_CHECK(outputs != nullptr && dZ != nullptr,
               "cuda fused_mlp_backward: outputs and dZ are required");
  if (M == 0) return;
  FASTNN_CHECK(dY != nullptr, "cuda fused_mlp_backward: dY is null");
  for (int64_t l = 0; l < count; ++l) {
    FASTNN_CHECK(outputs[l] != nullptr && dZ[l] != nullptr,
                 "cuda fused_mlp_backward: outputs[" + std::to_string(l) + "] and dZ[" +
                     std::to_string(l) + "] are required");
    p.layer[l].y = outputs[l];
    p.layer[l].dst = dZ[l];
  }
  p.M = M;
  p.dY = dY;
  p.dX = dX;
  fit_rows(p, wp, precision, slab_rows(M), smem_limit());  // > 0: plan() checked that 16 fit
  dispatch<true>(p, wp, precision, static_cast<cudaStream_t>(stream));
}

}  // namespace cuda
}  // namespace fastnn
