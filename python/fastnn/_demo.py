"""`python -m fastnn demo`: until the model layer lands, the demo checks the kernels against a
float64 NumPy product and times the fused dense layer against NumPy on MLP-shaped products."""

import time

import numpy as np

import fastnn
from fastnn import ops


def _median_time(fn, repeats):
    fn()  # warm-up: first-touch page faults, thread start
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run(quick=False):
    cfg = fastnn.show_config()
    print(f"fastnn {cfg['version']}  simd={cfg['simd']}  threads={cfg['threads']}  "
          f"cuda={'yes' if cfg['cuda_available'] else 'no'}")
    rng = np.random.default_rng(0)

    print("\ncorrectness: relative error of ops.matmul (float32) against a float64 product")
    worst = 0.0
    for m, n, k in [(1, 1, 1), (13, 33, 7), (257, 129, 513), (1000, 10, 784)]:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        ref = a.astype(np.float64) @ b.astype(np.float64)
        err = np.linalg.norm(ops.matmul(a, b) - ref) / np.linalg.norm(ref)
        worst = max(worst, err)
        print(f"  {m:>5} x {k:>4} @ {k:>4} x {n:>4}   rel. error {err:.2e}")
    ok = worst < 1e-5
    print(f"  {'OK' if ok else 'FAILED'} (tolerance 1e-5)")

    print("\nspeed: fused dense layer relu(x @ w + b), GFLOP/s, median of repeats")
    print(f"  {'shape (N x in -> out)':<24} {'fastnn':>8} {'numpy':>8} {'ratio':>6}")
    shapes = [(32, 64, 128), (256, 784, 1024)] if quick else \
        [(32, 64, 128), (128, 1024, 1024), (256, 784, 1024), (1024, 1024, 1024)]
    for n, fin, fout in shapes:
        x = rng.standard_normal((n, fin)).astype(np.float32)
        w = rng.standard_normal((fin, fout)).astype(np.float32)
        b = rng.standard_normal(fout).astype(np.float32)
        reps = 5 if quick else 20
        t_fast = _median_time(lambda: ops.linear(x, w, b, activation="relu"), reps)
        t_np = _median_time(lambda: np.maximum(x @ w + b, 0), reps)
        flops = 2.0 * n * fin * fout
        print(f"  {f'{n} x {fin} -> {fout}':<24} {flops / t_fast / 1e9:>8.1f} "
              f"{flops / t_np / 1e9:>8.1f} {t_np / t_fast:>5.2f}x")
    return 0 if ok else 1
