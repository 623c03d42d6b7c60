// A GEMM operand B prepared once for many products: the weights of a Dense layer that predict
// multiplies on every call. See gemm_packed_driver.h for why and how.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "core/cpu_features.h"
#include "core/ops/gemm.h"

namespace fastnn {
namespace cpu {

// B (K x N) in column panels for one SIMD path: panel p holds columns [p P, p P + P) as K rows
// of P floats, zero past N, each panel one contiguous run.
class PackedB {
 public:
  // Packs B (rows ldb apart, columns adjacent) for the SIMD path active now.
  PackedB(const float* B, int64_t K, int64_t N, int64_t ldb);

  int64_t K() const { return K_; }
  int64_t N() const { return N_; }
  int64_t panel_width() const { return P_; }
  Simd simd() const { return simd_; }
  const float* panels() const { return data_.get(); }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  int64_t K_, N_, P_;
  Simd simd_;
  std::unique_ptr<float, Free> data_;
};

// gemm(g) with op(B) = b (g.B and its strides are not read; no gates, no colsum_b): the same
// result, bit for bit. b must have been packed for the active SIMD path (b.simd()).
void gemm_packed(const GemmArgs<float>& g, const PackedB& b);

}  // namespace cpu
}  // namespace fastnn
