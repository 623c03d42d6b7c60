// fastnn._cuda only: the kernels on raw device addresses (Python ints: a fastnn.Tensor's or a
// torch tensor's data_ptr(); 0 = absent), row strides in elements, enqueued on the given stream
// (0 = the legacy default stream) without synchronising, with the kernel variant, precision or
// path chosen by the caller. For the benchmarks and the kernel tests, which force each variant;
// fastnn.ops reaches the same kernels through the op families (bind_dense.cpp) on Tensors. The
// caller owns the shape checks, since an address carries no size. Conversion only.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ops/activation.h"
#include "cuda/activations.h"
#include "cuda/batchnorm.h"
#include "cuda/dense.h"
#include "cuda/fused_mlp.h"
#include "cuda/gemm.h"
#include "cuda/losses.h"
#include "cuda/optim.h"
#include "cuda/reduce.h"

namespace py = pybind11;
using namespace fastnn;

namespace {

template <class T>
T* ptr(uintptr_t p) { return reinterpret_cast<T*>(p); }

// Row-major operands with the given row strides (elements); op() transposes when asked.
void gemm_device(uintptr_t a, uintptr_t b, uintptr_t c, int64_t M, int64_t N, int64_t K,
                 int64_t lda, int64_t ldb, int64_t ldc, bool trans_a, bool trans_b,
                 double alpha, double beta, uintptr_t bias, const std::string& activation,
                 double act_param, uintptr_t stream,
                 const std::string& variant) {
  const cuda::GemmVariant var = cuda::gemm_variant_from_name(variant);
  if (M < 0 || N < 0 || K < 0) throw ValueError("gemm_device: negative size");
  if (!a || !b || !c) throw ValueError("gemm_device: null device pointer");
  GemmArgs<float> g;
  g.M = M;
  g.N = N;
  g.K = K;
  g.A = reinterpret_cast<const float*>(a);
  g.rsa = trans_a ? 1 : lda;
  g.csa = trans_a ? lda : 1;
  g.B = reinterpret_cast<const float*>(b);
  g.rsb = trans_b ? 1 : ldb;
  g.csb = trans_b ? ldb : 1;
  g.C = reinterpret_cast<float*>(c);
  g.rsc = ldc;
  g.csc = 1;
  g.alpha = float(alpha);
  g.beta = float(beta);
  g.bias = reinterpret_cast<const float*>(bias);
  g.act = act_from_name(activation);
  g.act_param = float(act_param);
  py::gil_scoped_release release;
  cuda::gemm_variant(g, reinterpret_cast<void*>(stream), var);
}

void dense_backward_device(uintptr_t dy, uintptr_t x, uintptr_t w, uintptr_t gate,
                           const std::string& activation, double act_param, bool from_output,
                           uintptr_t dw, uintptr_t db, uintptr_t dx, int64_t M, int64_t K,
                           int64_t N, int64_t ldy, int64_t ldx, int64_t ldw, int64_t lddw,
                           int64_t lddx, bool accumulate, uintptr_t workspace,
                           int64_t workspace_bytes, uintptr_t stream,
                           const std::string& precision, const std::string& path) {
  const fastnn::Precision prec = fastnn::precision_from_name(precision);
  const cuda::DenseBackwardPath p = cuda::dense_backward_path_from_name(path);
  const Act act = act_from_name(activation);
  if (act != Act::None && gate == 0 && M * N > 0)
    throw ValueError("dense_backward: activation '" + activation + "' needs the gate (z or y)");
  DenseBackwardArgs<float> a;
  a.M = M;
  a.K = K;
  a.N = N;
  a.dY = ptr<const float>(dy);
  a.ldy = ldy;
  a.X = ptr<const float>(x);
  a.ldx = ldx;
  a.W = ptr<const float>(w);
  a.ldw = ldw;
  if (act != Act::None) {
    a.gate.data = ptr<const float>(gate);
    a.gate.act = act;
    a.gate.param = float(act_param);
    a.gate.from_output = from_output;
  }
  a.dW = ptr<float>(dw);
  a.lddw = lddw;
  a.db = ptr<float>(db);
  a.dX = ptr<float>(dx);
  a.lddx = lddx;
  a.accumulate = accumulate;
  py::gil_scoped_release release;
  cuda::dense_backward_path(a, ptr<void>(workspace), workspace_bytes, ptr<void>(stream), prec, p);
}

// float32; v is x, or y = act(x) when from_output.
void act_backward_device(const std::string& activation, double param, uintptr_t dy, uintptr_t v,
                         uintptr_t dx, int64_t n, uintptr_t stream, bool from_output) {
  const Act act = act_from_name(activation);
  const auto f = from_output ? &cuda::act_backward_from_output<float> : &cuda::act_backward<float>;
  py::gil_scoped_release release;
  f(act, float(param), ptr<const float>(dy), ptr<const float>(v), ptr<float>(dx), n,
    ptr<void>(stream));
}

// float32 column sums (or means) of an (N, F) array.
void sum_rows_device(uintptr_t x, int64_t N, int64_t F, uintptr_t out, bool mean,
                     uintptr_t workspace, int64_t workspace_bytes, uintptr_t stream) {
  py::gil_scoped_release release;
  cuda::sum_rows<float>(ptr<const float>(x), N, F, ptr<float>(out), mean, ptr<void>(workspace),
                        workspace_bytes, ptr<void>(stream));
}

Act parse_act(const py::object& a) {
  if (a.is_none()) return Act::None;
  if (!py::isinstance<py::str>(a)) throw TypeError("activations: expected None or a string");
  return act_from_name(a.cast<std::string>());
}

// The layer list from widths / activations / parameters (weights and biases filled by callers).
std::vector<cuda::FusedMlpLayer> make_layers(const std::vector<int64_t>& widths,
                                             const py::list& acts,
                                             const std::vector<double>& params) {
  if (widths.size() < 2) throw ValueError("widths: expected [in, out_0, ...], at least 2 entries");
  const size_t n = widths.size() - 1;
  if (py::len(acts) != n || params.size() != n)
    throw ValueError("activations and act_params: expected one per layer (" + std::to_string(n) +
                     ")");
  std::vector<cuda::FusedMlpLayer> layers(n);
  for (size_t l = 0; l < n; ++l) {
    layers[l].in = widths[l];
    layers[l].out = widths[l + 1];
    layers[l].act = parse_act(acts[l]);
    layers[l].act_param = float(params[l]);
  }
  return layers;
}

bool applies(const std::vector<int64_t>& widths, const py::list& acts,
             const std::vector<double>& params, const std::string& precision) {
  const auto layers = make_layers(widths, acts, params);
  return cuda::fused_mlp_applies(layers.data(), int64_t(layers.size()),
                                 fastnn::precision_from_name(precision));
}

std::vector<cuda::FusedMlpLayer> device_layers(const std::vector<int64_t>& widths,
                                               const py::list& acts,
                                               const std::vector<double>& params,
                                               const std::vector<uintptr_t>& weights,
                                               const std::vector<uintptr_t>& biases) {
  auto layers = make_layers(widths, acts, params);
  if (weights.size() != layers.size() || (!biases.empty() && biases.size() != layers.size()))
    throw ValueError("weights and biases: expected one address per layer");
  for (size_t l = 0; l < layers.size(); ++l) {
    layers[l].W = ptr<const float>(weights[l]);
    layers[l].b = biases.empty() ? nullptr : ptr<const float>(biases[l]);
  }
  return layers;
}

void forward_device(uintptr_t X, int64_t M, const std::vector<int64_t>& widths,
                    const std::vector<uintptr_t>& weights, const std::vector<uintptr_t>& biases,
                    const py::list& acts, const std::vector<double>& params,
                    const std::vector<uintptr_t>& outputs, const std::string& precision,
                    uintptr_t stream) {
  const auto layers = device_layers(widths, acts, params, weights, biases);
  if (outputs.size() != layers.size()) throw ValueError("outputs: expected one address per layer");
  std::vector<float*> outs(outputs.size());
  for (size_t l = 0; l < outs.size(); ++l) outs[l] = ptr<float>(outputs[l]);
  const fastnn::Precision p = fastnn::precision_from_name(precision);
  py::gil_scoped_release release;
  cuda::fused_mlp_forward(layers.data(), int64_t(layers.size()), ptr<const float>(X), M,
                          outs.data(), p, reinterpret_cast<void*>(stream));
}

void backward_device(int64_t M, const std::vector<int64_t>& widths,
                     const std::vector<uintptr_t>& weights, const py::list& acts,
                     const std::vector<double>& params, const std::vector<uintptr_t>& outputs,
                     uintptr_t dY, const std::vector<uintptr_t>& dZ, uintptr_t dX,
                     const std::string& precision, uintptr_t stream) {
  const auto layers = device_layers(widths, acts, params, weights, {});
  if (outputs.size() != layers.size() || dZ.size() != layers.size())
    throw ValueError("outputs and dZ: expected one address per layer");
  std::vector<const float*> outs(outputs.size());
  std::vector<float*> dzs(dZ.size());
  for (size_t l = 0; l < outs.size(); ++l) {
    outs[l] = ptr<const float>(outputs[l]);
    dzs[l] = ptr<float>(dZ[l]);
  }
  const fastnn::Precision p = fastnn::precision_from_name(precision);
  py::gil_scoped_release release;
  cuda::fused_mlp_backward(layers.data(), int64_t(layers.size()), nullptr, outs.data(),
                           ptr<const float>(dY), M, dzs.data(), ptr<float>(dX), p,
                           reinterpret_cast<void*>(stream));
}

}  // namespace

void bind_cuda_device_calls(py::module_& m) {
  // The kernels' workspace sizes, a function of the shapes alone (no device touched); the op
  // bindings allocate them themselves, these are for the raw entry points and their tests.
  m.def("loss_workspace_bytes", &cuda::loss_workspace_bytes,
        "bytes of device workspace a loss call needs");
  m.def("global_norm_partials",
        [](const std::vector<int64_t>& sizes) {
          return cuda::global_norm_partials(sizes.data(), int64_t(sizes.size()));
        },
        py::arg("sizes"), "doubles of workspace global_norm needs for tensors of these sizes");
  m.def("batch_norm_workspace_bytes", &cuda::batch_norm_workspace_bytes, py::arg("N"),
        py::arg("F"));
  m.def("column_sums_workspace_bytes", &cuda::column_sums_workspace_bytes, py::arg("N"),
        py::arg("F"));
  m.def("gemm_device", &gemm_device, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("M"),
        py::arg("N"), py::arg("K"), py::arg("lda"), py::arg("ldb"), py::arg("ldc"),
        py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0, py::arg("bias") = 0, py::arg("activation") = "none",
        py::arg("act_param") = 0.0, py::arg("stream") = 0, py::arg("variant") = "auto",
        "C = act(alpha op(A) op(B) + beta C + bias) on device pointers, enqueued on `stream`; "
        "variant: 'auto', 'v1' (general kernel), 'v2' (fast FP32 path), 'tf32' or 'bf16' (tensor "
        "cores; ValueError unless the v2 layout conditions hold)");
  m.def(
      "dense_backward_workspace_bytes",
      [](int64_t M, int64_t N, const py::object& K) {
        return K.is_none() ? cuda::dense_backward_workspace_bytes(M, N)
                           : cuda::dense_backward_workspace_bytes(M, K.cast<int64_t>(), N);
      },
      py::arg("M"), py::arg("N"), py::arg("K") = py::none(),
      "bytes of device workspace dense_backward_device needs for a batch of M and N outputs; "
      "with K (in_features) also enough for the fused path to split long sums over several "
      "blocks");
  m.def("dense_backward_device", &dense_backward_device, py::arg("dy"), py::arg("x"),
        py::arg("w"), py::arg("gate"), py::arg("activation"), py::arg("act_param"),
        py::arg("from_output"), py::arg("dw"), py::arg("db"), py::arg("dx"), py::arg("M"),
        py::arg("K"), py::arg("N"), py::arg("ldy"), py::arg("ldx"), py::arg("ldw"),
        py::arg("lddw"), py::arg("lddx"), py::arg("accumulate"), py::arg("workspace"),
        py::arg("workspace_bytes"), py::arg("stream") = 0, py::arg("precision") = "fp32",
        py::arg("path") = "auto",
        "Backward of y = act(x @ w + b) on float32 device arrays: dz = dy * act'(gate) (gate = z, "
        "or y with from_output), dw (+)= x.T @ dz, db (+)= dz.sum(0) (db = 0: skipped), "
        "dx = dz @ w.T (dx = 0: skipped). x (M, K), w (K, N), dy and gate (M, N) share the row "
        "stride ldy. precision: 'fp32', 'tf32' or 'bf16'; path: 'auto', 'fused' (FP32 only), "
        "'composed', or 'fused64' / 'fused128' with the tile size forced");
  m.def("act_backward_device", &act_backward_device, py::arg("activation"), py::arg("param"),
        py::arg("dy"), py::arg("v"), py::arg("dx"), py::arg("n"), py::arg("stream") = 0,
        py::arg("from_output") = false,
        "dx = dy * act'(x) on n float32 device elements; v = x, or y = act(x) with from_output");
  m.def("sum_rows_device", &sum_rows_device, py::arg("x"), py::arg("N"), py::arg("F"),
        py::arg("out"), py::arg("mean"), py::arg("workspace"), py::arg("workspace_bytes"),
        py::arg("stream") = 0,
        "out (F,) = column sums (means) of a float32 (N, F) device array; workspace: "
        "column_sums_workspace_bytes(N, F)");
  m.def("fused_mlp_applies", &applies, py::arg("widths"), py::arg("activations"),
        py::arg("act_params"), py::arg("precision"),
        "Whether the fused MLP kernel takes this stack: widths [in, out_0, ...], one activation "
        "name (or None) and parameter per layer; never touches the GPU");
  m.def("fused_mlp_forward_device", &forward_device, py::arg("X"), py::arg("M"),
        py::arg("widths"), py::arg("weights"), py::arg("biases"), py::arg("activations"),
        py::arg("act_params"), py::arg("outputs"), py::arg("precision") = "fp32",
        py::arg("stream") = 0,
        "The fused MLP forward on device addresses (0 = no bias / no stored output), enqueued "
        "on `stream`");
  m.def("fused_mlp_backward_device", &backward_device, py::arg("M"), py::arg("widths"),
        py::arg("weights"), py::arg("activations"), py::arg("act_params"), py::arg("outputs"),
        py::arg("dY"), py::arg("dZ"), py::arg("dX") = 0, py::arg("precision") = "fp32",
        py::arg("stream") = 0,
        "The fused MLP backward on device addresses (dX = 0: not computed), enqueued on "
        "`stream`");
}
