// The int8 GEMM's entry points: the choice of path, the packing of B for each path, and the
// split of the work over the thread pool. The arithmetic is in qgemm_<path>.cpp.
#include "cpu/qgemm.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <new>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/parallel.h"

namespace fastnn {
namespace cpu {
namespace qgemm {

namespace {

// Below this many multiply-adds a product runs on the calling thread: waking the pool costs
// more than it saves (a 784 x 256 layer at batch 1 is ~200K).
constexpr int64_t kParallelMacs = int64_t(1) << 19;
// Rows per task: a multiple of every path's micro-tile height, small enough that a task's rows
// of A stay in L2 beside its column block of B.
constexpr int64_t kRowChunk = 96;
// Rows per task of the quantizer, and the size below which it stays on the calling thread.
constexpr int64_t kQuantRows = 32;
constexpr int64_t kParallelQuantize = int64_t(1) << 16;

using TileFn = void (*)(const PackedB&, const void*, int64_t, int64_t, int64_t, int64_t,
                        const Out&);
using QuantFn = void (*)(const float*, int64_t, int64_t, int64_t, void*, float*, int32_t*);

TileFn tile_fn(QPath p) {
  switch (p) {
#ifdef FASTNN_X86
    case QPath::Vnni: return vnni::tile;
    case QPath::Avx2: return avx2::tile;
#endif
    default: return scalar::tile;
  }
}

QuantFn quant_fn(QPath p) {
  switch (p) {
#ifdef FASTNN_X86
    case QPath::Vnni: return vnni::quantize_rows;
    case QPath::Avx2: return avx2::quantize_rows;
#endif
    default: return scalar::quantize_rows;
  }
}

void check_path(QPath p) {
  if (!qpath_supported(p))
    throw ValueError(std::string("int8 path: this CPU does not support '") + qpath_name(p) + "'");
}

void run(const PackedB& b, const void* a, int64_t M, const Out& o) {
  if (M <= 0 || b.N <= 0) return;
  check_path(b.path);
  const TileFn tile = tile_fn(b.path);
  const int64_t col_blocks = (b.N + kColumnBlock - 1) / kColumnBlock;
  const int64_t row_chunks = (M + kRowChunk - 1) / kRowChunk;
  const int64_t tasks = col_blocks * row_chunks;
  if (tasks == 1 || M * b.N * std::max<int64_t>(b.K, 1) < kParallelMacs) {
    tile(b, a, 0, M, 0, b.N, o);
    return;
  }
  FASTNN_CHECK(tasks <= INT_MAX, "int8 gemm: too many rows for one call");
  // Consecutive tasks share a column block of B, which then stays in the caches between them.
  parallel_for(int(tasks), [&](int t) {
    const int64_t i = t % row_chunks, j = t / row_chunks;
    tile(b, a, i * kRowChunk, std::min(M, (i + 1) * kRowChunk), j * kColumnBlock,
         std::min(b.N, (j + 1) * kColumnBlock), o);
  });
}

}  // namespace

const char* qpath_name(QPath p) {
  switch (p) {
    case QPath::Vnni: return "vnni";
    case QPath::Avx2: return "avx2";
    default: return "scalar";
  }
}

QPath qpath_from_name(const std::string& name) {
  if (name == "vnni") return QPath::Vnni;
  if (name == "avx2") return QPath::Avx2;
  if (name == "scalar") return QPath::Scalar;
  throw ValueError("path: expected one of 'vnni', 'avx2', 'scalar', got '" + name + "'");
}

bool qpath_supported(QPath p) {
  switch (p) {
    case QPath::Vnni: return cpu_has_avx512_vnni();
    case QPath::Avx2: return cpu_supports(Simd::Avx2);
    default: return true;
  }
}

QPath active_qpath() {
  switch (active_simd()) {
    case Simd::Avx512: return cpu_has_avx512_vnni() ? QPath::Vnni : QPath::Avx2;
    case Simd::Avx2: return QPath::Avx2;
    default: return QPath::Scalar;
  }
}

AlignedBytes aligned_bytes(size_t n) {
  const size_t rounded = (std::max<size_t>(n, 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  return AlignedBytes(static_cast<unsigned char*>(p));
}

PackedB pack_b(QPath path, const int8_t* b, int64_t K, int64_t N) {
  FASTNN_CHECK(K >= 0 && N >= 0, "int8 gemm: negative shape");
  FASTNN_CHECK(K <= kMaxDepth, "int8 gemm: K = " + std::to_string(K) + " inputs exceed " +
                                   std::to_string(kMaxDepth) + ", where int32 sums could overflow");
  PackedB p;
  p.path = path;
  p.K = K;
  p.N = N;
  const int64_t Kp = padded_depth(K);
  // Panel width and rows of K per 32-bit lane: vnni 16 x 4 (s8), avx2 8 x 2 (s16).
  const int64_t width = path == QPath::Vnni ? 16 : 8, depth = path == QPath::Vnni ? 4 : 2;
  if (path == QPath::Scalar) {
    p.data = aligned_bytes(size_t(K * N));
    if (K * N) std::memcpy(p.data.get(), b, size_t(K * N));
    return p;
  }
  const int64_t panels = (N + width - 1) / width, groups = Kp / depth, group_bytes = width * 4;
  p.data = aligned_bytes(size_t(panels * groups * group_bytes));
  for (int64_t pn = 0; pn < panels; ++pn)
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t j = 0; j < width; ++j)
        for (int64_t i = 0; i < depth; ++i) {
          const int64_t k = g * depth + i, n = pn * width + j;
          const int8_t v = k < K && n < N ? b[k * N + n] : 0;
          const int64_t at = (pn * groups + g) * group_bytes + j * 4;
          if (path == QPath::Vnni) {
            p.data[size_t(at + i)] = static_cast<unsigned char>(v);
          } else {
            const int16_t w = v;
            std::memcpy(&p.data[size_t(at + 2 * i)], &w, 2);
          }
        }
  return p;
}

void quantize_rows(QPath path, const float* x, int64_t ldx, int64_t M, int64_t K, void* a,
                   float* row_scale, int32_t* row_zero) {
  if (M <= 0) return;
  check_path(path);
  const QuantFn quant = quant_fn(path);
  const int64_t lda_bytes = padded_depth(K) * act_bytes(path);
  auto chunk = [&](int64_t r0, int64_t r1) {
    quant(x + r0 * ldx, ldx, r1 - r0, K, static_cast<unsigned char*>(a) + r0 * lda_bytes,
          row_scale + r0, row_zero + r0);
  };
  if (M * K < kParallelQuantize) return chunk(0, M);
  const int64_t tasks = (M + kQuantRows - 1) / kQuantRows;
  FASTNN_CHECK(tasks <= INT_MAX, "int8 quantize: too many rows for one call");
  parallel_for(int(tasks), [&](int t) {
    chunk(t * kQuantRows, std::min(M, (t + 1) * kQuantRows));
  });
}

void gemm_s32(const PackedB& b, const void* a, int64_t M, int32_t* c, int64_t ldc) {
  Out o;
  o.c = c;
  o.ldc = ldc;
  run(b, a, M, o);
}

void gemm_dequant(const PackedB& b, const void* a, int64_t M, const Dequant& e) {
  Out o;
  o.dq = &e;
  run(b, a, M, o);
}

}  // namespace qgemm
}  // namespace cpu
}  // namespace fastnn
