// The inference object behind fastnn.quantize: a dense network with int8 weights (symmetric,
// one scale per output channel) whose dense layers quantize their input rows on the fly (u8 with
// a zero point, one scale per row) and multiply in int8 with exact int32 sums (cpu/qgemm.h).
// Python folds the model into steps first (python/fastnn/quantized.py): Dropout dropped,
// BatchNorm folded into a neighbouring Dense or kept as a float32 per-feature affine step.
//
// One predict call runs every step for blocks of rows, the output link (softmax / sigmoid)
// included. The object never changes after construction (the weights' per-path packings are
// made once, on first use of each path), so any number of threads may predict at once; each
// call leases its own buffers.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/ops/activation.h"
#include "cpu/qgemm.h"
#include "engine/engine.h"

namespace fastnn {
namespace engine {

enum class QLink : int { None, Softmax, Sigmoid };

struct QStep {
  enum class Kind : int { Dense, Affine, Activation } kind = Kind::Dense;
  int64_t in = 0, out = 0;
  std::vector<int8_t> weight;  // Dense: (in, out) row-major, values in [-127, 127]
  std::vector<float> scale;    // Dense: per-output-channel weight scale; Affine: multiplier
  std::vector<float> shift;    // Dense: bias (zeros when none); Affine: y = x * scale + shift
  Act act = Act::None;         // after the step (Dense, Activation)
  float act_param = 0.f;
};

class QuantizedNetwork {
 public:
  // Checks the steps' shapes chain from input_dim (ValueError otherwise).
  QuantizedNetwork(int64_t input_dim, std::vector<QStep> steps, QLink link);
  ~QuantizedNetwork();

  int64_t input_dim() const { return input_dim_; }
  int64_t output_dim() const { return output_dim_; }
  // out (n, output_dim) = the network on X (n, input_dim); rows_per_pass bounds the rows run
  // through all the steps at once. ValueError for NaN or infinity in X; returns whether every
  // output is finite (weights so large that a layer overflows make NaN). Safe from many threads
  // at once.
  bool predict(const float* X, int64_t n, float* out, int64_t rows_per_pass,
               const StopCheck& stop) const;
  // The int8 path predict uses now (cpu::qgemm::active_qpath()).
  static const char* kernel_path();

 private:
  struct Workspace;   // one call's buffers
  class WorkspacePool;
  class Leases;

  const std::vector<cpu::qgemm::PackedB>& packed(cpu::qgemm::QPath path) const;
  // Runs rows of X through every step and the link into out; false (and out unspecified) when
  // X holds NaN or infinity. Throws nothing: it runs inside the thread pool's tasks.
  bool run_block(Workspace& w, cpu::qgemm::QPath path, const float* X, int64_t rows,
                 float* out) const;

  int64_t input_dim_ = 0, output_dim_ = 0, widest_ = 0;
  std::vector<QStep> steps_;
  std::vector<std::vector<int32_t>> col_sums_;  // per step (empty for non-dense)
  QLink link_ = QLink::None;
  bool input_checked_ = false;  // the first step's quantizer rejects non-finite input
  mutable std::array<std::once_flag, cpu::qgemm::kNumPaths> packed_once_;
  mutable std::array<std::vector<cpu::qgemm::PackedB>, cpu::qgemm::kNumPaths> packed_;
  std::unique_ptr<WorkspacePool> pool_;
};

}  // namespace engine
}  // namespace fastnn
