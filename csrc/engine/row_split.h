// How predict splits a batch over threads: by rows, each thread running its rows through the
// whole network, rather than every layer's GEMM splitting its product (one hand-off and one
// wait per layer). For a small network at batch 1024 those per-layer waits, and the threads'
// start-up on each, were most of the time (64-128-10: ~40% in parallel_for's wait).
//
// Rows split this way cost one read of the weights per thread instead of one in all: below
// kRowsPerTask rows a thread, the GEMMs' own split (by columns for few rows) is kept.
#pragma once
#include <cstdint>

namespace fastnn {
namespace engine {

constexpr int64_t kRowsPerTask = 64;

// The number of row tasks for a batch of `rows` on `threads` threads: 1 for no split.
inline int row_tasks(int64_t rows, int threads) {
  const int64_t most = rows / kRowsPerTask;
  return most < 2 || threads < 2 ? 1 : int(most < threads ? most : threads);
}

}  // namespace engine
}  // namespace fastnn
