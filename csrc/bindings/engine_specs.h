// What the CPU engine's binding (bind_engine.cpp) and the GPU engine's (cuda_engine.cpp) share:
// the layer / optimizer / sampled-softmax dictionaries fastnn/model.py passes, parsed once, and
// the dictionaries the calls return. Compiled into fastnn._C and fastnn._cuda.
#pragma once
#include <pybind11/pybind11.h>

#include <vector>

#include "engine/network.h"

namespace fastnn {
namespace engine {

// {"kind": "dense" | "activation" | "dropout" | "batch_norm", "units", "activation",
// "act_param", "use_bias", "l1", "l2", "rate", "momentum", "eps"} (absent keys: the defaults).
LayerSpec layer_spec(const pybind11::dict& d);
std::vector<LayerSpec> layer_specs(const pybind11::list& layers);

// {"kind": "sgd" | "adam" | "adamw" | "adagrad" | "rmsprop", and the optimizer's options}.
OptimSpec optim_spec(const pybind11::dict& d);

// {"num_sampled", "sampler": "log_uniform" | "uniform", "unique", "subtract_log_q",
// "remove_accidental_hits", "correct_true_logit"}.
SampledSpec sampled_spec(const pybind11::dict& d);

// A train_batches / evaluate call's sums as a dict (with the non-finite flag).
pybind11::dict stats_dict(const BatchStats& s, bool nonfinite);

// The properties both engine classes have: input_dim, output_dim, step and lr. step and lr are
// training state: read and written under the network's exclusive lock, waited for with the GIL
// released (engine_calls.h).
template <class Net, class PyClass>
void def_engine_properties(PyClass& c) {
  c.def_property_readonly("input_dim", &Net::input_dim)
      .def_property_readonly("output_dim", &Net::output_dim)
      .def_property(
          "step",
          [](Net& n) {
            pybind11::gil_scoped_release release;
            auto held = n.exclusive();
            return n.step();
          },
          [](Net& n, int64_t s) {
            pybind11::gil_scoped_release release;
            auto held = n.exclusive();
            n.set_step(s);
          })
      .def_property(
          "lr",
          [](Net& n) {
            pybind11::gil_scoped_release release;
            auto held = n.exclusive();
            return n.optim().lr;
          },
          [](Net& n, double lr) {
            pybind11::gil_scoped_release release;
            auto held = n.exclusive();
            n.optim().lr = lr;
          });
}

// param_names: the .name of each parameter record.
template <class P>
pybind11::list names_list(const std::vector<P>& params) {
  pybind11::list out;
  for (const P& p : params) out.append(p.name);
  return out;
}

// take_diagnostics' list: one dict a layer.
template <class D>
pybind11::list diagnostics_list(const std::vector<D>& diag) {
  pybind11::list out;
  for (const D& d : diag) {
    pybind11::dict e;
    e["grad_norm_sum"] = d.grad_norm_sum;
    e["update_ratio_sum"] = d.update_ratio_sum;
    e["dead_fraction_sum"] = d.dead_fraction_sum;
    e["updates"] = d.updates;
    e["batches"] = d.batches;
    out.append(e);
  }
  return out;
}

}  // namespace engine
}  // namespace fastnn
