// fastnn._C: argument conversion and GIL release only; the math lives in csrc/cpu.
// The Python layer (fastnn/ops.py) validates arguments with user-facing messages; the checks
// here are the last line of defence, so that no call from Python can crash the process.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "core/cpu_features.h"
#include "bindings/errors.h"
#include "core/error.h"
#include "core/parallel.h"
#include "cpu/activation.h"
#include "cpu/gemm.h"

namespace py = pybind11;
using namespace fastnn;

namespace {

// A 2-D (or 1-D) NumPy array seen as (pointer, rows, cols, element strides).
struct MatrixArg {
  void* data;
  int64_t rows, cols, rs, cs;
};

MatrixArg matrix_arg(const py::array& a, const char* name, bool writable) {
  if (a.ndim() != 2)
    throw ValueError(std::string(name) + ": expected a 2-D array, got " +
                     std::to_string(a.ndim()) + "-D");
  if (writable && !a.writeable()) throw ValueError(std::string(name) + ": array is read-only");
  const auto item = a.itemsize();
  if (a.strides(0) % item || a.strides(1) % item)
    throw ValueError(std::string(name) + ": strides must be multiples of the item size");
  return {const_cast<void*>(a.data()), a.shape(0), a.shape(1), a.strides(0) / item,
          a.strides(1) / item};
}

template <class T>
void run_gemm(const py::array& a, const py::array& b, py::array& c, bool trans_a, bool trans_b,
              double alpha, double beta, const py::object& bias, const std::string& act,
              double act_param, bool reference) {
  MatrixArg A = matrix_arg(a, "a", false), B = matrix_arg(b, "b", false),
            C = matrix_arg(c, "out", true);
  GemmArgs<T> g;
  g.M = trans_a ? A.cols : A.rows;
  g.K = trans_a ? A.rows : A.cols;
  g.N = trans_b ? B.rows : B.cols;
  const int64_t kb = trans_b ? B.cols : B.rows;
  if (kb != g.K || C.rows != g.M || C.cols != g.N)
    throw ValueError("matmul: shapes do not match: op(a) is (" + std::to_string(g.M) + ", " +
                     std::to_string(g.K) + "), op(b) is (" + std::to_string(kb) + ", " +
                     std::to_string(g.N) + "), out is (" + std::to_string(C.rows) + ", " +
                     std::to_string(C.cols) + ")");
  g.A = static_cast<const T*>(A.data);
  g.rsa = trans_a ? A.cs : A.rs;
  g.csa = trans_a ? A.rs : A.cs;
  g.B = static_cast<const T*>(B.data);
  g.rsb = trans_b ? B.cs : B.rs;
  g.csb = trans_b ? B.rs : B.cs;
  g.C = static_cast<T*>(C.data);
  g.rsc = C.rs;
  g.csc = C.cs;
  g.alpha = static_cast<T>(alpha);
  g.beta = static_cast<T>(beta);
  g.act = act_from_name(act);
  g.act_param = static_cast<T>(act_param);
  py::array bias_arr;
  if (!bias.is_none()) {
    bias_arr = py::reinterpret_borrow<py::array>(bias);
    if (bias_arr.ndim() != 1 || bias_arr.shape(0) != g.N)
      throw ValueError("b: expected shape (" + std::to_string(g.N) + ",)");
    if (bias_arr.strides(0) % bias_arr.itemsize())
      throw ValueError("b: strides must be multiples of the item size");
    g.bias = static_cast<const T*>(bias_arr.data());
    g.bias_stride = bias_arr.strides(0) / bias_arr.itemsize();
  }
  py::gil_scoped_release release;
  if (reference)
    cpu::gemm_reference(g);
  else
    cpu::gemm(g);
}

void gemm(const py::array& a, const py::array& b, py::array& c, bool trans_a, bool trans_b,
          double alpha, double beta, const py::object& bias, const std::string& act,
          double act_param, bool reference) {
  const py::dtype dt = c.dtype();
  if (!a.dtype().equal(dt) || !b.dtype().equal(dt) ||
      (!bias.is_none() && !py::reinterpret_borrow<py::array>(bias).dtype().equal(dt)))
    throw TypeError("matmul: a, b, bias and out must share one dtype");
  if (dt.equal(py::dtype::of<float>()))
    run_gemm<float>(a, b, c, trans_a, trans_b, alpha, beta, bias, act, act_param, reference);
  else if (dt.equal(py::dtype::of<double>()))
    run_gemm<double>(a, b, c, trans_a, trans_b, alpha, beta, bias, act, act_param, reference);
  else
    throw TypeError("matmul: expected float32 or float64, got " +
                    std::string(py::str(dt)));
}

}  // namespace

// Each kernel family binds its own functions (bind_<family>.cpp).
void bind_losses(py::module_& m);
void bind_dropout(py::module_& m);
void bind_activations(py::module_& m);
void bind_optim(py::module_& m);
void bind_norm_init(py::module_& m);
void bind_sampled(py::module_& m);

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastnn CPU kernels (internal; use fastnn.ops)";
  fastnn::register_error_translators();

  m.def("gemm", &gemm, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("trans_a"),
        py::arg("trans_b"), py::arg("alpha"), py::arg("beta"), py::arg("bias"),
        py::arg("activation"), py::arg("act_param"), py::arg("reference") = false,
        "out = act(alpha * op(a) @ op(b) + beta * out + bias), in place");

  bind_losses(m);
  bind_dropout(m);
  bind_activations(m);
  bind_optim(m);
  bind_norm_init(m);
  bind_sampled(m);

  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("hardware_threads", &hardware_threads);
  m.def("get_simd", [] { return std::string(simd_name(active_simd())); });
  m.def("set_simd", [](const std::string& name) { set_simd(simd_from_name(name)); },
        py::arg("name"));
  m.def("best_simd", [] { return std::string(simd_name(best_simd())); });
  m.def("simd_supported", [](const std::string& name) { return cpu_supports(simd_from_name(name)); },
        py::arg("name"));
  m.def("cpu_features", &cpu_feature_string);
  m.attr("compiler") = FASTNN_VERSION_INFO;
}
