// Row reductions over a row-major (N, F) device matrix and the accuracy counts: the contract of
// core/ops/reduce.h; every result is deterministic (the same bits on every run and every GPU).
//
// Column sums: blocks of 32 features x 8 row lanes walk a chunk of rows each (a warp reads 32
// consecutive features of a row: one 128-byte line), accumulating in double; the eight lanes are
// merged in a fixed order into one partial per (row chunk, feature), and a second kernel adds
// the chunks in chunk order. The chunking depends on (N, F) alone (column_tiling). Batch norm
// (batchnorm.cu) uses the same tiling for its statistics.
//
// Every call only enqueues work on `stream` (a cudaStream_t; null = the legacy default stream);
// a failed launch throws CudaError naming the kernel, bad arguments ValueError.
#pragma once
#include <cstdint>

#include "core/ops/reduce.h"

namespace fastnn {
namespace cuda {

struct ColumnTiling {
  int64_t ftiles;          // 32-feature tiles (grid x)
  int64_t rows_per_chunk;  // rows per chunk
  int64_t nchunks;         // row chunks (grid y), at most 1024; 0 when N == 0
};
ColumnTiling column_tiling(int64_t N, int64_t F);

// Bytes of device workspace sum_rows needs: one double per (row chunk, feature).
int64_t column_sums_workspace_bytes(int64_t N, int64_t F);

// x (N, F) -> out (F,): column sums in double, rounded to T; mean = true divides by N (N > 0,
// else ValueError). N == 0 with mean = false writes zeros.
template <class T>
void sum_rows(const T* x, int64_t N, int64_t F, T* out, bool mean, void* workspace,
              int64_t workspace_bytes, void* stream = nullptr);

// x (N, F), F > 0 -> idx (N,) int64: the first maximum of each row, NaN above every number
// (numpy.argmax). One warp per row.
template <class T>
void argmax_rows(const T* x, int64_t N, int64_t F, int64_t* idx, void* stream = nullptr);

// scores (N, C), labels (N,) int64 -> out[0] = rows whose argmax (as above) is the label,
// out[1] = rows whose label is outside [0, C) (never correct; the caller raises ValueError for
// them, as the CPU kernel does). out: 2 device int64, overwritten.
template <class T>
void count_correct(const T* scores, const int64_t* labels, int64_t N, int64_t C, int64_t* out,
                   void* stream = nullptr);

}  // namespace cuda
}  // namespace fastnn
