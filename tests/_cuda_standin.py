"""A host-memory stand-in for fastnn._cuda, to run tests/test_ops_gpu.py's GPU tests without a GPU
(FASTNN_CUDA_STANDIN=1). It checks the Python glue of fastnn._gpu_ops (argument order and count
of every fastnn._cuda call as the bindings declare them, pointers, sizes, strides, workspaces,
in-place outputs), not the CUDA kernels: "device" memory is host memory and each kernel entry
point forwards to the CPU kernel (fastnn._C) on views of it. Signatures mirror
csrc/bindings/cuda_kernels_elem.cpp, cuda_kernels_optim.cpp, cuda_gemm_device.cpp, cuda_dense.cpp,
cuda_sampled.cpp, cuda_tensor.cpp and bind_engine.cpp (Network32 / Network64: the GPU training
engine's interface on the CPU engine)."""

import ctypes
import functools

import numpy as np

from fastnn import _C

_NP = {"float32": np.float32, "float64": np.float64}


class Storage:
    def __init__(self, nbytes, device):
        self.buf = np.zeros(max(int(nbytes), 1), np.uint8)
        self.nbytes = int(nbytes)
        self.ptr = self.buf.ctypes.data
        self.device_id = device
        self.readonly = False
        self.cached = True


def view(ptr, n, dtype):
    """n elements of dtype at host address ptr, as a writable array."""
    dtype = np.dtype(dtype)
    if n == 0:
        return np.empty(0, dtype)
    assert ptr, "null pointer for a non-empty array"
    raw = (ctypes.c_char * (n * dtype.itemsize)).from_address(ptr)
    return np.frombuffer(raw, dtype=dtype)


class StandIn:
    def __init__(self, devices=2):
        self.devices = devices
        self.calls = []

    # ------------------------------------------------------------ device layer
    def device_count(self):
        return self.devices

    def empty(self, nbytes, device):
        assert 0 <= device < self.devices
        return Storage(nbytes, device)

    def copy_from_host(self, dst, off, src):
        src = np.ascontiguousarray(src)
        dst.buf[off:off + src.nbytes] = src.reshape(-1).view(np.uint8)

    def copy_to_host(self, src, off, dst):
        dst.reshape(-1).view(np.uint8)[...] = src.buf[off:off + dst.nbytes]

    def copy_device(self, dst, doff, src, soff, nbytes):
        dst.buf[doff:doff + nbytes] = src.buf[soff:soff + nbytes].copy()

    def stream(self, device):
        return 1000 + device

    def synchronize(self, device):
        pass

    def _s(self, stream):
        assert stream in (1000, 1001), f"not fastnn's stream: {stream}"

    # ------------------------------------------------------------ elementwise family
    def act_forward(self, act, param, x, y, n, dtype, stream=0):
        self._s(stream)
        t = _NP[dtype]
        _C.act_forward(view(x, n, t), view(y, n, t), act, param)

    def act_backward(self, act, param, dy, x, dx, n, dtype, stream=0, from_output=False):
        self._s(stream)
        t = _NP[dtype]
        _C.act_backward(view(dy, n, t), view(x, n, t), view(dx, n, t), act, param, from_output)

    def softmax_forward(self, x, y, rows, cols, dtype, stream=0, log=False):
        self._s(stream)
        t = _NP[dtype]
        _C.softmax_forward(view(x, rows * cols, t).reshape(rows, cols),
                           view(y, rows * cols, t).reshape(rows, cols), log)

    def softmax_backward(self, dy, y, dx, rows, cols, dtype, stream=0, log=False):
        self._s(stream)
        t = _NP[dtype]
        v = [view(p, rows * cols, t).reshape(rows, cols) for p in (dy, y, dx)]
        _C.softmax_backward(v[0], v[1], v[2], log)

    def dropout_forward(self, x, y, mask, n, rate, seed, dtype, stream=0):
        self._s(stream)
        t = _NP[dtype]
        _C.dropout_forward_into(view(x, n, t), view(y, n, t), view(mask, n, np.uint8), rate, seed)

    def dropout_backward(self, dy, mask, dx, n, rate, dtype, stream=0):
        self._s(stream)
        t = _NP[dtype]
        view(dx, n, t)[...] = _C.dropout_backward(view(dy, n, t), view(mask, n, np.uint8), rate)

    def loss_workspace_bytes(self):
        return 56

    def softmax_cross_entropy(self, logits, labels, probs, weight, grad, N, C, label_smoothing,
                              workspace, dtype, stream=0):
        self._s(stream)
        assert workspace
        t = _NP[dtype]
        lab = (view(labels, N, np.int64) if labels else
               view(probs, N * C, t).reshape(N, C))
        w = view(weight, C, t) if weight else None
        if labels and (lab.min() < 0 or lab.max() >= C):
            raise ValueError("softmax_cross_entropy: label out of range")
        loss, g = _C.softmax_cross_entropy(view(logits, N * C, t).reshape(N, C), lab, w,
                                           label_smoothing)
        view(grad, N * C, t)[...] = g.reshape(-1)
        return loss

    def _elem(self, fn, a, b, g, n, ws, dtype, stream):
        self._s(stream)
        assert ws
        t = _NP[dtype]
        loss, grad = fn(view(a, n, t), view(b, n, t))
        view(g, n, t)[...] = grad
        return loss

    def binary_cross_entropy_with_logits(self, *args):
        return self._elem(_C.binary_cross_entropy_with_logits, *args)

    def mse(self, *args):
        return self._elem(_C.mse, *args)

    def mae(self, *args):
        return self._elem(_C.mae, *args)

    # ------------------------------------------------------------ GEMM
    def gemm_device(self, a, b, c, M, N, K, lda, ldb, ldc, trans_a=False, trans_b=False,
                    alpha=1.0, beta=0.0, bias=0, activation="none", act_param=0.0, stream=0):
        self._s(stream)
        assert a and b and c
        rsa, csa = (1, lda) if trans_a else (lda, 1)
        rsb, csb = (1, ldb) if trans_b else (ldb, 1)
        span = lambda r, cs, rows, cols: (rows - 1) * r + (cols - 1) * cs + 1  # noqa: E731
        A = np.lib.stride_tricks.as_strided(view(a, span(rsa, csa, M, K), np.float32),
                                            (M, K), (rsa * 4, csa * 4))
        B = np.lib.stride_tricks.as_strided(view(b, span(rsb, csb, K, N), np.float32),
                                            (K, N), (rsb * 4, csb * 4))
        C = np.lib.stride_tricks.as_strided(view(c, span(ldc, 1, M, N), np.float32),
                                            (M, N), (ldc * 4, 4))
        r = alpha * (A.astype(np.float64) @ B.astype(np.float64))
        if beta != 0.0:
            r += beta * C
        if bias:
            r += view(bias, N, np.float32)
        r = np.ascontiguousarray(r, np.float32)
        _C.act_forward(r, r, activation, act_param)
        C[...] = r

    # ------------------------------------------------------------ dense backward
    @staticmethod
    def _mat(ptr, rows, cols, ld):
        """(rows, cols) float32 at ptr with row stride ld (elements)."""
        span = (rows - 1) * ld + cols if rows and cols else 0
        return np.lib.stride_tricks.as_strided(view(ptr, span, np.float32), (rows, cols),
                                               (ld * 4, 4))

    def dense_backward_workspace_bytes(self, M, N, K=None):
        return 4 * M * N + 12 * N + (0 if K is None else 4 * K * N)

    def dense_backward(self, dy, x, w, gate, activation, act_param, from_output, dw, db, dx, M,
                       K, N, ldy, ldx, ldw, lddw, lddx, accumulate, workspace, workspace_bytes,
                       stream=0, precision="fp32", path="auto"):
        self._s(stream)
        assert precision in ("fp32", "tf32", "bf16")
        assert path in ("auto", "fused", "composed", "fused64", "fused128")
        assert workspace_bytes >= self.dense_backward_workspace_bytes(M, N, K)
        assert workspace or workspace_bytes == 0
        assert min(ldy, ldx, ldw, lddw) >= 0 and ldy >= N and ldx >= K and ldw >= N
        assert lddw >= N and (not dx or lddx >= K)
        self.calls.append(("dense_backward", precision, path))
        m = self._mat
        _C.dense_backward(m(dy, M, N, ldy), m(x, M, K, ldx), m(w, K, N, ldw),
                          m(gate, M, N, ldy) if gate else None, activation, act_param,
                          from_output, m(dw, K, N, lddw), view(db, N, np.float32) if db else None,
                          m(dx, M, K, lddx) if dx else None, accumulate)

    # ------------------------------------------------------------ optimizers, norms
    @staticmethod
    def _lists(dtype, sizes, *ptr_lists):
        t = _NP[dtype]
        return [None if ps is None else [view(p, n, t) for p, n in zip(ps, sizes)]
                for ps in ptr_lists]

    def sgd_step(self, dtype, params, grads, bufs, sizes, l1, l2, lr, momentum, dampening,
                 nesterov, weight_decay, first_step, grad_scale=1.0, grad_scale_ptr=0,
                 stream=0):
        self._s(stream)
        p, g, m = self._lists(dtype, sizes, params, grads, bufs)
        _C.sgd_step(p, g, m, l1, l2, lr, momentum, dampening, nesterov, weight_decay, first_step,
                    grad_scale)

    def adam_step(self, dtype, params, grads, m, v, vmax, sizes, l1, l2, step, lr, beta1, beta2,
                  eps, weight_decay, decoupled, amsgrad, grad_scale=1.0, grad_scale_ptr=0,
                  stream=0):
        self._s(stream)
        assert (vmax is not None) == amsgrad
        p, g, m, v, vm = self._lists(dtype, sizes, params, grads, m, v, vmax)
        _C.adam_step(p, g, m, v, vm, l1, l2, step, lr, beta1, beta2, eps, weight_decay,
                     decoupled, grad_scale)

    def adagrad_step(self, dtype, params, grads, sums, sizes, l1, l2, step, lr, lr_decay,
                     weight_decay, eps, grad_scale=1.0, grad_scale_ptr=0, stream=0):
        self._s(stream)
        p, g, s = self._lists(dtype, sizes, params, grads, sums)
        _C.adagrad_step(p, g, s, l1, l2, step, lr, lr_decay, weight_decay, eps, grad_scale)

    def rmsprop_step(self, dtype, params, grads, sq, bufs, gavg, sizes, l1, l2, lr, alpha, eps,
                     weight_decay, momentum, centered, grad_scale=1.0, grad_scale_ptr=0,
                     stream=0):
        self._s(stream)
        assert (gavg is not None) == centered
        p, g, s, b, a = self._lists(dtype, sizes, params, grads, sq, bufs, gavg)
        _C.rmsprop_step(p, g, s, b, a, l1, l2, lr, alpha, eps, weight_decay, momentum,
                        grad_scale)

    def global_norm_partials(self, sizes):
        return len(sizes)

    def global_norm(self, dtype, tensors, sizes, max_norm, partials, capacity, out, stream=0):
        self._s(stream)
        assert partials and capacity >= len(sizes)
        (ts,) = self._lists(dtype, sizes, tensors)
        norm = _C.global_norm(ts)
        coef = max_norm / (norm + 1e-6) if np.isfinite(norm) else 1.0
        view(out, 2, np.float64)[...] = (norm, min(coef, 1.0))

    def scale_tensors(self, dtype, tensors, sizes, factor, factor_ptr=0, stream=0):
        self._s(stream)
        (ts,) = self._lists(dtype, sizes, tensors)
        if factor_ptr:
            factor *= view(factor_ptr, 1, np.float64)[0]
        for t in ts:
            t *= factor

    # ------------------------------------------------------------ batch norm, reductions
    def batch_norm_workspace_bytes(self, N, F):
        return 16 * F

    def column_sums_workspace_bytes(self, N, F):
        return 8 * F

    def batch_norm_train(self, dtype, x, N, F, gamma, beta, rm, rv, momentum, eps, y, save_mean,
                         save_invstd, workspace, workspace_bytes, stream=0):
        self._s(stream)
        assert workspace_bytes >= 16 * F
        t = _NP[dtype]
        f = lambda p: view(p, F, t) if p else None  # noqa: E731
        out = _C.batch_norm_train(view(x, N * F, t).reshape(N, F), f(gamma), f(beta), f(rm),
                                  f(rv), momentum, eps)
        for p, v, n in ((y, out[0], N * F), (save_mean, out[1], F), (save_invstd, out[2], F)):
            view(p, n, t)[...] = v.reshape(-1)

    def batch_norm_infer(self, dtype, x, N, F, gamma, beta, rm, rv, eps, y, workspace,
                         workspace_bytes, stream=0):
        self._s(stream)
        t = _NP[dtype]
        f = lambda p: view(p, F, t) if p else None  # noqa: E731
        r = _C.batch_norm_infer(view(x, N * F, t).reshape(N, F), f(gamma), f(beta), f(rm), f(rv),
                                eps)
        view(y, N * F, t)[...] = r.reshape(-1)

    def batch_norm_backward(self, dtype, dy, x, N, F, gamma, save_mean, save_invstd, dx, dgamma,
                            dbeta, workspace, workspace_bytes, stream=0):
        self._s(stream)
        t = _NP[dtype]
        f = lambda p: view(p, F, t) if p else None  # noqa: E731
        out = _C.batch_norm_backward(view(dy, N * F, t).reshape(N, F),
                                     view(x, N * F, t).reshape(N, F), f(gamma), f(save_mean),
                                     f(save_invstd))
        for p, v, n in ((dx, out[0], N * F), (dgamma, out[1], F), (dbeta, out[2], F)):
            view(p, n, t)[...] = v.reshape(-1)

    def sum_rows(self, dtype, x, N, F, out, mean, workspace, workspace_bytes, stream=0):
        self._s(stream)
        assert workspace_bytes >= 8 * F
        t = _NP[dtype]
        xv = view(x, N * F, t).reshape(N, F)
        view(out, F, t)[...] = _C.mean_rows(xv) if mean else _C.sum_rows(xv)

    def argmax_rows(self, dtype, x, N, F, idx, stream=0):
        self._s(stream)
        t = _NP[dtype]
        view(idx, N, np.int64)[...] = _C.argmax_rows(view(x, N * F, t).reshape(N, F))

    def count_correct(self, dtype, scores, labels, N, C, out, stream=0):
        self._s(stream)
        t = _NP[dtype]
        lab = view(labels, N, np.int64)
        ok = (lab >= 0) & (lab < C)
        pred = _C.argmax_rows(view(scores, N * C, t).reshape(N, C))
        view(out, 2, np.int64)[...] = (int(np.sum(ok & (pred == lab))), int(np.sum(~ok)))

    # ------------------------------------------------------------ sampled softmax
    def sampled_softmax_plan(self, labels, D, C, num_sampled, seed, sampler, unique,
                             subtract_log_q, remove_accidental_hits, correct_true_logit,
                             has_bias, dtype):
        assert isinstance(labels, np.ndarray) and labels.dtype == np.int64, "host int64 labels"
        assert dtype in _NP
        if labels.min() < 0 or labels.max() >= C:
            raise ValueError("labels: out of range")
        ids, expected, _ = _C.sample_candidates(num_sampled, C, seed, sampler, unique)
        plan = _SampledPlan()
        plan.args = (labels.copy(), D, C, num_sampled, seed, sampler, unique, subtract_log_q,
                     remove_accidental_hits, correct_true_logit, has_bias, dtype)
        plan.cols = np.unique(np.concatenate([ids, labels]))
        plan.k = len(plan.cols)
        plan.workspace_bytes = 64 + 8 * plan.k
        return plan

    def sampled_softmax_cross_entropy(self, plan, h, W, b, dh, dW_cols, db_cols, cols, workspace,
                                      workspace_bytes, stream=0):
        self._s(stream)
        assert isinstance(plan, _SampledPlan)
        (labels, D, C, num_sampled, seed, sampler, unique, slq, rah, ctl, has_bias,
         dtype) = plan.args
        assert workspace and workspace_bytes >= plan.workspace_bytes
        assert bool(b) == has_bias and bool(db_cols) == has_bias
        t, N, k = _NP[dtype], len(labels), plan.k
        hv = view(h, N * D, t).reshape(N, D)
        Wv = view(W, D * C, t).reshape(D, C)
        bv = view(b, C, t) if b else None
        loss, g_h, g_cols, g_W, g_b = _C.sampled_softmax_cross_entropy(
            hv, Wv, bv, labels, num_sampled, seed, sampler, unique, slq, rah, ctl)
        view(dh, N * D, t)[...] = g_h.reshape(-1)
        view(dW_cols, D * k, t)[...] = g_W.reshape(-1)
        if b:
            view(db_cols, k, t)[...] = g_b
        if cols:
            view(cols, k, np.int64)[...] = g_cols
        return loss

    def sampled_scatter_add(self, dtype, cols, k, D, C, dW_cols, db_cols, dW, db, stream=0):
        self._s(stream)
        t = _NP[dtype]
        cv = view(cols, k, np.int64)
        dWc = view(dW_cols, D * k, t).reshape(D, k) if D else np.empty((0, k), t)
        dWv = view(dW, D * C, t).reshape(D, C) if D else np.empty((0, C), t)
        dbc = view(db_cols, k, t) if db_cols else None
        dbv = view(db, C, t) if db else None
        _C.scatter_add_columns(cv, dWc, dbc, dWv, dbv)

    # ------------------------------------------------------------ training engine
    @functools.cached_property
    def Network32(self):
        return _standin_network(_C.Network32, self)

    @functools.cached_property
    def Network64(self):
        return _standin_network(_C.Network64, self)


def _standin_network(base, fake):
    """fastnn._cuda.Network32 / Network64 (the one engine binding, csrc/bindings/bind_engine.cpp)
    on the CPU engine of the same interface: the stand-in's CUDA tensors (host memory) are handed
    to it as NumPy views. Checks the Python plumbing (what is staged where, which device), not
    the GPU engine."""

    def on_device(self, a, name):
        if a is None:
            return None
        assert getattr(a, "is_cuda", False) and a.device == f"cuda:{self.device}", \
            f"{name}: the GPU engine takes tensors on cuda:{self.device}, got {a!r}"
        assert a.is_contiguous(), f"{name}: not contiguous"
        return view(a.data_ptr(), a.size, a.dtype).reshape(a.shape)

    class StandInNetwork(base):
        def __init__(self, input_dim, layers, loss, optimizer, seed, sampled={}, options={}):
            o = {"device": -1, "precision": "fp32", "fused_mlp": True, "graphs": True, **options}
            assert 0 <= o["device"] < fake.devices and o["precision"] in ("fp32", "tf32", "bf16")
            if base is _C.Network64:
                raise ValueError("dtype: float64 models run on the CPU only")
            if loss == "sampled_softmax":
                raise ValueError("sampled softmax: not available on the GPU yet")
            super().__init__(input_dim, layers, loss, optimizer, seed, sampled)
            self._device = o["device"]
            self.calls = []
            fake.calls.append((base.__name__, o["device"], o["precision"], o["fused_mlp"],
                               o["graphs"]))

        device = property(lambda self: self._device)

        def check_labels(self, labels):
            super().check_labels(on_device(self, labels, "y"))

        def train_batches(self, X, labels, targets, batch_size, first, last, accumulate_steps,
                          clipnorm, sample_weight=None):
            self.calls.append(("train_batches",) + tuple(
                0 if a is None else a.data_ptr() for a in (X, labels, targets)))
            host = [on_device(self, a, n) for a, n in ((X, "X"), (labels, "y"), (targets, "y"),
                                                       (sample_weight, "sample_weight"))]
            return super().train_batches(*host[:3], batch_size, first, last, accumulate_steps,
                                         clipnorm, host[3])

        def evaluate(self, X, labels, targets, batch_size, sample_weight=None):
            host = [on_device(self, a, n) for a, n in ((X, "X"), (labels, "y"), (targets, "y"),
                                                       (sample_weight, "sample_weight"))]
            return super().evaluate(*host[:3], batch_size, host[3])

        def predict(self, X, out, batch_size):
            super().predict(on_device(self, X, "X"), on_device(self, out, "out"), batch_size)

    StandInNetwork.__name__ = StandInNetwork.__qualname__ = "StandIn" + base.__name__
    return StandInNetwork


class _SampledPlan:
    """The stand-in's sampled-softmax plan: the arguments, the touched columns, the sizes."""


def install(monkeypatch=None):
    """Makes fastnn.cuda hand out the stand-in (for the whole process when monkeypatch is None)."""
    from fastnn import _gpu_ops, cuda
    fake = StandIn()
    setattr_ = monkeypatch.setattr if monkeypatch else setattr
    setattr_(cuda, "_require", lambda: fake)
    setattr_(cuda, "device_count", lambda: fake.devices)
    setattr_(cuda, "is_available", lambda: True)
    _gpu_ops._streams.clear()
    return fake
