// GEMM entry points: the one place that branches on the SIMD path, and the reference loop.
#include "cpu/gemm.h"

#include <cmath>

#include "core/act_math.h"
#include "core/cpu_features.h"
#include "core/error.h"

namespace fastnn {
namespace cpu {

#define FASTNN_DECLARE_GEMM(isa)            \
  namespace isa {                           \
  void gemm(const GemmArgs<float>& args);   \
  void gemm(const GemmArgs<double>& args);  \
  }
FASTNN_DECLARE_GEMM(scalar)
namespace scalar {
void gemm_colsum(const GemmArgs<float>& args);
void gemm_colsum(const GemmArgs<double>& args);
}  // namespace scalar
#ifdef FASTNN_X86
FASTNN_DECLARE_GEMM(avx2)
FASTNN_DECLARE_GEMM(avx512)
#endif
#undef FASTNN_DECLARE_GEMM

namespace {

// C = beta*C (+ bias, act) when there is nothing to multiply (K == 0 or alpha == 0):
// BLAS semantics, A and B are not read.
template <class T>
void gemm_no_product(const GemmArgs<T>& g) {
  for (int64_t i = 0; i < g.M; ++i)
    for (int64_t j = 0; j < g.N; ++j) {
      T* c = g.C + i * g.rsc + j * g.csc;
      T x = g.beta == T(0) ? T(0) : g.beta * *c;
      if (g.bias) x += g.bias[j * g.bias_stride];
      if (g.Z) g.Z[i * g.rsc + j * g.csc] = x;
      *c = act_math::forward(g.act, g.act_param, x);
    }
}

template <class T>
void gemm_reference_impl(const GemmArgs<T>& g) {
  if (g.K == 0 || g.alpha == T(0)) return gemm_no_product(g);
  for (int64_t i = 0; i < g.M; ++i)
    for (int64_t j = 0; j < g.N; ++j) {
      T sum = 0;
      for (int64_t k = 0; k < g.K; ++k) sum += g.A[i * g.rsa + k * g.csa] * g.B[k * g.rsb + j * g.csb];
      T* c = g.C + i * g.rsc + j * g.csc;
      T x = g.alpha * sum + (g.beta == T(0) ? T(0) : g.beta * *c);
      if (g.bias) x += g.bias[j * g.bias_stride];
      *c = act_math::forward(g.act, g.act_param, x);
    }
}

template <class T>
void gemm_dispatch(const GemmArgs<T>& g) {
  if (g.N <= 0) return;
  // The column sums of B do not depend on A, alpha or M: with no product to run they are formed
  // on their own.
  if (g.colsum_b && (g.M <= 0 || g.K == 0 || g.alpha == T(0))) scalar::gemm_colsum(g);
  if (g.M <= 0) return;
  if (g.K == 0 || g.alpha == T(0)) return gemm_no_product(g);
  switch (active_simd()) {
#ifdef FASTNN_X86
    case Simd::Avx512: return avx512::gemm(g);
    case Simd::Avx2: return avx2::gemm(g);
#endif
    default: return scalar::gemm(g);
  }
}

}  // namespace

void gemm(const GemmArgs<float>& g) { gemm_dispatch(g); }
void gemm(const GemmArgs<double>& g) { gemm_dispatch(g); }
void gemm_reference(const GemmArgs<float>& g) { gemm_reference_impl(g); }
void gemm_reference(const GemmArgs<double>& g) { gemm_reference_impl(g); }

}  // namespace cpu

}  // namespace fastnn
