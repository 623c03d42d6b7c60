// The device layer under fastnn.Tensor: a caching allocator with size-class free lists per
// device, one fastnn-owned stream per device, and copy helpers. Every CUDA call is checked;
// failures throw CudaError naming the call (never an abort).
//
// Stream rule: all fastnn work on device d is enqueued on stream(d). A block freed to the cache
// is therefore safe to hand out again at once: any later use is ordered after every earlier use
// on that same stream. Memory lent to other streams (DLPack export) is fenced back onto stream(d)
// before it returns to the cache (see fence_from).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/cuda_check.h"  // check(), CudaError

namespace fastnn {
namespace cuda {

// Sets the current device for the lifetime of the guard and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// Number of devices; 0 (never an exception) without a GPU or driver.
int device_count();
// Throws ValueError unless 0 <= device < device_count().
void check_device(int device);

// fastnn's stream on `device`, created on first use (non-blocking: it does not serialise with
// the legacy default stream; exchanges with other libraries synchronise explicitly).
cudaStream_t stream(int device);

struct AllocatorStats {
  int64_t bytes_in_use = 0;       // size-class bytes handed out and not yet freed
  int64_t peak_bytes_in_use = 0;
  int64_t bytes_cached = 0;       // bytes in free lists, ready for reuse
  int64_t num_allocs = 0;         // device_alloc calls that returned memory
  int64_t num_cache_hits = 0;     // ... of which served from a free list
  int64_t num_cuda_malloc = 0;    // cudaMalloc calls made
  int64_t num_cuda_free = 0;      // cudaFree calls made (empty_cache, out-of-memory retry)
};

// Size classes: 256 bytes minimum, then four classes per power of two (at most 25% waste).
size_t size_class(size_t nbytes);

// A block of at least nbytes on `device`, from the cache when one of the same class is free,
// else from cudaMalloc (after emptying this device's cache and retrying once when memory runs
// out). nbytes == 0 gives nullptr. Thread-safe.
void* device_alloc(size_t nbytes, int device);
// Returns a block to its device's cache. No CUDA call, no exception: safe in deleters and at
// interpreter exit. nullptr is ignored.
void device_free(void* ptr, int device) noexcept;
AllocatorStats allocator_stats(int device);
// Synchronises `device` (every device when device < 0) and cudaFrees its cached blocks.
void empty_cache(int device = -1);

// Makes stream(device) wait for the work enqueued so far on `other` (an event, no host wait).
// noexcept: used from DLPack deleters; errors there are dropped.
void fence_from(cudaStream_t other, int device) noexcept;
// Makes `consumer` wait for the work enqueued so far on stream(device). Throws on error.
void fence_to(cudaStream_t consumer, int device);

// Asynchronous copies on stream(device). From pageable host memory, cudaMemcpyAsync returns once
// the source has been staged, so the caller may free it on return.
void memcpy_h2d(void* dst, const void* src, size_t nbytes, int device);
// Copies and waits for the copy (and all earlier work on stream(device)) to finish.
void memcpy_d2h(void* dst, const void* src, size_t nbytes, int device);
// Same-device copy, or peer copy from src_device to dst_device, enqueued on stream(dst_device)
// after a fence from stream(src_device).
void memcpy_d2d(void* dst, int dst_device, const void* src, int src_device, size_t nbytes);
void synchronize(int device);

}  // namespace cuda
}  // namespace fastnn
