"""The three networks of issue 14 and what every engine needs to run the same one: layer widths,
a fastnn model, a PyTorch module holding the same weights, and the flop and byte counts that
the suites divide by."""

from __future__ import annotations

import numpy as np

# name -> layer widths (input, hidden..., classes); ReLU hidden layers, softmax output.
NETWORKS = {
    "small 64-128-10": (64, 128, 10),
    "medium 784-256-256-10": (784, 256, 256, 10),
    "wide 784-2048-2048-10": (784, 2048, 2048, 10),
}


def layer_shapes(widths) -> list[tuple[int, int]]:
    """(in, out) of each Dense layer."""
    return list(zip(widths[:-1], widths[1:]))


def weight_count(widths) -> int:
    """Kernel entries (the bytes that stream at batch 1 scale with these)."""
    return sum(k * n for k, n in layer_shapes(widths))


def bias_count(widths) -> int:
    return sum(widths[1:])


def forward_flops(widths, batch: int = 1) -> float:
    """2*M*K*N per Dense layer (bias, ReLU and softmax not counted)."""
    return 2.0 * batch * weight_count(widths)


def train_flops(widths, batch: int = 1) -> float:
    """Forward 2*M*K*N per layer, backward 2*M*K*N for dW and 2*M*K*N for dX, except no dX for
    the first layer (its input needs no gradient)."""
    shapes = layer_shapes(widths)
    dx = sum(k * n for k, n in shapes[1:])
    return 2.0 * batch * (2 * weight_count(widths) + dx)


def data(widths, n: int, seed: int = 0):
    """Gaussian blobs, one centre per class: separable enough that training makes progress."""
    rng = np.random.default_rng(seed)
    c = widths[-1]
    centers = rng.standard_normal((c, widths[0])).astype(np.float32)
    y = rng.integers(0, c, n)
    X = centers[y] + rng.standard_normal((n, widths[0]), dtype=np.float32)
    return X.astype(np.float32), y.astype(np.int64)


def fastnn_model(widths, precision: str = "fp32", seed: int = 0):
    import fastnn
    from fastnn.layers import Dense

    layers = [Dense(w, "relu") for w in widths[1:-1]] + [Dense(widths[-1], "softmax")]
    kwargs = {} if precision == "fp32" else {"precision": precision}
    return fastnn.Sequential(layers, input_dim=widths[0], seed=seed, **kwargs)


def torch_model(torch, widths, weights=None):
    """Linear/ReLU stack (logits out); with ``weights`` ([W1, b1, ...], W as (in, out)) loaded."""
    mods = []
    for i, (k, n) in enumerate(layer_shapes(widths)):
        if i:
            mods.append(torch.nn.ReLU())
        mods.append(torch.nn.Linear(k, n))
    model = torch.nn.Sequential(*mods)
    if weights is not None:
        linears = [m for m in model if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for lin, w, b in zip(linears, weights[0::2], weights[1::2]):
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
                lin.bias.copy_(torch.from_numpy(b))
    return model
