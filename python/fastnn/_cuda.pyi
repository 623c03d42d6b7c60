"""
fastnn CUDA kernels (internal; use fastnn.cuda)
"""
from __future__ import annotations
import collections.abc
import typing
__all__: list[str] = ['Network32', 'Network64', 'Storage', 'act_backward', 'act_backward_device', 'act_forward', 'adagrad_step', 'adam_step', 'argmax_rows', 'batch_norm_backward', 'batch_norm_infer', 'batch_norm_train', 'batch_norm_workspace_bytes', 'binary_cross_entropy_with_logits', 'column_sums_workspace_bytes', 'compiled_architectures', 'copy_device', 'copy_from_host', 'copy_to_host', 'dense_backward', 'dense_backward_device', 'dense_backward_workspace_bytes', 'describe', 'device_capability', 'device_count', 'dropout_backward', 'dropout_forward', 'dropout_forward_into', 'empty', 'empty_cache', 'export_dlpack', 'fused_mlp_applies', 'fused_mlp_backward_device', 'fused_mlp_forward_device', 'gemm', 'gemm_device', 'global_norm', 'global_norm_partials', 'import_dlpack', 'loss_workspace_bytes', 'mae', 'mean_rows', 'memory_stats', 'mse', 'rmsprop_step', 'sampled_softmax_cross_entropy', 'scale_tensors', 'scatter_add_columns', 'sgd_step', 'size_class', 'softmax_backward', 'softmax_cross_entropy', 'softmax_forward', 'stream', 'stream_wait', 'sum_rows', 'sum_rows_device', 'synchronize', 'top_k_correct']
class Storage:
    """
    A span of device or imported memory (internal: fastnn.Tensor)
    """
    def __repr__(self) -> str:
        ...
    @property
    def cached(self) -> bool:
        """
        True for a block of fastnn's caching allocator, False for memory imported through DLPack
        """
    @property
    def device(self) -> str:
        ...
    @property
    def device_id(self) -> int:
        ...
    @property
    def device_type(self) -> int:
        ...
    @property
    def nbytes(self) -> int:
        ...
    @property
    def ptr(self) -> int:
        ...
    @property
    def readonly(self) -> bool:
        """
        True when a DLPack >= 1.0 producer marked the memory read-only
        """
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
def act_backward(dy: typing.Any, v: typing.Any, out: typing.Any, activation: str, param: typing.SupportsFloat | typing.SupportsIndex, from_output: bool = False) -> None:
    """
    out = dy * act'(x), v = x (or v = y = act(x) when from_output)
    """
def act_backward_device(activation: str, param: typing.SupportsFloat | typing.SupportsIndex, dy: typing.SupportsInt | typing.SupportsIndex, v: typing.SupportsInt | typing.SupportsIndex, dx: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, stream: typing.SupportsInt | typing.SupportsIndex = 0, from_output: bool = False) -> None:
    """
    dx = dy * act'(x) on n float32 device elements; v = x, or y = act(x) with from_output
    """
def act_forward(x: typing.Any, out: typing.Any, activation: str, param: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    out = act(x), element-wise; out may be x
    """
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
def batch_norm_workspace_bytes(N: typing.SupportsInt | typing.SupportsIndex, F: typing.SupportsInt | typing.SupportsIndex) -> int:
    ...
def binary_cross_entropy_with_logits(logits: typing.Any, targets: typing.Any) -> tuple[typing.Any, ...]:
    ...
def column_sums_workspace_bytes(N: typing.SupportsInt | typing.SupportsIndex, F: typing.SupportsInt | typing.SupportsIndex) -> int:
    ...
def compiled_architectures() -> list[typing.Any]:
    """
    The device-code images compiled in: sm_XY (SASS), compute_XY (PTX)
    """
def copy_device(dst: Storage, dst_offset: typing.SupportsInt | typing.SupportsIndex, src: Storage, src_offset: typing.SupportsInt | typing.SupportsIndex, nbytes: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Device-to-device (or peer) copy, asynchronous
    """
def copy_from_host(dst: Storage, dst_offset: typing.SupportsInt | typing.SupportsIndex, src: typing.Any) -> None:
    """
    Copies a C-contiguous array into dst at dst_offset on fastnn's stream; waits for it
    """
def copy_to_host(src: Storage, src_offset: typing.SupportsInt | typing.SupportsIndex, dst: typing.Any) -> None:
    """
    Copies src at src_offset into a C-contiguous writable array; waits for the copy
    """
def dense_backward(dy: typing.Any, x: typing.Any, w: typing.Any, gate: typing.Any, activation: str, act_param: typing.SupportsFloat | typing.SupportsIndex, from_output: bool, dw: typing.Any, db: typing.Any, dx: typing.Any, accumulate: bool) -> None:
    """
    fused dense-layer backward: dw (+)= x^T dz, db (+)= colsum(dz), dx = dz w^T, dz = dy * act'(gate)
    """
def dense_backward_device(dy: typing.SupportsInt | typing.SupportsIndex, x: typing.SupportsInt | typing.SupportsIndex, w: typing.SupportsInt | typing.SupportsIndex, gate: typing.SupportsInt | typing.SupportsIndex, activation: str, act_param: typing.SupportsFloat | typing.SupportsIndex, from_output: bool, dw: typing.SupportsInt | typing.SupportsIndex, db: typing.SupportsInt | typing.SupportsIndex, dx: typing.SupportsInt | typing.SupportsIndex, M: typing.SupportsInt | typing.SupportsIndex, K: typing.SupportsInt | typing.SupportsIndex, N: typing.SupportsInt | typing.SupportsIndex, ldy: typing.SupportsInt | typing.SupportsIndex, ldx: typing.SupportsInt | typing.SupportsIndex, ldw: typing.SupportsInt | typing.SupportsIndex, lddw: typing.SupportsInt | typing.SupportsIndex, lddx: typing.SupportsInt | typing.SupportsIndex, accumulate: bool, workspace: typing.SupportsInt | typing.SupportsIndex, workspace_bytes: typing.SupportsInt | typing.SupportsIndex, stream: typing.SupportsInt | typing.SupportsIndex = 0, precision: str = 'fp32', path: str = 'auto') -> None:
    """
    Backward of y = act(x @ w + b) on float32 device arrays: dz = dy * act'(gate) (gate = z, or y with from_output), dw (+)= x.T @ dz, db (+)= dz.sum(0) (db = 0: skipped), dx = dz @ w.T (dx = 0: skipped). x (M, K), w (K, N), dy and gate (M, N) share the row stride ldy. precision: 'fp32', 'tf32' or 'bf16'; path: 'auto', 'fused' (FP32 only), 'composed', or 'fused64' / 'fused128' with the tile size forced
    """
def dense_backward_workspace_bytes(M: typing.SupportsInt | typing.SupportsIndex, N: typing.SupportsInt | typing.SupportsIndex, K: typing.Any = None) -> int:
    """
    bytes of device workspace dense_backward_device needs for a batch of M and N outputs; with K (in_features) also enough for the fused path to split long sums over several blocks
    """
def describe() -> dict[str, typing.Any]:
    """
    {'cuda_runtime': str, 'cuda_driver': str or None, 'gpus': [str]} (never raises for a missing GPU or driver)
    """
def device_capability(device: typing.SupportsInt | typing.SupportsIndex) -> tuple[typing.Any, ...]:
    """
    (major, minor) compute capability of a CUDA device
    """
def device_count() -> int:
    """
    Number of CUDA devices; 0 when there is no GPU or no usable driver (never raises)
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
def empty(nbytes: typing.SupportsInt | typing.SupportsIndex, device: typing.SupportsInt | typing.SupportsIndex) -> Storage:
    """
    Uninitialised device storage from the caching allocator
    """
def empty_cache(device: typing.SupportsInt | typing.SupportsIndex = -1) -> None:
    """
    cudaFrees the cached blocks (all devices: -1)
    """
def export_dlpack(storage: Storage, byte_offset: typing.SupportsInt | typing.SupportsIndex, shape: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], strides: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], type_code: typing.SupportsInt | typing.SupportsIndex, bits: typing.SupportsInt | typing.SupportsIndex, consumer_stream: typing.SupportsInt | typing.SupportsIndex, versioned: bool = False, copied: bool = False) -> typing.Any:
    """
    A DLPack capsule viewing storage (zero-copy): 'dltensor_versioned' when versioned
    """
def fused_mlp_applies(widths: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], activations: list[typing.Any], act_params: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], precision: str) -> bool:
    """
    Whether the fused MLP kernel takes this stack: widths [in, out_0, ...], one activation name (or None) and parameter per layer; never touches the GPU
    """
def fused_mlp_backward_device(M: typing.SupportsInt | typing.SupportsIndex, widths: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], weights: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], activations: list[typing.Any], act_params: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], outputs: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], dY: typing.SupportsInt | typing.SupportsIndex, dZ: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], dX: typing.SupportsInt | typing.SupportsIndex = 0, precision: str = 'fp32', stream: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
    """
    The fused MLP backward on device addresses (dX = 0: not computed), enqueued on `stream`
    """
def fused_mlp_forward_device(X: typing.SupportsInt | typing.SupportsIndex, M: typing.SupportsInt | typing.SupportsIndex, widths: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], weights: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], biases: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], activations: list[typing.Any], act_params: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], outputs: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], precision: str = 'fp32', stream: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
    """
    The fused MLP forward on device addresses (0 = no bias / no stored output), enqueued on `stream`
    """
def gemm(a: typing.Any, b: typing.Any, out: typing.Any, trans_a: bool, trans_b: bool, alpha: typing.SupportsFloat | typing.SupportsIndex, beta: typing.SupportsFloat | typing.SupportsIndex, bias: typing.Any, activation: str, act_param: typing.SupportsFloat | typing.SupportsIndex, reference: bool = False, z: typing.Any = None) -> None:
    """
    out = act(alpha * op(a) @ op(b) + beta * out + bias), in place; z = the pre-activation
    """
def gemm_device(a: typing.SupportsInt | typing.SupportsIndex, b: typing.SupportsInt | typing.SupportsIndex, c: typing.SupportsInt | typing.SupportsIndex, M: typing.SupportsInt | typing.SupportsIndex, N: typing.SupportsInt | typing.SupportsIndex, K: typing.SupportsInt | typing.SupportsIndex, lda: typing.SupportsInt | typing.SupportsIndex, ldb: typing.SupportsInt | typing.SupportsIndex, ldc: typing.SupportsInt | typing.SupportsIndex, trans_a: bool = False, trans_b: bool = False, alpha: typing.SupportsFloat | typing.SupportsIndex = 1.0, beta: typing.SupportsFloat | typing.SupportsIndex = 0.0, bias: typing.SupportsInt | typing.SupportsIndex = 0, activation: str = 'none', act_param: typing.SupportsFloat | typing.SupportsIndex = 0.0, stream: typing.SupportsInt | typing.SupportsIndex = 0, variant: str = 'auto') -> None:
    """
    C = act(alpha op(A) op(B) + beta C + bias) on device pointers, enqueued on `stream`; variant: 'auto', 'v1' (general kernel), 'v2' (fast FP32 path), 'tf32' or 'bf16' (tensor cores; ValueError unless the v2 layout conditions hold)
    """
def global_norm(tensors: typing.Any) -> float:
    """
    sqrt of the sum of squares of every element, in double
    """
def global_norm_partials(sizes: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> int:
    """
    doubles of workspace global_norm needs for tensors of these sizes
    """
def import_dlpack(capsule: typing.Any) -> tuple[typing.Any, ...]:
    """
    Consumes a 'dltensor' or 'dltensor_versioned' capsule: (storage, shape, strides, (code, bits, lanes), offset)
    """
def loss_workspace_bytes() -> int:
    """
    bytes of device workspace a loss call needs
    """
def mae(pred: typing.Any, target: typing.Any) -> tuple[typing.Any, ...]:
    ...
def mean_rows(x: typing.Any) -> typing.Any:
    ...
def memory_stats(device: typing.SupportsInt | typing.SupportsIndex) -> dict[str, typing.Any]:
    """
    Caching allocator counters
    """
def mse(pred: typing.Any, target: typing.Any) -> tuple[typing.Any, ...]:
    ...
def rmsprop_step(params: typing.Any, grads: typing.Any, square_avgs: typing.Any, momentum_buffers: typing.Any, grad_avgs: typing.Any, l1: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], l2: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], grad_scale: typing.SupportsFloat | typing.SupportsIndex, **kwargs: typing.Any) -> None:
    ...
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
def sgd_step(params: typing.Any, grads: typing.Any, momentum_buffers: typing.Any, l1: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], l2: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], first_step: bool, grad_scale: typing.SupportsFloat | typing.SupportsIndex, **kwargs: typing.Any) -> None:
    ...
def size_class(nbytes: typing.SupportsInt | typing.SupportsIndex) -> int:
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
def stream(device: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    fastnn's cudaStream_t on `device`, as an integer
    """
def stream_wait(consumer: typing.SupportsInt | typing.SupportsIndex, device: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Makes stream `consumer` (1, 2 or a pointer) wait for the work on fastnn's stream
    """
def sum_rows(x: typing.Any) -> typing.Any:
    ...
def sum_rows_device(x: typing.SupportsInt | typing.SupportsIndex, N: typing.SupportsInt | typing.SupportsIndex, F: typing.SupportsInt | typing.SupportsIndex, out: typing.SupportsInt | typing.SupportsIndex, mean: bool, workspace: typing.SupportsInt | typing.SupportsIndex, workspace_bytes: typing.SupportsInt | typing.SupportsIndex, stream: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
    """
    out (F,) = column sums (means) of a float32 (N, F) device array; workspace: column_sums_workspace_bytes(N, F)
    """
def synchronize(device: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Waits for fastnn's stream on `device`
    """
def top_k_correct(scores: typing.Any, labels: typing.Any, k: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    rows whose label is among the k highest scores (the GPU: k = 1 only)
    """
