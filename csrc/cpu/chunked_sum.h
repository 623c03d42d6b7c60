// The thread-invariant reduction the loss kernels share: a body summed over [0, n) cut into
// chunks, run on the pool when the work is worth it, the chunk results added in chunk order
// whichever threads ran them, so the total is bit-identical for any thread count.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/parallel.h"

namespace fastnn {
namespace cpu {

// Below this many elements of work in all, the pool's hand-off costs more than it saves.
constexpr int64_t kChunkedSumParallelMin = int64_t(1) << 16;

// sum over chunks k of body(begin_k, end_k): items [0, n) in pieces of `chunk` items, each item
// costing `item_cost` elements of work. Chunks grow (by size alone, so still thread-invariant)
// before their count overflows parallel_for's int.
template <class Body>
double chunked_sum(int64_t n, int64_t chunk, int64_t item_cost, const Body& body) {
  constexpr int64_t max_chunks = int64_t(1) << 24;
  chunk = std::max(chunk, (n + max_chunks - 1) / max_chunks);
  const int64_t nchunks = (n + chunk - 1) / chunk;
  std::vector<double> partial(static_cast<size_t>(nchunks));
  auto task = [&](int k) {
    const int64_t begin = int64_t(k) * chunk;
    partial[k] = body(begin, std::min(n, begin + chunk));
  };
  if (nchunks > 1 && n * item_cost >= kChunkedSumParallelMin)
    parallel_for(static_cast<int>(nchunks), task);
  else
    for (int64_t k = 0; k < nchunks; ++k) task(static_cast<int>(k));
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace cpu
}  // namespace fastnn
