"""The CUDA dense backward (csrc/cuda/dense.{h,cu}) and ops.linear_grad on GPU tensors.

Two halves:
- GPU (skipped without a usable device): fastnn._cuda.dense_backward on device memory against
  the float64 oracle (tests/oracle.py, as tests/test_dense_grad.py checks the CPU op), the fused
  path against the composed one (the reference), against the CPU op, at every gate activation
  (from z and from y), shapes straddling both tile sizes (64 and 128) with M, N, K of 1, odd,
  tile edges +-1 and a few hundred, ldy != N (odd: the per-element loads; NaN in the row gaps,
  which must never be read), misaligned operands, accumulation, dX / db absent, NaN-poisoned
  outputs, empty shapes, TF32 / BF16, determinism and argument errors. Finite differences are
  the CPU tests' job: here the CPU op is a second reference.
- CPU-runnable: ops.linear_grad's GPU dispatch on the host-memory stand-in for fastnn._cuda
  (tests/_cuda_standin.py): argument order, strides, workspace, in-place outputs and errors.
"""

import os

import numpy as np
import pytest

import fastnn
from fastnn import cuda, ops
from fastnn.ops import _activation_arg
from fastnn.tensor import Tensor

import oracle
from test_dense_grad import ACTIVATIONS, deriv_scale, layer, magnitudes

# FASTNN_CUDA_STANDIN=1 (test_ops_gpu.py) replaces fastnn._cuda by host code for the whole
# process: the kernel tests below are not about that glue, and its kernels raise nothing.
STANDIN = bool(os.environ.get("FASTNN_CUDA_STANDIN"))
GPU = cuda.is_available() and not STANDIN
needs_gpu = pytest.mark.skipif(
    not GPU, reason=f"needs a usable CUDA device and fastnn built with CUDA "
                    f"(compiled={cuda.is_compiled()}, available={cuda.is_available()}, "
                    f"stand-in={STANDIN})")

# Relative error in norm against the size of the sums (magnitudes): float32 products over up to
# a few thousand terms.
TOL = 5e-5
SLOPE = 0.2

# (batch M, in_features K, out_features N): 1, odd, the 64 and 128 tile edges +-1, a few hundred.
SHAPES = [
    (1, 1, 1), (1, 7, 33), (5, 1, 3), (3, 13, 1), (63, 64, 65), (64, 65, 63), (65, 63, 64),
    (127, 128, 129), (129, 127, 128), (128, 129, 127), (257, 12, 40), (31, 49, 300),
    (300, 200, 130),
]
# Enough tiles for the 128 x 128 kernel (>= 2 blocks per SM on an H100's 132 SMs) and its edges.
BIG = [(4096, 1024, 1024), (1024, 4096, 1024), (2049, 1025, 1279)]


def from_output_ok(act):
    return act in ops.GRAD_FROM_OUTPUT


def dev(a):
    return fastnn.asarray(np.ascontiguousarray(a), device="cuda:0")


def mod():
    return cuda._require()


def stream():
    from fastnn import _gpu_ops
    return _gpu_ops._stream(0)


def rel(got, ref, scale):
    denom = np.linalg.norm(scale)
    err = np.linalg.norm(np.asarray(got, np.float64) - ref)
    return err / denom if denom > 0 else err


def dense_backward(dy, x, w, act=None, gate=None, from_output=False, *, path="auto",
                   precision="fp32", ldy=None, accumulate=False, dw0=None, db0=None,
                   want_dx=True, want_db=True, misalign=False, workspace_bytes=None, split=True):
    """fastnn._cuda.dense_backward on copies of the arrays; returns (dx, dw, db) on the host.
    Outputs start NaN (unless accumulating); dy and the gate sit in (M, ldy) rows whose gaps
    hold NaN; misalign shifts every operand by one float (off 16-byte alignment); split: the
    workspace that lets the fused path split long sums (else the (M, N) one: unsplit)."""
    M, K = x.shape
    N = w.shape[1]
    ldy = N if ldy is None else ldy
    name, param = _activation_arg(act, SLOPE)
    sh = 1 if misalign else 0

    def buf(a, rows, ld, fill=np.nan):
        width = ld if a is None else max(ld, a.shape[1])  # (ld < cols: an argument-error test)
        host = np.full(rows * width + sh, fill, np.float32)
        if a is not None:
            host[sh:sh + rows * width].reshape(rows, width)[:, :a.shape[1]] = a
        return dev(host)

    def p(t):
        return 0 if t is None else t.data_ptr() + 4 * sh

    d_dy, d_gate = buf(dy, M, ldy), (buf(gate, M, ldy) if gate is not None else None)
    d_x, d_w = buf(x, M, K), buf(w, K, N)
    d_dw = buf(dw0 if accumulate else None, K, N)
    d_db = buf(db0[None, :] if accumulate else None, 1, N) if want_db else None
    d_dx = buf(None, M, K) if want_dx else None
    need = int(mod().dense_backward_workspace_bytes(M, N, K if split else None))
    ws = dev(np.zeros(max(need, 1), np.uint8))
    mod().dense_backward_device(p(d_dy), p(d_x), p(d_w), p(d_gate), name, param, from_output,
                                p(d_dw), p(d_db), p(d_dx), M, K, N, ldy, K, N, N, K, accumulate,
                                ws.data_ptr(),
                                need if workspace_bytes is None else workspace_bytes, stream(),
                                precision, path)

    def back(t, rows, cols):
        if t is None:
            return None
        return t.numpy()[sh:sh + rows * cols].reshape(rows, cols)

    db = back(d_db, 1, N)
    return back(d_dx, M, K), back(d_dw, K, N), None if db is None else db[0]


def check(got, refs, scales, what, tol=TOL):
    for g, r, sc, name in zip(got, refs, scales, ("dx", "dw", "db")):
        if g is None:
            continue
        assert g.shape == r.shape, f"{name} {what}"
        assert np.all(np.isfinite(g)), f"{name} {what}: unwritten (NaN-poisoned) or non-finite"
        err = rel(g, r, sc)
        assert err < tol, f"{name} {what}: relative error {err:.3g} >= {tol}"


def cases(act):
    yield False
    if act is not None and from_output_ok(act):
        yield True


# ============================================================== GPU
@needs_gpu
@pytest.mark.parametrize("path", ["fused64", "fused128", "composed", "auto"])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_matches_oracle(path, act, rng):
    for M, K, N in SHAPES:
        x, w, _, y, z, dy = layer(rng, M, K, N, np.float32, act)
        for fo in cases(act):
            gate = y if fo else z
            if fo:
                refs = oracle.linear_grad_from_output(dy, x, w, y, act, negative_slope=SLOPE)
                deriv = oracle.act_deriv_from_output(y, act, SLOPE)
            else:
                refs = oracle.linear_grad(dy, x, w, z, act, negative_slope=SLOPE)
                deriv = deriv_scale(z, act, np.float32, SLOPE)
            got = dense_backward(dy, x, w, act, None if act is None else gate, fo, path=path)
            check(got, refs, magnitudes(dy, x, w, deriv), f"{act} from_output={fo} {M}x{K}x{N}")


@needs_gpu
@pytest.mark.parametrize("act", [None, "relu", "gelu", "tanh"])
def test_big_tiles_fused_vs_composed_and_oracle(act, rng):
    for M, K, N in BIG:
        x, w, _, y, z, dy = layer(rng, M, K, N, np.float32, act)
        gate = None if act is None else z
        composed = dense_backward(dy, x, w, act, gate, path="composed")
        scales = magnitudes(dy, x, w, deriv_scale(z, act, np.float32, SLOPE))
        refs = oracle.linear_grad(dy, x, w, z, act, negative_slope=SLOPE)
        check(composed, refs, scales, f"composed {act} {M}x{K}x{N}")
        for path in ("fused", "fused64", "fused128"):
            fused = dense_backward(dy, x, w, act, gate, path=path)
            check(fused, composed, scales, f"{path} vs composed {act} {M}x{K}x{N}", tol=2e-5)
            check(fused, refs, scales, f"{path} {act} {M}x{K}x{N}")


@needs_gpu
@pytest.mark.parametrize("path", ["fused64", "fused128"])
def test_split_k(path, rng):
    """Long sums split over several blocks (the workspace of dense_backward_workspace_bytes(M, N,
    K)): dW's over a large batch, dX's over many outputs with a small batch, db with them, also
    accumulating; against the unsplit kernel, the oracle, and itself (deterministic)."""
    # (shape, activation, the product whose sums splits_for cuts: 0 = dX, 1 = dW)
    for M, K, N, act, cut in [(4096, 256, 200, "relu", 1), (4100, 130, 10, "tanh", 1),
                              (256, 1024, 1024, "gelu", 0), (200, 65, 3000, None, 0)]:
        x, w, _, y, z, dy = layer(rng, M, K, N, np.float32, act)
        gate = None if act is None else z
        split = dense_backward(dy, x, w, act, gate, path=path)
        plain = dense_backward(dy, x, w, act, gate, path=path, split=False)
        scales = magnitudes(dy, x, w, deriv_scale(z, act, np.float32, SLOPE))
        refs = oracle.linear_grad(dy, x, w, z, act, negative_slope=SLOPE)
        check(split, refs, scales, f"split {act} {M}x{K}x{N}")
        check(split, plain, scales, f"split vs unsplit {act} {M}x{K}x{N}", tol=2e-5)
        # The split really ran: its sums are associated differently, so some bits differ (a
        # workspace sizing slip would otherwise fall back to the unsplit kernel unnoticed).
        assert not np.array_equal(split[cut], plain[cut]), \
            f"{('dx', 'dw')[cut]} {M}x{K}x{N}: split-K did not run (same bits as unsplit)"
        again = dense_backward(dy, x, w, act, gate, path=path)
        for u, v in zip(split, again):
            assert np.array_equal(u, v), f"split-K not deterministic {M}x{K}x{N}"
        dw0 = rng.standard_normal((K, N)).astype(np.float32)
        db0 = rng.standard_normal(N).astype(np.float32)
        _, dw, db = dense_backward(dy, x, w, act, gate, path=path, accumulate=True, dw0=dw0,
                                   db0=db0, want_dx=False)
        check((None, dw, db), (None, dw0 + refs[1], db0 + refs[2]),
              (None, scales[1] + np.abs(dw0), scales[2] + np.abs(db0)),
              f"split accumulate {M}x{K}x{N}")


@needs_gpu
@pytest.mark.parametrize("path,precision", [("fused128", "fp32"), ("fused64", "fp32"),
                                            ("composed", "fp32"), ("auto", "bf16")])
def test_cuda_graph_capture_and_replay(path, precision, rng):
    """The GPU engine captures dense_backward in a CUDA graph. Under torch's capture (the strict
    global mode) any synchronising or allocating call inside dense_backward fails the capture,
    and the split-K arrival counters must be reset inside the graph (a captured memset): every
    replay must give the bits of a direct call, with the outputs NaN-poisoned in between."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    M, K, N = 4096, 256, 200  # dW's sums split 16 ways on the fused paths
    x, w, _, y, z, dy = layer(rng, M, K, N, np.float32, "relu")

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a)).cuda()

    tdy, tx, tw, tz = t(dy), t(x), t(w), t(z)
    outs = (torch.empty(M, K, device="cuda"), torch.empty(K, N, device="cuda"),
            torch.empty(N, device="cuda"))
    need = int(mod().dense_backward_workspace_bytes(M, N, K))
    ws = torch.zeros(need, dtype=torch.uint8, device="cuda")
    s = torch.cuda.Stream()

    def call():
        dx, dw, db = outs
        mod().dense_backward_device(tdy.data_ptr(), tx.data_ptr(), tw.data_ptr(), tz.data_ptr(),
                                    "relu", SLOPE, False, dw.data_ptr(), db.data_ptr(),
                                    dx.data_ptr(), M, K, N, N, K, N, N, K, False, ws.data_ptr(),
                                    need, s.cuda_stream, precision, path)

    s.wait_stream(torch.cuda.current_stream())
    call()
    s.synchronize()
    first = [o.cpu().numpy().copy() for o in outs]
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=s):
        call()
    torch.cuda.synchronize()
    for _ in range(3):
        for o in outs:
            o.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        for o, want, name in zip(outs, first, ("dx", "dw", "db")):
            assert np.array_equal(o.cpu().numpy(), want), f"{name}: replay differs ({path})"
    refs = oracle.linear_grad(dy, x, w, z, "relu", negative_slope=SLOPE)
    check(first, refs, magnitudes(dy, x, w, oracle._act_deriv(z, "relu", SLOPE)),
          f"{path} {precision}", tol=TOL if precision == "fp32" else 2e-2)


@needs_gpu
@pytest.mark.parametrize("split", [False, True])
def test_tile_size_does_not_change_the_bits(split, rng):
    """Every output adds its terms in order (and split-K cuts the sums at multiples of 16 terms)
    with either tile size: the 64 and 128 kernels agree to the bit, so a result never depends on
    the tile-size heuristic (and through it on the GPU's SM count)."""
    for M, K, N, act in [(300, 200, 130, "relu"), (4096, 256, 200, "tanh"), (256, 520, 1030, None)]:
        x, w, _, y, z, dy = layer(rng, M, K, N, np.float32, act)
        gate = None if act is None else z
        a = dense_backward(dy, x, w, act, gate, path="fused64", split=split)
        b = dense_backward(dy, x, w, act, gate, path="fused128", split=split)
        for u, v, name in zip(a, b, ("dx", "dw", "db")):
            assert np.array_equal(u, v), f"{name} {M}x{K}x{N} split={split}"


@needs_gpu
def test_workspace_sizes():
    m = mod()
    for M, K, N in [(0, 0, 0), (1, 1, 1), (4096, 1024, 1024), (256, 1024, 1024), (7, 0, 5)]:
        assert m.dense_backward_workspace_bytes(M, N, K) >= m.dense_backward_workspace_bytes(M, N)
    # the split needs room for partials: more than the (M, N) size where dW is split 4 ways
    assert (m.dense_backward_workspace_bytes(4096, 1024, 1024)
            >= 4 * 1024 * 1024 * 4)


@needs_gpu
@pytest.mark.parametrize("act", [None, "relu", "sigmoid", "gelu"])
def test_fused_equals_composed_on_db_and_matches_cpu(act, rng):
    """db: both paths add the same dZ in double, so they agree to float rounding; and both
    agree with the CPU op (a different GEMM, the same contract)."""
    for M, K, N in [(300, 200, 130), (129, 127, 128), (1000, 64, 10)]:
        x, w, _, y, z, dy = layer(rng, M, K, N, np.float32, act)
        gate = None if act is None else z
        f = dense_backward(dy, x, w, act, gate, path="fused")
        c = dense_backward(dy, x, w, act, gate, path="composed")
        np.testing.assert_allclose(f[2], c[2], rtol=1e-6, atol=1e-6)
        cpu = ops.linear_grad(dy, x, w, act, z=z, negative_slope=SLOPE)
        scales = magnitudes(dy, x, w, deriv_scale(z, act, np.float32, SLOPE))
        check(f, cpu, scales, f"fused vs CPU {act} {M}x{K}x{N}")


@needs_gpu
@pytest.mark.parametrize("path", ["fused64", "fused128", "composed"])
@pytest.mark.parametrize("pad", [3, 4, 17])
def test_row_stride_larger_than_n(path, pad, rng):
    """ldy = N + pad; odd pads take the per-element loads. The gaps hold NaN: reading one would
    poison the results."""
    for M, K, N, act in [(70, 33, 20, "tanh"), (129, 65, 64, "relu"), (5, 3, 1, None),
                         (300, 130, 200, "gelu"), (256, 128, 60, "relu")]:
        x, w, _, y, z, dy = layer(rng, M, K, N, np.float32, act)
        got = dense_backward(dy, x, w, act, None if act is None else z, path=path, ldy=N + pad)
        refs = oracle.linear_grad(dy, x, w, z, act, negative_slope=SLOPE)
        check(got, refs, magnitudes(dy, x, w, deriv_scale(z, act, np.float32, SLOPE)),
              f"ldy = N + {pad}, {act} {M}x{K}x{N}")


@needs_gpu
@pytest.mark.parametrize("path", ["fused", "composed"])
def test_misaligned_operands(path, rng):
    for M, K, N in [(64, 64, 64), (130, 70, 33)]:
        x, w, _, y, z, dy = layer(rng, M, K, N, np.float32, "sigmoid")
        got = dense_backward(dy, x, w, "sigmoid", y, True, path=path, misalign=True)
        refs = oracle.linear_grad_from_output(dy, x, w, y, "sigmoid", negative_slope=SLOPE)
        check(got, refs, magnitudes(dy, x, w, oracle.act_deriv_from_output(y, "sigmoid", SLOPE)),
              f"misaligned {M}x{K}x{N}")


@needs_gpu
@pytest.mark.parametrize("path", ["fused64", "fused128", "composed"])
def test_accumulate_and_absent_outputs(path, rng):
    for M, K, N in [(37, 20, 50), (129, 128, 65), (1, 1, 1)]:
        x, w, _, y, z, dy = layer(rng, M, K, N, np.float32, "elu")
        dw0 = rng.standard_normal((K, N)).astype(np.float32)
        db0 = rng.standard_normal(N).astype(np.float32)
        refs = oracle.linear_grad(dy, x, w, z, "elu", negative_slope=SLOPE)
        scales = magnitudes(dy, x, w, oracle._act_deriv(z, "elu", SLOPE))
        dx, dw, db = dense_backward(dy, x, w, "elu", z, path=path, accumulate=True, dw0=dw0,
                                    db0=db0, want_dx=False)
        assert dx is None
        check((None, dw, db), (None, dw0 + refs[1], db0 + refs[2]),
              (None, scales[1] + np.abs(dw0), scales[2] + np.abs(db0)), f"accumulate {M}x{K}x{N}")
        dx, dw, db = dense_backward(dy, x, w, "elu", z, path=path, want_db=False)
        assert db is None
        check((dx, dw, None), refs, scales, f"no db {M}x{K}x{N}")


@needs_gpu
@pytest.mark.parametrize("path", ["fused64", "fused128", "composed"])
def test_empty_shapes(path, rng):
    x, w = np.ones((0, 3), np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    dx, dw, db = dense_backward(np.ones((0, 4), np.float32), x, w, path=path)
    assert np.array_equal(dw, np.zeros((3, 4))) and np.array_equal(db, np.zeros(4))
    assert dx.shape == (0, 3)
    dw0, db0 = rng.standard_normal((3, 4)).astype(np.float32), np.ones(4, np.float32)
    _, dw, db = dense_backward(np.ones((0, 4), np.float32), x, w, path=path, accumulate=True,
                               dw0=dw0, db0=db0)
    assert np.array_equal(dw, dw0) and np.array_equal(db, db0)
    # N == 0: dX = dZ W^T is an empty sum
    x = rng.standard_normal((5, 3)).astype(np.float32)
    dx, dw, db = dense_backward(np.ones((5, 0), np.float32), x, np.ones((3, 0), np.float32),
                                path=path)
    assert np.array_equal(dx, np.zeros((5, 3))) and dw.shape == (3, 0) and db.shape == (0,)
    # K == 0: only db
    dy = rng.standard_normal((6, 5)).astype(np.float32)
    dx, dw, db = dense_backward(dy, np.ones((6, 0), np.float32), np.ones((0, 5), np.float32),
                                path=path)
    np.testing.assert_allclose(db, dy.astype(np.float64).sum(0), rtol=1e-6)


@needs_gpu
@pytest.mark.parametrize("precision,tol", [("tf32", 5e-3), ("bf16", 2e-2)])
def test_tensor_core_precisions(precision, tol, rng):
    for M, K, N in [(256, 128, 64), (70, 33, 21)]:
        x, w, _, y, z, dy = layer(rng, M, K, N, np.float32, "relu")
        got = dense_backward(dy, x, w, "relu", y, True, precision=precision)
        refs = oracle.linear_grad_from_output(dy, x, w, y, "relu", negative_slope=SLOPE)
        check(got, refs, magnitudes(dy, x, w, oracle.act_deriv_from_output(y, "relu", SLOPE)),
              f"{precision} {M}x{K}x{N}", tol=tol)


@needs_gpu
@pytest.mark.parametrize("path", ["fused64", "fused128", "composed"])
def test_deterministic(path, rng):
    x, w, _, y, z, dy = layer(rng, 1000, 300, 200, np.float32, "tanh")
    a = dense_backward(dy, x, w, "tanh", y, True, path=path)
    b = dense_backward(dy, x, w, "tanh", y, True, path=path)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)


@needs_gpu
def test_argument_errors(rng):
    x, w, _, y, z, dy = layer(rng, 8, 4, 3, np.float32, "gelu")
    with pytest.raises(ValueError, match="fused path is FP32 only"):
        dense_backward(dy, x, w, "gelu", z, path="fused", precision="tf32")
    with pytest.raises(ValueError, match="cannot be computed from its output"):
        dense_backward(dy, x, w, "gelu", y, True)
    with pytest.raises(ValueError, match="workspace too small"):
        dense_backward(dy, x, w, "gelu", z, workspace_bytes=16)
    with pytest.raises(ValueError, match="path: expected 'auto', 'fused', 'composed'"):
        dense_backward(dy, x, w, "gelu", z, path="fast")
    with pytest.raises(ValueError, match="precision: expected"):
        dense_backward(dy, x, w, "gelu", z, precision="fp16")
    with pytest.raises(ValueError, match="row stride is smaller"):
        dense_backward(dy, x, w, "gelu", z, ldy=2)
    with pytest.raises(ValueError, match="needs the gate"):
        mod().dense_backward_device(1, 1, 1, 0, "relu", 0.0, False, 1, 0, 0, 2, 2, 2, 2, 2, 2, 2,
                                    2, False, 1, 1 << 20, stream(), "fp32", "fused")


@needs_gpu
def test_linear_grad_op_on_gpu_tensors(rng):
    """ops.linear_grad on CUDA tensors (python/fastnn/_gpu_ops.py) against the CPU op, at a size
    the 128-tile kernel takes and one the 64-tile kernel takes."""
    for n, k, m, act in [(4096, 1024, 1024, "relu"), (70, 33, 21, "gelu")]:
        x, w, _, y, z, dy = layer(rng, n, k, m, np.float32, act)
        ref = ops.linear_grad(dy, x, w, act, z=z, negative_slope=SLOPE)
        got = ops.linear_grad(dev(dy), dev(x), dev(w), act, z=dev(z), negative_slope=SLOPE)
        scales = magnitudes(dy, x, w, deriv_scale(z, act, np.float32, SLOPE))
        check([t.numpy() for t in got], ref, scales, f"ops.linear_grad {act} {n}x{k}x{m}")


# ============================================================== CPU: the dispatch on the stand-in
@pytest.fixture
def standin(monkeypatch):
    import _cuda_standin
    return _cuda_standin.install(monkeypatch)


def sdev(a):
    return fastnn.asarray(np.ascontiguousarray(a), device="cuda:0")


@pytest.mark.parametrize("act,from_output", [(None, False), ("relu", True), ("gelu", False),
                                             ("leaky_relu", False), ("sigmoid", True)])
def test_standin_linear_grad_dispatch(standin, act, from_output, rng):
    n, k, m = 13, 7, 5
    x, w, _, y, z, dy = layer(rng, n, k, m, np.float32, act)
    kw = {"y": y} if from_output else {"z": z}
    kd = {key: sdev(v) for key, v in kw.items()}
    ref = ops.linear_grad(dy, x, w, act, negative_slope=SLOPE, **kw)
    got = ops.linear_grad(sdev(dy), sdev(x), sdev(w), act, negative_slope=SLOPE, **kd)
    assert all(t.device == "cuda:0" for t in got)
    assert standin.calls[-1] == ("dense_backward", "fp32", "auto")
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a.numpy(), b)


def test_standin_linear_grad_in_place_and_accumulate(standin, rng):
    n, k, m = 9, 4, 6
    x, w, _, y, z, dy = layer(rng, n, k, m, np.float32, "tanh")
    dw0 = rng.standard_normal((k, m)).astype(np.float32)
    db0 = rng.standard_normal(m).astype(np.float32)
    dw, db = sdev(dw0), sdev(db0)
    dx, dw1, db1 = ops.linear_grad(sdev(dy), sdev(x), sdev(w), "tanh", y=sdev(y), dw=dw, db=db,
                                   accumulate=True, need_dx=False)
    assert dx is None and dw1 is dw and db1 is db
    rdw, rdb = dw0.copy(), db0.copy()
    ops.linear_grad(dy, x, w, "tanh", y=y, dw=rdw, db=rdb, accumulate=True, need_dx=False)
    np.testing.assert_array_equal(dw.numpy(), rdw)
    np.testing.assert_array_equal(db.numpy(), rdb)
    out = sdev(np.full((n, k), np.nan, np.float32))
    got = ops.linear_grad(sdev(dy), sdev(x), sdev(w), "tanh", y=sdev(y), dx=out)
    assert got[0] is out
    np.testing.assert_array_equal(out.numpy(), ops.linear_grad(dy, x, w, "tanh", y=y)[0])


def test_standin_linear_grad_strided_and_empty(standin, rng):
    n, k, m = 8, 5, 3
    x, w, _, y, z, dy = layer(rng, n, k, m, np.float32, "relu")
    wide = sdev(np.concatenate([dy, np.full((n, 2), np.nan, np.float32)], axis=1))
    # a strided view (row stride m + 2): made contiguous before the kernel
    dy_view = Tensor._wrap_storage(wide._storage, 0, (n, m), (m + 2, 1), np.dtype(np.float32), 0)
    assert not dy_view.is_contiguous()
    got = ops.linear_grad(dy_view, sdev(x), sdev(w), "relu", z=sdev(z))
    for a, b in zip(got, ops.linear_grad(dy, x, w, "relu", z=z)):
        np.testing.assert_array_equal(a.numpy(), b)
    dx, dw, db = ops.linear_grad(sdev(np.ones((0, 4), np.float32)),
                                 sdev(np.ones((0, 3), np.float32)),
                                 sdev(rng.standard_normal((3, 4)).astype(np.float32)))
    assert np.array_equal(dw.numpy(), np.zeros((3, 4))) and np.array_equal(db.numpy(), np.zeros(4))
    assert dx.shape == (0, 3)


def test_standin_linear_grad_errors(standin, rng):
    x, w, _, y, z, dy = layer(rng, 6, 4, 3, np.float32, "gelu")
    with pytest.raises(TypeError, match="linear_grad on the GPU: float32 only"):
        ops.linear_grad(sdev(dy.astype(np.float64)), sdev(x.astype(np.float64)),
                        sdev(w.astype(np.float64)))
    with pytest.raises(ValueError, match="the derivative of gelu needs z"):
        ops.linear_grad(sdev(dy), sdev(x), sdev(w), "gelu", y=sdev(y))
    with pytest.raises(TypeError, match="z: expected a fastnn.Tensor on cuda:0"):
        ops.linear_grad(sdev(dy), sdev(x), sdev(w), "gelu", z=z)
    with pytest.raises(ValueError, match=r"z: expected shape \(6, 3\)"):
        ops.linear_grad(sdev(dy), sdev(x), sdev(w), "gelu", z=sdev(z[:5]))
    with pytest.raises(ValueError, match=r"dw: expected shape \(4, 3\)"):
        ops.linear_grad(sdev(dy), sdev(x), sdev(w), "gelu", z=sdev(z), dw=sdev(w.T))
    with pytest.raises(ValueError, match="accumulate=True needs"):
        ops.linear_grad(sdev(dy), sdev(x), sdev(w), "gelu", z=sdev(z), accumulate=True)
    xx = sdev(x)
    with pytest.raises(ValueError, match="dx: must not overlap the inputs"):
        ops.linear_grad(sdev(dy), xx, sdev(w), "gelu", z=sdev(z), dx=xx)
