"""fastnn's thread pool under threadpoolctl: ``threadpool_limits(1)`` limits fastnn as it limits
OpenBLAS, and ``threadpool_info()`` lists it (user_api and internal_api "fastnn").

threadpoolctl finds libraries among the shared objects loaded in the process: ours is the _C
extension module, recognised by its file name and the C functions it exports for this
(csrc/bindings/thread_controls.cpp). threadpoolctl is optional and costs ~40 ms to import, so
fastnn does not import it: the controller is registered when threadpoolctl is imported, before or
after fastnn, and a failure to register never breaks either import."""

import importlib.abc
import importlib.util
import sys
import threading

_MODULE = "threadpoolctl"
_lock = threading.Lock()
_registered = set()  # id() of the threadpoolctl module objects that know our controller


def _controller_class(threadpoolctl):
    class FastnnController(threadpoolctl.LibController):
        user_api = "fastnn"
        internal_api = "fastnn"
        # File names are matched lower-cased: _C.cpython-311-x86_64-linux-gnu.so. Other modules
        # named _C (PyTorch's) lack the symbols below and are skipped.
        filename_prefixes = ("_c.",)
        check_symbols = ("fastnn_get_num_threads", "fastnn_set_num_threads")

        def get_num_threads(self):
            return self.dynlib.fastnn_get_num_threads()

        def set_num_threads(self, num_threads):
            self.dynlib.fastnn_set_num_threads(int(num_threads))

        def get_version(self):
            from fastnn import __version__

            return __version__

    return FastnnController


def _register(threadpoolctl):
    with _lock:
        if id(threadpoolctl) in _registered:
            return
        _registered.add(id(threadpoolctl))
    try:
        threadpoolctl.register(_controller_class(threadpoolctl))
    except Exception:  # an older or changed threadpoolctl: fastnn works without it
        pass


class _RegisterAfterExec(importlib.abc.Loader):
    """Wraps threadpoolctl's own loader: runs the module, then registers our controller."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _register(module)

    def __getattr__(self, name):  # get_source, get_filename, is_package...: the real loader's
        return getattr(self._loader, name)


class _WatchImport(importlib.abc.MetaPathFinder):
    """Sees the first import of threadpoolctl (then leaves sys.meta_path)."""

    def find_spec(self, name, path=None, target=None):
        if name != _MODULE:
            return None
        _unwatch()
        try:
            spec = importlib.util.find_spec(name)
        except Exception:
            return None
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _RegisterAfterExec(spec.loader)
        return spec


_watcher = _WatchImport()


def _unwatch():
    try:
        sys.meta_path.remove(_watcher)
    except ValueError:
        pass


def install():
    """Registers now if threadpoolctl is imported, else when it is."""
    # `python -m threadpoolctl -i fastnn` runs threadpoolctl as __main__, a module of its own.
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None) == _MODULE:
        _register(main)
    module = sys.modules.get(_MODULE)
    if module is not None:
        _register(module)
    elif _watcher not in sys.meta_path:
        sys.meta_path.insert(0, _watcher)
