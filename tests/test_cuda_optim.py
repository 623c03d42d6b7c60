"""The CUDA optimizer steps, global norm / clipping, batch norm and row reductions (fastnn._cuda's
raw entry points: device pointers as ints) against the float64 oracle and against the CPU kernels
on the same inputs. torch.cuda tensors hold the device memory.

The GPU tests need a CUDA device, fastnn built with CUDA and torch with CUDA; without them they
skip. The argument checks at the end run wherever fastnn._cuda was built, GPU or not.

Kernel geometry the shapes aim at: the optimizers cut every tensor into chunks of 8192 elements
(100003 spans 13, 8193 two) and pack at most 128 tensors per launch (300 tensors take three);
128-bit accesses when a tensor's arrays are 16-byte aligned, scalar ones otherwise (the "offset"
layout). Column statistics use 32-feature tiles and up to 1024 row chunks of >= 64 rows."""

import math

import numpy as np
import pytest

from fastnn import cuda, ops

import oracle
# The CPU side and the float64 reference of each step, shared with the CPU optimizer tests.
from test_optim import fastnn_step as cpu_step, oracle_step  # noqa: E402

try:
    import torch

    _torch_cuda = bool(torch.cuda.is_available())
except Exception:  # no torch, or a CPU-only torch
    torch = None
    _torch_cuda = False

needs_gpu = pytest.mark.skipif(
    not (cuda.is_available() and _torch_cuda),
    reason="needs a usable CUDA device, fastnn built with CUDA, and torch with CUDA support "
           "(torch.cuda tensors hold the memory)",
)
needs_build = pytest.mark.skipif(not cuda.is_compiled(), reason="fastnn built without CUDA")

DTYPES = [np.float32, np.float64]
NAME = {np.float32: "float32", np.float64: "float64"}


def mod():
    return cuda._require()


def dev(a):
    return torch.from_numpy(np.ascontiguousarray(a)).to("cuda")


def host(t):
    torch.cuda.synchronize()
    return t.cpu().numpy()


def ptrs(ts):
    return [t.data_ptr() for t in ts]


def carve(arrays, layout):
    """Device copies of `arrays`: separate allocations ("aligned") or views into one buffer, each
    starting one element past a 16-byte boundary ("offset": the scalar path)."""
    if layout == "aligned":
        return [dev(a) for a in arrays]
    dtype = arrays[0].dtype
    step = 16 // dtype.itemsize
    total = sum(a.size + 2 * step for a in arrays)
    buf = torch.zeros(total, dtype=torch.from_numpy(np.zeros(1, dtype)).dtype, device="cuda")
    out, off = [], 1
    for a in arrays:
        v = buf[off:off + a.size].view(a.shape)
        v.copy_(torch.from_numpy(np.ascontiguousarray(a)))
        out.append(v)
        off = (off + a.size + step - 1) // step * step + 1  # the next offset of 1 (mod step)
    assert all(t.data_ptr() % 16 != 0 for t in out)
    return out


# ------------------------------------------------------------------ optimizers
SHAPES = [(1,), (7,), (3, 11), (1000,), (8192,), (8193,), (100003,)]
STEPS = 3
OPT_TOL = {np.float32: dict(rtol=5e-3, atol=1e-4), np.float64: dict(rtol=1e-9, atol=1e-12)}

CASES = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    ("sgd", dict(lr=0.05, momentum=0.5, nesterov=True, weight_decay=0.05)),
    ("adam", dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    ("adam", dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, decoupled=True)),
    ("adam", dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    ("adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, eps=1e-10)),
    ("rmsprop", dict(lr=1e-2, alpha=0.9, eps=1e-8, weight_decay=0.1)),
    ("rmsprop", dict(lr=1e-2, alpha=0.9, eps=1e-8, momentum=0.9)),
    ("rmsprop", dict(lr=1e-2, alpha=0.9, eps=1e-8, weight_decay=0.1, momentum=0.9, centered=True)),
    ("rmsprop", dict(lr=1e-2, alpha=0.9, eps=1e-8, centered=True)),
]
CASE_IDS = [f"{k}-" + "-".join(f"{n}={v}" for n, v in o.items() if n != "lr") for k, o in CASES]


def state_names(kind, opts):
    if kind == "sgd":
        return ["momentum_buffers"] if opts.get("momentum", 0) else []
    if kind == "adam":
        return ["exp_avgs", "exp_avg_sqs"] + (["max_exp_avg_sqs"] if opts.get("amsgrad") else [])
    if kind == "adagrad":
        return ["state_sums"]
    return (["square_avgs"] + (["momentum_buffers"] if opts.get("momentum", 0) else [])
            + (["grad_avgs"] if opts.get("centered") else []))


def initial_state(kind, p):
    if kind == "sgd":
        return np.full_like(p, np.nan)  # step 1 must ignore the old buffer
    if kind == "adagrad":
        return np.full_like(p, 0.1)
    return np.zeros_like(p)


def gpu_step(kind, dp, dg, dst, step, opts, grad_scale=1.0, l1=None, l2=None, scale_ptr=0):
    m = mod()
    dt = "float32" if dp[0].dtype == torch.float32 else "float64"
    P, G, sizes = ptrs(dp), ptrs(dg), [t.numel() for t in dp]

    def st(name):
        return ptrs(dst[name]) if name in dst else None

    o = opts
    if kind == "sgd":
        m.sgd_step(dt, P, G, st("momentum_buffers"), sizes, l1, l2, o["lr"], o.get("momentum", 0.0),
                   o.get("dampening", 0.0), o.get("nesterov", False), o.get("weight_decay", 0.0),
                   step == 1, grad_scale, scale_ptr)
    elif kind == "adam":
        b1, b2 = o.get("betas", (0.9, 0.999))
        m.adam_step(dt, P, G, st("exp_avgs"), st("exp_avg_sqs"), st("max_exp_avg_sqs"), sizes, l1,
                    l2, step, o.get("lr", 1e-3), b1, b2, o.get("eps", 1e-8),
                    o.get("weight_decay", 0.0), o.get("decoupled", False), o.get("amsgrad", False),
                    grad_scale, scale_ptr)
    elif kind == "adagrad":
        m.adagrad_step(dt, P, G, st("state_sums"), sizes, l1, l2, step, o.get("lr", 1e-2),
                       o.get("lr_decay", 0.0), o.get("weight_decay", 0.0), o.get("eps", 1e-10),
                       grad_scale, scale_ptr)
    else:
        m.rmsprop_step(dt, P, G, st("square_avgs"), st("momentum_buffers"), st("grad_avgs"), sizes,
                       l1, l2, o.get("lr", 1e-2), o.get("alpha", 0.99), o.get("eps", 1e-8),
                       o.get("weight_decay", 0.0), o.get("momentum", 0.0), o.get("centered", False),
                       grad_scale, scale_ptr)


def run_three_ways(kind, opts, dtype, rng, layout="aligned", shapes=SHAPES, grad_scale=1.0,
                   l1=None, l2=None):
    """STEPS steps on the GPU, on the CPU kernels and in the oracle from the same start."""
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    names = state_names(kind, opts)
    state = {n: [initial_state(kind, p) for p in params] for n in names}
    dp = carve(params, layout)
    dst = {n: carve(state[n], layout) for n in names}
    ref_p = [p.astype(np.float64) for p in params]
    ref_st = [{n: state[n][i].astype(np.float64) for n in names} for i in range(len(params))]
    l1s = l1 if l1 is not None else [0.0] * len(params)
    l2s = l2 if l2 is not None else [0.0] * len(params)
    for step in range(1, STEPS + 1):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        gpu_step(kind, dp, carve(grads, layout), dst, step, opts, grad_scale, l1, l2)
        cpu_step(kind, params, grads, state, step, opts, grad_scale=grad_scale, l1=l1, l2=l2)
        for i, g in enumerate(grads):
            geff = oracle.penalized_grad(ref_p[i], g, grad_scale, l1s[i], l2s[i])
            ref_p[i], ref_st[i] = oracle_step(kind, ref_p[i], geff, ref_st[i], step, opts)
    gpu = {"params": [host(t) for t in dp], **{n: [host(t) for t in dst[n]] for n in names}}
    cpu = {"params": params, **state}
    ref = {"params": ref_p, **{n: [r[n] for r in ref_st] for n in names}}
    return gpu, cpu, ref


def assert_bitwise(gpu, cpu):
    for name in gpu:
        for i, (a, b) in enumerate(zip(gpu[name], cpu[name])):
            if not np.array_equal(a, b, equal_nan=True):
                bad = np.flatnonzero(a.ravel() != b.ravel())
                raise AssertionError(f"{name}[{i}]: {bad.size} of {a.size} elements differ from the "
                                     f"CPU kernel, first at {bad[0]}: {a.ravel()[bad[0]]!r} vs "
                                     f"{b.ravel()[bad[0]]!r}")


@needs_gpu
@pytest.mark.parametrize("layout", ["aligned", "offset"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,opts", CASES, ids=CASE_IDS)
def test_step_against_oracle_and_cpu(kind, opts, dtype, layout, rng):
    gpu, cpu, ref = run_three_ways(kind, opts, dtype, rng, layout)
    for name in gpu:
        for i, (a, r) in enumerate(zip(gpu[name], ref[name])):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, r, **OPT_TOL[dtype], err_msg=f"{name}[{i}]")
    # No FMA contraction on either side, IEEE sqrt and division: the same bits as the CPU.
    assert_bitwise(gpu, cpu)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,opts", [CASES[1], CASES[5], CASES[6], CASES[9]],
                         ids=[CASE_IDS[1], CASE_IDS[5], CASE_IDS[6], CASE_IDS[9]])
def test_grad_scale_and_penalties(kind, opts, dtype, rng):
    l1 = [0.01, 0.0, 0.02, 0.005, 0.001, 0.0, 0.003]
    l2 = [0.003] * len(SHAPES)
    gpu, cpu, ref = run_three_ways(kind, opts, dtype, rng, grad_scale=0.37, l1=l1, l2=l2)
    for name in gpu:
        for i, (a, r) in enumerate(zip(gpu[name], ref[name])):
            np.testing.assert_allclose(a, r, **OPT_TOL[dtype], err_msg=f"{name}[{i}]")
    assert_bitwise(gpu, cpu)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_many_tensors_take_several_launches(dtype, rng):
    """300 tensors (three tables of at most 128), sizes 1..40 plus two multi-chunk ones."""
    shapes = [(int(n),) for n in rng.integers(1, 41, 298)] + [(20000,), (9,)]
    gpu, cpu, ref = run_three_ways("adam", CASES[5][1], dtype, rng, shapes=shapes)
    assert_bitwise(gpu, cpu)
    for a, r in zip(gpu["params"], ref["params"]):
        np.testing.assert_allclose(a, r, **OPT_TOL[dtype])


@needs_gpu
def test_empty_tensors_and_empty_list(rng):
    m = mod()
    p = dev(np.ones(5, np.float32))
    g = dev(np.ones(5, np.float32))
    e = torch.empty(0, dtype=torch.float32, device="cuda")
    m.sgd_step("float32", [], [], None, [], None, None, 0.1, 0.0, 0.0, False, 0.0, True)
    m.sgd_step("float32", [e.data_ptr(), p.data_ptr()], [e.data_ptr(), g.data_ptr()], None,
               [0, 5], None, None, 0.5, 0.0, 0.0, False, 0.0, True)
    assert np.array_equal(host(p), np.full(5, 0.5, np.float32))


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_device_grad_scale_applies_the_clip(dtype, rng):
    """A step reading its grad scale from global_norm's coefficient equals the CPU step with
    grad_scale = 0.5 * coef (the same double, rounded once)."""
    m = mod()
    shapes = [(300,), (17, 3), (9000,)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [rng.standard_normal(s).astype(dtype) * 10 for s in shapes]
    dp, dg = [dev(p) for p in params], [dev(g) for g in grads]
    sizes = [g.size for g in grads]
    partials = torch.empty(m.global_norm_partials(sizes), dtype=torch.float64, device="cuda")
    out = torch.empty(2, dtype=torch.float64, device="cuda")
    m.global_norm(NAME[dtype], ptrs(dg), sizes, 1.0, partials.data_ptr(), partials.numel(),
                  out.data_ptr())
    norm, coef = host(out)
    assert coef < 1.0
    gpu_step("sgd", dp, dg, {}, 1, dict(lr=0.1), grad_scale=0.5, scale_ptr=out.data_ptr() + 8)
    ops.sgd_step(params, grads, lr=0.1, grad_scale=0.5 * float(coef))
    assert_bitwise({"params": [host(t) for t in dp]}, {"params": params})


# ------------------------------------------------------------------ norms and clipping
def gpu_norm(tensors, dtype, max_norm=float("inf")):
    m = mod()
    dts = [dev(t) for t in tensors]
    sizes = [t.size for t in tensors]
    cap = m.global_norm_partials(sizes)
    partials = torch.empty(max(cap, 1), dtype=torch.float64, device="cuda")
    out = torch.empty(2, dtype=torch.float64, device="cuda")
    m.global_norm(NAME[dtype], ptrs(dts), sizes, max_norm, partials.data_ptr(), cap,
                  out.data_ptr())
    return dts, out, host(out)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_global_norm_against_oracle_and_deterministic(dtype, rng):
    tensors = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    tensors += [rng.standard_normal(int(n)).astype(dtype) for n in rng.integers(1, 50, 200)]
    _, _, (norm, coef) = gpu_norm(tensors, dtype)
    assert coef == 1.0
    np.testing.assert_allclose(norm, oracle.global_norm(tensors), rtol=1e-12)
    for _ in range(3):
        assert gpu_norm(tensors, dtype)[2][0] == norm, "global_norm is not deterministic"


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_in_place_matches_cpu(dtype, rng):
    m = mod()
    grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    dts, out, (norm, coef) = gpu_norm(grads, dtype, max_norm=2.0)
    ref_norm, ref_clipped = oracle.clip_grad_norm(grads, 2.0)
    np.testing.assert_allclose(norm, ref_norm, rtol=1e-12)
    np.testing.assert_allclose(coef, 2.0 / (ref_norm + 1e-6), rtol=1e-12)
    m.scale_tensors(NAME[dtype], ptrs(dts), [g.size for g in grads], 1.0, out.data_ptr() + 8)
    cpu = [g.copy() for g in grads]
    cpu_norm = ops.clip_grad_norm(cpu, 2.0)
    assert cpu_norm == norm or np.isclose(cpu_norm, norm, rtol=1e-13)
    for i, (t, c, r) in enumerate(zip(dts, cpu, ref_clipped)):
        np.testing.assert_allclose(host(t), r, rtol=1e-6 if dtype == np.float32 else 1e-12)
        if cpu_norm == norm:  # the same coefficient: the same bits
            assert np.array_equal(host(t), c), f"grads[{i}]"


@needs_gpu
def test_non_finite_norm_leaves_coefficient_one():
    x = np.ones(10, np.float32)
    x[3] = np.inf
    _, _, (norm, coef) = gpu_norm([x, np.ones(3, np.float32)], np.float32, max_norm=1.0)
    assert np.isinf(norm) and coef == 1.0
    x[3] = np.nan
    _, _, (norm, coef) = gpu_norm([x], np.float32, max_norm=1.0)
    assert np.isnan(norm) and coef == 1.0


# ------------------------------------------------------------------ batch norm
BN_SHAPES = [(2, 1), (3, 7), (9, 9), (17, 15), (31, 32), (7, 33), (65, 40), (1000, 1100),
             (100000, 3), (3, 5000), (4097, 70)]
BN_TOL = {np.float32: 2e-6, np.float64: 1e-11}


def close(got, ref, dtype, what, tol=None):
    got = np.asarray(got, np.float64)
    scale = max(np.max(np.abs(ref)), 1.0) if ref.size else 1.0
    err = np.max(np.abs(got - ref)) / scale if ref.size else 0.0
    assert err < (tol or BN_TOL[dtype]), f"{what}: max error {err:.3g} (relative to {scale:.3g})"


def make_bn(rng, n, f, dtype, affine=True):
    x = rng.uniform(-3, 3, f) + rng.uniform(0.1, 4, f) * rng.standard_normal((n, f))
    gamma = rng.uniform(0.5, 2, f).astype(dtype) if affine else None
    beta = rng.standard_normal(f).astype(dtype) if affine else None
    return x.astype(dtype), gamma, beta


def workspace(n, f):
    nbytes = mod().batch_norm_workspace_bytes(n, f)
    return torch.empty(max(nbytes // 8, 1), dtype=torch.float64, device="cuda"), nbytes


def dptr(t):
    return 0 if t is None else t.data_ptr()


def gpu_bn_train(x, gamma, beta, rm, rv, momentum=0.1, eps=1e-5):
    n, f = x.shape
    tdt = torch.from_numpy(x[:0]).dtype
    dx, dgm, dbt = dev(x), (dev(gamma) if gamma is not None else None), (dev(beta) if beta is not None else None)
    drm = dev(rm) if rm is not None else None
    drv = dev(rv) if rv is not None else None
    y = torch.empty((n, f), dtype=tdt, device="cuda")
    sm = torch.empty(f, dtype=tdt, device="cuda")
    si = torch.empty(f, dtype=tdt, device="cuda")
    ws, nbytes = workspace(n, f)
    mod().batch_norm_train(NAME[x.dtype.type], dx.data_ptr(), n, f, dptr(dgm), dptr(dbt), dptr(drm),
                           dptr(drv), momentum, eps, y.data_ptr(), sm.data_ptr(), si.data_ptr(),
                           ws.data_ptr(), nbytes)
    return (host(y), host(sm), host(si), host(drm) if drm is not None else None,
            host(drv) if drv is not None else None)


@needs_gpu
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_training_forward(dtype, affine, rng):
    for n, f in BN_SHAPES:
        x, gamma, beta = make_bn(rng, n, f, dtype, affine)
        rm = rng.standard_normal(f).astype(dtype)
        rv = rng.uniform(0.5, 2, f).astype(dtype)
        y, sm, si, nrm, nrv = gpu_bn_train(x, gamma, beta, rm, rv, 0.1, 1e-5)
        ref = oracle.batch_norm_train(x, gamma, beta, rm, rv, 0.1, 1e-5)
        assert y.dtype == sm.dtype == si.dtype == dtype
        close(y, ref[0], dtype, f"y {n}x{f}")
        close(sm, ref[1], dtype, f"save_mean {n}x{f}")
        np.testing.assert_allclose(si, ref[2], rtol=BN_TOL[dtype], err_msg=f"save_invstd {n}x{f}")
        close(nrm, ref[3], dtype, f"running_mean {n}x{f}")
        close(nrv, ref[4], dtype, f"running_var {n}x{f}")
        # Deterministic: the same bits on a second run.
        again = gpu_bn_train(x, gamma, beta, rm, rv, 0.1, 1e-5)
        assert all(np.array_equal(a, b) for a, b in zip((y, sm, si, nrm, nrv), again))


@needs_gpu
def test_batch_norm_without_running_stats_and_large_offset(rng):
    x = 1e4 + rng.standard_normal((5000, 6))
    y, sm, si, _, _ = gpu_bn_train(x, None, None, None, None)
    ref = oracle.batch_norm_train(x, None, None, None, None, 0.1, 1e-5)
    np.testing.assert_allclose(si, ref[2], rtol=1e-10)
    np.testing.assert_allclose(y, ref[0], rtol=0, atol=1e-10)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_constant_column(dtype):
    x = np.full((6, 3), 2.5, dtype)
    beta = np.array([1.0, -2.0, 0.5], dtype)
    y, _, si, _, _ = gpu_bn_train(x, np.ones(3, dtype), beta, None, None)
    assert np.all(np.isfinite(y)) and np.array_equal(y, np.tile(beta, (6, 1)))
    np.testing.assert_allclose(si, 1 / np.sqrt(1e-5), rtol=1e-6)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_inference(dtype, rng):
    for n, f in BN_SHAPES + [(0, 5)]:
        x, gamma, beta = make_bn(rng, n, f, dtype)
        rm = rng.standard_normal(f).astype(dtype)
        rv = rng.uniform(0.5, 2, f).astype(dtype)
        dx, drm, drv = dev(x), dev(rm), dev(rv)
        y = torch.empty((n, f), dtype=dx.dtype, device="cuda")
        ws, nbytes = workspace(n, f)
        mod().batch_norm_infer(NAME[dtype], dx.data_ptr(), n, f, dev(gamma).data_ptr(),
                               dev(beta).data_ptr(), drm.data_ptr(), drv.data_ptr(), 1e-5,
                               y.data_ptr(), ws.data_ptr(), nbytes)
        close(host(y), oracle.batch_norm_infer(x, gamma, beta, rm, rv, 1e-5), dtype, f"{n}x{f}")
        assert np.array_equal(host(drm), rm) and np.array_equal(host(drv), rv)


@needs_gpu
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_backward(dtype, affine, rng):
    for n, f in BN_SHAPES:
        x, gamma, _ = make_bn(rng, n, f, dtype, affine)
        dy = rng.standard_normal((n, f)).astype(dtype)
        _, mean, invstd, _, _ = oracle.batch_norm_train(x, None, None, None, None, 0.1, 1e-5)
        mean, invstd = mean.astype(dtype), invstd.astype(dtype)
        ddy, dxx = dev(dy), dev(x)
        ddx = torch.empty_like(dxx)
        dgam = torch.empty(f, dtype=dxx.dtype, device="cuda")
        dbet = torch.empty(f, dtype=dxx.dtype, device="cuda")
        ws, nbytes = workspace(n, f)
        mod().batch_norm_backward(NAME[dtype], ddy.data_ptr(), dxx.data_ptr(), n, f,
                                  dev(gamma).data_ptr() if affine else 0, dev(mean).data_ptr(),
                                  dev(invstd).data_ptr(), ddx.data_ptr(), dgam.data_ptr(),
                                  dbet.data_ptr(), ws.data_ptr(), nbytes)
        ref_dx, ref_dg, ref_db = oracle.batch_norm_grad(dy, x, gamma, mean, invstd)
        # dx is a difference of O(1) terms: its error is relative to them, not to dx.
        tol = {np.float32: 2e-5, np.float64: 1e-10}[dtype]
        close(host(ddx), ref_dx, dtype, f"dx {n}x{f}", tol)
        close(host(dgam), ref_dg, dtype, f"dgamma {n}x{f}", tol * max(1.0, np.sqrt(n)))
        close(host(dbet), ref_db, dtype, f"dbeta {n}x{f}", tol * max(1.0, np.sqrt(n)))
        # The CPU kernel on the same inputs.
        cdx, cdg, cdb = ops.batch_norm_grad(dy, x, gamma, mean, invstd)
        close(host(ddx), cdx.astype(np.float64), dtype, f"dx vs CPU {n}x{f}", tol)


# ------------------------------------------------------------------ reductions
RED_SHAPES = [(1, 1), (1, 9), (7, 1), (8, 8), (9, 15), (16, 17), (31, 32), (33, 7), (1000, 1100),
              (100000, 3), (3, 5000), (0, 4), (70000, 33)]


def gpu_sum_rows(x, mean):
    n, f = x.shape
    m = mod()
    nbytes = m.column_sums_workspace_bytes(n, f)
    ws = torch.empty(max(nbytes // 8, 1), dtype=torch.float64, device="cuda")
    dx = dev(x)
    out = torch.empty(f, dtype=dx.dtype, device="cuda")
    m.sum_rows(NAME[x.dtype.type], dx.data_ptr(), n, f, out.data_ptr(), mean, ws.data_ptr(), nbytes)
    return host(out)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_and_mean_rows(dtype, rng):
    for n, f in RED_SHAPES:
        x = (rng.standard_normal((n, f)) + rng.uniform(-5, 5, f)).astype(dtype)
        ref = np.array([math.fsum(c) for c in x.astype(np.float64).T]) if n else np.zeros(f)
        tol = {np.float32: 1e-6, np.float64: 1e-12}[dtype]
        s = gpu_sum_rows(x, False)
        assert s.dtype == dtype and s.shape == (f,)
        np.testing.assert_allclose(s, ref, rtol=tol, atol=tol * max(n, 1), err_msg=f"{n}x{f}")
        assert np.array_equal(s, gpu_sum_rows(x, False)), "sum_rows is not deterministic"
        if n:
            np.testing.assert_allclose(gpu_sum_rows(x, True), ref / n, rtol=tol, atol=tol,
                                       err_msg=f"mean {n}x{f}")


def tied(rng, shape, dtype):
    """Small integers (many ties) with NaN and infinities sprinkled in."""
    x = rng.integers(-3, 4, shape).astype(dtype)
    for value in (np.nan, np.inf, -np.inf):
        x[rng.random(shape) < 0.02] = value
    return x


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_argmax_rows(dtype, rng):
    for n, f in [s for s in RED_SHAPES if s[1] > 0]:
        for x in (tied(rng, (n, f), dtype), rng.standard_normal((n, f)).astype(dtype)):
            dx = dev(x)
            idx = torch.empty(n, dtype=torch.int64, device="cuda")
            mod().argmax_rows(NAME[dtype], dx.data_ptr(), n, f, idx.data_ptr())
            assert np.array_equal(host(idx), oracle.argmax_rows(x)), f"{n}x{f}"
    x = np.array([[1, 3, 3, 2], [np.nan, 5, np.nan, 1], [1, 2, np.nan, 9],
                  [-np.inf, -np.inf, -np.inf, -np.inf], [np.inf, 1, np.inf, 0]], dtype)
    idx = torch.empty(5, dtype=torch.int64, device="cuda")
    mod().argmax_rows(NAME[dtype], dev(x).data_ptr(), 5, 4, idx.data_ptr())
    assert host(idx).tolist() == [1, 0, 2, 0, 0]


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_count_correct(dtype, rng):
    for n, c in [(1, 1), (7, 3), (1000, 10), (100000, 7), (300, 2000), (0, 5)]:
        scores = tied(rng, (n, c), dtype)
        labels = rng.integers(0, c, n).astype(np.int64)
        out = torch.empty(2, dtype=torch.int64, device="cuda")
        mod().count_correct(NAME[dtype], dev(scores).data_ptr(), dev(labels).data_ptr(), n, c,
                            out.data_ptr())
        correct, bad = host(out).tolist()
        assert bad == 0
        assert correct == int(np.sum(oracle.argmax_rows(scores) == labels)) if n else correct == 0
        if n:
            assert correct == ops.count_correct(scores, labels)
    labels = np.array([0, 5, -1, 3], np.int64)  # right, out of range, out of range, right
    scores = np.eye(4, 5, dtype=dtype)
    out = torch.empty(2, dtype=torch.int64, device="cuda")
    mod().count_correct(NAME[dtype], dev(scores).data_ptr(), dev(labels).data_ptr(), 4, 5,
                        out.data_ptr())
    assert host(out).tolist() == [2, 2]


# ------------------------------------------------------------------ argument checks (no GPU needed)
@needs_build
def test_workspace_sizes_and_bad_arguments():
    from fastnn import _cuda as m

    assert m.global_norm_partials([]) == 0
    assert m.global_norm_partials([1, 8192, 8193, 0]) == 4
    assert m.column_sums_workspace_bytes(0, 5) == 0
    assert m.batch_norm_workspace_bytes(10, 0) == 0
    assert m.batch_norm_workspace_bytes(100, 10) >= 8 * 3 * 10
    # The bindings' own checks, which come before any device call: arrays described as CUDA
    # tensors (never read), host arrays refused.
    f32 = _FakeCudaArray((4, 3), "<f4")
    with pytest.raises(TypeError, match="x: expected float32 or float64, got int8"):
        m.argmax_rows(_FakeCudaArray((2, 2), "|i1"))
    with pytest.raises(TypeError, match="x: expected a fastnn.Tensor on a CUDA device"):
        m.sum_rows(np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError, match=r"tensors\[1\]: expected dtype float32"):
        m.scale_tensors([f32, _FakeCudaArray((3,), "<f8")], 1.0)
    with pytest.raises(ValueError, match="grads: expected one array per param"):
        m.sgd_step([f32, f32], [f32], None, [0.0, 0.0], [0.0, 0.0], 0.1, 0.0, 0.0, False, 0.0,
                   True, 1.0)
    with pytest.raises(ValueError, match="momentum_buffers"):
        m.sgd_step([f32], [f32], None, [0.0], [0.0], 0.1, 0.9, 0.0, False, 0.0, True, 1.0)
    with pytest.raises(ValueError, match="step"):
        m.adam_step([f32], [f32], [f32], [f32], None, [0.0], [0.0], 0, 1e-3, 0.9, 0.999, 1e-8,
                    0.0, False, 1.0)
    with pytest.raises(ValueError, match="x: expected a 2-D array"):
        m.batch_norm_train(_FakeCudaArray((3,), "<f4"), None, None, None, None, 0.1, 1e-5)
    with pytest.raises(ValueError, match="running_mean: expected shape"):
        m.batch_norm_infer(f32, None, None, _FakeCudaArray((4,), "<f4"), None, 1e-5)


class _FakeCudaArray:
    """Describes a CUDA array through __cuda_array_interface__ without owning memory: for
    argument checks that fire before any device call."""

    def __init__(self, shape, typestr):
        self.device = "cuda:0"
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "data": (8, False),
                                         "strides": None, "version": 3}
