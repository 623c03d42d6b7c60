// Multi-tensor optimizer steps, global norm and scaling; see optim.h for the contract. Compiled
// with -fmad=false (CMakeLists.txt): every expression below is the CPU loop's (cpu/optim_loops.h)
// operation for operation, so float and double updates match the CPU bit for bit.
#include "cuda/optim.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/error.h"
#include "cuda/elem_util.cuh"

namespace fastnn {
namespace cuda {
namespace {

constexpr int kMaxTensors = 128;  // table entries per launch (the parameter space holds them)
constexpr int64_t kChunk = 8192;  // elements of one tensor handled by one block at a time
constexpr int kThreads = 256;

// The per-launch table, passed by value as the kernel argument (~9 KiB for double). Unused
// state pointers are null.
template <class T>
struct Table {
  T* p[kMaxTensors];
  const T* g[kMaxTensors];
  T* s[3][kMaxTensors];
  int64_t n[kMaxTensors];
  T l1[kMaxTensors], l2x2[kMaxTensors];
  int64_t chunk_start[kMaxTensors + 1];  // prefix sums of chunk counts: the chunk -> tensor map
  int count;
  int64_t first_chunk;  // global index of this launch's chunk 0 (where norm partials go)
};
static_assert(sizeof(Table<double>) < 32000, "the table must fit the kernel parameter space");




// The tensor holding chunk c: the last t with chunk_start[t] <= c (uniform across the block).
template <class T>
__device__ __forceinline__ int find_tensor(const Table<T>& tab, int64_t c) {
  int lo = 0, hi = tab.count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (tab.chunk_start[mid] <= c) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// 16 bytes of T: one 128-bit load or store when the address is aligned.
template <class T>
struct alignas(16) Vec {
  T v[16 / sizeof(T)];
};

__device__ __forceinline__ bool aligned16(const void* a) {
  return (reinterpret_cast<uintptr_t>(a) & 15) == 0;
}

// ------------------------------------------------------------------ the element updates
// g = scale * grad + l1 * sign(p) + l2x2 * p, as cpu/optim_loops.h's read_grad.
template <class T>
__device__ __forceinline__ T read_grad(T g, T p, T scale, T l1, T l2x2) {
  const T sign = T(p > T(0)) - T(p < T(0));
  return scale * g + l1 * sign + l2x2 * p;
}

template <class T>
__device__ __forceinline__ T lerp(T self, T end, T w) {
  return fabs(w) < T(0.5) ? self + w * (end - self) : end - (end - self) * (T(1) - w);
}

// Each update: kMask says which of state[0..2] it reads and writes; apply(p, g, s) with g
// already penalized.
template <class T, int kMode>  // 0 no momentum, 1 first step (buf = g), 2 later steps
struct SgdOp {
  static constexpr int kMask = kMode == 0 ? 0 : 1;
  T neg_lr, wd, mom, keep;
  bool nesterov;
  __device__ __forceinline__ void operator()(T& p, T d, T* s) const {
    const T pi = p;
    d = d + wd * pi;
    if (kMode != 0) {
      const T b = kMode == 1 ? d : s[0] * mom + keep * d;
      s[0] = b;
      d = nesterov ? d + mom * b : b;
    }
    p = pi + neg_lr * d;
  }
};

template <class T, bool kAmsgrad>
struct AdamOp {
  static constexpr int kMask = kAmsgrad ? 7 : 3;
  T decay, wd, w1, beta2, omb2, bc2_sqrt, eps, neg_step;
  __device__ __forceinline__ void operator()(T& p, T d, T* s) const {
    const T pi = p;
    d = d + wd * pi;
    const T mi = lerp(s[0], d, w1);
    const T vi = s[1] * beta2 + omb2 * d * d;
    s[0] = mi;
    s[1] = vi;
    T vv = vi;
    if (kAmsgrad) {
      vv = s[2] >= vi ? s[2] : vi;
      s[2] = vv;
    }
    const T denom = sqrt(vv) / bc2_sqrt + eps;
    p = pi * decay + (neg_step * mi) / denom;
  }
};

template <class T>
struct AdagradOp {
  static constexpr int kMask = 1;
  T wd, eps, neg_clr;
  __device__ __forceinline__ void operator()(T& p, T d, T* s) const {
    const T pi = p;
    d = d + wd * pi;
    const T si = s[0] + d * d;
    s[0] = si;
    p = pi + (neg_clr * d) / (sqrt(si) + eps);
  }
};

template <class T, bool kCentered, bool kMomentum>
struct RmspropOp {
  static constexpr int kMask = 1 | (kMomentum ? 2 : 0) | (kCentered ? 4 : 0);
  T neg_lr, wd, alpha, oma, eps, mom;
  __device__ __forceinline__ void operator()(T& p, T d, T* s) const {
    const T pi = p;
    d = d + wd * pi;
    const T si = s[0] * alpha + oma * d * d;
    s[0] = si;
    T avg;
    if (kCentered) {
      const T gai = lerp(s[2], d, oma);
      s[2] = gai;
      avg = sqrt(si - gai * gai);
    } else {
      avg = sqrt(si);
    }
    avg = avg + eps;
    if (kMomentum) {
      const T b = s[1] * mom + d / avg;
      s[1] = b;
      p = pi + neg_lr * b;
    } else {
      p = pi + (neg_lr * d) / avg;
    }
  }
};

// ------------------------------------------------------------------ the kernels
// Per chunk: 128-bit loads and stores when every array of the tensor is 16-byte aligned (chunk
// starts are multiples of kChunk, so the whole chunk then is), scalar otherwise and for the tail.
template <class T, class Op>
__global__ void __launch_bounds__(kThreads)
    multi_tensor_step(const Table<T> tab, const Op op, double grad_scale, const double* scale_dev,
                      const int* skip_dev) {
  if (skip_dev && *skip_dev) return;  // the caller's device flag: skip this update
  constexpr int W = 16 / sizeof(T);
  const T scale = T(scale_dev ? grad_scale * *scale_dev : grad_scale);
  const int64_t total = tab.chunk_start[tab.count];
  for (int64_t c = blockIdx.x; c < total; c += gridDim.x) {
    const int t = find_tensor(tab, c);
    const int64_t begin = (c - tab.chunk_start[t]) * kChunk;
    const int64_t n = min(kChunk, tab.n[t] - begin);
    T* p = tab.p[t] + begin;
    const T* g = tab.g[t] + begin;
    T* s[3];
    bool vec = aligned16(p) && aligned16(g);
#pragma unroll
    for (int k = 0; k < 3; ++k) {
      s[k] = (Op::kMask >> k & 1) ? tab.s[k][t] + begin : nullptr;
      if (Op::kMask >> k & 1) vec = vec && aligned16(s[k]);
    }
    const T l1 = tab.l1[t], l2x2 = tab.l2x2[t];
    int64_t done = 0;
    if (vec) {
      const int64_t nv = n / W;
      for (int64_t v = threadIdx.x; v < nv; v += kThreads) {
        Vec<T> pv = reinterpret_cast<const Vec<T>*>(p)[v];
        const Vec<T> gv = reinterpret_cast<const Vec<T>*>(g)[v];
        Vec<T> sv[3];
#pragma unroll
        for (int k = 0; k < 3; ++k)
          if (Op::kMask >> k & 1) sv[k] = reinterpret_cast<const Vec<T>*>(s[k])[v];
#pragma unroll
        for (int j = 0; j < W; ++j) {
          T st[3] = {sv[0].v[j], sv[1].v[j], sv[2].v[j]};
          op(pv.v[j], read_grad(gv.v[j], pv.v[j], scale, l1, l2x2), st);
#pragma unroll
          for (int k = 0; k < 3; ++k) sv[k].v[j] = st[k];
        }
        reinterpret_cast<Vec<T>*>(p)[v] = pv;
#pragma unroll
        for (int k = 0; k < 3; ++k)
          if (Op::kMask >> k & 1) reinterpret_cast<Vec<T>*>(s[k])[v] = sv[k];
      }
      done = nv * W;
    }
    for (int64_t i = done + threadIdx.x; i < n; i += kThreads) {
      T st[3] = {T(0), T(0), T(0)};
#pragma unroll
      for (int k = 0; k < 3; ++k)
        if (Op::kMask >> k & 1) st[k] = s[k][i];
      T pi = p[i];
      op(pi, read_grad(g[i], pi, scale, l1, l2x2), st);
      p[i] = pi;
#pragma unroll
      for (int k = 0; k < 3; ++k)
        if (Op::kMask >> k & 1) s[k][i] = st[k];
    }
  }
}

// Sum of the kThreads values of `v` in a fixed tree: shuffles within warps, then warp 0 adds
// the eight warp sums. Same order on every run.
__device__ double block_sum(double v) {
  __shared__ double warp_sums[kThreads / 32];
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // warp_sums may still be read from the previous call
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  double total = 0;
  if (threadIdx.x == 0)
    for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
  return total;  // valid in thread 0
}

// partials[first_chunk + c] = sum of squares of chunk c, in double.
template <class T>
__global__ void __launch_bounds__(kThreads) multi_tensor_sumsq(const Table<T> tab, double* partials) {
  constexpr int W = 16 / sizeof(T);
  const int64_t total = tab.chunk_start[tab.count];
  for (int64_t c = blockIdx.x; c < total; c += gridDim.x) {
    const int t = find_tensor(tab, c);
    const int64_t begin = (c - tab.chunk_start[t]) * kChunk;
    const int64_t n = min(kChunk, tab.n[t] - begin);
    const T* x = tab.p[t] + begin;
    double acc = 0;
    int64_t done = 0;
    if (aligned16(x)) {
      const int64_t nv = n / W;
      for (int64_t v = threadIdx.x; v < nv; v += kThreads) {
        const Vec<T> xv = reinterpret_cast<const Vec<T>*>(x)[v];
#pragma unroll
        for (int j = 0; j < W; ++j) acc += double(xv.v[j]) * double(xv.v[j]);
      }
      done = nv * W;
    }
    for (int64_t i = done + threadIdx.x; i < n; i += kThreads) acc += double(x[i]) * double(x[i]);
    const double s = block_sum(acc);
    if (threadIdx.x == 0) partials[tab.first_chunk + c] = s;
  }
}

// One block: the chunk sums in a fixed order (thread i takes i, i + 1024, ... in turn, then a
// fixed tree), the norm and the clip coefficient.
constexpr int kFinalThreads = 1024;
__global__ void __launch_bounds__(kFinalThreads)
    global_norm_finish(const double* partials, int64_t count, double max_norm, double* out) {
  __shared__ double sums[kFinalThreads];
  double acc = 0;
  for (int64_t i = threadIdx.x; i < count; i += kFinalThreads) acc += partials[i];
  sums[threadIdx.x] = acc;
  __syncthreads();
  for (int half = kFinalThreads / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) sums[threadIdx.x] += sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const double norm = sqrt(sums[0]);
    const double coef = max_norm / (norm + 1e-6);
    out[0] = norm;
    out[1] = isfinite(norm) && coef < 1.0 ? coef : 1.0;  // torch clamps the coefficient to 1
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    multi_tensor_scale(const Table<T> tab, double factor, const double* factor_dev) {
  constexpr int W = 16 / sizeof(T);
  const T f = T(factor_dev ? factor * *factor_dev : factor);
  const int64_t total = tab.chunk_start[tab.count];
  for (int64_t c = blockIdx.x; c < total; c += gridDim.x) {
    const int t = find_tensor(tab, c);
    const int64_t begin = (c - tab.chunk_start[t]) * kChunk;
    const int64_t n = min(kChunk, tab.n[t] - begin);
    T* x = tab.p[t] + begin;
    int64_t done = 0;
    if (aligned16(x)) {
      const int64_t nv = n / W;
      for (int64_t v = threadIdx.x; v < nv; v += kThreads) {
        Vec<T> xv = reinterpret_cast<Vec<T>*>(x)[v];
#pragma unroll
        for (int j = 0; j < W; ++j) xv.v[j] *= f;
        reinterpret_cast<Vec<T>*>(x)[v] = xv;
      }
      done = nv * W;
    }
    for (int64_t i = done + threadIdx.x; i < n; i += kThreads) x[i] *= f;
  }
}

// ------------------------------------------------------------------ host side
// Cuts the tensor list into tables of at most kMaxTensors non-empty tensors and calls
// launch(table) for each; fill(table, slot, i) copies tensor i's pointers.
template <class T, class Fill, class Launch>
void for_each_table(int64_t count, const int64_t* sizes, const Fill& fill, const Launch& launch) {
  FASTNN_CHECK(count >= 0, "cuda optim: negative tensor count");
  for (int64_t i = 0; i < count; ++i)  // all checks before the first launch
    FASTNN_CHECK(sizes[i] >= 0, "cuda optim: tensor " + std::to_string(i) + " has a negative size");
  Table<T> tab;
  int64_t chunks_before = 0;
  int64_t i = 0;
  while (i < count) {
    std::memset(&tab, 0, sizeof(tab));
    tab.first_chunk = chunks_before;
    int k = 0;
    int64_t chunks = 0;
    for (; i < count && k < kMaxTensors; ++i) {
      if (sizes[i] == 0) continue;
      tab.n[k] = sizes[i];
      tab.chunk_start[k] = chunks;
      fill(tab, k, i);
      chunks += (sizes[i] + kChunk - 1) / kChunk;
      ++k;
    }
    if (k == 0) break;
    tab.count = k;
    tab.chunk_start[k] = chunks;
    launch(tab, chunks);
    chunks_before += chunks;
  }
}

template <class T, class Op>
void run_step(const OptimTensor<T>* t, int64_t count, const Op& op, double grad_scale,
              const double* scale_dev, void* stream, const char* name,
              const int* skip_dev = nullptr) {
  std::vector<int64_t> sizes(static_cast<size_t>(std::max<int64_t>(count, 0)));
  // Every tensor is checked before the first launch, so a bad entry never leaves the list
  // half updated.
  for (int64_t i = 0; i < count; ++i) {
    sizes[i] = t[i].n;
    if (t[i].n <= 0) continue;
    FASTNN_CHECK(t[i].param && t[i].grad,
                 std::string(name) + ": tensor " + std::to_string(i) + " has a null param or grad");
    for (int s = 0; s < 3; ++s)
      FASTNN_CHECK(!(Op::kMask >> s & 1) || t[i].state[s],
                   std::string(name) + ": tensor " + std::to_string(i) + " lacks state " +
                       std::to_string(s));
  }
  cudaGetLastError();  // an earlier, unrelated launch error must not be blamed on this kernel
  for_each_table<T>(
      count, sizes.data(),
      [&](Table<T>& tab, int k, int64_t i) {
        tab.p[k] = t[i].param;
        tab.g[k] = t[i].grad;
        for (int s = 0; s < 3; ++s) tab.s[s][k] = t[i].state[s];
        tab.l1[k] = T(t[i].l1);
        tab.l2x2[k] = T(2.0 * t[i].l2);
      },
      [&](const Table<T>& tab, int64_t chunks) {
        multi_tensor_step<T, Op><<<elem::grid_for(chunks, 1), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
            tab, op, grad_scale, scale_dev, skip_dev);
        check_launch(name);
      });
}

}  // namespace

template <class T>
void sgd_step(const OptimTensor<T>* t, int64_t count, const SgdOptions& o,
              const double* scale_dev, void* stream, const int* skip_dev) {
  const T neg_lr = T(-o.lr), wd = T(o.weight_decay), mom = T(o.momentum), keep = T(1.0 - o.dampening);
  if (o.momentum == 0)
    run_step(t, count, SgdOp<T, 0>{neg_lr, wd, mom, keep, o.nesterov}, o.grad_scale, scale_dev,
             stream, "multi_tensor_step<sgd>", skip_dev);
  else if (o.first_step)
    run_step(t, count, SgdOp<T, 1>{neg_lr, wd, mom, keep, o.nesterov}, o.grad_scale, scale_dev,
             stream, "multi_tensor_step<sgd first step>", skip_dev);
  else
    run_step(t, count, SgdOp<T, 2>{neg_lr, wd, mom, keep, o.nesterov}, o.grad_scale, scale_dev,
             stream, "multi_tensor_step<sgd momentum>", skip_dev);
}

template <class T>
void adam_step(const OptimTensor<T>* t, int64_t count, const AdamOptions& o,
               const double* scale_dev, void* stream, const int* skip_dev) {
  // The scalars in double, as torch computes them in Python (and cpu/optim.cpp), rounded once.
  const double step = double(o.step);
  const double bc1 = 1.0 - std::pow(o.beta1, step);
  const double bc2 = 1.0 - std::pow(o.beta2, step);
  const T decay = T(o.decoupled ? 1.0 - o.lr * o.weight_decay : 1.0);
  const T wd = T(o.decoupled ? 0.0 : o.weight_decay);
  const T w1 = T(1.0 - o.beta1), beta2 = T(o.beta2), omb2 = T(1.0 - o.beta2);
  const T bc2_sqrt = T(std::sqrt(bc2)), eps = T(o.eps), neg_step = T(-(o.lr / bc1));
  if (o.amsgrad)
    run_step(t, count, AdamOp<T, true>{decay, wd, w1, beta2, omb2, bc2_sqrt, eps, neg_step},
             o.grad_scale, scale_dev, stream, "multi_tensor_step<adam amsgrad>", skip_dev);
  else
    run_step(t, count, AdamOp<T, false>{decay, wd, w1, beta2, omb2, bc2_sqrt, eps, neg_step},
             o.grad_scale, scale_dev, stream, "multi_tensor_step<adam>", skip_dev);
}

template <class T>
void adagrad_step(const OptimTensor<T>* t, int64_t count, const AdagradOptions& o,
                  const double* scale_dev, void* stream, const int* skip_dev) {
  const double clr = o.lr / (1.0 + double(o.step - 1) * o.lr_decay);
  run_step(t, count, AdagradOp<T>{T(o.weight_decay), T(o.eps), T(-clr)}, o.grad_scale, scale_dev,
           stream, "multi_tensor_step<adagrad>", skip_dev);
}

template <class T>
void rmsprop_step(const OptimTensor<T>* t, int64_t count, const RmspropOptions& o,
                  const double* scale_dev, void* stream, const int* skip_dev) {
  const T c[6] = {T(-o.lr), T(o.weight_decay), T(o.alpha), T(1.0 - o.alpha), T(o.eps), T(o.momentum)};
  const bool mom = o.momentum > 0;
  const char* name = "multi_tensor_step<rmsprop>";
  if (o.centered && mom)
    run_step(t, count, RmspropOp<T, true, true>{c[0], c[1], c[2], c[3], c[4], c[5]}, o.grad_scale,
             scale_dev, stream, name, skip_dev);
  else if (o.centered)
    run_step(t, count, RmspropOp<T, true, false>{c[0], c[1], c[2], c[3], c[4], c[5]}, o.grad_scale,
             scale_dev, stream, name, skip_dev);
  else if (mom)
    run_step(t, count, RmspropOp<T, false, true>{c[0], c[1], c[2], c[3], c[4], c[5]}, o.grad_scale,
             scale_dev, stream, name, skip_dev);
  else
    run_step(t, count, RmspropOp<T, false, false>{c[0], c[1], c[2], c[3], c[4], c[5]},
             o.grad_scale, scale_dev, stream, name, skip_dev);
}

int64_t global_norm_partials(const int64_t* sizes, int64_t count) {
  int64_t chunks = 0;
  for (int64_t i = 0; i < count; ++i)
    if (sizes[i] > 0) chunks += (sizes[i] + kChunk - 1) / kChunk;
  return chunks;
}

template <class T>
void global_norm(const T* const* data, const int64_t* sizes, int64_t count, double max_norm,
                 double* partials, int64_t capacity, double* out, void* stream) {
  FASTNN_CHECK(out != nullptr, "cuda global_norm: out is null");
  const int64_t need = global_norm_partials(sizes, count);
  FASTNN_CHECK(capacity >= need, "cuda global_norm: partials holds " + std::to_string(capacity) +
                                     " doubles, needs " + std::to_string(need));
  FASTNN_CHECK(need == 0 || partials != nullptr, "cuda global_norm: partials is null");
  for (int64_t i = 0; i < count; ++i)
    FASTNN_CHECK(sizes[i] <= 0 || data[i], "cuda global_norm: tensor " + std::to_string(i) + " is null");
  const auto s = static_cast<cudaStream_t>(stream);
  cudaGetLastError();
  for_each_table<T>(
      count, sizes,
      [&](Table<T>& tab, int k, int64_t i) { tab.p[k] = const_cast<T*>(data[i]); },  // only read
      [&](const Table<T>& tab, int64_t chunks) {
        multi_tensor_sumsq<T><<<elem::grid_for(chunks, 1), kThreads, 0, s>>>(tab, partials);
        check_launch("multi_tensor_sumsq");
      });
  global_norm_finish<<<1, kFinalThreads, 0, s>>>(partials, need, max_norm, out);
  check_launch("global_norm_finish");
}

template <class T>
void scale_tensors(T* const* data, const int64_t* sizes, int64_t count, double factor,
                   const double* factor_dev, void* stream) {
  for (int64_t i = 0; i < count; ++i)
    FASTNN_CHECK(sizes[i] <= 0 || data[i], "cuda scale_tensors: tensor " + std::to_string(i) + " is null");
  cudaGetLastError();
  for_each_table<T>(
      count, sizes, [&](Table<T>& tab, int k, int64_t i) { tab.p[k] = data[i]; },
      [&](const Table<T>& tab, int64_t chunks) {
        multi_tensor_scale<T><<<elem::grid_for(chunks, 1), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
            tab, factor, factor_dev);
        check_launch("multi_tensor_scale");
      });
}

#define FASTNN_CUDA_OPTIM_INSTANTIATE(T)                                                         \
  template void sgd_step<T>(const OptimTensor<T>*, int64_t, const SgdOptions&,         \
                            const double*, void*, const int*);                                   \
  template void adam_step<T>(const OptimTensor<T>*, int64_t, const AdamOptions&,       \
                             const double*, void*, const int*);                                  \
  template void adagrad_step<T>(const OptimTensor<T>*, int64_t,                             \
                                const AdagradOptions&, const double*, void*, const int*);   \
  template void rmsprop_step<T>(const OptimTensor<T>*, int64_t,                             \
                                const RmspropOptions&, const double*, void*, const int*);   \
  template void global_norm<T>(const T* const*, const int64_t*, int64_t, double, double*,        \
                               int64_t, double*, void*);                                         \
  template void scale_tensors<T>(T* const*, const int64_t*, int64_t, double, const double*, void*);
FASTNN_CUDA_OPTIM_INSTANTIATE(float)
FASTNN_CUDA_OPTIM_INSTANTIATE(double)
#undef FASTNN_CUDA_OPTIM_INSTANTIATE

}  // namespace cuda
}  // namespace fastnn
