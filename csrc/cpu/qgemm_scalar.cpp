// The int8 GEMM's scalar path (qgemm.h): int32 loops over B in its (K, N) layout, and the row
// quantizer; the reference the vector paths must match bit for bit.
#include <algorithm>
#include <cmath>

#include "cpu/qgemm.h"

namespace fastnn {
namespace cpu {
namespace qgemm {
namespace scalar {

void tile(const PackedB& b, const void* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
          const Out& o) {
  const int64_t K = b.K, N = b.N, lda = padded_depth(K);
  const auto* A = static_cast<const uint8_t*>(a);
  const auto* B = reinterpret_cast<const int8_t*>(b.data.get());
  int32_t acc[kColumnBlock];
  for (int64_t c0 = n0; c0 < n1; c0 += kColumnBlock) {
    const int64_t w = std::min(kColumnBlock, n1 - c0);
    for (int64_t m = m0; m < m1; ++m) {
      std::fill(acc, acc + w, 0);
      const uint8_t* ar = A + m * lda;
      for (int64_t k = 0; k < K; ++k) {
        const int32_t av = ar[k];
        const int8_t* br = B + k * N + c0;
        for (int64_t j = 0; j < w; ++j) acc[j] += av * int32_t(br[j]);
      }
      if (!o.dq) {
        std::copy(acc, acc + w, o.c + m * o.ldc + c0);
        continue;
      }
      const Dequant& e = *o.dq;
      float* out = e.out + m * e.ldo + c0;
      for (int64_t j = 0; j < w; ++j) {
        const int64_t n = c0 + j;
        const int32_t d = acc[j] - e.row_zero[m] * e.col_sum[n];
        const float s = e.row_scale[m] * e.col_scale[n];
        float y = float(d) * s + e.bias[n];
        if (e.relu) y = relu_of(y);
        out[j] = y;
      }
    }
  }
}

void quantize_rows(const float* x, int64_t ldx, int64_t M, int64_t K, void* a,
                   float* row_scale, int32_t* row_zero) {
  const int64_t lda = padded_depth(K);
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * ldx;
    float lo = 0.f, hi = 0.f;
    bool finite = true;
    for (int64_t k = 0; k < K; ++k) {
      lo = std::min(lo, xr[k]);
      hi = std::max(hi, xr[k]);
      finite &= std::isfinite(xr[k]);
    }
    RowQuant q = row_quant(lo, hi);
    if (!finite) q = {std::nanf(""), 1.f, 0};
    row_scale[m] = q.scale;
    row_zero[m] = q.zero;
    uint8_t* ar = static_cast<uint8_t*>(a) + m * lda;
    for (int64_t k = 0; k < K; ++k) {
      if (!finite) {
        ar[k] = 0;
        continue;
      }
      const int32_t v = int32_t(std::nearbyint(xr[k] * q.inv)) + q.zero;
      ar[k] = uint8_t(std::min(255, std::max(0, v)));
    }
    std::fill(ar + K, ar + lda, uint8_t(0));
  }
}

}  // namespace scalar
}  // namespace qgemm
}  // namespace cpu
}  // namespace fastnn
