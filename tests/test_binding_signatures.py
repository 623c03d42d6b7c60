"""fastnn._C and fastnn._cuda: one op, one argument list. Every function that both extension
modules define takes the same arguments, by name, in the same order and with the same defaults
(the op families' bindings are one source compiled into both: csrc/bindings/convert.h), so the
Python layer calls either module the same way. Reads pybind11's signatures; needs no GPU, only
a build with the CUDA module (skipped otherwise)."""

import importlib
import re

import numpy as np
import pytest

from fastnn import _C

# Ops whose CUDA kernels exist: they must be bound in both modules, so that the check below
# covers them (a binding that drops out of one module would otherwise pass unnoticed).
SHARED_OPS = [
    "act_forward", "act_backward", "softmax_forward", "softmax_backward",
    "gemm", "dense_backward",
    "softmax_cross_entropy", "binary_cross_entropy_with_logits", "mse", "mae",
    "dropout_forward", "dropout_forward_into", "dropout_backward",
    "batch_norm_train", "batch_norm_infer", "batch_norm_backward",
    "sum_rows", "mean_rows", "argmax_rows", "top_k_correct",
    "sgd_step", "adam_step", "adagrad_step", "rmsprop_step", "global_norm", "scale_tensors",
    "sampled_softmax_cross_entropy", "scatter_add_columns",
]


def _cuda_module():
    """The compiled fastnn._cuda (not a stand-in), or a skip."""
    try:
        mod = importlib.import_module("fastnn._cuda")
    except ImportError as exc:
        pytest.skip(f"fastnn._cuda is not built or does not load ({exc})")
    if not str(getattr(mod, "__file__", "")).endswith((".so", ".pyd")):
        pytest.skip("fastnn._cuda is not the compiled extension")
    return mod


def _functions(mod):
    return {name for name in dir(mod) if not name.startswith("_")
            and type(getattr(mod, name)).__name__ == "builtin_function_or_method"}


def _split_top_level(text):
    """Splits "a: int, b: list[float] = [1.0, 2.0]" at the commas outside brackets and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    if text[start:].strip():
        parts.append(text[start:].strip())
    return parts


def _arguments(fn, name):
    """[(argument name, default text or None)] of every overload in fn's pybind11 docstring."""
    doc = fn.__doc__ or ""
    signatures = re.findall(rf"^(?:\d+\. )?{re.escape(name)}\((.*)\) -> ", doc, re.MULTILINE)
    assert signatures, f"{name}: no pybind11 signature in its docstring: {doc[:200]!r}"
    overloads = []
    for args in signatures:
        parsed = []
        for arg in _split_top_level(args):
            head, _, default = arg.partition("=")
            parsed.append((head.split(":")[0].strip(), default.strip() or None))
        overloads.append(parsed)
    return overloads


def _parser_reads_signatures():
    # The parser itself, on a signature with brackets, quotes and defaults.
    def f():
        pass

    f.__doc__ = "f(a: object, b: list[float], c: str = 'x, y', d: bool = False) -> None\n"
    assert _arguments(f, "f") == [[("a", None), ("b", None), ("c", "'x, y'"), ("d", "False")]]


def test_signature_parser():
    _parser_reads_signatures()


def test_ops_with_cuda_kernels_are_bound_in_both_modules():
    cuda = _cuda_module()
    missing = {mod.__name__: sorted(set(SHARED_OPS) - _functions(mod)) for mod in (_C, cuda)}
    assert not any(missing.values()), f"ops missing from a module: {missing}"


def test_shared_functions_take_the_same_arguments():
    cuda = _cuda_module()
    shared = sorted(_functions(_C) & _functions(cuda))
    assert shared, "no function in common"
    differ = {}
    for name in shared:
        cpu_args = _arguments(getattr(_C, name), name)
        gpu_args = _arguments(getattr(cuda, name), name)
        if cpu_args != gpu_args:
            differ[name] = {"_C": cpu_args, "_cuda": gpu_args}
    assert not differ, f"same name, different arguments: {differ}"


# The one converter: _C takes NumPy arrays, _cuda CUDA tensors; a refusal names the argument.
def test_cpu_module_takes_numpy_arrays():
    x = np.zeros(3, np.float32)
    with pytest.raises(TypeError, match="x: expected a NumPy array, got list"):
        _C.act_forward([0.0, 0.0, 0.0], x, "relu", 0.0)
    with pytest.raises(TypeError, match=r"tensors\[1\]: expected a NumPy array, got int"):
        _C.scale_tensors([x, 3], 2.0)


def test_cuda_module_takes_cuda_tensors():
    x = np.zeros(3, np.float32)
    cuda = _cuda_module()
    with pytest.raises(TypeError, match="x: expected a fastnn.Tensor on a CUDA device, got "
                                        "ndarray"):
        cuda.act_forward(x, x, "relu", 0.0)


# The optimizer steps take their hyper-parameters by keyword, named as in core/ops/optim.h's
# for_each_field (the names python/fastnn/optim.py uses): each one needed, no other accepted.
def test_optimizer_steps_take_named_hyper_parameters():
    p, g = [np.ones(3, np.float32)], [np.full(3, 0.5, np.float32)]
    hyper = dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False)
    _C.sgd_step(p, g, None, [0.0], [0.0], True, 1.0, **hyper)
    np.testing.assert_allclose(p[0], 0.95)
    with pytest.raises(TypeError, match="missing keyword argument 'nesterov'"):
        _C.sgd_step(p, g, None, [0.0], [0.0], True, 1.0,
                    **{k: v for k, v in hyper.items() if k != "nesterov"})
    with pytest.raises(TypeError, match="unexpected keyword argument 'beta1'"):
        _C.sgd_step(p, g, None, [0.0], [0.0], True, 1.0, beta1=0.9, **hyper)
    with pytest.raises(TypeError, match="lr: expected a number, got str"):
        _C.sgd_step(p, g, None, [0.0], [0.0], True, 1.0, **{**hyper, "lr": "0.1"})
