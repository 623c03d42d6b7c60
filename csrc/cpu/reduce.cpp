// Row reductions and accuracy counts (see reduce.h).
#include "cpu/reduce.h"

#include <cmath>
#include <string>

#include "core/error.h"

namespace fastnn {
namespace cpu {

namespace {

// a (at index ia) ranks before b (at index ib): larger first, NaN above every number, ties
// (and NaN against NaN) to the lower index. The one ordering argmax and top-k share.
template <class T>
inline bool ranks_before(T a, int64_t ia, T b, int64_t ib) {
  const bool na = std::isnan(a), nb = std::isnan(b);
  if (na != nb) return na;
  if (!na && a != b) return a > b;
  return ia < ib;
}

template <class T>
int64_t row_argmax(const T* z, int64_t F) {
  int64_t best = 0;
  // Plain scan: a NaN stops the search, since nothing after it can rank before it.
  if (std::isnan(z[0])) return 0;
  for (int64_t f = 1; f < F; ++f) {
    if (std::isnan(z[f])) return f;
    if (z[f] > z[best]) best = f;
  }
  return best;
}

void check_labels(const int64_t* labels, int64_t N, int64_t C) {
  for (int64_t i = 0; i < N; ++i)
    if (labels[i] < 0 || labels[i] >= C)
      throw ValueError("labels: expected class indices in [0, " + std::to_string(C) + "), got " +
                       std::to_string(labels[i]) + " at position " + std::to_string(i));
}

// sum over row chunks of count(i0, i1); integer sums are exact in any order, the chunking
// only spreads the work.
template <class Count>
int64_t count_rows(int64_t N, int64_t F, const Count& count) {
  if (N <= 0) return 0;
  const int64_t rows = std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(F, 1));
  const int64_t n = (N + rows - 1) / rows;
  if (n <= 1 || N * std::max<int64_t>(F, 1) < kReduceParallelMin || n >= (int64_t(1) << 30))
    return count(0, N);
  std::vector<int64_t> partial(static_cast<size_t>(n));
  parallel_for(static_cast<int>(n), [&](int c) {
    partial[c] = count(int64_t(c) * rows, std::min(N, (int64_t(c) + 1) * rows));
  });
  int64_t total = 0;
  for (int64_t p : partial) total += p;
  return total;
}

}  // namespace

template <class T>
void sum_rows(const T* x, int64_t N, int64_t F, T* out) {
  // x (N, F) -> out (F,)
  std::vector<double> acc(static_cast<size_t>(F));
  column_sums(N, F, 1, [&](int64_t i, int64_t f0, int64_t f1, double* a) {
    const T* row = x + i * F;
    for (int64_t f = f0; f < f1; ++f) a[f - f0] += double(row[f]);
  }, acc.data());
  for (int64_t f = 0; f < F; ++f) out[f] = static_cast<T>(acc[f]);
}

template <class T>
void mean_rows(const T* x, int64_t N, int64_t F, T* out) {
  FASTNN_CHECK(N > 0, "x: expected at least one row to average, got 0");
  std::vector<double> acc(static_cast<size_t>(F));
  column_sums(N, F, 1, [&](int64_t i, int64_t f0, int64_t f1, double* a) {
    const T* row = x + i * F;
    for (int64_t f = f0; f < f1; ++f) a[f - f0] += double(row[f]);
  }, acc.data());
  for (int64_t f = 0; f < F; ++f) out[f] = static_cast<T>(acc[f] / double(N));
}

template <class T>
void argmax_rows(const T* x, int64_t N, int64_t F, int64_t* idx) {
  FASTNN_CHECK(F > 0 || N == 0, "x: expected at least one column to take the argmax of, got 0");
  for_row_chunks(N, F, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) idx[i] = row_argmax(x + i * F, F);
  });
}

template <class T>
int64_t count_correct(const T* scores, const int64_t* labels, int64_t N, int64_t C) {
  FASTNN_CHECK(C > 0 || N == 0, "scores: expected at least one class, got 0");
  check_labels(labels, N, C);
  return count_rows(N, C, [&](int64_t i0, int64_t i1) {
    int64_t hits = 0;
    for (int64_t i = i0; i < i1; ++i) hits += row_argmax(scores + i * C, C) == labels[i];
    return hits;
  });
}

template <class T>
int64_t top_k_correct(const T* scores, const int64_t* labels, int64_t N, int64_t C, int64_t k) {
  FASTNN_CHECK(k >= 1, "k: expected k >= 1, got " + std::to_string(k));
  FASTNN_CHECK(C > 0 || N == 0, "scores: expected at least one class, got 0");
  check_labels(labels, N, C);
  return count_rows(N, C, [&](int64_t i0, int64_t i1) {
    int64_t hits = 0;
    for (int64_t i = i0; i < i1; ++i) {
      // The label's rank is the number of classes ranking before it: O(C), no sort.
      const T* z = scores + i * C;
      const int64_t y = labels[i];
      int64_t rank = 0;
      for (int64_t c = 0; c < C && rank < k; ++c) rank += ranks_before(z[c], c, z[y], y);
      hits += rank < k;
    }
    return hits;
  });
}

template <class T>
int64_t binary_correct(const T* logits, const T* targets, int64_t n, double threshold) {
  // One "row" of n elements would defeat the chunking: count over (n, 1).
  return count_rows(n, 1, [&](int64_t i0, int64_t i1) {
    int64_t hits = 0;
    for (int64_t i = i0; i < i1; ++i)
      hits += (double(logits[i]) > threshold) == (double(targets[i]) >= 0.5);
    return hits;
  });
}

#define FASTNN_REDUCE_INSTANTIATE(T)                                                         \
  template void sum_rows<T>(const T*, int64_t, int64_t, T*);                                 \
  template void mean_rows<T>(const T*, int64_t, int64_t, T*);                                \
  template void argmax_rows<T>(const T*, int64_t, int64_t, int64_t*);                        \
  template int64_t count_correct<T>(const T*, const int64_t*, int64_t, int64_t);             \
  template int64_t top_k_correct<T>(const T*, const int64_t*, int64_t, int64_t, int64_t);    \
  template int64_t binary_correct<T>(const T*, const T*, int64_t, double);
FASTNN_REDUCE_INSTANTIATE(float)
FASTNN_REDUCE_INSTANTIATE(double)
#undef FASTNN_REDUCE_INSTANTIATE

}  // namespace cpu
}  // namespace fastnn
