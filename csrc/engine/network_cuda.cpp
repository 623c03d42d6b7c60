// The training engine on the GPU (see network_cuda.h). Host orchestration only: every number a
// batch computes stays on the device; the kernels are those of csrc/cuda plus engine_kernels.cu.
#include "engine/network_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <type_traits>
#include <utility>

#include "core/error.h"
#include "cuda/activations.h"
#include "cuda/batchnorm.h"
#include "cuda/dense.h"
#include "cuda/device.h"
#include "cuda/dropout.h"
#include "cuda/engine_kernels.h"
#include "cuda/fused_mlp.h"
#include "cuda/losses.h"
#include "cuda/optim.h"
#include "cuda/reduce.h"
#include "engine/engine_common.h"

namespace fastnn {
namespace engine {

namespace {

// The largest workspace any batch of 1..r rows needs. The column-sum tilings behind the
// batch-norm, sum_rows and composed dense-backward workspaces (reduce.cu's column_tiling) are not
// monotone in the row count -- 8192 rows of 256 features take 128 chunks, 10000 rows 127 -- so a
// last partial batch, or an evaluate / predict batch, smaller than r can need more than r rows
// do (the kernels then raise "workspace too small"). Evaluated once per growth of r.
template <class Fn>
int64_t max_bytes_up_to(int64_t r, Fn bytes) {
  int64_t m = 0;
  for (int64_t n = 1; n <= r; ++n) m = std::max(m, bytes(n));
  return m;
}

// A parameter's name, shape and number of optimizer state buffers.
struct ParamInfo {
  std::string name;
  ParamShape shape;
  int states = 0;
};

// A block of device memory from the caching allocator, returned to it on destruction.
struct DevBuf {
  void* p = nullptr;
  size_t bytes = 0;
  int dev = 0;
  DevBuf() = default;
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  DevBuf(DevBuf&& o) noexcept : p(o.p), bytes(o.bytes), dev(o.dev) { o.p = nullptr; o.bytes = 0; }
  ~DevBuf() { cuda::device_free(p, dev); }
  void reset(size_t nbytes, int device) {
    cuda::device_free(p, dev);
    p = nullptr;
    bytes = 0;
    dev = device;
    if (nbytes) p = cuda::device_alloc(nbytes, device);
    bytes = nbytes;
  }
  float* f() const { return static_cast<float*>(p); }
  double* d() const { return static_cast<double*>(p); }
  int64_t* i64() const { return static_cast<int64_t*>(p); }
  uint8_t* u8() const { return static_cast<uint8_t*>(p); }
};

// Page-locked host memory (asynchronous copies need it), grown on demand.
struct Pinned {
  void* p = nullptr;
  size_t bytes = 0;
  Pinned() = default;
  Pinned(const Pinned&) = delete;
  Pinned& operator=(const Pinned&) = delete;
  ~Pinned() {
    if (p) cudaFreeHost(p);
  }
  void* get(size_t nbytes) {
    if (nbytes > bytes) {
      if (p) cudaFreeHost(p);
      p = nullptr;
      bytes = 0;
      cuda::check(cudaMallocHost(&p, nbytes), "cudaMallocHost (engine staging)");
      bytes = nbytes;
    }
    return p;
  }
};

}  // namespace

struct CudaNetwork::Impl {
  struct LayerState : LayerPlan {
    int drop_slot = -1;  // Dropout: its key's word in the step record, minus 1
    int run = -1;        // Dense in a fused-MLP run: the run's index
    DevBuf dz;           // fused runs: this layer's dZ
    DevBuf y, z, mask, mean, invstd, running_mean, running_var, acc_gamma, acc_beta;
    const float* out = nullptr;
  };
  struct P {
    ParamInfo info;
    DevBuf value, grad, state[3];
    double l1 = 0, l2 = 0;
    int64_t size() const { return info.shape.size(); }
  };

  CudaOptions opt;
  LossKind loss;
  OptimSpec optim;
  uint64_t seed;
  int64_t step = 0;
  bool nonfinite = false;
  int64_t replays = 0;
  cudaStream_t stream = nullptr;
  std::vector<int64_t> widths;
  std::vector<LayerState> layers;
  std::vector<P> params;
  std::vector<std::pair<float*, int64_t>> buffers;  // BatchNorm running statistics (layout order)
  std::vector<fastnn::OptimTensor<float>> otensors;
  std::vector<const float*> grad_ptrs;
  std::vector<int64_t> grad_sizes;
  bool any_penalty = false, has_batch_norm = false;
  // Diagnostics: per layer, device results of the slice's last update (4 doubles: the kernel
  // gradient's norm and clip coefficient, the kernel's norm and coefficient, global_norm's
  // output pairs) and the dead-unit count of its last batch; folded into `diag` on the host.
  std::vector<LayerDiagnostics> diag;
  DevBuf diag_norms, diag_dead;
  bool diag_norms_pending = false, diag_dead_pending = false;
  int64_t diag_micro = 0;
  double diag_lr = 0;
  // Batches summed into the last update of the call that took the global norm (norm_out), 0
  // when none did: BatchStats::grad_norm = norm_out[0] / norm_micro.
  int64_t norm_micro = 0;
  // The call's bookkeeping, to stop the host's counts where the device met a non-finite value
  // (see stop_counts): per accumulated batch its rows and accuracy denominator, per update the
  // number of batches accumulated before it.
  std::vector<std::pair<int64_t, int64_t>> call_batches;
  std::vector<int64_t> call_updates;
  // Runs of consecutive Dense layers that cuda::fused_mlp takes (layers [first, first + count)).
  struct Run {
    size_t first = 0, count = 0;
    std::vector<cuda::FusedMlpLayer> spec;
  };
  std::vector<Run> runs;
  int64_t max_width = 0;

  // Buffers sized for `rows` rows.
  int64_t rows = 0;
  DevBuf xbatch, tbatch, lbatch, wbatch, d0, d1, dense_ws, bn_ws;
  int64_t dense_ws_bytes = 0, bn_ws_bytes = 0;
  // Fixed-size scratch: the loss workspace, global-norm partials and result, counters, penalty,
  // weighted loss, accuracy counts, label check, the graph step's record.
  DevBuf loss_ws, norm_partials, norm_out, counters, pen, wloss, correct, labels_check, record;
  int64_t norm_cap = 0;
  Pinned host_counters, host_order, host_records;
  cudaEvent_t order_copied = nullptr;

  // The epoch's order.
  DevBuf order;
  int64_t order_cap = 0, epoch_n = 0;
  int64_t micro = 0;

  // The captured training steps (see run_graph): [0] starts an accumulation group (gradients
  // overwritten), [1] continues one (gradients added).
  cudaGraphExec_t graph[2] = {nullptr, nullptr};
  bool graph_warm[2] = {false, false};  // an eager step of graph_key's shape has run
  // The per-step record a replay reads: word 0 the batch offset in the epoch's order, word
  // 1 + j the dropout key of the j-th Dropout layer. Set (one copy from pinned memory) before
  // each replay; null outside capture, when the kernels take these values as arguments.
  const int64_t* rec_dev = nullptr;
  int64_t rec_words = 1;
  static constexpr int kSlots = 1024;  // pinned records in flight (a ring)
  int slot = 0;
  struct GraphKey {
    const float *X = nullptr, *targets = nullptr, *w = nullptr;
    const int64_t* labels = nullptr;
    const int64_t* order = nullptr;
    int64_t batch = 0, rows = 0;
    bool operator==(const GraphKey& o) const {
      return X == o.X && targets == o.targets && w == o.w && labels == o.labels &&
             order == o.order && batch == o.batch && rows == o.rows;
    }
  } graph_key;

  int64_t width(size_t i) const { return widths[i]; }
  int64_t C() const { return widths.back(); }

  ~Impl() {
    // The pinned buffers (the epoch order, the step records) may still be the source of
    // enqueued copies -- after begin_epoch, or a call that threw midway -- and cudaFreeHost
    // must not pull them from under the DMA. Errors are dropped (a destructor; a failed
    // context has nothing left to copy).
    if (stream) cudaStreamSynchronize(stream);
    drop_graph();
    if (order_copied) cudaEventDestroy(order_copied);
  }

  void drop_graph() {
    for (int k = 0; k < 2; ++k) {
      if (graph[k]) cudaGraphExecDestroy(graph[k]);
      graph[k] = nullptr;
      graph_warm[k] = false;
    }
  }

  void ensure_rows(int64_t r) {
    if (r <= rows) return;
    drop_graph();
    rows = r;
    const int dev = opt.device;
    auto fbytes = [](int64_t n) { return size_t(n) * sizeof(float); };
    for (size_t i = 0; i < layers.size(); ++i) {
      LayerState& L = layers[i];
      const int64_t n = r * width(i + 1);
      if (L.has_output()) L.y.reset(fbytes(n), dev);
      if (L.keep_z) L.z.reset(fbytes(n), dev);
      if (L.spec.kind == LayerKind::Dropout) L.mask.reset(size_t(n), dev);
      if (L.run >= 0) L.dz.reset(fbytes(n), dev);
    }
    xbatch.reset(fbytes(r * width(0)), dev);
    tbatch.reset(fbytes(r * C()), dev);
    lbatch.reset(size_t(r) * sizeof(int64_t), dev);
    wbatch.reset(fbytes(r), dev);
    d0.reset(fbytes(r * max_width), dev);
    d1.reset(fbytes(r * max_width), dev);
    dense_ws_bytes = 0;
    bn_ws_bytes = 0;
    for (size_t i = 0; i < layers.size(); ++i) {
      const int64_t K = width(i), F = width(i + 1);
      if (layers[i].spec.kind == LayerKind::Dense)
        dense_ws_bytes = std::max({dense_ws_bytes, cuda::dense_backward_workspace_bytes(r, K, F),
                                   max_bytes_up_to(r, [F](int64_t n) {
                                     return cuda::dense_backward_workspace_bytes(n, F);
                                   })});
      if (layers[i].spec.kind == LayerKind::BatchNorm)
        bn_ws_bytes = std::max(bn_ws_bytes, max_bytes_up_to(r, [F](int64_t n) {
                                 return cuda::batch_norm_workspace_bytes(n, F);
                               }));
    }
    dense_ws.reset(size_t(dense_ws_bytes), dev);
    bn_ws.reset(size_t(bn_ws_bytes), dev);
  }

  uint64_t dropout_seed(size_t layer) const {
    return engine::dropout_seed(seed, step, micro, layer);
  }

  // ------------------------------------------------------------------ forward / backward
  const float* forward(const float* x, int64_t N, bool training) {
    for (size_t i = 0; i < layers.size(); ++i) {
      LayerState& L = layers[i];
      const int64_t in = width(i), out = width(i + 1);
      if (L.run >= 0 && runs[size_t(L.run)].first == i) {
        // A fused run: one launch for its layers, each output written where the layer-by-layer
        // path writes it (the backward pass and the next layers read them there).
        const Run& R = runs[size_t(L.run)];
        // Inference reads only the run's last output: the hidden ones are not stored then.
        std::vector<float*> outs(R.count);
        for (size_t l = 0; l < R.count; ++l)
          outs[l] = training || l + 1 == R.count ? layers[R.first + l].y.f() : nullptr;
        cuda::fused_mlp_forward(R.spec.data(), int64_t(R.count), x, N, outs.data(),
                                opt.precision, stream);
        for (size_t l = 0; l < R.count; ++l) layers[R.first + l].out = layers[R.first + l].y.f();
        x = outs[R.count - 1];
        i = R.first + R.count - 1;
        continue;
      }
      switch (L.spec.kind) {
        case LayerKind::Dense: {
          cuda::gemm_precision(
              dense_forward_args<float>(L.spec, N, in, out, x, params[L.w].value.f(),
                                        L.b >= 0 ? params[L.b].value.f() : nullptr, L.y.f(),
                                        L.keep_z ? L.z.f() : nullptr),
              stream, opt.precision);
          L.out = L.y.f();
          break;
        }
        case LayerKind::Activation:
          if (L.spec.act == Act::None) {
            L.out = x;
          } else {
            cuda::act_forward(L.spec.act, float(L.spec.act_param), x, L.y.f(), N * out, stream);
            L.out = L.y.f();
          }
          break;
        case LayerKind::Dropout:
          if (training && L.spec.rate > 0) {
            cuda::dropout_forward(
                x, L.y.f(), L.mask.u8(), N * out, L.spec.rate, dropout_seed(i), stream,
                rec_dev ? reinterpret_cast<const uint64_t*>(rec_dev + 1 + L.drop_slot) : nullptr);
            L.out = L.y.f();
          } else {
            L.out = x;
          }
          break;
        case LayerKind::BatchNorm: {
          if (training) check_batch_norm_rows(N);
          const fastnn::BatchNormArgs<float> a = batch_norm_args<float>(
              L.spec, x, N, out, params[L.gamma].value.f(), params[L.beta].value.f(),
              L.running_mean.f(), L.running_var.f(), L.y.f(), training ? L.mean.f() : nullptr,
              training ? L.invstd.f() : nullptr);
          if (training) {
            cuda::batch_norm_forward_train(a, bn_ws.p, bn_ws_bytes, stream);
          } else {
            cuda::batch_norm_forward_infer(a, bn_ws.p, bn_ws_bytes, stream);
          }
          L.out = L.y.f();
          break;
        }
      }
      x = L.out;
    }
    return x;
  }

  void backward(const float* x0, int64_t N, bool accumulate) {
    float* dcur = d0.f();
    float* dnext = d1.f();
    for (size_t ii = layers.size(); ii-- > 0;) {
      LayerState& L = layers[ii];
      const int64_t in = width(ii), out = width(ii + 1);
      const float* x_in = ii == 0 ? x0 : layers[ii - 1].out;
      const bool need_dx = ii > 0;
      if (L.run >= 0) {
        const Run& R = runs[size_t(L.run)];
        if (ii == R.first + R.count - 1) {
          fused_backward(R, x0, N, dcur, dnext, accumulate);
          std::swap(dcur, dnext);
          ii = R.first;  // the loop continues below the run
          continue;
        }
      }
      switch (L.spec.kind) {
        case LayerKind::Dense: {
          cuda::dense_backward(
              dense_backward_args<float>(L, N, in, out, x_in, params[L.w].value.f(), dcur,
                                         L.y.f(), L.z.f(), params[L.w].grad.f(),
                                         L.b >= 0 ? params[L.b].grad.f() : nullptr,
                                         need_dx ? dnext : nullptr, accumulate),
              dense_ws.p, dense_ws_bytes, stream, opt.precision);
          break;
        }
        case LayerKind::Activation:
          if (L.spec.act == Act::None || !need_dx) continue;
          if (fastnn::act_grad_from_output_ok(L.spec.act, L.spec.act_param))
            cuda::act_backward_from_output(L.spec.act, float(L.spec.act_param), dcur, L.y.f(),
                                           dnext, N * out, stream);
          else
            cuda::act_backward(L.spec.act, float(L.spec.act_param), dcur, x_in, dnext, N * out,
                               stream);
          break;
        case LayerKind::Dropout:
          if (L.spec.rate <= 0 || !need_dx) continue;
          cuda::dropout_backward(dcur, L.mask.u8(), dnext, N * out, L.spec.rate, stream);
          break;
        case LayerKind::BatchNorm: {
          P& g = params[L.gamma];
          P& b = params[L.beta];
          float* dg = accumulate ? L.acc_gamma.f() : g.grad.f();
          float* dbt = accumulate ? L.acc_beta.f() : b.grad.f();
          cuda::batch_norm_backward(dcur, x_in, N, out, g.value.f(), L.mean.f(), L.invstd.f(),
                                    dnext, dg, dbt, bn_ws.p, bn_ws_bytes, stream);
          if (accumulate) {
            cuda::add_into(g.grad.f(), dg, out, stream);
            cuda::add_into(b.grad.f(), dbt, out, stream);
          }
          break;
        }
      }
      std::swap(dcur, dnext);
    }
  }

  // Back through a fused run: the kernel gives every layer's dZ (and dX below the run); the weight
  // gradients dW (+)= in^T dZ and db (+)= column sums of dZ, which reduce over the whole batch,
  // are cuda::dense_backward's with no activation and no dX: the kernels (split-K over the batch,
  // db in the same launch for FP32) and the accumulation of the layer-by-layer path. A plain
  // GEMM here ran dW as one tile -- one block on one SM -- for narrow layers (64 x 64 at a batch
  // of 2^14: 67M FMAs on a single SM, ~0.3 ms per layer).
  void fused_backward(const Run& R, const float* x0, int64_t N, const float* dY, float* dX,
                      bool accumulate) {
    const float* x_run = R.first == 0 ? x0 : layers[R.first - 1].out;
    std::vector<const float*> outs(R.count);
    std::vector<float*> dz(R.count);
    for (size_t l = 0; l < R.count; ++l) {
      outs[l] = layers[R.first + l].y.f();
      dz[l] = layers[R.first + l].dz.f();
    }
    cuda::fused_mlp_backward(R.spec.data(), int64_t(R.count), x_run, outs.data(), dY, N,
                             dz.data(), R.first > 0 ? dX : nullptr, opt.precision, stream);
    for (size_t l = 0; l < R.count; ++l) {
      LayerState& L = layers[R.first + l];
      const int64_t in = width(R.first + l), out = width(R.first + l + 1);
      DenseBackwardArgs<float> a;
      a.M = N;
      a.K = in;
      a.N = out;
      a.X = l == 0 ? x_run : outs[l - 1];
      a.ldx = in;
      a.W = params[L.w].value.f();
      a.ldw = out;
      a.dY = dz[l];  // already dZ: no gate
      a.ldy = out;
      a.dW = params[L.w].grad.f();
      a.lddw = out;
      if (L.b >= 0) a.db = params[L.b].grad.f();
      a.accumulate = accumulate;
      cuda::dense_backward(a, dense_ws.p, dense_ws_bytes, stream, opt.precision);
    }
  }

  // The batch's loss and gradient (into d0) and the accuracy count, all left on the device and
  // folded into the counters by accumulate_kernel (penalty added when `with_penalty`).
  void batch_loss(const float* out, int64_t N, const int64_t* labels, const float* targets,
                  const float* w, bool grad, bool with_penalty) {
    const int64_t Cn = C();
    float* g = d0.f();
    int64_t* corr = nullptr;
    switch (loss) {
      case LossKind::SampledSoftmax:
      case LossKind::SoftmaxCrossEntropy: {
        cuda::softmax_cross_entropy(softmax_xent_args<float>(out, N, Cn, labels, g), loss_ws.p,
                                    stream);
        cuda::count_correct(out, labels, N, Cn, correct.i64(), stream);
        corr = correct.i64();
        break;
      }
      case LossKind::BinaryCrossEntropy:
        cuda::binary_cross_entropy_with_logits(out, targets, N * Cn, g, loss_ws.p, stream);
        cuda::binary_correct(out, targets, N * Cn, correct.i64(), stream);
        corr = correct.i64();
        break;
      case LossKind::MeanSquaredError:
        cuda::mse(out, targets, N * Cn, g, loss_ws.p, stream);
        break;
      case LossKind::MeanAbsoluteError:
        cuda::mae(out, targets, N * Cn, g, loss_ws.p, stream);
        break;
    }
    const double* weighted = nullptr;
    if (w) {
      const int kind = loss == LossKind::SampledSoftmax ? 0 : int(loss);
      cuda::weighted_loss(kind, out, labels, targets, w, N, Cn, grad ? g : nullptr, wloss.d(),
                          stream);
      weighted = wloss.d();
    }
    const double* p = nullptr;
    if (with_penalty && any_penalty) {
      penalty_into(pen.d());
      p = pen.d();
    }
    cuda::accumulate_batch(static_cast<cuda::EngineCounters*>(counters.p), loss_ws.p, weighted, p,
                           N, corr, /*sticky=*/grad, stream);
  }

  cuda::EngineCounters* counters_dev() const {
    return static_cast<cuda::EngineCounters*>(counters.p);
  }

  void penalty_into(double* out) {
    bool first = true;
    for (const P& q : params)
      if (q.l1 != 0 || q.l2 != 0) {
        cuda::penalty(q.value.f(), q.size(), q.l1, q.l2, out, !first, stream);
        first = false;
      }
  }

  // The diagnostics' norms, before the update changes the weights (the CPU's gather_diagnostics).
  void diagnose_update(int64_t m) {
    const double inf = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < layers.size(); ++i) {
      const LayerState& L = layers[i];
      if (L.spec.kind != LayerKind::Dense) continue;
      const P& w = params[size_t(L.w)];
      const int64_t n = w.size();
      const float* g = w.grad.f();
      const float* v = w.value.f();
      cuda::global_norm(&g, &n, 1, inf, norm_partials.d(), norm_cap, diag_norms.d() + 4 * i,
                        stream);
      cuda::global_norm(&v, &n, 1, inf, norm_partials.d(), norm_cap, diag_norms.d() + 4 * i + 2,
                        stream);
    }
    diag_norms_pending = true;
    diag_micro = m;
    diag_lr = optim.lr;
  }

  void count_dead_units(int64_t N) {
    for (size_t i = 0; i < layers.size(); ++i) {
      const LayerState& L = layers[i];
      if (L.spec.kind != LayerKind::Dense || L.spec.act != Act::Relu) continue;
      cuda::dead_units(L.y.f(), N, width(i + 1), diag_dead.i64() + i, stream);
    }
    diag_dead_pending = true;
  }

  // After the stream has run: the pending device diagnostics into `diag`.
  void collect_diagnostics() {
    if (!diag_norms_pending && !diag_dead_pending) return;
    const size_t nl = layers.size();
    std::vector<double> norms(4 * nl, 0.0), clip(2, 1.0);
    std::vector<int64_t> dead(nl, 0);
    if (diag_norms_pending) {
      cuda::memcpy_d2h(norms.data(), diag_norms.p, norms.size() * sizeof(double), opt.device);
      // The update that diagnosed also took the global norm (with max_norm = inf, coefficient
      // 1, when not clipping): its clip coefficient.
      cuda::memcpy_d2h(clip.data(), norm_out.p, 2 * sizeof(double), opt.device);
    }
    if (diag_dead_pending)
      cuda::memcpy_d2h(dead.data(), diag_dead.p, nl * sizeof(int64_t), opt.device);
    // The CPU's scale: 1 / micro, times the clip coefficient when clipping cut the norm.
    const double scale = diag_norms_pending ? clip[1] / double(diag_micro) : 0.0;
    for (size_t i = 0; i < nl; ++i) {
      const LayerState& L = layers[i];
      if (L.spec.kind != LayerKind::Dense) continue;
      if (diag_norms_pending) {
        add_update_diagnostics(diag[i], norms[4 * i] * scale, norms[4 * i + 2], diag_lr);
      }
      if (diag_dead_pending && L.spec.act == Act::Relu) {
        add_dead_units(diag[i], dead[i], width(i + 1));
      }
    }
    diag_norms_pending = diag_dead_pending = false;
  }

  // One optimizer update from gradients summed over `m` batches.
  void update(int64_t m, double clipnorm, bool diagnose = false) {
    const double scale = 1.0 / double(m);
    const int64_t update_index = int64_t(call_updates.size());
    call_updates.push_back(int64_t(call_batches.size()));
    const double* scale_dev = nullptr;
    // As the CPU engine: the global norm is taken for clipping and on the slice's last update
    // (diagnose), reported as BatchStats::grad_norm, and a non-finite one skips the update.
    if (clipnorm > 0 || diagnose) {
      // The coefficient clipnorm / (norm / m + 1e-6) of the CPU engine, from the norm of the
      // summed gradients: max_norm = clipnorm * m (the 1e-6 is scaled by m; a 1e-6-relative
      // difference only when accumulating). Without clipping, max_norm = inf: coefficient 1.
      const double max_norm =
          clipnorm > 0 ? clipnorm * double(m) : std::numeric_limits<double>::infinity();
      cuda::global_norm(grad_ptrs.data(), grad_sizes.data(), int64_t(grad_ptrs.size()), max_norm,
                        norm_partials.d(), norm_cap, norm_out.d(), stream);
      // As the CPU: no update (the update's index in the call goes with the flag).
      cuda::flag_nonfinite_norm(norm_out.d(), counters_dev(), update_index, stream);
      if (clipnorm > 0) scale_dev = norm_out.d() + 1;
      norm_micro = m;
    }
    if (diagnose) diagnose_update(m);
    ++step;
    // After a non-finite loss or gradient norm the steps are skipped on the device (the flag is
    // sticky for the call): the weights stay those from before the bad batch, as on the CPU.
    const int* skip = &counters_dev()->nonfinite;
    const int64_t count = int64_t(otensors.size());
    const OptimSpec& o = optim;
    switch (o.kind) {
      case OptimKind::Sgd:
        cuda::sgd_step(otensors.data(), count, sgd_options(o, step, scale), scale_dev, stream,
                       skip);
        break;
      case OptimKind::Adam:
      case OptimKind::AdamW:
        cuda::adam_step(otensors.data(), count, adam_options(o, step, scale), scale_dev, stream,
                        skip);
        break;
      case OptimKind::Adagrad:
        cuda::adagrad_step(otensors.data(), count, adagrad_options(o, step, scale), scale_dev,
                           stream, skip);
        break;
      case OptimKind::RmsProp:
        cuda::rmsprop_step(otensors.data(), count, rmsprop_options(o, scale), scale_dev, stream,
                           skip);
        break;
    }
  }

  // Gather .. forward .. loss .. backward of one batch of N rows at `r0` of the epoch's order
  // (while capturing, r0 and the dropout keys are read from the step record instead).
  void step_body(const Data<float>& d, int64_t r0, int64_t N, bool accumulate) {
    const int64_t in = width(0), Cn = C();
    const int64_t* idx = order.i64();
    const int64_t* bdev = rec_dev;
    cuda::gather_rows(d.X, in, idx, r0, bdev, N, xbatch.f(), stream);
    if (d.labels) cuda::gather_rows(d.labels, 1, idx, r0, bdev, N, lbatch.i64(), stream);
    if (d.targets) cuda::gather_rows(d.targets, Cn, idx, r0, bdev, N, tbatch.f(), stream);
    if (d.sample_weight)
      cuda::gather_rows(d.sample_weight, 1, idx, r0, bdev, N, wbatch.f(), stream);
    const float* out = forward(xbatch.f(), N, true);
    batch_loss(out, N, d.labels ? lbatch.i64() : nullptr, d.targets ? tbatch.f() : nullptr,
               d.sample_weight ? wbatch.f() : nullptr, true, true);
    backward(xbatch.f(), N, accumulate);
  }

  // The graph path, for full batches (N == batch_size): the step's kernels are captured once per
  // shape and data (and per accumulate flag) and replayed. What changes between steps is read
  // from the step record (batch offset, dropout keys); the optimizer step -- whose learning rate
  // and Adam bias corrections are host-computed launch arguments -- is launched after the
  // replay, as are the clip norm and the update. Returns false when the step must run eagerly
  // (the first one of a shape: lazy initialisations stay out of the capture).
  bool run_graph(const Data<float>& d, int64_t r0, int64_t N, bool accumulate) {
    GraphKey key;
    key.X = d.X;
    key.targets = d.targets;
    key.w = d.sample_weight;
    key.labels = d.labels;
    key.order = order.i64();
    key.batch = N;
    key.rows = rows;
    if (!(key == graph_key)) {
      drop_graph();
      graph_key = key;
    }
    const int k = accumulate ? 1 : 0;
    if (!graph_warm[k]) {
      graph_warm[k] = true;
      return false;
    }
    // The record goes through a ring of pinned slots; each lap of the ring waits for the stream
    // (one host wait per kSlots steps), so no slot is rewritten before its copy ran.
    int64_t* h = static_cast<int64_t*>(host_records.p) + size_t(slot) * size_t(rec_words);
    h[0] = r0;
    for (size_t i = 0; i < layers.size(); ++i)
      if (layers[i].drop_slot >= 0) h[1 + layers[i].drop_slot] = int64_t(dropout_seed(i));
    cuda::check(cudaMemcpyAsync(record.p, h, size_t(rec_words) * sizeof(int64_t),
                                cudaMemcpyHostToDevice, stream),
                "cudaMemcpyAsync (training step record)");
    slot = (slot + 1) % kSlots;
    if (slot == 0)  // a lap of the ring: the oldest copies must have run before reuse
      cuda::check(cudaStreamSynchronize(stream), "CUDA kernels of the training steps");
    if (!graph[k]) {
      cudaGraph_t g = nullptr;
      cuda::check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal),
                  "cudaStreamBeginCapture (training step)");
      rec_dev = record.i64();
      try {
        step_body(d, r0, N, accumulate);
      } catch (...) {
        rec_dev = nullptr;
        cudaStreamEndCapture(stream, &g);
        if (g) cudaGraphDestroy(g);
        cudaGetLastError();
        throw;
      }
      rec_dev = nullptr;
      cuda::check(cudaStreamEndCapture(stream, &g), "cudaStreamEndCapture (training step)");
      const cudaError_t err = cudaGraphInstantiate(&graph[k], g, 0);
      cudaGraphDestroy(g);
      cuda::check(err, "cudaGraphInstantiate (training step)");
    }
    cuda::check(cudaGraphLaunch(graph[k], stream), "cudaGraphLaunch (training step)");
    ++replays;
    return true;
  }
};

// ------------------------------------------------------------------ construction

CudaNetwork::CudaNetwork(int64_t input_dim, std::vector<LayerSpec> layers, LossKind loss,
                         OptimSpec optim, uint64_t seed, CudaOptions options)
    : impl_(new Impl) {
  check_network_args(input_dim, layers);
  FASTNN_CHECK(loss != LossKind::SampledSoftmax,
               "sampled softmax: not available on the GPU yet (train it with device='cpu')");
  cuda::check_device(options.device);
  cuda::DeviceGuard guard(options.device);
  Impl& m = *impl_;
  m.opt = options;
  m.loss = loss;
  m.optim = optim;
  m.seed = seed;
  m.stream = cuda::stream(options.device);
  const int dev = options.device;
  const NetworkPlan plan = plan_network(input_dim, layers);
  m.widths = plan.widths;
  m.max_width = plan.max_width;
  m.any_penalty = plan.any_penalty;
  m.has_batch_norm = plan.has_batch_norm;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    Impl::LayerState L;
    static_cast<LayerPlan&>(L) = plan.layers[i];
    if (L.spec.kind == LayerKind::Dropout && L.spec.rate > 0) {
      L.drop_slot = int(m.rec_words - 1);
      ++m.rec_words;
    }
    if (L.spec.kind == LayerKind::BatchNorm) {
      const int64_t out = m.widths[i + 1];
      const size_t fb = size_t(out) * sizeof(float);
      L.running_mean.reset(fb, dev);
      L.running_var.reset(fb, dev);
      L.mean.reset(fb, dev);
      L.invstd.reset(fb, dev);
      L.acc_gamma.reset(fb, dev);
      L.acc_beta.reset(fb, dev);
      std::vector<float> zeros(size_t(out), 0.0f), ones(size_t(out), 1.0f);
      cuda::memcpy_h2d(L.running_mean.p, zeros.data(), fb, dev);
      cuda::memcpy_h2d(L.running_var.p, ones.data(), fb, dev);
      cuda::synchronize(dev);  // the pageable sources go out of scope
    }
    m.layers.push_back(std::move(L));
  }
  for (const ParamPlan& q : plan.params) {
    Impl::P p;
    p.info.name = q.name;
    p.info.shape = q.shape;
    p.l1 = q.l1;
    p.l2 = q.l2;
    m.params.push_back(std::move(p));
  }
  if (options.fused_mlp) {
    // Runs of Dense layers whose derivative follows from the output, each grown greedily while
    // fused_mlp_applies still takes it (so 784-64-64-64-10 fuses its last three layers, and a
    // stack deeper than kFusedMlpMaxLayers is cut into several runs); a run of one layer gains
    // nothing over the GEMM path.
    auto fusable = [&](size_t l) {
      const Impl::LayerState& L = m.layers[l];
      return L.spec.kind == LayerKind::Dense && !L.keep_z &&
             fastnn::act_grad_from_output_ok(L.spec.act, L.spec.act_param);
    };
    for (size_t i = 0; i < m.layers.size();) {
      Impl::Run R;
      R.first = i;
      size_t j = i;
      while (j < m.layers.size() && fusable(j)) {
        cuda::FusedMlpLayer f;
        f.in = m.widths[j];
        f.out = m.widths[j + 1];
        f.act = m.layers[j].spec.act;
        f.act_param = float(m.layers[j].spec.act_param);
        R.spec.push_back(f);  // W and b filled in below, once the parameters exist
        if (!cuda::fused_mlp_fits_device(R.spec.data(), int64_t(R.spec.size()),
                                         options.precision)) {
          R.spec.pop_back();
          break;
        }
        ++j;
      }
      R.count = j - i;
      if (R.count >= 2) {
        for (size_t l = i; l < j; ++l) m.layers[l].run = int(m.runs.size());
        m.runs.push_back(std::move(R));
      }
      i = j > i ? j : i + 1;
    }
  }

  const int states = optim_states(optim.kind);
  for (size_t i = 0; i < m.params.size(); ++i) {
    Impl::P& p = m.params[i];
    p.info.states = states;
    const size_t n = size_t(p.size()), nb = n * sizeof(float);
    p.value.reset(nb, dev);
    p.grad.reset(nb, dev);
    const std::vector<float> init(n, plan.params[i].init);
    cuda::memcpy_h2d(p.value.p, init.data(), nb, dev);
    std::vector<float> zero(n, 0.0f);
    cuda::memcpy_h2d(p.grad.p, zero.data(), nb, dev);
    for (int k = 0; k < states; ++k) {
      p.state[k].reset(nb, dev);
      if (optim.kind == OptimKind::Adagrad) {
        std::vector<float> acc(n, float(optim.initial_accumulator_value));
        cuda::memcpy_h2d(p.state[k].p, acc.data(), nb, dev);
        cuda::synchronize(dev);
      } else {
        cuda::memcpy_h2d(p.state[k].p, zero.data(), nb, dev);
      }
    }
    cuda::synchronize(dev);
    float* state[3] = {p.state[0].f(), p.state[1].f(), p.state[2].f()};
    m.otensors.push_back(
        optim_tensor<float>(p.value.f(), p.grad.f(), state, states, p.size(), p.l1, p.l2));
    m.grad_ptrs.push_back(p.grad.f());
    m.grad_sizes.push_back(p.size());
  }
  for (Impl::Run& R : m.runs)
    for (size_t l = 0; l < R.count; ++l) {
      Impl::LayerState& L = m.layers[R.first + l];
      R.spec[l].W = m.params[size_t(L.w)].value.f();
      R.spec[l].b = L.b >= 0 ? m.params[size_t(L.b)].value.f() : nullptr;
    }
  // The state buffers Adam leaves unused (amsgrad's max, ...) are still allocated, as the CPU
  // engine does, so that optimizer_state() has the same arrays on both.
  m.loss_ws.reset(cuda::loss_workspace_bytes(), dev);
  m.norm_cap = std::max<int64_t>(
      1, cuda::global_norm_partials(m.grad_sizes.data(), int64_t(m.grad_sizes.size())));
  m.norm_partials.reset(size_t(m.norm_cap) * sizeof(double), dev);
  m.norm_out.reset(2 * sizeof(double), dev);
  m.counters.reset(sizeof(cuda::EngineCounters), dev);
  m.pen.reset(sizeof(double), dev);
  m.wloss.reset(sizeof(double), dev);
  m.correct.reset(2 * sizeof(int64_t), dev);
  m.labels_check.reset(3 * sizeof(int64_t), dev);
  m.record.reset(size_t(m.rec_words) * sizeof(int64_t), dev);
  m.diag.resize(m.layers.size());
  layout_ = engine_layout(plan, optim.kind);
  for (auto& L : m.layers)
    if (L.spec.kind == LayerKind::BatchNorm) {
      const int64_t n = int64_t(L.running_mean.bytes / sizeof(float));
      m.buffers.emplace_back(L.running_mean.f(), n);
      m.buffers.emplace_back(L.running_var.f(), n);
    }
  m.diag_norms.reset(4 * m.layers.size() * sizeof(double), dev);
  m.diag_dead.reset(m.layers.size() * sizeof(int64_t), dev);
  m.host_counters.get(sizeof(cuda::EngineCounters) + 64);
  m.host_records.get(size_t(Impl::kSlots) * size_t(m.rec_words) * sizeof(int64_t));
  cuda::check(cudaEventCreateWithFlags(&m.order_copied, cudaEventDisableTiming),
              "cudaEventCreate (engine)");
}

// Kernels may still be reading the device buffers returned to the cache here; the cache hands
// them out only to later work on the same stream, so no wait is needed for them (device.h); the
// pinned host buffers are another matter (~Impl waits for the stream). Nothing here throws (no
// device switch: stream waits, graph, event and pinned-memory destruction need no current
// device).
CudaNetwork::~CudaNetwork() = default;

int64_t CudaNetwork::input_dim() const { return impl_->widths.front(); }
int64_t CudaNetwork::output_dim() const { return impl_->widths.back(); }
int CudaNetwork::device() const { return impl_->opt.device; }
OptimSpec& CudaNetwork::optim() { return impl_->optim; }
int64_t CudaNetwork::step() const { return impl_->step; }
void CudaNetwork::set_step(int64_t s) { impl_->step = s; }
std::vector<LayerDiagnostics> CudaNetwork::take_diagnostics() {
  std::unique_lock<RwLock> exclusive(lock_);
  return take_all(impl_->diag);
}

bool CudaNetwork::nonfinite() const { return impl_->nonfinite; }
int64_t CudaNetwork::graph_replays() const { return impl_->replays; }
std::vector<std::pair<int64_t, int64_t>> CudaNetwork::fused_runs() const {
  std::vector<std::pair<int64_t, int64_t>> r;
  for (const Impl::Run& R : impl_->runs) r.emplace_back(int64_t(R.first), int64_t(R.count));
  return r;
}

std::pair<float*, int64_t> CudaNetwork::array(Slot kind, size_t i) {
  Impl& m = *impl_;
  const auto at = layout_.locate(kind, i);
  switch (kind) {
    case Slot::Params: return {m.params[at.first].value.f(), m.params[at.first].size()};
    case Slot::Grads: return {m.params[at.first].grad.f(), m.params[at.first].size()};
    case Slot::State:
      return {m.params[at.first].state[at.second].f(), m.params[at.first].size()};
    case Slot::Buffers: break;
  }
  return m.buffers[at.first];
}

void CudaNetwork::read(Slot kind, size_t i, float* host) {
  const auto a = array(kind, i);
  cuda::memcpy_d2h(host, a.first, size_t(a.second) * sizeof(float), impl_->opt.device);
}

void CudaNetwork::write(Slot kind, size_t i, const float* host) {
  const auto a = array(kind, i);
  cuda::memcpy_h2d(a.first, host, size_t(a.second) * sizeof(float), impl_->opt.device);
  cuda::synchronize(impl_->opt.device);  // the caller may free `host` on return
}

// ------------------------------------------------------------------ epochs and batches

void CudaNetwork::begin_epoch(int64_t n, int64_t epoch, bool shuffle) {
  std::unique_lock<RwLock> exclusive(lock_);
  Impl& m = *impl_;
  FASTNN_CHECK(n >= 0, "begin_epoch: n must be >= 0");
  cuda::DeviceGuard guard(m.opt.device);
  // The previous epoch's upload must be done before its staging buffer is rewritten.
  cuda::check(cudaEventSynchronize(m.order_copied), "waiting for the order upload");
  if (n > m.order_cap) {
    m.drop_graph();
    m.order.reset(size_t(n) * sizeof(int64_t), m.opt.device);
    m.order_cap = n;
  }
  int64_t* h = static_cast<int64_t*>(
      m.host_order.get(size_t(std::max<int64_t>(n, 1)) * sizeof(int64_t)));
  m.epoch_n = n;
  // The CPU engine's order (engine_common's epoch_order), drawn here on the host -- n int64 an
  // epoch, uploaded asynchronously -- and applied by the device gather: CPU and GPU then train
  // on the same batches, which is what makes CPU-equals-GPU testable.
  epoch_order(h, n, m.seed, epoch, shuffle);
  if (n)
    cuda::check(cudaMemcpyAsync(m.order.p, h, size_t(n) * sizeof(int64_t), cudaMemcpyHostToDevice,
                                m.stream),
                "cudaMemcpyAsync (epoch order)");
  cuda::check(cudaEventRecord(m.order_copied, m.stream), "cudaEventRecord (epoch order)");
}

namespace {

// Reads the counters (waiting for the stream), raises for bad labels.
cuda::EngineCounters read_counters(void* dev, void* pinned, cudaStream_t s, const char* what) {
  cuda::check(cudaMemcpyAsync(pinned, dev, sizeof(cuda::EngineCounters), cudaMemcpyDeviceToHost, s),
              std::string("reading the engine counters after ") + what);
  cuda::check(cudaStreamSynchronize(s), std::string("CUDA kernels of ") + what);
  cuda::EngineCounters c;
  std::memcpy(&c, pinned, sizeof c);
  if (c.loss_code == 1)
    throw ValueError("labels: expected class indices in [0, " + std::to_string(c.classes) +
                     "), got " + std::to_string(c.bad_label) + " at position " +
                     std::to_string(c.bad_index) + " of a batch");
  if (c.loss_code != 0) throw ValueError(std::string(what) + ": the loss kernel reported an error");
  return c;
}

}  // namespace

BatchStats CudaNetwork::train_batches(const Data<float>& d, int64_t batch_size, int64_t first,
                                      int64_t last, int64_t accumulate_steps, double clipnorm) {
  std::unique_lock<RwLock> exclusive(lock_);
  Impl& m = *impl_;
  cuda::DeviceGuard guard(m.opt.device);
  check_batch_args(d.n, m.epoch_n, batch_size, accumulate_steps);
  FASTNN_CHECK(d.X != nullptr && (d.labels != nullptr) != (d.targets != nullptr),
               "train_batches: X and exactly one of labels / targets are required");
  FASTNN_CHECK((d.labels != nullptr) == (m.loss == LossKind::SoftmaxCrossEntropy),
               "train_batches: labels go with the softmax cross-entropy, targets with the others");
  const int64_t nbatches = slice_batches(d.n, batch_size, first, last, accumulate_steps);
  m.ensure_rows(std::min(batch_size, d.n));
  m.nonfinite = false;
  cuda::check(cudaMemsetAsync(m.counters.p, 0, sizeof(cuda::EngineCounters), m.stream),
              "cudaMemsetAsync (engine counters)");
  BatchStats s;
  const bool graphs_ok = m.opt.graphs;
  int64_t micro = 0;
  m.norm_micro = 0;
  m.call_batches.clear();
  m.call_updates.clear();
  const int64_t step0 = m.step;
  for (int64_t bi = first; bi < last; ++bi) {
    const int64_t r0 = bi * batch_size, N = std::min(batch_size, d.n - r0);
    if (skip_batch(N, batch_size, m.has_batch_norm, nbatches)) {
      if (micro > 0) {
        m.update(micro, clipnorm, bi == last - 1);
        ++s.updates;
        micro = 0;
      }
      continue;
    }
    m.micro = micro;
    bool replayed = false;
    if (graphs_ok && N == batch_size) replayed = m.run_graph(d, r0, N, micro > 0);
    if (!replayed) m.step_body(d, r0, N, micro > 0);
    ++micro;
    s.rows += N;
    ++s.batches;
    const int64_t counted = accuracy_count(m.loss, N, m.C());
    s.counted += counted;
    m.call_batches.emplace_back(N, counted);
    const bool last_batch = bi == nbatches - 1;
    if (micro == accumulate_steps || last_batch) {
      m.update(micro, clipnorm, bi == last - 1);
      ++s.updates;
      micro = 0;
    }
    if (bi == last - 1) m.count_dead_units(N);
  }
  cuda::EngineCounters c =
      read_counters(m.counters.p, m.host_counters.p, m.stream, "train_batches");
  s.loss_sum = c.loss_sum;
  s.correct = c.correct;
  m.nonfinite = c.nonfinite != 0;
  if (m.nonfinite) {
    // The CPU engine stops at the bad batch, before the slice's last update and its dead-unit
    // count: no diagnostics from this call (its gradients may be NaN).
    m.diag_norms_pending = m.diag_dead_pending = false;
    // Its counts stop there too: the batches up to the bad one (the norm's bad update: the
    // batches before it), the updates before it, and the step count they took (the device
    // skipped the rest).
    int64_t batches = 0, updates = 0;
    if (c.bad_update > 0) {
      updates = c.bad_update - 1;
      batches = m.call_updates[size_t(updates)];
    } else {
      batches = std::min<int64_t>(c.good_batches + 1, int64_t(m.call_batches.size()));
      while (updates < int64_t(m.call_updates.size()) &&
             m.call_updates[size_t(updates)] <= c.good_batches)
        ++updates;
    }
    s.rows = s.counted = 0;
    for (int64_t b = 0; b < batches; ++b) {
      s.rows += m.call_batches[size_t(b)].first;
      s.counted += m.call_batches[size_t(b)].second;
    }
    s.batches = batches;
    s.updates = updates;
    m.step = step0 + updates;
  } else {
    m.collect_diagnostics();
  }
  if (m.norm_micro > 0) {
    double norm[2];
    cuda::memcpy_d2h(norm, m.norm_out.p, sizeof norm, m.opt.device);
    s.grad_norm = norm[0] / double(m.norm_micro);
  }
  return s;
}

BatchStats CudaNetwork::evaluate(const Data<float>& d, int64_t batch_size, const StopCheck&) {
  std::unique_lock<RwLock> exclusive(lock_);
  Impl& m = *impl_;
  cuda::DeviceGuard guard(m.opt.device);
  FASTNN_CHECK(batch_size > 0, "batch_size must be positive");
  FASTNN_CHECK(d.X != nullptr && (d.labels != nullptr) != (d.targets != nullptr),
               "evaluate: X and exactly one of labels / targets are required");
  const int64_t in = m.width(0), Cn = m.C();
  m.ensure_rows(std::min(batch_size, std::max<int64_t>(d.n, 1)));
  cuda::check(cudaMemsetAsync(m.counters.p, 0, sizeof(cuda::EngineCounters), m.stream),
              "cudaMemsetAsync (engine counters)");
  BatchStats s;
  for (int64_t r0 = 0; r0 < d.n; r0 += batch_size) {
    const int64_t N = std::min(batch_size, d.n - r0);
    const float* out = m.forward(d.X + r0 * in, N, false);
    m.batch_loss(out, N, d.labels ? d.labels + r0 : nullptr,
                 d.targets ? d.targets + r0 * Cn : nullptr,
                 d.sample_weight ? d.sample_weight + r0 : nullptr, false, false);
    s.rows += N;
    ++s.batches;
    s.counted += accuracy_count(m.loss, N, Cn);
  }
  double pen = 0;
  if (m.any_penalty && s.rows) m.penalty_into(m.pen.d());
  cuda::EngineCounters c = read_counters(m.counters.p, m.host_counters.p, m.stream, "evaluate");
  if (m.any_penalty && s.rows) cuda::memcpy_d2h(&pen, m.pen.p, sizeof pen, m.opt.device);
  s.loss_sum = c.loss_sum + pen * double(s.rows);
  s.correct = c.correct;
  return s;
}

void CudaNetwork::predict(const float* X, int64_t n, int64_t batch_size, float* out,
                          const StopCheck&) {
  std::unique_lock<RwLock> exclusive(lock_);
  Impl& m = *impl_;
  cuda::DeviceGuard guard(m.opt.device);
  FASTNN_CHECK(batch_size > 0, "batch_size must be positive");
  const int64_t in = m.width(0), Cn = m.C();
  m.ensure_rows(std::min(batch_size, std::max<int64_t>(n, 1)));
  for (int64_t r0 = 0; r0 < n; r0 += batch_size) {
    const int64_t N = std::min(batch_size, n - r0);
    const float* y = m.forward(X + r0 * in, N, false);
    float* dst = out + r0 * Cn;
    switch (m.loss) {
      case LossKind::SoftmaxCrossEntropy:
      case LossKind::SampledSoftmax:
        cuda::softmax_rows(y, dst, N, Cn, false, m.stream);
        break;
      case LossKind::BinaryCrossEntropy:
        cuda::act_forward(Act::Sigmoid, 0.0f, y, dst, N * Cn, m.stream);
        break;
      default:
        cuda::check(cudaMemcpyAsync(dst, y, size_t(N * Cn) * sizeof(float),
                                    cudaMemcpyDeviceToDevice, m.stream),
                    "cudaMemcpyAsync (predict output)");
        break;
    }
  }
  cuda::synchronize(m.opt.device);
}

void CudaNetwork::check_labels(const int64_t* labels, int64_t n) {
  if (n <= 0) return;
  std::unique_lock<RwLock> exclusive(lock_);
  Impl& m = *impl_;
  cuda::DeviceGuard guard(m.opt.device);
  cuda::check_labels(labels, n, m.C(), m.labels_check.i64(), m.stream);
  int64_t h[3];
  cuda::memcpy_d2h(h, m.labels_check.p, sizeof h, m.opt.device);
  if (h[0] != 0)
    throw ValueError(label_range_message(h[2], h[1], m.C()));
}

// fastnn._cuda's engines: the GPU one, float32 only.
template <class T>
std::unique_ptr<Engine<T>> create_engine(const EngineConfig& c) {
  if constexpr (!std::is_same<T, float>::value) {
    throw ValueError("dtype: float64 models run on the CPU only; the GPU engine is float32");
  } else {
    FASTNN_CHECK(c.options.device >= 0,
                 "device: the GPU engine needs a CUDA device index, got " +
                     std::to_string(c.options.device));
    CudaOptions o;
    o.device = c.options.device;
    o.precision = fastnn::precision_from_name(c.options.precision);
    o.fused_mlp = c.options.fused_mlp;
    o.graphs = c.options.graphs;
    return std::unique_ptr<Engine<T>>(
        new CudaNetwork(c.input_dim, c.layers, c.loss, c.optim, c.seed, o));
  }
}

template std::unique_ptr<Engine<float>> create_engine<float>(const EngineConfig&);
template std::unique_ptr<Engine<double>> create_engine<double>(const EngineConfig&);

}  // namespace engine
}  // namespace fastnn
