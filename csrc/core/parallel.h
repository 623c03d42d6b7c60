// A small persistent thread pool for the CPU kernels.
//
// parallel_for(n, fn) runs fn(0) .. fn(n-1), each exactly once, on up to get_num_threads()
// threads (the caller is one of them) and returns when all are done. Kernels split their work
// into tasks by data, never by thread, so a result does not depend on which thread ran a task:
// the same inputs give bit-identical outputs for any thread count. A call made while the pool is
// busy (another Python thread, or a kernel nested in a task) runs its tasks inline instead.
#pragma once
#include <type_traits>

namespace fastnn {

// More threads than this many per CPU only add start-up cost and contention (and, asked for by
// mistake, e.g. 100000, exhaust the system's threads): set_num_threads refuses them.
constexpr int kThreadsPerCpu = 4;

// The thread count: set by set_num_threads, else FASTNN_NUM_THREADS, else OMP_NUM_THREADS (read
// at first use), else hardware_threads().
int get_num_threads();
void set_num_threads(int n);  // 1 <= n <= max_threads(); throws ValueError otherwise
void clamp_num_threads(int n);  // set_num_threads for callers that cannot take an exception
int hardware_threads();  // CPUs this process may use: its affinity, lowered by a cgroup quota
int max_threads();       // kThreadsPerCpu x the CPUs of its affinity

void parallel_for(int ntasks, void (*fn)(void* ctx, int task), void* ctx);

template <class F>
void parallel_for(int ntasks, F&& f) {
  using Fn = typename std::remove_reference<F>::type;
  parallel_for(
      ntasks, [](void* c, int i) { (*static_cast<Fn*>(c))(i); },
      const_cast<void*>(static_cast<const void*>(&f)));
}

}  // namespace fastnn
