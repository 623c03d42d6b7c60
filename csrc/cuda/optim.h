// Fused multi-tensor optimizer updates and gradient norms on the GPU: the same contracts and the
// same formulas as core/ops/optim.h (read it first), with the arrays in device memory.
//
// One launch updates every tensor of a call: the host packs a table of up to kMaxTensors entries
// (param, grad, state pointers, n, l1, 2*l2) and the prefix sums of their chunk counts into the
// kernel's parameter space (CUDA 12.1+ allows 32 KiB of kernel parameters on sm_70+), so there is
// no upload and no allocation; longer lists take one launch per kMaxTensors tensors. Each block
// walks chunks (kChunk elements of one tensor) with a grid stride and finds its tensor by binary
// search over the prefix sums (the chunk -> tensor map). Updates are element-wise, computed in T
// with FMA contraction off (optim.cu is compiled with -fmad=false; sqrt and division are IEEE),
// so they give the CPU kernels' bits.
//
// grad_scale_dev: an optional device double multiplying grad_scale (g = T(grad_scale *
// *grad_scale_dev) * grad + ...). global_norm writes its clip coefficient there, so that
// clip-by-norm followed by a step needs no trip to the host: the step applies the clip. (This
// rounds scale * coef once, where the CPU's clip-then-step rounds g * coef and then scale * g:
// a float32 rounding apart.)
//
// skip_dev: an optional device int; when it is non-zero as the step kernel runs, the step
// leaves every parameter and state untouched (the training engine's non-finite-loss flag: the
// update of a bad batch is skipped without a trip to the host, as the CPU engine skips it).
//
// Every call only enqueues work on `stream` (a cudaStream_t; null = the legacy default stream)
// and throws CudaError at once when a launch fails, naming the kernel.
#pragma once
#include <cstdint>

#include "core/ops/optim.h"

namespace fastnn {
namespace cuda {

template <class T>
void sgd_step(const OptimTensor<T>* t, int64_t count, const SgdOptions& o,
              const double* grad_scale_dev = nullptr, void* stream = nullptr,
              const int* skip_dev = nullptr);
template <class T>
void adam_step(const OptimTensor<T>* t, int64_t count, const AdamOptions& o,
               const double* grad_scale_dev = nullptr, void* stream = nullptr,
               const int* skip_dev = nullptr);
template <class T>
void adagrad_step(const OptimTensor<T>* t, int64_t count, const AdagradOptions& o,
                  const double* grad_scale_dev = nullptr, void* stream = nullptr,
                  const int* skip_dev = nullptr);
template <class T>
void rmsprop_step(const OptimTensor<T>* t, int64_t count, const RmspropOptions& o,
                  const double* grad_scale_dev = nullptr, void* stream = nullptr,
                  const int* skip_dev = nullptr);

// Doubles of `partials` workspace global_norm needs for tensors of these sizes (one per chunk).
int64_t global_norm_partials(const int64_t* sizes, int64_t count);

// out[0] = sqrt(sum over all tensors of sum x^2), out[1] = the clip coefficient of
// torch.nn.utils.clip_grad_norm_: max_norm / (norm + 1e-6) when that is below 1 and the norm is
// finite, else 1 (pass max_norm = inf to only measure). Deterministic: each chunk's sum of
// squares is a double reduced in a fixed tree, and one block adds the chunk sums in a fixed
// order. out (2 doubles) and partials (global_norm_partials(...) doubles) are device memory;
// nothing is synchronised: read out after the stream, or feed out + 1 to a step or to
// scale_tensors as their device factor.
template <class T>
void global_norm(const T* const* data, const int64_t* sizes, int64_t count, double max_norm,
                 double* partials, int64_t partials_capacity, double* out, void* stream = nullptr);

// x *= T(factor * (*factor_dev)) for every element of every tensor (factor_dev may be null):
// clip in place with factor_dev = global_norm's out + 1.
template <class T>
void scale_tensors(T* const* data, const int64_t* sizes, int64_t count, double factor,
                   const double* factor_dev = nullptr, void* stream = nullptr);

}  // namespace cuda
}  // namespace fastnn
