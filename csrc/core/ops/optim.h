// The optimizer family's contract, implemented by cpu/optim.h and cuda/optim.h: fused
// multi-tensor updates and gradient norms.
//
// Each *_step updates MANY tensors in one call: for every tensor it reads the gradient once and
// rewrites the parameter and its optimizer state in place, in a single pass. Updates are
// element-wise, so they do not depend on how the work is split; the norms add per-chunk double
// sums in a fixed order, which makes them deterministic too.
//
// The update formulas are torch.optim's single-tensor implementations, computed in T (float
// tensors are updated in float arithmetic, as torch does, without FMA contraction, so both
// backends give the same bits), with every hyper-parameter applied in torch's order of
// operations. Before an optimizer sees it, each gradient element becomes
//     g = grad_scale * grad + l1 * sign(p) + 2 * l2 * p
// (grad_scale: gradient averaging / clipping for free; l1, l2: the per-tensor penalty
// l1 * sum|p| + l2 * sum p^2 of API.md, folded into the same pass).
//
// Every array is C-contiguous with n elements, and no two arrays of one tensor overlap (the
// Python layer checks both); the grad is only read.
#pragma once
#include <cstdint>

namespace fastnn {

template <class T>
struct OptimTensor {
  T* param = nullptr;
  const T* grad = nullptr;
  T* state[3] = {nullptr, nullptr, nullptr};  // which states, and in what order: see each step
  int64_t n = 0;
  double l1 = 0.0, l2 = 0.0;  // penalty weights of this tensor (0 for biases)
};

// torch.optim.SGD. state[0]: momentum buffer (unused when momentum == 0). On the first step
// (first_step = true) the buffer is set to g and its old contents are ignored, as torch creates
// it from the first gradient; later: buf = momentum * buf + (1 - dampening) * g.
struct SgdOptions {
  double lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false, first_step = true;
  double grad_scale = 1;
};

// torch.optim.Adam / AdamW (decoupled = true: p *= 1 - lr * weight_decay instead of g += wd * p).
// state[0]: exp_avg, state[1]: exp_avg_sq, state[2]: max_exp_avg_sq (amsgrad only).
// step: the 1-based step count after this update, shared by every tensor.
struct AdamOptions {
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  bool decoupled = false, amsgrad = false;
  int64_t step = 1;
  double grad_scale = 1;
};

// torch.optim.Adagrad. state[0]: state_sum (the caller fills it with initial_accumulator_value).
struct AdagradOptions {
  double lr = 0, lr_decay = 0, weight_decay = 0, eps = 0;
  int64_t step = 1;
  double grad_scale = 1;
};

// torch.optim.RMSprop. state[0]: square_avg, state[1]: momentum buffer (momentum > 0 only),
// state[2]: grad_avg (centered only).
struct RmspropOptions {
  double lr = 0, alpha = 0, eps = 0, weight_decay = 0, momentum = 0;
  bool centered = false;
  double grad_scale = 1;
};

// Each optimizer's hyper-parameters, by the names python/fastnn/optim.py's field tables give
// them on their way to the engine (and the engine's OptimSpec): f(name, member) for each. The one
// list from which the bindings (keyword arguments) and the engines (OptimSpec) fill the options;
// what a call derives itself (step counts, grad_scale, decoupled, amsgrad, centered) is not in it.
template <class F>
void for_each_field(SgdOptions& o, F&& f) {
  f("lr", o.lr), f("momentum", o.momentum), f("dampening", o.dampening);
  f("weight_decay", o.weight_decay), f("nesterov", o.nesterov);
}
template <class F>
void for_each_field(AdamOptions& o, F&& f) {
  f("lr", o.lr), f("beta1", o.beta1), f("beta2", o.beta2), f("eps", o.eps);
  f("weight_decay", o.weight_decay);
}
template <class F>
void for_each_field(AdagradOptions& o, F&& f) {
  f("lr", o.lr), f("lr_decay", o.lr_decay), f("weight_decay", o.weight_decay), f("eps", o.eps);
}
template <class F>
void for_each_field(RmspropOptions& o, F&& f) {
  f("lr", o.lr), f("alpha", o.alpha), f("eps", o.eps), f("weight_decay", o.weight_decay);
  f("momentum", o.momentum);
}

}  // namespace fastnn
