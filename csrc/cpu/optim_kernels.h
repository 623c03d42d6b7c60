// The per-chunk loops of the optimizers (optim_loops.h), compiled once per instruction set
// (optim.cpp: baseline, optim_avx2.cpp, optim_avx512.cpp) and picked at run time by
// active_simd(). Every variant computes the same operations in the same order, without FMA
// contraction (-ffp-contract=off), so all paths give bit-identical results.
#pragma once
#include <cstdint>

namespace fastnn {
namespace cpu {

// g = scale * grad + l1 * sign(p) + l2x2 * p, before any optimizer sees it.
template <class T>
struct GradIn {
  T scale, l1, l2x2;
};

// Hyper-parameters as the loops use them: rounded to T once, signs folded in.
template <class T>
struct SgdConst {
  T neg_lr, wd, momentum, keep;  // keep = 1 - dampening
  bool nesterov;
};
template <class T>
struct AdamConst {
  T decay, wd, w1, beta2, one_minus_beta2, bc2_sqrt, eps, neg_step_size;
};
template <class T>
struct AdagradConst {
  T wd, eps, neg_clr;
};
template <class T>
struct RmspropConst {
  T neg_lr, wd, alpha, one_minus_alpha, eps, momentum;
};

// One chunk of n elements of one tensor; state pointers a caller does not use may be null.
template <class T>
struct OptimLoops {
  // [0] no momentum, [1] first step (buf = g), [2] later steps.
  void (*sgd[3])(int64_t n, T* p, const T* g, T* buf, GradIn<T> in, SgdConst<T> c);
  // [amsgrad]
  void (*adam[2])(int64_t n, T* p, const T* g, T* m, T* v, T* vmax, GradIn<T> in, AdamConst<T> c);
  void (*adagrad)(int64_t n, T* p, const T* g, T* s, GradIn<T> in, AdagradConst<T> c);
  // [centered][momentum]
  void (*rmsprop[2][2])(int64_t n, T* p, const T* g, T* sq, T* buf, T* ga, GradIn<T> in,
                        RmspropConst<T> c);
  double (*sum_squares)(const T* x, int64_t n);
  void (*scale)(T* x, int64_t n, T factor);
};

namespace scalar {
const OptimLoops<float>& optim_loops_f32();
const OptimLoops<double>& optim_loops_f64();
}  // namespace scalar
namespace avx2 {
const OptimLoops<float>& optim_loops_f32();
const OptimLoops<double>& optim_loops_f64();
}  // namespace avx2
namespace avx512 {
const OptimLoops<float>& optim_loops_f32();
const OptimLoops<double>& optim_loops_f64();
}  // namespace avx512

}  // namespace cpu
}  // namespace fastnn
