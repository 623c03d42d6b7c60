// How predict splits a batch over threads: by rows, each thread running its rows through the
// whole network, rather than every layer's GEMM splitting its product (one hand-off and one
// wait per layer). For a small network at batch 1024 those per-layer waits, and the threads'
// start-up on each, were most of the time (64-128-10: ~40% in parallel_for's wait).
//
// Rows split this way cost one read of the weights per thread instead of one in all: below
// kRowsPerTask rows a thread, the GEMMs' own split (by columns for few rows) is kept.
//
// The threads pull chunks of rows in turn rather than one fixed slice each: when a thread is held
// off its core (another process, a peer engine's pool in the same process) the others take its
// chunks instead of waiting for its whole slice.
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

// Rows per chunk for a batch of `rows` over `tasks` row tasks: about four chunks a task, so a
// late thread costs at most a quarter of its share, and never under kRowsPerTask (each chunk
// reads the weights once).
inline int64_t row_chunk(int64_t rows, int tasks) {
  const int64_t quarter = (rows + 4 * int64_t(tasks) - 1) / (4 * int64_t(tasks));
  return quarter > kRowsPerTask ? quarter : kRowsPerTask;
}

}  // namespace engine
}  // namespace fastnn
