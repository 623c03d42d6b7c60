"""Models that cover every layer, activation, link and dtype, for the export tests
(test_export_onnx.py, test_torch_bridge.py, test_weights_files.py)."""

import numpy as np

import fastnn
from fastnn.layers import ACTIVATIONS, Activation, BatchNorm, Dense, Dropout

# Every activation a Dense may have (softmax only last: it is covered by the links).
HIDDEN_ACTIVATIONS = [a for a in ACTIVATIONS if a != "softmax"]
# (loss given to compile or None for an uncompiled model, last layer's activation): each way
# predict ends -- the link applied by predict, the link already in the last layer, none.
ENDINGS = [(None, "linear"), (None, "softmax"), (None, "sigmoid"), ("mse", "linear"),
           ("mae", "tanh"), ("softmax_cross_entropy", "linear"),
           ("softmax_cross_entropy", "softmax"), ("softmax_cross_entropy", "relu"),
           ("binary_cross_entropy", "linear"), ("binary_cross_entropy", "sigmoid")]


def random_model(rng, activation, ending=(None, "linear"), dtype="float32", input_dim=4,
                 units=5, outputs=3):
    """Dense(activation) -> BatchNorm (random running statistics) -> Dropout -> Activation ->
    Dense(last activation), compiled with the ending's loss (unless None)."""
    loss, last = ending
    layers = [Dense(units, activation, negative_slope=0.3, alpha=0.7), BatchNorm(eps=1e-3),
              Dropout(0.25), Activation(activation, negative_slope=-0.2, alpha=1.5),
              Dense(outputs, last, use_bias=outputs % 2 == 1)]
    model = fastnn.Sequential(layers, input_dim=input_dim, seed=int(rng.integers(1 << 30)),
                              dtype=dtype)
    w = model.get_weights()
    w[2], w[3] = rng.uniform(0.5, 2, units), rng.standard_normal(units)  # gamma, beta
    w[4], w[5] = rng.standard_normal(units), rng.uniform(0.2, 3, units)  # running mean, var
    model.set_weights(w)
    if loss is not None:
        model.compile(loss)
    return model


def inputs(rng, model, rows=7):
    return (3 * rng.standard_normal((rows, model.input_dim))).astype(model.dtype)


def assert_close(got, want):
    """Equal up to the rounding of another summation order: 1e-5 of the outputs' scale in
    float32, 1e-10 in float64."""
    tol = 1e-5 if want.dtype == np.float32 else 1e-10
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max()))
