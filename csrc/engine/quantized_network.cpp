#include "engine/quantized_network.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/parallel.h"
#include "cpu/activations.h"

namespace fastnn {
namespace engine {

namespace q = cpu::qgemm;

namespace {

// Rows x widest layer run through all the steps at once: ~1 MB of float activations, so that a
// pass's activations stay in the caches between layers.
constexpr int64_t kPassElems = int64_t(1) << 18;

// No NaN or infinity among x[0, n): integer ORs of the all-ones exponent test, which the compiler
// vectorizes. (bindings/bind_engine.cpp checks the fp32 engine's input the same way; the two could
// share one header.)
bool all_finite(const float* x, int64_t n) {
  uint32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, 4);
    bad |= uint32_t((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

}  // namespace

struct QuantizedNetwork::Workspace {
  int64_t rows = 0;
  std::vector<float> a, b;         // ping-pong float activations (rows x widest)
  q::AlignedBytes quantized;       // rows x padded_depth(widest) x 2 bytes (u16 on avx2)
  std::vector<float> row_scale;
  std::vector<int32_t> row_zero;

  void ensure(int64_t n, int64_t widest) {
    if (n <= rows) return;
    a.resize(size_t(n * widest));
    b.resize(size_t(n * widest));
    quantized = q::aligned_bytes(size_t(n * q::padded_depth(widest) * 2));
    row_scale.resize(size_t(n));
    row_zero.resize(size_t(n));
    rows = n;
  }
};

// Buffers are leased per call and kept for the next: a batch-1 call allocates nothing, and a
// large one does not fault in fresh pages each time.
class QuantizedNetwork::WorkspacePool {
 public:
  std::unique_ptr<Workspace> take() {
    std::lock_guard<std::mutex> g(m_);
    if (free_.empty()) return std::make_unique<Workspace>();
    auto w = std::move(free_.back());
    free_.pop_back();
    return w;
  }
  void give(std::unique_ptr<Workspace> w) {
    std::lock_guard<std::mutex> g(m_);
    free_.push_back(std::move(w));
  }

 private:
  std::mutex m_;
  std::vector<std::unique_ptr<Workspace>> free_;
};

QuantizedNetwork::QuantizedNetwork(int64_t input_dim, std::vector<QStep> steps, QLink link)
    : input_dim_(input_dim), steps_(std::move(steps)), link_(link),
      pool_(std::make_unique<WorkspacePool>()) {
  FASTNN_CHECK(input_dim > 0, "input_dim: expected a positive number of features");
  int64_t width = input_dim;
  widest_ = width;
  for (size_t i = 0; i < steps_.size(); ++i) {
    QStep& s = steps_[i];
    const std::string where = "steps[" + std::to_string(i) + "]: ";
    FASTNN_CHECK(s.in == width, where + "expected " + std::to_string(width) + " inputs, got " +
                                    std::to_string(s.in));
    FASTNN_CHECK(s.out > 0, where + "expected a positive output width");
    std::vector<int32_t> sums;
    switch (s.kind) {
      case QStep::Kind::Dense: {
        FASTNN_CHECK(s.in <= q::kMaxDepth,
                     where + std::to_string(s.in) + " inputs: int8 layers take at most " +
                         std::to_string(q::kMaxDepth) + " (int32 sums could overflow)");
        FASTNN_CHECK(int64_t(s.weight.size()) == s.in * s.out &&
                         int64_t(s.scale.size()) == s.out && int64_t(s.shift.size()) == s.out,
                     where + "weight, scale and bias sizes do not match the shape");
        sums.assign(size_t(s.out), 0);
        for (int64_t k = 0; k < s.in; ++k)
          for (int64_t n = 0; n < s.out; ++n) {
            const int8_t w = s.weight[size_t(k * s.out + n)];
            FASTNN_CHECK(w >= -127, where + "int8 weights must lie in [-127, 127]");
            sums[size_t(n)] += w;
          }
        break;
      }
      case QStep::Kind::Affine:
        FASTNN_CHECK(s.out == s.in && int64_t(s.scale.size()) == s.in &&
                         int64_t(s.shift.size()) == s.in,
                     where + "an affine step keeps its width and has a scale and shift each");
        break;
      case QStep::Kind::Activation:
        FASTNN_CHECK(s.out == s.in, where + "an activation keeps its width");
        break;
    }
    col_sums_.push_back(std::move(sums));
    width = s.out;
    widest_ = std::max(widest_, width);
  }
  output_dim_ = width;
  input_checked_ = !steps_.empty() && steps_[0].kind == QStep::Kind::Dense;
}

QuantizedNetwork::~QuantizedNetwork() = default;

const char* QuantizedNetwork::kernel_path() { return q::qpath_name(q::active_qpath()); }

const std::vector<q::PackedB>& QuantizedNetwork::packed(q::QPath path) const {
  const int p = static_cast<int>(path);
  std::call_once(packed_once_[size_t(p)], [&] {
    for (const QStep& s : steps_)
      if (s.kind == QStep::Kind::Dense)
        packed_[size_t(p)].push_back(q::pack_b(path, s.weight.data(), s.in, s.out));
  });
  return packed_[size_t(p)];
}

bool QuantizedNetwork::run_block(Workspace& w, q::QPath path, const float* X, int64_t rows,
                                 float* out) const {
  // A first dense step's quantizer checks its input itself.
  if (!input_checked_ && !all_finite(X, rows * input_dim_)) return false;
  const std::vector<q::PackedB>& packs = packed(path);
  const float* cur = X;
  int64_t ld = input_dim_;
  float* bufs[2] = {w.a.data(), w.b.data()};
  int which = 0;
  size_t dense = 0;
  for (size_t i = 0; i < steps_.size(); ++i) {
    const QStep& s = steps_[i];
    float* dst = i + 1 == steps_.size() ? out : bufs[which];
    which ^= 1;
    switch (s.kind) {
      case QStep::Kind::Dense: {
        q::quantize_rows(path, cur, ld, rows, s.in, w.quantized.get(), w.row_scale.data(),
                         w.row_zero.data());
        // The quantizer marks a row holding NaN or infinity with a NaN scale: in the input, an
        // error; further on (weights so large that a layer overflows), NaN outputs, as the
        // float model gives.
        if (cur == X)
          for (int64_t r = 0; r < rows; ++r)
            if (std::isnan(w.row_scale[size_t(r)])) return false;
        q::Dequant e;
        e.row_scale = w.row_scale.data();
        e.row_zero = w.row_zero.data();
        e.col_scale = s.scale.data();
        e.col_sum = col_sums_[i].data();
        e.bias = s.shift.data();
        e.relu = s.act == Act::Relu;
        e.out = dst;
        e.ldo = s.out;
        q::gemm_dequant(packs[dense++], w.quantized.get(), rows, e);
        if (s.act != Act::None && s.act != Act::Relu)
          cpu::act_forward<float>(s.act, s.act_param, dst, dst, rows * s.out);
        break;
      }
      case QStep::Kind::Affine:
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t k = 0; k < s.out; ++k)
            dst[r * s.out + k] = cur[r * ld + k] * s.scale[size_t(k)] + s.shift[size_t(k)];
        break;
      case QStep::Kind::Activation:
        for (int64_t r = 0; r < rows; ++r)
          cpu::act_forward<float>(s.act, s.act_param, cur + r * ld, dst + r * s.out, s.out);
        break;
    }
    cur = dst;
    ld = s.out;
  }
  if (steps_.empty()) std::memcpy(out, X, size_t(rows * input_dim_) * sizeof(float));
  switch (link_) {
    case QLink::Softmax: cpu::softmax_rows<float>(out, out, rows, output_dim_); break;
    case QLink::Sigmoid: cpu::act_forward<float>(Act::Sigmoid, 0.f, out, out, rows * output_dim_); break;
    default: break;
  }
  return true;
}

// Leased workspaces, given back to the pool on every exit path.
class QuantizedNetwork::Leases {
 public:
  Leases(WorkspacePool& pool, int64_t count, int64_t rows, int64_t widest) : pool_(pool) {
    for (int64_t i = 0; i < count; ++i) {
      ws_.push_back(pool_.take());
      ws_.back()->ensure(rows, widest);
    }
  }
  ~Leases() {
    for (auto& w : ws_) pool_.give(std::move(w));
  }
  Workspace& operator[](size_t i) { return *ws_[i]; }

 private:
  WorkspacePool& pool_;
  std::vector<std::unique_ptr<Workspace>> ws_;
};

bool QuantizedNetwork::predict(const float* X, int64_t n, float* out, int64_t rows_per_pass,
                               const StopCheck& stop) const {
  FASTNN_CHECK(rows_per_pass > 0, "batch_size must be positive");
  if (n <= 0) return true;
  const q::QPath path = q::active_qpath();
  packed(path);  // packed before any task runs: nothing below allocates inside the pool
  const int threads = get_num_threads();
  const int64_t task_rows = std::min(rows_per_pass, std::clamp<int64_t>(
      (int64_t(1) << 16) / widest_ / 6 * 6, 48, 192));
  if (threads > 1 && n >= 2 * task_rows) {
    // A large batch: each task runs task_rows rows through every step (their activations stay
    // in its core's caches), so the pool synchronises once per call, not once per layer. Each
    // of the `workers` tasks owns a workspace and takes blocks of rows from a shared counter:
    // however many threads the pool gives, every block is run once, by the same code.
    const int64_t blocks = (n + task_rows - 1) / task_rows;
    const int workers = int(std::min<int64_t>(threads, blocks));
    Leases ws(*pool_, workers, task_rows, widest_);
    // Blocks per round, between two looks for Ctrl-C.
    const int64_t round = int64_t(workers) * 8;
    std::atomic<bool> finite{true};
    for (int64_t b0 = 0; b0 < blocks; b0 += round) {
      if (stop && b0 > 0 && stop()) throw Interrupted();
      const int64_t b1 = std::min(blocks, b0 + round);
      std::atomic<int64_t> next{b0};
      parallel_for(workers, [&](int i) {
        for (int64_t b = next.fetch_add(1); b < b1; b = next.fetch_add(1)) {
          const int64_t r0 = b * task_rows, rows = std::min(task_rows, n - r0);
          if (!run_block(ws[size_t(i)], path, X + r0 * input_dim_, rows, out + r0 * output_dim_))
            finite.store(false);
        }
      });
      if (!finite.load()) throw ValueError("X: contains NaN or infinity");
    }
    return all_finite(out, n * output_dim_);
  }
  // A small batch: one block after another, each step's product split over the pool.
  const int64_t block = std::min({rows_per_pass, n, std::max<int64_t>(1, kPassElems / widest_)});
  Leases ws(*pool_, 1, block, widest_);
  for (int64_t r0 = 0; r0 < n; r0 += block) {
    if (stop && r0 > 0 && stop()) throw Interrupted();
    const int64_t rows = std::min(block, n - r0);
    if (!run_block(ws[0], path, X + r0 * input_dim_, rows, out + r0 * output_dim_))
      throw ValueError("X: contains NaN or infinity");
  }
  return all_finite(out, n * output_dim_);
}

}  // namespace engine
}  // namespace fastnn
