// Row reductions and accuracy counts on the CPU: the contract of core/ops/reduce.h.
//
// Column sums walk the matrix row by row (contiguous features, friendly to caches and to the
// vectorizer) into per-feature double accumulators, never down a column. Rows are cut into
// chunks and features into blocks whose sizes depend only on (N, F); each chunk's partial
// vector is added in chunk order, so results are bit-identical for any thread count.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/ops/reduce.h"
#include "core/parallel.h"

namespace fastnn {
namespace cpu {

// ------------------------------------------------------------------ the column-sum engine
//
// out[f] = sum_i term(i, f) for f in [0, F), in double. row_body(i, f0, f1, acc) must add
// row i's terms for features [f0, f1) into acc[0 .. f1 - f0). Used by sum/mean_rows and by
// batch normalization (means, variances, the two backward sums).
struct ColumnTiling {
  int64_t rows_per_chunk, nchunks;    // row chunks, summed in this order
  int64_t feats_per_block, nblocks;  // feature blocks, independent of each other
};

inline ColumnTiling column_tiling(int64_t N, int64_t F) {
  constexpr int64_t kBlockFeats = 1024;    // a block's accumulators stay in L1/L2
  constexpr int64_t kChunkElems = 1 << 14;  // elements per task
  constexpr int64_t kMaxChunks = 64;        // bounds the partial buffers to 64 * F doubles
  ColumnTiling t;
  t.feats_per_block = std::max<int64_t>(1, std::min(F, kBlockFeats));
  t.nblocks = F > 0 ? (F + t.feats_per_block - 1) / t.feats_per_block : 0;
  t.rows_per_chunk = std::max<int64_t>(1, kChunkElems / t.feats_per_block);
  t.rows_per_chunk = std::max(t.rows_per_chunk, (N + kMaxChunks - 1) / kMaxChunks);
  t.nchunks = N > 0 ? (N + t.rows_per_chunk - 1) / t.rows_per_chunk : 0;
  return t;
}

// Below this many elements the pool costs more than it saves.
constexpr int64_t kReduceParallelMin = int64_t(1) << 16;

// Any number of column sums at once (K of them, out[k * F + f]): batch norm's backward needs
// sum(dy) and sum(dy * xhat) from one sweep. row_body(i, f0, f1, acc) adds into
// acc[k * (f1 - f0) + (f - f0)].
template <class RowBody>
void column_sums(int64_t N, int64_t F, int K, const RowBody& row_body, double* out) {
  std::fill(out, out + K * F, 0.0);
  if (N <= 0 || F <= 0) return;
  const ColumnTiling t = column_tiling(N, F);
  // partial[c] holds chunk c's sums for every feature, laid out block by block so that a
  // task's accumulators are contiguous: block b starts at K * f0.
  std::vector<double> partial(static_cast<size_t>(t.nchunks * K * F), 0.0);
  auto task = [&](int id) {
    const int64_t c = id / t.nblocks, b = id % t.nblocks;
    const int64_t f0 = b * t.feats_per_block, f1 = std::min(F, f0 + t.feats_per_block);
    double* acc = partial.data() + c * K * F + K * f0;
    const int64_t i1 = std::min(N, (c + 1) * t.rows_per_chunk);
    for (int64_t i = c * t.rows_per_chunk; i < i1; ++i) row_body(i, f0, f1, acc);
  };
  const int64_t ntasks = t.nchunks * t.nblocks;
  if (ntasks > 1 && N * F >= kReduceParallelMin)
    parallel_for(static_cast<int>(ntasks), task);
  else
    for (int64_t id = 0; id < ntasks; ++id) task(static_cast<int>(id));
  // Fixed chunk order: the thread-invariance lives here.
  for (int64_t c = 0; c < t.nchunks; ++c)
    for (int64_t b = 0; b < t.nblocks; ++b) {
      const int64_t f0 = b * t.feats_per_block, f1 = std::min(F, f0 + t.feats_per_block);
      const int64_t w = f1 - f0;
      const double* acc = partial.data() + c * K * F + K * f0;
      for (int k = 0; k < K; ++k)
        for (int64_t f = f0; f < f1; ++f) out[k * F + f] += acc[k * w + (f - f0)];
    }
}

// Runs body(i0, i1) over rows [0, N) in chunks sized by shape alone, in parallel when the
// matrix is big enough. For element-wise sweeps (no sums): any split gives the same bits.
template <class Body>
void for_row_chunks(int64_t N, int64_t F, const Body& body) {
  if (N <= 0) return;
  const int64_t rows = std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(F, 1));
  const int64_t n = (N + rows - 1) / rows;
  auto task = [&](int c) { body(int64_t(c) * rows, std::min(N, (int64_t(c) + 1) * rows)); };
  if (n > 1 && N * std::max<int64_t>(F, 1) >= kReduceParallelMin && n < (int64_t(1) << 30))
    parallel_for(static_cast<int>(n), task);
  else
    body(0, N);
}

// ------------------------------------------------------------------ the kernels
// x (N, F) -> out (F,): column sums; mean divides by N (N > 0, else ValueError).
template <class T>
void sum_rows(const T* x, int64_t N, int64_t F, T* out);
template <class T>
void mean_rows(const T* x, int64_t N, int64_t F, T* out);

// x (N, F), F > 0 -> idx (N,): index of the first maximum of each row. NaN counts as larger
// than any number (as numpy.argmax does): a row with a NaN gives its first NaN.
template <class T>
void argmax_rows(const T* x, int64_t N, int64_t F, int64_t* idx);

// scores (N, C), labels (N,) in [0, C) (checked: ValueError) -> rows whose argmax (as above)
// is the label.
template <class T>
int64_t count_correct(const T* scores, const int64_t* labels, int64_t N, int64_t C);

// Rows whose label ranks among the k best scores, k >= 1. Ranking is argmax's order: higher
// first, NaN above everything, ties to the lower index; so k == 1 is count_correct and
// k >= C counts every row.
template <class T>
int64_t top_k_correct(const T* scores, const int64_t* labels, int64_t N, int64_t C, int64_t k);

// Elements where (logits > threshold) == (targets >= 0.5); a NaN logit predicts 0.
template <class T>
int64_t binary_correct(const T* logits, const T* targets, int64_t n, double threshold);

}  // namespace cpu
}  // namespace fastnn
