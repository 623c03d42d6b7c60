// Activation entry points (see activations.h): the plain scalar loops, which are the reference
// and the float64 kernels, the one switch on the SIMD path for float32, and the split into
// thread-pool chunks.
#include "cpu/activations.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/act_math.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/parallel.h"

namespace fastnn {
namespace cpu {

#define FASTNN_DECLARE_ACTIVATIONS(isa)                                                          \
  namespace isa {                                                                                \
  void act_forward(Act act, float param, const float* x, float* y, int64_t n);                  \
  void act_backward(Act act, float param, const float* dy, const float* v, float* dx, int64_t n, \
                    bool from_output);                                                           \
  void softmax_rows(const float* x, float* y, int64_t rows, int64_t cols, bool log);            \
  void softmax_rows_backward(const float* dy, const float* y, float* dx, int64_t rows,          \
                             int64_t cols, bool log);                                            \
  }
#ifdef FASTNN_X86
FASTNN_DECLARE_ACTIVATIONS(avx2)
FASTNN_DECLARE_ACTIVATIONS(avx512)
#endif
#undef FASTNN_DECLARE_ACTIVATIONS

namespace {

// Elements per task: a task (~64 KiB of float in, as much out) outweighs the pool's hand-off.
constexpr int64_t kChunk = int64_t(1) << 14;
// Below this many elements the pool costs more than it saves.
constexpr int64_t kParallelMin = int64_t(1) << 16;
// parallel_for counts tasks in an int.
constexpr int64_t kMaxTasks = int64_t(1) << 24;

// body(begin, end) over [0, n) cut into chunks of a size that depends on n only.
template <class Body>
void for_chunks(int64_t n, int64_t chunk, int64_t item_cost, const Body& body) {
  if (n <= 0) return;
  chunk = std::max(chunk, (n + kMaxTasks - 1) / kMaxTasks);
  const int64_t ntasks = (n + chunk - 1) / chunk;
  if (ntasks == 1 || n * item_cost < kParallelMin) return body(int64_t(0), n);
  parallel_for(static_cast<int>(ntasks), [&](int k) {
    const int64_t b = int64_t(k) * chunk;
    body(b, std::min(n, b + chunk));
  });
}

// ------------------------------------------------------------------ scalar path
// core/act_math.h evaluated in double whatever T is: the float32 fallback is then correctly
// rounded (or nearly), the yardstick the SIMD paths are tested against.
template <class T>
void forward_scalar(Act act, T p, const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(act_math::forward<double>(act, p, x[i]));
}

template <class T>
void backward_scalar(Act act, T p, const T* dy, const T* v, T* dx, int64_t n, bool from_output) {
  for (int64_t i = 0; i < n; ++i) {
    const double d = from_output ? act_math::derivative_from_output<double>(act, p, v[i])
                                 : act_math::derivative<double>(act, p, v[i]);
    dx[i] = static_cast<T>(double(dy[i]) * d);
  }
}

template <class T>
void softmax_rows_scalar(const T* x, T* y, int64_t rows, int64_t cols, bool log) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    double m = -INFINITY;
    for (int64_t j = 0; j < cols; ++j) m = xr[j] > m ? double(xr[j]) : m;
    double s = 0;  // every exponent x - max <= 0: no overflow
    for (int64_t j = 0; j < cols; ++j) s += std::exp(double(xr[j]) - m);
    const double ls = std::log(s);
    for (int64_t j = 0; j < cols; ++j) {
      const double d = double(xr[j]) - m;
      yr[j] = static_cast<T>(log ? d - ls : std::exp(d) / s);
    }
  }
}

template <class T>
void softmax_rows_backward_scalar(const T* dy, const T* y, T* dx, int64_t rows, int64_t cols,
                                  bool log) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* g = dy + r * cols;
    const T* yr = y + r * cols;
    T* d = dx + r * cols;
    double s = 0;
    for (int64_t j = 0; j < cols; ++j) s += log ? double(g[j]) : double(g[j]) * double(yr[j]);
    for (int64_t j = 0; j < cols; ++j)
      d[j] = static_cast<T>(log ? double(g[j]) - std::exp(double(yr[j])) * s
                                : double(yr[j]) * (double(g[j]) - s));
  }
}

// ------------------------------------------------------------------ dispatch
void forward_chunk(Act act, float p, const float* x, float* y, int64_t n) {
  switch (active_simd()) {
#ifdef FASTNN_X86
    case Simd::Avx512: return avx512::act_forward(act, p, x, y, n);
    case Simd::Avx2: return avx2::act_forward(act, p, x, y, n);
#endif
    default: return forward_scalar(act, p, x, y, n);
  }
}
void forward_chunk(Act act, double p, const double* x, double* y, int64_t n) {
  forward_scalar(act, p, x, y, n);
}

void backward_chunk(Act act, float p, const float* dy, const float* v, float* dx, int64_t n,
                    bool from_output) {
  switch (active_simd()) {
#ifdef FASTNN_X86
    case Simd::Avx512: return avx512::act_backward(act, p, dy, v, dx, n, from_output);
    case Simd::Avx2: return avx2::act_backward(act, p, dy, v, dx, n, from_output);
#endif
    default: return backward_scalar(act, p, dy, v, dx, n, from_output);
  }
}
void backward_chunk(Act act, double p, const double* dy, const double* v, double* dx, int64_t n,
                    bool from_output) {
  backward_scalar(act, p, dy, v, dx, n, from_output);
}

void softmax_chunk(const float* x, float* y, int64_t rows, int64_t cols, bool log) {
  switch (active_simd()) {
#ifdef FASTNN_X86
    case Simd::Avx512: return avx512::softmax_rows(x, y, rows, cols, log);
    case Simd::Avx2: return avx2::softmax_rows(x, y, rows, cols, log);
#endif
    default: return softmax_rows_scalar(x, y, rows, cols, log);
  }
}
void softmax_chunk(const double* x, double* y, int64_t rows, int64_t cols, bool log) {
  softmax_rows_scalar(x, y, rows, cols, log);
}

void softmax_backward_chunk(const float* dy, const float* y, float* dx, int64_t rows,
                            int64_t cols, bool log) {
  switch (active_simd()) {
#ifdef FASTNN_X86
    case Simd::Avx512: return avx512::softmax_rows_backward(dy, y, dx, rows, cols, log);
    case Simd::Avx2: return avx2::softmax_rows_backward(dy, y, dx, rows, cols, log);
#endif
    default: return softmax_rows_backward_scalar(dy, y, dx, rows, cols, log);
  }
}
void softmax_backward_chunk(const double* dy, const double* y, double* dx, int64_t rows,
                            int64_t cols, bool log) {
  softmax_rows_backward_scalar(dy, y, dx, rows, cols, log);
}

// Rows are never split: a row's sums run in one task, in one order, for any thread count.
int64_t rows_per_task(int64_t cols) { return std::max<int64_t>(1, kChunk / std::max<int64_t>(cols, 1)); }

}  // namespace

template <class T>
void act_forward(Act act, T param, const T* x, T* y, int64_t n) {
  for_chunks(n, kChunk, 1, [&](int64_t b, int64_t e) { forward_chunk(act, param, x + b, y + b, e - b); });
}

template <class T>
void act_backward(Act act, T param, const T* dy, const T* x, T* dx, int64_t n) {
  for_chunks(n, kChunk, 1, [&](int64_t b, int64_t e) {
    backward_chunk(act, param, dy + b, x + b, dx + b, e - b, false);
  });
}

template <class T>
void act_backward_from_output(Act act, T param, const T* dy, const T* y, T* dx, int64_t n) {
  if (!act_grad_from_output_ok(act, param))
    throw ValueError(std::string("activation: the gradient of '") + act_name(act) +
                     "' with this parameter cannot be computed from its output; pass the input");
  for_chunks(n, kChunk, 1, [&](int64_t b, int64_t e) {
    backward_chunk(act, param, dy + b, y + b, dx + b, e - b, true);
  });
}

template <class T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t cols) {
  for_chunks(rows, rows_per_task(cols), cols, [&](int64_t b, int64_t e) {
    softmax_chunk(x + b * cols, y + b * cols, e - b, cols, false);
  });
}

template <class T>
void log_softmax_rows(const T* x, T* y, int64_t rows, int64_t cols) {
  for_chunks(rows, rows_per_task(cols), cols, [&](int64_t b, int64_t e) {
    softmax_chunk(x + b * cols, y + b * cols, e - b, cols, true);
  });
}

template <class T>
void softmax_rows_backward(const T* dy, const T* y, T* dx, int64_t rows, int64_t cols) {
  for_chunks(rows, rows_per_task(cols), cols, [&](int64_t b, int64_t e) {
    softmax_backward_chunk(dy + b * cols, y + b * cols, dx + b * cols, e - b, cols, false);
  });
}

template <class T>
void log_softmax_rows_backward(const T* dy, const T* y, T* dx, int64_t rows, int64_t cols) {
  for_chunks(rows, rows_per_task(cols), cols, [&](int64_t b, int64_t e) {
    softmax_backward_chunk(dy + b * cols, y + b * cols, dx + b * cols, e - b, cols, true);
  });
}

#define FASTNN_INSTANTIATE(T)                                                                \
  template void act_forward<T>(Act, T, const T*, T*, int64_t);                               \
  template void act_backward<T>(Act, T, const T*, const T*, T*, int64_t);                    \
  template void act_backward_from_output<T>(Act, T, const T*, const T*, T*, int64_t);        \
  template void softmax_rows<T>(const T*, T*, int64_t, int64_t);                             \
  template void log_softmax_rows<T>(const T*, T*, int64_t, int64_t);                         \
  template void softmax_rows_backward<T>(const T*, const T*, T*, int64_t, int64_t);          \
  template void log_softmax_rows_backward<T>(const T*, const T*, T*, int64_t, int64_t);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace cpu
}  // namespace fastnn
