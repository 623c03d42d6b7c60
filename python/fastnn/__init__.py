"""fastnn: dense neural networks on hand-written C++ and CUDA kernels."""

__version__ = "0.1.0"

from fastnn import cuda, ops
from fastnn._config import (
    get_num_threads,
    get_simd,
    set_num_threads,
    set_simd,
    show_config,
)

__all__ = [
    "__version__",
    "cuda",
    "ops",
    "get_num_threads",
    "set_num_threads",
    "get_simd",
    "set_simd",
    "show_config",
]
