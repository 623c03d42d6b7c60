// Packing B into panels, and the dispatch of the GEMM on them (the kernels: gemm_<isa>.cpp).
#include "cpu/gemm_packed.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "core/error.h"
#include "cpu/gemm.h"

namespace fastnn {
namespace cpu {

#define FASTNN_DECLARE_GEMM_PACKED(isa)                                          \
  namespace isa {                                                                \
  void gemm_packed(const GemmArgs<float>& g, const float* panels, int64_t P);    \
  int64_t packed_width(int64_t N);                                               \
  }
FASTNN_DECLARE_GEMM_PACKED(scalar)
#ifdef FASTNN_X86
FASTNN_DECLARE_GEMM_PACKED(avx2)
FASTNN_DECLARE_GEMM_PACKED(avx512)
#endif
#undef FASTNN_DECLARE_GEMM_PACKED

namespace {

int64_t width_for(Simd s, int64_t N) {
  switch (s) {
#ifdef FASTNN_X86
    case Simd::Avx512: return avx512::packed_width(N);
    case Simd::Avx2: return avx2::packed_width(N);
#endif
    default: return scalar::packed_width(N);
  }
}

}  // namespace

PackedB::PackedB(const float* B, int64_t K, int64_t N, int64_t ldb)
    : K_(K), N_(N), P_(0), simd_(active_simd()) {
  FASTNN_CHECK(K >= 0 && N >= 0 && ldb >= N, "PackedB: bad shape");
  P_ = width_for(simd_, N);
  const int64_t panels = (N + P_ - 1) / P_;
  const size_t bytes = size_t(std::max<int64_t>(panels * K * P_, 1)) * sizeof(float);
  // 64-byte alignment: the kernels read panel rows with full-width vector loads.
  data_.reset(static_cast<float*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
  if (!data_) throw std::bad_alloc();
  float* out = data_.get();
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t j0 = p * P_, width = std::min(P_, N - j0);
    for (int64_t k = 0; k < K; ++k, out += P_) {
      std::memcpy(out, B + k * ldb + j0, size_t(width) * sizeof(float));
      std::fill(out + width, out + P_, 0.0f);
    }
  }
}

void gemm_packed(const GemmArgs<float>& g, const PackedB& b) {
  FASTNN_CHECK(g.K == b.K() && g.N == b.N(), "gemm_packed: the product's shape is not B's");
  FASTNN_CHECK(b.simd() == active_simd(), "gemm_packed: B was packed for another SIMD path");
  FASTNN_CHECK(!g.gate_a.data && !g.gate_b.data && !g.colsum_b,
               "gemm_packed: no gates or column sums");
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K == 0 || g.alpha == 0.0f) return gemm(g);  // nothing to multiply: B is not read
  switch (b.simd()) {
#ifdef FASTNN_X86
    case Simd::Avx512: return avx512::gemm_packed(g, b.panels(), b.panel_width());
    case Simd::Avx2: return avx2::gemm_packed(g, b.panels(), b.panel_width());
#endif
    default: return scalar::gemm_packed(g, b.panels(), b.panel_width());
  }
}

}  // namespace cpu
}  // namespace fastnn
