// fastnn._C: argument conversion and GIL release only; the math lives in csrc/cpu.
// The Python layer (fastnn/ops.py) validates arguments with user-facing messages; the checks
// here are the last line of defence, so that no call from Python can crash the process.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "core/cpu_features.h"
#include "core/cpu_quota.h"
#include "bindings/errors.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/ops/activation.h"
#include "cpu/dense.h"
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
              double act_param, bool reference, const py::object& z) {
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
  py::array z_arr;
  if (!z.is_none()) {
    z_arr = py::reinterpret_borrow<py::array>(z);
    MatrixArg Z = matrix_arg(z_arr, "z", true);
    if (Z.rows != C.rows || Z.cols != C.cols || Z.rs != C.rs || Z.cs != C.cs)
      throw ValueError("z: expected the shape and strides of out");
    g.Z = static_cast<T*>(Z.data);
  }
  py::gil_scoped_release release;
  if (reference)
    cpu::gemm_reference(g);
  else
    cpu::gemm(g);
}

bool dtype_is(const py::object& o, const py::dtype& dt) {
  return o.is_none() || py::reinterpret_borrow<py::array>(o).dtype().equal(dt);
}

void gemm(const py::array& a, const py::array& b, py::array& c, bool trans_a, bool trans_b,
          double alpha, double beta, const py::object& bias, const std::string& act,
          double act_param, bool reference, const py::object& z) {
  const py::dtype dt = c.dtype();
  if (!a.dtype().equal(dt) || !b.dtype().equal(dt) || !dtype_is(bias, dt) || !dtype_is(z, dt))
    throw TypeError("matmul: a, b, bias, z and out must share one dtype");
  if (dt.equal(py::dtype::of<float>()))
    run_gemm<float>(a, b, c, trans_a, trans_b, alpha, beta, bias, act, act_param, reference, z);
  else if (dt.equal(py::dtype::of<double>()))
    run_gemm<double>(a, b, c, trans_a, trans_b, alpha, beta, bias, act, act_param, reference, z);
  else
    throw TypeError("matmul: expected float32 or float64, got " +
                    std::string(py::str(dt)));
}

// A C-contiguous-rows matrix argument of the given shape (columns contiguous, any row stride).
MatrixArg rows_arg(const py::array& a, const char* name, int64_t rows, int64_t cols,
                   bool writable) {
  MatrixArg m = matrix_arg(a, name, writable);
  if (m.rows != rows || m.cols != cols)
    throw ValueError(std::string(name) + ": expected shape (" + std::to_string(rows) + ", " +
                     std::to_string(cols) + "), got (" + std::to_string(m.rows) + ", " +
                     std::to_string(m.cols) + ")");
  // (Empty arrays may carry any strides.)
  if (m.cs != 1 && cols > 1 && rows > 0)
    throw ValueError(std::string(name) + ": columns must be contiguous");
  return m;
}

template <class T>
void run_dense_backward(const py::array& dy, const py::array& x, const py::array& w,
                        const py::object& gate, const std::string& act, double act_param,
                        bool from_output, py::array& dw, const py::object& db,
                        const py::object& dx, bool accumulate) {
  DenseBackwardArgs<T> d;
  MatrixArg X = matrix_arg(x, "x", false);
  d.M = X.rows;
  d.K = X.cols;
  MatrixArg W = rows_arg(w, "w", d.K, w.ndim() == 2 ? w.shape(1) : 0, false);
  d.N = W.cols;
  MatrixArg DY = rows_arg(dy, "dy", d.M, d.N, false);
  if (X.cs != 1 && d.K > 1 && d.M > 0) throw ValueError("x: columns must be contiguous");
  MatrixArg DW = rows_arg(dw, "dw", d.K, d.N, true);
  d.X = static_cast<const T*>(X.data);
  d.ldx = X.rs;
  d.W = static_cast<const T*>(W.data);
  d.ldw = W.rs;
  d.dY = static_cast<const T*>(DY.data);
  d.ldy = DY.rs;
  d.dW = static_cast<T*>(DW.data);
  d.lddw = DW.rs;
  d.accumulate = accumulate;
  py::array gate_arr, db_arr, dx_arr;
  const Act a = act_from_name(act);
  if (a != Act::None) {
    if (gate.is_none()) throw ValueError("dense backward: an activation needs z or y");
    gate_arr = py::reinterpret_borrow<py::array>(gate);
    MatrixArg G = rows_arg(gate_arr, from_output ? "y" : "z", d.M, d.N, false);
    if (G.rs != DY.rs && d.M > 1) throw ValueError("dense backward: z/y must have dy's row stride");
    d.gate.data = static_cast<const T*>(G.data);
    d.gate.act = a;
    d.gate.param = static_cast<T>(act_param);
    d.gate.from_output = from_output;
  }
  if (!db.is_none()) {
    db_arr = py::reinterpret_borrow<py::array>(db);
    if (db_arr.ndim() != 1 || db_arr.shape(0) != d.N || !db_arr.writeable() ||
        !(db_arr.flags() & py::array::c_style))
      throw ValueError("db: expected a writable contiguous array of shape (" +
                       std::to_string(d.N) + ",)");
    d.db = static_cast<T*>(db_arr.mutable_data());
  }
  if (!dx.is_none()) {
    dx_arr = py::reinterpret_borrow<py::array>(dx);
    MatrixArg DX = rows_arg(dx_arr, "dx", d.M, d.K, true);
    d.dX = static_cast<T*>(DX.data);
    d.lddx = DX.rs;
  }
  py::gil_scoped_release release;
  cpu::dense_backward(d);
}

void dense_backward(const py::array& dy, const py::array& x, const py::array& w,
                    const py::object& gate, const std::string& act, double act_param,
                    bool from_output, py::array& dw, const py::object& db, const py::object& dx,
                    bool accumulate) {
  const py::dtype dt = dw.dtype();
  if (!dy.dtype().equal(dt) || !x.dtype().equal(dt) || !w.dtype().equal(dt) ||
      !dtype_is(gate, dt) || !dtype_is(db, dt) || !dtype_is(dx, dt))
    throw TypeError("dense backward: all arrays must share one dtype");
  if (dt.equal(py::dtype::of<float>()))
    run_dense_backward<float>(dy, x, w, gate, act, act_param, from_output, dw, db, dx, accumulate);
  else if (dt.equal(py::dtype::of<double>()))
    run_dense_backward<double>(dy, x, w, gate, act, act_param, from_output, dw, db, dx,
                               accumulate);
  else
    throw TypeError("dense backward: expected float32 or float64, got " +
                    std::string(py::str(dt)));
}

}  // namespace

// Each kernel family binds its own functions (bind_<family>.cpp).
void bind_losses(py::module_& m);
void bind_dropout(py::module_& m);
void bind_activations(py::module_& m);
void bind_optim(py::module_& m);
void bind_norm_init(py::module_& m);
void bind_engine(py::module_& m);
void bind_sampled(py::module_& m);

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastnn CPU kernels (internal; use fastnn.ops)";
  fastnn::register_error_translators();

  m.def("gemm", &gemm, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("trans_a"),
        py::arg("trans_b"), py::arg("alpha"), py::arg("beta"), py::arg("bias"),
        py::arg("activation"), py::arg("act_param"), py::arg("reference") = false,
        py::arg("z") = py::none(),
        "out = act(alpha * op(a) @ op(b) + beta * out + bias), in place; z = the pre-activation");
  m.def("dense_backward", &dense_backward, py::arg("dy"), py::arg("x"), py::arg("w"),
        py::arg("gate"), py::arg("activation"), py::arg("act_param"), py::arg("from_output"),
        py::arg("dw"), py::arg("db"), py::arg("dx"), py::arg("accumulate"),
        "fused dense-layer backward: dw (+)= x^T dz, db (+)= colsum(dz), dx = dz w^T, "
        "dz = dy * act'(gate)");

  bind_losses(m);
  bind_dropout(m);
  bind_activations(m);
  bind_optim(m);
  bind_norm_init(m);
  bind_engine(m);
  bind_sampled(m);

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
