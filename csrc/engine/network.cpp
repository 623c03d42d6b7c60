// The training engine (see network.h).
#include "engine/network.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <numeric>
#include <shared_mutex>
#include <thread>
#include <type_traits>

#include "core/error.h"
#include "cpu/activations.h"
#include "cpu/batchnorm.h"
#include "cpu/dense.h"
#include "cpu/dropout.h"
#include "cpu/gemm.h"
#include "cpu/losses.h"
#include "cpu/optim.h"
#include "cpu/reduce.h"
#include "cpu/sampled_softmax.h"
#include "engine/bf16_weights.h"
#include "engine/engine_common.h"
#include "engine/prepared_weights.h"
#include "engine/row_split.h"
#include "core/parallel.h"

namespace fastnn {
namespace engine {

namespace {

template <class T>
double sum_abs(const std::vector<T>& v) {
  double s = 0;
  for (T x : v) s += std::fabs(double(x));
  return s;
}

template <class T>
double sum_sq(const T* v, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(v[i]) * double(v[i]);
  return s;
}

}  // namespace

template <class T>
struct Network<T>::Impl {
  struct LayerState : LayerPlan {
    std::vector<T> mean, invstd;     // BatchNorm batch statistics (training)
    std::vector<T> running_mean, running_var;
    std::vector<T> acc_gamma, acc_beta;  // BatchNorm gradients before accumulation
  };

  // The buffers of one pass through the network, per layer: its output y and z (rows x
  // width), Dropout's mask, and where its output is in the current pass. Training owns one,
  // with the gradients and the gathered batch; each inference call checks one out of `pool`
  // for its duration, so calls in several threads never write to the same memory.
  struct Workspace {
    bool training = false;
    int64_t rows = 0;  // the buffers hold this many rows
    std::vector<std::vector<T>> y, z;
    std::vector<std::vector<uint8_t>> mask;
    std::vector<const T*> out;
    std::vector<T> d0, d1;  // gradients flowing back; inference: the loss kernels' gradient
    std::vector<T> xbatch, tbatch, wbatch;  // training: the gathered batch
    std::vector<int64_t> lbatch;
    // Inference: the packed Dense kernels this call runs on (held for its length), or null.
    std::shared_ptr<const PackedLayers> packed;
  };

  // An inference workspace from the pool for the length of one call, with the packed kernels.
  class Lease {
   public:
    explicit Lease(Impl& m) : m_(m) {
      {
        std::lock_guard<std::mutex> g(m_.pool_mutex);
        if (m_.pool.empty()) {
          w_.reset(new Workspace);
        } else {
          w_ = std::move(m_.pool.back());
          m_.pool.pop_back();
        }
      }
      // A bf16 network runs on its bf16 weight copies, not on packed FP32 kernels.
      if (!m_.bf16) w_->packed = m_.packed_layers();
    }
    ~Lease() {
      w_->packed.reset();
      // Idle workspaces kept: one per hardware thread covers a thread pool serving the model;
      // a burst of more concurrent calls frees its extra workspaces when it ends.
      static const size_t max_idle = std::max(2u, std::thread::hardware_concurrency());
      std::lock_guard<std::mutex> g(m_.pool_mutex);
      if (m_.pool.size() < max_idle) m_.pool.push_back(std::move(w_));
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Workspace& operator*() { return *w_; }

   private:
    Impl& m_;
    std::unique_ptr<Workspace> w_;
  };

  Network<T>* net;
  LossKind loss;
  uint64_t seed;
  SampledSpec sampled;
  std::vector<T> dw_cols, db_cols;  // sampled softmax: gradients of the touched columns
  std::vector<LayerState> layers;
  int64_t max_width = 0;
  Workspace train;  // train_batches' buffers (under the exclusive lock)
  std::mutex pool_mutex;
  std::vector<std::unique_ptr<Workspace>> pool;  // idle inference workspaces
  PreparedWeights prepared;  // the Dense kernels packed for inference
  std::vector<int64_t> order;
  int64_t epoch_n = 0;
  // Dropout masks are keyed by (seed, optimizer step, batch within the accumulation group,
  // layer): a new mask for every batch, and the same ones again after save / load, since the
  // step count is saved.
  int64_t micro = 0;
  std::vector<fastnn::OptimTensor<T>> otensors;
  std::vector<const T*> grad_ptrs;  // every parameter's gradient, for the global norm
  std::vector<int64_t> grad_sizes;
  std::vector<double> grad_sq;  // each gradient's sum of squares, from the global norm's pass
  std::vector<LayerDiagnostics> diag;
  bool any_penalty = false;
  bool has_batch_norm = false;
  std::unique_ptr<Bf16Weights> bf16;  // precision "bf16": the Dense GEMMs' bf16 weight copies
  std::shared_ptr<GradHook<T>> grad_hook;  // data-parallel training's (engine/grad_hook.h)

  int64_t width(size_t i) const { return net->widths_[i]; }

  // The Dense kernels packed for inference (packed now when the weights changed since).
  std::shared_ptr<const PackedLayers> packed_layers() {
    return prepared.get([&] {
      PackedLayers p(layers.size());
      for (size_t i = 0; i < layers.size(); ++i)
        if (layers[i].spec.kind == LayerKind::Dense)
          p[i] = pack_dense_kernel(net->params_[layers[i].w].value.data(), width(i), width(i + 1));
      return p;
    });
  }

  // Grows w to r rows. Inference needs neither z, the dropout masks nor the batch buffers, and
  // of the gradients only the loss kernels' output.
  void ensure_rows(Workspace& w, int64_t r) const {
    if (w.y.empty()) {
      w.y.resize(layers.size());
      w.z.resize(layers.size());
      w.mask.resize(layers.size());
      w.out.assign(layers.size(), nullptr);
    }
    if (r <= w.rows) return;
    w.rows = r;
    for (size_t i = 0; i < layers.size(); ++i) {
      const LayerState& L = layers[i];
      const size_t n = size_t(r * width(i + 1));
      const bool dropout = L.spec.kind == LayerKind::Dropout;
      if (L.has_output() && (w.training || !dropout)) w.y[i].resize(n);
      if (!w.training) continue;
      if (L.keep_z) w.z[i].resize(n);
      if (dropout) w.mask[i].resize(n);
    }
    if (!w.training) {
      w.d0.resize(size_t(r * width(layers.size())));
      return;
    }
    w.xbatch.resize(size_t(r * width(0)));
    w.tbatch.resize(size_t(r * width(layers.size())));
    w.lbatch.resize(size_t(r));
    w.wbatch.resize(size_t(r));
    w.d0.resize(size_t(r * max_width));
    w.d1.resize(size_t(r * max_width));
  }

  uint64_t dropout_seed(size_t layer) const {
    const int64_t offset = grad_hook ? grad_hook->micro_offset : 0;
    return engine::dropout_seed(seed, net->step_, micro + offset, layer);
  }

  // Runs layers [0, stop) on x (rows N; stop defaults to all) with w's buffers, in training
  // mode when w is the training workspace; each layer's output pointer is left in w.out[i].
  // Inference reads the parameters and running statistics only.
  const T* forward(Workspace& w, const T* x, int64_t N, size_t stop = size_t(-1)) {
    const bool training = w.training;
    for (size_t i = 0; i < layers.size() && i < stop; ++i) {
      LayerState& L = layers[i];
      const int64_t in = width(i), out = width(i + 1);
      T* y = w.y[i].data();
      const T*& y_out = w.out[i];
      switch (L.spec.kind) {
        case LayerKind::Dense: {
          T* z = training && L.keep_z ? w.z[i].data() : nullptr;
          const GemmArgs<T> g = dense_forward_args<T>(
              L.spec, N, in, out, x, net->params_[L.w].value.data(),
              L.b >= 0 ? net->params_[L.b].value.data() : nullptr, y, z);
          if (bf16)
            dense_forward_gemm(bf16.get(), i, g);  // precision "bf16": its own weight copies
          else
            dense_gemm(g, w.packed ? (*w.packed)[i].get() : nullptr);
          y_out = y;
          break;
        }
        case LayerKind::Activation:
          if (L.spec.act == Act::None) {
            y_out = x;
          } else {
            cpu::act_forward(L.spec.act, T(L.spec.act_param), x, y, N * out);
            y_out = y;
          }
          break;
        case LayerKind::Dropout:
          if (training && L.spec.rate > 0) {
            cpu::dropout_forward(x, y, w.mask[i].data(), N * out, L.spec.rate, dropout_seed(i));
            y_out = y;
          } else {
            y_out = x;
          }
          break;
        case LayerKind::BatchNorm: {
          if (training) check_batch_norm_rows(N);
          const fastnn::BatchNormArgs<T> a = batch_norm_args<T>(
              L.spec, x, N, out, net->params_[L.gamma].value.data(),
              net->params_[L.beta].value.data(), L.running_mean.data(), L.running_var.data(),
              y, training ? L.mean.data() : nullptr, training ? L.invstd.data() : nullptr);
          if (training) {
            cpu::batch_norm_forward_train(a);
          } else {
            cpu::batch_norm_forward_infer(a);
          }
          y_out = y;
          break;
        }
      }
      x = y_out;
    }
    return x;
  }

  // Rows [0, N) of x through the network and the loss's link into dst (N x outputs).
  void predict_rows(Workspace& w, const T* x, int64_t N, T* dst) {
    const T* y = forward(w, x, N);
    const int64_t C = width(layers.size());
    switch (loss) {
      case LossKind::SoftmaxCrossEntropy:
      case LossKind::SampledSoftmax: cpu::softmax_rows(y, dst, N, C); break;
      case LossKind::BinaryCrossEntropy: cpu::act_forward(Act::Sigmoid, T(0), y, dst, N * C); break;
      default: std::memcpy(dst, y, size_t(N * C) * sizeof(T)); break;
    }
  }

  // Back through the layers from dL/d(output) in d0; gradients written (accumulate = false) or
  // added (accumulate = true) into the parameters' grad buffers.
  // `top`: the number of layers to go back through, from layer top - 1 down (default: all).
  void backward(const T* x0, int64_t N, bool accumulate, size_t top = size_t(-1)) {
    Workspace& w = train;
    T* dcur = w.d0.data();
    T* dnext = w.d1.data();
    for (size_t ii = std::min(top, layers.size()); ii-- > 0;) {
      LayerState& L = layers[ii];
      const int64_t in = width(ii), out = width(ii + 1);
      const T* x_in = ii == 0 ? x0 : w.out[ii - 1];
      const T* y = w.y[ii].data();
      const bool need_dx = ii > 0;
      switch (L.spec.kind) {
        case LayerKind::Dense: {
          dense_backward_gemms(bf16.get(), dense_backward_args<T>(
              L, N, in, out, x_in, net->params_[L.w].value.data(), dcur, y, w.z[ii].data(),
              net->params_[L.w].grad.data(), L.b >= 0 ? net->params_[L.b].grad.data() : nullptr,
              need_dx ? dnext : nullptr, accumulate));
          break;
        }
        case LayerKind::Activation:
          if (L.spec.act == Act::None || !need_dx) continue;
          if (fastnn::act_grad_from_output_ok(L.spec.act, L.spec.act_param))
            cpu::act_backward_from_output(L.spec.act, T(L.spec.act_param), dcur, y, dnext,
                                          N * out);
          else
            cpu::act_backward(L.spec.act, T(L.spec.act_param), dcur, x_in, dnext, N * out);
          break;
        case LayerKind::Dropout:
          if (L.spec.rate <= 0 || !need_dx) continue;
          cpu::dropout_backward(dcur, w.mask[ii].data(), dnext, N * out, L.spec.rate);
          break;
        case LayerKind::BatchNorm: {
          Param<T>& g = net->params_[L.gamma];
          Param<T>& b = net->params_[L.beta];
          T* dg = accumulate ? L.acc_gamma.data() : g.grad.data();
          T* dbt = accumulate ? L.acc_beta.data() : b.grad.data();
          // dx is needed for the layers below; with none (BatchNorm first) it still goes to
          // the scratch buffer, which nothing reads.
          cpu::batch_norm_backward(dcur, x_in, N, out, g.value.data(), L.mean.data(),
                                   L.invstd.data(), dnext, dg, dbt);
          if (accumulate)
            for (int64_t f = 0; f < out; ++f) {
              g.grad[f] += dg[f];
              b.grad[f] += dbt[f];
            }
          break;
        }
      }
      std::swap(dcur, dnext);
    }
  }

  // Mean loss of the batch (N rows of outputs at `out`), its gradient into g (N x outputs),
  // and the accuracy counts.
  double batch_loss(const T* out, int64_t N, const int64_t* labels, const T* targets,
                    BatchStats& s, T* g) const {
    const int64_t C = width(layers.size());
    double loss = 0;
    switch (loss_kind()) {
      case LossKind::SampledSoftmax:  // evaluated with the full softmax
      case LossKind::SoftmaxCrossEntropy: {
        // evaluate writes the gradient too: the loss and gradient come from one pass
        loss = cpu::softmax_cross_entropy(softmax_xent_args<T>(out, N, C, labels, g));
        s.correct += cpu::count_correct(out, labels, N, C);
        break;
      }
      case LossKind::BinaryCrossEntropy:
        loss = cpu::binary_cross_entropy_with_logits(out, targets, N * C, g);
        s.correct += cpu::binary_correct(out, targets, N * C, 0.0);
        break;
      case LossKind::MeanSquaredError:
        loss = cpu::mse(out, targets, N * C, g);
        break;
      case LossKind::MeanAbsoluteError:
        loss = cpu::mae(out, targets, N * C, g);
        break;
    }
    s.counted += accuracy_count(loss_kind(), N, C);
    return loss;
  }

  LossKind loss_kind() const { return loss; }

  // Row i's loss (the mean over its outputs for the element-wise losses), in double: only
  // needed with sample weights, which the fused kernels do not take.
  double row_loss(const T* z, int64_t C, int64_t label, const T* t) const {
    double l = 0;
    switch (loss) {
      case LossKind::SampledSoftmax:
      case LossKind::SoftmaxCrossEntropy: {
        double m = z[0];
        for (int64_t c = 1; c < C; ++c) m = std::max(m, double(z[c]));
        double s = 0;
        for (int64_t c = 0; c < C; ++c) s += std::exp(double(z[c]) - m);
        return std::log(s) + m - double(z[label]);
      }
      case LossKind::BinaryCrossEntropy:
        for (int64_t c = 0; c < C; ++c) {
          const double x = z[c], y = t[c];
          l += std::max(x, 0.0) - x * y + std::log1p(std::exp(-std::fabs(x)));
        }
        return l / double(C);
      case LossKind::MeanSquaredError:
        for (int64_t c = 0; c < C; ++c) l += (double(z[c]) - t[c]) * (double(z[c]) - t[c]);
        return l / double(C);
      case LossKind::MeanAbsoluteError:
        for (int64_t c = 0; c < C; ++c) l += std::fabs(double(z[c]) - t[c]);
        return l / double(C);
    }
    return l;
  }

  // Sample weights on a batch whose mean loss and gradient (grad, when not null) the kernel
  // gave: the loss becomes sum_i w_i l_i / N and gradient row i is scaled by w_i.
  double apply_sample_weights(const T* out, int64_t N, const int64_t* labels, const T* targets,
                              const T* w, T* grad) const {
    const int64_t C = width(layers.size());
    double total = 0;
    for (int64_t i = 0; i < N; ++i) {
      if (w[i] != T(0))
        total += double(w[i]) * row_loss(out + i * C, C, labels ? labels[i] : 0,
                                         targets ? targets + i * C : nullptr);
      if (grad) {
        T* g = grad + i * C;
        for (int64_t c = 0; c < C; ++c) g[c] *= w[i];
      }
    }
    return total / double(N);
  }

  // Sampled softmax on the last Dense layer: the layers below run forward, the kernel gives the
  // loss, dL/dh (into d0) and the gradients of the touched columns of W and b, which go into
  // the full-size gradients (zeroed first, or added to when accumulating); then the layers
  // below run backward. Returns the mean loss.
  double sampled_step(const T* x0, int64_t N, const int64_t* labels, int64_t micro_index,
                      bool accumulate) {
    const size_t last = layers.size() - 1;
    LayerState& L = layers[last];
    const T* h = forward(train, x0, N, last);
    const int64_t D = width(last), C = width(last + 1);
    Param<T>& w = net->params_[L.w];
    fastnn::SampledSoftmaxArgs<T> a;
    a.h = h;
    a.W = w.value.data();
    a.b = L.b >= 0 ? net->params_[L.b].value.data() : nullptr;
    a.labels = labels;
    a.N = N;
    a.D = D;
    a.C = C;
    a.num_sampled = sampled.num_sampled;
    a.seed = sampled_seed(seed, net->step_, micro_index);
    a.sampler = sampled.log_uniform ? fastnn::Sampler::LogUniform : fastnn::Sampler::Uniform;
    a.unique = sampled.unique;
    a.subtract_log_q = sampled.subtract_log_q;
    a.remove_accidental_hits = sampled.remove_accidental_hits;
    a.correct_true_logit = sampled.correct_true_logit;
    const fastnn::SampledPlan plan = fastnn::sampling::sampled_softmax_plan(a);
    const int64_t k = int64_t(plan.cols.size());
    dw_cols.resize(size_t(D * k));
    db_cols.resize(size_t(k));
    const double loss = cpu::sampled_softmax_cross_entropy(
        a, plan, train.d0.data(), dw_cols.data(), a.b ? db_cols.data() : nullptr);
    if (!accumulate) std::fill(w.grad.begin(), w.grad.end(), T(0));
    for (int64_t r = 0; r < D; ++r)
      for (int64_t j = 0; j < k; ++j) w.grad[size_t(r * C + plan.cols[j])] += dw_cols[size_t(r * k + j)];
    if (L.b >= 0) {
      Param<T>& b = net->params_[L.b];
      if (!accumulate) std::fill(b.grad.begin(), b.grad.end(), T(0));
      for (int64_t j = 0; j < k; ++j) b.grad[size_t(plan.cols[j])] += db_cols[size_t(j)];
    }
    if (std::isfinite(loss)) backward(x0, N, accumulate, last);
    return loss;
  }

  double penalty() const {
    if (!any_penalty) return 0.0;
    double p = 0;
    for (const Param<T>& q : net->params_) {
      if (q.l1 != 0) p += q.l1 * sum_abs(q.value);
      if (q.l2 != 0) p += q.l2 * sum_sq(q.value.data(), q.size());
    }
    return p;
  }

  // One optimizer update from gradients summed over `micro` batches (each a batch mean).
  void update(int64_t micro, double clipnorm, BatchStats& s, bool diagnose) {
    if (grad_hook) run_grad_hook(*grad_hook, net->params_, micro);
    double scale = 1.0 / double(micro);
    // The global norm costs a pass over every gradient: taken for clipping, and on the slice's
    // last update for the diagnostics (a non-finite gradient otherwise shows up as a
    // non-finite loss on the next batch, which stops training all the same).
    if (clipnorm > 0 || diagnose) {
      grad_sq.resize(grad_ptrs.size());
      const double norm = std::sqrt(cpu::sums_of_squares(grad_ptrs.data(), grad_sizes.data(),
                                                         int64_t(grad_ptrs.size()),
                                                         grad_sq.data())) *
                          scale;
      s.grad_norm = norm;
      if (!std::isfinite(norm)) {
        net->nonfinite_ = true;
        return;
      }
      if (clipnorm > 0 && norm > clipnorm) scale *= clipnorm / (norm + 1e-6);
    }
    if (diagnose) gather_diagnostics(scale);

    ++net->step_;
    const OptimSpec& o = net->optim_;
    const int64_t count = int64_t(otensors.size());
    switch (o.kind) {
      case OptimKind::Sgd:
        cpu::sgd_step(otensors.data(), count, sgd_options(o, net->step_, scale));
        break;
      case OptimKind::Adam:
      case OptimKind::AdamW:
        cpu::adam_step(otensors.data(), count, adam_options(o, net->step_, scale));
        break;
      case OptimKind::Adagrad:
        cpu::adagrad_step(otensors.data(), count, adagrad_options(o, net->step_, scale));
        break;
      case OptimKind::RmsProp:
        cpu::rmsprop_step(otensors.data(), count, rmsprop_options(o, scale));
        break;
    }
    if (bf16) bf16->invalidate();  // the bf16 weight copies are stale after a step
    ++s.updates;
  }

  // Per Dense layer: kernel gradient norm, |lr * g| / |W| (the size of an SGD-like step next
  // to the weights), and the fraction of ReLU units with no positive output in the batch.
  // The gradients' sums of squares come from update's norm pass (grad_sq); the kernels' values
  // take one more parallel pass (a sequential one over a wide network's 6M weights cost ~10 ms,
  // a sixth of its training step, on every slice's last batch).
  void gather_diagnostics(double scale) {
    const double lr = net->optim_.lr;
    std::vector<const T*> values;
    std::vector<int64_t> sizes;
    for (const LayerState& L : layers)
      if (L.spec.kind == LayerKind::Dense) {
        values.push_back(net->params_[L.w].value.data());
        sizes.push_back(net->params_[L.w].size());
      }
    std::vector<double> value_sq(values.size());
    cpu::sums_of_squares(values.data(), sizes.data(), int64_t(values.size()), value_sq.data());
    size_t k = 0;
    for (size_t i = 0; i < layers.size(); ++i) {
      const LayerState& L = layers[i];
      if (L.spec.kind != LayerKind::Dense) continue;
      const double g = std::sqrt(grad_sq[size_t(L.w)]) * scale;
      const double v = std::sqrt(value_sq[k++]);
      add_update_diagnostics(diag[i], g, v, lr);
    }
  }

  void count_dead_units(int64_t N) {
    for (size_t i = 0; i < layers.size(); ++i) {
      LayerState& L = layers[i];
      if (L.spec.kind != LayerKind::Dense || L.spec.act != Act::Relu) continue;
      const int64_t out = width(i + 1);
      std::vector<uint8_t> alive(size_t(out), 0);
      for (int64_t r = 0; r < N; ++r) {
        const T* y = train.y[i].data() + r * out;
        for (int64_t j = 0; j < out; ++j) alive[j] |= y[j] > T(0);
      }
      int64_t dead = 0;
      for (uint8_t a : alive) dead += !a;
      add_dead_units(diag[i], dead, out);
    }
  }
};

template <class T>
Network<T>::Network(int64_t input_dim, std::vector<LayerSpec> layers, LossKind loss,
                    OptimSpec optim, uint64_t seed, SampledSpec sampled)
    : impl_(new Impl), input_dim_(input_dim), optim_(optim) {
  check_network_args(input_dim, layers);
  Impl& m = *impl_;
  m.net = this;
  m.loss = loss;
  m.seed = seed;
  m.sampled = sampled;
  m.train.training = true;
  if (loss == LossKind::SampledSoftmax) {
    const LayerSpec& last = layers.back();
    FASTNN_CHECK(last.kind == LayerKind::Dense && last.act == Act::None,
                 "sampled softmax: the last layer must be a Dense layer giving the logits");
    FASTNN_CHECK(sampled.num_sampled >= 1, "num_sampled: expected at least 1");
  }
  const NetworkPlan plan = plan_network(input_dim, layers);
  widths_ = plan.widths;
  m.max_width = plan.max_width;
  m.any_penalty = plan.any_penalty;
  m.has_batch_norm = plan.has_batch_norm;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    typename Impl::LayerState L;
    static_cast<LayerPlan&>(L) = plan.layers[i];
    if (L.spec.kind == LayerKind::BatchNorm) {
      const size_t out = size_t(widths_[i + 1]);
      L.running_mean.assign(out, T(0));
      L.running_var.assign(out, T(1));
      L.mean.resize(out);
      L.invstd.resize(out);
      L.acc_gamma.resize(out);
      L.acc_beta.resize(out);
    }
    m.layers.push_back(std::move(L));
  }
  m.diag.resize(m.layers.size());
  this->layout_ = engine_layout(plan, optim.kind);

  // Buffers never move after this: the optimizer's tensor list points into them.
  const int states = optim_states(optim.kind);
  for (const ParamPlan& q : plan.params) {
    Param<T> p;
    p.name = q.name;
    p.shape = q.shape;
    p.l1 = q.l1;
    p.l2 = q.l2;
    const size_t n = size_t(p.size());
    p.value.assign(n, T(q.init));
    p.grad.assign(n, T(0));
    for (int k = 0; k < states; ++k) p.state[k].assign(n, T(0));
    if (optim.kind == OptimKind::Adagrad)
      std::fill(p.state[0].begin(), p.state[0].end(), T(optim.initial_accumulator_value));
    params_.push_back(std::move(p));
  }
  for (Param<T>& p : params_) {
    T* state[3] = {p.state[0].data(), p.state[1].data(), p.state[2].data()};
    m.otensors.push_back(
        optim_tensor<T>(p.value.data(), p.grad.data(), state, states, p.size(), p.l1, p.l2));
    m.grad_ptrs.push_back(p.grad.data());
    m.grad_sizes.push_back(p.size());
  }
}

template <class T>
Network<T>::~Network() = default;

template <class T>
std::vector<std::vector<T>*> Network<T>::buffers() {
  std::vector<std::vector<T>*> out;
  for (auto& L : impl_->layers)
    if (L.spec.kind == LayerKind::BatchNorm) {
      out.push_back(&L.running_mean);
      out.push_back(&L.running_var);
    }
  return out;
}

template <class T>
bool Network<T>::set_grad_hook(std::shared_ptr<GradHook<T>> hook) {
  impl_->grad_hook = std::move(hook);
  return true;
}

template <class T>
void Network<T>::begin_epoch(int64_t n, int64_t epoch, bool shuffle) {
  std::unique_lock<RwLock> exclusive(lock_);
  Impl& m = *impl_;
  m.order.resize(size_t(n));
  m.epoch_n = n;
  epoch_order(m.order.data(), n, m.seed, epoch, shuffle);
}

template <class T>
BatchStats Network<T>::train_batches(const Data<T>& d, int64_t batch_size, int64_t first,
                                     int64_t last, int64_t accumulate_steps, double clipnorm) {
  std::unique_lock<RwLock> exclusive(lock_);
  Impl& m = *impl_;
  m.prepared.invalidate();  // the weights change below
  typename Impl::Workspace& w = m.train;
  check_batch_args(d.n, m.epoch_n, batch_size, accumulate_steps);
  const int64_t in = input_dim_, C = output_dim();
  const int64_t nbatches = slice_batches(d.n, batch_size, first, last, accumulate_steps);
  FASTNN_CHECK(!(d.sample_weight && m.loss == LossKind::SampledSoftmax),
               "sample_weight: not available with the sampled softmax");
  m.ensure_rows(w, std::min(batch_size, d.n));
  nonfinite_ = false;
  BatchStats s;
  int64_t micro = 0;  // batches summed into the gradients since the last update
  for (int64_t bi = first; bi < last; ++bi) {
    const int64_t r0 = bi * batch_size, N = std::min(batch_size, d.n - r0);
    const int64_t* idx = m.order.data() + r0;
    if (skip_batch(N, batch_size, m.has_batch_norm, nbatches)) {
      if (micro > 0) {
        m.update(micro, clipnorm, s, true);
        micro = 0;
        if (nonfinite_) return s;
      }
      continue;
    }
    for (int64_t r = 0; r < N; ++r) {
      std::memcpy(w.xbatch.data() + r * in, d.X + idx[r] * in, size_t(in) * sizeof(T));
      if (d.labels) w.lbatch[size_t(r)] = d.labels[idx[r]];
      if (d.targets)
        std::memcpy(w.tbatch.data() + r * C, d.targets + idx[r] * C, size_t(C) * sizeof(T));
      if (d.sample_weight) w.wbatch[size_t(r)] = d.sample_weight[idx[r]];
    }
    m.micro = micro;
    double loss;
    if (m.loss == LossKind::SampledSoftmax) {
      loss = m.sampled_step(w.xbatch.data(), N, w.lbatch.data(), micro, micro > 0);
    } else {
      const T* out = m.forward(w, w.xbatch.data(), N);
      loss = m.batch_loss(out, N, w.lbatch.data(), w.tbatch.data(), s, w.d0.data());
      if (d.sample_weight)
        loss = m.apply_sample_weights(out, N, d.labels ? w.lbatch.data() : nullptr,
                                      d.targets ? w.tbatch.data() : nullptr, w.wbatch.data(),
                                      w.d0.data());
    }
    loss += m.penalty();
    if (!std::isfinite(loss)) {
      nonfinite_ = true;
      s.loss_sum += loss * double(N);
      s.rows += N;
      ++s.batches;
      return s;
    }
    if (m.loss != LossKind::SampledSoftmax) m.backward(w.xbatch.data(), N, micro > 0);
    ++micro;
    s.loss_sum += loss * double(N);
    s.rows += N;
    ++s.batches;
    // An update after every accumulate_steps batches, and after the epoch's last batch.
    const bool last_batch = bi == nbatches - 1;
    if (micro == accumulate_steps || last_batch) {
      m.update(micro, clipnorm, s, bi == last - 1);
      micro = 0;
      if (nonfinite_) return s;
    }
    if (bi == last - 1) m.count_dead_units(N);
  }
  return s;
}

template <class T>
BatchStats Network<T>::evaluate(const Data<T>& d, int64_t batch_size, const StopCheck& stop) {
  FASTNN_CHECK(batch_size > 0, "batch_size must be positive");
  std::shared_lock<RwLock> shared(lock_);
  Impl& m = *impl_;
  typename Impl::Lease lease(m);
  typename Impl::Workspace& w = *lease;
  const int64_t in = input_dim_, C = output_dim();
  m.ensure_rows(w, std::min(batch_size, std::max<int64_t>(d.n, 1)));
  BatchStats s;
  for (int64_t r0 = 0; r0 < d.n; r0 += batch_size) {
    if (stop && stop()) throw Interrupted();
    const int64_t N = std::min(batch_size, d.n - r0);
    const T* out = m.forward(w, d.X + r0 * in, N);
    const int64_t* labels = d.labels ? d.labels + r0 : nullptr;
    const T* targets = d.targets ? d.targets + r0 * C : nullptr;
    double loss = m.batch_loss(out, N, labels, targets, s, w.d0.data());
    if (d.sample_weight)
      loss = m.apply_sample_weights(out, N, labels, targets, d.sample_weight + r0, nullptr);
    s.loss_sum += loss * double(N);
    s.rows += N;
    ++s.batches;
  }
  if (s.rows) s.loss_sum += m.penalty() * double(s.rows);
  return s;
}

template <class T>
void Network<T>::predict(const T* X, int64_t n, int64_t batch_size, T* out,
                         const StopCheck& stop) {
  FASTNN_CHECK(batch_size > 0, "batch_size must be positive");
  std::shared_lock<RwLock> shared(lock_);
  Impl& m = *impl_;
  const int64_t in = input_dim_, C = output_dim();
  const int64_t rows = std::min(batch_size, std::max<int64_t>(n, 1));
  // One workspace per row task, taken and sized here: nothing allocates inside the tasks.
  const int tasks = row_tasks(rows, get_num_threads());
  const int64_t chunk = tasks > 1 ? row_chunk(rows, tasks) : rows;
  std::vector<std::unique_ptr<typename Impl::Lease>> leases;
  for (int t = 0; t < tasks; ++t) {
    leases.emplace_back(new typename Impl::Lease(m));
    m.ensure_rows(**leases.back(), chunk);
  }
  for (int64_t r0 = 0; r0 < n; r0 += batch_size) {
    if (stop && stop()) throw Interrupted();
    const int64_t N = std::min(batch_size, n - r0);
    const int k = std::min(tasks, row_tasks(N, tasks));
    if (k <= 1) {
      m.predict_rows(**leases[0], X + r0 * in, N, out + r0 * C);
      continue;
    }
    // Each task pulls chunks until none is left (row_split.h: a late thread is not waited for).
    const int64_t step = std::min(row_chunk(N, k), chunk), chunks = (N + step - 1) / step;
    std::atomic<int64_t> next{0};
    parallel_for(k, [&](int t) {
      for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
        const int64_t a = c * step, b = std::min(N, a + step);
        m.predict_rows(**leases[size_t(t)], X + (r0 + a) * in, b - a, out + (r0 + a) * C);
      }
    });
  }
}

template <class T>
std::vector<LayerDiagnostics> Network<T>::take_diagnostics() {
  std::unique_lock<RwLock> exclusive(lock_);
  return take_all(impl_->diag);
}

template <class T>
void Network<T>::check_labels(const int64_t* labels, int64_t n) {
  check_label_range(labels, n, output_dim());
}

template <class T>
std::vector<T>& Network<T>::array(Slot kind, size_t i) {
  const auto at = this->layout_.locate(kind, i);
  switch (kind) {
    case Slot::Params: return params_[at.first].value;
    case Slot::Grads: return params_[at.first].grad;
    case Slot::State: return params_[at.first].state[at.second];
    case Slot::Buffers: break;
  }
  return *buffers()[at.first];
}

template <class T>
void Network<T>::read(Slot kind, size_t i, T* host) {
  const std::vector<T>& a = array(kind, i);
  std::memcpy(host, a.data(), a.size() * sizeof(T));
}

template <class T>
void Network<T>::write(Slot kind, size_t i, const T* host) {
  std::vector<T>& a = array(kind, i);
  std::memcpy(a.data(), host, a.size() * sizeof(T));
  impl_->prepared.invalidate();
  if (kind == Slot::Params && impl_->bf16) impl_->bf16->invalidate();
}

template <class T>
void Network<T>::use_bf16() {
  FASTNN_CHECK((std::is_same<T, float>::value),
               "precision: 'bf16' runs in float32 models (this one is float64)");
  impl_->bf16.reset(new Bf16Weights(impl_->layers.size()));
}

template class Network<float>;
template class Network<double>;

// fastnn._C's engines: the CPU one, in either precision.
template <class T>
std::unique_ptr<Engine<T>> create_engine(const EngineConfig& c) {
  FASTNN_CHECK(c.options.device == -1,
               "device: the CPU engine runs on the host (device -1), got " +
                   std::to_string(c.options.device));
  const Precision p = precision_from_name(c.options.precision);
  FASTNN_CHECK(p != Precision::TF32,
               "precision: 'tf32' runs on a GPU only (tensor cores): the CPU engine computes in "
               "fp32 or bf16");
  std::unique_ptr<Network<T>> net(
      new Network<T>(c.input_dim, c.layers, c.loss, c.optim, c.seed, c.sampled));
  if (p == Precision::BF16) net->use_bf16();
  return net;
}

template std::unique_ptr<Engine<float>> create_engine<float>(const EngineConfig&);
template std::unique_ptr<Engine<double>> create_engine<double>(const EngineConfig&);

}  // namespace engine
}  // namespace fastnn
