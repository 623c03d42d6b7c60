"""fastnn.ops: one function per kernel, arrays in, arrays out.

Each op validates its arguments once, picks the backend from where the inputs live
(fastnn.ops._dispatch, the one device switch) and calls the compiled kernel of the same name.
NumPy arrays (and CPU fastnn.Tensors, read as their arrays) run on the CPU and give NumPy
results. fastnn.Tensors on "cuda:N" run on that GPU, on fastnn's stream for it, and give Tensors
on the same device; all array arguments of one call must then be CUDA tensors on one device.
Losses return (float, gradient) either way; the float waits for the GPU. On the GPU, matmul,
linear and linear_grad are float32 only; init_weights is CPU only (the sampled softmax runs on
both, drawing the same sample).

One module per op family: activations, dense, losses, dropout, batchnorm, reduce, optim,
sampled, init; everything public is re-exported here, the one place to look."""

from fastnn.ops.activations import (ACTIVATIONS, _activation_arg, activation_grad, elu, gelu,
                                    leaky_relu, log_softmax, relu, sigmoid, softmax, softplus,
                                    step, tanh)
from fastnn.ops.dense import GRAD_FROM_OUTPUT, linear, linear_grad, matmul
from fastnn.ops.losses import binary_cross_entropy_with_logits, mae, mse, softmax_cross_entropy
from fastnn.ops.dropout import dropout, dropout_grad  # the function replaces the module's name
from fastnn.ops.batchnorm import batch_norm, batch_norm_grad
from fastnn.ops.reduce import (argmax_rows, binary_correct, count_correct, mean_rows, sum_rows,
                               top_k_correct)
from fastnn.ops.optim import (adagrad_step, adam_step, adamw_step, clip_grad_norm, global_norm,
                              rmsprop_step, sgd_step)
from fastnn.ops.sampled import sample_candidates, sampled_softmax_cross_entropy
from fastnn.ops.init import init_weights

__all__ = [
    "ACTIVATIONS", "GRAD_FROM_OUTPUT",
    "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "step", "softmax",
    "log_softmax", "activation_grad",
    "matmul", "linear", "linear_grad",
    "softmax_cross_entropy", "binary_cross_entropy_with_logits", "mse", "mae",
    "dropout", "dropout_grad", "batch_norm", "batch_norm_grad",
    "sum_rows", "mean_rows", "argmax_rows", "count_correct", "top_k_correct", "binary_correct",
    "sgd_step", "adam_step", "adamw_step", "adagrad_step", "rmsprop_step", "global_norm",
    "clip_grad_norm",
    "sample_candidates", "sampled_softmax_cross_entropy", "init_weights",
]
