// fastnn._C: the CPU op families (bindings/families.h, shared with fastnn._cuda), the CPU
// engine, and the thread and SIMD controls. Argument conversion and GIL release only; the math
// lives in csrc/cpu.
#include <pybind11/pybind11.h>

#include <string>

#include "core/cpu_features.h"
#include "core/cpu_quota.h"
#include "bindings/errors.h"
#include "core/error.h"
#include "core/parallel.h"
#include "bindings/families.h"

namespace py = pybind11;
using namespace fastnn;

void bind_engine(py::module_& m);  // bind_engine.cpp: the CPU training engine
void bind_quantized(py::module_& m);  // bind_quantized.cpp: int8 inference (fastnn.quantize)
void bind_gemm_packed(py::module_& m);  // bind_gemm_packed.cpp: the packed-B GEMM, for tests
namespace fastnn::bind {
void bind_bf16(py::module_& m);  // bind_bf16.cpp: the CPU bf16 GEMM and its kernel choice
}

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastnn CPU kernels (internal; use fastnn.ops)";
  fastnn::register_error_translators();

  fastnn::bind::bind_op_families(m);
  bind_engine(m);
  bind_quantized(m);
  bind_gemm_packed(m);
  fastnn::bind::bind_bf16(m);

  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("hardware_threads", &hardware_threads);
  m.def("max_threads", &max_threads);
  m.def("cgroup_cpu_limit", &cgroup_cpu_limit, py::arg("root"), py::arg("group"),
        "CPUs a cgroup quota allows (0: none), read under root for the process group `group`");
  m.def("get_simd", [] { return std::string(simd_name(active_simd())); });
  m.def("set_simd", [](const std::string& name) { set_simd(simd_from_name(name)); },
        py::arg("name"));
  m.def("best_simd", [] { return std::string(simd_name(best_simd())); });
  m.def("simd_supported", [](const std::string& name) { return cpu_supports(simd_from_name(name)); },
        py::arg("name"));
  m.def("cpu_features", &cpu_feature_string);
  m.attr("compiler") = FASTNN_VERSION_INFO;
}
