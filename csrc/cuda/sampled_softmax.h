// Sampled softmax on the GPU: the contract and formulas of core/ops/sampled.h (TensorFlow's
// sampled_softmax_loss), with h, W, b and every output in device memory.
//
// THE SAMPLE IS DRAWN ON THE HOST, by core's sample_candidates: the same seed gives the same
// candidates as the CPU op, so GPU and CPU agree up to float rounding. The sample is tiny
// (num_sampled ids and expected counts), and the labels (N int64) are read on the host too: the
// touched columns, each row's and each sample's slot among them and the column -> contributions
// map are built there and uploaded once, in one copy, into the caller's workspace. The rest runs
// on `stream` with no allocation and no synchronisation until sampled_softmax_loss():
//   gather     G (k + S, D) = W[:, cols]^T then W[:, s]^T (rows contiguous in D), b likewise
//   logits     Zs (N, S) = h @ Ws                                   (tiled GEMM)
//   rows       z = [h_i . W[:, y_i] + b_y - log E(y_i), Zs_ij + b_sj - log E(s_j)], accidental hits
//              masked, softmax with target 0: row loss, dzt_i and dZs in place (in double)
//   dh         dh (N, D) = dZs @ Ws^T + dzt_i W[:, y_i]            (GEMM, fused epilogue)
//   dWs        dWs^T (S, D) = dZs^T @ h                            (GEMM, split over N)
//   columns    dW_cols[:, c] = the sampled slots of c and the rows labelled c, summed over a
//              fixed partition (a block per column, 8 warps, no atomics); db_cols likewise
//   loss       one block adds the row losses in a fixed order
// The partition of every sum depends on the shapes only, never on the GPU: same inputs, same bits.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/ops/sampled.h"

namespace fastnn {
namespace cuda {

// Phase 1 (host): the sample, the touched columns and the packed tables to upload.
struct SampledGpuPlan {
  SampledPlan plan;  // sample (ids, expected, tries) and cols (k,), ascending
  int64_t N = 0, D = 0, C = 0, S = 0, k = 0;
  int splits = 1;          // dWs^T is summed over N in this many slices (a shape-only choice)
  size_t elem = 4;         // sizeof(T)
  bool has_bias = false, remove_accidental_hits = true;
  std::vector<unsigned char> tables;  // the host image of the workspace's first bytes
  size_t workspace_bytes = 0;
};

// Checks the arguments as sampled_softmax_plan does (a.labels is a HOST pointer here; a.h,
// a.W, a.b may be device pointers, they are not read; a.b tells only whether there is a bias),
// draws the sample and builds the tables. Throws ValueError for a label out of range, a bad
// num_sampled or sizes beyond 2^31 touched entries.
template <class T>
SampledGpuPlan sampled_softmax_plan(const SampledSoftmaxArgs<T>& a);

// Phase 2 (device): enqueues the kernels on `stream`. a.h (N, D), a.W (D, C), a.b (C,) or null
// are device pointers; a.labels is not read (the plan holds them). Writes dh (N, D), dW_cols
// (D, k), db_cols (k,) when a.b is given, and cols_out (k,) int64 unless null. `workspace` holds
// plan.workspace_bytes bytes (256-byte aligned) and must live until sampled_softmax_loss().
template <class T>
void sampled_softmax_cross_entropy(const SampledSoftmaxArgs<T>& a, const SampledGpuPlan& plan,
                                   T* dh, T* dW_cols, T* db_cols, int64_t* cols_out,
                                   void* workspace, size_t workspace_bytes, void* stream);

// Waits for `stream` and returns the mean loss the last call on `workspace` left there.
double sampled_softmax_loss(const SampledGpuPlan& plan, const void* workspace, void* stream);

// dW[:, cols] += dW_cols and db[cols] += db_cols (db / db_cols may be null; D may be 0), on the
// device. cols (k,) device int64, distinct and in [0, C) (the plan's columns): each column is
// written by one thread, no atomics.
template <class T>
void scatter_add_columns(const int64_t* cols, int64_t k, int64_t D, int64_t C, const T* dW_cols,
                         const T* db_cols, T* dW, T* db, void* stream);

}  // namespace cuda
}  // namespace fastnn
