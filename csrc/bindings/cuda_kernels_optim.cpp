// fastnn._cuda bindings of the optimizer, norm, batch-norm and reduction kernels (cuda/optim.h,
// cuda/batchnorm.h, cuda/reduce.h). Raw entry points for the device layer and the tests: arrays
// are device pointers passed as Python ints, the element type is a dtype string ("float32" or
// "float64"), `stream` is a cudaStream_t as an int (0 = the legacy default stream). Nothing is
// synchronised; the GIL is released around the launches. Argument conversion only, no math.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "cuda/batchnorm.h"
#include "cuda/optim.h"
#include "cuda/reduce.h"

namespace py = pybind11;

namespace fastnn {
namespace {

using Ptrs = std::vector<std::uintptr_t>;
using Sizes = std::vector<int64_t>;

bool is_f64(const std::string& dtype) {
  if (dtype == "float32") return false;
  if (dtype == "float64") return true;
  throw TypeError("dtype: expected 'float32' or 'float64', got '" + dtype + "'");
}

template <class T>
T* ptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

void* stream_of(std::uintptr_t s) { return reinterpret_cast<void*>(s); }

// A per-tensor list (pointers or None), checked against the number of tensors.
Ptrs ptr_list(const py::object& obj, size_t count, const char* name) {
  if (obj.is_none()) return Ptrs(count, 0);
  Ptrs v = obj.cast<Ptrs>();
  if (v.size() != count)
    throw ValueError(std::string(name) + ": expected " + std::to_string(count) + " pointers, got " +
                     std::to_string(v.size()));
  return v;
}

std::vector<double> penalty_list(const py::object& obj, size_t count, const char* name) {
  if (obj.is_none()) return std::vector<double>(count, 0.0);
  std::vector<double> v = obj.cast<std::vector<double>>();
  if (v.size() != count)
    throw ValueError(std::string(name) + ": expected " + std::to_string(count) + " values, got " +
                     std::to_string(v.size()));
  return v;
}

// The OptimTensor table of one call; state lists may be None (null pointers).
template <class T>
std::vector<cpu::OptimTensor<T>> tensors(const Ptrs& params, const py::object& grads,
                                         const py::object& s0, const py::object& s1,
                                         const py::object& s2, const Sizes& sizes,
                                         const py::object& l1, const py::object& l2) {
  const size_t n = params.size();
  if (sizes.size() != n)
    throw ValueError("sizes: expected " + std::to_string(n) + " sizes, got " +
                     std::to_string(sizes.size()));
  const Ptrs g = ptr_list(grads, n, "grads");
  const Ptrs st[3] = {ptr_list(s0, n, "state 0"), ptr_list(s1, n, "state 1"),
                      ptr_list(s2, n, "state 2")};
  const std::vector<double> pl1 = penalty_list(l1, n, "l1"), pl2 = penalty_list(l2, n, "l2");
  std::vector<cpu::OptimTensor<T>> t(n);
  for (size_t i = 0; i < n; ++i) {
    t[i].param = ptr<T>(params[i]);
    t[i].grad = ptr<const T>(g[i]);
    for (int k = 0; k < 3; ++k) t[i].state[k] = ptr<T>(st[k][i]);
    t[i].n = sizes[i];
    t[i].l1 = pl1[i];
    t[i].l2 = pl2[i];
  }
  return t;
}

// Runs fn(T{}) with T the dtype's type, the GIL released.
template <class Fn>
void with_dtype(const std::string& dtype, const Fn& fn) {
  const bool f64 = is_f64(dtype);
  py::gil_scoped_release release;
  if (f64) fn(double{});
  else fn(float{});
}

void sgd_step(const std::string& dtype, const Ptrs& params, const py::object& grads,
              const py::object& momentum_buffers, const Sizes& sizes, const py::object& l1,
              const py::object& l2, double lr, double momentum, double dampening, bool nesterov,
              double weight_decay, bool first_step, double grad_scale, std::uintptr_t scale_ptr,
              std::uintptr_t stream) {
  cpu::SgdOptions o;
  o.lr = lr, o.momentum = momentum, o.dampening = dampening, o.nesterov = nesterov;
  o.weight_decay = weight_decay, o.first_step = first_step, o.grad_scale = grad_scale;
  const py::object none = py::none();
  if (is_f64(dtype)) {
    auto t = tensors<double>(params, grads, momentum_buffers, none, none, sizes, l1, l2);
    py::gil_scoped_release r;
    cuda::sgd_step(t.data(), int64_t(t.size()), o, ptr<const double>(scale_ptr), stream_of(stream));
  } else {
    auto t = tensors<float>(params, grads, momentum_buffers, none, none, sizes, l1, l2);
    py::gil_scoped_release r;
    cuda::sgd_step(t.data(), int64_t(t.size()), o, ptr<const double>(scale_ptr), stream_of(stream));
  }
}

void adam_step(const std::string& dtype, const Ptrs& params, const py::object& grads,
               const py::object& exp_avgs, const py::object& exp_avg_sqs,
               const py::object& max_exp_avg_sqs, const Sizes& sizes, const py::object& l1,
               const py::object& l2, int64_t step, double lr, double beta1, double beta2,
               double eps, double weight_decay, bool decoupled, bool amsgrad, double grad_scale,
               std::uintptr_t scale_ptr, std::uintptr_t stream) {
  if (step < 1) throw ValueError("step: expected the 1-based step count (>= 1), got " + std::to_string(step));
  cpu::AdamOptions o;
  o.lr = lr, o.beta1 = beta1, o.beta2 = beta2, o.eps = eps, o.weight_decay = weight_decay;
  o.decoupled = decoupled, o.amsgrad = amsgrad, o.step = step, o.grad_scale = grad_scale;
  if (is_f64(dtype)) {
    auto t = tensors<double>(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, sizes, l1, l2);
    py::gil_scoped_release r;
    cuda::adam_step(t.data(), int64_t(t.size()), o, ptr<const double>(scale_ptr), stream_of(stream));
  } else {
    auto t = tensors<float>(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, sizes, l1, l2);
    py::gil_scoped_release r;
    cuda::adam_step(t.data(), int64_t(t.size()), o, ptr<const double>(scale_ptr), stream_of(stream));
  }
}

void adagrad_step(const std::string& dtype, const Ptrs& params, const py::object& grads,
                  const py::object& state_sums, const Sizes& sizes, const py::object& l1,
                  const py::object& l2, int64_t step, double lr, double lr_decay,
                  double weight_decay, double eps, double grad_scale, std::uintptr_t scale_ptr,
                  std::uintptr_t stream) {
  if (step < 1) throw ValueError("step: expected the 1-based step count (>= 1), got " + std::to_string(step));
  cpu::AdagradOptions o;
  o.lr = lr, o.lr_decay = lr_decay, o.weight_decay = weight_decay, o.eps = eps, o.step = step;
  o.grad_scale = grad_scale;
  const py::object none = py::none();
  if (is_f64(dtype)) {
    auto t = tensors<double>(params, grads, state_sums, none, none, sizes, l1, l2);
    py::gil_scoped_release r;
    cuda::adagrad_step(t.data(), int64_t(t.size()), o, ptr<const double>(scale_ptr), stream_of(stream));
  } else {
    auto t = tensors<float>(params, grads, state_sums, none, none, sizes, l1, l2);
    py::gil_scoped_release r;
    cuda::adagrad_step(t.data(), int64_t(t.size()), o, ptr<const double>(scale_ptr), stream_of(stream));
  }
}

void rmsprop_step(const std::string& dtype, const Ptrs& params, const py::object& grads,
                  const py::object& square_avgs, const py::object& momentum_buffers,
                  const py::object& grad_avgs, const Sizes& sizes, const py::object& l1,
                  const py::object& l2, double lr, double alpha, double eps, double weight_decay,
                  double momentum, bool centered, double grad_scale, std::uintptr_t scale_ptr,
                  std::uintptr_t stream) {
  cpu::RmspropOptions o;
  o.lr = lr, o.alpha = alpha, o.eps = eps, o.weight_decay = weight_decay, o.momentum = momentum;
  o.centered = centered, o.grad_scale = grad_scale;
  if (is_f64(dtype)) {
    auto t = tensors<double>(params, grads, square_avgs, momentum_buffers, grad_avgs, sizes, l1, l2);
    py::gil_scoped_release r;
    cuda::rmsprop_step(t.data(), int64_t(t.size()), o, ptr<const double>(scale_ptr), stream_of(stream));
  } else {
    auto t = tensors<float>(params, grads, square_avgs, momentum_buffers, grad_avgs, sizes, l1, l2);
    py::gil_scoped_release r;
    cuda::rmsprop_step(t.data(), int64_t(t.size()), o, ptr<const double>(scale_ptr), stream_of(stream));
  }
}

void check_sizes(const Ptrs& data, const Sizes& sizes) {
  if (data.size() != sizes.size())
    throw ValueError("sizes: expected " + std::to_string(data.size()) + " sizes, got " +
                     std::to_string(sizes.size()));
}

void global_norm(const std::string& dtype, const Ptrs& data, const Sizes& sizes, double max_norm,
                 std::uintptr_t partials, int64_t capacity, std::uintptr_t out,
                 std::uintptr_t stream) {
  check_sizes(data, sizes);
  with_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    std::vector<const T*> p(data.size());
    for (size_t i = 0; i < data.size(); ++i) p[i] = ptr<const T>(data[i]);
    cuda::global_norm<T>(p.data(), sizes.data(), int64_t(p.size()), max_norm, ptr<double>(partials),
                         capacity, ptr<double>(out), stream_of(stream));
  });
}

void scale_tensors(const std::string& dtype, const Ptrs& data, const Sizes& sizes, double factor,
                   std::uintptr_t factor_ptr, std::uintptr_t stream) {
  check_sizes(data, sizes);
  with_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    std::vector<T*> p(data.size());
    for (size_t i = 0; i < data.size(); ++i) p[i] = ptr<T>(data[i]);
    cuda::scale_tensors<T>(p.data(), sizes.data(), int64_t(p.size()), factor,
                           ptr<const double>(factor_ptr), stream_of(stream));
  });
}

template <class T>
cpu::BatchNormArgs<T> bn_args(std::uintptr_t x, int64_t N, int64_t F, std::uintptr_t gamma,
                              std::uintptr_t beta, std::uintptr_t rm, std::uintptr_t rv,
                              double momentum, double eps, std::uintptr_t y) {
  cpu::BatchNormArgs<T> a;
  a.x = ptr<const T>(x);
  a.N = N;
  a.F = F;
  a.gamma = ptr<const T>(gamma);
  a.beta = ptr<const T>(beta);
  a.running_mean = ptr<T>(rm);
  a.running_var = ptr<T>(rv);
  a.momentum = momentum;
  a.eps = eps;
  a.y = ptr<T>(y);
  return a;
}

void batch_norm_train(const std::string& dtype, std::uintptr_t x, int64_t N, int64_t F,
                      std::uintptr_t gamma, std::uintptr_t beta, std::uintptr_t running_mean,
                      std::uintptr_t running_var, double momentum, double eps, std::uintptr_t y,
                      std::uintptr_t save_mean, std::uintptr_t save_invstd,
                      std::uintptr_t workspace, int64_t workspace_bytes, std::uintptr_t stream) {
  with_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    auto a = bn_args<T>(x, N, F, gamma, beta, running_mean, running_var, momentum, eps, y);
    a.save_mean = ptr<T>(save_mean);
    a.save_invstd = ptr<T>(save_invstd);
    cuda::batch_norm_forward_train<T>(a, ptr<void>(workspace), workspace_bytes, stream_of(stream));
  });
}

void batch_norm_infer(const std::string& dtype, std::uintptr_t x, int64_t N, int64_t F,
                      std::uintptr_t gamma, std::uintptr_t beta, std::uintptr_t running_mean,
                      std::uintptr_t running_var, double eps, std::uintptr_t y,
                      std::uintptr_t workspace, int64_t workspace_bytes, std::uintptr_t stream) {
  with_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    const auto a = bn_args<T>(x, N, F, gamma, beta, running_mean, running_var, 0.0, eps, y);
    cuda::batch_norm_forward_infer<T>(a, ptr<void>(workspace), workspace_bytes, stream_of(stream));
  });
}

void batch_norm_backward(const std::string& dtype, std::uintptr_t dy, std::uintptr_t x, int64_t N,
                         int64_t F, std::uintptr_t gamma, std::uintptr_t save_mean,
                         std::uintptr_t save_invstd, std::uintptr_t dx, std::uintptr_t dgamma,
                         std::uintptr_t dbeta, std::uintptr_t workspace, int64_t workspace_bytes,
                         std::uintptr_t stream) {
  with_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    cuda::batch_norm_backward<T>(ptr<const T>(dy), ptr<const T>(x), N, F, ptr<const T>(gamma),
                                 ptr<const T>(save_mean), ptr<const T>(save_invstd), ptr<T>(dx),
                                 ptr<T>(dgamma), ptr<T>(dbeta), ptr<void>(workspace),
                                 workspace_bytes, stream_of(stream));
  });
}

void sum_rows(const std::string& dtype, std::uintptr_t x, int64_t N, int64_t F, std::uintptr_t out,
              bool mean, std::uintptr_t workspace, int64_t workspace_bytes, std::uintptr_t stream) {
  with_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    cuda::sum_rows<T>(ptr<const T>(x), N, F, ptr<T>(out), mean, ptr<void>(workspace),
                      workspace_bytes, stream_of(stream));
  });
}

void argmax_rows(const std::string& dtype, std::uintptr_t x, int64_t N, int64_t F,
                 std::uintptr_t idx, std::uintptr_t stream) {
  with_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    cuda::argmax_rows<T>(ptr<const T>(x), N, F, ptr<int64_t>(idx), stream_of(stream));
  });
}

void count_correct(const std::string& dtype, std::uintptr_t scores, std::uintptr_t labels,
                   int64_t N, int64_t C, std::uintptr_t out, std::uintptr_t stream) {
  with_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    cuda::count_correct<T>(ptr<const T>(scores), ptr<const int64_t>(labels), N, C,
                           ptr<int64_t>(out), stream_of(stream));
  });
}

}  // namespace

void register_cuda_optim_kernels(py::module_& m) {
  using py::arg;
  m.def("sgd_step", &sgd_step, arg("dtype"), arg("params"), arg("grads"),
        arg("momentum_buffers"), arg("sizes"), arg("l1"), arg("l2"), arg("lr"), arg("momentum"),
        arg("dampening"), arg("nesterov"), arg("weight_decay"), arg("first_step"),
        arg("grad_scale") = 1.0, arg("grad_scale_ptr") = 0, arg("stream") = 0,
        "torch.optim.SGD step on device tensors, all in one launch (cpu/optim.h's formulas)");
  m.def("adam_step", &adam_step, arg("dtype"), arg("params"), arg("grads"), arg("exp_avgs"),
        arg("exp_avg_sqs"), arg("max_exp_avg_sqs"), arg("sizes"), arg("l1"), arg("l2"),
        arg("step"), arg("lr"), arg("beta1"), arg("beta2"), arg("eps"), arg("weight_decay"),
        arg("decoupled"), arg("amsgrad"), arg("grad_scale") = 1.0, arg("grad_scale_ptr") = 0,
        arg("stream") = 0, "torch.optim.Adam / AdamW (decoupled) step on device tensors");
  m.def("adagrad_step", &adagrad_step, arg("dtype"), arg("params"), arg("grads"),
        arg("state_sums"), arg("sizes"), arg("l1"), arg("l2"), arg("step"), arg("lr"),
        arg("lr_decay"), arg("weight_decay"), arg("eps"), arg("grad_scale") = 1.0,
        arg("grad_scale_ptr") = 0, arg("stream") = 0, "torch.optim.Adagrad step on device tensors");
  m.def("rmsprop_step", &rmsprop_step, arg("dtype"), arg("params"), arg("grads"),
        arg("square_avgs"), arg("momentum_buffers"), arg("grad_avgs"), arg("sizes"), arg("l1"),
        arg("l2"), arg("lr"), arg("alpha"), arg("eps"), arg("weight_decay"), arg("momentum"),
        arg("centered"), arg("grad_scale") = 1.0, arg("grad_scale_ptr") = 0, arg("stream") = 0,
        "torch.optim.RMSprop step on device tensors");
  m.def("global_norm_partials",
        [](const Sizes& sizes) { return cuda::global_norm_partials(sizes.data(), int64_t(sizes.size())); },
        arg("sizes"), "doubles of workspace global_norm needs for tensors of these sizes");
  m.def("global_norm", &global_norm, arg("dtype"), arg("tensors"), arg("sizes"), arg("max_norm"),
        arg("partials"), arg("partials_capacity"), arg("out"), arg("stream") = 0,
        "out[0] = 2-norm of all tensors, out[1] = clip coefficient (device doubles), deterministic");
  m.def("scale_tensors", &scale_tensors, arg("dtype"), arg("tensors"), arg("sizes"),
        arg("factor"), arg("factor_ptr") = 0, arg("stream") = 0,
        "x *= factor * (*factor_ptr when given) for every tensor");
  m.def("batch_norm_workspace_bytes", &cuda::batch_norm_workspace_bytes, arg("N"), arg("F"));
  m.def("batch_norm_train", &batch_norm_train, arg("dtype"), arg("x"), arg("N"), arg("F"),
        arg("gamma"), arg("beta"), arg("running_mean"), arg("running_var"), arg("momentum"),
        arg("eps"), arg("y"), arg("save_mean"), arg("save_invstd"), arg("workspace"),
        arg("workspace_bytes"), arg("stream") = 0);
  m.def("batch_norm_infer", &batch_norm_infer, arg("dtype"), arg("x"), arg("N"), arg("F"),
        arg("gamma"), arg("beta"), arg("running_mean"), arg("running_var"), arg("eps"), arg("y"),
        arg("workspace"), arg("workspace_bytes"), arg("stream") = 0);
  m.def("batch_norm_backward", &batch_norm_backward, arg("dtype"), arg("dy"), arg("x"), arg("N"),
        arg("F"), arg("gamma"), arg("save_mean"), arg("save_invstd"), arg("dx"), arg("dgamma"),
        arg("dbeta"), arg("workspace"), arg("workspace_bytes"), arg("stream") = 0);
  m.def("column_sums_workspace_bytes", &cuda::column_sums_workspace_bytes, arg("N"), arg("F"));
  m.def("sum_rows", &sum_rows, arg("dtype"), arg("x"), arg("N"), arg("F"), arg("out"),
        arg("mean"), arg("workspace"), arg("workspace_bytes"), arg("stream") = 0);
  m.def("argmax_rows", &argmax_rows, arg("dtype"), arg("x"), arg("N"), arg("F"), arg("idx"),
        arg("stream") = 0);
  m.def("count_correct", &count_correct, arg("dtype"), arg("scores"), arg("labels"), arg("N"),
        arg("C"), arg("out"), arg("stream") = 0,
        "out[0] = rows whose argmax is the label, out[1] = rows with a label outside [0, C)");
}

}  // namespace fastnn
