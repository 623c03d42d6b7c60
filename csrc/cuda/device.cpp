// Caching allocator, per-device streams and copies (see device.h). Host code only: compiled by
// the C++ compiler against the CUDA runtime, so it costs nvcc nothing.
#include "cuda/device.h"

#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.h"

namespace fastnn {
namespace cuda {

DeviceGuard::DeviceGuard(int device) {
  check(cudaGetDevice(&previous_), "cudaGetDevice");
  if (previous_ == device) {
    previous_ = -1;
    return;
  }
  check(cudaSetDevice(device), "cudaSetDevice(" + std::to_string(device) + ")");
}

DeviceGuard::~DeviceGuard() {
  if (previous_ >= 0) cudaSetDevice(previous_);
}

int device_count() {
  // Devices do not come and go within a process; ask the driver once.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      n = 0;
    }
    return n;
  }();
  return count;
}

void check_device(int device) {
  const int n = device_count();
  if (device < 0 || device >= n)
    throw ValueError("device: expected a CUDA device index in [0, " + std::to_string(n) +
                     "), got " + std::to_string(device) +
                     (n == 0 ? " (no CUDA device is available)" : ""));
}

size_t size_class(size_t nbytes) {
  if (nbytes <= 256) return 256;
  // Step = a quarter of the largest power of two below nbytes: classes 4/4, 5/4, 6/4, 7/4 of it.
  int log2 = 63 - __builtin_clzll(static_cast<unsigned long long>(nbytes - 1));
  const size_t step = size_t(1) << (log2 >= 10 ? log2 - 2 : 8);
  return (nbytes + step - 1) / step * step;
}

namespace {

struct DeviceState {
  cudaStream_t stream = nullptr;
  std::unordered_map<size_t, std::vector<void*>> free_lists;  // size class -> blocks
  std::unordered_map<void*, size_t> live;                     // block -> size class
  AllocatorStats stats;
};

struct Registry {
  std::mutex mu;
  std::vector<std::unique_ptr<DeviceState>> devices;

  // Caller holds mu and has validated `device`.
  DeviceState& at(int device) {
    if (devices.size() <= size_t(device)) devices.resize(size_t(device) + 1);
    if (!devices[size_t(device)]) devices[size_t(device)] = std::make_unique<DeviceState>();
    return *devices[size_t(device)];
  }
};

// Never destroyed: blocks may be freed by DLPack deleters during interpreter shutdown, after
// static destructors have run. The driver reclaims device memory at process exit.
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

std::string device_name(int device) { return "cuda:" + std::to_string(device); }

}  // namespace

cudaStream_t stream(int device) {
  check_device(device);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  DeviceState& st = r.at(device);
  if (!st.stream) {
    DeviceGuard guard(device);
    check(cudaStreamCreateWithFlags(&st.stream, cudaStreamNonBlocking),
          "cudaStreamCreateWithFlags on " + device_name(device));
  }
  return st.stream;
}

void* device_alloc(size_t nbytes, int device) {
  if (nbytes == 0) return nullptr;
  check_device(device);
  const size_t cls = size_class(nbytes);
  Registry& r = registry();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    DeviceState& st = r.at(device);
    auto it = st.free_lists.find(cls);
    if (it != st.free_lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      st.live.emplace(p, cls);
      st.stats.bytes_cached -= int64_t(cls);
      st.stats.bytes_in_use += int64_t(cls);
      if (st.stats.bytes_in_use > st.stats.peak_bytes_in_use)
        st.stats.peak_bytes_in_use = st.stats.bytes_in_use;
      ++st.stats.num_allocs;
      ++st.stats.num_cache_hits;
      return p;
    }
  }
  // A miss: cudaMalloc outside the lock (it can take milliseconds and synchronise the device).
  DeviceGuard guard(device);
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, cls);
  if (err == cudaErrorMemoryAllocation) {
    // The cache may hold enough memory in blocks of other classes: give it back and retry.
    cudaGetLastError();
    empty_cache(device);
    err = cudaMalloc(&p, cls);
  }
  if (err != cudaSuccess)
    check(err, "cudaMalloc of " + std::to_string(cls) + " bytes on " + device_name(device));
  std::lock_guard<std::mutex> lock(r.mu);
  DeviceState& st = r.at(device);
  st.live.emplace(p, cls);
  st.stats.bytes_in_use += int64_t(cls);
  if (st.stats.bytes_in_use > st.stats.peak_bytes_in_use)
    st.stats.peak_bytes_in_use = st.stats.bytes_in_use;
  ++st.stats.num_allocs;
  ++st.stats.num_cuda_malloc;
  return p;
}

void device_free(void* ptr, int device) noexcept {
  if (!ptr || device < 0) return;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (size_t(device) >= r.devices.size() || !r.devices[size_t(device)]) return;
  DeviceState& st = *r.devices[size_t(device)];
  auto it = st.live.find(ptr);
  if (it == st.live.end()) return;  // not ours: never cache foreign memory
  const size_t cls = it->second;
  st.live.erase(it);
  try {
    st.free_lists[cls].push_back(ptr);
  } catch (...) {
    return;  // out of host memory: leak the block rather than abort
  }
  st.stats.bytes_in_use -= int64_t(cls);
  st.stats.bytes_cached += int64_t(cls);
}

AllocatorStats allocator_stats(int device) {
  check_device(device);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.at(device).stats;
}

void empty_cache(int device) {
  const int n = device_count();
  if (device >= 0) check_device(device);
  const int lo = device >= 0 ? device : 0, hi = device >= 0 ? device + 1 : n;
  Registry& r = registry();
  for (int d = lo; d < hi; ++d) {
    std::vector<std::pair<void*, size_t>> blocks;
    cudaStream_t s = nullptr;
    {
      std::lock_guard<std::mutex> lock(r.mu);
      DeviceState& st = r.at(d);
      s = st.stream;
      for (auto& kv : st.free_lists)
        for (void* p : kv.second) blocks.emplace_back(p, kv.first);
      st.free_lists.clear();
      for (auto& b : blocks) st.stats.bytes_cached -= int64_t(b.second);
    }
    if (blocks.empty()) continue;
    DeviceGuard guard(d);
    // Work already enqueued on our stream may still use a freed block.
    if (s) check(cudaStreamSynchronize(s), "cudaStreamSynchronize on " + device_name(d));
    int64_t freed = 0;
    cudaError_t first = cudaSuccess;
    for (auto& b : blocks) {
      const cudaError_t err = cudaFree(b.first);
      if (err != cudaSuccess && first == cudaSuccess) first = err;
      ++freed;
    }
    {
      std::lock_guard<std::mutex> lock(r.mu);
      r.at(d).stats.num_cuda_free += freed;
    }
    check(first, "cudaFree on " + device_name(d));
  }
}

namespace {

// `waiter` waits (on the GPU) for the work enqueued so far on `signaller`, a stream of
// `signaller_device`; the event must live on the signaller's device, the waiter may be anywhere.
void wait_on(cudaStream_t waiter, cudaStream_t signaller, int signaller_device) {
  if (waiter == signaller) return;
  DeviceGuard guard(signaller_device);
  cudaEvent_t ev;
  check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  cudaError_t err = cudaEventRecord(ev, signaller);
  if (err == cudaSuccess) err = cudaStreamWaitEvent(waiter, ev, 0);
  cudaEventDestroy(ev);  // released by the driver once the recorded work completes
  check(err, "ordering two CUDA streams (event record/wait) on " + device_name(signaller_device));
}

}  // namespace

void fence_from(cudaStream_t other, int device) noexcept {
  try {
    wait_on(stream(device), other, device);
  } catch (...) {
    // A deleter cannot report; the error is already cleared by check().
  }
}

void fence_to(cudaStream_t consumer, int device) { wait_on(consumer, stream(device), device); }

void memcpy_h2d(void* dst, const void* src, size_t nbytes, int device) {
  if (nbytes == 0) return;
  cudaStream_t s = stream(device);
  DeviceGuard guard(device);
  check(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, s),
        "cudaMemcpyAsync host to " + device_name(device));
}

void memcpy_d2h(void* dst, const void* src, size_t nbytes, int device) {
  cudaStream_t s = stream(device);
  DeviceGuard guard(device);
  if (nbytes)
    check(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, s),
          "cudaMemcpyAsync " + device_name(device) + " to host");
  // Also where asynchronous kernel faults surface: the message says so.
  check(cudaStreamSynchronize(s),
        "waiting for the copy " + device_name(device) + " to host (or an earlier kernel)");
}

void memcpy_d2d(void* dst, int dst_device, const void* src, int src_device, size_t nbytes) {
  if (nbytes == 0) return;
  cudaStream_t sd = stream(dst_device);
  if (src_device == dst_device) {
    DeviceGuard guard(dst_device);
    check(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, sd),
          "cudaMemcpyAsync on " + device_name(dst_device));
    return;
  }
  cudaStream_t ss = stream(src_device);
  wait_on(sd, ss, src_device);  // the copy reads what src's stream wrote
  {
    DeviceGuard guard(dst_device);
    check(cudaMemcpyPeerAsync(dst, dst_device, src, src_device, nbytes, sd),
          "cudaMemcpyPeerAsync " + device_name(src_device) + " to " + device_name(dst_device));
  }
  wait_on(ss, sd, dst_device);  // src's block is not reused before the copy has read it
}

void synchronize(int device) {
  cudaStream_t s = stream(device);
  DeviceGuard guard(device);
  check(cudaStreamSynchronize(s), "cudaStreamSynchronize on " + device_name(device));
}

}  // namespace cuda
}  // namespace fastnn
