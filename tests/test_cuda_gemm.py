"""The CUDA SGEMM against a float64 NumPy reference. The GEMM tests need a GPU and are skipped
without one; the device-query tests always run, because "no GPU" must be a quiet answer."""

import math

import numpy as np
import pytest

from fastnn import cuda

needs_gpu = pytest.mark.skipif(
    not cuda.is_available(),
    reason="no usable CUDA device (fastnn built without CUDA, no GPU, or no/too-old driver)",
)

RTOL = 1e-5


def _act64(x, activation, param):
    if activation is None:
        return x
    if activation == "relu":
        return np.maximum(x, 0.0)
    if activation == "leaky_relu":
        return np.where(x > 0, x, x * param)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if activation == "tanh":
        return np.tanh(x)
    if activation == "gelu":
        erf = np.vectorize(math.erf, otypes=[np.float64])
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    raise AssertionError(f"no reference for {activation}")


def _reference(a, b, c0, trans_a, trans_b, alpha, beta, bias, activation, param):
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    opa = a64.T if trans_a else a64
    opb = b64.T if trans_b else b64
    y = alpha * (opa @ opb)
    if beta != 0:
        y = y + beta * c0.astype(np.float64)
    if bias is not None:
        y = y + bias.astype(np.float64)
    return _act64(y, activation, param)


def _rel_err(got, want):
    denom = np.linalg.norm(want)
    diff = np.linalg.norm(got.astype(np.float64) - want)
    return diff if denom == 0 else diff / denom


def _check(M, N, K, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, with_bias=False,
           activation=None, param=0.0, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32) if with_bias else None
    if beta == 0:
        # beta == 0 promises C is never read: NaN left there would leak into every result.
        out = np.full((M, N), np.nan, dtype=np.float32)
    else:
        out = rng.standard_normal((M, N)).astype(np.float32)
    c0 = out.copy()
    cuda._gemm_host(a, b, out, trans_a, trans_b, alpha, beta, bias, activation, param)
    want = _reference(a, b, c0, trans_a, trans_b, alpha, beta, bias, activation, param)
    assert np.all(np.isfinite(out)), "non-finite values in the GPU result"
    err = _rel_err(out, want)
    assert err < RTOL, f"relative Frobenius error {err:.3g} for M={M} N={N} K={K}"


def test_no_gpu_queries_do_not_raise():
    n = cuda.device_count()
    assert isinstance(n, int) and n >= 0
    info = cuda.describe()
    assert isinstance(info, dict)
    assert {"cuda_runtime", "cuda_driver", "gpus"} <= set(info)
    assert isinstance(info["gpus"], list)
    if not cuda.is_available():
        assert n == 0
        assert info["gpus"] == []


def test_describe_reports_the_runtime_when_compiled():
    info = cuda.describe()
    if cuda.is_compiled():
        major, minor = info["cuda_runtime"].split(".")
        assert major.isdigit() and minor.isdigit()
    else:
        assert info["cuda_runtime"].startswith(("not compiled", "not loaded"))


def test_missing_module_reports_not_compiled(monkeypatch):
    # A None entry in sys.modules makes `from fastnn import _cuda` raise ModuleNotFoundError for
    # exactly that name, as a CPU-only build does.
    import sys

    monkeypatch.setitem(sys.modules, "fastnn._cuda", None)
    monkeypatch.delattr("fastnn._cuda", raising=False)
    monkeypatch.setattr(cuda, "_module", None)
    monkeypatch.setattr(cuda, "_import_error", None)
    monkeypatch.setattr(cuda, "_probed", False)
    assert not cuda.is_compiled()
    assert cuda.device_count() == 0
    assert cuda.describe() == {"cuda_runtime": "not compiled", "cuda_driver": None, "gpus": []}


SHAPES = [
    (1, 1, 1),
    (3, 5, 7),
    (17, 13, 29),
    (63, 64, 65),
    (64, 64, 64),
    (65, 63, 64),
    (127, 129, 65),
    (129, 127, 128),
    (1, 200, 33),
    (200, 1, 33),
]


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_shapes(M, N, K):
    _check(M, N, K)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("M,N,K", [(63, 65, 17), (129, 127, 64)])
def test_transposes(M, N, K, trans_a, trans_b):
    _check(M, N, K, trans_a=trans_a, trans_b=trans_b)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "gelu"])
def test_bias_and_activation(activation):
    _check(65, 127, 33, with_bias=True, activation=activation)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -2.0), (2.0, 0.25)])
def test_alpha_beta(alpha, beta):
    _check(64, 65, 63, alpha=alpha, beta=beta, with_bias=True, activation="relu")


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_k_zero(beta):
    # K == 0: out = act(beta * out + bias), and with beta == 0 the NaN in out must not survive.
    _check(5, 7, 0, beta=beta, with_bias=True, activation="sigmoid")


@needs_gpu
@pytest.mark.cuda
def test_empty_output_is_a_no_op():
    a = np.ones((0, 4), np.float32)
    b = np.ones((4, 3), np.float32)
    out = np.empty((0, 3), np.float32)
    cuda._gemm_host(a, b, out)
    assert out.shape == (0, 3)


@needs_gpu
@pytest.mark.cuda
def test_strided_inputs_and_output():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((70, 90)).astype(np.float32)[::2, ::-3]  # (35, 30)
    b = np.asfortranarray(rng.standard_normal((30, 66)).astype(np.float32))
    big = np.full((35, 132), np.nan, np.float32)
    out = big[:, ::2]
    cuda._gemm_host(a, b, out)
    want = a.astype(np.float64) @ b.astype(np.float64)
    assert _rel_err(out, want) < RTOL
    assert np.all(np.isnan(big[:, 1::2])), "wrote outside the strided output view"


@needs_gpu
@pytest.mark.cuda
def test_bad_arguments_raise():
    a = np.ones((3, 4), np.float32)
    b = np.ones((5, 6), np.float32)
    out = np.empty((3, 6), np.float32)
    with pytest.raises(ValueError, match="shapes do not match"):
        cuda._gemm_host(a, b, out)
    with pytest.raises(TypeError, match="float32"):
        cuda._gemm_host(a.astype(np.float64), np.ones((4, 6), np.float32), out)
    with pytest.raises(ValueError, match="activation"):
        cuda._gemm_host(a, np.ones((4, 6), np.float32), out, activation="swish")


@needs_gpu
def test_gemm_on_device_memory_with_torch():
    """gemm_device on tensors already on the GPU (the bench's and device layer's entry point)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    from fastnn import _cuda

    rng = np.random.default_rng(7)
    for m, k, n in [(1, 1, 1), (65, 33, 129), (300, 17, 70)]:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        ta, tb, tbias = (torch.from_numpy(v).cuda() for v in (a, b, bias))
        tc = torch.full((m, n), float("nan"), device="cuda")
        _cuda.gemm_device(ta.data_ptr(), tb.data_ptr(), tc.data_ptr(), m, n, k, k, n, n,
                          bias=tbias.data_ptr(), activation="relu",
                          stream=torch.cuda.current_stream().cuda_stream)
        ref = np.maximum(a.astype(np.float64) @ b + bias, 0)
        got = tc.cpu().numpy()
        assert np.isfinite(got).all()
        assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
