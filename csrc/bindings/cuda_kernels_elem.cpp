// fastnn._cuda low-level entry points for the element-wise families (activations, softmax,
// dropout, losses). Device memory comes from the caller as integer addresses (a torch or
// fastnn tensor's data pointer), the stream as an integer cudaStream_t (0 = the legacy default
// stream); arrays are contiguous and of the dtype named by `dtype` ("float32" or "float64").
// These functions convert, release the GIL and forward: the caller (fastnn's Python layer, or a
// test) owns shape checks, since an address carries no size.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/ops/activation.h"
#include "cuda/activations.h"
#include "cuda/dropout.h"
#include "cuda/losses.h"

namespace py = pybind11;
using namespace fastnn;

namespace {

bool is_f32(const std::string& dtype) {
  if (dtype == "float32") return true;
  if (dtype == "float64") return false;
  throw TypeError("dtype: expected 'float32' or 'float64', got '" + dtype + "'");
}

template <class T>
T* ptr(uintptr_t p) { return reinterpret_cast<T*>(p); }
void* stream_of(uintptr_t s) { return reinterpret_cast<void*>(s); }

void act_forward(const std::string& name, double param, uintptr_t x, uintptr_t y, int64_t n,
                 const std::string& dtype, uintptr_t stream) {
  const Act act = act_from_name(name);
  const bool f32 = is_f32(dtype);
  py::gil_scoped_release release;
  if (f32)
    cuda::act_forward<float>(act, float(param), ptr<const float>(x), ptr<float>(y), n,
                             stream_of(stream));
  else
    cuda::act_forward<double>(act, param, ptr<const double>(x), ptr<double>(y), n,
                              stream_of(stream));
}

// v is x, or y = act(x) when from_output.
void act_backward(const std::string& name, double param, uintptr_t dy, uintptr_t v, uintptr_t dx,
                  int64_t n, const std::string& dtype, uintptr_t stream, bool from_output) {
  const Act act = act_from_name(name);
  const bool f32 = is_f32(dtype);
  py::gil_scoped_release release;
  if (f32) {
    const auto f = from_output ? &cuda::act_backward_from_output<float> : &cuda::act_backward<float>;
    f(act, float(param), ptr<const float>(dy), ptr<const float>(v), ptr<float>(dx), n,
      stream_of(stream));
  } else {
    const auto f =
        from_output ? &cuda::act_backward_from_output<double> : &cuda::act_backward<double>;
    f(act, param, ptr<const double>(dy), ptr<const double>(v), ptr<double>(dx), n,
      stream_of(stream));
  }
}

void softmax_forward(uintptr_t x, uintptr_t y, int64_t rows, int64_t cols, const std::string& dtype,
                     uintptr_t stream, bool log) {
  const bool f32 = is_f32(dtype);
  py::gil_scoped_release release;
  if (f32)
    cuda::softmax_rows<float>(ptr<const float>(x), ptr<float>(y), rows, cols, log,
                              stream_of(stream));
  else
    cuda::softmax_rows<double>(ptr<const double>(x), ptr<double>(y), rows, cols, log,
                               stream_of(stream));
}

void softmax_backward(uintptr_t dy, uintptr_t y, uintptr_t dx, int64_t rows, int64_t cols,
                      const std::string& dtype, uintptr_t stream, bool log) {
  const bool f32 = is_f32(dtype);
  py::gil_scoped_release release;
  if (f32)
    cuda::softmax_rows_backward<float>(ptr<const float>(dy), ptr<const float>(y), ptr<float>(dx),
                                       rows, cols, log, stream_of(stream));
  else
    cuda::softmax_rows_backward<double>(ptr<const double>(dy), ptr<const double>(y),
                                        ptr<double>(dx), rows, cols, log, stream_of(stream));
}

void dropout_forward(uintptr_t x, uintptr_t y, uintptr_t mask, int64_t n, double rate,
                     uint64_t seed, const std::string& dtype, uintptr_t stream) {
  const bool f32 = is_f32(dtype);
  py::gil_scoped_release release;
  if (f32)
    cuda::dropout_forward<float>(ptr<const float>(x), ptr<float>(y), ptr<uint8_t>(mask), n, rate,
                                 seed, stream_of(stream));
  else
    cuda::dropout_forward<double>(ptr<const double>(x), ptr<double>(y), ptr<uint8_t>(mask), n,
                                  rate, seed, stream_of(stream));
}

void dropout_backward(uintptr_t dy, uintptr_t mask, uintptr_t dx, int64_t n, double rate,
                      const std::string& dtype, uintptr_t stream) {
  const bool f32 = is_f32(dtype);
  py::gil_scoped_release release;
  if (f32)
    cuda::dropout_backward<float>(ptr<const float>(dy), ptr<const uint8_t>(mask), ptr<float>(dx),
                                  n, rate, stream_of(stream));
  else
    cuda::dropout_backward<double>(ptr<const double>(dy), ptr<const uint8_t>(mask),
                                   ptr<double>(dx), n, rate, stream_of(stream));
}

// labels (int64), probs, weight: 0 when absent. Waits for the stream; returns the mean loss.
template <class T>
double xent(uintptr_t logits, uintptr_t labels, uintptr_t probs, uintptr_t weight, uintptr_t grad,
            int64_t N, int64_t C, double smoothing, uintptr_t ws, uintptr_t stream) {
  cpu::SoftmaxXentArgs<T> a;
  a.logits = ptr<const T>(logits);
  a.labels = ptr<const int64_t>(labels);
  a.probs = ptr<const T>(probs);
  a.weight = ptr<const T>(weight);
  a.grad = ptr<T>(grad);
  a.N = N;
  a.C = C;
  a.label_smoothing = smoothing;
  cuda::softmax_cross_entropy(a, ptr<void>(ws), stream_of(stream));
  return cuda::loss_result(ptr<const void>(ws), stream_of(stream), "softmax_cross_entropy");
}

double softmax_cross_entropy(uintptr_t logits, uintptr_t labels, uintptr_t probs,
                             uintptr_t weight, uintptr_t grad, int64_t N, int64_t C,
                             double label_smoothing, uintptr_t workspace, const std::string& dtype,
                             uintptr_t stream) {
  const bool f32 = is_f32(dtype);
  py::gil_scoped_release release;
  return f32 ? xent<float>(logits, labels, probs, weight, grad, N, C, label_smoothing, workspace,
                           stream)
             : xent<double>(logits, labels, probs, weight, grad, N, C, label_smoothing,
                            workspace, stream);
}

// The three element-wise losses share one signature: (a, b, grad, n, workspace, dtype, stream).
template <void (*F32)(const float*, const float*, int64_t, float*, void*, void*),
          void (*F64)(const double*, const double*, int64_t, double*, void*, void*)>
double elem_loss(uintptr_t a, uintptr_t b, uintptr_t grad, int64_t n, uintptr_t ws,
                 const std::string& dtype, uintptr_t stream, const char* name) {
  const bool f32 = is_f32(dtype);
  py::gil_scoped_release release;
  if (f32)
    F32(ptr<const float>(a), ptr<const float>(b), n, ptr<float>(grad), ptr<void>(ws),
        stream_of(stream));
  else
    F64(ptr<const double>(a), ptr<const double>(b), n, ptr<double>(grad), ptr<void>(ws),
        stream_of(stream));
  return cuda::loss_result(ptr<const void>(ws), stream_of(stream), name);
}

}  // namespace

void bind_cuda_elem(py::module_& m) {
  m.def("act_forward", &act_forward, py::arg("act"), py::arg("param"), py::arg("x"), py::arg("y"),
        py::arg("n"), py::arg("dtype"), py::arg("stream") = 0,
        "y = act(x) on n device elements (enqueued on `stream`, not synchronised)");
  m.def("act_backward", &act_backward, py::arg("act"), py::arg("param"), py::arg("dy"),
        py::arg("x"), py::arg("dx"), py::arg("n"), py::arg("dtype"), py::arg("stream") = 0,
        py::arg("from_output") = false,
        "dx = dy * act'(x); with from_output, `x` holds y = act(x) instead");
  m.def("softmax_forward", &softmax_forward, py::arg("x"), py::arg("y"), py::arg("rows"),
        py::arg("cols"), py::arg("dtype"), py::arg("stream") = 0, py::arg("log") = false,
        "row softmax (or log_softmax) of a (rows, cols) device array");
  m.def("softmax_backward", &softmax_backward, py::arg("dy"), py::arg("y"), py::arg("dx"),
        py::arg("rows"), py::arg("cols"), py::arg("dtype"), py::arg("stream") = 0,
        py::arg("log") = false, "vector-Jacobian product of softmax (log_softmax) from its output y");
  m.def("dropout_forward", &dropout_forward, py::arg("x"), py::arg("y"), py::arg("mask"),
        py::arg("n"), py::arg("rate"), py::arg("seed"), py::arg("dtype"), py::arg("stream") = 0,
        "inverted dropout with the CPU's Philox mask (uint8, 1 = kept)");
  m.def("dropout_backward", &dropout_backward, py::arg("dy"), py::arg("mask"), py::arg("dx"),
        py::arg("n"), py::arg("rate"), py::arg("dtype"), py::arg("stream") = 0,
        "dx = dy * mask / (1 - rate)");
  m.def("loss_workspace_bytes", &cuda::loss_workspace_bytes,
        "bytes of device workspace a loss call needs");
  m.def("softmax_cross_entropy", &softmax_cross_entropy, py::arg("logits"), py::arg("labels"),
        py::arg("probs"), py::arg("weight"), py::arg("grad"), py::arg("N"), py::arg("C"),
        py::arg("label_smoothing"), py::arg("workspace"), py::arg("dtype"), py::arg("stream") = 0,
        "fused softmax cross-entropy: writes grad, returns the mean loss (waits for the stream); "
        "labels (int64) / probs / weight are 0 when absent; ValueError for a label out of range");
  m.def(
      "binary_cross_entropy_with_logits",
      [](uintptr_t x, uintptr_t t, uintptr_t g, int64_t n, uintptr_t ws, const std::string& dtype,
         uintptr_t stream) {
        return elem_loss<&cuda::binary_cross_entropy_with_logits,
                         &cuda::binary_cross_entropy_with_logits>(x, t, g, n, ws, dtype, stream,
                                                                  "binary_cross_entropy_with_logits");
      },
      py::arg("logits"), py::arg("targets"), py::arg("grad"), py::arg("n"), py::arg("workspace"),
      py::arg("dtype"), py::arg("stream") = 0, "mean BCE with logits; writes grad, returns the loss");
  m.def(
      "mse",
      [](uintptr_t p, uintptr_t t, uintptr_t g, int64_t n, uintptr_t ws, const std::string& dtype,
         uintptr_t stream) {
        return elem_loss<&cuda::mse, &cuda::mse>(p, t, g, n, ws, dtype, stream, "mse");
      },
      py::arg("pred"), py::arg("target"), py::arg("grad"), py::arg("n"), py::arg("workspace"),
      py::arg("dtype"), py::arg("stream") = 0, "mean squared error; writes grad, returns the loss");
  m.def(
      "mae",
      [](uintptr_t p, uintptr_t t, uintptr_t g, int64_t n, uintptr_t ws, const std::string& dtype,
         uintptr_t stream) {
        return elem_loss<&cuda::mae, &cuda::mae>(p, t, g, n, ws, dtype, stream, "mae");
      },
      py::arg("pred"), py::arg("target"), py::arg("grad"), py::arg("n"), py::arg("workspace"),
      py::arg("dtype"), py::arg("stream") = 0, "mean absolute error; writes grad, returns the loss");
}
