"""fastnn: dense neural networks on hand-written C++ and CUDA kernels."""

__version__ = "0.1.0"

from fastnn import callbacks, cuda, data, io, layers, losses, model_selection, ops, optim
from fastnn._config import get_num_threads, get_simd, set_num_threads, set_simd, show_config
from fastnn.model import Sequential, load
from fastnn.perceptron import Perceptron
from fastnn.quantized import QuantizedModel, quantize
from fastnn.tensor import Tensor, asarray, from_dlpack
from fastnn.torch_import import from_torch
from fastnn import _threadpoolctl

_threadpoolctl.install()  # threadpoolctl.threadpool_limits then limits fastnn's threads too

__all__ = [
    "Tensor", "asarray", "from_dlpack", "Sequential", "Perceptron", "load", "layers", "optim",
    "callbacks", "data", "io", "losses", "model_selection", "__version__", "cuda", "ops",
    "get_num_threads", "set_num_threads", "get_simd", "set_simd", "show_config",
    "quantize", "QuantizedModel", "from_torch",
]
