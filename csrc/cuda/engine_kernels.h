// The small kernels the GPU training engine (engine/network_cuda.cpp) needs around the layer
// kernels: the batch gather by a device permutation, label checks, sample-weighted losses, L1/L2
// penalties, and the per-batch accumulation of the loss and accuracy into device counters (the
// host reads them once per train_batches / evaluate call instead of once per batch).
//
// Every function enqueues on `stream` (a cudaStream_t) and returns without synchronising; a
// failed launch throws CudaError naming the kernel. Every reduction runs in one block in a fixed
// order: the same inputs give the same bits, eager or replayed from a CUDA graph.
#pragma once
#include <cstdint>

namespace fastnn {
namespace cuda {

// What the engine accumulates on the device over one call (zeroed by the host at its start).
struct EngineCounters {
  double loss_sum;       // sum over batches of (mean batch loss + penalty) * rows
  int64_t correct;       // accuracy numerator
  int nonfinite;         // a batch loss was NaN or infinite
  int loss_code;         // first non-zero error code of a loss kernel (1 bad label, 2 zero weight)
  int64_t bad_label, bad_index, classes;  // the loss kernel's report of that error
  double grad_norm;      // unused (the norm stays in the global_norm output)
  // Where training first went non-finite, for the host to stop its counts there as the CPU
  // engine does: good_batches counts the batches of the call accumulated with a finite loss
  // before it (so a bad batch loss was batch number good_batches); bad_update is 1 + the index
  // within the call of the update whose gradient norm was non-finite, 0 when none was.
  int64_t good_batches;
  int64_t bad_update;
};

// dst row r = src row idx[base + r] for r in [0, N), rows of `cols` elements (T = float or
// int64). base comes from *base_dev when base_dev is set (CUDA-graph replay), else from `base`.
// 128-bit loads and stores when cols % 4 == 0 and both pointers are 16-byte aligned (float).
void gather_rows(const float* src, int64_t cols, const int64_t* idx, int64_t base,
                 const int64_t* base_dev, int64_t N, float* dst, void* stream);
void gather_rows(const int64_t* src, int64_t cols, const int64_t* idx, int64_t base,
                 const int64_t* base_dev, int64_t N, int64_t* dst, void* stream);

// out[0] = labels outside [0, C), out[1] = the first such position (n when none), out[2] = its
// label. out: 3 device int64, overwritten.
void check_labels(const int64_t* labels, int64_t n, int64_t C, int64_t* out, void* stream);

// Losses as engine::LossKind numbers them (0 softmax cross-entropy, 1 binary cross-entropy,
// 2 mse, 3 mae).
// Sample weights on a batch whose gradient the loss kernel wrote (grad, may be null for
// evaluation): *loss_out = sum_i w_i l_i / N with l_i row i's loss (the mean over its outputs
// for the element-wise losses) in double, and gradient row i scaled by w_i (when grad is set).
void weighted_loss(int loss_kind, const float* out, const int64_t* labels, const float* targets,
                   const float* w, int64_t N, int64_t C, float* grad, double* loss_out,
                   void* stream);

// *out (+)= l1 * sum|p| + l2 * sum p^2 over n elements: accumulate = false overwrites.
void penalty(const float* p, int64_t n, double l1, double l2, double* out, bool accumulate,
             void* stream);

// out[0] = count of (logits[i] > 0) == (targets[i] >= 0.5) over n elements (binary accuracy).
void binary_correct(const float* logits, const float* targets, int64_t n, int64_t* out,
                    void* stream);

// One batch into the counters: the batch loss is *weighted when set, else the loss kernel's mean
// (read from the head of its workspace, whose error code is checked), plus *penalty when set;
// loss_sum += loss * N; correct += *correct when set; a non-finite loss sets c->nonfinite.
// sticky (training): once c->nonfinite is set, later batches are not counted (the CPU engine
// stops at the bad batch); a loss-kernel error sets it too (the updates are skipped); a finite
// batch adds one to c->good_batches.
void accumulate_batch(EngineCounters* c, const void* loss_ws, const double* weighted,
                      const double* penalty, int64_t N, const int64_t* correct, bool sticky,
                      void* stream);

// c->nonfinite = 1 when norm[0] (global_norm's output) is NaN or infinite; when that is the
// first non-finite value of the call, c->bad_update = update + 1.
void flag_nonfinite_norm(const double* norm, EngineCounters* c, int64_t update, void* stream);

// out[0] = the number of columns of y (N, F) with no element > 0 (ReLU units dead on the batch).
void dead_units(const float* y, int64_t N, int64_t F, int64_t* out, void* stream);

// dst[i] += src[i], i < n.
void add_into(float* dst, const float* src, int64_t n, void* stream);

}  // namespace cuda
}  // namespace fastnn
