// The engines' shared binding pieces (see engine_specs.h).
#include "bindings/engine_specs.h"

#include <pybind11/stl.h>

#include <string>

#include "core/error.h"

namespace py = pybind11;

namespace fastnn {
namespace engine {

namespace {

double num(const py::dict& d, const char* key, double fallback) {
  return d.contains(key) ? py::cast<double>(d[key]) : fallback;
}

template <class V>
void set_if(const py::dict& d, const char* key, V& v) {
  if (d.contains(key)) v = py::cast<V>(d[key]);
}

}  // namespace

LayerSpec layer_spec(const py::dict& d) {
  LayerSpec s;
  const std::string kind = py::cast<std::string>(d["kind"]);
  if (kind == "dense") s.kind = LayerKind::Dense;
  else if (kind == "activation") s.kind = LayerKind::Activation;
  else if (kind == "dropout") s.kind = LayerKind::Dropout;
  else if (kind == "batch_norm") s.kind = LayerKind::BatchNorm;
  else throw ValueError("layer kind: expected dense, activation, dropout or batch_norm, got '" +
                        kind + "'");
  set_if(d, "units", s.units);
  if (d.contains("activation")) s.act = act_from_name(py::cast<std::string>(d["activation"]));
  s.act_param = num(d, "act_param", 0.0);
  set_if(d, "use_bias", s.use_bias);
  s.l1 = num(d, "l1", 0.0);
  s.l2 = num(d, "l2", 0.0);
  s.rate = num(d, "rate", 0.0);
  s.momentum = num(d, "momentum", 0.1);
  s.eps = num(d, "eps", 1e-5);
  return s;
}

std::vector<LayerSpec> layer_specs(const py::list& layers) {
  std::vector<LayerSpec> specs;
  for (const auto& l : layers) specs.push_back(layer_spec(py::cast<py::dict>(l)));
  return specs;
}

OptimSpec optim_spec(const py::dict& d) {
  OptimSpec o;
  o.kind = optim_from_name(py::cast<std::string>(d["kind"]));
  o.lr = num(d, "lr", o.lr);
  o.momentum = num(d, "momentum", o.momentum);
  o.dampening = num(d, "dampening", o.dampening);
  o.weight_decay = num(d, "weight_decay", o.weight_decay);
  set_if(d, "nesterov", o.nesterov);
  o.beta1 = num(d, "beta1", o.beta1);
  o.beta2 = num(d, "beta2", o.beta2);
  o.eps = num(d, "eps", o.eps);
  set_if(d, "amsgrad", o.amsgrad);
  o.lr_decay = num(d, "lr_decay", o.lr_decay);
  o.initial_accumulator_value = num(d, "initial_accumulator_value", o.initial_accumulator_value);
  o.alpha = num(d, "alpha", o.alpha);
  set_if(d, "centered", o.centered);
  return o;
}

SampledSpec sampled_spec(const py::dict& d) {
  SampledSpec s;
  set_if(d, "num_sampled", s.num_sampled);
  if (d.contains("sampler")) s.log_uniform = py::cast<std::string>(d["sampler"]) != "uniform";
  set_if(d, "unique", s.unique);
  set_if(d, "subtract_log_q", s.subtract_log_q);
  set_if(d, "remove_accidental_hits", s.remove_accidental_hits);
  set_if(d, "correct_true_logit", s.correct_true_logit);
  return s;
}

py::dict stats_dict(const BatchStats& s, bool nonfinite) {
  py::dict d;
  d["loss_sum"] = s.loss_sum;
  d["correct"] = s.correct;
  d["counted"] = s.counted;
  d["rows"] = s.rows;
  d["batches"] = s.batches;
  d["updates"] = s.updates;
  d["grad_norm"] = s.grad_norm;
  d["nonfinite"] = nonfinite;
  return d;
}

}  // namespace engine
}  // namespace fastnn
