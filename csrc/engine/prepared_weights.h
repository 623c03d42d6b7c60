// The Dense kernels of the CPU engine packed once for inference (cpu::PackedB), reused by every
// predict / evaluate call until the weights change.
//
// Staleness: the engine calls invalidate() wherever a weight may change (train_batches, write:
// set_weights, load), always under its exclusive lock, so no inference call is running then. The
// next inference call packs again, under the shared lock (the weights cannot change while it
// packs) and this object's mutex (one thread packs, the others wait and share the result). A
// call keeps the set it started with alive (shared_ptr) for its whole length.
//
// float only: the float64 engine multiplies the weights in place (cpu::gemm), as before.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#include "core/cpu_features.h"
#include "cpu/gemm.h"
#include "cpu/gemm_packed.h"

namespace fastnn {
namespace engine {

// Per layer, its packed kernel, or null (not a Dense layer; float64).
using PackedLayers = std::vector<std::unique_ptr<const cpu::PackedB>>;

class PreparedWeights {
 public:
  void invalidate() {
    std::lock_guard<std::mutex> g(mutex_);
    current_.reset();
  }

  // The packed kernels for the SIMD path active now, packed by pack() (which returns the
  // PackedLayers) when stale or packed for another path (fastnn.set_simd between calls).
  template <class Pack>
  std::shared_ptr<const PackedLayers> get(Pack&& pack) {
    std::lock_guard<std::mutex> g(mutex_);
    const Simd s = active_simd();
    if (!current_ || simd_ != s) {
      current_ = std::make_shared<const PackedLayers>(pack());
      simd_ = s;
    }
    return current_;
  }

 private:
  std::mutex mutex_;
  std::shared_ptr<const PackedLayers> current_;
  Simd simd_ = Simd::Scalar;
};

// A Dense layer's kernel W (in x out, row-major) packed, for float; null for float64.
template <class T>
std::unique_ptr<const cpu::PackedB> pack_dense_kernel(const T* W, int64_t in, int64_t out) {
  if constexpr (std::is_same<T, float>::value)
    return std::unique_ptr<const cpu::PackedB>(new cpu::PackedB(W, in, out, out));
  else
    return nullptr;
}

// A Dense layer's forward GEMM: on its packed kernel when there is one (and it was packed for
// the SIMD path active now: set_simd may change it during a call), else on W in place.
template <class T>
void dense_gemm(const GemmArgs<T>& g, const cpu::PackedB* packed) {
  if constexpr (std::is_same<T, float>::value) {
    if (packed && packed->simd() == active_simd()) return cpu::gemm_packed(g, *packed);
  }
  cpu::gemm(g);
}

}  // namespace engine
}  // namespace fastnn
