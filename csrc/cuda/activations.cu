// Activations on the GPU (see activations.h). The element-wise kernels are bandwidth-bound: one
// grid-stride loop, 128-bit loads and stores for float32 when every pointer is 16-byte aligned,
// a grid sized to the SM count. The softmax kernels give each row to a group of 4, 16 or 32 lanes
// (or the block, for wide rows) and find its max and sum in a single online pass.
#include "cuda/activations.h"

#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <string>

#include "core/act_math.h"
#include "core/error.h"
#include "cuda/elem_util.cuh"

namespace fastnn {
namespace cuda {
namespace {

using namespace elem;

// ------------------------------------------------------------------ element-wise kernels
// x, y (n,). vec4: the float4 path (float only, every pointer 16-byte aligned).
template <class T>
__global__ void __launch_bounds__(kThreads)
    act_forward_kernel(Act act, T p, const T* x, T* y, int64_t n, bool vec4) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if constexpr (sizeof(T) == 4) {
    if (vec4) {
      const int64_t n4 = n / 4;
      const float4* x4 = reinterpret_cast<const float4*>(x);
      float4* y4 = reinterpret_cast<float4*>(y);
      for (int64_t k = i; k < n4; k += stride) {
        float4 v = x4[k];
        v.x = act_math::forward(act, p, v.x);
        v.y = act_math::forward(act, p, v.y);
        v.z = act_math::forward(act, p, v.z);
        v.w = act_math::forward(act, p, v.w);
        y4[k] = v;
      }
      done = n4 * 4;
    }
  }
  for (int64_t k = done + i; k < n; k += stride) y[k] = act_math::forward(act, p, x[k]);
}

// dy, v, dx (n,); v is x (from_output false) or y = act(x).
template <class T>
__global__ void __launch_bounds__(kThreads)
    act_backward_kernel(Act act, T p, const T* dy, const T* v, T* dx, int64_t n, bool from_output,
                        bool vec4) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  auto grad = [&](T g, T a) {
    return g * (from_output ? act_math::derivative_from_output(act, p, a)
                            : act_math::derivative(act, p, a));
  };
  int64_t done = 0;
  if constexpr (sizeof(T) == 4) {
    if (vec4) {
      const int64_t n4 = n / 4;
      const float4* g4 = reinterpret_cast<const float4*>(dy);
      const float4* v4 = reinterpret_cast<const float4*>(v);
      float4* d4 = reinterpret_cast<float4*>(dx);
      for (int64_t k = i; k < n4; k += stride) {
        const float4 g = g4[k], a = v4[k];
        d4[k] = make_float4(grad(g.x, a.x), grad(g.y, a.y), grad(g.z, a.z), grad(g.w, a.w));
      }
      done = n4 * 4;
    }
  }
  for (int64_t k = done + i; k < n; k += stride) dx[k] = grad(dy[k], v[k]);
}

// ------------------------------------------------------------------ row kernels
// x, y (rows, cols), G threads per row (RowGroup). Block b takes rows b * R + k * grid * R for
// k = 0, 1, ... (R = rows per block), group g of the block the g-th of those; the loop bound is
// the same for the whole block, so every thread reaches every shuffle and barrier, and a group
// past the last row only joins in with no elements.
template <class T, int G>
__global__ void __launch_bounds__(kThreads)
    softmax_rows_kernel(const T* x, T* y, int64_t rows, int64_t cols, bool log) {
  constexpr int R = RowGroup<G>::kRowsPerBlock;
  const int lane = threadIdx.x % G;
  const int64_t step = int64_t(gridDim.x) * R;
  for (int64_t base = int64_t(blockIdx.x) * R; base < rows; base += step) {
    const int64_t r = base + threadIdx.x / G;
    const int64_t n = r < rows ? cols : 0;  // this group's elements
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    MaxSum a{-INFINITY, 0.0};
    for (int64_t j = lane; j < n; j += G) online_add(a, xr[j]);
    a = group_merge<T, G>(a);
    const T m = T(a.m);
    if (log) {
      // log softmax = (x - max) - log(sum e^(x - max)): no overflow
      const T ls = T(::log(a.s));
      for (int64_t j = lane; j < n; j += G) yr[j] = (xr[j] - m) - ls;
    } else {
      const T inv = T(1.0 / a.s);
      for (int64_t j = lane; j < n; j += G) yr[j] = typed_math::exp_(xr[j] - m) * inv;
    }
  }
}

// dy, y, dx (rows, cols); the same row assignment as softmax_rows_kernel.
template <class T, int G>
__global__ void __launch_bounds__(kThreads)
    softmax_rows_backward_kernel(const T* dy, const T* y, T* dx, int64_t rows, int64_t cols,
                                 bool log) {
  constexpr int R = RowGroup<G>::kRowsPerBlock;
  const int lane = threadIdx.x % G;
  const int64_t step = int64_t(gridDim.x) * R;
  for (int64_t base = int64_t(blockIdx.x) * R; base < rows; base += step) {
    const int64_t r = base + threadIdx.x / G;
    const int64_t n = r < rows ? cols : 0;
    const T* g = dy + r * cols;
    const T* yr = y + r * cols;
    T* d = dx + r * cols;
    double s = 0;
    for (int64_t j = lane; j < n; j += G) s += log ? double(g[j]) : double(g[j]) * double(yr[j]);
    const T st = T(group_sum<double, G>(s));
    // dx may alias dy: each element is read and then written by the same thread.
    for (int64_t j = lane; j < n; j += G)
      d[j] = log ? g[j] - typed_math::exp_(yr[j]) * st : yr[j] * (g[j] - st);
  }
}

// c may be null (act_forward has two arrays).
void check_n(int64_t n, const void* a, const void* b, const void* c, const char* what) {
  FASTNN_CHECK(n >= 0, std::string(what) + ": n must be non-negative, got " + std::to_string(n));
  FASTNN_CHECK(n == 0 || (a && b), std::string(what) + ": null device pointer");
}

bool all_aligned16(const void* a, const void* b, const void* c = nullptr) {
  return aligned(a, 16) && aligned(b, 16) && (c == nullptr || aligned(c, 16));
}

template <class T, int G>
void launch_rows_g(const T* x, T* y, int64_t rows, int64_t cols, bool log, cudaStream_t s,
                   const T* dy) {
  const unsigned grid = grid_for(rows, RowGroup<G>::kRowsPerBlock);
  if (dy) {
    softmax_rows_backward_kernel<T, G><<<grid, kThreads, 0, s>>>(dy, x, y, rows, cols, log);
    check_launch("softmax_rows_backward_kernel");
  } else {
    softmax_rows_kernel<T, G><<<grid, kThreads, 0, s>>>(x, y, rows, cols, log);
    check_launch("softmax_rows_kernel");
  }
}

// Forward: x -> y. Backward (dy given): (dy, x = the forward output) -> y = dx.
template <class T>
void launch_rows(const T* x, T* y, int64_t rows, int64_t cols, bool log, cudaStream_t s,
                 bool backward, const T* dy) {
  FASTNN_CHECK(rows >= 0 && cols >= 0, "softmax: rows and cols must be non-negative");
  if (rows == 0 || cols == 0) return;
  FASTNN_CHECK(x && y && (!backward || dy), "softmax: null device pointer");
  clear_launch_error();
  switch (row_shape(cols)) {
    case RowShape::G4: return launch_rows_g<T, 4>(x, y, rows, cols, log, s, dy);
    case RowShape::G16: return launch_rows_g<T, 16>(x, y, rows, cols, log, s, dy);
    case RowShape::G32: return launch_rows_g<T, 32>(x, y, rows, cols, log, s, dy);
    case RowShape::Block: return launch_rows_g<T, kThreads>(x, y, rows, cols, log, s, dy);
  }
}

}  // namespace

template <class T>
void act_forward(Act act, T param, const T* x, T* y, int64_t n, void* stream) {
  check_n(n, x, y, nullptr, "act_forward");
  if (n == 0) return;
  const bool vec4 = sizeof(T) == 4 && all_aligned16(x, y);
  clear_launch_error();
  // y may alias x: each element is read and then written by the same thread, so no __restrict__.
  act_forward_kernel<T><<<grid_for(vec4 ? (n + 3) / 4 : n), kThreads, 0,
                          static_cast<cudaStream_t>(stream)>>>(act, param, x, y, n, vec4);
  check_launch("act_forward_kernel");
}

template <class T>
void act_backward(Act act, T param, const T* dy, const T* x, T* dx, int64_t n, void* stream) {
  check_n(n, dy, x, dx, "act_backward");
  FASTNN_CHECK(n == 0 || dx, "act_backward: null device pointer");
  if (n == 0) return;
  const bool vec4 = sizeof(T) == 4 && all_aligned16(dy, x, dx);
  clear_launch_error();
  act_backward_kernel<T><<<grid_for(vec4 ? (n + 3) / 4 : n), kThreads, 0,
                           static_cast<cudaStream_t>(stream)>>>(act, param, dy, x, dx, n, false,
                                                                vec4);
  check_launch("act_backward_kernel");
}

template <class T>
void act_backward_from_output(Act act, T param, const T* dy, const T* y, T* dx, int64_t n,
                              void* stream) {
  if (!act_grad_from_output_ok(act, double(param)))
    throw ValueError(std::string("activation: the gradient of '") + act_name(act) +
                     "' with this parameter cannot be computed from its output; pass the input");
  check_n(n, dy, y, dx, "act_backward_from_output");
  FASTNN_CHECK(n == 0 || dx, "act_backward_from_output: null device pointer");
  if (n == 0) return;
  const bool vec4 = sizeof(T) == 4 && all_aligned16(dy, y, dx);
  clear_launch_error();
  act_backward_kernel<T><<<grid_for(vec4 ? (n + 3) / 4 : n), kThreads, 0,
                           static_cast<cudaStream_t>(stream)>>>(act, param, dy, y, dx, n, true,
                                                                vec4);
  check_launch("act_backward_kernel(from_output)");
}

template <class T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t cols, bool log, void* stream) {
  launch_rows<T>(x, y, rows, cols, log, static_cast<cudaStream_t>(stream), false, nullptr);
}

template <class T>
void softmax_rows_backward(const T* dy, const T* y, T* dx, int64_t rows, int64_t cols, bool log,
                           void* stream) {
  // launch_rows(x = y, y = dx, ..., dy): the backward kernel reads (dy, y) and writes dx.
  launch_rows<T>(y, dx, rows, cols, log, static_cast<cudaStream_t>(stream), true, dy);
}

#define FASTNN_INSTANTIATE(T)                                                                  \
  template void act_forward<T>(Act, T, const T*, T*, int64_t, void*);                          \
  template void act_backward<T>(Act, T, const T*, const T*, T*, int64_t, void*);               \
  template void act_backward_from_output<T>(Act, T, const T*, const T*, T*, int64_t, void*);   \
  template void softmax_rows<T>(const T*, T*, int64_t, int64_t, bool, void*);                  \
  template void softmax_rows_backward<T>(const T*, const T*, T*, int64_t, int64_t, bool, void*);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace cuda
}  // namespace fastnn
