// The int8 GEMM of quantized inference (fastnn.quantize): C = A (M, K) x B (K, N) with A's
// unsigned 8-bit activations, B's signed 8-bit weights and exact int32 sums, written either as
// the raw sums or dequantized to float32 (one dense layer of a quantized model).
//
// Three paths, chosen from the SIMD path in use (core/cpu_features.h; QPath below):
//   vnni   AVX-512 with AVX512_VNNI: vpdpbusd sums four u8 x s8 products into each int32 lane.
//          B is packed in panels of 16 columns, each 32-bit lane holding 4 consecutive rows of
//          K of one column; A's 4 bytes at k are broadcast to every lane.
//   avx2   AVX2, and AVX-512 CPUs without VNNI: vpmaddubsw would saturate (two u8 x s8 products
//          reach 2 * 255 * 127 = 64770 > 32767), so A is quantized straight to u16 and B widened
//          to s16 when packed; vpmaddwd then sums pairs of products exactly into int32 lanes.
//          Panels of 8 columns, each lane holding 2 rows of K of one column.
//   scalar int32 loops over B as it is, (K, N) row-major.
// Each int32 sum is exact on every path (|sum| <= 255 * 127 * K < 2^31 for K <= kMaxDepth), so
// the three paths give bit-identical sums; the dequantizing epilogue and the row quantizer do
// the same float operations in the same order on each (the files are compiled with
// -ffp-contract=off), so a quantized ReLU network's logits are bit-identical on every path too.
//
// A's rows are padded with zeros to padded_depth(K) elements, so every path reads whole 4-byte
// groups; B's padding rows and columns are zero.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

namespace fastnn {
namespace cpu {
namespace qgemm {

enum class QPath : int { Scalar = 0, Avx2 = 1, Vnni = 2 };
constexpr int kNumPaths = 3;

const char* qpath_name(QPath p);               // "scalar", "avx2", "vnni"
QPath qpath_from_name(const std::string& name);  // ValueError for an unknown name
bool qpath_supported(QPath p);                  // this CPU (and OS) runs it
// The path the SIMD path in use selects: avx512 with VNNI -> vnni; avx512 without VNNI, or
// avx2 -> avx2; scalar -> scalar. fastnn.set_simd / FASTNN_SIMD therefore force each one.
QPath active_qpath();

// The widest K whose int32 sums cannot overflow: 255 * 127 * K <= 2^31 - 1.
constexpr int64_t kMaxDepth = 2147483647 / (255 * 127);

// A's row stride in elements: K rounded up to a multiple of 4.
inline int64_t padded_depth(int64_t K) { return (K + 3) / 4 * 4; }
// Bytes per element of A on a path: u16 on avx2, u8 elsewhere.
inline int act_bytes(QPath p) { return p == QPath::Avx2 ? 2 : 1; }

// 64-byte aligned bytes (aligned panel loads; no false sharing between owners).
struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
using AlignedBytes = std::unique_ptr<unsigned char[], AlignedFree>;
AlignedBytes aligned_bytes(size_t n);  // zero-filled; throws std::bad_alloc

// B as one path reads it (pack_b); immutable once packed, so shared by any number of threads.
struct PackedB {
  QPath path = QPath::Scalar;
  int64_t K = 0, N = 0;
  AlignedBytes data;
};
// b: (K, N) row-major int8. K <= kMaxDepth (ValueError otherwise).
PackedB pack_b(QPath path, const int8_t* b, int64_t K, int64_t N);

// One row's quantization: q = clamp(rint(x * inv) + zero, 0, 255), x ~ (q - zero) * scale.
// The range [lo, hi] always includes 0 (lo <= 0 <= hi), so that 0 (a ReLU's zeros) is exact.
struct RowQuant {
  float scale, inv;
  int32_t zero;
};
inline RowQuant row_quant(float lo, float hi) {
  const float range = hi - lo;
  const float scale = range / 255.f;
  const float inv = 1.f / scale;
  // An all-zero row (or a range so small that its scale underflows): every q is the zero point.
  if (!(scale >= 1.17549435e-38f) || !std::isfinite(inv)) return {1.f, 1.f, 0};
  const float z = std::nearbyint(-lo * inv);
  return {scale, inv, int32_t(z < 0.f ? 0.f : (z > 255.f ? 255.f : z))};
}

// Quantizes the float rows x (M, K; row stride ldx) into a (M, padded_depth(K); u8, or u16 on
// avx2) with each row's scale and zero point. Rows are independent: a sample's quantization,
// and so its prediction, does not depend on the other rows of the batch. A row holding NaN or
// infinity gets a NaN scale (and zero point 0), so that its outputs come out NaN.
void quantize_rows(QPath path, const float* x, int64_t ldx, int64_t M, int64_t K, void* a,
                   float* row_scale, int32_t* row_zero);

// The dense layer's epilogue, for output (m, n):
//   out = float(sum - row_zero[m] * col_sum[n]) * (row_scale[m] * col_scale[n]) + bias[n],
// then relu_of(out) when relu. col_sum[n] = sum over k of B[k, n] removes the activations' zero
// point; col_scale is the weights' per-output-channel scale.
struct Dequant {
  const float* row_scale = nullptr;
  const int32_t* row_zero = nullptr;
  const float* col_scale = nullptr;
  const int32_t* col_sum = nullptr;
  const float* bias = nullptr;  // required (zeros for a layer without bias)
  bool relu = false;
  float* out = nullptr;
  int64_t ldo = 0;
};

// max(0, y) as x86's maxps(0, y) computes it, on every path alike: a NaN y stays NaN (an
// overflowed row is not hidden), -0 stays -0.
inline float relu_of(float y) { return 0.f > y ? 0.f : y; }

// Where a tile writes: the raw sums (c, ldc) or, with dq set, the dequantized outputs.
struct Out {
  int32_t* c = nullptr;
  int64_t ldc = 0;
  const Dequant* dq = nullptr;
};

// C = A x B, A as quantize_rows writes it for b.path (row stride padded_depth(b.K)); split over
// the thread pool when large. The result does not depend on the thread count.
void gemm_s32(const PackedB& b, const void* a, int64_t M, int32_t* c, int64_t ldc);
void gemm_dequant(const PackedB& b, const void* a, int64_t M, const Dequant& e);

// Each path's unit: the product over rows [m0, m1) and columns [n0, n1) (n0 a multiple of the
// path's column block), and its row quantizer.
#define FASTNN_DECLARE_QGEMM(isa)                                                             \
  namespace isa {                                                                             \
  void tile(const PackedB& b, const void* a, int64_t m0, int64_t m1, int64_t n0, int64_t n1, \
            const Out& o);                                                                    \
  void quantize_rows(const float* x, int64_t ldx, int64_t M, int64_t K, void* a,             \
                     float* row_scale, int32_t* row_zero);                                    \
  }
FASTNN_DECLARE_QGEMM(scalar)
#ifdef FASTNN_X86
FASTNN_DECLARE_QGEMM(avx2)
FASTNN_DECLARE_QGEMM(vnni)
#endif
#undef FASTNN_DECLARE_QGEMM

// Columns per task (a multiple of every path's panel width).
constexpr int64_t kColumnBlock = 64;

}  // namespace qgemm
}  // namespace cpu
}  // namespace fastnn
