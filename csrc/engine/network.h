// The CPU training engine (engine::Engine, engine.h): float32 is the working type; float64
// exists for float64 pipelines and the whole-step oracle tests.
//
// Threads: evaluate and predict are re-entrant: each call checks a workspace (its activations)
// out of a pool and reads the parameters and running statistics under the shared side of
// lock(); train_batches, begin_epoch and take_diagnostics take lock() exclusively.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "core/ops/activation.h"

namespace fastnn {
namespace engine {

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

template <class T>
class Network final : public Engine<T> {
 public:
  Network(int64_t input_dim, std::vector<LayerSpec> layers, LossKind loss, OptimSpec optim,
          uint64_t seed, SampledSpec sampled = SampledSpec());
  ~Network() override;

  int64_t input_dim() const override { return input_dim_; }
  int64_t output_dim() const override { return widths_.back(); }
  int device() const override { return -1; }
  void read(Slot kind, size_t i, T* host) override;
  void write(Slot kind, size_t i, const T* host) override;
  RwLock& lock() const override { return lock_; }
  OptimSpec& optim() override { return optim_; }
  int64_t step() const override { return step_; }
  void set_step(int64_t s) override { step_ = s; }

  void begin_epoch(int64_t n, int64_t epoch, bool shuffle) override;
  BatchStats train_batches(const Data<T>& d, int64_t batch_size, int64_t first, int64_t last,
                           int64_t accumulate_steps, double clipnorm) override;
  BatchStats evaluate(const Data<T>& d, int64_t batch_size, const StopCheck& stop) override;
  void predict(const T* X, int64_t n, int64_t batch_size, T* out,
               const StopCheck& stop) override;
  void check_labels(const int64_t* labels, int64_t n) override;
  bool nonfinite() const override { return nonfinite_; }
  std::vector<LayerDiagnostics> take_diagnostics() override;
  bool set_grad_hook(std::shared_ptr<GradHook<T>> hook) override;
  // precision="bf16": the Dense GEMMs on cpu/gemm_bf16.h (engine/bf16_weights.h); float32 only.
  void use_bf16();

 private:
  // The memory of array i of a kind.
  std::vector<T>& array(Slot kind, size_t i);
  // BatchNorm running statistics, in layer order: (mean, var) per BatchNorm layer.
  std::vector<std::vector<T>*> buffers();

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

}  // namespace engine
}  // namespace fastnn
