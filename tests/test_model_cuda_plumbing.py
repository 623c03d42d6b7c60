"""The Python plumbing of Sequential(device="cuda") (fastnn/_model_device.py), run on the host
stand-in for fastnn._cuda (tests/_cuda_standin.py: "device" memory is host memory, its
Network32 is the CPU engine taking the stand-in's tensors). What is checked: data staged to the device and handed
over as device addresses, GPU tensors taken without a copy, predict's return types,
get/set_weights, save/load across devices, callbacks and errors. Since the stand-in trains with
the CPU engine, a stand-in GPU model must match a CPU model bit for bit. The real GPU engine is
tested in tests/test_engine_gpu.py (skipped without a GPU)."""

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, cuda, optim
from fastnn.layers import BatchNorm, Dense, Dropout
from fastnn.tensor import Tensor

import _cuda_standin


@pytest.fixture
def fake(monkeypatch):
    return _cuda_standin.install(monkeypatch)


def layers():
    return [Dense(16, "relu", l2=1e-4), BatchNorm(), Dropout(0.2), Dense(8, "tanh"), Dense(3)]


def data(rng, n=100, d=6, c=3):
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, c, n)
    return X, y


def pair(device="cuda", **kw):
    cpu = fastnn.Sequential(layers(), input_dim=6, seed=3)
    gpu = fastnn.Sequential(layers(), input_dim=6, seed=3, device=device, **kw)
    for m in (cpu, gpu):
        m.compile("softmax_cross_entropy", optim.Adam(lr=0.01), metrics=["accuracy"], clipnorm=1.0)
    return cpu, gpu


def same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def state(model):
    return model._net.read("state")[0]


def test_fit_numpy_matches_cpu(fake, rng, monkeypatch):
    X, y = data(rng)
    cpu, gpu = pair(precision="tf32")
    assert gpu.device == "cuda:0" and gpu.precision == "tf32"
    assert ("Network32", 0, "tf32", True, True) in fake.calls
    uploads = []
    copy = fake.copy_from_host

    def recording_copy(dst, off, src):
        uploads.append((dst.ptr + off, src.nbytes))
        copy(dst, off, src)

    monkeypatch.setattr(fake, "copy_from_host", recording_copy)
    h1 = cpu.fit(X, y, epochs=3, batch_size=16, verbose=0, accumulate_steps=2)
    h2 = gpu.fit(X, y, epochs=3, batch_size=16, verbose=0, accumulate_steps=2)
    assert h1.history["loss"] == h2.history["loss"]
    assert h1.history["accuracy"] == h2.history["accuracy"]
    assert h1.diagnostics == h2.diagnostics and h2.diagnostics
    same(cpu.get_weights(), gpu.get_weights())
    # The data went over once per fit: every engine call sees the same device addresses.
    addrs = {c[1:4] for c in gpu._net.calls if c[0] == "train_batches"}
    assert len(addrs) == 1
    x_addr, lab_addr, tgt_addr = addrs.pop()
    assert x_addr and lab_addr and tgt_addr == 0
    assert uploads == [(x_addr, X.nbytes), (lab_addr, 8 * len(y))]


def test_gpu_tensor_inputs_used_without_copy(fake, rng):
    X, y = data(rng)
    cpu, gpu = pair()
    Xd, yd = fastnn.asarray(X, device="cuda"), fastnn.asarray(y.astype(np.int64), device="cuda")
    cpu.fit(X, y, epochs=2, batch_size=32, verbose=0)
    gpu.fit(Xd, yd, epochs=2, batch_size=32, verbose=0)
    same(cpu.get_weights(), gpu.get_weights())
    calls = [c for c in gpu._net.calls if c[0] == "train_batches"]
    assert calls[0][1] == Xd.data_ptr() and calls[0][2] == yd.data_ptr()
    # predict: NumPy in, NumPy out; GPU in, CUDA tensor out.
    p_np = gpu.predict(X)
    p_dev = gpu.predict(Xd)
    assert isinstance(p_np, np.ndarray) and isinstance(p_dev, Tensor) and p_dev.is_cuda
    np.testing.assert_array_equal(p_np, p_dev.numpy())
    np.testing.assert_array_equal(p_np, cpu.predict(X))
    np.testing.assert_array_equal(gpu.predict_classes(Xd), cpu.predict_classes(X))
    assert gpu.evaluate(Xd, yd) == cpu.evaluate(X, y)
    # A CPU model takes GPU arrays too (copied to the host).
    np.testing.assert_array_equal(cpu.predict(Xd), p_np)
    assert cpu.evaluate(Xd, yd) == cpu.evaluate(X, y)


def test_gpu_inputs_in_other_forms_go_through_the_host(fake, rng):
    X, y = data(rng)
    cpu, gpu = pair()
    onehot = np.eye(3, dtype=np.float32)[y]
    cpu.fit(X, y, epochs=1, batch_size=16, verbose=0, validation_split=0.2)
    gpu.fit(fastnn.asarray(X.astype(np.float64), device="cuda"),
            fastnn.asarray(onehot, device="cuda"), epochs=1, batch_size=16, verbose=0,
            validation_split=0.2)
    same(cpu.get_weights(), gpu.get_weights())
    # predict: GPU input that is not in the engine's form still gives a CUDA tensor.
    p = gpu.predict(fastnn.asarray(X.astype(np.float64), device="cuda"))
    assert isinstance(p, Tensor) and p.is_cuda
    np.testing.assert_array_equal(p.numpy(), gpu.predict(X))


def test_regression_weights_and_callbacks(fake, rng):
    X = rng.standard_normal((90, 5)).astype(np.float32)
    t = rng.standard_normal((90, 2)).astype(np.float32)
    w = rng.random(90).astype(np.float32)
    models = []
    for device in ("cpu", "cuda:1"):
        m = fastnn.Sequential([Dense(8, "elu"), Dense(2)], input_dim=5, seed=1, device=device)
        m.compile("mse", optim.SGD(lr=0.05, momentum=0.9), metrics=["mae"])
        sched = callbacks.LearningRateScheduler(lambda e, lr: lr * 0.5)
        stop = callbacks.EarlyStopping(patience=1, monitor="val_loss")
        h = m.fit(X, t, epochs=4, batch_size=10, verbose=0, sample_weight=w,
                  validation_data=(X[:20], t[:20]), callbacks=[sched, stop])
        models.append((m, h))
    (a, ha), (b, hb) = models
    assert ha.history == hb.history
    same(a.get_weights(), b.get_weights())
    assert b._net.device == 1
    td = fastnn.asarray(t, device="cuda:1")
    assert b.evaluate(fastnn.asarray(X, device="cuda:1"), td) == a.evaluate(X, t)


def test_get_set_weights_and_save_load_across_devices(fake, rng, tmp_path):
    X, y = data(rng)
    cpu, gpu = pair()
    gpu.fit(X, y, epochs=2, batch_size=32, verbose=0)
    cpu.set_weights(gpu.get_weights())
    np.testing.assert_array_equal(cpu.predict(X), gpu.predict(X))
    w = gpu.get_weights()
    w[0] = w[0] * 2
    gpu.set_weights(w)
    same(gpu.get_weights(), w)
    assert gpu.count_params() == cpu.count_params()
    # GPU -> file -> CPU and -> GPU, with the optimizer state: both resume alike.
    gpu.save(tmp_path / "g.fastnn")
    on_cpu = fastnn.load(tmp_path / "g.fastnn")
    on_gpu = fastnn.load(tmp_path / "g.fastnn", device="cuda")
    assert on_gpu.device == "cuda:0" and on_cpu.device == "cpu"
    np.testing.assert_array_equal(on_cpu.predict(X), gpu.predict(X))
    np.testing.assert_array_equal(on_gpu.predict(X), gpu.predict(X))
    same(state(on_gpu), state(gpu))
    assert on_gpu._net.step == gpu._net.step
    on_cpu.fit(X, y, epochs=1, batch_size=32, verbose=0)
    on_gpu.fit(X, y, epochs=1, batch_size=32, verbose=0)
    same(on_cpu.get_weights(), on_gpu.get_weights())
    # An uncompiled GPU model predicts through an inference engine built on the device.
    fresh = fastnn.Sequential(layers(), input_dim=6, seed=3, device="cuda")
    ref = fastnn.Sequential(layers(), input_dim=6, seed=3)
    np.testing.assert_array_equal(fresh.predict(X), ref.predict(X))
    assert "total trainable parameters" in gpu.summary(print_fn=None)


def test_errors(fake, rng):
    X, y = data(rng)
    with pytest.raises(ValueError, match="precision"):
        fastnn.Sequential([Dense(2)], input_dim=3, precision="fp16", device="cuda")
    with pytest.raises(ValueError, match="precision"):
        fastnn.Sequential([Dense(2)], input_dim=3, precision="tf32")
    with pytest.raises(ValueError, match="does not exist"):
        fastnn.Sequential([Dense(2)], input_dim=3, device="cuda:7")
    with pytest.raises(ValueError, match="device"):
        fastnn.Sequential([Dense(2)], input_dim=3, device="cuda:x")
    m = fastnn.Sequential([Dense(3)], input_dim=6, device="cuda")
    with pytest.raises(NotImplementedError, match="sampled softmax"):
        m.compile(fastnn.losses.SampledSoftmax(num_sampled=2))
    m.compile("softmax_cross_entropy")
    bad = fastnn.asarray(np.array([0, 1, 5] * 10, np.int64), device="cuda")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        m.fit(fastnn.asarray(X[:30], device="cuda"), bad, verbose=0)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        m.fit(X[:30], np.array([0, 1, 5] * 10), verbose=0)
    with pytest.raises(ValueError, match="precision"):
        fastnn.load("nowhere.fastnn", precision="tf32")


def test_no_gpu_is_a_clear_runtime_error(monkeypatch):
    monkeypatch.setattr(cuda, "_require", lambda: (_ for _ in ()).throw(
        RuntimeError("no CUDA device is available")))
    with pytest.raises(RuntimeError, match="CUDA"):
        fastnn.Sequential([Dense(2)], input_dim=3, device="cuda")


def test_one_output_gpu_targets_of_shape_n(fake, rng):
    X = rng.standard_normal((64, 5)).astype(np.float32)
    t = (X[:, 0] > 0).astype(np.float32)
    cpu = fastnn.Sequential([Dense(6, "tanh"), Dense(1, "sigmoid")], input_dim=5, seed=2)
    gpu = fastnn.Sequential([Dense(6, "tanh"), Dense(1, "sigmoid")], input_dim=5, seed=2,
                            device="cuda")
    for m in (cpu, gpu):
        m.compile("binary_cross_entropy", "sgd", metrics=["binary_accuracy"])
    td = fastnn.asarray(t, device="cuda")
    h1 = cpu.fit(X, t, epochs=2, batch_size=16, verbose=0)
    h2 = gpu.fit(fastnn.asarray(X, device="cuda"), td, epochs=2, batch_size=16, verbose=0)
    assert h1.history == h2.history
    call = [c for c in gpu._net.calls if c[0] == "train_batches"][0]
    assert call[3] == td.data_ptr()  # the (n,) targets viewed as (n, 1), not copied
    np.testing.assert_array_equal(gpu.predict_classes(X), cpu.predict_classes(X))


def test_one_input_feature_round_trips_through_the_device(fake, rng, tmp_path):
    X = rng.standard_normal((30, 1)).astype(np.float32)
    y = np.sin(X)
    layers = lambda: [Dense(4, "tanh"), Dense(1, "tanh"), Dense(1)]  # noqa: E731
    cpu = fastnn.Sequential(layers(), input_dim=1, seed=5)
    gpu = fastnn.Sequential(layers(), input_dim=1, seed=5, device="cuda")
    for m in (cpu, gpu):
        m.compile("mse", optim.Adam(lr=0.01))
        m.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert [w.shape for w in gpu.get_weights()] == [(1, 4), (4,), (4, 1), (1,), (1, 1), (1,)]
    same(gpu.get_weights(), cpu.get_weights())
    gpu.set_weights(cpu.get_weights())
    gpu.save(tmp_path / "g.fastnn")
    back = fastnn.load(tmp_path / "g.fastnn", device="cuda")
    same(state(back), state(gpu))
