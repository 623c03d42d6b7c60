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
