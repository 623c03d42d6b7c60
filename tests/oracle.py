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
        # Phi(z) = erfc(-z / sqrt 2) / 2, which keeps its digits in the negative tail.
        erfc = np.vectorize(math.erfc, otypes=[np.float64])
        return 0.5 * z * erfc(-z / math.sqrt(2.0))
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


# ------------------------------------------------------------------ dense backward
def _act_deriv(z, name, negative_slope=0.01):
    """act'(z), in float64 (step's derivative is 0)."""
    z = np.asarray(z, np.float64)
    if name is None:
        return np.ones_like(z)
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, negative_slope)
    if name == "sigmoid":
        s = _act(z, "sigmoid")
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "gelu":
        erfc = np.vectorize(math.erfc, otypes=[np.float64])
        return 0.5 * erfc(-z / math.sqrt(2.0)) + z * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    if name == "elu":
        return np.where(z > 0, 1.0, np.exp(np.minimum(z, 0)))
    if name == "softplus":
        return _act(z, "sigmoid")
    if name == "step":
        return np.zeros_like(z)
    raise ValueError(name)


def linear_grad(dy, x, w, z, activation=None, negative_slope=0.01):
    """(dx, dw, db) of y = act(x @ w + b) given dy and the pre-activation z, in float64."""
    dz = np.asarray(dy, np.float64) * _act_deriv(z, activation, negative_slope)
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    return dz @ w.T, x.T @ dz, dz.sum(axis=0)

# ------------------------------------------------------------------ batch norm, initializers, reductions
def batch_norm_train(x, gamma, beta, running_mean, running_var, momentum, eps):
    """torch.nn.BatchNorm1d in training: returns (y, save_mean, save_invstd, new_running_mean,
    new_running_var); gamma/beta/running stats may be None."""
    x = np.asarray(x, np.float64)
    n, f = x.shape
    # math.fsum: correctly rounded, so the oracle's own summation error (numpy adds down a
    # column one row at a time) cannot hide or fake a kernel error when |mean| >> std.
    mean = np.array([math.fsum(col) for col in x.T]) / n
    var = np.array([math.fsum(col) for col in ((x - mean) ** 2).T]) / n  # biased: normalizes
    invstd = 1.0 / np.sqrt(var + eps)
    g = np.ones(f) if gamma is None else np.asarray(gamma, np.float64)
    b = np.zeros(f) if beta is None else np.asarray(beta, np.float64)
    y = (x - mean) * invstd * g + b
    new_rm = new_rv = None
    if running_mean is not None:
        new_rm = (1 - momentum) * np.asarray(running_mean, np.float64) + momentum * mean
    if running_var is not None:
        unbiased = var * n / (n - 1)
        new_rv = (1 - momentum) * np.asarray(running_var, np.float64) + momentum * unbiased
    return y, mean, invstd, new_rm, new_rv


def batch_norm_infer(x, gamma, beta, running_mean, running_var, eps):
    x = np.asarray(x, np.float64)
    f = x.shape[1]
    g = np.ones(f) if gamma is None else np.asarray(gamma, np.float64)
    b = np.zeros(f) if beta is None else np.asarray(beta, np.float64)
    rm = np.asarray(running_mean, np.float64)
    rv = np.asarray(running_var, np.float64)
    return (x - rm) / np.sqrt(rv + eps) * g + b


def batch_norm_grad(dy, x, gamma, mean, invstd):
    """(dx, dgamma, dbeta) of training-mode batch norm, by the chain rule written out term by
    term (not the fused form): y = xhat * g + b, xhat = (x - mu) * s, s = (var + eps)^-1/2."""
    dy = np.asarray(dy, np.float64)
    x = np.asarray(x, np.float64)
    n, f = x.shape
    g = np.ones(f) if gamma is None else np.asarray(gamma, np.float64)
    mean = np.asarray(mean, np.float64)
    invstd = np.asarray(invstd, np.float64)
    xhat = (x - mean) * invstd
    dxhat = dy * g
    # d var = sum(dxhat * (x - mu)) * -1/2 s^3; d mu = -s sum(dxhat) + d var * mean(-2 (x - mu))
    dvar = np.sum(dxhat * (x - mean), axis=0) * -0.5 * invstd**3
    dmu = -invstd * np.sum(dxhat, axis=0) + dvar * np.mean(-2.0 * (x - mean), axis=0)
    dx = dxhat * invstd + dvar * 2.0 * (x - mean) / n + dmu / n
    return dx, np.sum(dy * xhat, axis=0), np.sum(dy, axis=0)


def _philox_words(n, seed):
    """The Philox words for elements 0..n-1: word i % 4 of block (counter = i // 4, key = seed),
    as (blocks, 4) uint32."""
    blocks = (n + 3) // 4
    counter = np.zeros((blocks, 4), np.uint64)
    counter[:, 0] = np.arange(blocks) & 0xFFFFFFFF
    counter[:, 1] = np.arange(blocks) >> 32
    return philox4x32_10(counter, (seed & 0xFFFFFFFF, seed >> 32))


def init_scale(kind, fan_in, fan_out, gain=None):
    """("uniform", bound) or ("normal", std) with torch.nn.init's formulas."""
    if kind in ("glorot_uniform", "xavier_uniform"):
        return "uniform", (1.0 if gain is None else gain) * math.sqrt(6.0 / (fan_in + fan_out))
    if kind in ("glorot_normal", "xavier_normal"):
        return "normal", (1.0 if gain is None else gain) * math.sqrt(2.0 / (fan_in + fan_out))
    if kind in ("he_uniform", "kaiming_uniform"):
        return "uniform", (math.sqrt(2.0) if gain is None else gain) * math.sqrt(3.0 / fan_in)
    if kind in ("he_normal", "kaiming_normal"):
        return "normal", (math.sqrt(2.0) if gain is None else gain) / math.sqrt(fan_in)
    if kind == "lecun_uniform":
        return "uniform", (1.0 if gain is None else gain) * math.sqrt(3.0 / fan_in)
    if kind == "lecun_normal":
        return "normal", (1.0 if gain is None else gain) / math.sqrt(fan_in)
    raise ValueError(kind)


def init_weights(kind, shape, seed, gain=None):
    """The exact draw, float64: uniform -a + 2a * word / 2**32; normal by Box-Muller on the word
    pairs (0, 1) and (2, 3) of each block, u1 = (w0 + 1) / 2**32, u2 = w1 / 2**32,
    elements r cos(2 pi u2), r sin(2 pi u2) with r = sqrt(-2 log u1)."""
    n = int(np.prod(shape))
    if kind == "zeros":
        return np.zeros(shape)
    if kind == "ones":
        return np.ones(shape)
    dist, scale = init_scale(kind, shape[0], shape[1], gain)
    words = _philox_words(n, seed).astype(np.float64)
    if dist == "uniform":
        u = words.reshape(-1)[:n] / 2.0**32
        return (-scale + 2.0 * scale * u).reshape(shape)
    u1 = (words[:, 0::2] + 1.0) / 2.0**32
    u2 = words[:, 1::2] / 2.0**32
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.empty(words.shape)
    z[:, 0::2] = r * np.cos(2.0 * math.pi * u2)
    z[:, 1::2] = r * np.sin(2.0 * math.pi * u2)
    return (scale * z.reshape(-1)[:n]).reshape(shape)


def argmax_rows(x):
    """First maximum per row; NaN above every number (numpy.argmax does the same)."""
    return np.argmax(np.asarray(x, np.float64), axis=1)


def top_k_correct(scores, labels, k):
    """Rows whose label is among the first k of the row sorted best first: NaN first, then
    descending score, ties in index order (two stable sorts, least significant key first)."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(np.int64)
    key = np.where(np.isnan(scores), 0.0, -scores)
    order = np.argsort(key, axis=1, kind="stable")
    is_number = np.take_along_axis(~np.isnan(scores), order, axis=1)
    order = np.take_along_axis(order, np.argsort(is_number, axis=1, kind="stable"), axis=1)
    return int(np.sum(np.any(order[:, :k] == labels[:, None], axis=1)))


def binary_correct(logits, targets, threshold=0.0):
    pred = np.asarray(logits, np.float64) > threshold
    return int(np.sum(pred == (np.asarray(targets, np.float64) >= 0.5)))

# ------------------------------------------------------------------ optimizers
# torch.optim's single-tensor update rules, one tensor at a time, in float64. Each takes the
# state arrays and returns the new ones (nothing is updated in place).
def penalized_grad(p, g, grad_scale=1.0, l1=0.0, l2=0.0):
    """The gradient the optimizer sees: the scaled gradient plus that of
    l1 * sum|p| + l2 * sum p**2."""
    p = np.asarray(p, np.float64)
    return grad_scale * np.asarray(g, np.float64) + l1 * np.sign(p) + 2.0 * l2 * p


def sgd_step(p, g, buf, step, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    p, g = np.asarray(p, np.float64), np.asarray(g, np.float64)
    g = g + weight_decay * p
    if momentum != 0:
        # torch creates the buffer from the first gradient, undamped.
        buf = g.copy() if step == 1 else momentum * np.asarray(buf, np.float64) + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    return p - lr * g, buf


def adam_step(p, g, m, v, vmax, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
              decoupled=False, amsgrad=False):
    p, g = np.asarray(p, np.float64), np.asarray(g, np.float64)
    beta1, beta2 = betas
    if decoupled:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    m = beta1 * np.asarray(m, np.float64) + (1 - beta1) * g
    v = beta2 * np.asarray(v, np.float64) + (1 - beta2) * g * g
    if amsgrad:
        vmax = np.maximum(np.asarray(vmax, np.float64), v)
    second = vmax if amsgrad else v
    denom = np.sqrt(second) / math.sqrt(1 - beta2**step) + eps
    return p - lr / (1 - beta1**step) * m / denom, m, v, vmax


def adagrad_step(p, g, state_sum, step, lr=1e-2, lr_decay=0.0, weight_decay=0.0, eps=1e-10):
    p, g = np.asarray(p, np.float64), np.asarray(g, np.float64)
    g = g + weight_decay * p
    state_sum = np.asarray(state_sum, np.float64) + g * g
    clr = lr / (1 + (step - 1) * lr_decay)
    return p - clr * g / (np.sqrt(state_sum) + eps), state_sum


def rmsprop_step(p, g, square_avg, buf, grad_avg, lr=1e-2, alpha=0.99, eps=1e-8,
                 weight_decay=0.0, momentum=0.0, centered=False):
    p, g = np.asarray(p, np.float64), np.asarray(g, np.float64)
    g = g + weight_decay * p
    square_avg = alpha * np.asarray(square_avg, np.float64) + (1 - alpha) * g * g
    if centered:
        grad_avg = alpha * np.asarray(grad_avg, np.float64) + (1 - alpha) * g
        avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    if momentum > 0:
        buf = momentum * np.asarray(buf, np.float64) + g / avg
        return p - lr * buf, square_avg, buf, grad_avg
    return p - lr * g / avg, square_avg, buf, grad_avg


def global_norm(tensors):
    return math.sqrt(sum(float(np.sum(np.asarray(t, np.float64) ** 2)) for t in tensors))


def clip_grad_norm(grads, max_norm):
    """(total norm, clipped grads) as torch.nn.utils.clip_grad_norm_ defines them."""
    norm = global_norm(grads)
    coef = min(max_norm / (norm + 1e-6), 1.0)
    return norm, [np.asarray(g, np.float64) * coef for g in grads]

# ------------------------------------------------------------------ sampled softmax
# Candidate sampling as TensorFlow's sampled_softmax_loss defines it; the sample stream is
# Philox 4x32-10 (counter = (t // 2, 0x53414D50), key = seed), draw t from words (0, 1) of its
# block when t is even and (2, 3) when odd, as a 53-bit uniform.
def _sampler_uniforms(first_draw, count, seed):
    blocks = np.arange(first_draw // 2, (first_draw + count + 1) // 2 + 1, dtype=np.uint64)
    counter = np.zeros((blocks.size, 4), np.uint64)
    counter[:, 0] = blocks & np.uint64(0xFFFFFFFF)
    counter[:, 1] = blocks >> np.uint64(32)
    counter[:, 2] = 0x53414D50
    bits = philox4x32_10(counter, (seed & 0xFFFFFFFF, seed >> 32)).astype(np.float64)
    words = bits.reshape(-1, 2)  # one row per draw, starting at draw 2 * blocks[0]
    u = (np.floor(words[:, 0] / 32) * 2.0**26 + np.floor(words[:, 1] / 64)) / 2.0**53
    start = first_draw - 2 * (first_draw // 2)
    return u[start:start + count]


def sampler_probability(classes, num_classes, sampler):
    c = np.asarray(classes, np.float64)
    if sampler == "uniform":
        return np.full(c.shape, 1.0 / num_classes)
    # log((c+2)/(c+1)) written as log1p(1/(c+1)): the ratio itself rounds away for c ~ 1e12.
    return np.log1p(1.0 / (c + 1.0)) / np.log(num_classes + 1.0)


def _draw_classes(u, num_classes, sampler):
    if sampler == "uniform":
        c = np.floor(u * num_classes)
    else:
        c = np.floor(np.exp(u * np.log(num_classes + 1.0))) - 1
    return np.clip(c, 0, num_classes - 1).astype(np.int64)


def sample_candidates(num_sampled, num_classes, seed, sampler="log_uniform", unique=True):
    """-> (ids, expected counts, tries): draws until num_sampled distinct ids (unique) or
    exactly num_sampled draws; expected count 1 - (1 - P)^tries or num_sampled * P."""
    if not unique:
        ids = _draw_classes(_sampler_uniforms(0, num_sampled, seed), num_classes, sampler)
        return ids, num_sampled * sampler_probability(ids, num_classes, sampler), num_sampled
    ids, seen, tries = [], set(), 0
    while len(ids) < num_sampled:
        for c in _draw_classes(_sampler_uniforms(tries, 4096, seed), num_classes, sampler):
            tries += 1
            if int(c) not in seen:
                seen.add(int(c))
                ids.append(int(c))
                if len(ids) == num_sampled:
                    break
    ids = np.array(ids, np.int64)
    return ids, expected_count(ids, num_classes, sampler, True, num_sampled, tries), tries


def expected_count(classes, num_classes, sampler, unique, num_sampled, tries):
    p = sampler_probability(classes, num_classes, sampler)
    # 1 - (1 - p)^tries, in the form that keeps its digits for p ~ 1e-12.
    with np.errstate(divide="ignore"):  # p == 1 (one class): log1p(-1) = -inf, count 1
        return -np.expm1(tries * np.log1p(-p)) if unique else num_sampled * p


def sampled_softmax_cross_entropy(h, W, b, labels, num_sampled, seed, sampler="log_uniform",
                                  unique=True, subtract_log_q=True, remove_accidental_hits=True,
                                  correct_true_logit=True):
    """-> (loss, dh, dW, db) with dW (D, C) and db (C,) full-size, computed through the full
    logits matrix: row i's candidates [y_i, ids...] pick columns of h @ W + b."""
    h = np.asarray(h, np.float64)
    W = np.asarray(W, np.float64)
    n, c = h.shape[0], W.shape[1]
    labels = np.asarray(labels, np.int64)
    ids, _, tries = sample_candidates(num_sampled, c, seed, sampler, unique)
    logits = h @ W + (0.0 if b is None else np.asarray(b, np.float64))
    cand = np.concatenate([labels[:, None], np.broadcast_to(ids, (n, ids.size))], axis=1)
    z = np.take_along_axis(logits, cand, axis=1)
    if subtract_log_q:
        log_q = np.log(expected_count(cand, c, sampler, unique, num_sampled, tries))
        if not correct_true_logit:
            log_q[:, 0] = 0.0
        z = z - log_q
    if remove_accidental_hits:
        z[:, 1:][cand[:, 1:] == labels[:, None]] = -np.inf
    shifted = z - z.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -logp[:, 0].mean()
    dz = np.exp(logp)
    dz[:, 0] -= 1.0
    dz /= n
    dlogits = np.zeros((n, c))
    np.add.at(dlogits, (np.repeat(np.arange(n), cand.shape[1]), cand.ravel()), dz.ravel())
    return loss, dlogits @ W.T, h.T @ dlogits, dlogits.sum(axis=0)

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


def act_deriv_from_output(y, name, negative_slope=0.01, alpha=1.0):
    """act'(z) written as a function of y = act(z), in float64 (for kernels that keep only y)."""
    y = np.asarray(y, np.float64)
    if name in ("relu", "step"):
        return (y > 0).astype(np.float64) if name == "relu" else np.zeros_like(y)
    if name == "leaky_relu":
        return np.where(y > 0, 1.0, negative_slope)
    if name == "sigmoid":
        return y * (1.0 - y)
    if name == "tanh":
        return 1.0 - y * y
    if name == "elu":
        return np.where(y > 0, 1.0, y + alpha)
    raise ValueError(name)


def linear_grad_from_output(dy, x, w, y, activation, negative_slope=0.01):
    """(dx, dw, db) as linear_grad, with act' taken from the (rounded) output y."""
    dz = np.asarray(dy, np.float64) * act_deriv_from_output(y, activation, negative_slope)
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    return dz @ w.T, x.T @ dz, dz.sum(axis=0)

# ------------------------------------------------------------------ bfloat16
# bfloat16 is the upper half of a float32: 8 exponent bits, 7 stored mantissa bits.


def round_bf16(x):
    """float32 -> nearest bfloat16 (ties to even), returned as float32 holding that value.

    On the float32 bit pattern: add 0x7FFF plus the lowest kept bit (bit 16), keep the upper 16
    bits. A carry out of the mantissa bumps the exponent, so finite values past the largest
    bfloat16 become +-Inf, as cvt.rn.bf16.f32 does; NaN stays NaN (the add could otherwise carry
    a NaN's payload into Inf or wrap the sign)."""
    x = np.asarray(x, np.float32)
    bits = x.view(np.uint32).astype(np.uint64)
    kept = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    y = (kept << 16).astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x), np.float32(np.nan), y)


# ------------------------------------------------------------------ fused MLP (issue 6)
# Operand rounding of the tensor-core paths, on float32 bit patterns, and a plain float64 MLP
# whose products take rounded operands the way the kernels do (activations and weights rounded,
# bias and accumulation not), so that kernel-vs-oracle differences are accumulation error only.
# (round_bf16 is the one of the bfloat16 section above.)


def gemm_bf16(a, b, c0, trans_a, trans_b, alpha, beta, bias, act, param):
    """A bf16 GEMM in float64 from bf16-rounded operands (A and B rounded, C, bias and the sums
    not): (want, pre-activation, S), S = |alpha| |op(A)| @ |op(B)| + |beta C| + |bias|, the sum
    that the accumulation error scales with. act None or "none": the identity."""
    ar = round_bf16(a).astype(np.float64)
    br = round_bf16(b).astype(np.float64)
    opa = ar.T if trans_a else ar
    opb = br.T if trans_b else br
    pre = alpha * (opa @ opb)
    S = abs(alpha) * (np.abs(opa) @ np.abs(opb))
    if beta != 0:
        pre = pre + beta * c0.astype(np.float64)
        S = S + abs(beta) * np.abs(c0.astype(np.float64))
    if bias is not None:
        pre = pre + bias.astype(np.float64)
        S = S + np.abs(bias.astype(np.float64))
    if act in (None, "none"):
        return pre, pre, S
    return activation(act, pre, negative_slope=param, alpha=param), pre, S


def round_tf32(x):
    """float32 -> float32 with a 10-bit mantissa, to nearest, ties away from zero (PTX
    cvt.rna.tf32.f32, what fastnn's TF32 kernels use). Inf and NaN pass through."""
    x = np.ascontiguousarray(x, np.float32)
    bits = x.view(np.uint32)
    finite = (bits & 0x7F800000) != 0x7F800000
    r = ((bits.astype(np.uint64) + 0x1000) & 0xFFFFE000).astype(np.uint32)
    return np.where(finite, r, bits).view(np.float32)


def round_operand(x, precision):
    """The product operand a kernel of `precision` ("fp32", "tf32", "bf16") sees, in float64."""
    x = np.asarray(x, np.float32)
    if precision == "tf32":
        x = round_tf32(x)
    elif precision == "bf16":
        x = round_bf16(x)
    return x.astype(np.float64)


def _act_param_kw(name, param):
    return {"negative_slope": param} if name == "leaky_relu" else {"alpha": param}


def mlp_activation(name, z, param=0.0):
    """act(z) for a fused-MLP layer; None is the identity."""
    if name is None:
        return np.asarray(z, np.float64)
    return activation(name, z, **_act_param_kw(name, param))


def mlp_act_deriv_from_output(name, y, param=0.0):
    """act'(z) from y = act(z), for every activation the fused MLP takes (None: 1)."""
    y = np.asarray(y, np.float64)
    if name is None:
        return np.where(np.isnan(y), np.nan, 1.0)
    if name == "softplus":
        return -np.expm1(-y)  # sigmoid(z) = 1 - e^-softplus(z)
    return act_deriv_from_output(y, name, **_act_param_kw(name, param))


def mlp_layer_forward(x, w, b, name, param=0.0, precision="fp32"):
    """act(round(x) @ round(w) + b) in float64 (z, y)."""
    z = round_operand(x, precision) @ round_operand(w, precision)
    if b is not None:
        z = z + np.asarray(b, np.float64)
    return z, mlp_activation(name, z, param)


def mlp_layer_backward(dy, y, w, name, param=0.0, precision="fp32"):
    """dz = dy * act'(y) (from the output) and dx = round(float32(dz)) @ round(w)^T."""
    dz = np.asarray(dy, np.float64) * mlp_act_deriv_from_output(name, y, param)
    return dz, round_operand(dz.astype(np.float32), precision) @ round_operand(w, precision).T


def mlp_forward(x, weights, biases, names, params=None, precision="fp32"):
    """Outputs of every layer, float64; each layer's input is the previous output rounded to
    float32 and then to the precision, as the fused kernel stores it."""
    params = params or [0.0] * len(weights)
    outs, h = [], np.asarray(x, np.float32)
    for w, b, name, p in zip(weights, biases, names, params):
        _, y = mlp_layer_forward(h, w, b, name, p, precision)
        outs.append(y)
        h = y.astype(np.float32)
    return outs


def mlp_backward(outputs, weights, names, dy, params=None, precision="fp32"):
    """(dZ for every layer, dX), float64, from the forward outputs and dLoss/d(last output)."""
    params = params or [0.0] * len(weights)
    dzs = [None] * len(weights)
    g = np.asarray(dy, np.float64)
    for l in range(len(weights) - 1, -1, -1):
        dzs[l], g = mlp_layer_backward(g, outputs[l], weights[l], names[l], params[l], precision)
    return dzs, g
