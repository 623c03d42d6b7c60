// Fused multi-tensor optimizer updates (see optim.h). Each optimizer is a plain loop over one
// chunk of one tensor; the loop bodies are written so that GCC/Clang vectorize them at -O3 (no
// calls, no data-dependent branches, __restrict pointers, constants in locals). The work is
// memory-bound (Adam moves 7 arrays per element), so the plain vectorized loop reaches the
// copy bandwidth without per-ISA variants.
#include "cpu/optim.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"

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
    for (int64_t b = 0, n = size_of(i); b < n; b += chunk) chunks.push_back({i, b, std::min(n, b + chunk)});
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

// What every optimizer does first: g = scale * grad + l1 * sign(p) + 2 * l2 * p. With the
// defaults (1, 0, 0) this is g exactly for finite p, so no variant without it is needed.
template <class T>
struct GradIn {
  T scale, l1, l2x2;
};

template <class T>
GradIn<T> grad_in(const OptimTensor<T>& t, double grad_scale) {
  return {T(grad_scale), T(t.l1), T(2.0 * t.l2)};
}

template <class T>
inline T read_grad(T g, T p, T scale, T l1, T l2x2) {
  const T sign = T(p > T(0)) - T(p < T(0));  // sign(0) = 0: the subgradient torch.sign picks
  return scale * g + l1 * sign + l2x2 * p;
}

// torch.lerp's formula (ATen Lerp.h): exact at both ends, whichever half the weight is in.
template <class T>
inline T lerp(T self, T end, T w) {
  return std::abs(w) < T(0.5) ? self + w * (end - self) : end - (end - self) * (T(1) - w);
}

// ------------------------------------------------------------------ SGD
// p (n), g (n), buf (n) momentum buffer.
enum class Momentum { kNone, kFirst, kLater };

template <class T>
struct SgdConst {
  T neg_lr, wd, momentum, keep;  // keep = 1 - dampening
  bool nesterov;
};

template <class T, Momentum M>
void sgd_loop(int64_t n, T* __restrict p, const T* __restrict g, T* __restrict buf, GradIn<T> in,
              SgdConst<T> c) {
  const T scale = in.scale, l1 = in.l1, l2x2 = in.l2x2;
  const T neg_lr = c.neg_lr, wd = c.wd, mom = c.momentum, keep = c.keep;
  const bool nesterov = c.nesterov;
  for (int64_t i = 0; i < n; ++i) {
    const T pi = p[i];
    T d = read_grad(g[i], pi, scale, l1, l2x2);
    d = d + wd * pi;
    if (M != Momentum::kNone) {
      const T b = M == Momentum::kFirst ? d : buf[i] * mom + keep * d;
      buf[i] = b;
      d = nesterov ? d + mom * b : b;
    }
    p[i] = pi + neg_lr * d;
  }
}

template <class T>
void sgd_impl(const OptimTensor<T>* t, int64_t count, const SgdOptions& o) {
  const SgdConst<T> c{T(-o.lr), T(o.weight_decay), T(o.momentum), T(1.0 - o.dampening),
                      o.nesterov};
  const Momentum mode =
      o.momentum == 0 ? Momentum::kNone : o.first_step ? Momentum::kFirst : Momentum::kLater;
  for_each_chunk(t, count, [&](const OptimTensor<T>& x, int64_t b, int64_t n) {
    T* buf = x.state[0] ? x.state[0] + b : nullptr;
    const GradIn<T> in = grad_in(x, o.grad_scale);
    if (mode == Momentum::kNone)
      sgd_loop<T, Momentum::kNone>(n, x.param + b, x.grad + b, buf, in, c);
    else if (mode == Momentum::kFirst)
      sgd_loop<T, Momentum::kFirst>(n, x.param + b, x.grad + b, buf, in, c);
    else
      sgd_loop<T, Momentum::kLater>(n, x.param + b, x.grad + b, buf, in, c);
  });
}

// ------------------------------------------------------------------ Adam / AdamW
// p (n), g (n), m (n) exp_avg, v (n) exp_avg_sq, vmax (n) max_exp_avg_sq (amsgrad).
template <class T>
struct AdamConst {
  T decay, wd, w1, beta2, one_minus_beta2, bc2_sqrt, eps, neg_step_size;
};

template <class T, bool kAmsgrad>
void adam_loop(int64_t n, T* __restrict p, const T* __restrict g, T* __restrict m,
               T* __restrict v, T* __restrict vmax, GradIn<T> in, AdamConst<T> c) {
  const T scale = in.scale, l1 = in.l1, l2x2 = in.l2x2;
  const T decay = c.decay, wd = c.wd, w1 = c.w1, beta2 = c.beta2, omb2 = c.one_minus_beta2,
          bc2_sqrt = c.bc2_sqrt, eps = c.eps, neg_step = c.neg_step_size;
  for (int64_t i = 0; i < n; ++i) {
    const T pi = p[i];
    T d = read_grad(g[i], pi, scale, l1, l2x2);
    d = d + wd * pi;  // Adam's L2 term (0 for AdamW)
    const T mi = lerp(m[i], d, w1);
    const T vi = v[i] * beta2 + omb2 * d * d;
    m[i] = mi;
    v[i] = vi;
    T vv = vi;
    if (kAmsgrad) {
      vv = vmax[i] >= vi ? vmax[i] : vi;
      vmax[i] = vv;
    }
    const T denom = std::sqrt(vv) / bc2_sqrt + eps;
    p[i] = pi * decay + (neg_step * mi) / denom;  // decay: AdamW's 1 - lr * wd (1 for Adam)
  }
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
  for_each_chunk(t, count, [&](const OptimTensor<T>& x, int64_t b, int64_t n) {
    const GradIn<T> in = grad_in(x, o.grad_scale);
    if (o.amsgrad)
      adam_loop<T, true>(n, x.param + b, x.grad + b, x.state[0] + b, x.state[1] + b,
                         x.state[2] + b, in, c);
    else
      adam_loop<T, false>(n, x.param + b, x.grad + b, x.state[0] + b, x.state[1] + b, nullptr,
                          in, c);
  });
}

// ------------------------------------------------------------------ Adagrad
// p (n), g (n), s (n) state_sum.
template <class T>
void adagrad_loop(int64_t n, T* __restrict p, const T* __restrict g, T* __restrict s,
                  GradIn<T> in, T wd, T eps, T neg_clr) {
  const T scale = in.scale, l1 = in.l1, l2x2 = in.l2x2;
  for (int64_t i = 0; i < n; ++i) {
    const T pi = p[i];
    T d = read_grad(g[i], pi, scale, l1, l2x2);
    d = d + wd * pi;
    const T si = s[i] + d * d;
    s[i] = si;
    p[i] = pi + (neg_clr * d) / (std::sqrt(si) + eps);
  }
}

template <class T>
void adagrad_impl(const OptimTensor<T>* t, int64_t count, const AdagradOptions& o) {
  const double clr = o.lr / (1.0 + double(o.step - 1) * o.lr_decay);
  for_each_chunk(t, count, [&](const OptimTensor<T>& x, int64_t b, int64_t n) {
    adagrad_loop<T>(n, x.param + b, x.grad + b, x.state[0] + b, grad_in(x, o.grad_scale),
                    T(o.weight_decay), T(o.eps), T(-clr));
  });
}

// ------------------------------------------------------------------ RMSprop
// p (n), g (n), sq (n) square_avg, buf (n) momentum buffer, ga (n) grad_avg (centered).
template <class T>
struct RmspropConst {
  T neg_lr, wd, alpha, one_minus_alpha, eps, momentum;
};

template <class T, bool kCentered, bool kMomentum>
void rmsprop_loop(int64_t n, T* __restrict p, const T* __restrict g, T* __restrict sq,
                  T* __restrict buf, T* __restrict ga, GradIn<T> in, RmspropConst<T> c) {
  const T scale = in.scale, l1 = in.l1, l2x2 = in.l2x2;
  const T neg_lr = c.neg_lr, wd = c.wd, alpha = c.alpha, oma = c.one_minus_alpha, eps = c.eps,
          mom = c.momentum;
  for (int64_t i = 0; i < n; ++i) {
    const T pi = p[i];
    T d = read_grad(g[i], pi, scale, l1, l2x2);
    d = d + wd * pi;
    const T si = sq[i] * alpha + oma * d * d;
    sq[i] = si;
    T avg;
    if (kCentered) {
      const T gai = lerp(ga[i], d, oma);
      ga[i] = gai;
      avg = std::sqrt(si + T(-1) * gai * gai);
    } else {
      avg = std::sqrt(si);
    }
    avg = avg + eps;
    if (kMomentum) {
      const T b = buf[i] * mom + d / avg;
      buf[i] = b;
      p[i] = pi + neg_lr * b;
    } else {
      p[i] = pi + (neg_lr * d) / avg;
    }
  }
}

template <class T>
void rmsprop_impl(const OptimTensor<T>* t, int64_t count, const RmspropOptions& o) {
  const RmspropConst<T> c{T(-o.lr), T(o.weight_decay), T(o.alpha), T(1.0 - o.alpha), T(o.eps),
                          T(o.momentum)};
  const bool centered = o.centered, momentum = o.momentum > 0;
  for_each_chunk(t, count, [&](const OptimTensor<T>& x, int64_t b, int64_t n) {
    T* p = x.param + b;
    const T* g = x.grad + b;
    T* sq = x.state[0] + b;
    T* buf = momentum ? x.state[1] + b : nullptr;
    T* ga = centered ? x.state[2] + b : nullptr;
    const GradIn<T> in = grad_in(x, o.grad_scale);
    if (centered && momentum)
      rmsprop_loop<T, true, true>(n, p, g, sq, buf, ga, in, c);
    else if (centered)
      rmsprop_loop<T, true, false>(n, p, g, sq, buf, ga, in, c);
    else if (momentum)
      rmsprop_loop<T, false, true>(n, p, g, sq, buf, ga, in, c);
    else
      rmsprop_loop<T, false, false>(n, p, g, sq, buf, ga, in, c);
  });
}

// ------------------------------------------------------------------ norms
// Four partial sums break the add chain so the loop vectorizes without -ffast-math; the order
// is fixed by the code, so the result is still the same on every run.
template <class T>
double sum_squares(const T* __restrict x, int64_t n) {
  double s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) s[j] += double(x[i + j]) * double(x[i + j]);
  for (; i < n; ++i) s[0] += double(x[i]) * double(x[i]);
  return (s[0] + s[1]) + (s[2] + s[3]);
}

template <class T>
double global_norm_impl(const T* const* data, const int64_t* sizes, int64_t count) {
  const std::vector<Chunk> chunks = plan_chunks(count, [&](int64_t i) { return sizes[i]; });
  std::vector<double> partial(chunks.size());
  run_chunks(chunks, [&](int k, const Chunk& c) {
    partial[k] = sum_squares(data[c.tensor] + c.begin, c.end - c.begin);
  });
  double total = 0;
  for (double s : partial) total += s;  // chunk order: thread-invariant
  return std::sqrt(total);
}

template <class T>
void scale_impl(T* const* data, const int64_t* sizes, int64_t count, double factor) {
  const std::vector<Chunk> chunks = plan_chunks(count, [&](int64_t i) { return sizes[i]; });
  const T f = T(factor);
  run_chunks(chunks, [&](int, const Chunk& c) {
    T* __restrict x = data[c.tensor] + c.begin;
    for (int64_t i = 0, n = c.end - c.begin; i < n; ++i) x[i] *= f;
  });
}

}  // namespace

void sgd_step(const OptimTensor<float>* t, int64_t count, const SgdOptions& o) { sgd_impl(t, count, o); }
void sgd_step(const OptimTensor<double>* t, int64_t count, const SgdOptions& o) { sgd_impl(t, count, o); }
void adam_step(const OptimTensor<float>* t, int64_t count, const AdamOptions& o) { adam_impl(t, count, o); }
void adam_step(const OptimTensor<double>* t, int64_t count, const AdamOptions& o) { adam_impl(t, count, o); }
void adagrad_step(const OptimTensor<float>* t, int64_t count, const AdagradOptions& o) {
  adagrad_impl(t, count, o);
}
void adagrad_step(const OptimTensor<double>* t, int64_t count, const AdagradOptions& o) {
  adagrad_impl(t, count, o);
}
void rmsprop_step(const OptimTensor<float>* t, int64_t count, const RmspropOptions& o) {
  rmsprop_impl(t, count, o);
}
void rmsprop_step(const OptimTensor<double>* t, int64_t count, const RmspropOptions& o) {
  rmsprop_impl(t, count, o);
}

double global_norm(const float* const* data, const int64_t* sizes, int64_t count) {
  return global_norm_impl(data, sizes, count);
}
double global_norm(const double* const* data, const int64_t* sizes, int64_t count) {
  return global_norm_impl(data, sizes, count);
}
void scale_tensors(float* const* data, const int64_t* sizes, int64_t count, double factor) {
  scale_impl(data, sizes, count, factor);
}
void scale_tensors(double* const* data, const int64_t* sizes, int64_t count, double factor) {
  scale_impl(data, sizes, count, factor);
}

}  // namespace cpu
}  // namespace fastnn
