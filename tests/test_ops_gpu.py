"""fastnn.ops on fastnn.Tensor: CUDA tensors in, CUDA tensors out (python/fastnn/ops/).

Two halves:
- CPU-runnable: the dispatch logic. CPU tensors go to the CPU path (alone or mixed with NumPy
  arrays); non-arrays raise what they raised before; the GPU path's argument checks (mixing a
  CUDA tensor with host arrays, dtype / shape / contiguity errors) are exercised on stand-in CUDA
  tensors whose storage is a fake (the checks all run before any kernel or CUDA call); the
  dispatch test costs next to nothing on the NumPy path.
- GPU (skipped without a usable device): each op against the CPU op on the same data, within
  float32 tolerance (float64 where the kernels have it; matmul/linear are float32 only), dropout
  masks identical, in-place updates (optimizer state, running statistics, out=) and errors.
  FASTNN_CUDA_STANDIN=1 runs these on a host-memory stand-in for fastnn._cuda that forwards to
  the CPU kernels: a check of the glue (arguments, devices, in-place outputs), not of the CUDA
  kernels.
"""

import numpy as np
import pytest

import fastnn
from fastnn import cuda, ops
from fastnn.tensor import Tensor

import gpu
from gpu import needs_device as needs_gpu

ACTS = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "step"]


def cpu_t(a):
    return fastnn.asarray(a)


# ============================================================== CPU-runnable: the dispatch
class _FakeStorage:
    """Stands in for a CUDA storage: the validation reads only ptr and readonly."""

    def __init__(self, nbytes, readonly=False):
        self.ptr = 1 << 20
        self.nbytes = nbytes
        self.readonly = readonly
        self.device_id = 0


def fake_cuda(shape, dtype=np.float32, index=0, strides=None, readonly=False):
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    if strides is None:
        strides = []
        run = 1
        for d in reversed(shape):
            strides.append(run)
            run *= d
        strides = tuple(reversed(strides))
    return Tensor._wrap_storage(_FakeStorage(n * dtype.itemsize, readonly), 0, shape, strides,
                                dtype, index)


def test_fake_tensor_is_cuda():
    t = fake_cuda((2, 3))
    assert t.is_cuda and t.device == "cuda:0"


@pytest.mark.parametrize("name", ACTS)
def test_cpu_tensor_takes_cpu_path(name, rng):
    x = rng.standard_normal((5, 7)).astype(np.float32)
    got = getattr(ops, name)(cpu_t(x))
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, getattr(ops, name)(x))


def test_cpu_tensor_out_is_written(rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    out = np.empty_like(x)
    ops.relu(cpu_t(x), out=cpu_t(out))
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    ops.softmax(x, out=cpu_t(out))
    np.testing.assert_allclose(out, ops.softmax(x))


def test_mixing_numpy_and_cpu_tensor(rng):
    a = rng.standard_normal((6, 4)).astype(np.float32)
    b = rng.standard_normal((4, 3)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    np.testing.assert_array_equal(ops.matmul(cpu_t(a), b), ops.matmul(a, b))
    np.testing.assert_array_equal(ops.matmul(a, cpu_t(b)), ops.matmul(a, b))
    np.testing.assert_array_equal(ops.linear(a, cpu_t(b), cpu_t(bias), "relu"),
                                  ops.linear(a, b, bias, "relu"))
    y, z = ops.linear(cpu_t(a), b, bias, "gelu", return_preactivation=True)
    y0, z0 = ops.linear(a, b, bias, "gelu", return_preactivation=True)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(z, z0)
    out = np.empty((6, 3), np.float32)
    ops.matmul(a, b, out=cpu_t(out))
    np.testing.assert_array_equal(out, ops.matmul(a, b))
    g = rng.standard_normal((6, 4)).astype(np.float32)
    np.testing.assert_array_equal(ops.activation_grad("tanh", cpu_t(g), a),
                                  ops.activation_grad("tanh", g, a))
    np.testing.assert_array_equal(ops.activation_grad(None, g, cpu_t(a)), g)
    np.testing.assert_array_equal(ops.activation_grad("softmax", cpu_t(g), a),
                                  ops.activation_grad("softmax", g, a))


def test_cpu_tensor_linear_grad(rng):
    x = rng.standard_normal((6, 4)).astype(np.float32)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    dy = rng.standard_normal((6, 3)).astype(np.float32)
    y, z = ops.linear(x, w, None, "tanh", return_preactivation=True)
    got = ops.linear_grad(cpu_t(dy), x, cpu_t(w), "tanh", z=cpu_t(z))
    ref = ops.linear_grad(dy, x, w, "tanh", z=z)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)


def test_cpu_tensor_losses_and_reductions(rng):
    logits = rng.standard_normal((8, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 8)
    loss, grad = ops.softmax_cross_entropy(cpu_t(logits), labels)
    loss0, grad0 = ops.softmax_cross_entropy(logits, labels)
    assert loss == loss0
    np.testing.assert_array_equal(grad, grad0)
    t = rng.standard_normal((8, 5)).astype(np.float32)
    for fn in (ops.mse, ops.mae, ops.binary_cross_entropy_with_logits):
        a, ga = fn(cpu_t(logits), t)
        b, gb = fn(logits, t)
        assert a == b
        np.testing.assert_array_equal(ga, gb)
    np.testing.assert_array_equal(ops.sum_rows(cpu_t(logits)), ops.sum_rows(logits))
    np.testing.assert_array_equal(ops.mean_rows(cpu_t(logits)), ops.mean_rows(logits))
    np.testing.assert_array_equal(ops.argmax_rows(cpu_t(logits)), ops.argmax_rows(logits))
    assert ops.count_correct(cpu_t(logits), cpu_t(labels)) == ops.count_correct(logits, labels)


def test_cpu_tensor_dropout_and_norm(rng):
    x = rng.standard_normal((16, 4)).astype(np.float32)
    y, m = ops.dropout(cpu_t(x), 0.3, 7)
    y0, m0 = ops.dropout(x, 0.3, 7)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(m, m0)
    np.testing.assert_array_equal(ops.dropout_grad(cpu_t(x), cpu_t(m), 0.3),
                                  ops.dropout_grad(x, m, 0.3))
    rm, rv = np.zeros(4, np.float32), np.ones(4, np.float32)
    rm0, rv0 = rm.copy(), rv.copy()
    out = ops.batch_norm(cpu_t(x), None, None, cpu_t(rm), cpu_t(rv))
    ref = ops.batch_norm(x, None, None, rm0, rv0)
    for a, b in zip(out, ref):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(rm, rm0)  # updated in place through the CPU tensor
    np.testing.assert_array_equal(rv, rv0)
    g = ops.batch_norm_grad(cpu_t(x), x, None, cpu_t(ref[1]), ref[2])
    g0 = ops.batch_norm_grad(x, x, None, ref[1], ref[2])
    for a, b in zip(g, g0):
        np.testing.assert_array_equal(a, b)


def test_cpu_tensor_optimizers(rng):
    p = rng.standard_normal(10).astype(np.float32)
    g = rng.standard_normal(10).astype(np.float32)
    p0 = p.copy()
    buf, buf0 = np.zeros_like(p), np.zeros_like(p)
    ops.sgd_step([cpu_t(p)], [g], 0.1, momentum=0.9, momentum_buffers=[cpu_t(buf)])
    ops.sgd_step([p0], [g], 0.1, momentum=0.9, momentum_buffers=[buf0])
    np.testing.assert_array_equal(p, p0)
    np.testing.assert_array_equal(buf, buf0)
    m, v = np.zeros_like(p), np.zeros_like(p)
    m0, v0 = m.copy(), v.copy()
    ops.adam_step(cpu_t(p), cpu_t(g), cpu_t(m), cpu_t(v), 1)
    ops.adam_step(p0, g, m0, v0, 1)
    np.testing.assert_array_equal(p, p0)
    s, s0 = np.zeros_like(p), np.zeros_like(p)
    ops.adagrad_step([cpu_t(p)], [cpu_t(g)], [cpu_t(s)], 1)
    ops.adagrad_step([p0], [g], [s0], 1)
    np.testing.assert_array_equal(p, p0)
    ops.rmsprop_step([cpu_t(p)], [g], [cpu_t(s)])
    ops.rmsprop_step([p0], [g], [s0])
    np.testing.assert_array_equal(p, p0)
    assert ops.global_norm([cpu_t(g)]) == ops.global_norm([g])
    g1 = g.copy()
    assert ops.clip_grad_norm([cpu_t(g1)], 0.5) == ops.clip_grad_norm([g.copy()], 0.5)
    np.testing.assert_allclose(np.linalg.norm(g1), 0.5, rtol=1e-5)


@pytest.mark.parametrize("call", [
    lambda: ops.relu("abc"),
    lambda: ops.matmul(object(), np.ones((2, 2), np.float32)),
    lambda: ops.softmax_cross_entropy(np.ones((2, 2), np.float32), object()),
    lambda: ops.sgd_step(object(), [], 0.1),
    lambda: ops.mse({}, np.ones(2, np.float32)),
    lambda: ops.sum_rows(object()),
    lambda: ops.dropout(object(), 0.5, 1),
])
def test_non_arrays_raise_as_before(call):
    with pytest.raises(TypeError, match="expected"):
        call()


# -------------------------------------------- the GPU path's argument checks, on stand-ins
def test_gpu_mixed_with_numpy_is_type_error():
    a = fake_cuda((3, 4))
    with pytest.raises(TypeError, match="b: expected a fastnn.Tensor on cuda:0.*do not mix"):
        ops.matmul(a, np.ones((4, 2), np.float32))
    with pytest.raises(TypeError, match="a: expected a fastnn.Tensor on cuda:0"):
        ops.matmul(np.ones((2, 3), np.float32), fake_cuda((3, 4)))
    with pytest.raises(TypeError, match="out: expected a fastnn.Tensor"):
        ops.relu(a, out=np.empty((3, 4), np.float32))
    with pytest.raises(TypeError, match="targets: expected a fastnn.Tensor"):
        ops.binary_cross_entropy_with_logits(a, cpu_t(np.ones((3, 4), np.float32)))
    with pytest.raises(TypeError, match="labels: expected a fastnn.Tensor"):
        ops.softmax_cross_entropy(a, np.zeros(3, np.int64))
    with pytest.raises(TypeError, match=r"grads\[0\]: expected a fastnn.Tensor"):
        ops.sgd_step([fake_cuda((4,))], [np.ones(4, np.float32)], 0.1)
    with pytest.raises(TypeError, match=r"params\[0\]: expected a fastnn.Tensor"):
        ops.adam_step([np.ones(4, np.float32)], [fake_cuda((4,))], [fake_cuda((4,))],
                      [fake_cuda((4,))], 1)
    with pytest.raises(TypeError, match="running_var: expected a fastnn.Tensor"):
        ops.batch_norm(fake_cuda((4, 3)), None, None, fake_cuda((3,)), np.ones(3, np.float32))


def test_kernel_the_gpu_lacks_is_not_implemented(monkeypatch):
    import _cuda_standin
    fake = _cuda_standin.install(monkeypatch)
    monkeypatch.setattr(fake, "top_k_correct", None, raising=False)  # as if _cuda had none
    scores = fastnn.asarray(np.eye(3, dtype=np.float32), device="cuda:0")
    labels = fastnn.asarray(np.arange(3), device="cuda:0")
    with pytest.raises(NotImplementedError, match="top_k_correct: not available on the GPU"):
        ops.top_k_correct(scores, labels, 2)


def test_counts_on_the_standin_match_cpu(monkeypatch, rng):
    import _cuda_standin
    _cuda_standin.install(monkeypatch)
    scores = rng.standard_normal((50, 7)).astype(np.float32)
    labels = rng.integers(0, 7, 50)
    targets = rng.integers(0, 2, (50, 7)).astype(bool)
    on = lambda a: fastnn.asarray(a, device="cuda:0")  # noqa: E731
    assert ops.top_k_correct(on(scores), on(labels), 3) == ops.top_k_correct(scores, labels, 3)
    assert (ops.binary_correct(on(scores), on(targets), 0.1)
            == ops.binary_correct(scores, targets, 0.1))
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 7\), got 9"):
        ops.top_k_correct(on(scores), on(np.full(50, 9)), 1)


def test_gpu_device_mismatch_is_value_error():
    with pytest.raises(ValueError, match="b: expected a tensor on cuda:0.*cuda:1"):
        ops.matmul(fake_cuda((3, 4)), fake_cuda((4, 2), index=1))


def test_gpu_dtype_and_shape_errors_match_cpu():
    with pytest.raises(TypeError, match="b: dtype float64 does not match a's float32"):
        ops.matmul(fake_cuda((3, 4)), fake_cuda((4, 2), np.float64))
    with pytest.raises(ValueError, match="matmul: inner dimensions differ"):
        ops.matmul(fake_cuda((3, 4)), fake_cuda((5, 2)))
    with pytest.raises(ValueError, match="a: expected a 2-D array"):
        ops.matmul(fake_cuda((3,)), fake_cuda((3, 2)))
    with pytest.raises(ValueError, match="beta: a non-zero beta needs"):
        ops.matmul(fake_cuda((3, 4)), fake_cuda((4, 2)), beta=1.0)
    with pytest.raises(ValueError, match=r"out: expected shape \(3, 2\)"):
        ops.matmul(fake_cuda((3, 4)), fake_cuda((4, 2)), out=fake_cuda((2, 3)))
    with pytest.raises(TypeError, match="x: expected float32 or float64, got int32"):
        ops.relu(fake_cuda((3,), np.int32))
    with pytest.raises(TypeError, match="out: expected dtype float32, got float64"):
        ops.sigmoid(fake_cuda((3,)), out=fake_cuda((3,), np.float64))
    with pytest.raises(ValueError, match="out: expected a writable C-contiguous tensor"):
        ops.tanh(fake_cuda((3,)), out=fake_cuda((3,), readonly=True))
    with pytest.raises(ValueError, match="linear: x has 4 features"):
        ops.linear(fake_cuda((3, 4)), fake_cuda((5, 2)))
    with pytest.raises(ValueError, match="activation: expected None or one of"):
        ops.linear(fake_cuda((3, 4)), fake_cuda((4, 2)), activation="nope")
    with pytest.raises(TypeError, match="linear on the GPU: float32 only"):
        ops.linear(fake_cuda((3, 4), np.float64), fake_cuda((4, 2), np.float64))
    with pytest.raises(ValueError, match="dy: expected shape"):
        ops.linear_grad(fake_cuda((3, 2)), fake_cuda((4, 5)), fake_cuda((5, 2)))
    with pytest.raises(ValueError, match="needs z="):
        ops.linear_grad(fake_cuda((4, 2)), fake_cuda((4, 5)), fake_cuda((5, 2)), "gelu")
    with pytest.raises(TypeError, match="z: expected a fastnn.Tensor"):
        ops.linear_grad(fake_cuda((4, 2)), fake_cuda((4, 5)), fake_cuda((5, 2)), "gelu",
                        z=np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match="accumulate=True needs"):
        ops.linear_grad(fake_cuda((4, 2)), fake_cuda((4, 5)), fake_cuda((5, 2)),
                        accumulate=True)
    with pytest.raises(ValueError, match="dy: expected the shape of x"):
        ops.activation_grad("relu", fake_cuda((3,)), fake_cuda((4,)))
    with pytest.raises(ValueError, match="x: expected a 1-D or 2-D array"):
        ops.softmax(fake_cuda(()))
    with pytest.raises(ValueError, match=r"rate: expected a probability"):
        ops.dropout(fake_cuda((3,)), 1.5, 0)
    with pytest.raises(ValueError, match="out, mask: give both"):
        ops.dropout(fake_cuda((3,)), 0.5, 0, out=fake_cuda((3,)))
    with pytest.raises(TypeError, match="mask: expected the uint8 mask"):
        ops.dropout_grad(fake_cuda((3,)), fake_cuda((3,)), 0.5)
    with pytest.raises(ValueError, match="target: expected shape"):
        ops.mse(fake_cuda((3,)), fake_cuda((4,)))
    with pytest.raises(ValueError, match="pred: expected at least one element"):
        ops.mae(fake_cuda((0,)), fake_cuda((0,)))
    with pytest.raises(TypeError, match="class indices must have an integer dtype"):
        ops.softmax_cross_entropy(fake_cuda((3, 4)), fake_cuda((3,)))
    with pytest.raises(ValueError, match=r"labels: expected class indices of shape \(3,\)"):
        ops.softmax_cross_entropy(fake_cuda((3, 4)), fake_cuda((4,), np.int64))
    with pytest.raises(ValueError, match="needs at least 2 rows"):
        ops.batch_norm(fake_cuda((1, 3)), None, None, None, None)
    with pytest.raises(ValueError, match="running_mean: required here"):
        ops.batch_norm(fake_cuda((4, 3)), None, None, None, None, training=False)
    with pytest.raises(ValueError, match=r"gamma: expected shape \(3,\)"):
        ops.batch_norm(fake_cuda((4, 3)), fake_cuda((2,)), None, None, None)
    with pytest.raises(ValueError, match="x: expected a 2-D"):
        ops.sum_rows(fake_cuda((4,)))
    with pytest.raises(ValueError, match="at least one row to average"):
        ops.mean_rows(fake_cuda((0, 3)))
    with pytest.raises(ValueError, match="labels: expected shape"):
        ops.count_correct(fake_cuda((4, 3)), fake_cuda((5,), np.int64))
    with pytest.raises(ValueError, match=r"grads\[0\]: expected shape"):
        ops.sgd_step([fake_cuda((4,))], [fake_cuda((5,))], 0.1)
    with pytest.raises(TypeError, match=r"grads\[0\]: expected dtype float32"):
        ops.sgd_step([fake_cuda((4,))], [fake_cuda((4,), np.float64)], 0.1)
    with pytest.raises(ValueError, match="momentum_buffers: needed"):
        ops.sgd_step([fake_cuda((4,))], [fake_cuda((4,))], 0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"params\[0\]: expected a C-contiguous"):
        ops.sgd_step([fake_cuda((4, 2), strides=(1, 4))], [fake_cuda((4, 2))], 0.1)
    with pytest.raises(ValueError, match=r"grads\[0\]: shares memory with params\[0\]"):
        ops.sgd_step([fake_cuda((4,))], [fake_cuda((4,))], 0.1)  # stand-ins share one address
    with pytest.raises(ValueError, match="max_exp_avg_sqs: needed"):
        ops.adam_step([fake_cuda((4,))], [fake_cuda((4,))], [fake_cuda((4,))],
                      [fake_cuda((4,))], 1, amsgrad=True)
    with pytest.raises(ValueError, match="step: expected the 1-based"):
        ops.adagrad_step([fake_cuda((4,))], [fake_cuda((4,))], [fake_cuda((4,))], 0)
    with pytest.raises(ValueError, match="grad_avgs: needed"):
        ops.rmsprop_step([fake_cuda((4,))], [fake_cuda((4,))], [fake_cuda((4,))], centered=True)
    with pytest.raises(ValueError, match="max_norm: expected a value >= 0"):
        ops.clip_grad_norm([fake_cuda((4,))], -1.0)


# ============================================================== GPU: each op against the CPU
dev = gpu.dev


def host(t):
    assert isinstance(t, Tensor) and t.device == "cuda:0", t
    return gpu.host(t)


def close(got, ref, dtype=np.float32, rtol=None, atol=None):
    rtol = rtol if rtol is not None else (2e-5 if dtype == np.float32 else 1e-12)
    atol = atol if atol is not None else (1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_allclose(host(got), ref, rtol=rtol, atol=atol)


DTYPES = [np.float32, np.float64]


@needs_gpu
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gpu_matmul(trans_a, trans_b, rng):
    m, k, n = 67, 129, 45
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    ref = ops.matmul(a, b, trans_a, trans_b)
    close(ops.matmul(dev(a), dev(b), trans_a, trans_b), ref, atol=1e-4, rtol=1e-4)
    c = rng.standard_normal((m, n)).astype(np.float32)
    out = dev(c)
    res = ops.matmul(dev(a), dev(b), trans_a, trans_b, alpha=0.5, beta=2.0, out=out)
    assert res is out
    close(out, 0.5 * ref + 2.0 * c, atol=1e-4, rtol=1e-4)


@needs_gpu
def test_gpu_matmul_edges(rng):
    a = rng.standard_normal((5, 0)).astype(np.float32)
    b = rng.standard_normal((0, 3)).astype(np.float32)
    close(ops.matmul(dev(a), dev(b)), np.zeros((5, 3)))
    assert ops.matmul(dev(np.ones((0, 4), np.float32)), dev(np.ones((4, 3), np.float32))).shape \
        == (0, 3)
    x = rng.standard_normal((8, 8)).astype(np.float32)
    t = dev(x)
    ops.matmul(t, t, out=t)  # out overlaps both inputs: computed into a temporary
    close(t, x @ x, atol=1e-4, rtol=1e-4)
    with pytest.raises(TypeError, match="float32 only"):
        ops.matmul(dev(x.astype(np.float64)), dev(x.astype(np.float64)))


@needs_gpu
@pytest.mark.parametrize("act", [None] + ACTS)
def test_gpu_linear(act, rng):
    x = rng.standard_normal((33, 70)).astype(np.float32)
    w = (rng.standard_normal((70, 17)) / 8).astype(np.float32)
    b = rng.standard_normal(17).astype(np.float32)
    # step's output flips where GEMM rounding moves z across 0: compare away from there
    keep = np.abs(x @ w + b) > 1e-3 if act == "step" else slice(None)
    got = host(ops.linear(dev(x), dev(w), dev(b), act))
    np.testing.assert_allclose(got[keep], ops.linear(x, w, b, act)[keep], atol=1e-4, rtol=1e-4)
    y, z = ops.linear(dev(x), dev(w), None, act, return_preactivation=True)
    y0, z0 = ops.linear(x, w, None, act, return_preactivation=True)
    keep = np.abs(z0) > 1e-3 if act == "step" else slice(None)
    np.testing.assert_allclose(host(y)[keep], y0[keep], atol=1e-4, rtol=1e-4)
    close(z, z0, atol=1e-4, rtol=1e-4)


@needs_gpu
@pytest.mark.parametrize("act", [None, "relu", "gelu", "sigmoid"])
@pytest.mark.parametrize("from_output", [False, True])
def test_gpu_linear_grad(act, from_output, rng):
    if from_output and act == "gelu":
        pytest.skip("gelu's derivative needs z")
    n, k, m = 70, 33, 21
    x = rng.standard_normal((n, k)).astype(np.float32)
    w = (rng.standard_normal((k, m)) / 4).astype(np.float32)
    dy = rng.standard_normal((n, m)).astype(np.float32)
    y, z = ops.linear(x, w, None, act, return_preactivation=True)
    kw = {"y": y} if from_output else {"z": z}
    kd = {"y": dev(y)} if from_output else {"z": dev(z)}
    ref = ops.linear_grad(dy, x, w, act, **kw)
    got = ops.linear_grad(dev(dy), dev(x), dev(w), act, **kd)
    for a, b in zip(got, ref):
        close(a, b, atol=1e-4, rtol=1e-4)
    # accumulation into given dw, db; no dx
    dw0 = rng.standard_normal((k, m)).astype(np.float32)
    db0 = rng.standard_normal(m).astype(np.float32)
    dw, db = dev(dw0), dev(db0)
    dx, dw1, db1 = ops.linear_grad(dev(dy), dev(x), dev(w), act, need_dx=False, dw=dw, db=db,
                                   accumulate=True, **kd)
    assert dx is None and dw1 is dw and db1 is db
    close(dw, dw0 + ref[1], atol=1e-4, rtol=1e-4)
    close(db, db0 + ref[2], atol=1e-4, rtol=1e-4)


@needs_gpu
def test_gpu_linear_grad_empty(rng):
    w = rng.standard_normal((3, 4)).astype(np.float32)
    dx, dw, db = ops.linear_grad(dev(np.ones((0, 4), np.float32)),
                                 dev(np.ones((0, 3), np.float32)), dev(w))
    close(dw, np.zeros((3, 4)))
    close(db, np.zeros(4))
    assert dx.shape == (0, 3)


@needs_gpu
def test_gpu_linear_no_inner_dimension(rng):
    b = rng.standard_normal(4).astype(np.float32)
    x, w = np.ones((3, 0), np.float32), np.ones((0, 4), np.float32)
    close(ops.linear(dev(x), dev(w), dev(b), "relu"), ops.linear(x, w, b, "relu"))


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTS)
def test_gpu_activations(name, dtype, rng):
    x = (rng.standard_normal((37, 29)) * 3).astype(dtype)
    fn = getattr(ops, name)
    close(fn(dev(x)), fn(x), dtype)
    t = dev(x)
    assert fn(t, out=t) is t  # in place
    close(t, fn(x), dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    close(ops.activation_grad(name, dev(dy), dev(x)), ops.activation_grad(name, dy, x), dtype)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_gpu_softmax(name, dtype, rng):
    for shape in [(13,), (40, 10), (3, 5, 1100)]:
        x = (rng.standard_normal(shape) * 4).astype(dtype)
        fn = getattr(ops, name)
        close(fn(dev(x)), fn(x), dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        close(ops.activation_grad(name, dev(dy), dev(x)), ops.activation_grad(name, dy, x),
              dtype)
    dy = rng.standard_normal((4, 5)).astype(dtype)
    close(ops.activation_grad(None, dev(dy), dev(dy)), dy, dtype)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0])
def test_gpu_dropout_mask_identical(rate, dtype, rng):
    x = rng.standard_normal((101, 33)).astype(dtype)
    y, m = ops.dropout(dev(x), rate, 12345)
    y0, m0 = ops.dropout(x, rate, 12345)
    np.testing.assert_array_equal(host(m), m0)
    close(y, y0, dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    close(ops.dropout_grad(dev(dy), m, rate), ops.dropout_grad(dy, m0, rate), dtype)
    t, mk = dev(x), dev(np.empty(x.shape, np.uint8))
    assert ops.dropout(t, rate, 12345, out=t, mask=mk) == (t, mk)
    np.testing.assert_array_equal(host(mk), m0)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_losses(dtype, rng):
    rtol = 1e-5 if dtype == np.float32 else 1e-11
    logits = (rng.standard_normal((300, 10)) * 2).astype(dtype)
    labels = rng.integers(0, 10, 300)
    w = rng.uniform(0.5, 2, 10).astype(dtype)
    for lab in (labels, labels.astype(np.int32)):
        for kwargs in ({}, {"label_smoothing": 0.1}):
            loss, grad = ops.softmax_cross_entropy(dev(logits), dev(lab), **kwargs)
            loss0, grad0 = ops.softmax_cross_entropy(logits, lab, **kwargs)
            assert isinstance(loss, float)
            np.testing.assert_allclose(loss, loss0, rtol=rtol)
            close(grad, grad0, dtype, rtol=rtol)
    loss, grad = ops.softmax_cross_entropy(dev(logits), dev(labels), dev(w))
    loss0, grad0 = ops.softmax_cross_entropy(logits, labels, w)
    np.testing.assert_allclose(loss, loss0, rtol=rtol)
    close(grad, grad0, dtype, rtol=rtol)
    probs = ops.softmax(rng.standard_normal((300, 10)).astype(dtype))
    loss, grad = ops.softmax_cross_entropy(dev(logits), dev(probs))
    loss0, grad0 = ops.softmax_cross_entropy(logits, probs)
    np.testing.assert_allclose(loss, loss0, rtol=rtol)
    close(grad, grad0, dtype, rtol=rtol)
    with pytest.raises(ValueError):
        ops.softmax_cross_entropy(dev(logits), dev(np.full(300, 10)))
    t = rng.uniform(size=logits.shape).astype(dtype)
    for fn in (ops.mse, ops.mae, ops.binary_cross_entropy_with_logits):
        loss, grad = fn(dev(logits), dev(t))
        loss0, grad0 = fn(logits, t)
        np.testing.assert_allclose(loss, loss0, rtol=rtol)
        close(grad, grad0, dtype, rtol=rtol)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_batch_norm(dtype, rng):
    x = (rng.standard_normal((257, 19)) * 3 + 1).astype(dtype)
    gamma = rng.uniform(0.5, 2, 19).astype(dtype)
    beta = rng.standard_normal(19).astype(dtype)
    rm, rv = np.zeros(19, dtype), np.ones(19, dtype)
    drm, drv = dev(rm), dev(rv)
    y, sm, si = ops.batch_norm(dev(x), dev(gamma), dev(beta), drm, drv, momentum=0.2)
    y0, sm0, si0 = ops.batch_norm(x, gamma, beta, rm, rv, momentum=0.2)
    for a, b in ((y, y0), (sm, sm0), (si, si0), (drm, rm), (drv, rv)):
        close(a, b, dtype, rtol=1e-5 if dtype == np.float32 else 1e-11)
    yi, n1, n2 = ops.batch_norm(dev(x), None, None, drm, drv, training=False)
    assert n1 is None and n2 is None
    close(yi, ops.batch_norm(x, None, None, rm, rv, training=False)[0], dtype, rtol=1e-5)
    dy = rng.standard_normal(x.shape).astype(dtype)
    got = ops.batch_norm_grad(dev(dy), dev(x), dev(gamma), sm, si)
    ref = ops.batch_norm_grad(dy, x, gamma, sm0, si0)
    for a, b in zip(got, ref):
        close(a, b, dtype, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-5)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_reductions(dtype, rng):
    x = rng.standard_normal((1000, 37)).astype(dtype)
    close(ops.sum_rows(dev(x)), ops.sum_rows(x), dtype, rtol=1e-6)
    close(ops.mean_rows(dev(x)), ops.mean_rows(x), dtype, rtol=1e-6)
    close(ops.sum_rows(dev(np.ones((0, 3), dtype))), np.zeros(3), dtype)
    np.testing.assert_array_equal(host(ops.argmax_rows(dev(x))), ops.argmax_rows(x))
    labels = rng.integers(0, 37, 1000)
    assert ops.count_correct(dev(x), dev(labels)) == ops.count_correct(x, labels)
    onehot = np.eye(37, dtype=dtype)[labels]
    assert ops.count_correct(dev(x), dev(onehot)) == ops.count_correct(x, labels)
    with pytest.raises(ValueError, match="labels: expected class indices in"):
        ops.count_correct(dev(x), dev(np.full(1000, 37)))


def _opt_data(rng, dtype, shapes=((30, 7), (7,), (1000,))):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_optimizers(dtype, rng):
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    ps, gs = _opt_data(rng, dtype), _opt_data(rng, dtype)

    def run(kind, n_states, **kw):
        p_cpu = [p.copy() for p in ps]
        s_cpu = [[np.zeros_like(p) for p in ps] for _ in range(n_states)]
        p_gpu = [dev(p) for p in ps]
        s_gpu = [[dev(np.zeros_like(p)) for p in ps] for _ in range(n_states)]
        g_gpu = [dev(g) for g in gs]
        for step in (1, 2, 3):
            kind(p_cpu, gs, s_cpu, step, kw)
            kind(p_gpu, g_gpu, s_gpu, step, kw)
        for a, b in zip(p_gpu, p_cpu):
            close(a, b, dtype, rtol=rtol)
        for sa, sb in zip(s_gpu, s_cpu):
            for a, b in zip(sa, sb):
                close(a, b, dtype, rtol=rtol)

    run(lambda p, g, s, k, kw: ops.sgd_step(p, g, 0.1, momentum=0.9, nesterov=True,
                                            momentum_buffers=s[0], step=k, l2=1e-3), 1)
    run(lambda p, g, s, k, kw: ops.adam_step(p, g, s[0], s[1], k, lr=0.01, amsgrad=True,
                                             max_exp_avg_sqs=s[2], weight_decay=0.01), 3)
    run(lambda p, g, s, k, kw: ops.adamw_step(p, g, s[0], s[1], k, lr=0.01, grad_scale=0.5), 2)
    run(lambda p, g, s, k, kw: ops.adagrad_step(p, g, s[0], k, lr_decay=0.01, l1=1e-3), 1)
    run(lambda p, g, s, k, kw: ops.rmsprop_step(p, g, s[0], momentum=0.9, centered=True,
                                                momentum_buffers=s[1], grad_avgs=s[2]), 3)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_global_norm_and_clip(dtype, rng):
    gs = _opt_data(rng, dtype)
    ref = ops.global_norm(gs)
    got = ops.global_norm([dev(g) for g in gs])
    assert isinstance(got, float)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    for max_norm in (1.0, 1e6):
        g_gpu = [dev(g) for g in gs]
        g_cpu = [g.copy() for g in gs]
        assert ops.clip_grad_norm(g_gpu, max_norm) == pytest.approx(
            ops.clip_grad_norm(g_cpu, max_norm), rel=1e-12)
        for a, b in zip(g_gpu, g_cpu):
            close(a, b, dtype)


@needs_gpu
def test_gpu_mixing_errors_real_tensors(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    with pytest.raises(TypeError, match="do not mix"):
        ops.mse(dev(x), x)
    with pytest.raises(TypeError, match="do not mix"):
        ops.linear(cpu_t(x), dev(np.ones((3, 2), np.float32)))
    with pytest.raises(TypeError, match=r"grads\[0\]: expected a fastnn.Tensor"):
        ops.sgd_step([dev(x)], [x], 0.1)


@needs_gpu
@pytest.mark.skipif(cuda.device_count() < 2, reason="needs two CUDA devices")
def test_gpu_two_devices(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    a, b = dev(x), fastnn.asarray(x, device="cuda:1")
    with pytest.raises(ValueError, match="cuda:1"):
        ops.mse(a, b)
    y = ops.relu(b)
    assert y.device == "cuda:1"
    np.testing.assert_array_equal(y.numpy(), ops.relu(x))
