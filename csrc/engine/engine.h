// The training engine's one interface: what a model (fastnn/model.py, through the one binding
// bindings/bind_engine.cpp) may ask of an engine, whichever backend runs it. An engine owns
// every buffer a model needs (parameters, their gradients and optimizer state, per-layer
// activations sized for the largest batch) and runs whole runs of batches -- gather, forward,
// loss, fused backward, fused update, metrics -- with no call back into Python. Python builds
// one per model and compile, fills the parameters, then calls train_batches a few times per
// epoch (for the progress bar and Ctrl-C).
//
// Two implementations: engine::Network<T> (network.h; the CPU, float and double) and
// engine::CudaNetwork (network_cuda.h; one CUDA device, float). Every array an engine takes
// (Data, predict's X and out, check_labels) lives where device() says: host memory (-1) or that
// CUDA device. The rules both apply alike (plan, shuffle, masks, optimizer options) live in
// engine_common.h.
//
// Threads: an engine may be used from any number of threads. Each call takes lock() itself, as
// its implementation needs (the CPU's evaluate and predict share it; everything else on the GPU
// takes it whole); read / write and step / optim() do not: their caller holds lock() (shared to
// read, exclusive to change), so that several of them are seen as one change.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/rw_lock.h"
#include "core/ops/activation.h"
#include "engine/grad_hook.h"

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

// OptimSpec's fields by the names python/fastnn/optim.py's field tables send them under
// (core/ops/optim.h's for_each_field uses the same names): f(name, member) for each. How the
// binding reads a spec from Python and how the engines fill each optimizer's options from it.
// Spec: OptimSpec or const OptimSpec.
template <class Spec, class F>
void for_each_optim_field(Spec& o, F&& f) {
  f("lr", o.lr), f("momentum", o.momentum), f("dampening", o.dampening);
  f("weight_decay", o.weight_decay), f("nesterov", o.nesterov);
  f("beta1", o.beta1), f("beta2", o.beta2), f("eps", o.eps), f("amsgrad", o.amsgrad);
  f("lr_decay", o.lr_decay), f("initial_accumulator_value", o.initial_accumulator_value);
  f("alpha", o.alpha), f("centered", o.centered);
}

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

// Per-layer diagnostics gathered while training, reset by take_diagnostics.
struct LayerDiagnostics {
  double grad_norm_sum = 0.0;     // sum over updates of this layer's kernel gradient norm
  double update_ratio_sum = 0.0;  // sum over updates of |lr * grad| / |W| (a proxy)
  double dead_fraction_sum = 0.0; // sum over batches of the fraction of units never > 0
  int64_t updates = 0, batches = 0;
};

// Where and how an engine runs: device -1 is the CPU engine, N >= 0 the GPU engine on CUDA
// device N. The rest is the GPU engine's: precision ("fp32", "tf32", "bf16") picks its GEMM
// arithmetic, fused_mlp its fused-MLP kernel where it applies, graphs its CUDA graph replay of
// the training step. The CPU engine takes device -1 and "fp32" only.
struct EngineOptions {
  int device = -1;
  std::string precision = "fp32";
  bool fused_mlp = true;
  bool graphs = true;
};

// Everything an engine is built from.
struct EngineConfig {
  int64_t input_dim = 0;
  std::vector<LayerSpec> layers;
  LossKind loss = LossKind::SoftmaxCrossEntropy;
  OptimSpec optim;
  uint64_t seed = 0;
  SampledSpec sampled;
  EngineOptions options;
};

// The arrays an engine holds, by kind: the parameters ("dense_0/kernel", ... in param_names'
// order), their gradients, the optimizer state (each parameter's state buffers in turn) and the
// BatchNorm running statistics (mean, var per BatchNorm layer, in layer order).
enum class Slot : int { Params, Grads, State, Buffers };

// Which arrays an engine holds, fixed when it is built (engine_common's engine_layout).
struct EngineLayout {
  std::vector<std::string> names;   // per parameter
  std::vector<ParamShape> params;   // per parameter
  std::vector<ParamShape> buffers;  // per BatchNorm running statistic
  int states = 0;                   // optimizer state buffers per parameter
  // The shape of each array of a kind, in order.
  std::vector<ParamShape> shapes(Slot kind) const;
  // Array i of a kind: (its parameter's or buffer's index, its state index; 0 outside State).
  // ValueError when there is no such array.
  std::pair<size_t, int> locate(Slot kind, size_t i) const;
};

template <class T>
class Engine {
 public:
  virtual ~Engine() = default;

  virtual int64_t input_dim() const = 0;
  virtual int64_t output_dim() const = 0;
  // -1: the CPU (host memory); else the CUDA device every array argument must be on.
  virtual int device() const = 0;
  const EngineLayout& layout() const { return layout_; }
  // Copies array i of a kind to / from host memory (layout().shapes(kind)[i].size() elements);
  // the caller holds lock() (shared to read, exclusive to write).
  virtual void read(Slot kind, size_t i, T* host) = 0;
  virtual void write(Slot kind, size_t i, const T* host) = 0;

  // Shared for reading the arrays, exclusive for changing them, step and optim().
  virtual RwLock& lock() const = 0;
  virtual OptimSpec& optim() = 0;
  virtual int64_t step() const = 0;
  virtual void set_step(int64_t s) = 0;

  // Starts an epoch: draws the sample order (shuffled with the seed and epoch number, or in
  // order) for n samples.
  virtual void begin_epoch(int64_t n, int64_t epoch, bool shuffle) = 0;
  // Trains on batches [first, last) of the current epoch's order (batch_size rows each, the
  // last one partial). accumulate_steps batches are averaged into one update; clipnorm > 0
  // rescales the averaged gradient to that global norm at most.
  virtual BatchStats train_batches(const Data<T>& d, int64_t batch_size, int64_t first,
                                   int64_t last, int64_t accumulate_steps, double clipnorm) = 0;
  // Loss and accuracy over all n samples with inference behaviour (no dropout, running
  // batch-norm statistics), batch_size rows at a time.
  virtual BatchStats evaluate(const Data<T>& d, int64_t batch_size, const StopCheck& stop) = 0;
  // Outputs after the loss's link (probabilities for the cross-entropies) into out (n, outputs).
  virtual void predict(const T* X, int64_t n, int64_t batch_size, T* out,
                       const StopCheck& stop) = 0;
  // ValueError naming the first class label outside [0, outputs).
  virtual void check_labels(const int64_t* labels, int64_t n) = 0;
  // Whether the last train_batches call met a non-finite loss or gradient.
  virtual bool nonfinite() const = 0;
  virtual std::vector<LayerDiagnostics> take_diagnostics() = 0;
  // Installs (or, with nullptr, removes) the gradient hook of data-parallel training
  // (engine/grad_hook.h); the caller holds lock() exclusively. False: this engine has none.
  virtual bool set_grad_hook(std::shared_ptr<GradHook<T>>) { return false; }

  // The GPU engine's own counters, for its tests (the CPU has none): training steps replayed
  // from a CUDA graph, and the layers its fused-MLP kernel runs as (first layer, count) runs.
  virtual int64_t graph_replays() const { return 0; }
  virtual std::vector<std::pair<int64_t, int64_t>> fused_runs() const { return {}; }

 protected:
  EngineLayout layout_;  // set by the implementation's constructor
};

// The engine a module's backend builds (ValueError for a configuration it cannot run). Defined
// by network.cpp in fastnn._C and by network_cuda.cpp in fastnn._cuda: each extension module
// links exactly one backend, so the one binding (bind_engine.cpp) builds that module's engines.
template <class T>
std::unique_ptr<Engine<T>> create_engine(const EngineConfig& config);

// Names for messages and the Python layer.
LossKind loss_from_name(const std::string& name);
OptimKind optim_from_name(const std::string& name);

}  // namespace engine
}  // namespace fastnn
