// The optimizer loops, written once and compiled per instruction set: a translation unit
// defines FASTNN_OPTIM_ISA (scalar, avx2, avx512) and includes this file, which puts every
// template in that namespace, so that no instantiation compiled with AVX-512 can be merged by the
// linker into the baseline path. (No include guard: one inclusion per translation unit.)
//
// The loops are plain C++ that GCC/Clang vectorize at -O3: no calls, no data-dependent branches,
// __restrict pointers, constants copied into locals (a store through T* could otherwise alias a
// constant read through a reference). Each follows torch.optim's single-tensor code operation
// for operation.
#include <cmath>

#include "cpu/optim_kernels.h"

#ifndef FASTNN_OPTIM_ISA
#error "define FASTNN_OPTIM_ISA before including optim_loops.h"
#endif

namespace fastnn {
namespace cpu {
namespace FASTNN_OPTIM_ISA {
namespace {

template <class T>
inline T read_grad(T g, T p, T scale, T l1, T l2x2) {
  const T sign = T(p > T(0)) - T(p < T(0));  // sign(0) = 0: the subgradient torch.sign picks
  return scale * g + l1 * sign + l2x2 * p;   // exactly g for (1, 0, 0) and finite p
}

// torch.lerp's formula (ATen Lerp.h): exact at both ends, whichever half the weight is in.
template <class T>
inline T lerp(T self, T end, T w) {
  return std::abs(w) < T(0.5) ? self + w * (end - self) : end - (end - self) * (T(1) - w);
}

// ------------------------------------------------------------------ SGD
// p (n), g (n), buf (n) momentum buffer. kMode: 0 no momentum, 1 first step, 2 later steps.
template <class T, int kMode>
void sgd_loop(int64_t n, T* __restrict p, const T* __restrict g, T* __restrict buf, GradIn<T> in,
              SgdConst<T> c) {
  const T scale = in.scale, l1 = in.l1, l2x2 = in.l2x2;
  const T neg_lr = c.neg_lr, wd = c.wd, mom = c.momentum, keep = c.keep;
  const bool nesterov = c.nesterov;
  for (int64_t i = 0; i < n; ++i) {
    const T pi = p[i];
    T d = read_grad(g[i], pi, scale, l1, l2x2);
    d = d + wd * pi;
    if (kMode != 0) {
      const T b = kMode == 1 ? d : buf[i] * mom + keep * d;  // torch: buf = clone(g) at first
      buf[i] = b;
      d = nesterov ? d + mom * b : b;
    }
    p[i] = pi + neg_lr * d;
  }
}

// ------------------------------------------------------------------ Adam / AdamW
// p (n), g (n), m (n) exp_avg, v (n) exp_avg_sq, vmax (n) max_exp_avg_sq (amsgrad).
template <class T, bool kAmsgrad>
void adam_loop(int64_t n, T* __restrict p, const T* __restrict g, T* __restrict m,
               T* __restrict v, T* __restrict vmax, GradIn<T> in, AdamConst<T> c) {
  const T scale = in.scale, l1 = in.l1, l2x2 = in.l2x2;
  const T decay = c.decay, wd = c.wd, w1 = c.w1, beta2 = c.beta2, omb2 = c.one_minus_beta2,
          bc2_sqrt = c.bc2_sqrt, eps = c.eps, neg_step = c.neg_step_size;
  for (int64_t i = 0; i < n; ++i) {
    const T pi = p[i];
    T d = read_grad(g[i], pi, scale, l1, l2x2);
    d = d + wd * pi;  // Adam's L2 term (wd = 0 for AdamW)
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

// ------------------------------------------------------------------ Adagrad
// p (n), g (n), s (n) state_sum.
template <class T>
void adagrad_loop(int64_t n, T* __restrict p, const T* __restrict g, T* __restrict s,
                  GradIn<T> in, AdagradConst<T> c) {
  const T scale = in.scale, l1 = in.l1, l2x2 = in.l2x2;
  const T wd = c.wd, eps = c.eps, neg_clr = c.neg_clr;
  for (int64_t i = 0; i < n; ++i) {
    const T pi = p[i];
    T d = read_grad(g[i], pi, scale, l1, l2x2);
    d = d + wd * pi;
    const T si = s[i] + d * d;
    s[i] = si;
    p[i] = pi + (neg_clr * d) / (std::sqrt(si) + eps);
  }
}

// ------------------------------------------------------------------ RMSprop
// p (n), g (n), sq (n) square_avg, buf (n) momentum buffer, ga (n) grad_avg (centered).
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
      avg = std::sqrt(si - gai * gai);
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

// ------------------------------------------------------------------ norms
// Eight partial sums break the add chain so the loop vectorizes without -ffast-math; the order
// is fixed by the code, the same on every path and every run.
template <class T>
double sum_squares(const T* __restrict x, int64_t n) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += double(x[i + j]) * double(x[i + j]);
  for (; i < n; ++i) s[0] += double(x[i]) * double(x[i]);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

template <class T>
void scale_loop(T* __restrict x, int64_t n, T factor) {
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}

template <class T>
OptimLoops<T> make_loops() {
  OptimLoops<T> k;
  k.sgd[0] = sgd_loop<T, 0>;
  k.sgd[1] = sgd_loop<T, 1>;
  k.sgd[2] = sgd_loop<T, 2>;
  k.adam[0] = adam_loop<T, false>;
  k.adam[1] = adam_loop<T, true>;
  k.adagrad = adagrad_loop<T>;
  k.rmsprop[0][0] = rmsprop_loop<T, false, false>;
  k.rmsprop[0][1] = rmsprop_loop<T, false, true>;
  k.rmsprop[1][0] = rmsprop_loop<T, true, false>;
  k.rmsprop[1][1] = rmsprop_loop<T, true, true>;
  k.sum_squares = sum_squares<T>;
  k.scale = scale_loop<T>;
  return k;
}

}  // namespace

const OptimLoops<float>& optim_loops_f32() {
  static const OptimLoops<float> k = make_loops<float>();
  return k;
}
const OptimLoops<double>& optim_loops_f64() {
  static const OptimLoops<double> k = make_loops<double>();
  return k;
}

}  // namespace FASTNN_OPTIM_ISA
}  // namespace cpu
}  // namespace fastnn
