"""
fastnn CPU kernels (internal; use fastnn.ops)
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['Network32', 'Network64', 'QuantizedNetwork', 'act_backward', 'act_forward', 'act_grad_from_output_ok', 'adagrad_step', 'adam_step', 'argmax_rows', 'batch_norm_backward', 'batch_norm_infer', 'batch_norm_train', 'best_simd', 'bf16_kernel', 'bf16_native_supported', 'binary_correct', 'binary_cross_entropy_with_logits', 'cgroup_cpu_limit', 'compiler', 'cpu_features', 'dense_backward', 'dense_backward_bf16', 'dropout_backward', 'dropout_forward', 'dropout_forward_into', 'gemm', 'gemm_bf16', 'gemm_packed', 'get_num_threads', 'get_simd', 'global_norm', 'hardware_threads', 'init_weights', 'mae', 'max_threads', 'mean_rows', 'mse', 'qgemm_paths', 'qgemm_quantize_rows', 'qgemm_s32', 'rmsprop_step', 'sample_candidates', 'sampled_softmax_cross_entropy', 'scale_tensors', 'scatter_add_columns', 'set_bf16_fallback', 'set_num_threads', 'set_simd', 'sgd_step', 'simd_supported', 'softmax_backward', 'softmax_cross_entropy', 'softmax_forward', 'sum_rows', 'top_k_correct']
class Network32:
    def __init__(self, input_dim: typing.SupportsInt | typing.SupportsIndex, layers: list[typing.Any], loss: str, optimizer: dict[str, typing.Any], seed: typing.SupportsInt | typing.SupportsIndex, sampled: dict[str, typing.Any] = {}, options: dict[str, typing.Any] = {}) -> None:
        ...
    def begin_epoch(self, n: typing.SupportsInt | typing.SupportsIndex, epoch: typing.SupportsInt | typing.SupportsIndex, shuffle: bool) -> None:
        ...
    def check_labels(self, labels: typing.Any) -> None:
        """
        ValueError naming the first class label out of range
        """
    def evaluate(self, X: typing.Any, labels: typing.Any, targets: typing.Any, batch_size: typing.SupportsInt | typing.SupportsIndex, sample_weight: typing.Any = None) -> dict[str, typing.Any]:
        ...
    def param_names(self) -> list[str]:
        ...
    def predict(self, X: typing.Any, out: typing.Any, batch_size: typing.SupportsInt | typing.SupportsIndex) -> typing.Any:
        """
        writes the outputs after the loss's link into out (n, outputs); host engines return whether every output is finite, GPU engines None
        """
    def read(self, *args: typing.Any) -> list[typing.Any]:
        """
        copies of the arrays of each kind named ('params', 'grads', 'state', 'buffers'), taken at one moment: a list of lists of NumPy arrays
        """
    def set_grad_hook(self, fn: typing.Any, micro_offset: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        """
        fn(grads, micro) is called before every update with the gradients as NumPy views (each the sum of micro batch means), to rewrite in place; None removes it. micro_offset shifts the batch numbers that key the dropout masks
        """
    def take_diagnostics(self) -> list[typing.Any]:
        ...
    def train_batches(self, X: typing.Any, labels: typing.Any, targets: typing.Any, batch_size: typing.SupportsInt | typing.SupportsIndex, first: typing.SupportsInt | typing.SupportsIndex, last: typing.SupportsInt | typing.SupportsIndex, accumulate_steps: typing.SupportsInt | typing.SupportsIndex, clipnorm: typing.SupportsFloat | typing.SupportsIndex, sample_weight: typing.Any = None) -> dict[str, typing.Any]:
        ...
    def write(self, **kwargs: typing.Any) -> None:
        """
        replaces the arrays of each kind given (params=[...], buffers=[...], ...) as one change: other calls see all of it or none
        """
    @property
    def device(self) -> int:
        """
        -1 for the CPU, else the CUDA device index
        """
    @property
    def fused_runs(self) -> list[tuple[int, int]]:
        ...
    @property
    def graph_replays(self) -> int:
        ...
    @property
    def input_dim(self) -> int:
        ...
    @property
    def lr(self) -> float:
        ...
    @lr.setter
    def lr(self, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def output_dim(self) -> int:
        ...
    @property
    def step(self) -> int:
        ...
    @step.setter
    def step(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class Network64:
    def __init__(self, input_dim: typing.SupportsInt | typing.SupportsIndex, layers: list[typing.Any], loss: str, optimizer: dict[str, typing.Any], seed: typing.SupportsInt | typing.SupportsIndex, sampled: dict[str, typing.Any] = {}, options: dict[str, typing.Any] = {}) -> None:
        ...
    def begin_epoch(self, n: typing.SupportsInt | typing.SupportsIndex, epoch: typing.SupportsInt | typing.SupportsIndex, shuffle: bool) -> None:
        ...
    def check_labels(self, labels: typing.Any) -> None:
        """
        ValueError naming the first class label out of range
        """
    def evaluate(self, X: typing.Any, labels: typing.Any, targets: typing.Any, batch_size: typing.SupportsInt | typing.SupportsIndex, sample_weight: typing.Any = None) -> dict[str, typing.Any]:
        ...
    def param_names(self) -> list[str]:
        ...
    def predict(self, X: typing.Any, out: typing.Any, batch_size: typing.SupportsInt | typing.SupportsIndex) -> typing.Any:
        """
        writes the outputs after the loss's link into out (n, outputs); host engines return whether every output is finite, GPU engines None
        """
    def read(self, *args: typing.Any) -> list[typing.Any]:
        """
        copies of the arrays of each kind named ('params', 'grads', 'state', 'buffers'), taken at one moment: a list of lists of NumPy arrays
        """
    def set_grad_hook(self, fn: typing.Any, micro_offset: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
        """
        fn(grads, micro) is called before every update with the gradients as NumPy views (each the sum of micro batch means), to rewrite in place; None removes it. micro_offset shifts the batch numbers that key the dropout masks
        """
    def take_diagnostics(self) -> list[typing.Any]:
        ...
    def train_batches(self, X: typing.Any, labels: typing.Any, targets: typing.Any, batch_size: typing.SupportsInt | typing.SupportsIndex, first: typing.SupportsInt | typing.SupportsIndex, last: typing.SupportsInt | typing.SupportsIndex, accumulate_steps: typing.SupportsInt | typing.SupportsIndex, clipnorm: typing.SupportsFloat | typing.SupportsIndex, sample_weight: typing.Any = None) -> dict[str, typing.Any]:
        ...
    def write(self, **kwargs: typing.Any) -> None:
        """
        replaces the arrays of each kind given (params=[...], buffers=[...], ...) as one change: other calls see all of it or none
        """
    @property
    def device(self) -> int:
        """
        -1 for the CPU, else the CUDA device index
        """
    @property
    def fused_runs(self) -> list[tuple[int, int]]:
        ...
    @property
    def graph_replays(self) -> int:
        ...
    @property
    def input_dim(self) -> int:
        ...
    @property
    def lr(self) -> float:
        ...
    @lr.setter
    def lr(self, arg1: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def output_dim(self) -> int:
        ...
    @property
    def step(self) -> int:
        ...
    @step.setter
    def step(self, arg1: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class QuantizedNetwork:
    kernel_path: typing.ClassVar[str] = 'vnni'
    def __init__(self, input_dim: typing.SupportsInt | typing.SupportsIndex, steps: list[typing.Any], link: str) -> None:
        ...
    def predict(self, X: typing.Any, batch_size: typing.SupportsInt | typing.SupportsIndex) -> tuple[numpy.typing.NDArray[numpy.float32], bool]:
        """
        (the outputs after the link for X (n, input_dim) float32, C-contiguous; whether all of them are finite)
        """
    @property
    def input_dim(self) -> int:
        ...
    @property
    def output_dim(self) -> int:
        ...
def act_backward(dy: typing.Any, v: typing.Any, out: typing.Any, activation: str, param: typing.SupportsFloat | typing.SupportsIndex, from_output: bool = False) -> None:
    """
    out = dy * act'(x), v = x (or v = y = act(x) when from_output)
    """
def act_forward(x: typing.Any, out: typing.Any, activation: str, param: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    out = act(x), element-wise; out may be x
    """
def act_grad_from_output_ok(activation: str, param: typing.SupportsFloat | typing.SupportsIndex) -> bool:
    ...
def adagrad_step(params: typing.Any, grads: typing.Any, state_sums: typing.Any, l1: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], l2: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], step: typing.SupportsInt | typing.SupportsIndex, grad_scale: typing.SupportsFloat | typing.SupportsIndex, **kwargs: typing.Any) -> None:
    ...
def adam_step(params: typing.Any, grads: typing.Any, exp_avgs: typing.Any, exp_avg_sqs: typing.Any, max_exp_avg_sqs: typing.Any, l1: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], l2: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], step: typing.SupportsInt | typing.SupportsIndex, decoupled: bool, grad_scale: typing.SupportsFloat | typing.SupportsIndex, **kwargs: typing.Any) -> None:
    ...
def argmax_rows(x: typing.Any) -> typing.Any:
    ...
def batch_norm_backward(dy: typing.Any, x: typing.Any, gamma: typing.Any, save_mean: typing.Any, save_invstd: typing.Any) -> tuple[typing.Any, ...]:
    """
    (dx, dgamma, dbeta)
    """
def batch_norm_infer(x: typing.Any, gamma: typing.Any, beta: typing.Any, running_mean: typing.Any, running_var: typing.Any, eps: typing.SupportsFloat | typing.SupportsIndex) -> typing.Any:
    ...
def batch_norm_train(x: typing.Any, gamma: typing.Any, beta: typing.Any, running_mean: typing.Any, running_var: typing.Any, momentum: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex) -> tuple[typing.Any, ...]:
    """
    (y, save_mean, save_invstd); running stats (or None) updated in place
    """
def best_simd() -> str:
    ...
def bf16_kernel() -> str:
    ...
def bf16_native_supported() -> bool:
    ...
def binary_correct(logits: typing.Any, targets: typing.Any, threshold: typing.SupportsFloat | typing.SupportsIndex) -> int:
    ...
def binary_cross_entropy_with_logits(logits: typing.Any, targets: typing.Any) -> tuple[typing.Any, ...]:
    ...
def cgroup_cpu_limit(root: str, group: str) -> int:
    """
    CPUs a cgroup quota allows (0: none), read under root for the process group `group`
    """
def cpu_features() -> str:
    ...
def dense_backward(dy: typing.Any, x: typing.Any, w: typing.Any, gate: typing.Any, activation: str, act_param: typing.SupportsFloat | typing.SupportsIndex, from_output: bool, dw: typing.Any, db: typing.Any, dx: typing.Any, accumulate: bool) -> None:
    """
    fused dense-layer backward: dw (+)= x^T dz, db (+)= colsum(dz), dx = dz w^T, dz = dy * act'(gate)
    """
def dense_backward_bf16(dy: typing.Any, x: typing.Any, w: typing.Any, gate: typing.Any, activation: str, act_param: typing.SupportsFloat | typing.SupportsIndex, from_output: bool, dw: typing.Any, db: typing.Any, dx: typing.Any, accumulate: bool) -> None:
    """
    the bf16 engine's dense backward: dw (+)= x^T dz, db (+)= colsum(dz), dx = dz w^T
    """
def dropout_backward(dy: typing.Any, mask: typing.Any, rate: typing.SupportsFloat | typing.SupportsIndex) -> typing.Any:
    """
    dx = dy * mask / (1 - rate)
    """
def dropout_forward(x: typing.Any, rate: typing.SupportsFloat | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex) -> tuple[typing.Any, ...]:
    """
    (y, mask): inverted dropout of x, mask uint8 (1 = kept)
    """
def dropout_forward_into(x: typing.Any, out: typing.Any, mask: typing.Any, rate: typing.SupportsFloat | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def gemm(a: typing.Any, b: typing.Any, out: typing.Any, trans_a: bool, trans_b: bool, alpha: typing.SupportsFloat | typing.SupportsIndex, beta: typing.SupportsFloat | typing.SupportsIndex, bias: typing.Any, activation: str, act_param: typing.SupportsFloat | typing.SupportsIndex, reference: bool = False, z: typing.Any = None) -> None:
    """
    out = act(alpha * op(a) @ op(b) + beta * out + bias), in place; z = the pre-activation
    """
def gemm_bf16(a: typing.Any, b: typing.Any, out: typing.Any, trans_a: bool, trans_b: bool, alpha: typing.SupportsFloat | typing.SupportsIndex, beta: typing.SupportsFloat | typing.SupportsIndex, bias: typing.Any, activation: str, act_param: typing.SupportsFloat | typing.SupportsIndex, z: typing.Any = None, prepacked: bool = False) -> None:
    """
    out = act(alpha * bf16(op(a)) @ bf16(op(b)) + beta * out + bias), FP32 accumulation
    """
def gemm_packed(a: typing.Any, b: typing.Any, out: typing.Any, bias: typing.Any = None, activation: str = 'none', act_param: typing.SupportsFloat | typing.SupportsIndex = 0.0, alpha: typing.SupportsFloat | typing.SupportsIndex = 1.0, beta: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> None:
    """
    out = act(alpha a @ b + beta out + bias) with b packed in panels (tests)
    """
def get_num_threads() -> int:
    ...
def get_simd() -> str:
    ...
def global_norm(tensors: typing.Any) -> float:
    """
    sqrt of the sum of squares of every element, in double
    """
def hardware_threads() -> int:
    ...
def init_weights(kind: str, out: typing.Any, fan_in: typing.SupportsInt | typing.SupportsIndex, fan_out: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, gain: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    fill out in place; gain < 0 = the kind's default
    """
def mae(pred: typing.Any, target: typing.Any) -> tuple[typing.Any, ...]:
    ...
def max_threads() -> int:
    ...
def mean_rows(x: typing.Any) -> typing.Any:
    ...
def mse(pred: typing.Any, target: typing.Any) -> tuple[typing.Any, ...]:
    ...
def qgemm_paths() -> list[str]:
    ...
def qgemm_quantize_rows(x: typing.Any, path: str) -> tuple[numpy.typing.NDArray[numpy.uint16], numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.int32]]:
    """
    the row quantizer of one int8 path: (codes (M, K) as uint16, row scales, zero points)
    """
def qgemm_s32(a: typing.Any, b: typing.Any, path: str) -> numpy.typing.NDArray[numpy.int32]:
    """
    exact int32 a (M, K) uint8 @ b (K, N) int8 on one int8 path ('vnni', 'avx2', 'scalar')
    """
def rmsprop_step(params: typing.Any, grads: typing.Any, square_avgs: typing.Any, momentum_buffers: typing.Any, grad_avgs: typing.Any, l1: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], l2: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], grad_scale: typing.SupportsFloat | typing.SupportsIndex, **kwargs: typing.Any) -> None:
    ...
def sample_candidates(num_sampled: typing.SupportsInt | typing.SupportsIndex, num_classes: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, sampler: str, unique: bool, max_rejection_draws: typing.SupportsInt | typing.SupportsIndex = -1) -> tuple[typing.Any, ...]:
    """
    (ids int64 (S,), expected counts float64 (S,), number of draws); max_rejection_draws >= 0 overrides the rejection budget (for tests)
    """
def sampled_softmax_cross_entropy(h: typing.Any, W: typing.Any, b: typing.Any, labels: typing.Any, num_sampled: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, sampler: str, unique: bool, subtract_log_q: bool, remove_accidental_hits: bool, correct_true_logit: bool) -> tuple[typing.Any, ...]:
    """
    (mean loss, dh, cols, dW_cols, db_cols or None)
    """
def scale_tensors(tensors: typing.Any, factor: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    x *= factor in place, for every tensor
    """
def scatter_add_columns(cols: typing.Any, dW_cols: typing.Any, db_cols: typing.Any, dW: typing.Any, db: typing.Any) -> None:
    """
    dW[:, cols] += dW_cols; db[cols] += db_cols, in place
    """
def set_bf16_fallback(forced: bool) -> None:
    """
    force (True) or release (False) the bf16 GEMM's fallback kernel
    """
def set_num_threads(n: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def set_simd(name: str) -> None:
    ...
def sgd_step(params: typing.Any, grads: typing.Any, momentum_buffers: typing.Any, l1: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], l2: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], first_step: bool, grad_scale: typing.SupportsFloat | typing.SupportsIndex, **kwargs: typing.Any) -> None:
    ...
def simd_supported(name: str) -> bool:
    ...
def softmax_backward(dy: typing.Any, y: typing.Any, out: typing.Any, log: bool) -> None:
    """
    vector-Jacobian product of (log-)softmax over the last axis, from its output y
    """
def softmax_cross_entropy(logits: typing.Any, labels: typing.Any, class_weight: typing.Any, label_smoothing: typing.SupportsFloat | typing.SupportsIndex) -> tuple[typing.Any, ...]:
    """
    (mean loss, dlogits); labels are int64 indices (N,) or probabilities (N, C)
    """
def softmax_forward(x: typing.Any, out: typing.Any, log: bool) -> None:
    """
    (log-)softmax over the last axis; out may be x
    """
def sum_rows(x: typing.Any) -> typing.Any:
    ...
def top_k_correct(scores: typing.Any, labels: typing.Any, k: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    rows whose label is among the k highest scores (the GPU: k = 1 only)
    """
compiler: str
