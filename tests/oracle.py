"""The reference: plain NumPy in float64, one function per kernel, written for clarity. It shares
no code with fastnn."""

import math

import numpy as np


def _act(z, name, negative_slope=0.01):
    if name is None:
        return z
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, negative_slope * z)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-np.clip(z, -700, 700)))
    if name == "tanh":
        return np.tanh(z)
    if name == "gelu":
        erf = np.vectorize(math.erf)
        return 0.5 * z * (1.0 + erf(z / math.sqrt(2.0)))
    if name == "elu":
        return np.where(z > 0, z, np.expm1(np.minimum(z, 0)))
    if name == "softplus":
        return np.logaddexp(0.0, z)
    if name == "step":
        return (z > 0).astype(np.float64)
    raise ValueError(name)


def matmul(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    """alpha * op(a) @ op(b) + beta * c, in float64."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a.T if trans_a else a
    b = b.T if trans_b else b
    out = alpha * (a @ b)
    if beta != 0.0:
        out = out + beta * np.asarray(c, np.float64)
    return out


def linear(x, w, b=None, activation=None, negative_slope=0.01):
    """act(x @ w + b), in float64."""
    z = np.asarray(x, np.float64) @ np.asarray(w, np.float64)
    if b is not None:
        z = z + np.asarray(b, np.float64)
    return _act(z, activation, negative_slope)


def philox4x32_10(counter, key):
    """Philox 4x32-10 on arrays: counter (n, 4) and key (2,) of uint32 -> (n, 4) uint32."""
    c = [counter[:, i].astype(np.uint64) for i in range(4)]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    mask32 = np.uint64(0xFFFFFFFF)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c[0]
        p1 = np.uint64(0xCD9E8D57) * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & mask32,
             (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & mask32]
        k0 = (k0 + np.uint64(0x9E3779B9)) & mask32
        k1 = (k1 + np.uint64(0xBB67AE85)) & mask32
    return np.stack(c, axis=1).astype(np.uint32)


def dropout(x, rate, seed):
    """Inverted dropout with the Philox mask: element i keeps when
    (bits_i >> 8) / 2**24 >= rate, bits_i = philox(counter=(i // 4, 0, 0, 0), key=seed)[i % 4]."""
    x = np.asarray(x, np.float64)
    n = x.size
    blocks = (n + 3) // 4
    counter = np.zeros((blocks, 4), np.uint64)
    counter[:, 0] = np.arange(blocks) & 0xFFFFFFFF
    counter[:, 1] = np.arange(blocks) >> 32
    key = (seed & 0xFFFFFFFF, seed >> 32)
    bits = philox4x32_10(counter, key).reshape(-1)[:n]
    u = (bits >> 8).astype(np.float64) / 2.0**24
    keep = (u >= np.float32(rate)).reshape(x.shape)
    scale = 1.0 / (1.0 - rate) if rate < 1 else 0.0
    return np.where(keep, x * scale, 0.0), keep.astype(np.uint8)


# ------------------------------------------------------------------ losses
def _log_softmax(z):
    z = np.asarray(z, np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax_cross_entropy(logits, labels, class_weight=None, label_smoothing=0.0):
    """(loss, dlogits) as torch.nn.functional.cross_entropy(reduction='mean') defines them.

    Every row's target mass t (one-hot or given probabilities, smoothed towards uniform) is
    scaled per class by the weights; the loss is sum of -t log q over the normaliser, which is
    the summed weight of the labelled classes for index labels and N for probability labels."""
    logp = _log_softmax(logits)
    n, c = logp.shape
    w = np.ones(c) if class_weight is None else np.asarray(class_weight, np.float64)
    labels = np.asarray(labels)
    if labels.ndim == 1:
        target = np.zeros((n, c))
        target[np.arange(n), labels] = 1.0
        norm = w[labels].sum()
        # torch weights the smoothing term by w_c but normalises it by w[y], like the main term.
        mass = (1.0 - label_smoothing) * target * w[labels][:, None] + label_smoothing / c * w
    else:
        target = np.asarray(labels, np.float64)
        norm = float(n)
        mass = w * ((1.0 - label_smoothing) * target + label_smoothing / c)
    loss = -(mass * logp).sum() / norm
    q = np.exp(logp)
    grad = (mass.sum(axis=1, keepdims=True) * q - mass) / norm
    return loss, grad


def binary_cross_entropy_with_logits(logits, targets):
    x = np.asarray(logits, np.float64)
    t = np.asarray(targets, np.float64)
    loss = np.mean(np.logaddexp(0.0, x) - x * t)
    sigmoid = 0.5 * (1.0 + np.tanh(0.5 * x))
    return loss, (sigmoid - t) / x.size


def mse(pred, target):
    d = np.asarray(pred, np.float64) - np.asarray(target, np.float64)
    return np.mean(d * d), 2.0 * d / d.size


def mae(pred, target):
    d = np.asarray(pred, np.float64) - np.asarray(target, np.float64)
    return np.mean(np.abs(d)), np.sign(d) / d.size


# ------------------------------------------------------------------ activations
# Element-wise activations and their derivatives, written from the textbook formulas in float64.
# Forms are chosen so that the oracle itself stays accurate in the tails: sigmoid' as
# sigmoid(x) sigmoid(-x), tanh' as 1 / cosh^2, Phi through erfc (no 1 + erf cancellation).
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _normal_cdf(x):
    return 0.5 * _erfc(-x / math.sqrt(2.0))


def activation(name, x, negative_slope=0.01, alpha=1.0):
    """act(x) in float64; NaN in gives NaN out."""
    x = np.asarray(x, np.float64)
    if name == "relu":
        y = np.where(x > 0, x, 0.0)
    elif name == "leaky_relu":
        y = np.where(x > 0, x, negative_slope * x)
    elif name == "sigmoid":
        y = _sigmoid(x)
    elif name == "tanh":
        y = np.tanh(x)
    elif name == "gelu":
        y = x * _normal_cdf(x)
    elif name == "elu":
        y = np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))
    elif name == "softplus":
        y = np.logaddexp(0.0, x)
    elif name == "step":
        y = np.where(x > 0, 1.0, 0.0)
    else:
        raise ValueError(name)
    return np.where(np.isnan(x), np.nan, y)


def activation_derivative(name, x, negative_slope=0.01, alpha=1.0):
    """act'(x) in float64 (0 for step, and for relu at 0); NaN in gives NaN out."""
    x = np.asarray(x, np.float64)
    with np.errstate(over="ignore"):
        if name == "relu":
            d = np.where(x > 0, 1.0, 0.0)
        elif name == "leaky_relu":
            d = np.where(x > 0, 1.0, negative_slope)
        elif name in ("sigmoid", "softplus"):
            d = _sigmoid(x) * _sigmoid(-x) if name == "sigmoid" else _sigmoid(x)
        elif name == "tanh":
            d = 1.0 / np.cosh(x) ** 2
        elif name == "gelu":
            d = _normal_cdf(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        elif name == "elu":
            d = np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))
        elif name == "step":
            d = np.zeros_like(x)
        else:
            raise ValueError(name)
    return np.where(np.isnan(x), np.nan, d)


def softmax(x):
    """Over the last axis."""
    z = np.asarray(x, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(x):
    z = np.asarray(x, np.float64)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _rowwise_vjp(dy, x, jacobian):
    """dy^T J(row) for each row of the last axis, one explicit Jacobian at a time."""
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64).reshape(-1, x.shape[-1])
    s = softmax(x).reshape(-1, x.shape[-1])
    dx = np.stack([g @ jacobian(row) for g, row in zip(dy, s)]) if len(s) else dy
    return dx.reshape(x.shape)


def softmax_vjp(dy, x):
    """J = d softmax / dx: J[i, j] = s_i (delta_ij - s_j)."""
    return _rowwise_vjp(dy, x, lambda s: np.diag(s) - np.outer(s, s))


def log_softmax_vjp(dy, x):
    """J = d log_softmax / dx: J[i, j] = delta_ij - s_j."""
    return _rowwise_vjp(dy, x, lambda s: np.eye(len(s)) - s[None, :])
