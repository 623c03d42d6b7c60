// Sampled softmax (see sampled_softmax.h). The dense work is three GEMMs on the gathered sampled
// columns, as TensorFlow does it:
//   Zs (N,S) = h (N,D) @ Ws (D,S) + bs      sampled logits
//   dh (N,D) = dZs (N,S) @ Ws^T + dzt * W[:, y]
//   dWs (D,S) = h^T @ dZs
// and the true-class logits are N row dot products, so the cost is O(N (S + 1) D), not O(N C D).
// The per-row softmax sums are added in chunk order and every output element is accumulated in a
// fixed order, so results are bit-identical for any thread count.
#include "cpu/sampled_softmax.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/parallel.h"
#include "cpu/chunked_sum.h"
#include "cpu/gemm.h"

namespace fastnn {
namespace cpu {

namespace {

// Work items are grouped into chunks of about this many elements (see chunked_sum.h).
constexpr int64_t kChunkElems = int64_t(1) << 14;

int64_t rows_per_chunk(int64_t row_cost) {
  return std::max<int64_t>(1, kChunkElems / std::max<int64_t>(1, row_cost));
}

}  // namespace

template <class T>
double sampled_softmax_cross_entropy(const SampledSoftmaxArgs<T>& a, const SampledPlan& plan,
                                     T* dh, T* dW_cols, T* db_cols) {
  // h (N,D), W (D,C), b (C,); samples s (S,); touched columns cols (k,).
  const int64_t N = a.N, D = a.D, C = a.C;
  const std::vector<int64_t>& s = plan.sample.ids;
  const std::vector<int64_t>& cols = plan.cols;
  const int64_t S = int64_t(s.size()), k = int64_t(cols.size());
  const int64_t* y = a.labels;
  auto slot_of = [&](int64_t c) {
    return std::lower_bound(cols.begin(), cols.end(), c) - cols.begin();
  };

  std::vector<int64_t> slot_s(S), slot_y(N);
  std::vector<double> logq_s(S, 0.0), logq_y(N, 0.0);
  for (int64_t j = 0; j < S; ++j) {
    slot_s[j] = slot_of(s[j]);
    if (a.subtract_log_q) logq_s[j] = std::log(plan.sample.expected[j]);
  }
  for (int64_t i = 0; i < N; ++i) {
    slot_y[i] = slot_of(y[i]);
    if (a.subtract_log_q && a.correct_true_logit)
      logq_y[i] = std::log(sampling::expected_count(y[i], C, a.sampler, a.unique, a.num_sampled,
                                                    plan.sample.tries));
  }

  // Ws (D,S) = W[:, s], bs (S,) = b[s]: gathered once so that the GEMMs read contiguous rows.
  std::vector<T> Ws(static_cast<size_t>(D * S)), bs(static_cast<size_t>(S));
  std::vector<T> Z(static_cast<size_t>(N * S)), dWs(static_cast<size_t>(D * S));
  for (int64_t d = 0; d < D; ++d)
    for (int64_t j = 0; j < S; ++j) Ws[d * S + j] = a.W[d * C + s[j]];
  if (a.b)
    for (int64_t j = 0; j < S; ++j) bs[j] = a.b[s[j]];

  GemmArgs<T> g;  // Z = h @ Ws + bs
  g.M = N, g.N = S, g.K = D;
  g.A = a.h, g.rsa = D, g.csa = 1;
  g.B = Ws.data(), g.rsb = S, g.csb = 1;
  g.C = Z.data(), g.rsc = S, g.csc = 1;
  g.bias = a.b ? bs.data() : nullptr;
  gemm(g);

  // Row softmax over [z_i0, z_i1..z_iS]; Z's row becomes dloss/dZs, dzt[i] = dloss/dz_i0.
  std::vector<double> dzt(static_cast<size_t>(N));
  const double inv_n = 1.0 / double(N);
  const double total = chunked_sum(N, rows_per_chunk(S + D), S + D, [&](int64_t begin, int64_t end) {
    double sum = 0;
    for (int64_t i = begin; i < end; ++i) {
      const T* hi = a.h + i * D;
      T* zi = Z.data() + i * S;
      double zt = a.b ? double(a.b[y[i]]) : 0.0;
      for (int64_t d = 0; d < D; ++d) zt += double(hi[d]) * double(a.W[d * C + y[i]]);
      zt -= logq_y[i];
      // An accidental hit is the true class posing as a negative: it leaves the softmax.
      auto masked = [&](int64_t j) { return a.remove_accidental_hits && s[j] == y[i]; };
      double m = zt;  // the shift by the row maximum keeps every exp in (0, 1]
      for (int64_t j = 0; j < S; ++j)
        if (!masked(j)) m = std::max(m, double(zi[j]) - logq_s[j]);
      double e_sum = std::exp(zt - m);
      for (int64_t j = 0; j < S; ++j)
        if (!masked(j)) e_sum += std::exp(double(zi[j]) - logq_s[j] - m);
      const double inv_s = 1.0 / e_sum;
      sum += std::log(e_sum) + m - zt;
      dzt[i] = (std::exp(zt - m) * inv_s - 1.0) * inv_n;
      for (int64_t j = 0; j < S; ++j)
        zi[j] = masked(j) ? T(0) : T(std::exp(double(zi[j]) - logq_s[j] - m) * inv_s * inv_n);
    }
    return sum;
  });

  // dh = dZs @ Ws^T, then the true class's term dzt_i W[:, y_i].
  GemmArgs<T> gh;
  gh.M = N, gh.N = D, gh.K = S;
  gh.A = Z.data(), gh.rsa = S, gh.csa = 1;
  gh.B = Ws.data(), gh.rsb = 1, gh.csb = S;
  gh.C = dh, gh.rsc = D, gh.csc = 1;
  gemm(gh);
  chunked_sum(N, rows_per_chunk(D), D, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      for (int64_t d = 0; d < D; ++d)
        dh[i * D + d] = T(double(dh[i * D + d]) + dzt[i] * double(a.W[d * C + y[i]]));
    return 0.0;
  });

  // dWs = h^T @ dZs.
  GemmArgs<T> gw;
  gw.M = D, gw.N = S, gw.K = N;
  gw.A = a.h, gw.rsa = 1, gw.csa = D;
  gw.B = Z.data(), gw.rsb = S, gw.csb = 1;
  gw.C = dWs.data(), gw.rsc = S, gw.csc = 1;
  gemm(gw);

  // dW_cols row d: the sampled columns' part, then every row's true-class part, in that fixed
  // order (repeated samples and rows sharing a label add into one column), summed in double.
  chunked_sum(D, rows_per_chunk(S + N), S + N, [&](int64_t begin, int64_t end) {
    std::vector<double> acc(static_cast<size_t>(k));
    for (int64_t d = begin; d < end; ++d) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < S; ++j) acc[slot_s[j]] += double(dWs[d * S + j]);
      for (int64_t i = 0; i < N; ++i) acc[slot_y[i]] += dzt[i] * double(a.h[i * D + d]);
      for (int64_t c = 0; c < k; ++c) dW_cols[d * k + c] = T(acc[c]);
    }
    return 0.0;
  });

  if (db_cols) {
    std::vector<double> col_sum(size_t(S), 0.0), acc(size_t(k), 0.0);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < S; ++j) col_sum[j] += double(Z[i * S + j]);
    for (int64_t j = 0; j < S; ++j) acc[slot_s[j]] += col_sum[j];
    for (int64_t i = 0; i < N; ++i) acc[slot_y[i]] += dzt[i];
    for (int64_t c = 0; c < k; ++c) db_cols[c] = T(acc[c]);
  }
  return total * inv_n;
}

template <class T>
void scatter_add_columns(const int64_t* cols, int64_t k, int64_t D, int64_t C, const T* dW_cols,
                         const T* db_cols, T* dW, T* db) {
  chunked_sum(D, rows_per_chunk(k), k, [&](int64_t begin, int64_t end) {
    for (int64_t d = begin; d < end; ++d)
      for (int64_t c = 0; c < k; ++c) dW[d * C + cols[c]] += dW_cols[d * k + c];
    return 0.0;
  });
  if (db && db_cols)
    for (int64_t c = 0; c < k; ++c) db[cols[c]] += db_cols[c];
}

#define FASTNN_INSTANTIATE(T)                                                                  \
  template double sampled_softmax_cross_entropy<T>(const SampledSoftmaxArgs<T>&,               \
                                                   const SampledPlan&, T*, T*, T*);            \
  template void scatter_add_columns<T>(const int64_t*, int64_t, int64_t, int64_t, const T*,    \
                                       const T*, T*, T*);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace cpu
}  // namespace fastnn
