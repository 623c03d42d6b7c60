// precision="bf16" in the CPU engine: its Dense layers' GEMMs on cpu/gemm_bf16.h, and the
// layers' weights kept packed in bf16 (the vdpbf16ps layout) between weight changes, so that
// inference streams half the bytes and packs each weight once. Master weights, gradients and
// optimizer state stay FP32 (the engine's arrays); this holds only the derived copies.
//
// A stale copy is silent garbage: the engine calls invalidate() whenever a weight changes (the
// optimizer step, write() of parameters). Packing happens under this object's mutex, so
// concurrent predict calls (the engine's shared lock) may fill it; invalidate() runs under the
// engine's exclusive lock, when no call reads a packed copy.
#pragma once
#include <mutex>
#include <vector>

#include "core/ops/dense.h"
#include "core/ops/gemm.h"
#include "cpu/dense.h"
#include "cpu/gemm.h"
#include "cpu/gemm_bf16.h"

namespace fastnn {
namespace engine {

class Bf16Weights {
 public:
  explicit Bf16Weights(size_t layers) : packs_(layers), valid_(layers, false) {}

  void invalidate() {
    std::lock_guard<std::mutex> g(m_);
    valid_.assign(valid_.size(), false);
  }

  // Layer i's weight W (in x out, row-major) packed as op(B) of its forward GEMM.
  const cpu::Bf16PackedB& forward_weight(size_t layer, const float* W, int64_t in, int64_t out) {
    std::lock_guard<std::mutex> g(m_);
    if (!valid_[layer]) {
      cpu::pack_b_bf16(W, out, 1, in, out, packs_[layer]);
      valid_[layer] = true;
    }
    return packs_[layer];
  }

 private:
  std::mutex m_;
  std::vector<cpu::Bf16PackedB> packs_;  // one per layer (empty for non-Dense layers)
  std::vector<bool> valid_;
};

// A Dense layer's forward GEMM (dense_forward_args) for layer `layer`: bf16 with the cached
// weights when `bf16` is set (float32 networks only), else the FP32 GEMM.
inline void dense_forward_gemm(Bf16Weights* bf16, size_t layer, const GemmArgs<float>& g) {
  if (!bf16) return cpu::gemm(g);
  cpu::gemm_bf16(g, &bf16->forward_weight(layer, g.B, g.K, g.N));
}
inline void dense_forward_gemm(Bf16Weights*, size_t, const GemmArgs<double>& g) { cpu::gemm(g); }

// A Dense layer's backward GEMMs (dW, db, dX) in the network's precision.
inline void dense_backward_gemms(Bf16Weights* bf16, const DenseBackwardArgs<float>& a) {
  if (!bf16) return cpu::dense_backward(a);
  cpu::dense_backward_bf16(a);
}
inline void dense_backward_gemms(Bf16Weights*, const DenseBackwardArgs<double>& a) {
  cpu::dense_backward(a);
}

}  // namespace engine
}  // namespace fastnn
