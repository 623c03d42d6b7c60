// The training engine: a network plan that owns every buffer a model needs (parameters, their
// gradients and optimizer state, per-layer activations sized for the largest batch) and runs
// whole runs of batches -- gather, forward, loss, fused backward, fused update, metrics -- with
// no call back into Python. Python builds the plan once per model (fastnn/model.py), fills the
// parameters, then calls train_batches a few times per epoch (for the progress bar and Ctrl-C).
//
// Float32 is the working type; float64 exists for the whole-step oracle tests.
//
// Threads: one Network may be used from any number of threads. evaluate and predict are
// re-entrant: each call checks a workspace (its activations) out of a pool and reads the
// parameters and running statistics under the shared side of lock(); train_batches,
// begin_epoch and take_diagnostics take lock() exclusively. Code that reads or writes
// params() / buffers() / the optimizer state directly (the Python views) holds lock() itself.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/rw_lock.h"
#include "core/ops/activation.h"

namespace fastnn {
namespace engine {

enum class LayerKind : int { Dense, Activation, Dropout, BatchNorm };

struct LayerSpec {
  LayerKind kind = LayerKind::Dense;
  int64_t units = 0;         // Dense
  Act act = Act::None;       // Dense, Activation
  double act_param = 0.0;    // leaky_relu slope / elu alpha
  bool use_bias = true;      // Dense
  double l1 = 0.0, l2 = 0.0; // Dense kernel penalties
  double rate = 0.0;         // Dropout
  double momentum = 0.1, eps = 1e-5;  // BatchNorm
};

// The output link is applied by predict only: in training the loss works on the logits.
// SampledSoftmax trains the last Dense layer on the true class plus a sample of negatives
// (cpu/sampled_softmax.h); evaluate and predict use the full softmax.
enum class LossKind : int { SoftmaxCrossEntropy, BinaryCrossEntropy, MeanSquaredError,
                            MeanAbsoluteError, SampledSoftmax };

struct SampledSpec {
  int64_t num_sampled = 64;
  bool log_uniform = true;  // else uniform
  bool unique = true, subtract_log_q = true, remove_accidental_hits = true;
  bool correct_true_logit = true;
};

enum class OptimKind : int { Sgd, Adam, AdamW, Adagrad, RmsProp };

struct OptimSpec {
  OptimKind kind = OptimKind::Sgd;
  double lr = 0.01, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool amsgrad = false;
  double lr_decay = 0.0, initial_accumulator_value = 0.0;  // Adagrad
  double alpha = 0.99;                                     // RMSprop
  bool centered = false;
};

// A parameter's shape, fixed where the network plan creates the parameter and carried with it
// to every user (bindings, get_weights, save / load, optimizer state): a Dense kernel is a
// matrix (in, out) whatever its sizes -- one input feature or a width-1 layer give it one row
// or one column -- and a bias or batch-norm vector is 1-D. Never inferred from a row count.
struct ParamShape {
  int64_t rows = 0, cols = 0;  // a vector is stored as one row of `cols`
  bool vector = false;
  static ParamShape matrix(int64_t rows, int64_t cols) { return {rows, cols, false}; }
  static ParamShape vec(int64_t n) { return {1, n, true}; }
  int64_t size() const { return rows * cols; }
  // The dimensions the parameter has for its users: (cols) or (rows, cols).
  std::vector<int64_t> dims() const {
    return vector ? std::vector<int64_t>{cols} : std::vector<int64_t>{rows, cols};
  }
};

// A parameter tensor with its gradient and up to three optimizer state buffers (each of the
// parameter's shape).
template <class T>
struct Param {
  std::string name;  // "dense_0/kernel", ...
  ParamShape shape;
  std::vector<T> value, grad, state[3];
  double l1 = 0.0, l2 = 0.0;
  int64_t size() const { return shape.size(); }
};

// Sums over the batches of one train_batches / evaluate call.
struct BatchStats {
  double loss_sum = 0.0;     // sum over batches of (mean batch loss + penalty) * batch rows
  int64_t correct = 0;       // accuracy numerator (rows, or elements for binary outputs)
  int64_t counted = 0;       // accuracy denominator
  int64_t rows = 0;          // samples seen
  int64_t batches = 0;
  int64_t updates = 0;       // optimizer steps taken
  double grad_norm = 0.0;    // global gradient norm of the last update (before clipping)
};

// The data of one call: X (n, input_dim) row-major; labels (n,) class indices for softmax
// cross-entropy, or targets (n, outputs) otherwise; optional per-sample weights (n,).
template <class T>
struct Data {
  const T* X = nullptr;
  int64_t n = 0;
  const int64_t* labels = nullptr;
  const T* targets = nullptr;
  // (n,) per-sample weights: each batch's loss becomes sum_i w_i l_i / N (Keras's rule), its
  // gradient rows scaled by w_i (class weights arrive folded into them). Not with the sampled
  // softmax.
  const T* sample_weight = nullptr;
};

// Asked between batches by the long inference calls (evaluate, predict): returning true stops
// the call, which then throws Interrupted (the Python binding checks for Ctrl-C here).
using StopCheck = std::function<bool()>;
struct Interrupted {};

template <class T>
class Network {
 public:
  Network(int64_t input_dim, std::vector<LayerSpec> layers, LossKind loss, OptimSpec optim,
          uint64_t seed, SampledSpec sampled = SampledSpec());
  ~Network();

  int64_t input_dim() const { return input_dim_; }
  int64_t output_dim() const { return widths_.back(); }
  std::vector<Param<T>>& params() { return params_; }
  // BatchNorm running statistics, in layer order: (mean, var) per BatchNorm layer.
  std::vector<std::vector<T>*> buffers();
  OptimSpec& optim() { return optim_; }
  int64_t step() const { return step_; }
  void set_step(int64_t s) { step_ = s; }
  // Shared for reading the parameters and buffers, exclusive for changing them (see the top).
  // step, optim() and nonfinite() belong to training: hold it exclusively to use them from
  // another thread than the one training.
  RwLock& lock() const { return lock_; }
  std::unique_lock<RwLock> exclusive() const { return std::unique_lock<RwLock>(lock_); }

  // Starts an epoch: draws the sample order (shuffled with the seed and epoch number, or in
  // order) for n samples.
  void begin_epoch(int64_t n, int64_t epoch, bool shuffle);

  // Trains on batches [first, last) of the current epoch's order (batch_size rows each, the
  // last one partial). accumulate_steps batches are averaged into one update; clipnorm > 0
  // rescales the averaged gradient to that global norm at most. Releases nothing itself: the
  // binding drops the GIL around it.
  BatchStats train_batches(const Data<T>& d, int64_t batch_size, int64_t first, int64_t last,
                           int64_t accumulate_steps, double clipnorm);

  // Loss and accuracy over all n samples with inference behaviour (no dropout, running
  // batch-norm statistics), batch_size rows at a time.
  BatchStats evaluate(const Data<T>& d, int64_t batch_size, const StopCheck& stop = {});

  // Outputs after the loss's link (probabilities for the cross-entropies), (n, outputs).
  void predict(const T* X, int64_t n, int64_t batch_size, T* out, const StopCheck& stop = {});

  // Whether the last batch produced a non-finite loss or gradient.
  bool nonfinite() const { return nonfinite_; }

  // Per-layer diagnostics gathered while training, reset by take_diagnostics.
  struct LayerDiagnostics {
    double grad_norm_sum = 0.0;   // sum over updates of this layer's kernel gradient norm
    double update_ratio_sum = 0.0;  // sum over updates of |lr * grad| / |W| (a proxy)
    double dead_fraction_sum = 0.0; // sum over batches of the fraction of units never > 0
    int64_t updates = 0, batches = 0;
  };
  std::vector<LayerDiagnostics> take_diagnostics();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t input_dim_;
  std::vector<int64_t> widths_;  // widths_[0] = input_dim, widths_[i + 1] = layer i's output
  std::vector<Param<T>> params_;
  OptimSpec optim_;
  int64_t step_ = 0;
  bool nonfinite_ = false;
  mutable RwLock lock_;
  friend struct Impl;
};

// Names for messages and the Python layer.
LossKind loss_from_name(const std::string& name);
OptimKind optim_from_name(const std::string& name);

}  // namespace engine
}  // namespace fastnn
