"""Run fastnn and NumPy's BLAS with the same number of threads.

Without this, a "1-thread" fastnn number would be compared against OpenBLAS
using every core, which says nothing about the kernels themselves.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os

import numpy as np

import fastnn

# Symbol names differ between a stock OpenBLAS, a 64-bit-integer build, and the
# scipy-openblas wheel that NumPy vendors (prefix and suffix both change).
_SET_SYMBOLS = (
    "openblas_set_num_threads",
    "scipy_openblas_set_num_threads64_",
    "openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
)
_GET_SYMBOLS = (
    "openblas_get_num_threads",
    "scipy_openblas_get_num_threads64_",
    "openblas_get_num_threads64_",
    "scipy_openblas_get_num_threads",
)


def _loaded_openblas_paths() -> list[str]:
    """Shared objects already mapped into this process whose name says openblas."""
    paths: list[str] = []
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) >= 6 and "openblas" in fields[-1].lower():
                    if fields[-1] not in paths:
                        paths.append(fields[-1])
    except OSError:
        pass  # not Linux; fall through to the directory guesses below
    return paths


def _candidate_openblas_paths() -> list[str]:
    paths = _loaded_openblas_paths()
    if paths:
        return paths
    # Wheels put the vendored library next to the package; numpy's build
    # config records the directory of the one it was linked against.
    np_dir = os.path.dirname(np.__file__)
    dirs = [os.path.join(np_dir, os.pardir, "numpy.libs"), os.path.join(np_dir, ".dylibs")]
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        if blas.get("lib directory"):
            dirs.append(blas["lib directory"])
    except (AttributeError, KeyError, TypeError):
        pass
    for d in dirs:
        for pat in ("*openblas*.so*", "*openblas*.dylib"):
            paths.extend(sorted(glob.glob(os.path.join(d, pat))))
    return paths


class _CtypesOpenBLAS:
    def __init__(self, path: str, set_name: str, setter, getter):
        self.path = path
        self.set_name = set_name
        self._set = setter
        self._get = getter

    @classmethod
    def find(cls) -> "_CtypesOpenBLAS | None":
        for path in _candidate_openblas_paths():
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for name in _SET_SYMBOLS:
                setter = getattr(lib, name, None)
                if setter is None:
                    continue
                setter.argtypes = [ctypes.c_int]
                setter.restype = None
                getter = None
                for gname in _GET_SYMBOLS:
                    getter = getattr(lib, gname, None)
                    if getter is not None:
                        getter.argtypes = []
                        getter.restype = ctypes.c_int
                        break
                return cls(path, name, setter, getter)
        return None

    def get(self) -> int | None:
        return self._get() if self._get is not None else None

    @contextlib.contextmanager
    def limit(self, n: int):
        before = self.get()
        self._set(n)
        try:
            yield
        finally:
            if before is not None:
                self._set(before)


class BlasThreads:
    """Limits NumPy's BLAS threads; ``mechanism`` says how (or that it cannot)."""

    def __init__(self):
        # Make sure NumPy's BLAS is loaded before looking for it in the maps.
        np.dot(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))
        self._tpc = None
        self._ctypes = None
        try:
            import threadpoolctl  # optional; only used when present
        except ImportError:
            threadpoolctl = None
        if threadpoolctl is not None:
            self._tpc = threadpoolctl
            self.mechanism = f"threadpoolctl {threadpoolctl.__version__}"
            return
        self._ctypes = _CtypesOpenBLAS.find()
        if self._ctypes is not None:
            self.mechanism = (f"ctypes {self._ctypes.set_name}() in "
                              f"{os.path.basename(self._ctypes.path)}")
        else:
            self.mechanism = "none (OpenBLAS not found; NumPy thread count NOT controlled)"

    @property
    def controlled(self) -> bool:
        return self._tpc is not None or self._ctypes is not None

    def current(self) -> int | None:
        """What the BLAS reports right now, to confirm a limit actually took."""
        if self._ctypes is not None:
            return self._ctypes.get()
        if self._tpc is not None:
            counts = [info["num_threads"] for info in self._tpc.threadpool_info()
                      if info.get("user_api") == "blas"]
            return counts[0] if counts else None
        return None

    @contextlib.contextmanager
    def limit(self, n: int):
        if self._tpc is not None:
            with self._tpc.threadpool_limits(limits=n, user_api="blas"):
                yield
        elif self._ctypes is not None:
            with self._ctypes.limit(n):
                yield
        else:
            yield


@contextlib.contextmanager
def same_threads(blas: BlasThreads, n: int):
    """fastnn and the BLAS both at ``n`` threads; previous settings restored after."""
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(n)
    try:
        with blas.limit(n):
            yield
    finally:
        fastnn.set_num_threads(before)
