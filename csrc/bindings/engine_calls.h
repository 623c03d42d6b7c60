// How the engine bindings (bind_engine.cpp, cuda_engine.cpp) run long calls and lock a model
// from Python. Two rules keep them free of deadlocks and answer Ctrl-C:
// - nobody waits for a model's lock while holding the GIL (a thread inside the engine may need
//   the GIL for a moment, to check for signals);
// - long inference calls look for Ctrl-C between batches, taking the GIL briefly every
//   kSignalPeriod, and end with KeyboardInterrupt when one arrived.
#pragma once
#include <pybind11/pybind11.h>

#include <chrono>
#include <functional>
#include <stdexcept>
#include <utility>

#include "engine/network.h"

namespace fastnn {
namespace engine {

// Ctrl-C is seen within this much of the engine's time (plus one batch).
constexpr std::chrono::milliseconds kSignalPeriod{50};

// A StopCheck that runs Python's signal handlers at most every kSignalPeriod. Python runs them
// in the main thread only, so a call in another thread is never stopped.
class SignalCheck {
 public:
  bool operator()() {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_) return false;
    next_ = now + kSignalPeriod;
    pybind11::gil_scoped_acquire gil;
    return PyErr_CheckSignals() != 0;  // the handler's exception stays set in this thread
  }

 private:
  std::chrono::steady_clock::time_point next_ = std::chrono::steady_clock::now() + kSignalPeriod;
};

// Runs f(stop) with the GIL released; a call stopped by a signal raises the handler's exception
// (KeyboardInterrupt for Ctrl-C) in Python.
template <class F>
auto run_interruptible(F&& f) -> decltype(f(StopCheck())) {
  SignalCheck check;
  try {
    pybind11::gil_scoped_release release;
    return f(StopCheck(std::ref(check)));
  } catch (const Interrupted&) {
  }
  throw pybind11::error_already_set();
}

// A context manager holding a model's lock from Python: `with net.locked(exclusive): ...`
// around code that reads (shared) or writes (exclusive) the engine's arrays through NumPy views.
// It waits with the GIL released and keeps the model alive while held.
template <class Lock>
class PyLockGuard {
 public:
  PyLockGuard(pybind11::object owner, Lock& lock, bool exclusive)
      : owner_(std::move(owner)), lock_(lock), exclusive_(exclusive) {}
  ~PyLockGuard() { exit(); }
  PyLockGuard(const PyLockGuard&) = delete;
  PyLockGuard& operator=(const PyLockGuard&) = delete;

  void enter() {
    if (held_) throw std::runtime_error("locked(): already entered");
    pybind11::gil_scoped_release release;
    if (exclusive_)
      lock_.lock();
    else
      lock_shared(lock_, 0);
    held_ = true;
  }
  void exit() {
    if (!held_) return;
    held_ = false;
    if (exclusive_)
      lock_.unlock();
    else
      unlock_shared(lock_, 0);
  }

  // Binds the class under `name` in module m.
  static void bind(pybind11::module_& m, const char* name) {
    pybind11::class_<PyLockGuard>(m, name)
        .def("__enter__", [](PyLockGuard& g) { g.enter(); })
        .def("__exit__", [](PyLockGuard& g, pybind11::args) {
          g.exit();
          return false;
        });
  }

 private:
  // A mutex without a shared side (the GPU engine's) is taken whole by readers too.
  template <class L>
  static auto lock_shared(L& l, int) -> decltype(l.lock_shared()) { l.lock_shared(); }
  template <class L>
  static void lock_shared(L& l, long) { l.lock(); }
  template <class L>
  static auto unlock_shared(L& l, int) -> decltype(l.unlock_shared()) { l.unlock_shared(); }
  template <class L>
  static void unlock_shared(L& l, long) { l.unlock(); }

  pybind11::object owner_;
  Lock& lock_;
  bool exclusive_;
  bool held_ = false;
};

}  // namespace engine
}  // namespace fastnn
