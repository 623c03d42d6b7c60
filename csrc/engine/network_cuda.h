// The training engine on the GPU: engine::Network's semantics (network.h) with every buffer in
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
// Precision (cuda::Precision) picks the GEMM arithmetic of every Dense forward and backward;
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
#include "engine/network.h"

namespace fastnn {
namespace engine {

struct CudaOptions {
  int device = 0;
  cuda::Precision precision = cuda::Precision::FP32;
  bool fused_mlp = true;  // runs of narrow Dense layers through cuda::fused_mlp where it applies
  bool graphs = true;
};

struct CudaParamInfo {
  std::string name;
  ParamShape shape;
  int states = 0;  // optimizer state buffers
};

class CudaNetwork {
 public:
  CudaNetwork(int64_t input_dim, std::vector<LayerSpec> layers, LossKind loss, OptimSpec optim,
              uint64_t seed, CudaOptions options);
  ~CudaNetwork();
  CudaNetwork(const CudaNetwork&) = delete;
  CudaNetwork& operator=(const CudaNetwork&) = delete;

  int64_t input_dim() const;
  int64_t output_dim() const;
  int device() const;
  const std::vector<CudaParamInfo>& param_info() const;
  OptimSpec& optim();
  int64_t step() const;
  void set_step(int64_t s);

  // Device pointers: parameter i's value, gradient and optimizer state k; BatchNorm running
  // statistics (mean, var per BatchNorm layer, in layer order) with their sizes.
  float* param(size_t i);
  float* grad(size_t i);
  float* state(size_t i, int k);
  std::vector<std::pair<float*, int64_t>> buffers();

  // Host <-> device copies on fastnn's stream (the read waits for it).
  void download(const float* dev, float* host, int64_t n);
  void upload(float* dev, const float* host, int64_t n);

  // bytes from pageable host memory to device memory on fastnn's stream, through two pinned
  // 8 MiB staging buffers (the host copy of one chunk overlaps the DMA of the other). Returns
  // once `src` may be reused; the copy completes in stream order.
  void upload_staged(void* dst, const void* src, size_t bytes);

  void begin_epoch(int64_t n, int64_t epoch, bool shuffle);
  // d: device pointers (X (n, input_dim), labels or targets, optional sample weights).
  BatchStats train_batches(const Data<float>& d, int64_t batch_size, int64_t first, int64_t last,
                           int64_t accumulate_steps, double clipnorm);
  BatchStats evaluate(const Data<float>& d, int64_t batch_size);
  // X (n, input_dim) and out (n, outputs) device pointers.
  void predict(const float* X, int64_t n, int64_t batch_size, float* out);
  // Throws ValueError naming the first label outside [0, outputs) (labels: n device int64).
  void check_labels(const int64_t* labels, int64_t n);

  // Per-layer diagnostics as the CPU engine gathers them (kernel gradient norm and update ratio
  // at each slice's last update, dead ReLU units on its last batch), reset by the call.
  std::vector<Network<float>::LayerDiagnostics> take_diagnostics();

  bool nonfinite() const;
  int64_t graph_replays() const;  // steps replayed from a CUDA graph so far (tests)
  // The layers cuda::fused_mlp runs, as (first layer index, layer count) per run (tests).
  std::vector<std::pair<int64_t, int64_t>> fused_runs() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace engine
}  // namespace fastnn
