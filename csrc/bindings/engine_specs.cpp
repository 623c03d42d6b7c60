// The engine description dictionaries, parsed (see engine_specs.h).
#include "bindings/engine_specs.h"

#include <pybind11/stl.h>

#include <string>
#include <type_traits>

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
  for (const auto& item : d) {
    const std::string key = py::cast<std::string>(item.first);
    if (key == "kind") continue;
    bool known = false;
    for_each_optim_field(o, [&](const char* name, auto& member) {
      if (key != name) return;
      member = py::cast<std::decay_t<decltype(member)>>(item.second);
      known = true;
    });
    if (!known) throw ValueError("optimizer: unknown field '" + key + "'");
  }
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

EngineOptions engine_options(const py::dict& d) {
  EngineOptions o;
  for (const auto& item : d) {
    const std::string key = py::cast<std::string>(item.first);
    if (key == "device") o.device = py::cast<int>(item.second);
    else if (key == "precision") o.precision = py::cast<std::string>(item.second);
    else if (key == "fused_mlp") o.fused_mlp = py::cast<bool>(item.second);
    else if (key == "graphs") o.graphs = py::cast<bool>(item.second);
    else throw ValueError("options: unknown key '" + key + "'; expected device, precision, "
                          "fused_mlp or graphs");
  }
  return o;
}

}  // namespace engine
}  // namespace fastnn
