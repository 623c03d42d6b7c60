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
