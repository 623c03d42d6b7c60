// What the CPU and GPU training engines share (see engine_common.h).
#include "engine/engine_common.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>

#include "core/error.h"

namespace fastnn {
namespace engine {

// ------------------------------------------------------------------ random keys

uint64_t dropout_seed(uint64_t seed, int64_t step, int64_t micro, size_t layer) {
  const uint64_t batch = mix64(uint64_t(step)) ^ (uint64_t(micro) << 20);
  return mix64(mix64(seed ^ 0xD1B54A32D192ED03ull) + batch * 0x9E3779B97F4A7C15ull +
               uint64_t(layer));
}

uint64_t sampled_seed(uint64_t seed, int64_t step, int64_t micro) {
  return mix64(mix64(seed ^ 0x5A3D9E8F1B2C4D6Eull) + uint64_t(step) * 0x9E3779B97F4A7C15ull +
               uint64_t(micro));
}

void epoch_order(int64_t* order, int64_t n, uint64_t seed, int64_t epoch, bool shuffle) {
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  if (!shuffle) return;
  uint64_t state = mix64(seed ^ mix64(uint64_t(epoch) + 0x5851F42D4C957F2Dull));
  for (int64_t i = n - 1; i > 0; --i) {
    state = mix64(state);
    // Multiply-shift maps the 64 random bits onto [0, i]; the bias is below 2^-40 here.
    const int64_t j = int64_t((unsigned __int128)(state) * uint64_t(i + 1) >> 64);
    std::swap(order[i], order[j]);
  }
}

// ------------------------------------------------------------------ names

namespace {

template <class E>
struct Named {
  const char* name;
  E value;
};

// The value called `name` among `names`; ValueError listing them under `what` otherwise.
template <class E, size_t N>
E from_name(const Named<E> (&names)[N], const std::string& name, const char* what) {
  std::string all;
  for (const Named<E>& n : names) {
    if (name == n.name) return n.value;
    all += all.empty() ? n.name : std::string(", ") + n.name;
  }
  throw ValueError(std::string(what) + ": expected one of " + all + ", got '" + name + "'");
}

constexpr Named<LossKind> kLosses[] = {
    {"softmax_cross_entropy", LossKind::SoftmaxCrossEntropy},
    {"binary_cross_entropy", LossKind::BinaryCrossEntropy},
    {"mse", LossKind::MeanSquaredError},
    {"mae", LossKind::MeanAbsoluteError},
    {"sampled_softmax", LossKind::SampledSoftmax},
};
constexpr Named<OptimKind> kOptimizers[] = {
    {"sgd", OptimKind::Sgd},         {"adam", OptimKind::Adam},
    {"adamw", OptimKind::AdamW},     {"adagrad", OptimKind::Adagrad},
    {"rmsprop", OptimKind::RmsProp},
};

}  // namespace

LossKind loss_from_name(const std::string& name) { return from_name(kLosses, name, "loss"); }

OptimKind optim_from_name(const std::string& name) {
  return from_name(kOptimizers, name, "optimizer");
}

// ------------------------------------------------------------------ the network plan

bool dense_grad_from_output(Act a) {
  switch (a) {
    case Act::None: case Act::Relu: case Act::Sigmoid: case Act::Tanh: case Act::Step:
    case Act::LeakyRelu: case Act::Elu:
      return true;
    default:
      return false;
  }
}

bool dense_keeps_z(const LayerSpec& s) {
  return !dense_grad_from_output(s.act) ||
         ((s.act == Act::LeakyRelu || s.act == Act::Elu) && s.act_param < 0);
}

bool LayerPlan::has_output() const {
  const LayerKind k = spec.kind;
  return k == LayerKind::Dense || k == LayerKind::BatchNorm ||
         (k == LayerKind::Activation && spec.act != Act::None) || k == LayerKind::Dropout;
}

void check_network_args(int64_t input_dim, const std::vector<LayerSpec>& layers) {
  FASTNN_CHECK(input_dim > 0, "input_dim: expected a positive number of features");
  FASTNN_CHECK(!layers.empty(), "layers: a model needs at least one layer");
}

NetworkPlan plan_network(int64_t input_dim, const std::vector<LayerSpec>& layers) {
  check_network_args(input_dim, layers);
  NetworkPlan p;
  p.widths.push_back(input_dim);
  int dense_count = 0, bn_count = 0;
  for (const LayerSpec& s : layers) {
    LayerPlan L;
    L.spec = s;
    const int64_t in = p.widths.back();
    int64_t out = in;
    switch (s.kind) {
      case LayerKind::Dense: {
        FASTNN_CHECK(s.units > 0, "Dense: units must be positive");
        out = s.units;
        const std::string base = "dense_" + std::to_string(dense_count++);
        ParamPlan w;
        w.name = base + "/kernel";
        w.shape = ParamShape::matrix(in, out);
        w.l1 = s.l1;
        w.l2 = s.l2;
        L.w = int(p.params.size());
        p.params.push_back(std::move(w));
        if (s.use_bias) {
          ParamPlan b;
          b.name = base + "/bias";
          b.shape = ParamShape::vec(out);
          L.b = int(p.params.size());
          p.params.push_back(std::move(b));
        }
        L.keep_z = dense_keeps_z(s);
        if (s.l1 != 0 || s.l2 != 0) p.any_penalty = true;
        break;
      }
      case LayerKind::Activation:
        break;
      case LayerKind::Dropout:
        FASTNN_CHECK(s.rate >= 0 && s.rate < 1, "Dropout: rate must be in [0, 1)");
        break;
      case LayerKind::BatchNorm: {
        const std::string base = "batch_norm_" + std::to_string(bn_count++);
        ParamPlan g, b;
        g.name = base + "/gamma";
        b.name = base + "/beta";
        g.shape = b.shape = ParamShape::vec(out);
        g.init = 1.0f;
        L.gamma = int(p.params.size());
        p.params.push_back(std::move(g));
        L.beta = int(p.params.size());
        p.params.push_back(std::move(b));
        p.has_batch_norm = true;
        break;
      }
    }
    p.widths.push_back(out);
    p.max_width = std::max(p.max_width, out);
    p.layers.push_back(std::move(L));
  }
  p.max_width = std::max(p.max_width, input_dim);
  return p;
}

// ------------------------------------------------------------------ batches

void check_batch_args(int64_t n, int64_t epoch_n, int64_t batch_size, int64_t accumulate_steps) {
  FASTNN_CHECK(n == epoch_n, "train_batches: call begin_epoch with the data size first");
  FASTNN_CHECK(batch_size > 0 && accumulate_steps > 0,
               "batch_size and accumulate_steps must be positive");
}

int64_t slice_batches(int64_t n, int64_t batch_size, int64_t first, int64_t& last,
                      int64_t accumulate_steps) {
  const int64_t nbatches = (n + batch_size - 1) / batch_size;
  last = std::min(last, nbatches);
  // Gradients summed over an accumulation group live only within one call: a slice must hold
  // whole groups, or end the epoch.
  FASTNN_CHECK(first >= 0 && first <= last && (first % accumulate_steps == 0) &&
                   ((last - first) % accumulate_steps == 0 || last == nbatches),
               "train_batches: slices must hold whole accumulation groups");
  return nbatches;
}

int64_t accuracy_count(LossKind loss, int64_t N, int64_t C) {
  switch (loss) {
    case LossKind::SoftmaxCrossEntropy:
    case LossKind::SampledSoftmax:
      return N;
    case LossKind::BinaryCrossEntropy:
      return N * C;
    default:
      return 0;
  }
}

void check_batch_norm_rows(int64_t N) {
  if (N < 2)
    throw ValueError("BatchNorm: training needs at least 2 samples per batch, got a "
                     "batch of 1 (choose a batch_size that leaves no batch of 1)");
}

// ------------------------------------------------------------------ the optimizer

EngineLayout engine_layout(const NetworkPlan& plan, OptimKind optim) {
  EngineLayout l;
  for (const ParamPlan& p : plan.params) {
    l.names.push_back(p.name);
    l.params.push_back(p.shape);
  }
  for (size_t i = 0; i < plan.layers.size(); ++i)
    if (plan.layers[i].spec.kind == LayerKind::BatchNorm)
      for (int k = 0; k < 2; ++k) l.buffers.push_back(ParamShape::vec(plan.widths[i + 1]));
  l.states = optim_states(optim);
  return l;
}

std::vector<ParamShape> EngineLayout::shapes(Slot kind) const {
  if (kind == Slot::Buffers) return buffers;
  if (kind != Slot::State) return params;
  std::vector<ParamShape> out;
  for (const ParamShape& p : params) out.insert(out.end(), size_t(states), p);
  return out;
}

std::pair<size_t, int> EngineLayout::locate(Slot kind, size_t i) const {
  const size_t count = kind == Slot::Buffers ? buffers.size()
                       : kind == Slot::State ? params.size() * size_t(states)
                                             : params.size();
  if (i >= count) throw ValueError("array " + std::to_string(i) + ": out of range");
  if (kind == Slot::State) return {i / size_t(states), int(i % size_t(states))};
  return {i, 0};
}

std::string label_range_message(int64_t label, int64_t position, int64_t classes) {
  return "y: class labels must be in [0, " + std::to_string(classes) + "), got " +
         std::to_string(label) + " at position " + std::to_string(position);
}

void check_label_range(const int64_t* labels, int64_t n, int64_t classes) {
  for (int64_t i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= classes)
      throw ValueError(label_range_message(labels[i], i, classes));
}

int optim_states(OptimKind kind) {
  return kind == OptimKind::Sgd || kind == OptimKind::Adagrad ? 1 : 3;
}

namespace {

// An optimizer's options with every hyper-parameter it lists (core/ops/optim.h) taken from the
// OptimSpec field of the same name and type.
template <class Options>
Options options_from(const OptimSpec& spec) {
  Options o;
  for_each_field(o, [&](const char* name, auto& member) {
    for_each_optim_field(spec, [&](const char* key, const auto& value) {
      if constexpr (std::is_same_v<std::decay_t<decltype(member)>, std::decay_t<decltype(value)>>)
        if (std::strcmp(name, key) == 0) member = value;
    });
  });
  return o;
}

}  // namespace

fastnn::SgdOptions sgd_options(const OptimSpec& o, int64_t step, double scale) {
  auto so = options_from<fastnn::SgdOptions>(o);
  so.first_step = step == 1;
  so.grad_scale = scale;
  return so;
}

fastnn::AdamOptions adam_options(const OptimSpec& o, int64_t step, double scale) {
  auto ao = options_from<fastnn::AdamOptions>(o);
  ao.decoupled = o.kind == OptimKind::AdamW;
  ao.amsgrad = o.amsgrad;
  ao.step = step;
  ao.grad_scale = scale;
  return ao;
}

fastnn::AdagradOptions adagrad_options(const OptimSpec& o, int64_t step, double scale) {
  auto ag = options_from<fastnn::AdagradOptions>(o);
  ag.step = step;
  ag.grad_scale = scale;
  return ag;
}

fastnn::RmspropOptions rmsprop_options(const OptimSpec& o, double scale) {
  auto ro = options_from<fastnn::RmspropOptions>(o);
  ro.centered = o.centered;
  ro.grad_scale = scale;
  return ro;
}

}  // namespace engine
}  // namespace fastnn
