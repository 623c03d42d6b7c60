"""fastnn.ops fused optimizer steps (SGD, Adam/AdamW, Adagrad, RMSprop), global_norm and
clip_grad_norm: several steps over lists of mixed-size tensors against the float64 oracle, against
torch.optim itself when torch is importable, across thread counts, with grad_scale and L1/L2
folding, and on bad input.

The kernels cut every tensor into chunks of 2**15 elements and go parallel from 2**16 elements in
all: the 100003-element tensor spans four chunks, the small ones one chunk each. The loops are
compiled per SIMD path (scalar/AVX2/AVX-512); the paths must agree bit for bit."""

import itertools

import numpy as np
import pytest

import fastnn
from fastnn import ops

import oracle
from check import assert_norm_close, tol

SHAPES = [(1,), (7,), (3, 11), (1000,), (100003,)]
DTYPES = [np.float32, np.float64]
# float32 updates are computed in float32 (as torch does): a few roundings per step, which an
# ill-conditioned element (centered RMSprop's sq - grad_avg**2 when they nearly cancel) can
# amplify. So each array is held to a tight relative error in norm, and each element to a
# looser one that still catches a wrong formula. The norm is floored at 0.1 per element (the
# values are O(1)): a one-element array near 0 would otherwise turn a float32 rounding into a
# large relative error (it did, about one run in eight).
STEPS = 3

# What each optimizer keeps per tensor, given its options, and how the state starts.
def state_names(kind, opts):
    if kind == "sgd":
        return ["momentum_buffers"] if opts.get("momentum", 0) else []
    if kind == "adam":
        return ["exp_avgs", "exp_avg_sqs"] + (["max_exp_avg_sqs"] if opts.get("amsgrad") else [])
    if kind == "adagrad":
        return ["state_sums"]
    names = ["square_avgs"]
    if opts.get("momentum", 0):
        names.append("momentum_buffers")
    if opts.get("centered"):
        names.append("grad_avgs")
    return names


def initial_state(kind, name, p):
    if kind == "sgd":
        return np.full_like(p, np.nan)  # step 1 must ignore the old buffer: poison it
    if kind == "adagrad":
        return np.full_like(p, 0.1)  # torch's initial_accumulator_value
    return np.zeros_like(p)


# ------------------------------------------------------------------ harness
def fastnn_step(kind, params, grads, state, step, opts, **extra):
    if kind == "sgd":
        ops.sgd_step(params, grads, step=step, **state, **opts, **extra)
    elif kind == "adam":
        ops.adam_step(params, grads, step=step, **state, **opts, **extra)
    elif kind == "adagrad":
        ops.adagrad_step(params, grads, step=step, **state, **opts, **extra)
    else:
        ops.rmsprop_step(params, grads, **state, **opts, **extra)


def oracle_step(kind, p, g, st, step, opts):
    """(new p, new state dict) for one tensor; st maps state names to float64 arrays."""
    if kind == "sgd":
        p, buf = oracle.sgd_step(p, g, st.get("momentum_buffers"), step, **opts)
        return p, ({"momentum_buffers": buf} if "momentum_buffers" in st else {})
    if kind == "adam":
        p, m, v, vmax = oracle.adam_step(p, g, st["exp_avgs"], st["exp_avg_sqs"],
                                         st.get("max_exp_avg_sqs"), step, **opts)
        new = {"exp_avgs": m, "exp_avg_sqs": v}
        if "max_exp_avg_sqs" in st:
            new["max_exp_avg_sqs"] = vmax
        return p, new
    if kind == "adagrad":
        p, s = oracle.adagrad_step(p, g, st["state_sums"], step, **opts)
        return p, {"state_sums": s}
    p, sq, buf, ga = oracle.rmsprop_step(p, g, st["square_avgs"], st.get("momentum_buffers"),
                                         st.get("grad_avgs"), **opts)
    new = {"square_avgs": sq}
    if "momentum_buffers" in st:
        new["momentum_buffers"] = buf
    if "grad_avgs" in st:
        new["grad_avgs"] = ga
    return p, new


def make_problem(kind, opts, dtype, rng, shapes=SHAPES):
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    state = {n: [initial_state(kind, n, p) for p in params] for n in state_names(kind, opts)}
    return params, state


def check_against_oracle(kind, opts, dtype, rng, grad_scale=1.0, l1=None, l2=None,
                         shapes=SHAPES):
    params, state = make_problem(kind, opts, dtype, rng, shapes)
    ref_p = [p.astype(np.float64) for p in params]
    ref_st = [{n: state[n][i].astype(np.float64) for n in state} for i in range(len(params))]
    l1s = l1 if isinstance(l1, list) else [l1 or 0.0] * len(params)
    l2s = l2 if isinstance(l2, list) else [l2 or 0.0] * len(params)
    for step in range(1, STEPS + 1):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        fastnn_step(kind, params, grads, state, step, opts, grad_scale=grad_scale, l1=l1, l2=l2)
        for i, g in enumerate(grads):
            geff = oracle.penalized_grad(ref_p[i], g, grad_scale, l1s[i], l2s[i])
            ref_p[i], ref_st[i] = oracle_step(kind, ref_p[i], geff, ref_st[i], step, opts)
    for i, p in enumerate(params):
        assert p.dtype == dtype and p.shape == shapes[i]
        close(p, ref_p[i], dtype, f"params[{i}]")
        for n in state:
            close(state[n][i], ref_st[i][n], dtype, f"{n}[{i}]")


def close(got, ref, dtype, what):
    assert_norm_close(got, ref, tol("optim_norm", dtype), what, floor=0.1 * np.sqrt(ref.size))
    np.testing.assert_allclose(got, ref, **tol("optim", dtype), err_msg=what)


# ------------------------------------------------------------------ option combinations
SGD_OPTS = [
    dict(lr=0.1),
    dict(lr=0.1, weight_decay=0.05),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05),
    dict(lr=0.1, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.5, nesterov=True, weight_decay=0.05),
]
ADAM_OPTS = [dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=wd, decoupled=dec,
                  amsgrad=ams)
             for wd, dec, ams in itertools.product([0.0, 0.1], [False, True], [False, True])]
ADAGRAD_OPTS = [dict(lr=0.1, lr_decay=lrd, weight_decay=wd, eps=1e-10)
                for lrd, wd in itertools.product([0.0, 0.1], [0.0, 0.1])]
RMSPROP_OPTS = [dict(lr=1e-2, alpha=0.9, eps=1e-8, weight_decay=wd, momentum=mom, centered=c)
                for wd, mom, c in itertools.product([0.0, 0.1], [0.0, 0.9], [False, True])]
CASES = ([("sgd", o) for o in SGD_OPTS] + [("adam", o) for o in ADAM_OPTS]
         + [("adagrad", o) for o in ADAGRAD_OPTS] + [("rmsprop", o) for o in RMSPROP_OPTS])
CASE_IDS = [f"{k}-" + "-".join(f"{n}={v}" for n, v in o.items() if n != "lr") for k, o in CASES]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,opts", CASES, ids=CASE_IDS)
def test_against_oracle(kind, opts, dtype, rng):
    check_against_oracle(kind, opts, dtype, rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,opts", [("sgd", SGD_OPTS[3]), ("adam", ADAM_OPTS[7]),
                                       ("adagrad", ADAGRAD_OPTS[3]), ("rmsprop", RMSPROP_OPTS[7])])
def test_grad_scale_and_penalties(kind, opts, dtype, rng):
    l1 = [0.01, 0.0, 0.02, 0.005, 0.001]  # per tensor, 0 as for a bias
    check_against_oracle(kind, opts, dtype, rng, grad_scale=0.37, l1=l1, l2=0.003)


def test_adamw_step_is_decoupled_adam(rng):
    a, state_a = make_problem("adam", {}, np.float64, rng)
    b = [p.copy() for p in a]
    state_b = {n: [x.copy() for x in xs] for n, xs in state_a.items()}
    grads = [rng.standard_normal(p.shape) for p in a]
    ops.adamw_step(a, grads, state_a["exp_avgs"], state_a["exp_avg_sqs"], 1, lr=0.1)
    ops.adam_step(b, grads, state_b["exp_avgs"], state_b["exp_avg_sqs"], 1, lr=0.1,
                  weight_decay=1e-2, decoupled=True)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


def test_grad_scale_equals_scaled_grads(rng):
    """A power-of-two grad_scale is exact: it must give bit-identical results to scaled grads."""
    for kind, opts in [("sgd", SGD_OPTS[3]), ("adam", ADAM_OPTS[3]), ("rmsprop", RMSPROP_OPTS[7])]:
        a, sa = make_problem(kind, opts, np.float32, rng)
        b = [p.copy() for p in a]
        sb = {n: [x.copy() for x in xs] for n, xs in sa.items()}
        grads = [rng.standard_normal(p.shape).astype(np.float32) for p in a]
        fastnn_step(kind, a, grads, sa, 1, opts, grad_scale=0.25)
        fastnn_step(kind, b, [g * np.float32(0.25) for g in grads], sb, 1, opts)
        for x, y in zip(a, b):
            assert np.array_equal(x, y), kind


def test_penalty_gradient_by_finite_differences(rng):
    """SGD with lr=1 exposes the gradient it used: p - p_new = g + d/dp (l1 |p|_1 + l2 |p|^2),
    checked against central differences of the penalty (points kept away from |p| = 0)."""
    l1, l2, h = 0.03, 0.02, 1e-6
    p = rng.uniform(0.1, 2.0, 257) * rng.choice([-1.0, 1.0], 257)
    g = rng.standard_normal(257)
    new = p.copy()
    ops.sgd_step([new], [g], lr=1.0, l1=l1, l2=l2)

    def penalty(x):
        return l1 * np.abs(x) + l2 * x * x  # element-wise: its derivative is the gradient

    fd = (penalty(p + h) - penalty(p - h)) / (2 * h)
    np.testing.assert_allclose(p - new, g + fd, rtol=1e-8, atol=1e-9)


# ------------------------------------------------------------------ threads
@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_invariance(dtype, rng):
    """Every optimizer and the norm give bit-identical results with 1 and 2 threads."""
    before = fastnn.get_num_threads()
    try:
        for kind, opts in [("sgd", SGD_OPTS[5]), ("adam", ADAM_OPTS[7]),
                           ("adagrad", ADAGRAD_OPTS[3]), ("rmsprop", RMSPROP_OPTS[7])]:
            params, state = make_problem(kind, opts, dtype, rng)
            grads = [[rng.standard_normal(p.shape).astype(dtype) for p in params]
                     for _ in range(2)]
            results = []
            for threads in (1, 2):
                fastnn.set_num_threads(threads)
                p = [x.copy() for x in params]
                st = {n: [x.copy() for x in xs] for n, xs in state.items()}
                for step, gs in enumerate(grads, 1):
                    fastnn_step(kind, p, gs, st, step, opts, l1=0.01, l2=0.01)
                results.append((p, st))
            (p1, s1), (p2, s2) = results
            for x, y in zip(p1, p2):
                assert np.array_equal(x, y), kind
            for n in s1:
                for x, y in zip(s1[n], s2[n]):
                    assert np.array_equal(x, y), f"{kind} {n}"
        tensors = [rng.standard_normal(s).astype(dtype) for s in SHAPES + [(300001,)]]
        norms = []
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            norms.append(ops.global_norm(tensors))
        assert norms[0] == norms[1]
    finally:
        fastnn.set_num_threads(before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_simd_paths_agree(simd, dtype, rng):
    """The loops are compiled per instruction set without FMA contraction: every path must give
    the scalar path's bits (and so the oracle checks above hold for all of them)."""
    for kind, opts in [("sgd", SGD_OPTS[5]), ("adam", ADAM_OPTS[7]), ("adam", ADAM_OPTS[0]),
                       ("adagrad", ADAGRAD_OPTS[3]), ("rmsprop", RMSPROP_OPTS[7]),
                       ("rmsprop", RMSPROP_OPTS[0])]:
        shapes = [(1,), (7,), (8,), (9,), (15,), (16,), (17,), (31,), (32,), (33,), (100003,)]
        params, state = make_problem(kind, opts, dtype, rng, shapes)
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        results = []
        for path in (simd, "scalar"):
            fastnn.set_simd(path)
            p = [x.copy() for x in params]
            st = {n: [x.copy() for x in xs] for n, xs in state.items()}
            for step in (1, 2):
                fastnn_step(kind, p, grads, st, step, opts, grad_scale=0.7, l1=0.01, l2=0.02)
            results.append(p + [x for n in sorted(st) for x in st[n]])
            fastnn.set_simd(simd)
        for x, y in zip(*results):
            assert np.array_equal(x, y), f"{kind} {opts} on {simd}"
    tensors = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    norm = ops.global_norm(tensors)
    fastnn.set_simd("scalar")
    assert ops.global_norm(tensors) == norm
    fastnn.set_simd(simd)
    check_against_oracle("adam", ADAM_OPTS[5], dtype, rng)


# ------------------------------------------------------------------ norms and clipping
@pytest.mark.parametrize("dtype", DTYPES)
def test_global_norm(threads, dtype, rng):
    tensors = [(rng.standard_normal(s) * 10.0 ** rng.integers(-3, 3)).astype(dtype)
               for s in SHAPES + [(200, 701)]]
    got = ops.global_norm(tensors)
    assert isinstance(got, float)
    assert abs(got - oracle.global_norm(tensors)) <= 1e-12 * oracle.global_norm(tensors)
    assert ops.global_norm([]) == 0.0
    assert ops.global_norm(tensors[3]) == pytest.approx(oracle.global_norm([tensors[3]]), rel=1e-12)
    # Strided views are read as they are.
    view = tensors[-1][:, ::3]
    assert ops.global_norm([view]) == pytest.approx(oracle.global_norm([view]), rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("max_norm", [0.0, 1.0, 50.0, 1e9])
def test_clip_grad_norm(threads, dtype, max_norm, rng):
    grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    before = [g.copy() for g in grads]
    ref_norm, ref = oracle.clip_grad_norm(grads, max_norm)
    norm = ops.clip_grad_norm(grads, max_norm)
    assert norm == pytest.approx(ref_norm, rel=1e-12)
    for i, (g, r, b) in enumerate(zip(grads, ref, before)):
        close(g, r, dtype, f"grads[{i}]")
        if max_norm == 1e9:
            assert np.array_equal(g, b), "no clipping needed: gradients must be untouched"
    if max_norm > 0:
        assert oracle.global_norm(grads) <= max_norm * (1 + 1e-6)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_clip_grad_norm_non_finite(bad, rng):
    grads = [rng.standard_normal(10), rng.standard_normal(100003)]
    grads[1][12345] = bad
    before = [g.copy() for g in grads]
    norm = ops.clip_grad_norm(grads, 1.0)
    assert np.isnan(norm) if np.isnan(bad) else norm == np.inf
    for g, b in zip(grads, before):
        np.testing.assert_array_equal(g, b)


def test_empty_lists_and_tensors():
    ops.adam_step([], [], [], [], 1)
    p = np.zeros(0, np.float32)
    ops.sgd_step([p], [p.copy()], lr=0.1, momentum=0.9, momentum_buffers=[p.copy()])
    assert ops.clip_grad_norm([], 1.0) == 0.0


# ------------------------------------------------------------------ torch.optim itself
def torch_run(kind, opts, params, grads_per_step, initial_accumulator_value):
    torch = pytest.importorskip("torch")
    tparams = [torch.tensor(p.copy(), dtype=torch.float64, requires_grad=True) for p in params]
    o = dict(opts)
    if kind == "sgd":
        opt = torch.optim.SGD(tparams, **o)
    elif kind == "adam":
        decoupled = o.pop("decoupled")
        opt = (torch.optim.AdamW if decoupled else torch.optim.Adam)(tparams, **o)
    elif kind == "adagrad":
        opt = torch.optim.Adagrad(tparams, initial_accumulator_value=initial_accumulator_value,
                                  **o)
    else:
        opt = torch.optim.RMSprop(tparams, **o)
    for grads in grads_per_step:
        for t, g in zip(tparams, grads):
            t.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return [t.detach().numpy() for t in tparams]


@pytest.mark.parametrize("kind,opts", CASES, ids=CASE_IDS)
def test_against_torch(kind, opts, rng):
    pytest.importorskip("torch")
    shapes = SHAPES
    params, state = make_problem(kind, opts, np.float64, rng, shapes)
    grads_per_step = [[rng.standard_normal(s) for s in shapes] for _ in range(STEPS)]
    ref = torch_run(kind, opts, params, grads_per_step, 0.1)
    for step, grads in enumerate(grads_per_step, 1):
        fastnn_step(kind, params, grads, state, step, opts)
    for i, (p, r) in enumerate(zip(params, ref)):
        np.testing.assert_allclose(p, r, rtol=1e-10, atol=1e-12, err_msg=f"params[{i}]")


@pytest.mark.parametrize("max_norm", [0.5, 1e9])
def test_clip_against_torch(max_norm, rng):
    torch = pytest.importorskip("torch")
    grads = [rng.standard_normal(s) for s in SHAPES]
    tparams = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
    for t, g in zip(tparams, grads):
        t.grad = torch.tensor(g)
    ref_norm = float(torch.nn.utils.clip_grad_norm_(tparams, max_norm))
    norm = ops.clip_grad_norm(grads, max_norm)
    assert norm == pytest.approx(ref_norm, rel=1e-12)
    for g, t in zip(grads, tparams):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ bad input
def three(dtype=np.float32):
    p = [np.ones(5, dtype), np.ones((2, 3), dtype)]
    return p, [np.ones_like(x) for x in p], [np.zeros_like(x) for x in p]


def test_bad_input_types():
    p, g, s = three()
    with pytest.raises(TypeError, match="params: expected a list"):
        ops.sgd_step({"w": p[0]}, g, lr=0.1)
    with pytest.raises(TypeError, match=r"params\[1\]: expected float32 or float64, got int64"):
        ops.sgd_step([p[0], np.ones(6, np.int64)], g, lr=0.1)
    with pytest.raises(TypeError, match=r"grads\[0\]: expected dtype float32"):
        ops.sgd_step(p, [g[0].astype(np.float64), g[1]], lr=0.1)
    with pytest.raises(TypeError, match=r"exp_avgs\[1\]: expected a NumPy array"):
        ops.adam_step(p, g, [s[0], [0.0] * 6], s, 1)
    with pytest.raises(TypeError, match="step: expected an int"):
        ops.adam_step(p, g, s, [x.copy() for x in s], 1.5)
    with pytest.raises(TypeError, match="lr: expected a real number"):
        ops.sgd_step(p, g, lr="0.1")
    with pytest.raises(TypeError, match="l1: expected None, a number or a list"):
        ops.sgd_step(p, g, lr=0.1, l1="big")


def test_bad_input_values():
    p, g, s = three()
    s2 = [x.copy() for x in s]
    cases = [
        (lambda: ops.sgd_step(p, [g[0], np.ones(6, np.float32)], lr=0.1),
         r"grads\[1\]: expected shape \(2, 3\)"),
        (lambda: ops.sgd_step(p, g[:1], lr=0.1), "grads: expected 2 arrays"),
        (lambda: ops.sgd_step(p, g, lr=-0.1), "lr: expected a value >= 0"),
        (lambda: ops.sgd_step(p, g, lr=np.nan), "lr: expected a finite number"),
        (lambda: ops.sgd_step(p, g, lr=0.1, nesterov=True), "nesterov: needs momentum > 0"),
        (lambda: ops.sgd_step(p, g, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True,
                              momentum_buffers=s), "nesterov: needs momentum > 0 and dampening"),
        (lambda: ops.sgd_step(p, g, lr=0.1, momentum=0.9), "momentum_buffers: needed"),
        (lambda: ops.sgd_step(p, g, lr=0.1, weight_decay=np.inf),
         "weight_decay: expected a finite"),
        (lambda: ops.adam_step(p, g, s, s2, 0), r"step: expected the 1-based step count"),
        (lambda: ops.adam_step(p, g, s, s2, 1, betas=(1.0, 0.999)),
         r"betas\[0\]: expected a value in"),
        (lambda: ops.adam_step(p, g, s, s2, 1, betas=0.9), "betas: expected a pair"),
        (lambda: ops.adam_step(p, g, s, s2, 1, eps=-1e-8), "eps: expected a value >= 0"),
        (lambda: ops.adam_step(p, g, s, s2, 1, amsgrad=True), "max_exp_avg_sqs: needed"),
        (lambda: ops.adam_step(p, g, s, s, 1),
         r"exp_avg_sqs\[0\]: shares memory with exp_avgs\[0\]"),
        (lambda: ops.adam_step(p, g, s, s2, 1, grad_scale=np.nan), "grad_scale: expected a finite"),
        (lambda: ops.rmsprop_step(p, g, s, centered=True), "grad_avgs: needed"),
        (lambda: ops.rmsprop_step(p, g, s, momentum=0.5), "momentum_buffers: needed"),
        (lambda: ops.rmsprop_step(p, g, s, alpha=-0.5), "alpha: expected a value >= 0"),
        (lambda: ops.adagrad_step(p, g, s, 1, lr_decay=-1.0), "lr_decay: expected a value >= 0"),
        (lambda: ops.sgd_step(p, g, lr=0.1, l1=[0.1]), "l1: expected one value per param"),
        (lambda: ops.sgd_step(p, g, lr=0.1, l2=-0.1), "l2: expected penalty weights >= 0"),
        (lambda: ops.sgd_step(p, g, lr=0.1, l2=[0.0, np.nan]), r"l2\[1\]: expected a finite"),
        (lambda: ops.clip_grad_norm(g, np.nan), "max_norm: expected a finite"),
        (lambda: ops.clip_grad_norm(g, -1.0), "max_norm: expected a value >= 0"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    # A rejected call changes nothing.
    assert all(np.all(x == 1) for x in p) and all(np.all(x == 0) for x in s + s2)


def test_bad_layouts():
    p, g, s = three()
    strided = np.ones(10, np.float32)[::2]
    with pytest.raises(ValueError, match=r"params\[0\]: expected a C-contiguous array"):
        ops.sgd_step([strided, p[1]], g, lr=0.1)
    frozen = p[1].copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[1\]: array is read-only"):
        ops.sgd_step([p[0], frozen], g, lr=0.1)
    with pytest.raises(ValueError, match=r"exp_avgs\[1\]: array is read-only"):
        ops.adam_step(p, g, [s[0], frozen], [x.copy() for x in s], 1)
    # Gradients are only read: read-only ones are fine.
    g[0].flags.writeable = False
    ops.sgd_step(p, g, lr=0.5)
    np.testing.assert_array_equal(p[0], 0.5)
    with pytest.raises(ValueError, match=r"grads\[0\]: shares memory with params\[0\]"):
        ops.sgd_step(p, [p[0], g[1]], lr=0.1)
    with pytest.raises(ValueError, match=r"grads\[0\]: array is read-only"):
        ops.clip_grad_norm(g, 1.0)
