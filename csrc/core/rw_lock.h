// A readers-writer lock that lets a waiting writer in before new readers.
//
// A model's inference calls (many threads at once) take it shared, training slices and weight
// writes take it exclusively. std::shared_mutex on glibc prefers readers: a steady stream of
// predict calls from a thread pool would then keep fit waiting indefinitely. Here a writer that
// is waiting stops new readers, so it gets in as soon as the readers already inside leave.
//
// Not recursive: a thread holding it (either way) must not take it again, or it can deadlock
// behind a waiting writer. Callers from Python must wait for it with the GIL released.
#pragma once
#include <condition_variable>
#include <mutex>

namespace fastnn {

class RwLock {
 public:
  void lock_shared() {
    std::unique_lock<std::mutex> g(m_);
    cv_.wait(g, [&] { return !writer_ && writers_waiting_ == 0; });
    ++readers_;
  }
  void unlock_shared() {
    std::lock_guard<std::mutex> g(m_);
    if (--readers_ == 0) cv_.notify_all();
  }
  void lock() {
    std::unique_lock<std::mutex> g(m_);
    ++writers_waiting_;
    cv_.wait(g, [&] { return !writer_ && readers_ == 0; });
    --writers_waiting_;
    writer_ = true;
  }
  void unlock() {
    std::lock_guard<std::mutex> g(m_);
    writer_ = false;
    cv_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int readers_ = 0;
  int writers_waiting_ = 0;
  bool writer_ = false;
};

}  // namespace fastnn
