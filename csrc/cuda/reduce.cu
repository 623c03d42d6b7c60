// Column sums, row argmax and accuracy counts on the GPU; see reduce.h.
#include "cuda/reduce.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "core/cuda_check.h"
#include "core/error.h"

namespace fastnn {
namespace cuda {
namespace {

constexpr int TX = 32, TY = 8;  // column kernels: 32 features x 8 row lanes
constexpr int kWarpsPerBlock = 8;


// x (N, F) -> partial[c * F + f] = sum of x[i, f] over the rows i of chunk c, in double. The
// eight row lanes of a block add rows ty, ty + 8, ... of the chunk; lane sums are then added in
// lane order.
template <class T>
__global__ void __launch_bounds__(TX * TY)
    column_sum_partials(const T* __restrict__ x, int64_t N, int64_t F, int64_t rows_per_chunk,
                        double* __restrict__ partial) {
  __shared__ double lane_sum[TY][TX];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t f = int64_t(blockIdx.x) * TX + tx;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_chunk, r1 = min(N, r0 + rows_per_chunk);
  double acc = 0;
  if (f < F) {
#pragma unroll 4
    for (int64_t r = r0 + ty; r < r1; r += TY) acc += double(x[r * F + f]);
  }
  lane_sum[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && f < F) {
    double s = lane_sum[0][tx];
    for (int k = 1; k < TY; ++k) s += lane_sum[k][tx];
    partial[int64_t(blockIdx.y) * F + f] = s;
  }
}

// out[f] = sum of the chunk partials in chunk order (divided by N for the mean).
template <class T>
__global__ void column_sum_finish(const double* __restrict__ partial, int64_t nchunks, int64_t F,
                                  double divisor, T* __restrict__ out) {
  for (int64_t f = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; f < F;
       f += int64_t(gridDim.x) * blockDim.x) {
    double s = 0;
    for (int64_t c = 0; c < nchunks; ++c) s += partial[c * F + f];
    out[f] = T(s / divisor);
  }
}

// Does (v, i) beat (best, bi)? NaN beats every number, then larger values, then lower indices.
// bi < 0 means "nothing yet".
template <class T>
__device__ __forceinline__ bool beats(T v, int64_t i, T best, int64_t bi) {
  if (bi < 0) return i >= 0;
  if (i < 0) return false;
  const bool vn = isnan(v), bn = isnan(best);
  if (vn != bn) return vn;
  if (vn) return i < bi;
  return v > best || (v == best && i < bi);
}

// The warp's argmax of row x[0, F): each lane scans its strided elements in order, then a
// shuffle tree merges lanes with the full tie rule. The result is in every lane.
template <class T>
__device__ int64_t warp_argmax(const T* __restrict__ row, int64_t F, int lane) {
  T best = T(0);
  int64_t bi = -1;
  for (int64_t f = lane; f < F; f += 32) {
    const T v = row[f];
    if (beats(v, f, best, bi)) {
      best = v;
      bi = f;
    }
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const T ov = __shfl_xor_sync(0xffffffffu, best, off);
    const int64_t oi = __shfl_xor_sync(0xffffffffu, bi, off);
    if (beats(ov, oi, best, bi)) {
      best = ov;
      bi = oi;
    }
  }
  return bi;
}

template <class T>
__global__ void __launch_bounds__(32 * kWarpsPerBlock)
    argmax_rows_kernel(const T* __restrict__ x, int64_t N, int64_t F, int64_t* __restrict__ idx) {
  const int lane = threadIdx.x & 31;
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t nwarps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t r = warp; r < N; r += nwarps) {
    const int64_t bi = warp_argmax(x + r * F, F, lane);
    if (lane == 0) idx[r] = bi;
  }
}

// Integer counts: atomics add them in any order and still give the same result.
template <class T>
__global__ void __launch_bounds__(32 * kWarpsPerBlock)
    count_correct_kernel(const T* __restrict__ s, const int64_t* __restrict__ labels, int64_t N,
                         int64_t C, unsigned long long* __restrict__ out) {
  __shared__ unsigned long long block_counts[2];
  if (threadIdx.x < 2) block_counts[threadIdx.x] = 0;
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t nwarps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  unsigned long long correct = 0, bad = 0;
  for (int64_t r = warp; r < N; r += nwarps) {
    const int64_t bi = warp_argmax(s + r * C, C, lane);
    if (lane == 0) {
      const int64_t y = labels[r];
      if (y < 0 || y >= C) ++bad;
      else if (y == bi) ++correct;
    }
  }
  if (lane == 0) {
    if (correct) atomicAdd(&block_counts[0], correct);
    if (bad) atomicAdd(&block_counts[1], bad);
  }
  __syncthreads();
  if (threadIdx.x < 2 && block_counts[threadIdx.x]) atomicAdd(&out[threadIdx.x], block_counts[threadIdx.x]);
}

unsigned row_grid(int64_t N) {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    cudaGetLastError();
    sms = 132;
  }
  const int64_t want = (N + kWarpsPerBlock - 1) / kWarpsPerBlock;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(want, int64_t(sms) * 16)));
}

}  // namespace

ColumnTiling column_tiling(int64_t N, int64_t F) {
  ColumnTiling t;
  t.ftiles = F > 0 ? (F + TX - 1) / TX : 0;
  if (N <= 0 || F <= 0) {
    t.rows_per_chunk = 1;
    t.nchunks = 0;
    return t;
  }
  // About 1024 blocks in all (enough for any GPU's SMs), chunks of at least 64 rows; a
  // function of (N, F) only, so results never depend on the device.
  const int64_t want = std::max<int64_t>(1, std::min<int64_t>((1024 + t.ftiles - 1) / t.ftiles,
                                                             (N + 63) / 64));
  t.rows_per_chunk = (N + want - 1) / want;
  t.nchunks = (N + t.rows_per_chunk - 1) / t.rows_per_chunk;
  return t;
}

int64_t column_sums_workspace_bytes(int64_t N, int64_t F) {
  const ColumnTiling t = column_tiling(N, F);
  return t.nchunks * std::max<int64_t>(F, 0) * int64_t(sizeof(double));
}

template <class T>
void sum_rows(const T* x, int64_t N, int64_t F, T* out, bool mean, void* workspace,
              int64_t workspace_bytes, void* stream) {
  FASTNN_CHECK(N >= 0 && F >= 0, "cuda sum_rows: negative shape");
  FASTNN_CHECK(!mean || N > 0, "x: expected at least one row to average, got 0");
  if (F == 0) return;
  FASTNN_CHECK(out != nullptr && (N == 0 || x != nullptr), "cuda sum_rows: null pointer");
  const ColumnTiling t = column_tiling(N, F);
  FASTNN_CHECK(workspace_bytes >= column_sums_workspace_bytes(N, F) && (t.nchunks == 0 || workspace),
               "cuda sum_rows: workspace too small (need " +
                   std::to_string(column_sums_workspace_bytes(N, F)) + " bytes)");
  const auto s = static_cast<cudaStream_t>(stream);
  auto* partial = static_cast<double*>(workspace);
  cudaGetLastError();
  if (t.nchunks > 0) {
    column_sum_partials<T><<<dim3(unsigned(t.ftiles), unsigned(t.nchunks)), dim3(TX, TY), 0, s>>>(
        x, N, F, t.rows_per_chunk, partial);
    check_launch("column_sum_partials");
  }
  const unsigned blocks = unsigned(std::min<int64_t>((F + 255) / 256, 4096));
  column_sum_finish<T><<<blocks, 256, 0, s>>>(partial, t.nchunks, F, mean ? double(N) : 1.0, out);
  check_launch("column_sum_finish");
}

template <class T>
void argmax_rows(const T* x, int64_t N, int64_t F, int64_t* idx, void* stream) {
  FASTNN_CHECK(N >= 0, "cuda argmax_rows: negative N");
  if (N == 0) return;
  FASTNN_CHECK(F > 0, "x: expected at least one column, got 0");
  FASTNN_CHECK(x && idx, "cuda argmax_rows: null pointer");
  cudaGetLastError();
  argmax_rows_kernel<T><<<row_grid(N), 32 * kWarpsPerBlock, 0, static_cast<cudaStream_t>(stream)>>>(
      x, N, F, idx);
  check_launch("argmax_rows_kernel");
}

template <class T>
void count_correct(const T* scores, const int64_t* labels, int64_t N, int64_t C, int64_t* out,
                   void* stream) {
  FASTNN_CHECK(N >= 0, "cuda count_correct: negative N");
  FASTNN_CHECK(out != nullptr, "cuda count_correct: out is null");
  FASTNN_CHECK(N == 0 || C > 0, "scores: expected at least one class, got 0");
  FASTNN_CHECK(N == 0 || (scores && labels), "cuda count_correct: null pointer");
  const auto s = static_cast<cudaStream_t>(stream);
  cudaGetLastError();
  const cudaError_t err = cudaMemsetAsync(out, 0, 2 * sizeof(int64_t), s);
  if (err != cudaSuccess)
    throw CudaError(std::string("fastnn: cudaMemsetAsync for count_correct failed: ") +
                    cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
  if (N == 0) return;
  count_correct_kernel<T><<<row_grid(N), 32 * kWarpsPerBlock, 0, s>>>(
      scores, labels, N, C, reinterpret_cast<unsigned long long*>(out));
  check_launch("count_correct_kernel");
}

#define FASTNN_CUDA_REDUCE_INSTANTIATE(T)                                                        \
  template void sum_rows<T>(const T*, int64_t, int64_t, T*, bool, void*, int64_t, void*);         \
  template void argmax_rows<T>(const T*, int64_t, int64_t, int64_t*, void*);                     \
  template void count_correct<T>(const T*, const int64_t*, int64_t, int64_t, int64_t*, void*);
FASTNN_CUDA_REDUCE_INSTANTIATE(float)
FASTNN_CUDA_REDUCE_INSTANTIATE(double)
#undef FASTNN_CUDA_REDUCE_INSTANTIATE

}  // namespace cuda
}  // namespace fastnn
