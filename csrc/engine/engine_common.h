// What the CPU engine (network.cpp) and the GPU engine (network_cuda.cpp) share: one copy of every
// rule both must apply alike -- the random keys (the epoch's shuffle, dropout masks, sampled
// negatives), the network plan (widths, parameter order, names, shapes and initial values), the
// batch slicing, the optimizer options, the layer argument packing and the diagnostics' formulas.
// CPU and GPU training see the same batches and masks because both call these functions.
//
// Host C++ only (no CUDA headers): engine_common.cpp is compiled into the CPU extension
// (fastnn_cpu) and into fastnn._cuda.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/ops/batchnorm.h"
#include "core/ops/dense.h"
#include "core/ops/gemm.h"
#include "core/ops/losses.h"
#include "core/ops/optim.h"
#include "engine/engine.h"

namespace fastnn {
namespace engine {

// SplitMix64: turns (seed, counters) into well-mixed 64-bit keys for the shuffle and dropout.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// ------------------------------------------------------------------ random keys

// The key of a Dropout layer's mask: (seed, optimizer step, batch within the accumulation group,
// layer index). A new mask for every batch, and the same ones again after save / load, since the
// step count is saved.
uint64_t dropout_seed(uint64_t seed, int64_t step, int64_t micro, size_t layer);

// The key of the sampled softmax's negatives: (seed, optimizer step, batch within the group).
uint64_t sampled_seed(uint64_t seed, int64_t step, int64_t micro);

// The epoch's sample order into order[0, n): 0..n-1, shuffled (shuffle = true) by Fisher-Yates
// from a SplitMix64 stream keyed by (seed, epoch): the same seed gives the same order on every
// machine, thread count and device.
void epoch_order(int64_t* order, int64_t n, uint64_t seed, int64_t epoch, bool shuffle);

// ------------------------------------------------------------------ the network plan

// Activations whose derivative the fused dense backward can take from the output y.
bool dense_grad_from_output(Act a);

// Whether a Dense layer keeps z = xW + b for its backward pass: from the output only where
// y > 0 exactly when z > 0 (non-negative slope / alpha).
bool dense_keeps_z(const LayerSpec& s);

// A layer's place in the plan: its spec, the indices of its parameters (-1: none) and whether
// (Dense) it keeps z. Each engine's layer state derives from it and adds its buffers.
struct LayerPlan {
  LayerSpec spec;
  int w = -1, b = -1, gamma = -1, beta = -1;
  bool keep_z = false;
  // Whether the layer writes its own output buffer y (the others pass their input through).
  bool has_output() const;
};

// A parameter tensor of the plan: "dense_0/kernel", ..., its shape, its penalty weights and
// the value every element starts at (1 for batch-norm gamma, else 0).
struct ParamPlan {
  std::string name;
  ParamShape shape;
  double l1 = 0.0, l2 = 0.0;
  float init = 0.0f;
  int64_t size() const { return shape.size(); }
};

struct NetworkPlan {
  std::vector<int64_t> widths;  // widths[0] = input_dim, widths[i + 1] = layer i's output
  std::vector<LayerPlan> layers;
  std::vector<ParamPlan> params;  // in the order both engines (and Python) list them
  int64_t max_width = 0;          // the widest of the input and every layer output
  bool any_penalty = false;
  bool has_batch_norm = false;
};

// The arrays of an engine built from `plan` with an optimizer of this kind.
EngineLayout engine_layout(const NetworkPlan& plan, OptimKind optim);

// input_dim > 0 and at least one layer (ValueError otherwise).
void check_network_args(int64_t input_dim, const std::vector<LayerSpec>& layers);

// The plan of a network (checks its arguments and each layer's spec: ValueError).
NetworkPlan plan_network(int64_t input_dim, const std::vector<LayerSpec>& layers);

// ------------------------------------------------------------------ batches

// The checks every train_batches call starts with.
void check_batch_args(int64_t n, int64_t epoch_n, int64_t batch_size, int64_t accumulate_steps);

// The number of batches in an epoch of n samples; clamps `last` to it and checks that the slice
// [first, last) holds whole accumulation groups (or ends the epoch).
int64_t slice_batches(int64_t n, int64_t batch_size, int64_t first, int64_t& last,
                      int64_t accumulate_steps);

// Batch statistics need two samples: a last partial batch of one (n % batch_size == 1) is left
// out of the epoch -- a different sample each epoch when shuffling -- rather than failing. Full
// batches of one (batch_size 1) are not: skipping them all would train nothing, so they reach
// the batch-norm layer's ValueError.
inline bool skip_batch(int64_t rows, int64_t batch_size, bool has_batch_norm, int64_t nbatches) {
  return rows < 2 && rows < batch_size && has_batch_norm && nbatches > 1;
}

// The accuracy denominator of a batch of N rows of C outputs: rows for the softmax losses,
// elements for the binary cross-entropy, none for the regressions.
int64_t accuracy_count(LossKind loss, int64_t N, int64_t C);

// ValueError naming the first of n host class labels outside [0, classes) (the GPU engine checks
// device labels with a kernel, and the same message).
void check_label_range(const int64_t* labels, int64_t n, int64_t classes);
std::string label_range_message(int64_t label, int64_t position, int64_t classes);

// ------------------------------------------------------------------ the optimizer

// Optimizer state buffers per parameter (Adam's unused ones included, so that
// optimizer_state() lists the same arrays everywhere).
int optim_states(OptimKind kind);

// The options of one update at 1-based step `step` with the gradients scaled by `scale`.
fastnn::SgdOptions sgd_options(const OptimSpec& o, int64_t step, double scale);
fastnn::AdamOptions adam_options(const OptimSpec& o, int64_t step, double scale);
fastnn::AdagradOptions adagrad_options(const OptimSpec& o, int64_t step, double scale);
fastnn::RmspropOptions rmsprop_options(const OptimSpec& o, double scale);

// A parameter's entry in the multi-tensor optimizer list.
template <class T>
fastnn::OptimTensor<T> optim_tensor(T* value, const T* grad, T* const* state, int states,
                                 int64_t n, double l1, double l2) {
  fastnn::OptimTensor<T> t;
  t.param = value;
  t.grad = grad;
  for (int k = 0; k < states; ++k) t.state[k] = state[k];
  t.n = n;
  t.l1 = l1;
  t.l2 = l2;
  return t;
}

// ------------------------------------------------------------------ layer arguments

// A Dense layer's forward GEMM: y = act(x W + b) on N rows, z = x W + b kept when z is non-null.
template <class T>
GemmArgs<T> dense_forward_args(const LayerSpec& s, int64_t N, int64_t in, int64_t out,
                               const T* x, const T* W, const T* bias, T* y, T* z) {
  GemmArgs<T> g = gemm_product(N, out, in, x, in, 1, W, out, 1, y, out);
  g.bias = bias;
  g.act = s.act;
  g.act_param = T(s.act_param);
  g.Z = z;
  return g;
}

// A Dense layer's backward pass: the activation gate from z (keep_z) or from y, dW and db
// written or added (accumulate), dX when non-null.
template <class T>
DenseBackwardArgs<T> dense_backward_args(const LayerPlan& L, int64_t N, int64_t in, int64_t out,
                                         const T* x, const T* W, const T* dY, const T* y,
                                         const T* z, T* dW, T* db, T* dX, bool accumulate) {
  DenseBackwardArgs<T> a;
  a.M = N, a.K = in, a.N = out;  // each operand on one line with its leading dimension
  a.X = x, a.ldx = in;
  a.W = W, a.ldw = out;
  a.dY = dY, a.ldy = out;
  if (L.spec.act != Act::None) {
    a.gate.data = L.keep_z ? z : y;
    a.gate.act = L.spec.act;
    a.gate.param = T(L.spec.act_param);
    a.gate.from_output = !L.keep_z;
  }
  a.dW = dW, a.lddw = out;
  a.db = db;
  a.dX = dX, a.lddx = in;
  a.accumulate = accumulate;
  return a;
}

// A BatchNorm layer's forward arguments; training (save_mean non-null) needs two rows at least.
template <class T>
fastnn::BatchNormArgs<T> batch_norm_args(const LayerSpec& s, const T* x, int64_t N, int64_t F,
                                      const T* gamma, const T* beta, T* running_mean,
                                      T* running_var, T* y, T* save_mean, T* save_invstd) {
  fastnn::BatchNormArgs<T> a;
  a.x = x, a.N = N, a.F = F;
  a.gamma = gamma, a.beta = beta;
  a.running_mean = running_mean, a.running_var = running_var;
  a.momentum = s.momentum, a.eps = s.eps;
  a.y = y, a.save_mean = save_mean, a.save_invstd = save_invstd;
  return a;
}

// The softmax cross-entropy of N rows of C logits against class labels, its gradient into grad.
template <class T>
fastnn::SoftmaxXentArgs<T> softmax_xent_args(const T* logits, int64_t N, int64_t C,
                                          const int64_t* labels, T* grad) {
  fastnn::SoftmaxXentArgs<T> a;
  a.logits = logits, a.N = N, a.C = C;
  a.labels = labels, a.grad = grad;
  return a;
}

// ValueError for a training batch of one row through a BatchNorm layer.
void check_batch_norm_rows(int64_t N);

// ------------------------------------------------------------------ diagnostics

// One update's diagnostics of a Dense layer: its kernel gradient's norm g (scaled as the update
// scales it), |lr * g| / |W| with v = |W|.
template <class D>
void add_update_diagnostics(D& d, double g, double v, double lr) {
  d.grad_norm_sum += g;
  d.update_ratio_sum += v > 0 ? lr * g / v : 0.0;
  ++d.updates;
}

// One batch's dead ReLU units of a layer `width` wide.
template <class D>
void add_dead_units(D& d, int64_t dead, int64_t width) {
  d.dead_fraction_sum += double(dead) / double(width);
  ++d.batches;
}

// The diagnostics gathered so far; resets them.
template <class D>
std::vector<D> take_all(std::vector<D>& diag) {
  std::vector<D> out = diag;
  for (auto& d : diag) d = D();
  return out;
}

}  // namespace engine
}  // namespace fastnn
