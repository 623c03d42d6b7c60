// Portable GEMM: the same blocked driver on GCC/Clang vector extensions (16-byte vectors: SSE2 on
// x86-64, NEON on Arm), compiled with no special flags, so it runs on any CPU.
#define FASTNN_ISA scalar
#define FASTNN_ISA_VECTOR_ACTIVATIONS 0  // no vector math: gates take the scalar derivative
#include "cpu/gemm_driver.h"
#include "cpu/gemm_packed_driver.h"

namespace fastnn {
namespace cpu {
namespace scalar {

template <class T_, int W_>
struct VecExt {
  using T = T_;
  static constexpr int W = W_;
  typedef T R __attribute__((vector_size(sizeof(T) * W_)));
  static R zero() { return R{} ; }
  static R load(const T* p) {
    R v;
    std::memcpy(&v, p, sizeof(R));
    return v;
  }
  static void store(T* p, R v) { std::memcpy(p, &v, sizeof(R)); }
  static R set1(T x) { return R{} + x; }
  static R fma(R a, R b, R c) { return a * b + c; }
  static R mul(R a, R b) { return a * b; }
  static R add(R a, R b) { return a + b; }
  // Lane-wise "a > b ? a : b" keeping a NaN in b, as the SIMD paths do.
  static R max(R a, R b) { return a > b ? a : b; }
  static R select_positive(R x, R if_pos, R otherwise) { return x > zero() ? if_pos : otherwise; }
};

using KernelF = Kernel<VecExt<float, 4>, 4, 2, 256, 128, 512>;
using KernelFSingle = Kernel<VecExt<float, 4>, 1, 4, 256, 128, 512>;
using KernelD = Kernel<VecExt<double, 2>, 4, 2, 256, 128, 256>;
using KernelDSingle = Kernel<VecExt<double, 2>, 1, 4, 256, 128, 256>;
// One vector wide, for N up to 4 (float) / 2 (double) columns.
using KernelFNarrow = Kernel<VecExt<float, 4>, 4, 1, 256, 128, 512>;
using KernelFNarrowSingle = Kernel<VecExt<float, 4>, 1, 1, 256, 128, 512>;
using KernelDNarrow = Kernel<VecExt<double, 2>, 4, 1, 256, 128, 256>;
using KernelDNarrowSingle = Kernel<VecExt<double, 2>, 1, 1, 256, 128, 256>;

void gemm(const GemmArgs<float>& g) {
  gemm_by_rows<KernelF, KernelF, KernelFSingle, KernelFNarrow, KernelFNarrowSingle>(g);
}
void gemm(const GemmArgs<double>& g) {
  gemm_by_rows<KernelD, KernelD, KernelDSingle, KernelDNarrow, KernelDNarrowSingle>(g);
}
// On packed panels (cpu/gemm_packed.h): panels as wide as KernelF, the one-row kernel of that
// width; the same K blocking as gemm() above.
using KernelFPanelSingle = Kernel<VecExt<float, 4>, 1, 2, 256, 128, 512>;
void gemm_packed(const GemmArgs<float>& g, const float* panels, int64_t P) {
  packed_by_rows<KernelF, KernelF, KernelFPanelSingle, KernelFNarrow, KernelFNarrowSingle>(
      g, panels, P);
}
int64_t packed_width(int64_t N) {
  return packed_width_for<KernelF, KernelFPanelSingle, KernelFNarrow>(N);
}
void gemm_colsum(const GemmArgs<float>& g) { colsum_only(g); }
void gemm_colsum(const GemmArgs<double>& g) { colsum_only(g); }

}  // namespace scalar
}  // namespace cpu
}  // namespace fastnn
