// The blocked GEMM, written once and compiled once per instruction set.
//
// Include this file from a translation unit that defines FASTNN_ISA (avx512, avx2, scalar) and
// is compiled with that instruction set's flags. Everything here lives in the namespace
// fastnn::cpu::FASTNN_ISA, so the copies compiled with different flags never meet at link time
// (one inline function shared by two such units could otherwise be linked with the wrong ISA).
// For the same reason this file uses no std:: templates, only its own small helpers and
// core/act_math.h, whose functions have internal linkage.
//
// Structure (Goto/BLIS, seen from row-major C = A B with vectors along N):
//   for jc in N by NC:                     B block (KC x NC) packed once, lives in L2
//     for pc in K by KC:
//       pack B[pc:pc+KC, jc:jc+NC] into NR-wide slivers
//       for ic in M by MC:
//         pack A[ic:ic+MC, pc:pc+KC] into MR-tall slivers
//         for ir in MC by MR:              one A sliver (MR x KC) stays in L1 ...
//           for jr in NC by NR:            ... while B slivers stream from L2
//             micro-kernel: MR x NR accumulators in registers, KC rank-1 updates
// The epilogue (alpha, beta*C, bias, activation) runs on the accumulators before they are
// stored, on the last K block only for bias and activation.
#pragma once
#ifndef FASTNN_ISA
#error "define FASTNN_ISA before including gemm_driver.h"
#endif
// FASTNN_ISA_VECTOR_ACTIVATIONS: 1 where activations_<isa>.cpp exists for this ISA (the epilogue
// and the gates then run on its vector math), 0 for the portable build.
#ifndef FASTNN_ISA_VECTOR_ACTIVATIONS
#error "define FASTNN_ISA_VECTOR_ACTIVATIONS (0 or 1) before including gemm_driver.h"
#endif

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/act_math.h"
#include "core/parallel.h"
#include "cpu/gemm.h"
#include "cpu/gemm_transpose.h"

namespace fastnn {
namespace cpu {
namespace FASTNN_ISA {

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// d[i] = act'(g[i * stride]), or act' from the output y = g (see OperandGate), by
// core/act_math.h's formulas; one loop per activation, so that the simple ones vectorize.
template <class T>
inline void act_deriv_run(const T* g, int64_t stride, T* __restrict d, int64_t n,
                          const OperandGate<T>& gate) {
  const T p = gate.param;
  act_math::with_act(gate.act, [&](auto tag) {
    constexpr Act a = decltype(tag)::value;
    if (gate.from_output)
      for (int64_t i = 0; i < n; ++i) d[i] = act_math::derivative_from_output(a, p, g[i * stride]);
    else
      for (int64_t i = 0; i < n; ++i) d[i] = act_math::derivative(a, p, g[i * stride]);
  });
}

// Gated runs are formed through a small stack buffer, a chunk at a time.
constexpr int64_t kGateChunk = 64;

#if FASTNN_ISA_VECTOR_ACTIVATIONS
// This ISA's float32 activation kernels (activations_<isa>.cpp, built with the same flags).
void act_forward(Act act, float param, const float* x, float* y, int64_t n);
void act_backward(Act act, float param, const float* dy, const float* v, float* dx, int64_t n,
                  bool from_output);
#endif

// dst[i] = src[i] * act'(gate[i]) for i < n on this ISA's vector math, for float runs with unit
// stride; false means "not available here", and the caller falls back to act_deriv_run.
inline bool gate_run_vector(const float* src, const float* gate, int64_t n,
                            const OperandGate<float>& g, float* dst) {
#if FASTNN_ISA_VECTOR_ACTIVATIONS
  act_backward(g.act, g.param, src, gate, dst, n, g.from_output);
  return true;
#else
  return false;
#endif
}
inline bool gate_run_vector(const double*, const double*, int64_t, const OperandGate<double>&,
                            double*) {
  return false;
}

// x[i] = act(x[i]) for i < n, in place, on this ISA's vector math; false: not available here
// (the epilogue then applies act_math::forward).
inline bool act_run_vector(float* x, int64_t n, Act act, float param) {
#if FASTNN_ISA_VECTOR_ACTIVATIONS
  act_forward(act, param, x, x, n);
  return true;
#else
  return false;
#endif
}
inline bool act_run_vector(double*, int64_t, Act, double) { return false; }

// dst[i * dst_stride] = src[i * stride], times act'(gate_src[i * stride]) when gated; i < n.
template <class T>
inline void load_run(const T* src, const T* gate_src, int64_t stride, int64_t n,
                     const OperandGate<T>& gate, T* __restrict dst, int64_t dst_stride) {
  if (!gate_src) {
    for (int64_t i = 0; i < n; ++i) dst[i * dst_stride] = src[i * stride];
    return;
  }
  T d[kGateChunk];
  for (int64_t i0 = 0; i0 < n; i0 += kGateChunk) {
    const int64_t len = imin(kGateChunk, n - i0);
    if (stride == 1) {
      // Transcendental derivatives (gelu, softplus, sigmoid or tanh of z) cost far more in
      // scalar libm than the product they feed: the vector path keeps the fused backward close
      // to the cost of its two GEMMs.
      T* out = dst_stride == 1 ? dst + i0 : d;
      if (gate_run_vector(src + i0, gate_src + i0, len, gate, out)) {
        if (dst_stride != 1)
          for (int64_t i = 0; i < len; ++i) dst[(i0 + i) * dst_stride] = d[i];
        continue;
      }
    }
    act_deriv_run(gate_src + i0 * stride, stride, d, len, gate);
    for (int64_t i = 0; i < len; ++i)
      dst[(i0 + i) * dst_stride] = src[(i0 + i) * stride] * d[i];
  }
}

// What the micro-kernel does with its accumulators once the K loop is done.
template <class T>
struct Epilogue {
  T alpha;
  bool read_c;      // add beta * C (first K block with beta != 0) or C (later K blocks)
  T beta;           // 1 on later K blocks
  bool last;        // last K block: add bias, apply activation
  const T* bias;    // already offset to this tile's first column; null for none
  int64_t bias_stride;
  Act act;
  T act_param;
  T* z;             // pre-activation output at this tile (C's strides); null for none
};

// The epilogue of the K block [pc, pc + kc) of g, before its tile's bias and z are set: C is
// scaled by beta on the first block only and accumulated after it; bias and activation on the last.
template <class T>
inline Epilogue<T> block_epilogue(const GemmArgs<T>& g, int64_t pc, int64_t kc) {
  Epilogue<T> ep;
  ep.alpha = g.alpha;
  ep.read_c = pc > 0 || g.beta != T(0);
  ep.beta = pc > 0 ? T(1) : g.beta;
  ep.last = pc + kc >= g.K;
  ep.bias_stride = g.bias_stride;
  ep.act = g.act;
  ep.act_param = g.act_param;
  return ep;
}

// Activations that need transcendental functions (and step, whose NaN rule needs a test the
// register wrappers lack) run over each finished row of a tile, while it is still in L1; the
// others are applied in registers.
template <class T>
inline bool act_in_registers(Act a) {
  return a == Act::None || a == Act::Relu || a == Act::LeakyRelu;
}

// Epilogue on a tile held in a temporary buffer (edge tiles and strided C), finished in place in
// `acc` and then stored. The transcendental activations run over each row on the vector math, as
// in full tiles: the kernel (picked by the row count) and the tile edges differ between a batch
// and its single rows, and an element must not change with the tile that computed it
// (predicting one row gives that row of the batch prediction, bit for bit).
template <class T>
inline void epilogue_tile(T* acc, int64_t ldacc, T* c, int64_t rsc, int64_t csc, int64_t m,
                          int64_t n, const Epilogue<T>& ep) {
  // Contiguous columns (a narrow product's 10 outputs, a right edge): each step is one simple
  // loop over the row that the compiler vectorises, where the general loop below tests every
  // option at every element (it was twice the narrow kernel's own time in a small training step).
  if (csc == 1 && ep.alpha == T(1) && (!ep.bias || ep.bias_stride == 1)) {
    const T beta = ep.beta;
    const T* bias = ep.last ? ep.bias : nullptr;
    T* z = ep.last ? ep.z : nullptr;
    const bool act = ep.last && ep.act != Act::None;
    for (int64_t i = 0; i < m; ++i) {
      T* __restrict row = acc + i * ldacc;
      T* ci = c + i * rsc;
      if (ep.read_c)
        for (int64_t j = 0; j < n; ++j) row[j] += beta * ci[j];
      if (bias)
        for (int64_t j = 0; j < n; ++j) row[j] += bias[j];
      if (z)
        for (int64_t j = 0; j < n; ++j) z[i * rsc + j] = row[j];
      if (act && (act_in_registers<T>(ep.act) || !act_run_vector(row, n, ep.act, ep.act_param)))
        for (int64_t j = 0; j < n; ++j) row[j] = act_math::forward(ep.act, ep.act_param, row[j]);
      for (int64_t j = 0; j < n; ++j) ci[j] = row[j];
    }
    return;
  }
  for (int64_t i = 0; i < m; ++i) {
    T* row = acc + i * ldacc;
    for (int64_t j = 0; j < n; ++j) {
      T x = ep.alpha * row[j];
      if (ep.read_c) x += ep.beta * c[i * rsc + j * csc];
      if (ep.last) {
        if (ep.bias) x += ep.bias[j * ep.bias_stride];
        if (ep.z) ep.z[i * rsc + j * csc] = x;
      }
      row[j] = x;
    }
    if (ep.last && ep.act != Act::None &&
        (act_in_registers<T>(ep.act) || !act_run_vector(row, n, ep.act, ep.act_param)))
      for (int64_t j = 0; j < n; ++j) row[j] = act_math::forward(ep.act, ep.act_param, row[j]);
    for (int64_t j = 0; j < n; ++j) c[i * rsc + j * csc] = row[j];
  }
}

// MR x (NV vectors) register-blocked micro-kernel. V wraps one SIMD register type.
template <class V, int MR_, int NV, int KC_, int MC_, int NC_>
struct Kernel {
  using T = typename V::T;
  using R = typename V::R;
  static constexpr int MR = MR_;
  static constexpr int NR = NV * V::W;
  static constexpr int64_t KC = KC_, MC = MC_, NC = NC_;

  // ap: packed A sliver, ap[k*MR + i]; bp: B sliver, bp[k*ldb + j] (ldb = NR when packed, the
  // row stride of B when read in place); C tile at c. kAInPlace: ap is row-major A itself,
  // ap[i*lda + k], with its first m rows real (the rest of the tile reads row 0 again and is
  // never stored).
  template <bool kAInPlace = false>
  static void run(int64_t kc, const T* __restrict ap, const T* __restrict bp, int64_t ldb, T* c,
                  int64_t rsc,
                  int64_t csc, int64_t m, int64_t n, const Epilogue<T>& ep, int64_t lda = 0) {
    R acc[MR][NV];
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = V::zero();

    const T* arow[kAInPlace ? MR : 1];
    if (kAInPlace)
      for (int i = 0; i < MR; ++i) arow[i] = ap + (i < m ? i : 0) * lda;
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; ++k) {
      R b[NV];
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) b[j] = V::load(bp + j * V::W);
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i) {
        R a = V::set1(kAInPlace ? arow[i][k] : ap[i]);
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) acc[i][j] = V::fma(a, b[j], acc[i][j]);
      }
      if (!kAInPlace) ap += MR;
      bp += ldb;
    }

    // Tiles with all NR columns contiguous in C take the vector epilogue, also when they have
    // fewer than MR rows (the bottom edge, e.g. M = 32 with MR = 12); the rest go through a
    // temporary tile and the scalar epilogue.
    const bool vector_cols = n == NR && csc == 1 && (!ep.bias || ep.bias_stride == 1);
    if (!vector_cols) {
      alignas(64) T tile[MR * NR];
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) V::store(tile + i * NR + j * V::W, acc[i][j]);
      epilogue_tile(tile, NR, c, rsc, csc, m, n, ep);
      return;
    }

    const R alpha = V::set1(ep.alpha), beta = V::set1(ep.beta), zero = V::zero();
    const bool scale = ep.alpha != T(1);
    const bool bias = ep.last && ep.bias;
    const Act act = ep.last ? ep.act : Act::None;
    const R slope = V::set1(ep.act_param);
    R bvec[NV];
    if (bias)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) bvec[j] = V::load(ep.bias + j * V::W);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      if (i >= m) break;
      T* ci = c + i * rsc;
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        R x = acc[i][j];
        if (scale) x = V::mul(x, alpha);
        if (ep.read_c) x = V::fma(beta, V::load(ci + j * V::W), x);
        if (bias) x = V::add(x, bvec[j]);
        if (ep.last && ep.z) V::store(ep.z + i * rsc + j * V::W, x);
        switch (act) {
          case Act::Relu: x = V::max(zero, x); break;  // max(0, NaN) keeps the NaN
          case Act::LeakyRelu: x = V::select_positive(x, x, V::mul(x, slope)); break;
          default: break;
        }
        V::store(ci + j * V::W, x);
      }
      if (!act_in_registers<T>(act) && !act_run_vector(ci, NR, act, ep.act_param))
        for (int j = 0; j < NR; ++j) ci[j] = act_math::forward(act, ep.act_param, ci[j]);
    }
  }
};

// A buffer that grows on demand and is reused by the same thread across calls.
template <class T>
struct ScratchBuffer {
  T* data = nullptr;
  int64_t size = 0;
  T* get(int64_t n) {
    if (n > size) {
      std::free(data);
      // 64-byte alignment: packed slivers are read with full-width vector loads.
      data = static_cast<T*>(std::aligned_alloc(64, round_up(n * sizeof(T), 64)));
      if (!data) throw std::bad_alloc();
      size = n;
    }
    return data;
  }
  ~ScratchBuffer() { std::free(data); }
};

// Packs an operand block into P-wide slivers, zero-padded: for p in [0, np) and k in [0, kc),
// sliver p / P holds src[p * ps + k * ks] at [k][p % P]. op(A)[0:mc, 0:kc] packs as (np, ps,
// ks) = (mc, rsa, csa) into MR-tall slivers, op(B)[0:kc, 0:nc] as (nc, csb, rsb) into NR-wide
// ones. With a gate (gsrc: the gate's element matching src[0]), each value is multiplied by
// act'(gate). With colsum (B only), each packed column's values are added to colsum[p] in k
// order.
template <int P, class T>
void pack_slivers(int64_t np, int64_t kc, const T* src, int64_t ps, int64_t ks,
                  T* __restrict out, const T* gsrc, const OperandGate<T>& gate,
                  double* colsum = nullptr) {
  // Full slivers whose P values at each k are contiguous (row-major B: a weight matrix in the
  // forward pass) are copied k by k across all of them: each source row is read front to back
  // once, where a sliver at a time would jump to a new row (a new page) every P values
  // (measured: +2% on a 256 x 2048 x 2048 forward product, at one and two threads).
  const int64_t row_slivers = ps == 1 ? np / P : 0;
  for (int64_t k = 0; row_slivers > 0 && k < kc; ++k) {
    const T* row = src + k * ks;
    const T* grow = gsrc ? gsrc + k * ks : nullptr;
    for (int64_t sl = 0; sl < row_slivers; ++sl) {
      T* o = out + sl * P * kc + k * P;
      if (grow)
        load_run(row + sl * P, grow + sl * P, 1, P, gate, o, 1);
      else
        for (int p = 0; p < P; ++p) o[p] = row[sl * P + p];
    }
  }
  for (int64_t p0 = 0; p0 < np; p0 += P, out += P * kc) {
    const int64_t width = imin(P, np - p0);
    if (p0 / P < row_slivers) {
      // packed above
    } else if (width == P && ps == 1) {
      // The sliver's P values at each k are contiguous: copy them as a run.
      for (int64_t k = 0; k < kc; ++k) {
        const T* run = src + p0 + k * ks;
        if (gsrc)
          load_run(run, gsrc + p0 + k * ks, 1, P, gate, out + k * P, 1);
        else
          for (int p = 0; p < P; ++p) out[k * P + p] = run[p];
      }
    } else if (width == P && ks == 1) {
      // Runs along k (row-major A; B read transposed, as W^T in a backward pass): written
      // straight into the sliver, each run's values would land P elements apart, one cache line
      // per store across the whole sliver (32 KiB for NR = 32, all of L1). A P x kTransTile
      // tile is gathered run by run instead (contiguous reads, gated as runs), then written
      // out k-major, P contiguous values at a time, with everything in a few lines of L1.
      // Whole tiles go through a register transpose where this ISA has one (gemm_transpose.h),
      // straight from the source when ungated.
      alignas(64) T tile[P * kTransTile];
      for (int64_t k0 = 0; k0 < kc; k0 += kTransTile) {
        const int64_t len = imin(kTransTile, kc - k0);
        if (len == kTransTile && !gsrc &&
            transpose_block<P>(src + p0 * ps + k0, ps, out + k0 * P))
          continue;
        for (int64_t p = 0; p < P; ++p) {
          const int64_t off = (p0 + p) * ps + k0;
          load_run(src + off, gsrc ? gsrc + off : nullptr, 1, len, gate, tile + p * kTransTile,
                   1);
        }
        if (len == kTransTile && transpose_block<P>(tile, kTransTile, out + k0 * P)) continue;
        for (int64_t k = 0; k < len; ++k)
          for (int p = 0; p < P; ++p) out[(k0 + k) * P + p] = tile[p * kTransTile + k];
      }
    } else {
      for (int64_t p = 0; p < P; ++p) {
        if (p < width) {
          const int64_t off = (p0 + p) * ps;
          load_run(src + off, gsrc ? gsrc + off : nullptr, ks, kc, gate, out + p, P);
        } else {
          for (int64_t k = 0; k < kc; ++k) out[k * P + p] = T(0);
        }
      }
    }
    if (colsum)
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t p = 0; p < width; ++p) colsum[p0 + p] += double(out[k * P + p]);
  }
}

// One thread's share: the C block [m0, m1) x [n0, n1), all of K. The thread whose block starts
// at row 0 also forms the column sums of B (colsum_b) for its columns: every column is then summed
// by exactly one thread, in k order, whatever the thread grid.
template <class Kern>
void gemm_block(const GemmArgs<typename Kern::T>& g, int64_t m0, int64_t m1, int64_t n0,
                int64_t n1) {
  using T = typename Kern::T;
  constexpr int MR = Kern::MR, NR = Kern::NR;
  static thread_local ScratchBuffer<T> a_buf, b_buf;
  static thread_local ScratchBuffer<double> sum_buf;
  T* ap = a_buf.get(round_up(Kern::MC, MR) * Kern::KC);
  T* bp = b_buf.get(round_up(Kern::NC, NR) * Kern::KC);
  double* colsum = (g.colsum_b && m0 == 0) ? sum_buf.get(Kern::NC) : nullptr;

  for (int64_t jc = n0; jc < n1; jc += Kern::NC) {
    const int64_t nc = imin(Kern::NC, n1 - jc);
    if (colsum)
      for (int64_t j = 0; j < nc; ++j) colsum[j] = 0.0;
    for (int64_t pc = 0; pc < g.K; pc += Kern::KC) {
      const int64_t kc = imin(Kern::KC, g.K - pc);
      Epilogue<T> ep = block_epilogue(g, pc, kc);
      const int64_t b_off = pc * g.rsb + jc * g.csb;
      const T* b_block = g.B + b_off;
      const T* gb_block = g.gate_b.data ? g.gate_b.data + b_off : nullptr;
      // With few rows of A, each B sliver is used only a few times and packing it would cost
      // as much as the product (batch-1 inference copies the whole weight matrix): when B's rows
      // are contiguous, full-width slivers are then read in place and only the edge is packed.
      // A gated or summed B has to go through the packing, where the gate and sums are applied.
      const bool b_in_place = g.csb == 1 && (m1 - m0) <= 4 * MR && !gb_block && !g.colsum_b;
      const int64_t nc_full = b_in_place ? nc / NR * NR : 0;
      if (nc_full < nc)
        pack_slivers<NR>(nc - nc_full, kc, b_block + nc_full * g.csb, g.csb, g.rsb,
                         bp + nc_full * kc, gb_block, g.gate_b, colsum);
      // A block used by a single B sliver (a classifier's 10 outputs: nc <= NR) would be packed
      // to be read once: when its rows are contiguous and ungated, the kernel reads them in
      // place (measured: 32 x 128 x 10, 4.1 -> ~2 us in a training step).
      const bool a_in_place = nc <= NR && g.csa == 1 && !g.gate_a.data;
      for (int64_t ic = m0; ic < m1; ic += Kern::MC) {
        const int64_t mc = imin(Kern::MC, m1 - ic);
        const int64_t a_off = ic * g.rsa + pc * g.csa;
        if (a_in_place) {
          for (int64_t ir = 0; ir < mc; ir += MR) {
            ep.bias = g.bias ? g.bias + jc * g.bias_stride : nullptr;
            const int64_t c_off = (ic + ir) * g.rsc + jc * g.csc;
            ep.z = g.Z ? g.Z + c_off : nullptr;
            const bool b_full = nc_full > 0;  // one full sliver of B, read where it lies
            Kern::template run<true>(kc, g.A + a_off + ir * g.rsa, b_full ? b_block : bp,
                                     b_full ? g.rsb : NR, g.C + c_off, g.rsc, g.csc,
                                     imin(MR, mc - ir), nc, ep, g.rsa);
          }
          continue;
        }
        pack_slivers<MR>(mc, kc, g.A + a_off, g.rsa, g.csa, ap,
                         g.gate_a.data ? g.gate_a.data + a_off : nullptr, g.gate_a);
        for (int64_t ir = 0; ir < mc; ir += MR) {
          const T* a_sliver = ap + ir * kc;
          for (int64_t jr = 0; jr < nc; jr += NR) {
            ep.bias = g.bias ? g.bias + (jc + jr) * g.bias_stride : nullptr;
            const int64_t c_off = (ic + ir) * g.rsc + (jc + jr) * g.csc;
            T* c = g.C + c_off;
            ep.z = g.Z ? g.Z + c_off : nullptr;
            if (jr < nc_full)
              Kern::run(kc, a_sliver, b_block + jr, g.rsb, c, g.rsc, g.csc, imin(MR, mc - ir),
                        NR, ep);
            else
              Kern::run(kc, a_sliver, bp + jr * kc, NR, c, g.rsc, g.csc, imin(MR, mc - ir),
                        imin(NR, nc - jr), ep);
          }
        }
      }
    }
    if (colsum)
      for (int64_t j = 0; j < nc; ++j) g.colsum_b[jc + j] = T(colsum[j]);
  }
}

// Splits C over threads into a tm x tn grid of MR/NR-aligned blocks. Every element is computed
// by one task with the same K blocking whatever the grid, so results do not depend on threads.
template <class Kern>
void gemm_blocked(const GemmArgs<typename Kern::T>& g) {
  constexpr int MR = Kern::MR, NR = Kern::NR;
  const int64_t mblocks = (g.M + MR - 1) / MR, nblocks = (g.N + NR - 1) / NR;
  // Below ~0.8 MFLOP a hand-off to a second thread costs more than it saves (measured:
  // 32x64 @ 64x128 takes 14 us on one thread, 31 us on two).
  const double macs = double(g.M) * double(g.N) * double(g.K);
  int nt = macs < 400000.0 ? 1 : get_num_threads();
  if (nt > mblocks * nblocks) nt = static_cast<int>(mblocks * nblocks);
  if (nt <= 1) {
    gemm_block<Kern>(g, 0, g.M, 0, g.N);
    return;
  }
  // Choose the grid that minimises the largest block's multiply-adds plus its packing, preferring
  // to split M on ties. Each thread packs B for all of its columns and A for all of its rows
  // (once per NC columns), so splitting M makes every thread pack (and stream from memory) all of
  // B: with a batch of 256 rows against a 2048 x 2048 weight matrix that was ~8% of the product
  // per thread, twice what splitting N costs. kPackMacs: one packed element, in multiply-adds
  // per K step (measured on Zen 4: a cold weight matrix packs at ~1 cycle per element, where the
  // micro-kernel does 16 multiply-adds).
  constexpr double kPackMacs = 16;
  int best_tm = nt, best_tn = 1;
  double best_cost = 1e300;
  for (int tm = nt; tm >= 1; --tm) {
    if (nt % tm) continue;
    const int tn = nt / tm;
    const double rows = double((mblocks + tm - 1) / tm) * MR;
    const double cols = double((nblocks + tn - 1) / tn) * NR;
    const double cost =
        rows * cols + kPackMacs * (cols + rows * double((int64_t(cols) + Kern::NC - 1) / Kern::NC));
    if (cost < best_cost) {
      best_cost = cost;
      best_tm = tm;
      best_tn = tn;
    }
  }
  const int tm = best_tm, tn = best_tn;
  parallel_for(tm * tn, [&](int t) {
    const int ti = t / tn, tj = t % tn;
    const int64_t mb0 = mblocks * ti / tm, mb1 = mblocks * (ti + 1) / tm;
    const int64_t nb0 = nblocks * tj / tn, nb1 = nblocks * (tj + 1) / tn;
    const int64_t m0 = mb0 * MR, m1 = imin(mb1 * MR, g.M);
    const int64_t n0 = nb0 * NR, n1 = imin(nb1 * NR, g.N);
    if (m0 < m1 && n0 < n1) gemm_block<Kern>(g, m0, m1, n0, n1);
  });
}

// colsum_b alone, for a product with no rows (M == 0) that still wants B's column sums.
template <class T>
void colsum_only(const GemmArgs<T>& g) {
  T buf[kGateChunk];
  for (int64_t j = 0; j < g.N; ++j) {
    double s = 0;
    for (int64_t k0 = 0; k0 < g.K; k0 += kGateChunk) {
      const int64_t len = imin(kGateChunk, g.K - k0);
      const int64_t off = j * g.csb + k0 * g.rsb;
      load_run(g.B + off, g.gate_b.data ? g.gate_b.data + off : nullptr, g.rsb, len, g.gate_b,
               buf, 1);
      for (int64_t k = 0; k < len; ++k) s += double(buf[k]);
    }
    g.colsum_b[j] = T(s);
  }
}

// Few rows (batch-1 inference, tiny batches) would waste most of a tall micro-kernel on the
// zero padding of A: M == 1 gets a one-row kernel (a GEMV), small M a short one. Few columns (a
// classifier's 10 outputs) would likewise waste a wide kernel on B's padding: N up to one
// vector gets the one-vector-wide kernels (measured, 1 x 128 x 10: 1.8 -> 0.7 us).
template <class Big, class Small, class Single, class Narrow = Big, class NarrowSingle = Single>
void gemm_by_rows(const GemmArgs<typename Big::T>& g) {
  if (Narrow::NR < Big::NR && g.N <= Narrow::NR) {
    if (g.M == 1)
      gemm_blocked<NarrowSingle>(g);
    else
      gemm_blocked<Narrow>(g);
  } else if (g.M == 1) {
    gemm_blocked<Single>(g);
  } else if (g.M <= Small::MR) {
    gemm_blocked<Small>(g);
  } else {
    gemm_blocked<Big>(g);
  }
}

}  // namespace FASTNN_ISA
}  // namespace cpu
}  // namespace fastnn
