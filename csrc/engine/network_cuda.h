// The training engine on the GPU (engine::Engine<float>, engine.h): engine::Network's semantics with every buffer in
// device memory -- parameters, gradients, optimizer state, activations for the largest batch,
// workspaces -- and every batch run as kernels on fastnn's stream of the model's device. The
// host synchronises once per train_batches / evaluate / predict call (to read the device
// counters), never per batch. Compiled into fastnn._cuda only.
//
// Same as the CPU engine: parameter order and names, the shuffle (the epoch's permutation is
// drawn on the host with the CPU engine's Fisher-Yates and seed, uploaded, and the batches are
// gathered on the device, so CPU and GPU train on the same batches), dropout keys (seed, step,
// micro-batch, layer), loss / penalty / metric definitions, batch norm, accumulate_steps,
// clipnorm and sample weights. Not (yet): the sampled softmax (ValueError at construction; the
// Python layer raises NotImplementedError before). A non-finite batch loss or gradient norm
// sets a device flag that skips every later update of the call (so the weights and optimizer
// state stay those from before the bad batch, as on the CPU), but the call runs its remaining
// batches: batch-norm running statistics still move on with them (the step count, rows, batches
// and updates reported stop where the CPU engine's do: the device records where it happened).
//
// Precision (fastnn::Precision) picks the GEMM arithmetic of every Dense forward and backward;
// storage, master weights, optimizer state and activations stay FP32.
//
// CUDA graphs (graphs = true): after a first eager step of a given batch size, the training
// step's kernels (gather .. forward .. loss .. penalty .. counters .. backward) are captured and
// replayed; the batch offset and dropout keys, which change every step, are read from a device
// record set by one small copy per step. The optimizer update (clip norm + one multi-tensor step)
// is launched after each replay, with its host-computed learning rate and bias corrections. The
// last partial batch runs eagerly; graphs = false runs the same kernels eagerly throughout (the
// same bits: the kernels compute the same values from arguments or from the record).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cuda/gemm.h"
#include "engine/engine.h"

namespace fastnn {
namespace engine {

struct CudaOptions {
  int device = 0;
  fastnn::Precision precision = fastnn::Precision::FP32;
  bool fused_mlp = true;  // runs of narrow Dense layers through cuda::fused_mlp where it applies
  bool graphs = true;
};

class CudaNetwork final : public Engine<float> {
 public:
  CudaNetwork(int64_t input_dim, std::vector<LayerSpec> layers, LossKind loss, OptimSpec optim,
              uint64_t seed, CudaOptions options);
  ~CudaNetwork() override;
  CudaNetwork(const CudaNetwork&) = delete;
  CudaNetwork& operator=(const CudaNetwork&) = delete;

  int64_t input_dim() const override;
  int64_t output_dim() const override;
  int device() const override;
  // Host <-> device copies on fastnn's stream (both wait for it).
  void read(Slot kind, size_t i, float* host) override;
  void write(Slot kind, size_t i, const float* host) override;
  RwLock& lock() const override { return lock_; }
  OptimSpec& optim() override;
  int64_t step() const override;
  void set_step(int64_t s) override;

  void begin_epoch(int64_t n, int64_t epoch, bool shuffle) override;
  // d, X and out: device pointers. evaluate and predict run to the end (no stop check: the
  // host waits once per call, not per batch).
  BatchStats train_batches(const Data<float>& d, int64_t batch_size, int64_t first, int64_t last,
                           int64_t accumulate_steps, double clipnorm) override;
  BatchStats evaluate(const Data<float>& d, int64_t batch_size, const StopCheck& stop) override;
  void predict(const float* X, int64_t n, int64_t batch_size, float* out,
               const StopCheck& stop) override;
  void check_labels(const int64_t* labels, int64_t n) override;
  bool nonfinite() const override;
  // Per-layer diagnostics as the CPU engine gathers them (kernel gradient norm and update ratio
  // at each slice's last update, dead ReLU units on its last batch), reset by the call.
  std::vector<LayerDiagnostics> take_diagnostics() override;

  int64_t graph_replays() const override;
  std::vector<std::pair<int64_t, int64_t>> fused_runs() const override;

 private:
  // The device memory of array i of a kind, and its size.
  std::pair<float*, int64_t> array(Slot kind, size_t i);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  mutable RwLock lock_;
};

}  // namespace engine
}  // namespace fastnn
