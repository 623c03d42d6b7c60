#include "core/parallel.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "core/cpu_quota.h"
#include "core/error.h"

// No PAUSE instruction in the spin loops: under KVM, pause-loop exiting turns a PAUSE-heavy spin
// into VM exits that deschedule the spinning vCPU (measured: 250 us per hand-off instead of ~2).
static inline void cpu_relax() { __asm__ volatile("" ::: "memory"); }

namespace fastnn {

namespace {

int affinity_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

int detect_hardware_threads() {
  const int cpus = affinity_cpus();
  const int quota = own_cgroup_cpu_limit();
  return quota > 0 && quota < cpus ? quota : cpus;
}

// A thread count from an environment variable: a whole number >= 1 (OpenMP's nested form "4,2"
// gives its first level), else 0. Counts above the cap are clamped: the environment cannot raise.
int threads_from_env(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr) return 0;
  char* end = nullptr;
  const long n = std::strtol(text, &end, 10);
  if (end == text || (*end != '\0' && *end != ',') || n < 1) return 0;
  return n > max_threads() ? max_threads() : static_cast<int>(n);
}

// The default when set_num_threads was never called: FASTNN_NUM_THREADS, then OMP_NUM_THREADS
// (joblib's workers and other schedulers set it to share the cores out), then the CPUs.
int initial_threads() {
  for (const char* name : {"FASTNN_NUM_THREADS", "OMP_NUM_THREADS"})
    if (int n = threads_from_env(name)) return n;
  return hardware_threads();
}

// Workers spin this long after a job before they sleep: back-to-back kernel calls, as in a
// training step, then start without a futex wake-up (tens of microseconds on a VM).
constexpr auto kSpin = std::chrono::microseconds(200);

class Pool {
 public:
  ~Pool() { stop(); }

  // Runs the job on `nthreads` threads (the caller plus nthreads-1 workers). Returns false, doing
  // nothing, when the pool is already busy.
  bool run(int ntasks, int nthreads, void (*fn)(void*, int), void* ctx) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    nthreads = 1 + ensure_workers(nthreads - 1);
    if (nthreads == 1) return false;
    fn_ = fn;
    ctx_ = ctx;
    ntasks_ = ntasks;
    next_.store(0, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    finished_workers_.store(0, std::memory_order_relaxed);
    active_workers_.store(nthreads - 1, std::memory_order_relaxed);
    entry_.store(kOpen, std::memory_order_release);  // publishes the job's fields to entrants
    {
      std::lock_guard<std::mutex> g(m_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    work();
    while (done_.load(std::memory_order_acquire) < ntasks) cpu_relax();
    // Close the job, then wait only for the workers that entered it: after this no worker reads
    // the job's fields, so the next job may overwrite them. A worker still asleep or descheduled
    // finds the job closed and stays out, so it cannot stall this call once the tasks are done
    // (waiting for every worker cost up to a scheduler slice on a busy 2-core machine).
    const int64_t entered = entry_.exchange(0, std::memory_order_acq_rel) & ~kOpen;
    while (finished_workers_.load(std::memory_order_acquire) < entered) cpu_relax();
    return true;
  }

  void stop() {
    {
      std::lock_guard<std::mutex> g(m_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    quit_ = false;
  }

  // After fork() only the forking thread exists in the child: forget the workers without joining.
  void forget_after_fork() {
    for (auto& t : threads_) t.detach();
    threads_.clear();
    new (&busy_) std::mutex();
    new (&m_) std::mutex();
    new (&cv_) std::condition_variable();
  }

 private:
  void work() {
    for (;;) {
      int t = next_.fetch_add(1, std::memory_order_relaxed);
      if (t >= ntasks_) return;
      fn_(ctx_, t);
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  // Joins the open job, if one is open (counted, so that its caller waits for this worker).
  bool enter() {
    int64_t state = entry_.load(std::memory_order_acquire);
    while (state & kOpen)
      if (entry_.compare_exchange_weak(state, state + 1, std::memory_order_acq_rel)) return true;
    return false;
  }

  // Starts workers up to n (they are kept for later jobs); returns how many there are, fewer
  // than n when the system refuses more threads: the job then runs on those.
  int ensure_workers(int n) {
    while (static_cast<int>(threads_.size()) < n) {
      // The worker must start from the generation before the job that created it, or it could
      // read the new generation as already seen and never join that job.
      int index = static_cast<int>(threads_.size());
      unsigned seen = generation_.load(std::memory_order_acquire);
      try {
        threads_.emplace_back([this, index, seen] { worker_loop(index, seen); });
      } catch (const std::system_error&) {
        break;
      }
    }
    return static_cast<int>(threads_.size()) < n ? static_cast<int>(threads_.size()) : n;
  }

  void worker_loop(int index, unsigned seen) {
    bool spin = true;
    for (;;) {
      // Only a worker that took part in the last job spins: one left out (the thread count was
      // lowered) would burn a core the job's threads need.
      const auto spin_until = std::chrono::steady_clock::now() + kSpin;
      for (int i = 0; spin && generation_.load(std::memory_order_acquire) == seen; ++i) {
        cpu_relax();
        if ((i & 1023) == 1023 && std::chrono::steady_clock::now() > spin_until) break;
      }
      if (generation_.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> g(m_);
        cv_.wait(g, [&] { return quit_ || generation_.load() != seen; });
        if (quit_) return;
      }
      seen = generation_.load(std::memory_order_acquire);
      spin = index < active_workers_.load(std::memory_order_relaxed);
      if (spin && enter()) {
        work();
        finished_workers_.fetch_add(1, std::memory_order_release);
      }
    }
  }

  std::mutex busy_;
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
  std::atomic<unsigned> generation_{0};
  bool quit_ = false;
  void (*fn_)(void*, int) = nullptr;
  void* ctx_ = nullptr;
  int ntasks_ = 0;
  std::atomic<int> active_workers_{0};
  // kOpen while a job takes workers, plus the number of workers that entered it.
  static constexpr int64_t kOpen = int64_t(1) << 40;
  std::atomic<int64_t> entry_{0};
  std::atomic<int> next_{0};
  std::atomic<int> done_{0};
  std::atomic<int> finished_workers_{0};
};

std::atomic<int> g_num_threads{0};

Pool& pool() {
  // Leaked on purpose: joining threads during interpreter shutdown can deadlock.
  static Pool* p = [] {
    auto* created = new Pool();
    pthread_atfork(nullptr, nullptr, [] { pool().forget_after_fork(); });
    return created;
  }();
  return *p;
}

}  // namespace

int hardware_threads() {
  static const int n = detect_hardware_threads();
  return n;
}

int max_threads() {
  static const int n = kThreadsPerCpu * affinity_cpus();
  return n;
}

int get_num_threads() {
  int n = g_num_threads.load(std::memory_order_relaxed);
  if (n == 0) {
    n = initial_threads();
    g_num_threads.store(n);
  }
  return n;
}

void set_num_threads(int n) {
  if (n < 1)
    throw ValueError("set_num_threads: n must be >= 1, got " + std::to_string(n));
  if (n > max_threads())
    throw ValueError("set_num_threads: n must be <= " + std::to_string(max_threads()) + " (" +
                     std::to_string(kThreadsPerCpu) + " per CPU this process may run on), got " +
                     std::to_string(n));
  g_num_threads.store(n);
}

void clamp_num_threads(int n) {
  g_num_threads.store(n < 1 ? 1 : (n > max_threads() ? max_threads() : n));
}

void parallel_for(int ntasks, void (*fn)(void*, int), void* ctx) {
  if (ntasks <= 0) return;
  int nthreads = get_num_threads();
  if (nthreads > ntasks) nthreads = ntasks;
  if (nthreads <= 1 || !pool().run(ntasks, nthreads, fn, ctx)) {
    for (int t = 0; t < ntasks; ++t) fn(ctx, t);
  }
}

}  // namespace fastnn
