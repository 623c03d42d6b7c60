// How the engine binding (bind_engine.cpp) runs long calls. Two rules keep it free of deadlocks
// and answer Ctrl-C:
// - nobody waits for a model's lock while holding the GIL (a thread inside the engine may need
//   the GIL for a moment, to check for signals);
// - long inference calls look for Ctrl-C between batches, taking the GIL briefly every
//   kSignalPeriod, and end with KeyboardInterrupt when one arrived.
#pragma once
#include <pybind11/pybind11.h>

#include <chrono>
#include <functional>

#include "engine/engine.h"

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

}  // namespace engine
}  // namespace fastnn
