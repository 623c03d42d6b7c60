"""A parameter's shape is its own, whatever its sizes: a Dense kernel is 2-D (in, out), a bias or
BatchNorm vector 1-D. A model with one input feature, or with a width-1 layer feeding another,
has kernels with one row; these once came back from the engine as vectors (a row count of 1 was
taken for a bias), so such models could not even compile."""

import numpy as np
import pytest

import fastnn
from fastnn import _C, optim
from fastnn.layers import BatchNorm, Dense, Dropout


def expected_shapes(input_dim, layers):
    """get_weights' shapes, from the architecture alone."""
    shapes, width = [], input_dim
    for layer in layers:
        if isinstance(layer, Dense):
            shapes.append((width, layer.units))
            width = layer.units
            if layer.use_bias:
                shapes.append((width,))
        elif isinstance(layer, BatchNorm):
            shapes += [(width,)] * 4
    return shapes


# (input_dim, layers): every place where a kernel has one row or one column.
ARCHITECTURES = {
    "one_input": lambda: (1, [Dense(32, "tanh"), Dense(1)]),
    "width_1_hidden": lambda: (4, [Dense(1, "tanh"), Dense(3)]),
    "all_ones": lambda: (1, [Dense(1, "relu"), Dense(1, "sigmoid")]),
    "one_input_no_bias": lambda: (1, [Dense(5, use_bias=False), Dense(2)]),
    "width_1_batch_norm": lambda: (1, [Dense(1), BatchNorm(), Dropout(0.1), Dense(1), BatchNorm(),
                                       Dense(2)]),
}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_shapes_before_and_after_compile(arch):
    input_dim, layers = ARCHITECTURES[arch]()
    model = fastnn.Sequential(layers, input_dim=input_dim, seed=1)
    want = expected_shapes(input_dim, layers)
    before = model.get_weights()
    assert [w.shape for w in before] == want
    model.compile("mse", "adam")
    after = model.get_weights()
    assert [w.shape for w in after] == want
    for a, b in zip(before, after):  # compiling keeps the weights
        np.testing.assert_array_equal(a, b)
    model.set_weights(after)


def test_sin_from_one_input():
    x = np.linspace(-np.pi, np.pi, 64, dtype=np.float32)[:, None]
    y = np.sin(x)
    model = fastnn.Sequential([Dense(32, "tanh"), Dense(1)], input_dim=1, seed=0)
    model.compile("mse", optim.Adam(lr=0.01))
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # The per-layer diagnostics cover the one-row kernel too.
    assert sorted(history.diagnostics) == ["dense_0", "dense_1"]
    assert np.isfinite(history.diagnostics["dense_0"]["grad_norm"]).all()
    assert model.predict(x).shape == (64, 1)
    # A 1-D x is one feature per sample when the model has one input.
    np.testing.assert_array_equal(model.predict(x[:, 0]), model.predict(x))


def test_set_weights_is_what_predict_computes():
    # The kernel of shape (1, 3) is the one row that multiplies the single feature.
    model = fastnn.Sequential([Dense(3, "relu"), Dense(1, use_bias=False)], input_dim=1)
    W1 = np.array([[1.0, -2.0, 0.5]], np.float32)
    b1 = np.array([0.0, 1.0, 0.25], np.float32)
    W2 = np.array([[1.0], [10.0], [100.0]], np.float32)
    model.set_weights([W1, b1, W2])
    x = np.array([[2.0], [-1.0]], np.float32)
    want = np.maximum(x @ W1 + b1, 0) @ W2
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-6)
    model.compile("mse", "sgd")
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-6)
    with pytest.raises(ValueError, match=r"weights\[0\]: expected shape \(1, 3\), got \(3,\)"):
        model.set_weights([W1[0], b1, W2])


def trained_model(rng):
    """One input, a width-1 hidden layer and a BatchNorm, trained a little with Adam (whose
    state has one buffer per parameter and moment)."""
    model = fastnn.Sequential([Dense(7, "tanh"), Dense(1, "relu"), BatchNorm(), Dense(2)],
                              input_dim=1, seed=4)
    model.compile("softmax_cross_entropy", optim.Adam(lr=0.01), metrics=["accuracy"])
    X = rng.standard_normal((40, 1)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    return model, X, y


def test_save_load_round_trip_resumes_identically(rng, tmp_path):
    model, X, y = trained_model(rng)
    model.save(tmp_path / "m.fastnn")
    assert_resumes_identically(fastnn.load(tmp_path / "m.fastnn"), model, X, y)


def assert_resumes_identically(loaded, model, X, y):
    """Same weights, shapes included; and the optimizer state came back too: one more epoch
    gives the same weights on both."""
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    loaded.fit(X, y, epochs=1, batch_size=8, verbose=0)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_files_with_one_row_kernels_as_vectors_still_load(rng, tmp_path):
    """Files saved before the fix hold one-row kernels (and their optimizer state) as 1-D."""
    from fastnn import io

    model, X, y = trained_model(rng)
    arrays, meta = model._to_arrays(True, None)
    flattened = 0
    for key, a in arrays.items():
        if a.ndim == 2 and a.shape[0] == 1:
            arrays[key] = a.reshape(-1)
            flattened += 1
    assert flattened >= 2  # a kernel and its optimizer state at least
    io.save_arrays(tmp_path / "old.fastnn", arrays, meta)
    assert_resumes_identically(fastnn.load(tmp_path / "old.fastnn"), model, X, y)


def test_optimizer_state_and_grads_have_the_parameter_shapes(rng):
    model, _, _ = trained_model(rng)
    net = model._net
    params, grads, state = net.read("params", "grads", "state")
    shapes = [p.shape for p in params]
    assert shapes == [(1, 7), (7,), (7, 1), (1,), (1,), (1,), (1, 2), (2,)]
    assert [g.shape for g in grads] == shapes
    assert [s.shape for s in state] == [s for s in shapes for _ in range(3)]


@pytest.mark.parametrize("net_cls", [_C.Network32, _C.Network64])
def test_engine_views_keep_kernels_two_dimensional(net_cls):
    layers = [dict(kind="dense", units=1), dict(kind="batch_norm"), dict(kind="dense", units=1)]
    net = net_cls(1, layers, "mse", dict(kind="sgd", lr=0.1, momentum=0.9), 0)
    assert net.param_names() == ["dense_0/kernel", "dense_0/bias", "batch_norm_0/gamma",
                                 "batch_norm_0/beta", "dense_1/kernel", "dense_1/bias"]
    want = [(1, 1), (1,), (1,), (1,), (1, 1), (1,)]
    assert [[a.shape for a in arrays] for arrays in net.read("params", "grads", "state")] == \
        [want] * 3
