"""Misaligned NumPy inputs (a view of a byte buffer at an odd offset, np.frombuffer with an
offset): every op family gives the oracle's results, and the same bits as for aligned copies.

On x86 the kernels read misaligned floats correctly by accident, so in the normal build these
tests mostly check the results; in the UBSan build (.ci/sanitizers) a misaligned pointer that
reaches C++ stops the run, which is what fails them on a kernel that is handed one."""

import numpy as np
import pytest

import fastnn
from fastnn import ops

import oracle

DTYPES = [np.float32, np.float64]


def misaligned(a, offset=1):
    """A copy of `a` whose data pointer is `offset` bytes past an aligned address."""
    a = np.asarray(a)
    buf = np.zeros(a.nbytes + 64, np.uint8)
    start = (-buf.ctypes.data) % 64 + offset
    m = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    m[...] = a
    assert a.itemsize == 1 or a.size == 0 or not m.flags.aligned
    return m


def frombuffer(a, offset=2):
    """`a` as np.frombuffer reads it from a bytearray at `offset` (read-only)."""
    a = np.asarray(a)
    raw = bytes(offset) + a.tobytes()
    return np.frombuffer(raw, dtype=a.dtype, offset=offset).reshape(a.shape)


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


@pytest.fixture(params=[misaligned, frombuffer], ids=["view_offset_1", "frombuffer_offset_2"])
def unalign(request):
    return request.param


def same(got, want):
    """Bit-identical results (misaligned inputs must take no different arithmetic)."""
    for g, w in zip(got if isinstance(got, tuple) else (got,),
                    want if isinstance(want, tuple) else (want,)):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_and_linear(unalign, dtype, rng):
    a = rng.standard_normal((13, 17)).astype(dtype)
    b = rng.standard_normal((17, 9)).astype(dtype)
    bias = rng.standard_normal(9).astype(dtype)
    got = ops.matmul(unalign(a), unalign(b))
    np.testing.assert_allclose(got, oracle.matmul(a, b), **tol(dtype))
    same(got, ops.matmul(a, b))
    got = ops.linear(unalign(a), unalign(b), unalign(bias), activation="relu")
    np.testing.assert_allclose(got, oracle.linear(a, b, bias, "relu"), **tol(dtype))
    same(got, ops.linear(a, b, bias, activation="relu"))
    got = ops.matmul(unalign(b), unalign(a), trans_a=True, trans_b=True)
    np.testing.assert_allclose(got, oracle.matmul(b, a, True, True), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_into_misaligned_out(dtype, rng):
    a = rng.standard_normal((6, 5)).astype(dtype)
    b = rng.standard_normal((5, 7)).astype(dtype)
    c = rng.standard_normal((6, 7)).astype(dtype)
    out = misaligned(c)
    res = ops.matmul(a, b, alpha=2.0, beta=0.5, out=out)
    assert res is out
    np.testing.assert_allclose(out, oracle.matmul(a, b, alpha=2.0, beta=0.5, c=c), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_grad(unalign, dtype, rng):
    x = rng.standard_normal((8, 5)).astype(dtype)
    w = rng.standard_normal((5, 3)).astype(dtype)
    z = rng.standard_normal((8, 3)).astype(dtype)
    dy = rng.standard_normal((8, 3)).astype(dtype)
    got = ops.linear_grad(unalign(dy), unalign(x), unalign(w), "gelu", z=unalign(z))
    want = oracle.linear_grad(dy, x, w, z, "gelu")
    for g, o in zip(got, want):
        np.testing.assert_allclose(g, o, **tol(dtype))
    same(got, ops.linear_grad(dy, x, w, "gelu", z=z))


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "gelu", "softplus", "softmax",
                                  "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_activations(unalign, name, dtype, rng):
    x = rng.standard_normal((7, 33)).astype(dtype)
    dy = rng.standard_normal((7, 33)).astype(dtype)
    fn = getattr(ops, name)
    got = fn(unalign(x))
    want = getattr(oracle, name)(x) if name in ("softmax", "log_softmax") else \
        oracle.activation(name, x)
    np.testing.assert_allclose(got, want, **tol(dtype))
    same(got, fn(x))
    same(ops.activation_grad(name, unalign(dy), unalign(x)), ops.activation_grad(name, dy, x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_into_misaligned_out(dtype, rng):
    x = rng.standard_normal((4, 19)).astype(dtype)
    out = misaligned(np.zeros_like(x))
    assert ops.tanh(x, out=out) is out
    np.testing.assert_allclose(out, np.tanh(x), **tol(dtype))
    inplace = misaligned(x)
    ops.relu(inplace, out=inplace)
    np.testing.assert_array_equal(inplace, np.maximum(x, 0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses(unalign, dtype, rng):
    logits = rng.standard_normal((9, 4)).astype(dtype)
    labels = rng.integers(0, 4, 9).astype(np.int64)
    cw = rng.uniform(0.5, 2.0, 4).astype(dtype)
    got = ops.softmax_cross_entropy(unalign(logits), unalign(labels), class_weight=unalign(cw))
    want = oracle.softmax_cross_entropy(logits, labels, cw)
    np.testing.assert_allclose(got[0], want[0], **tol(dtype))
    np.testing.assert_allclose(got[1], want[1], **tol(dtype))
    same(got, ops.softmax_cross_entropy(logits, labels, class_weight=cw))
    t = rng.uniform(0, 1, (9, 4)).astype(dtype)
    for name in ("binary_cross_entropy_with_logits", "mse", "mae"):
        got = getattr(ops, name)(unalign(logits), unalign(t))
        want = getattr(oracle, name)(logits, t)
        np.testing.assert_allclose(got[0], want[0], **tol(dtype))
        np.testing.assert_allclose(got[1], want[1], **tol(dtype))
        same(got, getattr(ops, name)(logits, t))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout(unalign, dtype, rng):
    x = rng.standard_normal((5, 21)).astype(dtype)
    y, mask = ops.dropout(unalign(x), 0.3, seed=7)
    want_y, want_mask = oracle.dropout(x, 0.3, 7)
    np.testing.assert_allclose(y, want_y, **tol(dtype))
    np.testing.assert_array_equal(mask, want_mask)
    same(ops.dropout_grad(unalign(x), unalign(mask), 0.3), ops.dropout_grad(x, mask, 0.3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm(unalign, dtype, rng):
    x = rng.standard_normal((16, 6)).astype(dtype)
    gamma, beta = rng.uniform(0.5, 2, 6).astype(dtype), rng.standard_normal(6).astype(dtype)
    y, mean, invstd = ops.batch_norm(unalign(x), unalign(gamma), unalign(beta), None, None)
    want = oracle.batch_norm_train(x, gamma, beta, None, None, 0.1, 1e-5)
    np.testing.assert_allclose(y, want[0], **tol(dtype))
    same((y, mean, invstd), ops.batch_norm(x, gamma, beta, None, None))
    dy = rng.standard_normal((16, 6)).astype(dtype)
    got = ops.batch_norm_grad(unalign(dy), unalign(x), unalign(gamma), unalign(mean),
                              unalign(invstd))
    want = oracle.batch_norm_grad(dy, x, gamma, mean, invstd)
    for g, o in zip(got, want):
        np.testing.assert_allclose(g, o, rtol=1e-3, atol=1e-4)
    same(got, ops.batch_norm_grad(dy, x, gamma, mean, invstd))


@pytest.mark.parametrize("dtype", DTYPES)
def test_reductions(unalign, dtype, rng):
    x = rng.standard_normal((11, 7)).astype(dtype)
    labels = rng.integers(0, 7, 11).astype(np.int64)
    np.testing.assert_allclose(ops.sum_rows(unalign(x)), x.astype(np.float64).sum(0),
                               **tol(dtype))
    np.testing.assert_allclose(ops.mean_rows(unalign(x)), x.astype(np.float64).mean(0),
                               **tol(dtype))
    np.testing.assert_array_equal(ops.argmax_rows(unalign(x)), oracle.argmax_rows(x))
    assert ops.top_k_correct(unalign(x), unalign(labels), 3) == oracle.top_k_correct(x, labels, 3)
    assert ops.count_correct(unalign(x), unalign(labels)) == oracle.top_k_correct(x, labels, 1)
    t = (rng.uniform(0, 1, (11, 7)) > 0.5).astype(dtype)
    assert ops.binary_correct(unalign(x), unalign(t)) == oracle.binary_correct(x, t)


@pytest.mark.parametrize("dtype", DTYPES)
def test_optimizer_steps(unalign, dtype, rng):
    p = rng.standard_normal(37).astype(dtype)
    g = rng.standard_normal(37).astype(dtype)
    mine, ref = p.copy(), p.copy()
    ops.sgd_step([mine], [unalign(g)], lr=0.1)
    ops.sgd_step([ref], [g], lr=0.1)
    same(mine, ref)
    np.testing.assert_allclose(mine, oracle.sgd_step(p, g, None, 1, 0.1)[0], **tol(dtype))
    assert ops.global_norm([unalign(g)]) == ops.global_norm([g])


def test_optimizer_refuses_misaligned_state(rng):
    """Arrays updated in place cannot be swapped for aligned copies: a clear error instead."""
    p = misaligned(rng.standard_normal(10).astype(np.float32))
    g = np.ones(10, np.float32)
    with pytest.raises(ValueError, match="params\\[0\\].*aligned"):
        ops.sgd_step([p], [g], lr=0.1)
    with pytest.raises(ValueError, match="grads\\[0\\].*aligned"):
        ops.clip_grad_norm([misaligned(g)], 0.5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sampled_softmax(unalign, dtype, rng):
    h = rng.standard_normal((6, 4)).astype(dtype)
    W = rng.standard_normal((4, 50)).astype(dtype)
    b = rng.standard_normal(50).astype(dtype)
    labels = rng.integers(0, 50, 6).astype(np.int64)
    got = ops.sampled_softmax_cross_entropy(unalign(h), unalign(W), unalign(b), unalign(labels),
                                            num_sampled=8, seed=3)
    want = oracle.sampled_softmax_cross_entropy(h, W, b, labels, 8, 3)
    np.testing.assert_allclose(got[0], want[0], **tol(dtype))
    same(got, ops.sampled_softmax_cross_entropy(h, W, b, labels, num_sampled=8, seed=3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_init_weights_into_misaligned_out(dtype):
    out = misaligned(np.zeros((6, 5), dtype))
    assert ops.init_weights("glorot_uniform", None, 4, out=out) is out
    same(out, ops.init_weights("glorot_uniform", (6, 5), seed=4, dtype=dtype))


def test_model_fit_evaluate_predict(unalign, rng):
    X = rng.standard_normal((40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40).astype(np.int64)
    yr = rng.standard_normal((40, 2)).astype(np.float32)

    def trained(X, y, loss, out):
        model = fastnn.Sequential([fastnn.layers.Dense(8, "relu"), fastnn.layers.Dense(out)],
                                  input_dim=5, seed=1)
        model.compile(loss, optimizer="sgd")
        model.fit(X, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
        return model

    for loss, target, out in (("softmax_cross_entropy", y, 3), ("mse", yr, 2)):
        m1 = trained(unalign(X), unalign(target), loss, out)
        m2 = trained(X, target, loss, out)
        same(tuple(m1.get_weights()), tuple(m2.get_weights()))
        same(m1.predict(unalign(X)), m2.predict(X))
        assert m1.evaluate(unalign(X), unalign(target)) == m2.evaluate(X, target)
