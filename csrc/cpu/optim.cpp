// Fused multi-tensor optimizer updates (see optim.h): the chunking, the scalars computed once
// per call, and the choice of loops. The loops themselves (optim_loops.h) are plain C++ compiled
// once per instruction set: at SSE2 width the sqrt and two divisions of an Adam element cost
// more than its 28 bytes of memory traffic, so wider vectors are needed to reach the copy
// bandwidth.
#include "cpu/optim.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/optim_kernels.h"

namespace fastnn {
namespace cpu {

namespace {

// Elements per chunk: a task big enough to outweigh the pool's hand-off (~1 us) and small
// enough that a 1M-element tensor still spreads over many cores.
constexpr int64_t kChunkElems = int64_t(1) << 15;
// Below this many elements in all the pool costs more than it saves.
constexpr int64_t kParallelMin = int64_t(1) << 16;
// parallel_for counts tasks in an int; chunks grow (by the sizes alone) before that overflows.
constexpr int64_t kMaxChunks = int64_t(1) << 24;

struct Chunk {
  int64_t tensor, begin, end;
};

// The chunks of tensors with the given sizes: each tensor is cut on its own, so a chunk never
// spans two tensors. The cut depends on the sizes only, never on the thread count.
template <class SizeOf>
std::vector<Chunk> plan_chunks(int64_t count, const SizeOf& size_of) {
  int64_t total = 0;
  for (int64_t i = 0; i < count; ++i) total += size_of(i);
  const int64_t chunk = std::max(kChunkElems, (total + kMaxChunks - 1) / kMaxChunks);
  std::vector<Chunk> chunks;
  chunks.reserve(static_cast<size_t>(total / chunk + count));
  for (int64_t i = 0; i < count; ++i)
    for (int64_t b = 0, n = size_of(i); b < n; b += chunk)
      chunks.push_back({i, b, std::min(n, b + chunk)});
  return chunks;
}

// Runs body(chunk index, chunk) for every chunk, on the pool when there is enough work.
template <class Body>
void run_chunks(const std::vector<Chunk>& chunks, const Body& body) {
  int64_t total = 0;
  for (const Chunk& c : chunks) total += c.end - c.begin;
  auto task = [&](int k) { body(k, chunks[k]); };
  if (chunks.size() > 1 && total >= kParallelMin)
    parallel_for(static_cast<int>(chunks.size()), task);
  else
    for (size_t k = 0; k < chunks.size(); ++k) task(static_cast<int>(k));
}

template <class T, class Loop>
void for_each_chunk(const OptimTensor<T>* t, int64_t count, const Loop& loop) {
  const std::vector<Chunk> chunks = plan_chunks(count, [&](int64_t i) { return t[i].n; });
  run_chunks(chunks, [&](int, const Chunk& c) { loop(t[c.tensor], c.begin, c.end - c.begin); });
}

template <class T>
GradIn<T> grad_in(const OptimTensor<T>& t, double grad_scale) {
  return {T(grad_scale), T(t.l1), T(2.0 * t.l2)};
}

// The loops of the active instruction set.
const OptimLoops<float>& loops(float*) {
  switch (active_simd()) {
#ifdef FASTNN_X86
    case Simd::Avx512: return avx512::optim_loops_f32();
    case Simd::Avx2: return avx2::optim_loops_f32();
#endif
    default: return scalar::optim_loops_f32();
  }
}
const OptimLoops<double>& loops(double*) {
  switch (active_simd()) {
#ifdef FASTNN_X86
    case Simd::Avx512: return avx512::optim_loops_f64();
    case Simd::Avx2: return avx2::optim_loops_f64();
#endif
    default: return scalar::optim_loops_f64();
  }
}
template <class T>
const OptimLoops<T>& loops() {
  return loops(static_cast<T*>(nullptr));
}

template <class T>
void sgd_impl(const OptimTensor<T>* t, int64_t count, const SgdOptions& o) {
  const SgdConst<T> c{T(-o.lr), T(o.weight_decay), T(o.momentum), T(1.0 - o.dampening),
                      o.nesterov};
  const auto loop = loops<T>().sgd[o.momentum == 0 ? 0 : o.first_step ? 1 : 2];
  for_each_chunk(t, count, [&](const OptimTensor<T>& x, int64_t b, int64_t n) {
    loop(n, x.param + b, x.grad + b, x.state[0] ? x.state[0] + b : nullptr,
         grad_in(x, o.grad_scale), c);
  });
}

template <class T>
void adam_impl(const OptimTensor<T>* t, int64_t count, const AdamOptions& o) {
  // Scalars in double, as torch computes them in Python, then rounded to T once.
  const double step = double(o.step);
  const double bc1 = 1.0 - std::pow(o.beta1, step);
  const double bc2 = 1.0 - std::pow(o.beta2, step);
  const AdamConst<T> c{T(o.decoupled ? 1.0 - o.lr * o.weight_decay : 1.0),
                       T(o.decoupled ? 0.0 : o.weight_decay),
                       T(1.0 - o.beta1),
                       T(o.beta2),
                       T(1.0 - o.beta2),
                       T(std::sqrt(bc2)),
                       T(o.eps),
                       T(-(o.lr / bc1))};
  const auto loop = loops<T>().adam[o.amsgrad ? 1 : 0];
  for_each_chunk(t, count, [&](const OptimTensor<T>& x, int64_t b, int64_t n) {
    loop(n, x.param + b, x.grad + b, x.state[0] + b, x.state[1] + b,
         o.amsgrad ? x.state[2] + b : nullptr, grad_in(x, o.grad_scale), c);
  });
}

template <class T>
void adagrad_impl(const OptimTensor<T>* t, int64_t count, const AdagradOptions& o) {
  const double clr = o.lr / (1.0 + double(o.step - 1) * o.lr_decay);
  const AdagradConst<T> c{T(o.weight_decay), T(o.eps), T(-clr)};
  const auto loop = loops<T>().adagrad;
  for_each_chunk(t, count, [&](const OptimTensor<T>& x, int64_t b, int64_t n) {
    loop(n, x.param + b, x.grad + b, x.state[0] + b, grad_in(x, o.grad_scale), c);
  });
}

template <class T>
void rmsprop_impl(const OptimTensor<T>* t, int64_t count, const RmspropOptions& o) {
  const RmspropConst<T> c{T(-o.lr), T(o.weight_decay), T(o.alpha), T(1.0 - o.alpha), T(o.eps),
                          T(o.momentum)};
  const bool centered = o.centered, momentum = o.momentum > 0;
  const auto loop = loops<T>().rmsprop[centered][momentum];
  for_each_chunk(t, count, [&](const OptimTensor<T>& x, int64_t b, int64_t n) {
    loop(n, x.param + b, x.grad + b, x.state[0] + b, momentum ? x.state[1] + b : nullptr,
         centered ? x.state[2] + b : nullptr, grad_in(x, o.grad_scale), c);
  });
}

// ------------------------------------------------------------------ norms
template <class T>
double sums_of_squares_impl(const T* const* data, const int64_t* sizes, int64_t count,
                            double* per_tensor) {
  const std::vector<Chunk> chunks = plan_chunks(count, [&](int64_t i) { return sizes[i]; });
  std::vector<double> partial(chunks.size());
  const auto sum_squares = loops<T>().sum_squares;
  run_chunks(chunks, [&](int k, const Chunk& c) {
    partial[k] = sum_squares(data[c.tensor] + c.begin, c.end - c.begin);
  });
  if (per_tensor) std::fill(per_tensor, per_tensor + count, 0.0);
  double total = 0;
  for (size_t k = 0; k < chunks.size(); ++k) {  // chunk order: thread-invariant
    total += partial[k];
    if (per_tensor) per_tensor[chunks[k].tensor] += partial[k];
  }
  return total;
}

template <class T>
double global_norm_impl(const T* const* data, const int64_t* sizes, int64_t count) {
  return std::sqrt(sums_of_squares_impl(data, sizes, count, nullptr));
}

template <class T>
void scale_impl(T* const* data, const int64_t* sizes, int64_t count, double factor) {
  const std::vector<Chunk> chunks = plan_chunks(count, [&](int64_t i) { return sizes[i]; });
  const auto scale = loops<T>().scale;
  run_chunks(chunks, [&](int, const Chunk& c) {
    scale(data[c.tensor] + c.begin, c.end - c.begin, T(factor));
  });
}

}  // namespace

// The float and double overloads optim.h declares, each its one template above.
#define FASTNN_OPTIM_STEP(step, impl, Options)                                    \
  void step(const OptimTensor<float>* t, int64_t count, const Options& o) {       \
    impl(t, count, o);                                                            \
  }                                                                               \
  void step(const OptimTensor<double>* t, int64_t count, const Options& o) {      \
    impl(t, count, o);                                                            \
  }
FASTNN_OPTIM_STEP(sgd_step, sgd_impl, SgdOptions)
FASTNN_OPTIM_STEP(adam_step, adam_impl, AdamOptions)
FASTNN_OPTIM_STEP(adagrad_step, adagrad_impl, AdagradOptions)
FASTNN_OPTIM_STEP(rmsprop_step, rmsprop_impl, RmspropOptions)
#undef FASTNN_OPTIM_STEP

double global_norm(const float* const* data, const int64_t* sizes, int64_t count) {
  return global_norm_impl(data, sizes, count);
}
double global_norm(const double* const* data, const int64_t* sizes, int64_t count) {
  return global_norm_impl(data, sizes, count);
}
double sums_of_squares(const float* const* data, const int64_t* sizes, int64_t count,
                       double* per_tensor) {
  return sums_of_squares_impl(data, sizes, count, per_tensor);
}
double sums_of_squares(const double* const* data, const int64_t* sizes, int64_t count,
                       double* per_tensor) {
  return sums_of_squares_impl(data, sizes, count, per_tensor);
}
void scale_tensors(float* const* data, const int64_t* sizes, int64_t count, double factor) {
  scale_impl(data, sizes, count, factor);
}
void scale_tensors(double* const* data, const int64_t* sizes, int64_t count, double factor) {
  scale_impl(data, sizes, count, factor);
}

}  // namespace cpu
}  // namespace fastnn
