// The BF16 tensor-core GEMM (mma.sync m16n8k16, FP32 accumulation) on the layouts of SGEMM v2.
// C (M,N) = act(alpha * op(A) (M,K) @ op(B) (K,N) + beta * C + bias), A, B, C FP32 in memory.
//
// 128x128 block tile, BK = 32, 256 threads in 2x4 warps of 64x32; each warp a 4x4 grid of
// m16n8k16 MMAs (64 FP32 accumulators per thread). A and B are read with 128-bit loads along
// their unit-stride dimension into registers two K stages ahead (two register sets; cp.async
// cannot convert, so the prefetch is register-staged as in v2), then rounded to bf16 (round to
// nearest even, NaN stays NaN, finite values beyond the bf16 range become Inf) as they are
// stored to the other of two shared buffers, one barrier per stage. Both shared tiles are k-contiguous -- As[m][k], Bs[n][k] -- whatever the global
// layout, so one fragment loader (ldmatrix.x4, non-transposed) serves all four transposes; the
// operands whose unit stride runs along m (or n) are transposed while they are stored, two
// k-rows at a time so each store is a 32-bit bf16 pair.
//
// Shared memory: 2 operands x 2 buffers x 128 rows x 40 bf16 (32 k + 8 pad) = 40 KiB, half of
// what the TF32 kernel would need for the same BK. The 80-byte row pitch puts the eight 16-byte
// row reads of each ldmatrix phase on eight disjoint groups of 4 banks (row r starts at bank
// 20r mod 32: 0, 20, 8, 28, 16, 4, 24, 12), so fragment loads are conflict-free.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type";
// g = lane / 4, t = lane % 4; a register holds two bf16, the lower-indexed element in the low
// half, which is also the lower address in shared memory):
//   A (16x16, row-major): a[0] = A[g][2t, 2t+1]     a[1] = A[g+8][2t, 2t+1]
//                         a[2] = A[g][2t+8, 2t+9]   a[3] = A[g+8][2t+8, 2t+9]
//   B (16x8, "col": k pairs per column): b[0] = B[2t, 2t+1][g]   b[1] = B[2t+8, 2t+9][g]
//   C/D (16x8, FP32):     d[0], d[1] = C[g][2t, 2t+1]   d[2], d[3] = C[g+8][2t, 2t+1]
// ldmatrix.m8n8.x4.b16 reads four 8x8 b16 matrices; lanes 8q..8q+7 give the row addresses of
// matrix q, and register q of lane l receives row l/4, columns 2(l%4), 2(l%4)+1 of matrix q.
// With rows = m and columns = k (As), matrix q = (m 0-7 | 8-15 by q & 1, k 0-7 | 8-15 by q >> 1)
// is exactly a[q]. With rows = n and columns = k (Bs), matrices (n 0-7, k 0-7), (n 0-7, k 8-15),
// (n 8-15, k 0-7), (n 8-15, k 8-15) are b[0], b[1] of one n8 tile and b[0], b[1] of the next.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/act_math.h"
#include "core/error.h"
#include "cuda/elem_util.cuh"
#include "cuda/gemm_sgemm2.h"
#include "cuda/gemm_tile.cuh"

namespace fastnn {
namespace cuda {
namespace {

using namespace gemm_tile;

constexpr int BK16 = 32;         // k per pipeline stage
constexpr int LDK = BK16 + 8;    // padded k-row of a shared tile, in bf16 (80 bytes)
constexpr int STAGE_F4 = BM * BK16 / 4 / THREADS;  // float4s per thread per operand per stage: 4
static_assert(STAGE_F4 == 4, "the loaders below assume four float4s per thread");
static_assert((LDK * 2) % 16 == 0, "ldmatrix row addresses must be 16-byte aligned");

using Tile = __nv_bfloat16[BM][LDK];

// Two floats as a bf16 pair in one 32-bit word: lo in the low half (the lower address).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __float22bfloat162_rn(make_float2(lo, hi));
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const __nv_bfloat16* p) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4],
                                         uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Elements q[0..3] where the row is in range and fewer than `n` remain in it; zeros elsewhere.
// n >= 4 on an in-range row is one 128-bit load (aligned: ld % 4 == 0, 16-byte base, and the
// column offsets below are multiples of 4).
__device__ __forceinline__ float4 load4_masked(const float* q, bool row_ok, int64_t n) {
  float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
  if (row_ok) {
    if (n >= 4) {
      v = __ldg(reinterpret_cast<const float4*>(q));
    } else {
      if (n > 0) v.x = __ldg(q);
      if (n > 1) v.y = __ldg(q + 1);
      if (n > 2) v.z = __ldg(q + 2);
    }
  }
  return v;
}

// One operand's share of every stage: the 128 (rows: m or n) x 32 (k) tile at (r0, k0) of a
// matrix with `rows` rows and K k's, stored with unit stride along k (KC) or along the rows.
// Pointers and row masks are set up once; a stage only adds k0.
//   KC:  float4 s of thread t is row t / 8 + 32 s, k's 4 (t % 8) .. +3 (eight lanes read one
//        128-byte row segment).
//   !KC: pair s (0, 1) of thread t covers k-rows 2 (t % 16) and 2 (t % 16) + 1 at rows
//        4 (t / 16) + 64 s .. +3; v[2s] holds the even k-row, v[2s+1] the odd one. A half-warp
//        reads 16 k-rows, the other half the next four rows of the same k-rows (32-byte sectors).
template <bool KC>
struct StageLoader;

template <>
struct StageLoader<true> {
  const float* base;  // element (r0 + t / 8, 4 (t % 8))
  int64_t row_step;   // 32 rows
  int64_t k_left;     // K - 4 (t % 8): elements left in a row at k0 = 0
  bool row_ok[4];

  __device__ StageLoader(const float* p, int64_t ld, int64_t r0, int64_t rows, int64_t K,
                         int tid) {
    const int64_t r = r0 + tid / 8, k = (tid % 8) * 4;
    base = p + r * ld + k;
    row_step = 32 * ld;
    k_left = K - k;
#pragma unroll
    for (int s = 0; s < 4; ++s) row_ok[s] = r + 32 * s < rows;
  }
  __device__ __forceinline__ void load(float4 (&v)[STAGE_F4], int64_t k0) const {
#pragma unroll
    for (int s = 0; s < 4; ++s)
      v[s] = load4_masked(base + s * row_step + k0, row_ok[s], k_left - k0);
  }
};

template <>
struct StageLoader<false> {
  const float* base;  // element (k = 2 (t % 16), row r0 + 4 (t / 16))
  int64_t ld;
  int64_t k_left;     // K - 2 (t % 16): k-rows left at k0 = 0
  int64_t n_left[2];  // elements left in a k-row from pair s's first row

  __device__ StageLoader(const float* p, int64_t ld_, int64_t r0, int64_t rows, int64_t K,
                         int tid) {
    const int64_t k = 2 * (tid % 16), r = r0 + (tid / 16) * 4;
    base = p + k * ld_ + r;
    ld = ld_;
    k_left = K - k;
    n_left[0] = rows - r;
    n_left[1] = rows - r - 64;
  }
  __device__ __forceinline__ void load(float4 (&v)[STAGE_F4], int64_t k0) const {
    const float* q = base + k0 * ld;
    const bool even_ok = k0 < k_left, odd_ok = k0 + 1 < k_left;
#pragma unroll
    for (int s = 0; s < 2; ++s) {
      v[2 * s] = load4_masked(q + 64 * s, even_ok, n_left[s]);
      v[2 * s + 1] = load4_masked(q + ld + 64 * s, odd_ok, n_left[s]);
    }
  }
};

// Rounds the staged floats to bf16 and writes them k-contiguous into `t` (rows x k).
//   KC:  one 64-bit store of 4 k's per float4.
//   !KC: four 32-bit stores of (k, k+1) pairs, one per row; a warp's 32 stores of one row offset
//        land on 32 distinct banks (k-pair index = lane % 16 adds 0..15 words, the two
//        half-warps' rows are 4 apart = 80 words = 16 banks apart).
template <bool KC>
__device__ __forceinline__ void store_stage(Tile& t, const float4 (&v)[STAGE_F4], int tid) {
  if (KC) {
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      const int idx = tid + s * THREADS;
      const uint2 w = make_uint2(pack_bf16(v[s].x, v[s].y), pack_bf16(v[s].z, v[s].w));
      *reinterpret_cast<uint2*>(&t[idx / 8][(idx % 8) * 4]) = w;
    }
  } else {
#pragma unroll
    for (int s = 0; s < 2; ++s) {
      const int idx = tid + s * THREADS;
      const int k = 2 * (idx % 16), r = (idx / 16) * 4;
      const float4 e = v[2 * s], o = v[2 * s + 1];
      *reinterpret_cast<uint32_t*>(&t[r + 0][k]) = pack_bf16(e.x, o.x);
      *reinterpret_cast<uint32_t*>(&t[r + 1][k]) = pack_bf16(e.y, o.y);
      *reinterpret_cast<uint32_t*>(&t[r + 2][k]) = pack_bf16(e.z, o.z);
      *reinterpret_cast<uint32_t*>(&t[r + 3][k]) = pack_bf16(e.w, o.w);
    }
  }
}

// A_KC: A has unit stride along k (lda = rsa), else along m (lda = csa). B_KC: B has unit stride
// along k (ldb = csb), else along n (ldb = rsb).
template <bool A_KC, bool B_KC>
__global__ void __launch_bounds__(THREADS, 1)
    gemm_bf16_kernel(const GemmArgs<float> g, int64_t lda, int64_t ldb, int tiles_m, int tiles_n) {
  __shared__ __align__(16) Tile As[2];
  __shared__ __align__(16) Tile Bs[2];

  int tile_m, tile_n;
  block_tile(tiles_m, tiles_n, tile_m, tile_n);
  const int64_t m0 = int64_t(tile_m) * BM, n0 = int64_t(tile_n) * BN;

  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int wm = (warp / WARPS_N) * WARP_M, wn = (warp % WARPS_N) * WARP_N;
  // ldmatrix row addresses (see the header): A rows lane % 16, k half lane / 16; B rows
  // lane % 8 + 8 (lane / 16), k half (lane / 8) % 2.
  const int a_row = wm + (lane & 15), a_k = (lane >> 4) * 8;
  const int b_row = wn + (lane & 7) + ((lane >> 4) << 3), b_k = ((lane >> 3) & 1) * 8;

  const StageLoader<A_KC> load_a(g.A, lda, m0, g.M, g.K, tid);
  const StageLoader<B_KC> load_b(g.B, ldb, n0, g.N, g.K, tid);
  float acc[4][4][4];  // [m16 tile][n8 tile][fragment element]
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  // The 32 MMAs of one stage (two k16 steps) on shared buffer `cur`.
  auto mma_stage = [&](int cur) {
#pragma unroll
    for (int ks = 0; ks < BK16; ks += 16) {
      uint32_t af[4][4], bf[4][2];
#pragma unroll
      for (int i = 0; i < 4; ++i) ldmatrix_x4(af[i], &As[cur][a_row + i * 16][ks + a_k]);
#pragma unroll
      for (int jj = 0; jj < 2; ++jj) {
        uint32_t r[4];
        ldmatrix_x4(r, &Bs[cur][b_row + jj * 16][ks + b_k]);
        bf[2 * jj][0] = r[0];
        bf[2 * jj][1] = r[1];
        bf[2 * jj + 1][0] = r[2];
        bf[2 * jj + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) mma_bf16(acc[i][j], af[i], bf[j][0], bf[j][1]);
    }
  };

  // Two register sets, so a stage's global loads have two stages of MMAs (~800 cycles at the
  // mma.sync rate, with one 8-warp block per SM) to arrive before they are stored. Stage s
  // lives in set s % 2; shared buffer s % 2 holds it from the barrier after its store until the
  // barrier after stage s's MMAs.
  float4 ra0[STAGE_F4], rb0[STAGE_F4], ra1[STAGE_F4], rb1[STAGE_F4];
  const int64_t nk = (g.K + BK16 - 1) / BK16;  // >= 1: the host routes K == 0 elsewhere
  load_a.load(ra0, 0);
  load_b.load(rb0, 0);
  if (nk > 1) {
    load_a.load(ra1, BK16);
    load_b.load(rb1, BK16);
  }
  store_stage<A_KC>(As[0], ra0, tid);
  store_stage<B_KC>(Bs[0], rb0, tid);
  __syncthreads();

  // Stage kt: `own` held it (already in buffer cur) and now fetches stage kt + 2; `next` holds
  // stage kt + 1, stored into the other buffer after the MMAs. That buffer was last read by
  // stage kt - 1's MMAs, before the previous barrier; the barrier below publishes it and keeps
  // the next overwrite of `cur` behind every read of it.
  auto step = [&](int64_t kt, int cur, float4(&own_a)[STAGE_F4], float4(&own_b)[STAGE_F4],
                  const float4(&next_a)[STAGE_F4], const float4(&next_b)[STAGE_F4]) {
    if (kt + 2 < nk) {
      load_a.load(own_a, (kt + 2) * BK16);
      load_b.load(own_b, (kt + 2) * BK16);
    }
    mma_stage(cur);
    if (kt + 1 < nk) {
      store_stage<A_KC>(As[cur ^ 1], next_a, tid);
      store_stage<B_KC>(Bs[cur ^ 1], next_b, tid);
    }
    __syncthreads();
  };
  // Unrolled by two so that each register set is a fixed set of registers.
  for (int64_t kt = 0; kt < nk; kt += 2) {
    step(kt, 0, ra0, rb0, ra1, rb1);
    if (kt + 1 < nk) step(kt + 1, 1, ra1, rb1, ra0, rb0);
  }

  // Accumulator element e of tile (i, j): row g (+8 for e >= 2), column 2t + (e & 1). The two
  // columns are adjacent and even, so with rsc % 4 == 0 and an aligned C they are one float2.
  const bool read_c = g.beta != 0.f;  // beta == 0: C is write-only (may hold NaN)
  const int gr = lane / 4, tk = lane % 4;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t m = m0 + wm + i * 16 + gr + h * 8;
      if (m >= g.M) continue;
      float* crow = g.C + m * g.rsc;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t n = n0 + wn + j * 8 + tk * 2;
        if (n >= g.N) continue;
        float x0 = g.alpha * acc[i][j][h * 2], x1 = g.alpha * acc[i][j][h * 2 + 1];
        if (n + 1 < g.N) {
          float2* c2 = reinterpret_cast<float2*>(crow + n);
          if (read_c) {
            const float2 c = *c2;
            x0 += g.beta * c.x;
            x1 += g.beta * c.y;
          }
          if (g.bias) {
            x0 += g.bias[n * g.bias_stride];
            x1 += g.bias[(n + 1) * g.bias_stride];
          }
          *c2 = make_float2(act_math::forward(g.act, g.act_param, x0),
                            act_math::forward(g.act, g.act_param, x1));
        } else {
          if (read_c) x0 += g.beta * crow[n];
          if (g.bias) x0 += g.bias[n * g.bias_stride];
          crow[n] = act_math::forward(g.act, g.act_param, x0);
        }
      }
    }
  }
}

}  // namespace

void gemm_bf16_v2(const GemmArgs<float>& g, void* stream_ptr) {
  FASTNN_CHECK(sgemm2_applies(g),
               "cuda gemm_bf16: needs K > 0, unit-stride rows or columns with leading dimensions "
               "a multiple of 4, 16-byte aligned pointers and no gates");
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  launch_by_layout(g, stream, "gemm_bf16_kernel", [](auto a_kc, auto b_kc) -> TileKernel {
    return gemm_bf16_kernel<decltype(a_kc)::value, decltype(b_kc)::value>;
  });
}

}  // namespace cuda
}  // namespace fastnn
