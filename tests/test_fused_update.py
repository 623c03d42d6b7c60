"""The optimizer step fused into the backward pass (engine/network.cpp, fuse_update_ok: each
kernel stepped block by block as its dW product finishes them) gives the same weights, bit for
bit, as the separate update pass it replaces. A clipnorm too large to ever clip turns the fusion
off without changing the arithmetic, so the two runs below differ only in where the step runs.
Every optimizer, penalties on a kernel, batches of more than one K block of the dW product
(> 256 rows), layer widths off the tile edges, every SIMD path, one and two threads."""

import numpy as np
import pytest

from fastnn import Sequential, optim
from fastnn.layers import Dense

OPTIMIZERS = {
    "sgd": lambda: optim.SGD(lr=0.05),
    "sgd momentum": lambda: optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda: optim.Adam(lr=1e-2),
    "adamw amsgrad": lambda: optim.AdamW(lr=1e-2, weight_decay=0.1, amsgrad=True),
    "adagrad": lambda: optim.Adagrad(lr=0.05),
    "rmsprop": lambda: optim.RMSprop(lr=1e-2, momentum=0.5, centered=True),
}


def _trained(opt, clipnorm, X, y, batch_size):
    model = Sequential([Dense(70, "relu", l1=1e-4, l2=1e-3), Dense(45, "tanh"), Dense(5)],
                       input_dim=X.shape[1], seed=3)
    model.compile("softmax_cross_entropy", OPTIMIZERS[opt](), clipnorm=clipnorm)
    # 16+ batches per epoch: fit's slices then hold several batches, and only a slice's last
    # update (which gathers the diagnostics) runs unfused.
    model.fit(X, y, epochs=2, batch_size=batch_size, verbose=0)
    return model.get_weights()


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("batch_size", [24, 300])
def test_fused_step_gives_the_same_weights(simd, threads, opt, batch_size):
    rng = np.random.default_rng(0)
    n = 17 * batch_size
    X = rng.standard_normal((n, 37)).astype(np.float32)
    y = rng.integers(0, 5, n)
    fused = _trained(opt, None, X, y, batch_size)
    separate = _trained(opt, 1e30, X, y, batch_size)
    for a, b in zip(fused, separate):
        np.testing.assert_array_equal(a, b)
