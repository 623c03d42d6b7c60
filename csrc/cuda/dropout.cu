// Dropout on the GPU (see dropout.h). A thread handles one Philox block -- four consecutive
// elements, one 128-bit load and store of float32 and one 32-bit store of mask bytes when the
// pointers allow -- so the mask is a function of (seed, index) alone, whatever the grid.
// Philox 4x32-10 costs about 40 integer instructions per four elements: under the 36 bytes of
// memory traffic those elements take on an H100, so the kernel stays bandwidth-bound.
#include "cuda/dropout.h"

#include <cuda_runtime.h>

#include <cmath>
#include <string>

#include "core/error.h"
#include "core/philox.h"
#include "cuda/elem_util.cuh"

namespace fastnn {
namespace cuda {
namespace {

using namespace elem;

// x, y, mask (n,); keep_from: the smallest top-24-bit value that keeps an element. A dropped
// element is +0 (a select, not x * 0: an infinite x still gives 0), a kept one x * scale -- the
// same single rounding as the CPU, so y matches it bit for bit too. vec: float only, x and y
// 16-byte aligned and mask 4-byte aligned.
template <class T>
__global__ void __launch_bounds__(kThreads)
    dropout_forward_kernel(const T* x, T* y, uint8_t* mask, int64_t n, uint32_t keep_from,
                           T scale, uint32_t k0, uint32_t k1, bool vec, const uint64_t* seed_dev) {
  if (seed_dev) {  // the key from device memory (a CUDA graph replays this launch every step)
    const uint64_t s = *seed_dev;
    k0 = uint32_t(s);
    k1 = uint32_t(s >> 32);
  }
  const int64_t blocks = (n + 3) / 4;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < blocks; b += stride) {
    const Philox4x32 r = philox4x32_10(uint32_t(b), uint32_t(uint64_t(b) >> 32), 0u, 0u, k0, k1);
    bool keep[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) keep[j] = (r.v[j] >> 8) >= keep_from;
    const int64_t e0 = b * 4;
    if constexpr (sizeof(T) == 4) {
      if (vec && e0 + 4 <= n) {
        const float4 v = reinterpret_cast<const float4*>(x)[b];
        reinterpret_cast<float4*>(y)[b] =
            make_float4(keep[0] ? v.x * scale : 0.f, keep[1] ? v.y * scale : 0.f,
                        keep[2] ? v.z * scale : 0.f, keep[3] ? v.w * scale : 0.f);
        // Little-endian: byte j of the word is element e0 + j.
        reinterpret_cast<uint32_t*>(mask)[b] = uint32_t(keep[0]) | (uint32_t(keep[1]) << 8) |
                                               (uint32_t(keep[2]) << 16) |
                                               (uint32_t(keep[3]) << 24);
        continue;
      }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t e = e0 + j;
      if (e < n) {
        const T v = x[e];
        y[e] = keep[j] ? v * scale : T(0);
        mask[e] = keep[j];
      }
    }
  }
}

// dy, mask, dx (n,); the same four-element grouping and alignment rule as the forward.
template <class T>
__global__ void __launch_bounds__(kThreads)
    dropout_backward_kernel(const T* dy, const uint8_t* mask, T* dx, int64_t n, T scale,
                            bool vec) {
  const int64_t groups = (n + 3) / 4;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < groups; b += stride) {
    const int64_t e0 = b * 4;
    if constexpr (sizeof(T) == 4) {
      if (vec && e0 + 4 <= n) {
        const float4 g = reinterpret_cast<const float4*>(dy)[b];
        const uint32_t m = reinterpret_cast<const uint32_t*>(mask)[b];
        reinterpret_cast<float4*>(dx)[b] =
            make_float4((m & 0xffu) ? g.x * scale : 0.f, (m & 0xff00u) ? g.y * scale : 0.f,
                        (m & 0xff0000u) ? g.z * scale : 0.f, (m & 0xff000000u) ? g.w * scale : 0.f);
        continue;
      }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t e = e0 + j;
      if (e < n) dx[e] = mask[e] ? dy[e] * scale : T(0);
    }
  }
}

void check_rate(double rate) {
  FASTNN_CHECK(std::isfinite(rate) && rate >= 0 && rate <= 1,
               "rate: expected a number in [0, 1], got " + std::to_string(rate));
}

}  // namespace

template <class T>
void dropout_forward(const T* x, T* y, uint8_t* mask, int64_t n, double rate, uint64_t seed,
                     void* stream, const uint64_t* seed_dev) {
  check_rate(rate);
  FASTNN_CHECK(n >= 0, "dropout_forward: n must be non-negative, got " + std::to_string(n));
  if (n == 0) return;
  FASTNN_CHECK(x && y && mask, "dropout_forward: null device pointer");
  const uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  const uint32_t keep_from = dropout_keep_from(rate);
  const T scale = dropout_scale<T>(rate);
  const bool vec = sizeof(T) == 4 && aligned(x, 16) && aligned(y, 16) && aligned(mask, 4);
  clear_launch_error();
  dropout_forward_kernel<T><<<grid_for((n + 3) / 4), kThreads, 0,
                              static_cast<cudaStream_t>(stream)>>>(x, y, mask, n, keep_from,
                                                                   scale, k0, k1, vec, seed_dev);
  check_launch("dropout_forward_kernel");
}

template <class T>
void dropout_backward(const T* dy, const uint8_t* mask, T* dx, int64_t n, double rate,
                      void* stream) {
  check_rate(rate);
  FASTNN_CHECK(n >= 0, "dropout_backward: n must be non-negative, got " + std::to_string(n));
  if (n == 0) return;
  FASTNN_CHECK(dy && mask && dx, "dropout_backward: null device pointer");
  const T scale = dropout_scale<T>(rate);
  const bool vec = sizeof(T) == 4 && aligned(dy, 16) && aligned(dx, 16) && aligned(mask, 4);
  clear_launch_error();
  dropout_backward_kernel<T><<<grid_for((n + 3) / 4), kThreads, 0,
                               static_cast<cudaStream_t>(stream)>>>(dy, mask, dx, n, scale, vec);
  check_launch("dropout_backward_kernel");
}

template void dropout_forward<float>(const float*, float*, uint8_t*, int64_t, double, uint64_t,
                                     void*, const uint64_t*);
template void dropout_forward<double>(const double*, double*, uint8_t*, int64_t, double,
                                      uint64_t, void*, const uint64_t*);
template void dropout_backward<float>(const float*, const uint8_t*, float*, int64_t, double,
                                      void*);
template void dropout_backward<double>(const double*, const uint8_t*, double*, int64_t, double,
                                       void*);

}  // namespace cuda
}  // namespace fastnn
