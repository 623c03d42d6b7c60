// The loss family's contract, implemented by cpu/losses.h and cuda/losses.h. Each loss gives
// the mean loss and writes its gradient in the same pass over the data; every array is
// C-contiguous, and sums run over a partition that depends on the shapes only, so the loss and
// gradient are the same bits for any thread count (CPU) or GPU.
//
//   softmax cross-entropy: index labels (N,) in [0, C) with optional class weights (torch's
//     weighted mean), or probability rows (N, C); label smoothing in [0, 1]. Errors (ValueError,
//     before the gradient is written): N == 0, a label outside [0, C), labelled class weights
//     that sum to zero.
//   binary cross-entropy with logits, mse, mae: means over n > 0 elements; grad has n elements.
#pragma once
#include <cstdint>

namespace fastnn {

template <class T>
struct SoftmaxXentArgs {
  const T* logits = nullptr;  // (N, C)
  int64_t N = 0, C = 0;
  // Exactly one of labels / probs is set.
  const int64_t* labels = nullptr;  // (N,) class indices in [0, C)
  const T* probs = nullptr;         // (N, C) target distributions
  const T* weight = nullptr;        // (C,) class weights, or null for all ones
  double label_smoothing = 0.0;     // in [0, 1]
  T* grad = nullptr;                // (N, C) d loss / d logits
};

}  // namespace fastnn
