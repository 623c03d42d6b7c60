"""The CUDA optimizer steps, global norm and clipping against the float64 oracle and, bit for
bit, against the CPU kernels on the same inputs, through fastnn.ops on CUDA tensors.

Kernel geometry the shapes aim at: the optimizers cut every tensor into chunks of 8192 elements
(100003 spans 13, 8193 two) and pack at most 128 tensors per launch (300 tensors take three);
128-bit accesses when a tensor's arrays are 16-byte aligned, scalar ones otherwise (the
"offset" layout)."""

import numpy as np
import pytest

import oracle
from check import tol
from fastnn import ops
from gpu import backend, dev, host, misaligned, needs_gpu, needs_module
# The step, the state and the float64 reference of each optimizer, shared with the CPU tests.
from test_optim import fastnn_step, initial_state, oracle_step, state_names

SHAPES = [(1,), (7,), (3, 11), (1000,), (8192,), (8193,), (100003,)]
STEPS = 3
DTYPES = [np.float32, np.float64]

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


def on_device(arrays, layout):
    """Device copies: separate allocations ("aligned") or one buffer, off the 16-byte grid."""
    return [dev(a) for a in arrays] if layout == "aligned" else misaligned(arrays)


def run_three_ways(kind, opts, dtype, rng, layout="aligned", shapes=SHAPES, grad_scale=1.0,
                   l1=None, l2=None):
    """STEPS steps on the GPU, on the CPU kernels and in the oracle from the same start."""
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    names = state_names(kind, opts)
    state = {n: [initial_state(kind, n, p) for p in params] for n in names}
    dp = on_device(params, layout)
    dst = {n: on_device(state[n], layout) for n in names}
    ref_p = [p.astype(np.float64) for p in params]
    ref_st = [{n: state[n][i].astype(np.float64) for n in names} for i in range(len(params))]
    l1s = l1 if l1 is not None else [0.0] * len(params)
    l2s = l2 if l2 is not None else [0.0] * len(params)
    for step in range(1, STEPS + 1):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        fastnn_step(kind, dp, on_device(grads, layout), dst, step, opts, grad_scale=grad_scale,
                    l1=l1, l2=l2)
        fastnn_step(kind, params, grads, state, step, opts, grad_scale=grad_scale, l1=l1, l2=l2)
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


def assert_near_oracle(gpu, ref, dtype):
    for name in gpu:
        for i, (a, r) in enumerate(zip(gpu[name], ref[name])):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, r, **tol("optim", dtype), err_msg=f"{name}[{i}]")


@needs_gpu
@pytest.mark.parametrize("layout", ["aligned", "offset"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,opts", CASES, ids=CASE_IDS)
def test_step_against_oracle_and_cpu(kind, opts, dtype, layout, rng):
    gpu, cpu, ref = run_three_ways(kind, opts, dtype, rng, layout)
    assert_near_oracle(gpu, ref, dtype)
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
    assert_near_oracle(gpu, ref, dtype)
    assert_bitwise(gpu, cpu)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_many_tensors_take_several_launches(dtype, rng):
    """300 tensors (three tables of at most 128), sizes 1..40 plus two multi-chunk ones."""
    shapes = [(int(n),) for n in rng.integers(1, 41, 298)] + [(20000,), (9,)]
    gpu, cpu, ref = run_three_ways("adam", CASES[5][1], dtype, rng, shapes=shapes)
    assert_bitwise(gpu, cpu)
    for a, r in zip(gpu["params"], ref["params"]):
        np.testing.assert_allclose(a, r, **tol("optim", dtype))


@needs_gpu
def test_empty_tensors_and_empty_list():
    p = dev(np.ones(5, np.float32))
    g = dev(np.ones(5, np.float32))
    e = dev(np.zeros(0, np.float32))
    backend().sgd_step([], [], None, [], [], True, 1.0, lr=0.1, momentum=0.0, dampening=0.0,
                       weight_decay=0.0, nesterov=False)
    ops.sgd_step([e, p], [e, g], lr=0.5)
    assert np.array_equal(host(p), np.full(5, 0.5, np.float32))


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_clipped_step_matches_cpu(dtype, rng):
    """Clip on the device (the coefficient stays there), then step: the CPU's clip and step on
    the same data give the same bits."""
    shapes = [(300,), (17, 3), (9000,)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [rng.standard_normal(s).astype(dtype) * 10 for s in shapes]
    dp, dg = [dev(p) for p in params], [dev(g) for g in grads]
    norm = ops.clip_grad_norm(dg, 1.0)
    assert norm == ops.clip_grad_norm(grads, 1.0) and norm > 1.0
    ops.sgd_step(dp, dg, lr=0.1, grad_scale=0.5)
    ops.sgd_step(params, grads, lr=0.1, grad_scale=0.5)
    assert_bitwise({"params": [host(t) for t in dp]}, {"params": params})


# ------------------------------------------------------------------ norms and clipping
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_global_norm_against_oracle_and_deterministic(dtype, rng):
    tensors = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    tensors += [rng.standard_normal(int(n)).astype(dtype) for n in rng.integers(1, 50, 200)]
    dts = [dev(t) for t in tensors]
    norm = ops.global_norm(dts)
    np.testing.assert_allclose(norm, oracle.global_norm(tensors), rtol=1e-12)
    for _ in range(3):
        assert ops.global_norm(dts) == norm, "global_norm is not deterministic"


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_in_place_matches_cpu(dtype, rng):
    grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    dts = [dev(g) for g in grads]
    norm = ops.clip_grad_norm(dts, 2.0)
    ref_norm, ref_clipped = oracle.clip_grad_norm(grads, 2.0)
    np.testing.assert_allclose(norm, ref_norm, rtol=1e-12)
    cpu = [g.copy() for g in grads]
    cpu_norm = ops.clip_grad_norm(cpu, 2.0)
    assert cpu_norm == norm or np.isclose(cpu_norm, norm, rtol=1e-13)
    for i, (t, c, r) in enumerate(zip(dts, cpu, ref_clipped)):
        np.testing.assert_allclose(host(t), r, rtol=1e-6 if dtype == np.float32 else 1e-12)
        if cpu_norm == norm:  # the same coefficient: the same bits
            assert np.array_equal(host(t), c), f"grads[{i}]"


@needs_gpu
def test_non_finite_norm_leaves_the_gradients():
    x = np.ones(10, np.float32)
    x[3] = np.inf
    dts = [dev(x), dev(np.ones(3, np.float32))]
    assert np.isinf(ops.clip_grad_norm(dts, 1.0))
    assert np.array_equal(host(dts[1]), np.ones(3, np.float32)), "scaled by a non-finite norm"
    x[3] = np.nan
    dts = [dev(x)]
    assert np.isnan(ops.clip_grad_norm(dts, 1.0))
    assert np.array_equal(host(dts[0]), x, equal_nan=True)


# ------------------------------------------------------------------ argument checks
@needs_gpu
def test_bad_arguments():
    """fastnn._cuda with the arguments of fastnn._C: the checks the CUDA bindings make."""
    m = backend()
    t = dev(np.ones(5, np.float32))
    with pytest.raises(ValueError, match="grads"):
        m.sgd_step([t, t], [t], None, [0.0, 0.0], [0.0, 0.0], 0.1, 0.0, 0.0, False, 0.0, True, 1.0)
    with pytest.raises(ValueError, match="lacks state|exp_avg"):
        m.adam_step([t], [t], [], [], None, [0.0], [0.0], 1, 1e-3, 0.9, 0.999, 1e-8, 0.0, False,
                    1.0)
    with pytest.raises(ValueError, match="step"):
        m.adam_step([], [], [], [], None, [], [], 0, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 1.0)


@needs_module
def test_workspace_sizes():
    """The raw workspace queries of fastnn._cuda (no GPU needed)."""
    from fastnn import _cuda as m

    if not hasattr(m, "global_norm_partials"):
        pytest.skip("fastnn._cuda allocates its workspaces itself")
    assert m.global_norm_partials([]) == 0
    assert m.global_norm_partials([1, 8192, 8193, 0]) == 4
    assert m.column_sums_workspace_bytes(0, 5) == 0
    assert m.batch_norm_workspace_bytes(10, 0) == 0
    assert m.batch_norm_workspace_bytes(100, 10) >= 8 * 3 * 10
