"""A property-based sweep of the model space, through the public API only: random stacks of
every layer kind (Dense with every activation, Activation, Dropout, BatchNorm), 1 to 5 layers,
widths from WIDTHS, one input feature included, 1 to 3 outputs with every loss, every
optimizer, 1 to 500 rows, batch_size 1, in between, larger than the data and None.

Each case must: train with finite losses, predict and evaluate finite outputs of the right
shape, round-trip get_weights -> set_weights and save -> load bit for bit (the loaded model also
resumes training to the same bits, so the optimizer state and step came back), and predict a
single row as that row of the batch prediction, bit for bit: the CPU engine computes each
output row from that row alone, with every element's arithmetic fixed whatever the batch's
size (the GEMM's k order, the vector math in every tile, per-row softmax, running batch-norm
statistics in inference).

The default run is derandomized (the same cases on every machine, so CI is reproducible) and
takes well under a minute; test_model_space_many, marked slow, explores many more cases."""

import os
import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import optim
from fastnn.layers import Activation, BatchNorm, Dense, Dropout
from fastnn.losses import SampledSoftmax

from test_param_shapes import expected_shapes

WIDTHS = (1, 2, 3, 7, 16, 33, 128, 300)
# Every activation a hidden layer may have (softmax is only a classifier's output link).
ACTIVATIONS = ("linear", "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus",
               "step")
LOSSES = ("softmax_cross_entropy", "binary_cross_entropy", "mse", "mae", "sampled_softmax")
LINKS = {"softmax_cross_entropy": "softmax", "binary_cross_entropy": "sigmoid",
         "sampled_softmax": "softmax"}
OPTIMIZERS = {
    "sgd": lambda: optim.SGD(lr=0.01),
    "sgd_nesterov": lambda: optim.SGD(lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4),
    "adam": lambda: optim.Adam(lr=1e-3),
    "adam_amsgrad": lambda: optim.Adam(lr=1e-3, amsgrad=True),
    "adamw": lambda: optim.AdamW(lr=1e-3),
    "adagrad": lambda: optim.Adagrad(lr=0.01),
    "rmsprop": lambda: optim.RMSprop(lr=1e-3),
    "rmsprop_centered": lambda: optim.RMSprop(lr=1e-3, centered=True, momentum=0.5),
}


# ---------------------------------------------------------------- regressions the sweep found

def test_batch_norm_with_batch_size_1_is_refused():
    # Every batch of one row was left out as if it were a last partial batch: fit trained
    # nothing and reported a NaN loss, without an error.
    model = fastnn.Sequential([Dense(3), BatchNorm(), Dense(2)], input_dim=2)
    model.compile("softmax_cross_entropy", "adam")
    X = np.random.default_rng(0).standard_normal((10, 2)).astype(np.float32)
    y = np.arange(10) % 2
    before = model.get_weights()
    with pytest.raises(ValueError, match="BatchNorm: training needs at least 2 samples"):
        model.fit(X, y, epochs=1, batch_size=1, verbose=0)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    # A last batch of one is still left out of the epoch (10 = 3 * 3 + 1).
    history = model.fit(X, y, epochs=2, batch_size=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


# ---------------------------------------------------------------- the cases

# A layer as (class, keyword arguments): each model gets fresh layer objects.
@st.composite
def hidden_layers(draw):
    kind = draw(st.sampled_from(("dense", "dense", "activation", "dropout", "batch_norm")))
    if kind == "dense":
        return (Dense, dict(units=draw(st.sampled_from(WIDTHS)),
                            activation=draw(st.sampled_from(ACTIVATIONS)),
                            use_bias=draw(st.booleans()),
                            l2=draw(st.sampled_from((0.0, 0.0, 1e-4)))))
    if kind == "activation":
        return (Activation, dict(activation=draw(st.sampled_from(ACTIVATIONS))))
    if kind == "dropout":
        return (Dropout, dict(rate=draw(st.sampled_from((0.0, 0.2, 0.5)))))
    return (BatchNorm, dict(momentum=draw(st.sampled_from((0.1, 0.5)))))


@st.composite
def cases(draw):
    loss = draw(st.sampled_from(LOSSES))
    outputs = draw(st.integers(1, 3))
    # The output layer: no activation, the loss's link, or (not with the sampled softmax, which
    # needs the logits) any other activation.
    finals = [None] + ([LINKS[loss]] if loss in LINKS else [])
    if loss != "sampled_softmax":
        finals += list(ACTIVATIONS)
    final = (Dense, dict(units=outputs, activation=draw(st.sampled_from(finals))))
    hidden = draw(st.lists(hidden_layers(), min_size=0, max_size=4))
    n = draw(st.one_of(st.integers(1, 8), st.integers(9, 500)))
    batch = draw(st.sampled_from(("one", "mid", "over", "none")))
    batch_size = {"one": 1, "mid": max(1, n // draw(st.integers(2, 8))),
                  "over": n + draw(st.integers(1, 50)), "none": None}[batch]
    return dict(
        layers=hidden + [final], input_dim=draw(st.sampled_from(WIDTHS)), loss=loss,
        num_sampled=draw(st.integers(1, outputs)), optimizer=draw(st.sampled_from(sorted(OPTIMIZERS))),
        n=n, batch_size=batch_size, epochs=draw(st.integers(1, 2)), shuffle=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)), one_d_targets=draw(st.booleans()))


def build(case, seed):
    layers = [cls(**kw) for cls, kw in case["layers"]]
    model = fastnn.Sequential(layers, input_dim=case["input_dim"], seed=seed)
    loss = case["loss"]
    if loss == "sampled_softmax":
        loss = SampledSoftmax(num_sampled=case["num_sampled"])
    model.compile(loss, OPTIMIZERS[case["optimizer"]]())
    return model


def data(case, outputs):
    rng = np.random.default_rng(case["seed"])
    n = case["n"]
    # Rows of about unit norm, as standardized data gives a first layer: a batch-1 SGD step on
    # 300 raw N(0, 1) features moves the output by lr * 300 times its error, which diverges at
    # lr = 0.01 -- the learning rate's doing, not what this sweep looks for.
    X = (rng.standard_normal((n, case["input_dim"])) / np.sqrt(case["input_dim"])).astype(np.float32)
    if case["loss"] in ("softmax_cross_entropy", "sampled_softmax"):
        y = rng.integers(0, outputs, n)
    elif case["loss"] == "binary_cross_entropy":
        y = (rng.random((n, outputs)) < 0.5).astype(np.float32)
    else:
        y = rng.standard_normal((n, outputs)).astype(np.float32)
    if y.ndim == 2 and outputs == 1 and case["one_d_targets"]:
        y = y[:, 0]  # one output: (n,) targets are accepted as (n, 1)
    return X, y


def same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def check_case(case):
    model = build(case, case["seed"])
    outputs = model.output_dim
    X, y = data(case, outputs)
    n, bs = case["n"], case["batch_size"]
    fit = dict(batch_size=bs, shuffle=case["shuffle"], verbose=0)
    has_bn = any(cls is BatchNorm for cls, _ in case["layers"])
    if has_bn and (n == 1 or bs == 1):
        # Batch statistics need two rows: a clear error, and the weights left as they were.
        before = model.get_weights()
        with pytest.raises(ValueError, match="BatchNorm"):
            model.fit(X, y, epochs=case["epochs"], **fit)
        same(model.get_weights(), before)
        return

    with warnings.catch_warnings():
        # Random stacks set off the training diagnostics (vanishing gradients after a step
        # activation, dead ReLUs); finiteness is asserted below.
        warnings.simplefilter("ignore", RuntimeWarning)
        history = model.fit(X, y, epochs=case["epochs"], **fit)
    losses = history.history["loss"]
    assert len(losses) == case["epochs"] and np.isfinite(losses).all(), losses

    weights = model.get_weights()
    assert [w.shape for w in weights] == expected_shapes(case["input_dim"], model.layers)
    assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in weights)

    P = model.predict(X)
    assert P.shape == (n, outputs) and P.dtype == np.float32 and np.isfinite(P).all()
    link = {"softmax_cross_entropy": "softmax", "sampled_softmax": "softmax",
            "binary_cross_entropy": "sigmoid"}.get(model.loss)
    if link is not None:
        assert ((P >= 0) & (P <= 1)).all()
    if link == "softmax":
        np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-5)
    assert np.isfinite(model.evaluate(X, y)["loss"])

    # A single row, and the batch cut in other sizes, give the same bits.
    for i in sorted({0, n // 2, n - 1}):
        np.testing.assert_array_equal(model.predict(X[i:i + 1])[0], P[i])
    np.testing.assert_array_equal(model.predict(X, batch_size=7), P)

    # get_weights -> set_weights: into the model itself and into another one.
    model.set_weights(weights)
    same(model.get_weights(), weights)
    twin = build(case, case["seed"] + 1)
    twin.set_weights(weights)
    same(twin.get_weights(), weights)
    np.testing.assert_array_equal(twin.predict(X), P)

    # save -> load, then one more epoch on both: the same bits (optimizer state and step).
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.fastnn")
        model.save(path)
        loaded = fastnn.load(path)
    same(loaded.get_weights(), weights)
    np.testing.assert_array_equal(loaded.predict(X), P)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model.fit(X, y, epochs=1, **fit)
        loaded.fit(X, y, epochs=1, **fit)
    same(loaded.get_weights(), model.get_weights())


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases())
def test_model_space(case):
    check_case(case)


@pytest.mark.slow
@settings(max_examples=4000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases())
def test_model_space_many(case):
    check_case(case)
