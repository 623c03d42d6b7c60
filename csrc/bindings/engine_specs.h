// The dictionaries fastnn/model.py describes an engine with, parsed once into the structs both
// engines are built from (engine/engine.h): layers, optimizer, sampled softmax and options.
#pragma once
#include <pybind11/pybind11.h>

#include <vector>

#include "engine/engine.h"

namespace fastnn {
namespace engine {

// {"kind": "dense" | "activation" | "dropout" | "batch_norm", "units", "activation",
// "act_param", "use_bias", "l1", "l2", "rate", "momentum", "eps"} (absent keys: the defaults).
LayerSpec layer_spec(const pybind11::dict& d);
std::vector<LayerSpec> layer_specs(const pybind11::list& layers);

// {"kind": "sgd" | "adam" | "adamw" | "adagrad" | "rmsprop", and OptimSpec's fields by their
// names (fastnn/optim.py's field tables name them)}; an unknown key is a ValueError.
OptimSpec optim_spec(const pybind11::dict& d);

// {"num_sampled", "sampler": "log_uniform" | "uniform", "unique", "subtract_log_q",
// "remove_accidental_hits", "correct_true_logit"}.
SampledSpec sampled_spec(const pybind11::dict& d);

// {"device", "precision", "fused_mlp", "graphs"} (EngineOptions); an unknown key is a ValueError.
EngineOptions engine_options(const pybind11::dict& d);

}  // namespace engine
}  // namespace fastnn
