// fastnn._C's int8 inference: the QuantizedNetwork behind fastnn.quantize
// (engine/quantized_network.h), and the int8 GEMM's raw entry points for the tests (the int32
// sums and the row quantizer on a named path). Conversion and GIL release only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bindings/engine_calls.h"
#include "core/error.h"
#include "cpu/qgemm.h"
#include "engine/quantized_network.h"

namespace py = pybind11;
using namespace fastnn;
using namespace fastnn::engine;
namespace q = fastnn::cpu::qgemm;

namespace {

// A C-contiguous array of U with `ndim` dimensions, else TypeError / ValueError naming `name`.
template <class U>
py::array_t<U, py::array::c_style> typed(const py::handle& obj, const std::string& name,
                                         int ndim) {
  if (!py::isinstance<py::array>(obj))
    throw TypeError(name + ": expected a NumPy array, got " +
                    std::string(py::str(py::type::of(obj).attr("__name__"))));
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().equal(py::dtype::of<U>()))
    throw TypeError(name + ": expected dtype " + std::string(py::str(py::dtype::of<U>())) +
                    ", got " + std::string(py::str(arr.dtype())));
  if (arr.ndim() != ndim)
    throw ValueError(name + ": expected " + std::to_string(ndim) + " dimensions, got " +
                     std::to_string(arr.ndim()));
  if (!(arr.flags() & py::array::c_style))
    throw ValueError(name + ": expected a C-contiguous array");
  return py::array_t<U, py::array::c_style>(arr);
}

template <class U>
std::vector<U> vector_of(const py::dict& d, const char* key, const std::string& where,
                         int64_t size) {
  if (!d.contains(key)) throw ValueError(where + ": missing '" + key + "'");
  auto arr = typed<U>(d[key], where + "[" + key + "]", 1);
  const int64_t n = arr.size();
  if (size >= 0 && n != size)  // size < 0: any length
    throw ValueError(where + "[" + key + "]: expected " + std::to_string(size) +
                     " values, got " + std::to_string(n));
  return std::vector<U>(arr.data(), arr.data() + n);
}

QStep step_from_dict(const py::dict& d, size_t i) {
  const std::string where = "steps[" + std::to_string(i) + "]";
  QStep s;
  const std::string kind = py::cast<std::string>(d["kind"]);
  if (d.contains("activation")) s.act = act_from_name(py::cast<std::string>(d["activation"]));
  if (d.contains("act_param")) s.act_param = py::cast<float>(d["act_param"]);
  if (kind == "dense") {
    s.kind = QStep::Kind::Dense;
    auto w = typed<int8_t>(d["weight"], where + "[weight]", 2);
    s.in = w.shape(0);
    s.out = w.shape(1);
    s.weight.assign(w.data(), w.data() + w.size());
    s.scale = vector_of<float>(d, "scale", where, s.out);
    s.shift = vector_of<float>(d, "bias", where, s.out);
  } else if (kind == "affine") {
    s.kind = QStep::Kind::Affine;
    s.scale = vector_of<float>(d, "scale", where, -2);
    s.in = s.out = int64_t(s.scale.size());
    s.shift = vector_of<float>(d, "shift", where, s.in);
  } else if (kind == "activation") {
    s.kind = QStep::Kind::Activation;
    s.in = s.out = py::cast<int64_t>(d["width"]);
  } else {
    throw ValueError(where + ": unknown kind '" + kind + "'");
  }
  return s;
}

QLink link_from_name(const std::string& name) {
  if (name == "softmax") return QLink::Softmax;
  if (name == "sigmoid") return QLink::Sigmoid;
  if (name == "none") return QLink::None;
  throw ValueError("link: expected 'softmax', 'sigmoid' or 'none', got '" + name + "'");
}

// a (M, K) u8 as the path reads it: rows padded to padded_depth(K), widened to u16 on avx2.
q::AlignedBytes activations_for(q::QPath path, const uint8_t* a, int64_t M, int64_t K) {
  const int64_t lda = q::padded_depth(K);
  q::AlignedBytes buf = q::aligned_bytes(size_t(M * lda * q::act_bytes(path)));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) {
      if (path == q::QPath::Avx2) {
        const uint16_t v = a[m * K + k];
        std::memcpy(buf.get() + 2 * (m * lda + k), &v, 2);
      } else {
        buf[size_t(m * lda + k)] = a[m * K + k];
      }
    }
  return buf;
}

q::QPath supported_path(const std::string& name) {
  const q::QPath p = q::qpath_from_name(name);
  if (!q::qpath_supported(p))
    throw ValueError("path: this CPU does not support '" + name + "'");
  return p;
}

}  // namespace

void bind_quantized(py::module_& m) {
  py::class_<QuantizedNetwork, std::shared_ptr<QuantizedNetwork>>(m, "QuantizedNetwork")
      .def(py::init([](int64_t input_dim, const py::list& steps, const std::string& link) {
             std::vector<QStep> s;
             for (size_t i = 0; i < steps.size(); ++i)
               s.push_back(step_from_dict(py::cast<py::dict>(steps[i]), i));
             py::gil_scoped_release release;
             return std::make_shared<QuantizedNetwork>(input_dim, std::move(s),
                                                       link_from_name(link));
           }),
           py::arg("input_dim"), py::arg("steps"), py::arg("link"))
      .def_property_readonly("input_dim", &QuantizedNetwork::input_dim)
      .def_property_readonly("output_dim", &QuantizedNetwork::output_dim)
      .def_property_readonly_static("kernel_path",
                                    [](py::object) { return QuantizedNetwork::kernel_path(); })
      .def(
          "predict",
          [](const QuantizedNetwork& net, const py::handle& X, int64_t batch_size) {
            auto x = typed<float>(X, "X", 2);
            if (x.shape(1) != net.input_dim())
              throw ValueError("X: expected " + std::to_string(net.input_dim()) +
                               " features per sample, got " + std::to_string(x.shape(1)));
            const int64_t n = x.shape(0);
            py::array_t<float> out({n, net.output_dim()});
            const float* xp = x.data();
            float* op = out.mutable_data();
            const bool finite = run_interruptible([&](const StopCheck& stop) {
              return net.predict(xp, n, op, batch_size, stop);
            });
            return py::make_tuple(out, finite);
          },
          py::arg("X"), py::arg("batch_size"),
          "(the outputs after the link for X (n, input_dim) float32, C-contiguous; whether all "
          "of them are finite)");

  m.def("qgemm_paths", [] {
    std::vector<std::string> out;
    for (int p = 0; p < q::kNumPaths; ++p)
      if (q::qpath_supported(static_cast<q::QPath>(p)))
        out.push_back(q::qpath_name(static_cast<q::QPath>(p)));
    return out;
  });
  m.def(
      "qgemm_s32",
      [](const py::handle& A, const py::handle& B, const std::string& path) {
        auto a = typed<uint8_t>(A, "a", 2);
        auto b = typed<int8_t>(B, "b", 2);
        if (a.shape(1) != b.shape(0))
          throw ValueError("a, b: inner sizes differ (" + std::to_string(a.shape(1)) + " vs " +
                           std::to_string(b.shape(0)) + ")");
        const q::QPath p = supported_path(path);
        const int64_t M = a.shape(0), K = a.shape(1), N = b.shape(1);
        py::array_t<int32_t> c({M, N});
        const uint8_t* ap = a.data();
        const int8_t* bp = b.data();
        int32_t* cp = c.mutable_data();
        {
          py::gil_scoped_release release;
          const q::PackedB packed = q::pack_b(p, bp, K, N);
          const q::AlignedBytes act = activations_for(p, ap, M, K);
          q::gemm_s32(packed, act.get(), M, cp, N);
        }
        return c;
      },
      py::arg("a"), py::arg("b"), py::arg("path"),
      "exact int32 a (M, K) uint8 @ b (K, N) int8 on one int8 path ('vnni', 'avx2', 'scalar')");
  m.def(
      "qgemm_quantize_rows",
      [](const py::handle& X, const std::string& path) {
        auto x = typed<float>(X, "x", 2);
        const q::QPath p = supported_path(path);
        const int64_t M = x.shape(0), K = x.shape(1), lda = q::padded_depth(K);
        py::array_t<float> scale(M);
        py::array_t<int32_t> zero(M);
        py::array_t<uint16_t> codes({M, K});
        const float* xp = x.data();
        float* sp = scale.mutable_data();
        int32_t* zp = zero.mutable_data();
        uint16_t* cp = codes.mutable_data();
        {
          py::gil_scoped_release release;
          q::AlignedBytes buf = q::aligned_bytes(size_t(M * lda * q::act_bytes(p)));
          q::quantize_rows(p, xp, K, M, K, buf.get(), sp, zp);
          for (int64_t m = 0; m < M; ++m)
            for (int64_t k = 0; k < K; ++k) {
              uint16_t v;
              if (p == q::QPath::Avx2)
                std::memcpy(&v, buf.get() + 2 * (m * lda + k), 2);
              else
                v = buf[size_t(m * lda + k)];
              cp[m * K + k] = v;
            }
        }
        return py::make_tuple(codes, scale, zero);
      },
      py::arg("x"), py::arg("path"),
      "the row quantizer of one int8 path: (codes (M, K) as uint16, row scales, zero points)");
}
