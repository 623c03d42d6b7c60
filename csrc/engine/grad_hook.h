// The engine's one seam for data-parallel training (fastnn.distributed): a hook that sees every
// parameter's gradient after the backward passes of an update and before the update itself, and
// may rewrite them in place (averaging them across processes). Nothing else in the training step
// changes, so every process that applies the same averaged gradient takes the same step.
#pragma once
#include <cstdint>
#include <vector>

namespace fastnn {
namespace engine {

template <class T>
struct GradBuffer {
  T* data;
  int64_t size;
};

template <class T>
class GradHook {
 public:
  explicit GradHook(int64_t micro_offset) : micro_offset(micro_offset) {}
  virtual ~GradHook() = default;
  // grads: every parameter's gradient in parameter order, each the sum of `micro` batch means
  // (the update divides by micro). Exceptions propagate out of train_batches with the weights
  // not yet updated.
  virtual void before_update(const std::vector<GradBuffer<T>>& grads, int64_t micro) = 0;

  // Added to a batch's number within its accumulation group where that number keys the dropout
  // masks: rank r of P ranks that each accumulate k batches passes r * k, so its masks are the
  // ones a single process draws for batches r*k .. r*k + k-1 of a P*k-batch accumulation group
  // (and no two ranks drop the same units of their rows).
  const int64_t micro_offset;
};

// Calls the hook on the gradients of `params` (engine::Param<T>, network.h).
template <class T, class Params>
void run_grad_hook(GradHook<T>& hook, Params& params, int64_t micro) {
  std::vector<GradBuffer<T>> grads;
  grads.reserve(params.size());
  for (auto& p : params) grads.push_back({p.grad.data(), int64_t(p.grad.size())});
  hook.before_update(grads, micro);
}

}  // namespace engine
}  // namespace fastnn
