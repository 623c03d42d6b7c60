// The bf16 GEMM's driver (see gemm_bf16.h): gates and column sums on the FP32 operands, bf16
// packing, the tile loop over the thread pool, and the epilogue. The micro-kernel is picked at
// run time (gemm_bf16_kernels.h).
#include "cpu/gemm_bf16.h"

#include <algorithm>
#include <cstring>

#include "core/act_math.h"
#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/activations.h"
#include "cpu/gemm.h"
#include "cpu/gemm_bf16_kernels.h"
#include "cpu/gemm_bf16_round.h"

namespace fastnn {
namespace cpu {

namespace {

constexpr int64_t kParallelPackElems = 1 << 16;  // smaller operands pack on the calling thread

// One pair from two floats, for the strided operands the packing loops do not cover.
inline uint32_t bf16_pair(float even, float odd) {
  return (bf16_round::upper(even) >> 16) | bf16_round::upper(odd);
}

Bf16Kernel pick_kernel() {
#ifdef FASTNN_X86
  if (bf16_path() == Bf16Path::Native) return avx512bf16::bf16_kernel();
  if (active_simd() != Simd::Scalar) return avx2::bf16_kernel();
#endif
  return scalar::bf16_kernel();
}

// Buffers up to this size stay with the calling thread between calls (the packed operands of a
// training step are megabytes, and fresh allocations would be zeroed page by page); larger ones
// (a huge predict batch) are freed after the call rather than held for the thread's life.
constexpr size_t kKeptScratchBytes = size_t(64) << 20;

// A buffer of n elements, the calling thread's kept one (per Slot) when small enough.
template <class T, int Slot>
class Scratch {
 public:
  explicit Scratch(size_t n) {
    thread_local std::vector<T> kept;
    std::vector<T>& buf = n * sizeof(T) <= kKeptScratchBytes ? kept : own_;
    if (buf.size() < n) buf.resize(n);
    data_ = buf.data();
  }
  T* data() const { return data_; }

 private:
  std::vector<T> own_;
  T* data_ = nullptr;
};

template <class F>
void maybe_parallel(int64_t tasks, int64_t elems, F&& f) {
  if (elems < kParallelPackElems || tasks < 2) {
    for (int64_t t = 0; t < tasks; ++t) f(t);
  } else {
    parallel_for(int(tasks), [&](int t) { f(int64_t(t)); });
  }
}

// op(X) (rows x cols, X[i * rs + j * cs]) times act'(gate) element by element, row-major:
// the gated operand the product takes (the gate has X's strides).
std::vector<float> apply_gate(const float* X, int64_t rs, int64_t cs, int64_t rows,
                              int64_t cols, const OperandGate<float>& gate) {
  std::vector<float> out(size_t(rows * cols));
  act_math::with_act(gate.act, [&](auto tag) {
    constexpr Act act = decltype(tag)::value;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t off = i * rs + j * cs;
        const float d = gate.from_output
                            ? act_math::derivative_from_output(act, gate.param, gate.data[off])
                            : act_math::derivative(act, gate.param, gate.data[off]);
        out[size_t(i * cols + j)] = X[off] * d;
      }
  });
  return out;
}

// op(A) (M x K) as rows of bf16 pairs: out[i * kpairs + p] holds k = 2p, 2p + 1 (0 past K).
void pack_a(const Bf16Kernel& kern, const float* A, int64_t rsa, int64_t csa, int64_t M,
            int64_t K, uint32_t* out) {
  const int64_t kpairs = (K + 1) / 2;
  constexpr int64_t kChunk = 64;
  if (csa == 1) {
    // A row in bf16 is already its row of pairs (little endian: the even k in the low half).
    maybe_parallel((M + kChunk - 1) / kChunk, M * K, [&](int64_t t) {
      for (int64_t i = t * kChunk; i < std::min(M, (t + 1) * kChunk); ++i) {
        uint16_t* row = reinterpret_cast<uint16_t*>(out + i * kpairs);
        kern.round_row(A + i * rsa, K, row);
        if (K % 2) row[K] = 0;
      }
    });
  } else if (rsa == 1) {
    // A^T stored row-major (the weight gradient's X^T): two rows of X make one pair per i.
    maybe_parallel((kpairs + kChunk - 1) / kChunk, M * K, [&](int64_t t) {
      std::vector<float> zeros(size_t(M), 0.0f);
      std::vector<uint32_t> pairs(static_cast<size_t>(M));
      for (int64_t p = t * kChunk; p < std::min(kpairs, (t + 1) * kChunk); ++p) {
        const float* odd = 2 * p + 1 < K ? A + (2 * p + 1) * csa : zeros.data();
        kern.pair_rows(A + 2 * p * csa, odd, M, pairs.data());
        for (int64_t i = 0; i < M; ++i) out[i * kpairs + p] = pairs[size_t(i)];
      }
    });
  } else {
    auto at = [&](int64_t i, int64_t k) { return k < K ? A[i * rsa + k * csa] : 0.0f; };
    for (int64_t i = 0; i < M; ++i)
      for (int64_t p = 0; p < kpairs; ++p)
        out[i * kpairs + p] = bf16_pair(at(i, 2 * p), at(i, 2 * p + 1));
  }
}

// Splits the tiles into tasks: blocks of row tiles by groups of B panels.
struct TilePlan {
  int64_t row_block, panel_group, row_blocks, panel_groups;
};

TilePlan plan_tiles(int64_t M, int64_t panels, int rows) {
  const int64_t threads = get_num_threads();
  TilePlan t;
  t.row_block = int64_t(rows) * 8;
  t.row_blocks = (M + t.row_block - 1) / t.row_block;
  // Few row blocks (a small batch): narrow panel groups, so that every thread gets columns.
  t.panel_group = t.row_blocks >= 2 * threads ? 4 : std::max<int64_t>(1, std::min<int64_t>(4, panels / (4 * threads)));
  t.panel_groups = (panels + t.panel_group - 1) / t.panel_group;
  return t;
}

void run_tiles(const GemmArgs<float>& g, const uint32_t* apack, const Bf16PackedB& b) {
  const Bf16Kernel kern = pick_kernel();
  const TilePlan t = plan_tiles(g.M, b.panels, kern.rows);
  auto task = [&](int64_t id) {
    const int64_t rb = id % t.row_blocks, pg = id / t.row_blocks;
    alignas(64) float acc[16 * kBf16PanelCols];
    const int64_t i_end = std::min(g.M, (rb + 1) * t.row_block);
    for (int64_t q = pg * t.panel_group; q < std::min(b.panels, (pg + 1) * t.panel_group); ++q) {
      const uint32_t* bq = b.data.data() + q * b.kpairs * kBf16PanelCols;
      const int64_t j0 = q * kBf16PanelCols;
      const int cols = int(std::min<int64_t>(kBf16PanelCols, g.N - j0));
      for (int64_t i0 = rb * t.row_block; i0 < i_end; i0 += kern.rows) {
        const int rows = int(std::min<int64_t>(kern.rows, i_end - i0));
        kern.tile(apack + i0 * b.kpairs, b.kpairs, rows, bq, b.kpairs, acc);
        kern.store(g, i0, rows, j0, cols, acc);
      }
    }
  };
  const int64_t tasks = t.row_blocks * t.panel_groups;
  // The FP32 GEMM's threshold for a second thread (gemm_driver.h: ~0.4 M multiply-adds), twice
  // as many here: vdpbf16ps does two per lane.
  if (tasks == 1 || double(g.M) * double(g.N) * double(g.K) < 800000.0) {
    for (int64_t id = 0; id < tasks; ++id) task(id);
  } else {
    parallel_for(int(tasks), [&](int id) { task(id); });
  }
}

}  // namespace

void pack_b_bf16(const float* B, int64_t rsb, int64_t csb, int64_t K, int64_t N,
                 Bf16PackedB& out) {
  constexpr int64_t C = kBf16PanelCols;
  const Bf16Kernel kern = pick_kernel();
  out.K = K;
  out.N = N;
  out.kpairs = (K + 1) / 2;
  out.panels = (N + C - 1) / C;
  out.data.resize(size_t(out.panels * out.kpairs * C));
  const int64_t kpairs = out.kpairs;
  uint32_t* dst = out.data.data();
  if (csb == 1) {
    // Rows of op(B) contiguous (a weight, dZ): two rows give a panel row of pairs.
    constexpr int64_t kChunk = 16;
    maybe_parallel((kpairs + kChunk - 1) / kChunk, K * N, [&](int64_t t) {
      std::vector<float> zeros(size_t(K % 2 ? N : 0), 0.0f);
      for (int64_t p = t * kChunk; p < std::min(kpairs, (t + 1) * kChunk); ++p) {
        const float* even = B + 2 * p * rsb;
        const float* odd = 2 * p + 1 < K ? B + (2 * p + 1) * rsb : zeros.data();
        for (int64_t q = 0; q < out.panels; ++q) {
          const int64_t cols = std::min(C, N - q * C);
          uint32_t* row = dst + (q * kpairs + p) * C;
          kern.pair_rows(even + q * C, odd + q * C, cols, row);
          std::fill(row + cols, row + C, 0u);
        }
      }
    });
  } else if (rsb == 1) {
    // Columns of op(B) contiguous (a transposed weight, for dX): a column in bf16 is its run
    // of pairs, which goes down the panel. Transposed through a small tile (kTile pairs of
    // all the panel's columns) so that the panel is written a row at a time.
    constexpr int64_t kTile = 32;
    maybe_parallel(out.panels, K * N, [&](int64_t q) {
      uint32_t tile[C][kTile];
      const int64_t cols = std::min(C, N - q * C);
      for (int64_t p0 = 0; p0 < kpairs; p0 += kTile) {
        const int64_t np = std::min(kTile, kpairs - p0);
        const int64_t k0 = 2 * p0, nk = std::min(2 * np, K - k0);
        for (int64_t c = 0; c < cols; ++c) {
          uint16_t* half = reinterpret_cast<uint16_t*>(tile[c]);
          kern.round_row(B + (q * C + c) * csb + k0, nk, half);
          if (nk % 2) half[nk] = 0;
        }
        for (int64_t c = cols; c < C; ++c) std::fill(tile[c], tile[c] + kTile, 0u);
        uint32_t* panel = dst + (q * kpairs + p0) * C;
        for (int64_t p = 0; p < np; ++p)
          for (int64_t c = 0; c < C; ++c) panel[p * C + c] = tile[c][p];
      }
    });
  } else {
    std::fill(out.data.begin(), out.data.end(), 0u);  // the padding
    auto at = [&](int64_t k, int64_t j) { return k < K ? B[k * rsb + j * csb] : 0.0f; };
    for (int64_t q = 0; q < out.panels; ++q)
      for (int64_t p = 0; p < kpairs; ++p)
        for (int64_t c = 0; c < std::min(C, N - q * C); ++c)
          dst[(q * kpairs + p) * C + c] = bf16_pair(at(2 * p, q * C + c), at(2 * p + 1, q * C + c));
  }
}

void gemm_bf16(const GemmArgs<float>& g_in, const Bf16PackedB* packed) {
  if (g_in.N <= 0) return;
  if (packed) {
    FASTNN_CHECK(packed->K == g_in.K && packed->N == g_in.N && !g_in.colsum_b,
                 "gemm_bf16: the packed B does not match the product");
  }
  // Nothing to multiply: the FP32 GEMM's BLAS semantics (and column sums) apply as they are.
  if (g_in.M <= 0 || g_in.K == 0 || g_in.alpha == 0.0f) {
    GemmArgs<float> g = g_in;
    if (packed) g.gate_b = OperandGate<float>();
    return gemm(g);
  }
  GemmArgs<float> g = g_in;
  std::vector<float> gated_a, gated_b;
  if (g.gate_a.data) {
    gated_a = apply_gate(g.A, g.rsa, g.csa, g.M, g.K, g.gate_a);
    g.A = gated_a.data(), g.rsa = g.K, g.csa = 1;
  }
  thread_local Bf16PackedB kept;
  Bf16PackedB own;
  Bf16PackedB& local =
      size_t(g.K) * size_t(g.N) * 2 <= kKeptScratchBytes ? kept : own;
  if (!packed) {
    if (g.gate_b.data) {
      gated_b = apply_gate(g.B, g.rsb, g.csb, g.K, g.N, g.gate_b);
      g.B = gated_b.data(), g.rsb = g.N, g.csb = 1;
    }
    if (g.colsum_b) {
      // The bias gradient: the FP32 column sums (before rounding), in double.
      std::vector<double> s(size_t(g.N), 0.0);
      for (int64_t k = 0; k < g.K; ++k)
        for (int64_t j = 0; j < g.N; ++j) s[size_t(j)] += g.B[k * g.rsb + j * g.csb];
      for (int64_t j = 0; j < g.N; ++j) g.colsum_b[j] = float(s[size_t(j)]);
    }
    pack_b_bf16(g.B, g.rsb, g.csb, g.K, g.N, local);
    packed = &local;
  }
  Scratch<uint32_t, 0> apack(size_t(g.M * packed->kpairs));
  pack_a(pick_kernel(), g.A, g.rsa, g.csa, g.M, g.K, apack.data());
  run_tiles(g, apack.data(), *packed);
}

void dense_backward_bf16(const DenseBackwardArgs<float>& a) {
  const float* dz = a.dY;
  int64_t ldz = a.ldy;
  Scratch<float, 1> dz_buf(a.gate.data ? size_t(a.M * a.N) : 0);
  if (a.gate.data) {
    // dZ once, on the vector activation kernels, for both products and the bias gradient.
    float* buf = dz_buf.data();
    for (int64_t i = 0; i < a.M; ++i) {
      const float* dy = a.dY + i * a.ldy;
      const float* v = a.gate.data + i * a.ldy;
      float* out = buf + i * a.N;
      if (a.gate.from_output)
        act_backward_from_output(a.gate.act, a.gate.param, dy, v, out, a.N);
      else
        act_backward(a.gate.act, a.gate.param, dy, v, out, a.N);
    }
    dz = buf;
    ldz = a.N;
  }
  if (a.db) {
    std::vector<double> s(size_t(a.N), 0.0);
    for (int64_t i = 0; i < a.M; ++i)
      for (int64_t j = 0; j < a.N; ++j) s[size_t(j)] += dz[i * ldz + j];
    for (int64_t j = 0; j < a.N; ++j) a.db[j] = float(a.accumulate ? a.db[j] + s[size_t(j)] : s[size_t(j)]);
  }
  // dW (K x N) = X^T (K x M) @ dZ (M x N)
  GemmArgs<float> w = gemm_product(a.K, a.N, a.M, a.X, 1, a.ldx, dz, ldz, 1, a.dW, a.lddw);
  w.beta = a.accumulate ? 1.0f : 0.0f;
  gemm_bf16(w);
  if (!a.dX) return;
  // dX (M x K) = dZ (M x N) @ W^T (N x K). Packing puts pairs along the sum (N), which for W^T
  // runs across W's rows: a transpose of the whole weight. With a batch of a panel or more and
  // smaller than K, the transposed product dX^T (K x M) = W @ dZ^T packs W row by row and
  // transposes dZ instead, and the epilogue writes dX through its strides.
  if (a.M >= kBf16PanelCols && a.M < a.K) {
    GemmArgs<float> t = gemm_product(a.K, a.M, a.N, a.W, a.ldw, 1, dz, 1, ldz, a.dX, 1);
    t.csc = a.lddx;
    gemm_bf16(t);
  } else {
    gemm_bf16(gemm_product(a.M, a.K, a.N, dz, ldz, 1, a.W, 1, a.ldw, a.dX, a.lddx));
  }
}

const char* bf16_kernel_name() { return bf16_path_name(bf16_path()); }

}  // namespace cpu
}  // namespace fastnn
