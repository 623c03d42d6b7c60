"""Sequential.load_weights: .safetensors and .npz files with to_torch's state-dict names, and
damaged, crafted or mismatched files refused with a ValueError naming the problem."""

import json
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastnn
from fastnn.layers import BatchNorm, Dense, Dropout
from export_models import inputs, random_model


def make_model(seed=0, dtype="float32", input_dim=3):
    return fastnn.Sequential([Dense(4, "relu"), BatchNorm(), Dropout(0.1), Dense(2)],
                             input_dim=input_dim, seed=seed, dtype=dtype)


def state_of(model):
    """The state dict written by hand from the documented names and layouts."""
    W0, b0, g, beta, mean, var, W1, b1 = model.get_weights()
    return {"dense_0.weight": W0.T.copy(), "dense_0.bias": b0, "batch_norm_0.weight": g,
            "batch_norm_0.bias": beta, "batch_norm_0.running_mean": mean,
            "batch_norm_0.running_var": var, "dense_1.weight": W1.T.copy(), "dense_1.bias": b1,
            "batch_norm_0.num_batches_tracked": np.array(7, np.int64)}


def safetensors_bytes(arrays, metadata=None, header_pad=b""):
    """A safetensors file as the reference writer lays it out (no fastnn checksums)."""
    header, chunks, offset = {}, [], 0
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        code = {"f": "F", "i": "I", "u": "U"}[a.dtype.kind] + str(8 * a.dtype.itemsize)
        header[name] = {"dtype": code, "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        chunks.append(a.astype(a.dtype.newbyteorder("<")).tobytes())
        offset += a.nbytes
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode() + header_pad
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def trained_source(rng):
    source = make_model(seed=1)
    w = source.get_weights()
    w[4], w[5] = rng.standard_normal(4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32)
    source.set_weights(w)
    return source


def assert_same(model, source):
    for a, b in zip(model.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_npz(rng, tmp_path):
    source, model = trained_source(rng), make_model()
    np.savez(tmp_path / "w.npz", **state_of(source))
    model.load_weights(tmp_path / "w.npz")
    assert_same(model, source)
    np.savez_compressed(tmp_path / "c.npz", **state_of(source))
    make_model(seed=5).load_weights(str(tmp_path / "c.npz"))


def test_safetensors_from_another_writer(rng, tmp_path):
    source, model = trained_source(rng), make_model()
    (tmp_path / "w.safetensors").write_bytes(
        safetensors_bytes(state_of(source), {"format": "pt"}, header_pad=b"  "))
    model.load_weights(tmp_path / "w.safetensors")
    assert_same(model, source)


def test_safetensors_package(rng, tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy", reason="interop with the reference writer")
    source, model = trained_source(rng), make_model()
    st_numpy.save_file(state_of(source), str(tmp_path / "w.safetensors"))
    model.load_weights(tmp_path / "w.safetensors")
    assert_same(model, source)


def test_torch_state_dict_and_dtypes(rng, tmp_path):
    torch = pytest.importorskip("torch", reason="a state dict written by to_torch")
    source = random_model(rng, "gelu", ("softmax_cross_entropy", "linear"))
    state = {k: v.numpy() for k, v in source.to_torch().state_dict().items()}
    target = random_model(rng, "gelu", ("softmax_cross_entropy", "linear"))
    np.savez(tmp_path / "w.npz", **state)
    target.load_weights(tmp_path / "w.npz")
    X = inputs(rng, source)
    np.testing.assert_array_equal(target.predict(X), source.predict(X))
    # float64 and float16 files load into a float32 model (as set_weights), and the other way.
    wide = make_model(dtype="float64")
    np.savez(tmp_path / "w32.npz", **state_of(make_model(seed=9)))
    wide.load_weights(tmp_path / "w32.npz")
    assert wide.get_weights()[0].dtype == np.float64
    half = {k: v.astype(np.float16) if v.dtype.kind == "f" else v
            for k, v in state_of(make_model(seed=2)).items()}
    np.savez(tmp_path / "w16.npz", **half)
    make_model().load_weights(tmp_path / "w16.npz")
    del torch


def test_one_feature_one_unit(tmp_path):
    model = fastnn.Sequential([Dense(1)], input_dim=1)
    np.savez(tmp_path / "w.npz", **{"dense_0.weight": np.array([[2.5]], np.float32),
                                    "dense_0.bias": np.array([-1.0], np.float32)})
    model.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(model.predict(np.array([[2.0]], np.float32)), [[4.0]])


def expect_refused(model, path, message):
    """ValueError matching `message`, and the model's weights left as they were."""
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        model.load_weights(path)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_mismatched_files(rng, tmp_path):
    model = make_model()
    good = state_of(make_model(seed=3))
    cases = {
        "missing": ({k: v for k, v in good.items() if k != "dense_1.bias"},
                    "missing 'dense_1.bias'"),
        "extra": (dict(good, **{"dense_9.weight": np.ones(2, np.float32)}),
                  "unexpected 'dense_9.weight'"),
        "shape": (dict(good, **{"dense_0.weight": good["dense_0.weight"].T.copy()}),
                  r"'dense_0.weight' has shape \(3, 4\); the model needs \(4, 3\)"),
        "int": (dict(good, **{"dense_0.bias": np.ones(4, np.int32)}), "dtype int32"),
        "nan": (dict(good, **{"dense_0.bias": np.full(4, np.nan, np.float32)}),
                "'dense_0.bias'.*NaN or infinity"),
        "range": (dict(good, **{"dense_0.bias": np.full(4, 1e300)}), "beyond float32's range"),
        "variance": (dict(good, **{"batch_norm_0.running_var": -np.ones(4, np.float32)}),
                     "running variance and must be >= 0"),
    }
    for name, (arrays, message) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        expect_refused(model, tmp_path / f"{name}.npz", message)
        (tmp_path / f"{name}.safetensors").write_bytes(safetensors_bytes(arrays))
        expect_refused(model, tmp_path / f"{name}.safetensors", message)


def test_other_files(tmp_path):
    model = make_model()
    model.save(tmp_path / "m.fastnn")
    expect_refused(model, tmp_path / "m.fastnn", "a fastnn model file.*fastnn.load")
    with zipfile.ZipFile(tmp_path / "t.pt", "w") as z:  # torch.save's layout
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    expect_refused(model, tmp_path / "t.pt", "a PyTorch pickle")
    np.savez(tmp_path / "obj.npz", **dict(state_of(model), **{"dense_0.bias": np.array([None] * 4)}))
    expect_refused(model, tmp_path / "obj.npz", "dtype object")
    (tmp_path / "text.txt").write_text("hello, this is not a weights file at all\n")
    expect_refused(model, tmp_path / "text.txt", "text.txt")
    (tmp_path / "empty").write_bytes(b"")
    expect_refused(model, tmp_path / "empty", "empty")
    expect_refused(model, tmp_path, "is a directory")
    with pytest.raises(FileNotFoundError):
        model.load_weights(tmp_path / "nope.npz")
    with pytest.raises(TypeError, match="path: expected a file path"):
        model.load_weights(None)


def test_damaged_safetensors(tmp_path):
    model = make_model()
    blob = safetensors_bytes(state_of(make_model(seed=3)))
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    cases = {
        "truncated": (blob[:-5], "data_offsets|truncated"),
        "short": (blob[:6], "short|truncated|header"),
        "bad json": (blob[:8] + b"!" + blob[9:], "JSON|json"),
        "huge length": (struct.pack("<Q", 2**62) + blob[8:], "header"),
    }
    bad = dict(header, **{"dense_0.bias": dict(header["dense_0.bias"], data_offsets=[0, 10**9])})
    cases["offsets out of range"] = (_with_header(bad, blob, n), "outside")
    bad = dict(header, **{"dense_0.bias": dict(header["dense_0.bias"], dtype="Q99")})
    cases["unknown dtype"] = (_with_header(bad, blob, n), "dtype")
    bad = dict(header, **{"dense_0.bias": dict(header["dense_0.bias"], dtype="F64")})
    cases["wrong dtype size"] = (_with_header(bad, blob, n), "needs")
    bad = dict(header, **{"dense_0.bias": dict(header["dense_0.bias"], shape=[-4])})
    cases["negative shape"] = (_with_header(bad, blob, n), "shape")
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        expect_refused(model, path, message)


def _with_header(header, blob, n):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + blob[8 + n:]


def test_damaged_npz(tmp_path):
    model = make_model()
    np.savez_compressed(tmp_path / "w.npz", **state_of(make_model(seed=3)))
    blob = (tmp_path / "w.npz").read_bytes()
    for i, data in enumerate([blob[:len(blob) // 2], blob[:30], blob[:-30]]):
        path = tmp_path / f"d{i}.npz"
        path.write_bytes(data)
        expect_refused(model, path, None)
    # A crafted .npy header announcing a huge array is refused before anything is allocated.
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:
        for key, a in state_of(model).items():
            header = {"descr": "<f4", "fortran_order": False,
                      "shape": (10**12,) if key == "dense_0.bias" else a.shape}
            z.writestr(f"{key}.npy", _npy(header, a.tobytes()))
    expect_refused(model, tmp_path / "huge.npz", r"shape \(1000000000000,\)")


def _npy(header, data):
    text = repr(header).encode()
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_fuzzed_files_never_crash(tmp_path_factory, data):
    """Random flips, cuts and insertions in either format: loaded (when harmless) or refused
    with ValueError, nothing else."""
    model = make_model()
    state = state_of(make_model(seed=3))
    fmt = data.draw(st.sampled_from(["npz", "safetensors"]))
    path = tmp_path_factory.mktemp("fuzz") / f"w.{fmt}"
    if fmt == "npz":
        np.savez(path, **state)
        blob = bytearray(path.read_bytes())
    else:
        blob = bytearray(safetensors_bytes(state))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            blob[i] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del blob[i:i + data.draw(st.integers(1, 64))]
        else:
            blob[i:i] = data.draw(st.binary(min_size=1, max_size=16))
    path.write_bytes(bytes(blob))
    try:
        model.load_weights(path)
    except ValueError:
        pass
    assert all(np.isfinite(w).all() for w in model.get_weights())
