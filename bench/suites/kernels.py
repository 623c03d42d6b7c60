"""Memory-bound kernels (activations, dropout, optimizer steps, losses, batch norm) and the fused
dense backward, each against the NumPy expression a user would write, in the same run.

Memory-bound rows also report the bandwidth they reach (bytes they must move / time) against the
bandwidth of a NumPy copy of the same number of bytes: a kernel that makes one pass over its data
should come close to the copy; NumPy expressions make several passes."""

from __future__ import annotations

import math

import numpy as np

from fastnn import ops

from bench.suites._common import THREAD_COUNTS, Context
from bench.table import Column, Table
from bench.threads import same_threads
from bench.timing import measure

NAME = "kernels"
DESCRIPTION = ("elementwise/optimizer/dropout bandwidth vs a NumPy copy, speed-up vs NumPy; "
               "softmax CE; fused dense backward vs its two GEMMs")

ELEMS = 1 << 22          # 4M float32 = 16 MiB per array: far beyond the caches
QUICK_ELEMS = 1 << 20


def _erf():
    try:
        from scipy.special import erf  # optional: NumPy has no erf
        return erf
    except ImportError:  # pragma: no cover
        return None


def _rel_err(got, ref) -> float:
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    scale = float(np.max(np.abs(ref))) if ref.size else 1.0
    return float(np.max(np.abs(got - ref))) / (scale or 1.0)


# ------------------------------------------------------------------ cases
# Each case: name, bytes the kernel must move, fastnn callable, NumPy callable, and the pair of
# results compared once before timing (None where the outputs are not comparable, e.g. random).

def _elementwise_cases(rng, n):
    x = rng.standard_normal(n, dtype=np.float32) * 3
    dy = rng.standard_normal(n, dtype=np.float32)
    out = np.empty_like(x)
    erf = _erf()
    cases = []

    def fwd(name, numpy_fn):
        fn = getattr(ops, name, None)
        if fn is None:
            return
        cases.append((f"{name} fwd", 8 * n, lambda: fn(x, out=out), numpy_fn))

    fwd("relu", lambda: np.maximum(x, 0))
    fwd("sigmoid", lambda: 1 / (1 + np.exp(-x)))
    fwd("tanh", lambda: np.tanh(x))
    if erf is not None:
        fwd("gelu", lambda: 0.5 * x * (1 + erf(x * np.float32(1 / math.sqrt(2)))))
    if hasattr(ops, "activation_grad"):
        cases.append(("relu grad", 12 * n, lambda: ops.activation_grad("relu", dy, x),
                      lambda: dy * (x > 0)))
        cases.append(("sigmoid grad", 12 * n, lambda: ops.activation_grad("sigmoid", dy, x),
                      lambda: dy * (s := 1 / (1 + np.exp(-x))) * (1 - s)))

    rate = 0.5
    np_rng = np.random.default_rng(0)

    def numpy_dropout():
        keep = np_rng.random(n, dtype=np.float32) >= rate
        return x * keep / (1 - rate), keep

    # Read x; write y and a one-byte mask (into given arrays, as the training engine does).
    y_buf, mask_buf = np.empty_like(x), np.empty(n, np.uint8)
    cases.append(("dropout fwd", 9 * n, lambda: ops.dropout(x, rate, 7, out=y_buf, mask=mask_buf),
                  numpy_dropout, None))
    _, mask = ops.dropout(x, rate, 7)
    cases.append(("dropout grad", 9 * n, lambda: ops.dropout_grad(dy, mask, rate),
                  lambda: dy * mask / (1 - rate)))
    return cases


def _optimizer_cases(rng, n):
    cases = []
    if not hasattr(ops, "adam_step"):
        return cases
    p = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32)
    m = np.zeros(n, np.float32)
    v = np.zeros(n, np.float32)
    pn, mn, vn = p.copy(), m.copy(), v.copy()
    lr, b1, b2, eps, t = 1e-3, 0.9, 0.999, 1e-8, 10

    def numpy_adam():
        mn[...] = b1 * mn + (1 - b1) * g
        vn[...] = b2 * vn + (1 - b2) * g * g
        denom = np.sqrt(vn) / math.sqrt(1 - b2 ** t) + eps
        pn[...] -= (lr / (1 - b1 ** t)) * mn / denom

    # Reads p, g, m, v; writes p, m, v.
    cases.append(("adam step", 28 * n,
                  lambda: ops.adam_step([p], [g], [m], [v], step=t, lr=lr),
                  numpy_adam, None))
    if hasattr(ops, "sgd_step"):
        buf = np.zeros(n, np.float32)
        bufn = buf.copy()

        def numpy_momentum():
            bufn[...] = 0.9 * bufn + g
            pn[...] -= lr * bufn

        cases.append(("sgd momentum step", 20 * n,
                      lambda: ops.sgd_step([p], [g], lr=lr, momentum=0.9,
                                           momentum_buffers=[buf], step=t),
                      numpy_momentum, None))
    return cases


def _batchnorm_cases(rng, n):
    if not hasattr(ops, "batch_norm"):
        return []
    rows, feats = n // 256, 256
    x = rng.standard_normal((rows, feats), dtype=np.float32)
    gamma = np.ones(feats, np.float32)
    beta = np.zeros(feats, np.float32)
    rm, rv = np.zeros(feats, np.float32), np.ones(feats, np.float32)

    def numpy_bn():
        mean = x.mean(0)
        var = x.var(0)
        return (x - mean) / np.sqrt(var + 1e-5) * gamma + beta

    return [("batch_norm fwd (train)", 8 * n,
             lambda: ops.batch_norm(x, gamma, beta, rm, rv, training=True)[0], numpy_bn)]


def _copy_gbps(ctx: Context, nbytes: int) -> float:
    """Bandwidth of np.copyto moving ``nbytes`` (half read, half written)."""
    count = max(1, nbytes // 8)
    src = np.ones(count, np.float32)
    dst = np.empty_like(src)
    t = measure(lambda: np.copyto(dst, src), ctx.timer)
    return 8 * count / t.median_s / 1e9


def _softmax_xent_case(rng):
    n, c = 4096, 1000
    z = rng.standard_normal((n, c), dtype=np.float32) * 3
    y = rng.integers(0, c, n)

    def numpy_xent():
        # The stable version: subtract the row max, then exp, sum, log.
        m = z.max(axis=1, keepdims=True)
        e = np.exp(z - m)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) + m[:, 0] - z[np.arange(n), y]))
        grad = e / s
        grad[np.arange(n), y] -= 1
        grad /= n
        return loss, grad

    return ("softmax CE 4096x1000", 8 * n * c, lambda: ops.softmax_cross_entropy(z, y),
            numpy_xent, "pair")


def _measure_memory_case(ctx, case, threads, copy_gbps):
    name, nbytes, fast_fn, numpy_fn = case[:4]
    check = case[4] if len(case) > 4 else "array"
    with same_threads(ctx.blas, threads):
        err = None
        if check == "array":
            err = _rel_err(fast_fn(), numpy_fn())
        elif check == "pair":
            (lf, gf), (ln, gn) = fast_fn(), numpy_fn()
            err = max(abs(lf - ln) / abs(ln), _rel_err(gf, gn))
        t_fast = measure(fast_fn, ctx.timer)
        t_np = measure(numpy_fn, ctx.timer)
    gbps = nbytes / t_fast.median_s / 1e9
    return {
        "shape": name, "threads": threads,
        "fastnn_ms": t_fast.median_s * 1e3, "numpy_ms": t_np.median_s * 1e3,
        "speedup": t_np.median_s / t_fast.median_s,
        "gbps": gbps, "copy_gbps": copy_gbps, "bw_ratio": gbps / copy_gbps,
        "max_rel_err": err, "ok": err is None or err <= 1e-4,
        "fastnn_time": t_fast.to_dict(), "numpy_time": t_np.to_dict(),
    }


def _act_deriv(z, act):
    """act'(z) in float32 for the dz the plain GEMMs are given (outside the timing)."""
    if act == "relu":
        return (z > 0).astype(np.float32)
    zz = z.astype(np.float64)
    erf = _erf() or np.vectorize(math.erf, otypes=[np.float64])
    return (0.5 * (1 + erf(zz / math.sqrt(2))) +
            zz * np.exp(-0.5 * zz * zz) / math.sqrt(2 * math.pi)).astype(np.float32)


def _dense_backward_rows(ctx, rng, threads):
    rows = []
    for n, k, m, act in ((128, 784, 256, "relu"), (256, 1024, 1024, "relu"),
                         (128, 1024, 1024, "gelu"), (4096, 64, 64, "relu")):
        x = rng.standard_normal((n, k), dtype=np.float32)
        w = rng.standard_normal((k, m), dtype=np.float32) / np.float32(math.sqrt(k))
        y, z = ops.linear(x, w, activation=act, return_preactivation=True)
        dy = rng.standard_normal((n, m), dtype=np.float32)
        gate = {"y": y} if act in ops.GRAD_FROM_OUTPUT else {"z": z}
        dz = dy * _act_deriv(z, act)
        fused = lambda: ops.linear_grad(dy, x, w, activation=act, **gate)  # noqa: E731
        gemms = lambda: (ops.matmul(x, dz, trans_a=True), ops.matmul(dz, w, trans_b=True))  # noqa: E731
        numpy_fn = lambda: (x.T @ dz, dz @ w.T)  # noqa: E731
        with same_threads(ctx.blas, threads):
            dx, dw, db = fused()
            err = max(_rel_err(dx, dz @ w.T), _rel_err(dw, x.T @ dz), _rel_err(db, dz.sum(0)))
            t_fused = measure(fused, ctx.timer)
            t_gemms = measure(gemms, ctx.timer)
            t_np = measure(numpy_fn, ctx.timer)
        rows.append({
            "shape": f"{n}x{k}x{m} {act}", "threads": threads,
            "fused_ms": t_fused.median_s * 1e3, "gemms_ms": t_gemms.median_s * 1e3,
            "numpy_ms": t_np.median_s * 1e3,
            "fused_over_gemms": t_fused.median_s / t_gemms.median_s,
            "fused_over_numpy": t_fused.median_s / t_np.median_s,
            "max_rel_err": err, "ok": err <= 1e-3,
        })
    return rows


def _dispatch_row(ctx):
    """What the GPU dispatch at the top of every op costs the CPU path: the check
    (fastnn.ops._dispatch.backend, a couple of type tests) against the smallest op it guards
    (relu on 16 floats). Meant to stay a small fraction."""
    from fastnn.ops import _dispatch

    x = np.ones(16, np.float32)
    check = measure(lambda: _dispatch.backend(x=x, out=None), ctx.timer).median_s
    op = measure(lambda: ops.relu(x), ctx.timer).median_s
    return {"shape": "GPU dispatch check", "threads": 1, "check_ns": check * 1e9,
            "op_ns": op * 1e9, "check_over_op": check / op, "ok": True}


def _sampler_row(ctx):
    """A unique log-uniform sample of every one of C classes (the sampler's worst case: plain
    rejection needs ~1/P(c) draws for the rarest class, ~22 s at C = 1e6) against the cheapest
    way to list every class once in random order, NumPy's permutation."""
    C = 10**5 if ctx.quick else 10**6
    ours = measure(lambda: ops.sample_candidates(C, C, 5), ctx.timer).median_s
    rng = np.random.default_rng(5)
    floor = measure(lambda: rng.permutation(C), ctx.timer).median_s
    return {"shape": f"unique sample C={C:.0e}", "threads": 1, "fastnn_ms": ours * 1e3,
            "numpy_ms": floor * 1e3, "ratio": ours / floor, "ok": True}


def run(ctx: Context) -> dict:
    n = QUICK_ELEMS if ctx.quick else ELEMS
    rng = np.random.default_rng(3)
    notes = [f"memory-bound rows: float32, {n} elements per array (softmax CE: 4096x1000); "
             "GB/s = bytes the kernel must move / median time; copy = np.copyto moving the "
             "same bytes (1 thread); speed-up = NumPy expression time / fastnn time",
             "dense backward: fused ops.linear_grad (dx, dw, db) vs the two fastnn GEMMs "
             "x.T @ dz and dz @ w.T on a precomputed dz (ratio = fused / GEMMs), and NumPy"]
    for note in notes:
        print(note)
    cases = (_elementwise_cases(rng, n) + _optimizer_cases(rng, n) + _batchnorm_cases(rng, n)
             + [_softmax_xent_case(rng)])
    table = Table([
        Column("shape", "kernel", width=22), Column("threads", "threads"),
        Column("fastnn_ms", "fastnn ms", ".3f"), Column("gbps", "GB/s", ".1f"),
        Column("copy_gbps", "copy GB/s", ".1f"), Column("bw_ratio", "vs copy", ".2f"),
        Column("numpy_ms", "numpy ms", ".3f"), Column("speedup", "vs numpy", ".2f"),
        Column("check", "check", width=5)])
    table.header()
    rows = []
    copy_cache = {}
    for case in cases:
        nbytes = case[1]
        if nbytes not in copy_cache:
            copy_cache[nbytes] = _copy_gbps(ctx, nbytes)
        for threads in THREAD_COUNTS:
            row = _measure_memory_case(ctx, case, threads, copy_cache[nbytes])
            row["check"] = "" if row["ok"] else f"BAD err={row['max_rel_err']:.1e}"
            table.row(row)
            rows.append(row)

    print()
    table = Table([
        Column("shape", "dense backward", width=22), Column("threads", "threads"),
        Column("fused_ms", "fused ms", ".3f"), Column("gemms_ms", "2 GEMMs ms", ".3f"),
        Column("fused_over_gemms", "fused/GEMMs", ".2f"), Column("numpy_ms", "numpy ms", ".3f"),
        Column("fused_over_numpy", "fused/numpy", ".2f"), Column("check", "check", width=5)])
    table.header()
    for threads in THREAD_COUNTS:
        for row in _dense_backward_rows(ctx, rng, threads):
            row["check"] = "" if row["ok"] else f"BAD err={row['max_rel_err']:.1e}"
            table.row(row)
            rows.append(row)

    print()
    table = Table([
        Column("shape", "overhead", width=22), Column("check_ns", "check ns", ".0f"),
        Column("op_ns", "relu(16) ns", ".0f"), Column("check_over_op", "check/op", ".3f")])
    table.header()
    row = _dispatch_row(ctx)
    table.row(row)
    rows.append(row)

    print()
    table = Table([
        Column("shape", "sampler", width=22), Column("fastnn_ms", "fastnn ms", ".1f"),
        Column("numpy_ms", "permutation ms", ".1f"), Column("ratio", "fastnn/perm", ".1f")])
    table.header()
    row = _sampler_row(ctx)
    table.row(row)
    rows.append(row)
    return {"rows": rows, "notes": notes}
