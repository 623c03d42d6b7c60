// engine::GradHook (engine/grad_hook.h) over a Python callable: fastnn.distributed's averaging
// runs in Python (mpi4py), called from inside train_batches with the GIL taken back for the
// call. The gradients go to Python as NumPy views of the engine's own buffers (no copy), valid
// only during the call; the callable writes the averaged values into them.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <utility>
#include <vector>

#include "engine/grad_hook.h"

namespace fastnn {
namespace engine {

template <class T>
class PyGradHook final : public GradHook<T> {
 public:
  PyGradHook(pybind11::object fn, int64_t micro_offset)
      : GradHook<T>(micro_offset), fn_(std::move(fn)) {}
  // The engine may drop its hook with the GIL released: the callable is released under it.
  ~PyGradHook() override {
    pybind11::gil_scoped_acquire gil;
    fn_ = pybind11::object();
  }

  void before_update(const std::vector<GradBuffer<T>>& grads, int64_t micro) override {
    namespace py = pybind11;
    py::gil_scoped_acquire gil;
    // A base object that owns nothing: the arrays borrow the engine's memory.
    py::capsule borrowed(grads.empty() ? nullptr : grads[0].data, [](void*) {});
    py::list views;
    for (const GradBuffer<T>& g : grads)
      views.append(py::array_t<T>({g.size}, {py::ssize_t(sizeof(T))}, g.data, borrowed));
    fn_(views, micro);  // a Python exception propagates as error_already_set
  }

 private:
  pybind11::object fn_;
};

}  // namespace engine
}  // namespace fastnn
