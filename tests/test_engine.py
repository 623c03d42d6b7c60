"""The C++ training engine (fastnn._C.Network32/64) against a float64 NumPy training step.

The model layer (fastnn.Sequential) drives this engine; these tests pin the engine itself: one
update equals the oracle's forward / backward / SGD step, accumulation equals a bigger batch, and
training is deterministic for a seed and any thread count."""

import numpy as np
import pytest

import fastnn
from fastnn import _C, cuda

import oracle


def dense_net(net_cls, d, hidden, c, act="tanh", optimizer=None, loss="softmax_cross_entropy",
              seed=0, extra=()):
    layers = [dict(kind="dense", units=hidden, activation=act), *extra,
              dict(kind="dense", units=c)]
    return net_cls(d, layers, loss, optimizer or dict(kind="sgd", lr=0.1), seed)


def fill(net, rng, scale=0.5):
    net.write(params=[scale * rng.standard_normal(p.shape) for p in params(net)])


def params(net):
    return net.read("params")[0]


def predict(net, X, batch_size):
    out = np.empty((len(X), net.output_dim), X.dtype)
    net.predict(X, out, batch_size)
    return out


def oracle_step(params, X, y, act, lr, loss="softmax_cross_entropy"):
    """One plain-SGD step of a two-layer net in float64; returns the new params and the loss."""
    W1, b1, W2, b2 = [np.array(p, np.float64) for p in params]
    z1 = X @ W1 + b1
    h = oracle._act(z1, act)
    logits = h @ W2 + b2
    if loss == "softmax_cross_entropy":
        value, dlogits = oracle.softmax_cross_entropy(logits, y)
    else:
        value, dlogits = oracle.mse(logits, y)
    dW2, db2 = h.T @ dlogits, dlogits.sum(0)
    dz1 = (dlogits @ W2.T) * oracle._act_deriv(z1, act)
    dW1, db1 = X.T @ dz1, dz1.sum(0)
    new = [W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2]
    return new, value


@pytest.mark.parametrize("act", ["tanh", "relu", "gelu", "sigmoid"])
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "mse"])
def test_one_step_matches_oracle(act, loss, rng):
    n, d, hidden, c = 37, 9, 17, 5
    X = rng.standard_normal((n, d))
    net = dense_net(_C.Network64, d, hidden, c, act, loss=loss)
    fill(net, rng)
    before = params(net)
    if loss == "softmax_cross_entropy":
        y = rng.integers(0, c, n).astype(np.int64)
        labels, targets = y, None
    else:
        y = rng.standard_normal((n, c))
        labels, targets = None, y
    ref, ref_loss = oracle_step(before, X, y, act, 0.1, loss)
    net.begin_epoch(n, 0, False)
    s = net.train_batches(X, labels, targets, n, 0, 1, 1, 0.0)
    assert s["updates"] == 1 and s["rows"] == n
    assert s["loss_sum"] / n == pytest.approx(ref_loss, rel=1e-12)
    for got, want in zip(params(net), ref):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)


def test_accumulation_equals_one_big_batch(rng):
    n, d, c = 64, 6, 3
    X = rng.standard_normal((n, d))
    y = rng.integers(0, c, n).astype(np.int64)
    nets = [dense_net(_C.Network64, d, 8, c, "relu", dict(kind="adam", lr=1e-2)) for _ in range(2)]
    init = np.random.default_rng(5)
    fill(nets[0], init)
    nets[1].write(params=params(nets[0]))
    for net, bs, acc in ((nets[0], 16, 4), (nets[1], 64, 1)):
        net.begin_epoch(n, 0, False)
        net.train_batches(X, y, None, bs, 0, 100, acc, 0.0)
    for a, b in zip(params(nets[0]), params(nets[1])):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def train_once(threads, seed=3):
    rng = np.random.default_rng(0)
    n, d, c = 300, 12, 4
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, c, n).astype(np.int64)
    net = dense_net(_C.Network32, d, 33, c, "relu", dict(kind="adam", lr=1e-2), seed=seed,
                    extra=(dict(kind="batch_norm"), dict(kind="dropout", rate=0.3)))
    fill(net, np.random.default_rng(1), 0.3)
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        for epoch in range(3):
            net.begin_epoch(n, epoch, True)
            net.train_batches(X, y, None, 32, 0, 100, 1, 1.0)
    finally:
        fastnn.set_num_threads(before)
    return sum(net.read("params", "buffers"), [])


def test_training_is_deterministic_and_thread_invariant():
    a, b, c = train_once(1), train_once(2), train_once(1, seed=4)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c))


def test_predict_applies_the_link(rng):
    net = dense_net(_C.Network32, 4, 5, 3)
    fill(net, rng)
    X = rng.standard_normal((10, 4)).astype(np.float32)
    p = predict(net, X, 4)
    assert p.shape == (10, 3)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-6)
    W1, b1, W2, b2 = params(net)
    logits = oracle._act(X @ W1 + b1, "tanh") @ W2 + b2
    np.testing.assert_allclose(p, np.exp(logits) / np.exp(logits).sum(1, keepdims=True), rtol=1e-5)


def test_nonfinite_loss_stops_the_run(rng):
    net = dense_net(_C.Network32, 4, 5, 3)
    fill(net, rng)
    X = rng.standard_normal((10, 4)).astype(np.float32)
    X[3, 1] = np.nan
    net.begin_epoch(10, 0, False)
    s = net.train_batches(X, np.zeros(10, np.int64), None, 5, 0, 2, 1, 0.0)
    assert s["nonfinite"] and s["batches"] == 1 and s["updates"] == 0


def test_engine_bad_input(rng):
    with pytest.raises(ValueError, match="loss"):
        _C.Network32(3, [dict(kind="dense", units=2)], "hinge", dict(kind="sgd", lr=0.1), 0)
    with pytest.raises(ValueError, match="optimizer"):
        _C.Network32(3, [dict(kind="dense", units=2)], "mse", dict(kind="lbfgs"), 0)
    with pytest.raises(ValueError, match="activation"):
        _C.Network32(3, [dict(kind="dense", units=2, activation="swish")], "mse",
                     dict(kind="sgd"), 0)
    net = dense_net(_C.Network32, 3, 4, 2)
    with pytest.raises(ValueError, match="X: expected shape"):
        predict(net, np.zeros((2, 5), np.float32), 8)
    net.begin_epoch(4, 0, False)
    with pytest.raises(ValueError, match="labels"):
        net.train_batches(np.zeros((4, 3), np.float32), np.array([0, 1, 2, 1]), None,
                          4, 0, 1, 1, 0.0)
    bn = _C.Network32(3, [dict(kind="batch_norm"), dict(kind="dense", units=2)], "mse",
                      dict(kind="sgd", lr=0.1), 0)
    bn.begin_epoch(1, 0, False)
    with pytest.raises(ValueError, match="at least 2 samples"):
        bn.train_batches(np.zeros((1, 3), np.float32), None, np.zeros((1, 2), np.float32),
                         2, 0, 1, 1, 0.0)
    # A last batch of one is left out of the epoch instead.
    bn.begin_epoch(3, 0, False)
    s = bn.train_batches(rng.standard_normal((3, 3)).astype(np.float32), None,
                         np.zeros((3, 2), np.float32), 2, 0, 2, 1, 0.0)
    assert s["rows"] == 2 and s["updates"] == 1


@pytest.mark.parametrize("opt", [
    fastnn.optim.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    fastnn.optim.Adam(betas=(0.8, 0.9), amsgrad=True),
    fastnn.optim.AdamW(),
    fastnn.optim.Adagrad(lr_decay=0.1, initial_accumulator_value=0.5),
    fastnn.optim.RMSprop(centered=True, momentum=0.5),
])
def test_engine_takes_each_optimizer_spec(opt):
    # Every field of the optimizer's table reaches the engine by its engine name (an unknown
    # name would be a ValueError); Adagrad's initial accumulator shows it arrived.
    spec = opt.engine_spec()
    assert spec["kind"] == opt.kind and spec["lr"] == opt.lr
    net = _C.Network32(3, [dict(kind="dense", units=2)], "mse", spec, 0)
    assert net.lr == opt.lr
    if opt.kind == "adagrad":
        assert all((s == 0.5).all() for s in net.read("state")[0])


def test_engine_spec_and_options_errors():
    layers = [dict(kind="dense", units=2)]
    with pytest.raises(ValueError, match="unknown field 'betas'"):
        _C.Network32(3, layers, "mse", dict(kind="adam", betas=(0.9, 0.99)), 0)
    with pytest.raises(ValueError, match="options: unknown key 'stream'"):
        _C.Network32(3, layers, "mse", dict(kind="sgd"), 0, {}, dict(stream=1))
    with pytest.raises(ValueError, match="the CPU engine computes in fp32"):
        _C.Network32(3, layers, "mse", dict(kind="sgd"), 0, {}, dict(precision="tf32"))
    with pytest.raises(ValueError, match="the CPU engine runs on the host"):
        _C.Network32(3, layers, "mse", dict(kind="sgd"), 0, {}, dict(device=0))
    net = _C.Network32(3, layers, "mse", dict(kind="sgd"), 0)
    assert net.device == -1 and net.graph_replays == 0 and net.fused_runs == []
    with pytest.raises(ValueError, match="kind"):
        net.read("weights")
    with pytest.raises(ValueError, match=r"params\[0\]: expected shape \(3, 2\)"):
        net.write(params=[np.zeros((2, 3)), np.zeros(2)])
    with pytest.raises(ValueError, match="params: expected 2 arrays"):
        net.write(params=[np.zeros((3, 2))])
    with pytest.raises(TypeError, match="NumPy"):
        net.predict([[0.0, 0.0, 0.0]], np.empty((1, 2), np.float32), 1)
    with pytest.raises(ValueError, match=r"out: expected shape \(1, 2\)"):
        net.predict(np.zeros((1, 3), np.float32), np.empty((2, 2), np.float32), 1)
    with pytest.raises(ValueError, match=r"class labels must be in \[0, 2\), got 2 at position 1"):
        net.check_labels(np.array([0, 2], np.int64))


def test_cuda_module_has_the_cpu_engines_interface():
    # One engine binding (bind_engine.cpp) in both modules: the same classes, methods, argument
    # names and defaults -- and _cuda still loads after _C, which registered them first.
    gpu = cuda._load()
    assert cuda._import_error is None, f"fastnn._cuda is built but does not load: " \
                                       f"{cuda._import_error}"
    if gpu is None:
        pytest.skip("fastnn built without CUDA")
    for name in ("Network32", "Network64"):
        ours, theirs = getattr(gpu, name), getattr(_C, name)
        public = sorted(a for a in dir(theirs) if not a.startswith("_"))
        assert sorted(a for a in dir(ours) if not a.startswith("_")) == public
        for attr in public + ["__init__"]:
            doc = getattr(getattr(theirs, attr), "__doc__", None) or ""
            assert (getattr(getattr(ours, attr), "__doc__", None) or "").replace(
                "fastnn._cuda", "fastnn._C") == doc, attr
