"""fastnn.Sequential end to end: API.md's model section as written, the output-link rule,
full-batch / stochastic / accumulated training, determinism, diagnostics and bad input."""

import pickle
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, optim
from fastnn.layers import Activation, BatchNorm, Dense, Dropout


def blobs(rng, n=600, d=8, c=4, spread=1.0):
    centers = 3 * rng.standard_normal((c, d))
    y = rng.integers(0, c, n)
    X = (centers[y] + spread * rng.standard_normal((n, d))).astype(np.float32)
    return X, y


def test_api_example_flow(rng):
    X, y = blobs(rng, n=800, d=20, c=10)
    model = fastnn.Sequential([
        Dense(64, activation="relu", l2=1e-4),
        BatchNorm(),
        Dropout(0.2),
        Dense(10),
    ], input_dim=20, seed=0, device="cpu")
    model.compile(loss="softmax_cross_entropy", optimizer=optim.Adam(lr=1e-2),
                  metrics=["accuracy"])
    history = model.fit(X, y, epochs=15, batch_size=32, validation_split=0.1, verbose=0,
                        callbacks=[callbacks.EarlyStopping(patience=3,
                                                           restore_best_weights=True)])
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "lr"} <= set(history.history)
    assert history.history["loss"][-1] < history.history["loss"][0]
    result = model.evaluate(X, y)
    assert set(result) == {"loss", "accuracy"} and result["accuracy"] > 0.9
    p = model.predict(X[:7])
    assert p.shape == (7, 10) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    assert np.array_equal(model.predict_classes(X[:7]), p.argmax(axis=1))
    weights = model.get_weights()
    # [W1, b1, gamma, beta, running mean, running var, W2, b2]
    assert [w.shape for w in weights] == [(20, 64), (64,), (64,), (64,), (64,), (64,),
                                          (64, 10), (10,)]


def test_softmax_output_and_logits_are_the_same_model(rng):
    X, y = blobs(rng)
    preds = []
    for last in (Dense(4, activation="softmax"), Dense(4)):
        model = fastnn.Sequential([Dense(16, "tanh"), last], input_dim=8, seed=3)
        model.compile("softmax_cross_entropy", optim.SGD(lr=0.1, momentum=0.9))
        model.fit(X, y, epochs=2, batch_size=50, verbose=0)
        preds.append(model.predict(X))
    assert np.array_equal(preds[0], preds[1])


def test_binary_cross_entropy_with_sigmoid_output(rng):
    X = rng.standard_normal((500, 3)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] > 0).astype(np.float32)
    model = fastnn.Sequential([Dense(8, "relu"), Dense(1, "sigmoid")], input_dim=3, seed=1)
    model.compile("binary_cross_entropy", optim.Adam(lr=0.05), metrics=["binary_accuracy"])
    model.fit(X, y, epochs=20, batch_size=32, verbose=0)
    assert model.evaluate(X, y)["binary_accuracy"] > 0.95
    p = model.predict(X)
    assert p.shape == (500, 1) and ((p >= 0) & (p <= 1)).all()
    assert set(np.unique(model.predict_classes(X))) <= {0, 1}


def test_regression_full_batch_and_stochastic(rng):
    X = rng.standard_normal((200, 4)).astype(np.float32)
    w = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    y = X @ w + 0.5
    for batch_size, epochs, lr in ((None, 300, 0.1), (1, 5, 0.01)):
        model = fastnn.Sequential([Dense(1)], input_dim=4, seed=0)
        model.compile("mse", optim.SGD(lr=lr), metrics=["mae"])
        model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=0)
        W, b = model.get_weights()
        np.testing.assert_allclose(W[:, 0], w, atol=2e-2)
        assert abs(b[0] - 0.5) < 2e-2
        assert model.evaluate(X, y)["mae"] < 2e-2


def test_accumulation_equals_a_bigger_batch(rng):
    X, y = blobs(rng, n=256)
    results = []
    for batch_size, acc in ((16, 4), (64, 1)):
        model = fastnn.Sequential([Dense(12, "relu"), Dense(4)], input_dim=8, seed=2)
        model.compile("softmax_cross_entropy", optim.SGD(lr=0.05))
        model.fit(X, y, epochs=2, batch_size=batch_size, accumulate_steps=acc, shuffle=False,
                  verbose=0)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def test_same_seed_same_model_and_thread_invariance(rng):
    X, y = blobs(rng)

    def train(seed, threads):
        before = fastnn.get_num_threads()
        fastnn.set_num_threads(threads)
        try:
            model = fastnn.Sequential([Dense(32, "relu"), Dropout(0.3), Dense(4)], input_dim=8,
                                      seed=seed)
            model.compile("softmax_cross_entropy", "adam")
            model.fit(X, y, epochs=3, batch_size=16, verbose=0)
            return model.get_weights()
        finally:
            fastnn.set_num_threads(before)

    a, b, c = train(5, 1), train(5, 2), train(6, 1)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c))


def test_set_weights_round_trip_and_checks(rng):
    model = fastnn.Sequential([Dense(5, "relu"), BatchNorm(), Dense(2)], input_dim=3)
    w = [rng.standard_normal(x.shape).astype(np.float32) for x in model.get_weights()]
    w[5] = np.abs(w[5])  # BatchNorm's running variance
    model.set_weights(w)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), w))
    model.compile("mse", "sgd")  # compiling keeps the weights
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), w))
    with pytest.raises(ValueError, match="expected a list of 8 arrays"):
        model.set_weights(w[:-1])
    with pytest.raises(ValueError, match=r"weights\[0\]: expected shape"):
        model.set_weights([np.zeros((4, 5))] + w[1:])
    with pytest.raises(ValueError, match="NaN"):
        model.set_weights([np.full((3, 5), np.nan)] + w[1:])


def test_summary_lists_layers_and_parameters():
    model = fastnn.Sequential([Dense(4, "relu"), BatchNorm(), Dense(2)], input_dim=3)
    text = model.summary(print_fn=None)
    assert "dense_0" in text and "batch_norm_0" in text and "dense_1" in text
    assert "total trainable parameters: 34" in text  # 3*4+4 + 2*4 + 4*2+2


def test_predict_before_compile_applies_the_last_activation(rng):
    model = fastnn.Sequential([Dense(3, "softmax")], input_dim=2)
    p = model.predict(rng.standard_normal((5, 2)))
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-6)


def test_interrupt_leaves_a_usable_model(rng):
    X, y = blobs(rng)

    class Interrupt(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch >= 3:
                raise KeyboardInterrupt

    model = fastnn.Sequential([Dense(8, "relu"), Dense(4)], input_dim=8)
    model.compile("softmax_cross_entropy", "adam")
    with pytest.warns(RuntimeWarning, match="interrupted"):
        history = model.fit(X, y, epochs=5, batch_size=8, verbose=1, callbacks=[Interrupt()])
    assert len(history.epoch) == 1
    assert np.isfinite(model.predict(X)).all()


def test_dead_relu_and_nan_warnings(rng):
    X, y = blobs(rng)
    model = fastnn.Sequential([Dense(16, "relu"), Dense(4)], input_dim=8)
    model.compile("softmax_cross_entropy", optim.SGD(lr=0.01))
    w = model.get_weights()
    w[1][:] = -1e3  # every unit's bias far below any input: all dead
    model.set_weights(w)
    with pytest.warns(RuntimeWarning, match="dense_0: 100% of its ReLU units are dead"):
        history = model.fit(X, y, epochs=1, batch_size=32, verbose=0)
    assert history.diagnostics["dense_0"]["dead_fraction"] == [1.0]

    # A linear model with far too large a step diverges: exploding gradients, then an
    # infinite loss; training stops and says what to do.
    model = fastnn.Sequential([Dense(4)], input_dim=8)
    model.compile("mse", optim.SGD(lr=10.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(X, np.ones((len(X), 4)) * 1e3, epochs=50, batch_size=32, verbose=0)
    assert any("lower the learning rate" in str(w.message) for w in caught)
    assert len(history.epoch) < 50


def test_bad_input(rng):
    X, y = blobs(rng, n=20)
    model = fastnn.Sequential([Dense(4)], input_dim=8)
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(X, y)
    model.compile("softmax_cross_entropy", "adam")
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity.*row 3"):
        model.fit(bad, y, verbose=0)
    with pytest.raises(ValueError, match="expected 20 targets"):
        model.fit(X, y[:-1], verbose=0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        model.fit(X, np.full(20, 4), verbose=0)
    with pytest.raises(ValueError, match="expected 8 features"):
        model.predict(X[:, :5])
    with pytest.raises(TypeError, match="numeric"):
        model.predict(np.array([["a"] * 8]))
    with pytest.raises(ValueError, match="loss"):
        model.compile("hinge")
    with pytest.raises(ValueError, match="softmax"):
        fastnn.Sequential([Dense(4, "softmax"), Dense(2)], input_dim=3)
    with pytest.raises(ValueError, match="softmax_cross_entropy"):
        fastnn.Sequential([Dense(2, "softmax")], input_dim=3).compile("mse")
    if not fastnn.cuda.is_available():  # a clear error when the model is built, not at import
        with pytest.raises(RuntimeError, match="CUDA"):
            fastnn.Sequential([Dense(2)], input_dim=3, device="cuda")
    with pytest.raises(ValueError, match="device"):
        fastnn.Sequential([Dense(2)], input_dim=3, device="tpu")
    with pytest.raises(ValueError, match="tf32"):
        fastnn.Sequential([Dense(2)], input_dim=3, precision="tf32")  # needs device="cuda"
    with pytest.raises(ValueError, match="units"):
        Dense(0)
    with pytest.raises(ValueError, match="rate"):
        Dropout(1.0)
    with pytest.raises(ValueError, match="activation"):
        Activation("swish")


def test_perceptron_learns_separable_gates_only():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    for y in ([0, 0, 0, 1], [0, 1, 1, 1]):  # AND, OR
        p = fastnn.Perceptron(lr=1.0, max_epochs=50, seed=0).fit(X, y)
        assert p.converged_ and np.array_equal(p.predict(X), y)
        assert p.weights_.shape == (2,) and np.isfinite(p.bias_)
    xor = fastnn.Perceptron(max_epochs=30).fit(X, [0, 1, 1, 0])
    assert not xor.converged_ and len(xor.errors_) == 30
    with pytest.raises(ValueError, match="0 or 1"):
        fastnn.Perceptron().fit(X, [0, 2, 1, 0])


def test_save_load_round_trip_and_resume(rng, tmp_path):
    X, y = blobs(rng, n=300)
    model = fastnn.Sequential([Dense(8, "relu"), BatchNorm(), Dropout(0.1), Dense(4, "softmax")],
                              input_dim=8, seed=4)
    model.compile("softmax_cross_entropy", optim.Adam(lr=1e-2), metrics=["accuracy"])
    model.fit(X, y, epochs=2, verbose=0)
    path = tmp_path / "m.fastnn"
    model.save(path)
    loaded = fastnn.load(path)
    assert np.array_equal(model.predict(X), loaded.predict(X))
    assert loaded.loss == model.loss and loaded.metrics == model.metrics
    # The optimizer state came along: one more epoch gives the same weights on both.
    for m in (model, loaded):
        m.fit(X, y, epochs=1, shuffle=False, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), loaded.get_weights()))

    # Without the optimizer, an uncompiled model, and a damaged file.
    model.save(tmp_path / "w.fastnn", include_optimizer=False)
    assert np.array_equal(fastnn.load(tmp_path / "w.fastnn").predict(X), model.predict(X))
    plain = fastnn.Sequential([Dense(3)], input_dim=2)
    plain.save(tmp_path / "p.fastnn")
    assert fastnn.load(tmp_path / "p.fastnn").loss is None
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0xFF
    (tmp_path / "bad.fastnn").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="damaged"):
        fastnn.load(tmp_path / "bad.fastnn")
    (tmp_path / "short.fastnn").write_bytes(bytes(blob[:40]))
    with pytest.raises(ValueError):
        fastnn.load(tmp_path / "short.fastnn")


def test_model_checkpoint_keeps_the_best(rng, tmp_path):
    X, y = blobs(rng, n=300)
    model = fastnn.Sequential([Dense(8, "relu"), Dense(4)], input_dim=8)
    model.compile("softmax_cross_entropy", "adam")
    path = tmp_path / "best.fastnn"
    model.fit(X, y, epochs=3, verbose=0, validation_split=0.2,
              callbacks=[callbacks.ModelCheckpoint(str(path), save_best_only=True)])
    assert path.exists()
    assert fastnn.load(path).predict(X).shape == (300, 4)


def test_vanishing_gradients_are_named(rng):
    # Ten sigmoid layers with tiny weights: the first layers' gradients are orders of magnitude
    # below the last one's.
    X, y = blobs(rng, n=200)
    layers = [Dense(16, "sigmoid", kernel_initializer="lecun_normal") for _ in range(10)]
    model = fastnn.Sequential(layers + [Dense(4)], input_dim=8)
    model.compile("softmax_cross_entropy", optim.SGD(lr=0.01))
    w = [0.01 * a if a.ndim == 2 else a for a in model.get_weights()]
    model.set_weights(w)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(X, y, epochs=1, batch_size=50, verbose=0)
    assert any("dense_0: vanishing gradients" in str(w.message) for w in caught)
    g = history.diagnostics
    assert g["dense_0"]["grad_norm"][0] < 1e-5 * g["dense_10"]["grad_norm"][0]


def test_sampled_softmax_trains_many_classes(rng, tmp_path):
    from fastnn.losses import SampledSoftmax

    c, d = 500, 32
    centers = rng.standard_normal((c, d)).astype(np.float32)
    y = rng.integers(0, c, 6000)
    X = centers[y] + 0.3 * rng.standard_normal((len(y), d)).astype(np.float32)
    accs = {}
    for loss in ("softmax_cross_entropy",
                 SampledSoftmax(num_sampled=50, sampler="uniform")):
        model = fastnn.Sequential([Dense(c)], input_dim=d, seed=0)
        model.compile(loss, optim.Adam(lr=1e-2), metrics=["accuracy"])
        model.fit(X, y, epochs=8, batch_size=128, verbose=0)
        accs[str(loss)] = model.evaluate(X, y)["accuracy"]
    full, sampled = accs.values()
    assert full > 0.9 and sampled > full - 0.05
    model.save(tmp_path / "s.fastnn")
    loaded = fastnn.load(tmp_path / "s.fastnn")
    assert loaded.sampled.num_sampled == 50 and np.array_equal(loaded.predict(X), model.predict(X))
    with pytest.raises(ValueError, match="cannot be drawn"):
        fastnn.Sequential([Dense(10)], input_dim=3).compile(SampledSoftmax(num_sampled=11))


def test_sample_and_class_weights(rng):
    X, y = blobs(rng, n=240)

    def trained(lr, **kw):
        model = fastnn.Sequential([Dense(8, "tanh"), Dense(4)], input_dim=8, seed=1)
        model.compile("softmax_cross_entropy", optim.SGD(lr=lr))
        model.fit(X, y, epochs=2, batch_size=40, shuffle=False, verbose=0, **kw)
        return model

    plain = trained(0.1).get_weights()
    ones = trained(0.1, sample_weight=np.ones(240)).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(plain, ones))
    # Every weight 2 doubles every gradient: the same steps as twice the learning rate.
    doubled = trained(0.1, sample_weight=np.full(240, 2.0)).get_weights()
    fast = trained(0.2).get_weights()
    for a, b in zip(doubled, fast):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    cw = trained(0.1, class_weight={0: 2.0, 1: 2.0, 2: 2.0, 3: 2.0}).get_weights()
    for a, b in zip(cw, fast):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    # evaluate's weighted loss: sum_i w_i l_i / n.
    model = trained(0.1)
    w = rng.random(240)
    p = model.predict(X).astype(np.float64)
    ref = np.sum(w * -np.log(p[np.arange(240), y])) / 240
    assert model.evaluate(X, y, sample_weight=w)["loss"] == pytest.approx(ref, rel=1e-4)
    with pytest.raises(ValueError, match="sample_weight: expected shape"):
        model.fit(X, y, sample_weight=np.ones(5), verbose=0)
    with pytest.raises(ValueError, match="finite and >= 0"):
        model.fit(X, y, sample_weight=-np.ones(240), verbose=0)


def test_count_params_before_and_after_compile():
    model = fastnn.Sequential([Dense(4, "relu"), BatchNorm(), Dense(2)], input_dim=3)
    assert model.count_params() == 34
    model.compile("mse", "sgd")
    assert model.count_params() == 34


def test_float64_model_trains_predicts_and_saves_in_float64(tmp_path):
    # The float64 engine behind Sequential(dtype="float64"): what scikit-learn pipelines on
    # float64 data need (fastnn.sklearn computes in its input's precision, as scikit-learn does).
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = (X[:, 0] > 0).astype(int)
    models = {}
    for dtype in ("float32", "float64"):
        m = fastnn.Sequential([fastnn.layers.Dense(8, "tanh"), fastnn.layers.Dense(2)],
                              input_dim=3, dtype=dtype)
        m.compile("softmax_cross_entropy", "adam")
        m.fit(X, y, epochs=3, verbose=0, sample_weight=np.ones(64))
        models[dtype] = m
    m64 = models["float64"]
    assert m64.predict(X).dtype == np.float64 and m64.get_weights()[0].dtype == np.float64
    np.testing.assert_allclose(m64.predict(X), models["float32"].predict(X), atol=1e-5)
    m64.save(tmp_path / "m.fastnn")
    back = fastnn.load(tmp_path / "m.fastnn")
    assert back.dtype == np.float64 and np.array_equal(back.predict(X), m64.predict(X))
    fine = [w + 1e-12 for w in m64.get_weights()]  # below float32's resolution
    m64.set_weights(fine)
    assert all(np.array_equal(a, b) for a, b in zip(m64.get_weights(), fine))
    copied = pickle.loads(pickle.dumps(m64))
    assert copied.dtype == np.float64 and np.array_equal(copied.get_weights()[0],
                                                         m64.get_weights()[0])
    with pytest.raises(ValueError, match="dtype"):
        fastnn.Sequential([fastnn.layers.Dense(2)], input_dim=3, dtype="int32")


def test_diagnostics_match_the_update_they_describe(rng):
    # Plain SGD on one full batch: each kernel moves by lr * grad, so the recorded gradient
    # norm and update ratio follow from the weights before and after (both norms come from
    # the engine's parallel sum-of-squares pass, which this pins to the plain definitions).
    X, y = blobs(rng, n=64)
    model = fastnn.Sequential([Dense(300, "relu"), Dense(4)], input_dim=8, seed=1)
    lr = 0.05
    model.compile("softmax_cross_entropy", optim.SGD(lr=lr))
    before = [a.astype(np.float64) for a in model.get_weights()]
    history = model.fit(X, y, epochs=1, batch_size=64, verbose=0)
    after = [a.astype(np.float64) for a in model.get_weights()]
    for name, i in (("dense_0", 0), ("dense_1", 2)):
        g = np.linalg.norm(before[i] - after[i]) / lr
        d = history.diagnostics[name]
        np.testing.assert_allclose(d["grad_norm"][0], g, rtol=1e-4)
        np.testing.assert_allclose(d["update_ratio"][0], lr * g / np.linalg.norm(before[i]),
                                   rtol=1e-4)
