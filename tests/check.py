"""How a kernel's result is held against the float64 oracle (tests/oracle.py), in one place: the
tolerance table, the comparisons, NaN-poisoned outputs and `check_op`, which runs a kernel over
a list of shapes. The CPU and GPU tests of an op family share it, so a GPU kernel is held to the
bound of its CPU twin unless the table names its own (TF32, BF16)."""

import numpy as np

F32, F64 = np.float32, np.float64

# Sizes around the SIMD widths (8 and 16 floats), one, and large enough to run in parallel
# chunks (element-wise kernels go parallel from 2**16 elements in chunks of 2**14).
EDGE_SIZES = [1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 1000, 100003]

# Tolerance per op kind and dtype. Each bound is what the kernels are measured to meet with
# room to spare (the measurements are in the test module of each family); loosening one hides
# a regression, so a kernel that needs more gets a kind of its own here, with its reason.
TOL = {
    # |got - ref| <= rtol |ref| + atol, element by element. Measured max relative errors of the
    # AVX-512/AVX2 activations on 1.2M points: 4.3e-7 (gelu) and less; gradients 3.9e-7.
    "elementwise": {F32: 8e-7, F64: 1e-12},
    "elementwise_grad": {F32: 2e-6, F64: 1e-12},
    # The CUDA activations: CUDA's single-precision libm is within 1-4 ulp (expf 2, erfcf 4,
    # tanhf 2).
    "elementwise_gpu": {F32: 2e-6, F64: 1e-12},
    "elementwise_grad_gpu": {F32: 4e-6, F64: 1e-12},
    # Column sums accumulated in double: the only float32 error is the final rounding; the
    # bound is this times |sum|, plus 1e-13 times the sum of |x| (REDUCTION_ABS).
    "reduction": {F32: 6e-8, F64: 1e-16},
    # Normal initial weights: libm's and NumPy's log / cos / sin may differ in the last ulp
    # (uniform draws are the same double operations in the same order: compared exactly).
    "init_normal": {F64: dict(rtol=1e-13, atol=1e-15)},
    # Dropout scales the kept elements by 1 / (1 - rate): one rounding.
    "dropout": {F32: 1e-6, F64: 1e-15},
    # Relative Frobenius error of sums: a loss (the scalar too, relatively) and its gradient.
    "loss": {F32: 1e-5, F64: 1e-12},
    # The CUDA losses in float64: a sum over 70001 rows (the loss, and the weighted normaliser
    # every gradient element is divided by) can drift N eps from the oracle's order of summation.
    "loss_gpu": {F32: 1e-5, F64: 1e-11},
    # Relative Frobenius error of a GEMM against |a| @ |b| where the result may cancel.
    "gemm": {F32: 1e-5, F64: 1e-12},
    # The GPU GEMM on problems of 1000+ rows and columns (v1, v2 and auto on the same data):
    # longer float32 sums in the kernels' order.
    "gemm_large": {F32: 2e-5},
    # The GPU GEMM on TF32 tensor cores: operands rounded to 10 mantissa bits.
    "gemm_tf32": {F32: 2e-3},
    # Dense backward (dX, dW, db) in norm against the same sums over absolute values; float64
    # more than 1e-12 because gelu' cancels near its root (z = -0.75).
    "dense_grad": {F32: 2e-5, F64: 1e-10},
    # Batch norm: max error relative to max(|ref|, 1).
    "batchnorm": {F32: 2e-6, F64: 1e-12},
    # Batch norm dX from float32-rounded saved statistics: up to |mean| / std * 2**-24 apart
    # from the oracle's exact chain rule, amplified when N is small.
    "batchnorm_dx": {F32: 5e-5, F64: 1e-12},
    # Sampled softmax: the loss relatively, the gradients in norm (with a floor, see rel_err).
    "sampled": {F32: 2e-5, F64: 1e-11},
    # Optimizer steps after a few iterations: in norm, then element by element.
    "optim_norm": {F32: 1e-5, F64: 1e-13},
    "optim": {F32: dict(rtol=5e-3, atol=1e-4), F64: dict(rtol=1e-9, atol=1e-12)},
}

REDUCTION_ABS = 1e-13

# Absolute slack that covers denormal results only (a few units of 2**-149 in float32).
DENORMAL = {F32: 6e-45, F64: 1e-300}


def tol(kind, dtype):
    """The tolerance of `kind` for `dtype` (a NumPy dtype or scalar type)."""
    return TOL[kind][np.dtype(dtype).type]


def poisoned(shape, dtype):
    """An output filled with NaN before the kernel runs: an element the kernel does not write
    stays NaN and fails every comparison below."""
    return np.full(shape, np.nan, dtype)


def assert_close(got, ref, rtol, atol, what):
    """Element by element, |got - ref| <= rtol |ref| + atol, and NaN exactly where the oracle
    has NaN (an unwritten, poisoned element is a NaN the oracle does not have)."""
    got = np.asarray(got, np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} vs {ref.shape}"
    same_nan = np.isnan(got) == np.isnan(ref)
    assert same_nan.all(), f"{what}: NaN where the oracle has none (or the reverse)"
    with np.errstate(invalid="ignore"):  # inf - inf where both are inf: equal, caught above
        ok = np.isnan(ref) | (got == ref) | (np.abs(got - ref) <= rtol * np.abs(ref) + atol)
    if not ok.all():
        i = np.flatnonzero(~ok.ravel())[0]
        g, r = got.ravel()[i], ref.ravel()[i]
        err = abs(g - r) / max(abs(r), 1e-300)
        raise AssertionError(f"{what}: {(~ok).sum()} elements off; first at flat index {i}: "
                             f"got {g!r}, expected {r!r} (relative error {err:.3g})")


def rel_err(got, ref, scale=None, floor=0.0):
    """||got - ref|| / ||scale|| (scale defaults to ref): the Frobenius error relative to the
    size of the computation. `floor`: the least denominator, for results that cancel to ~0."""
    denom = max(np.linalg.norm(ref if scale is None else scale), floor)
    return np.linalg.norm(np.asarray(got, np.float64) - ref) / (denom if denom > 0 else 1.0)


def assert_norm_close(got, ref, bound, what, scale=None, floor=0.0):
    """Same shape, every element finite (so written), and rel_err below `bound`."""
    got = np.asarray(got)
    assert got.shape == np.shape(ref), f"{what}: shape {got.shape} vs {np.shape(ref)}"
    assert np.all(np.isfinite(got)), f"{what}: unwritten (NaN-poisoned) or non-finite output"
    err = rel_err(got, ref, scale, floor)
    assert err < bound, f"{what}: relative Frobenius error {err:.3g} >= {bound}"


def norm_checker(kind):
    """assert_close(got, ref, dtype, what="", scale=None) for a family compared in norm at the
    table's bound for `kind`."""
    def assert_close(got, ref, dtype, what="", scale=None):
        assert_norm_close(got, ref, tol(kind, dtype), what or kind, scale)
    return assert_close


def assert_max_close(got, ref, bound, what, scale=None):
    """max |got - ref| / scale below `bound`; scale defaults to max(|ref|, 1)."""
    got = np.asarray(got, np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} vs {ref.shape}"
    if ref.size == 0:
        return
    if scale is None:
        scale = max(np.max(np.abs(ref)), 1.0)
    err = np.max(np.abs(got - ref)) / scale
    assert err < bound, f"{what}: max error {err:.3g} (relative to {scale:.3g})"


def gemm_bf16_bound(S, want, K):
    """The element-wise bound of a GEMM on BF16 tensor cores with operands already rounded as
    the oracle rounds them: each m16n8k16 step may lose a few FP32 ulps of S (the sum of
    absolute terms), so (K / 16 + 4) * 2**-20 * S, plus float32 rounding of the epilogue."""
    return (K / 16 + 4) * 2.0**-20 * 1.25 * S + 2e-6 * (np.abs(want) + S)


def finite_difference(f, x, h=1e-6):
    """Central differences of the scalar f at every element of x (float64)."""
    grad = np.zeros(np.shape(x))
    for idx in np.ndindex(grad.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += h
        minus[idx] -= h
        grad[idx] = (f(plus) - f(minus)) / (2 * h)
    return grad


def finite_differences(loss, args, h=1e-6):
    """Central differences of the scalar loss(*args) with respect to each of args in turn."""
    return [finite_difference(lambda v, i=i: loss(*args[:i], v, *args[i + 1:]), a, h)
            for i, a in enumerate(args)]


def check_op(fastnn_fn, oracle_fn, shapes, dtype, *, inputs, kind, outputs=None, scale=None,
             what="", device="cpu"):
    """Run a kernel over `shapes` against the oracle.

    For each shape: `inputs(shape, dtype)` draws the inputs; `outputs(shape)` (optional) gives
    the shapes of the outputs, which are passed NaN-poisoned after the inputs; `fastnn_fn(*inputs,
    *outputs)` returns its results (None: the outputs are the results, as for a `_C` kernel that
    writes in place); where it returns arrays and outputs were given, they must be those outputs.
    `oracle_fn(*inputs)` returns the float64 reference(s); `scale(*inputs)` (optional) the size
    of each result's sums for the norm comparison. `kind` picks the tolerance and comparison:
    "elementwise*" element by element (with the denormal slack), the others in norm.
    `device` ("cuda"): the kernel gets device copies of the inputs and poisoned device outputs
    (fastnn.Tensor), and its results are fetched to the host; the oracle sees the host arrays."""
    import fastnn

    def place(a):
        return a if device == "cpu" else fastnn.asarray(np.ascontiguousarray(a), device=device)

    def fetch(t):
        return t if device == "cpu" else t.numpy()

    bound = tol(kind, dtype)
    for shape in shapes:
        args = inputs(shape, dtype)
        outs = [place(poisoned(s, dtype)) for s in outputs(shape)] if outputs else []
        got = fastnn_fn(*[place(a) for a in args], *outs)
        got = outs if got is None else (list(got) if isinstance(got, tuple) else [got])
        if outs:
            assert all(g is o for g, o in zip(got, outs)), f"{what} {shape}: out= not returned"
        got = [fetch(g) for g in got]
        refs = oracle_fn(*args)
        refs = list(refs) if isinstance(refs, tuple) else [refs]
        scales = scale(*args) if scale else [None] * len(refs)
        scales = list(scales) if isinstance(scales, tuple) else scales
        assert len(got) == len(refs), f"{what}: {len(got)} results, the oracle has {len(refs)}"
        for i, (g, r, s) in enumerate(zip(got, refs, scales)):
            assert np.asarray(g).dtype == np.dtype(dtype), f"{what} {shape}: dtype {g.dtype}"
            label = f"{what} {shape}" + (f" result {i}" if len(refs) > 1 else "")
            if kind.startswith("elementwise"):
                assert_close(g, r, bound, DENORMAL[np.dtype(dtype).type], label)
            else:
                assert_norm_close(g, r, bound, label, s)
