import json
import os

import numpy as np
import pytest

from fastnn import io


def _sample_arrays(rng):
    return {
        "w": rng.standard_normal((3, 5)).astype(np.float32),
        "b": rng.standard_normal(5),                                   # float64
        "half": rng.standard_normal((2, 2)).astype(np.float16),
        "i64": rng.integers(-2**62, 2**62, size=4, dtype=np.int64),
        "i32": rng.integers(-2**31, 2**31, size=(2, 1, 3), dtype=np.int32),
        "i16": np.array([-3, 7], dtype=np.int16),
        "i8": np.array([-128, 127], dtype=np.int8),
        "u8": rng.integers(0, 256, size=7, dtype=np.uint8),
        "u16": np.array([65535], dtype=np.uint16),
        "u32": np.array([2**32 - 1], dtype=np.uint32),
        "u64": np.array([2**64 - 1], dtype=np.uint64),
        "mask": rng.random(6) < 0.5,
        "scalar": np.array(2.5, dtype=np.float32),                     # 0-d
        "empty": np.zeros((0, 4), dtype=np.float32),
        "empty_i": np.zeros((3, 0), dtype=np.int64),
    }


def test_round_trip_many_dtypes_and_shapes(tmp_path, rng):
    arrays = _sample_arrays(rng)
    path = tmp_path / "m.safetensors"
    io.save_arrays(path, arrays)
    got, meta = io.load_arrays(path)
    assert list(got) == list(arrays)                    # saved order kept
    assert meta == {}
    for name, a in arrays.items():
        assert got[name].dtype == a.dtype and got[name].shape == a.shape, name
        np.testing.assert_array_equal(got[name], a)
        assert got[name].flags.writeable and got[name].flags.c_contiguous
    got["w"][0, 0] = 1.0                                # writable copy, no error


def test_round_trip_converts_views_and_byte_order(tmp_path):
    big_endian = np.arange(6, dtype=">f4").reshape(2, 3)
    strided = np.arange(20, dtype=np.int32).reshape(4, 5)[::2, ::-1]
    io.save_arrays(tmp_path / "x", {"be": big_endian, "st": strided, "sc": np.float64(3.0)})
    got, _ = io.load_arrays(tmp_path / "x")
    np.testing.assert_array_equal(got["be"], big_endian)
    assert got["be"].dtype == np.float32 and got["be"].dtype.isnative
    np.testing.assert_array_equal(got["st"], strided)
    assert got["sc"].shape == () and got["sc"] == 3.0


def test_metadata_round_trip(tmp_path):
    meta = {"config": {"layers": [{"units": 4, "activation": "relu"}], "lr": 1e-3},
            "epoch": 7, "name": "ünïcode", "flag": True, "nothing": None}
    io.save_arrays(tmp_path / "m", {"a": np.ones(2)}, metadata=meta)
    _, got = io.load_arrays(tmp_path / "m")
    assert got == meta


def test_file_layout_is_safetensors(tmp_path):
    io.save_arrays(tmp_path / "m", {"a": np.arange(3, dtype=np.float32)}, {"k": [1, 2]})
    blob = (tmp_path / "m").read_bytes()
    n = int.from_bytes(blob[:8], "little")
    assert n % 8 == 0 and len(blob) == 8 + n + 12
    header = json.loads(blob[8:8 + n])
    assert header["a"] == {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}
    meta = header["__metadata__"]
    assert meta["format"] == "fastnn" and meta["format_version"] == "1"
    assert meta["k"] == "[1, 2]" and len(meta["checksum"]) == 64
    assert np.frombuffer(blob[8 + n:], "<f4").tolist() == [0.0, 1.0, 2.0]


def test_interop_with_safetensors_package(tmp_path, rng):
    st = pytest.importorskip("safetensors.numpy")
    arrays = {k: v for k, v in _sample_arrays(rng).items()}
    path = tmp_path / "ours.safetensors"
    io.save_arrays(path, arrays, {"epoch": 3})
    theirs = st.load_file(str(path))
    for name, a in arrays.items():
        np.testing.assert_array_equal(theirs[name], a)
        assert theirs[name].dtype == a.dtype
    # And the other way: a file written by the reference implementation.
    other = tmp_path / "theirs.safetensors"
    st.save_file({"x": arrays["w"], "y": arrays["i64"]}, str(other), metadata={"who": "them"})
    with pytest.raises(ValueError, match="not a fastnn file"):
        io.load_arrays(other)
    got, meta = io.load_arrays(other, allow_foreign=True)
    np.testing.assert_array_equal(got["x"], arrays["w"])
    np.testing.assert_array_equal(got["y"], arrays["i64"])
    assert meta == {"who": "them"}


# ---- damaged files -----------------------------------------------------------------------------

def _saved(tmp_path, rng):
    path = tmp_path / "m"
    io.save_arrays(path, {"w": rng.standard_normal((2, 3)).astype(np.float32),
                          "b": np.arange(3, dtype=np.int64)}, {"units": [3]})
    return path, path.read_bytes()


def test_every_truncation_is_refused(tmp_path, rng):
    path, blob = _saved(tmp_path, rng)
    for cut in range(len(blob)):
        path.write_bytes(blob[:cut])
        with pytest.raises(ValueError):
            io.load_arrays(path)


def test_every_flipped_byte_is_refused(tmp_path, rng):
    path, blob = _saved(tmp_path, rng)
    for i in range(len(blob)):
        damaged = bytearray(blob)
        damaged[i] ^= 1 << int(rng.integers(8))     # one random bit per byte keeps this fast
        path.write_bytes(bytes(damaged))
        with pytest.raises(ValueError):
            io.load_arrays(path)


def test_appended_bytes_are_refused(tmp_path, rng):
    path, blob = _saved(tmp_path, rng)
    path.write_bytes(blob + b"\0" * 8)
    with pytest.raises(ValueError, match="belong to none"):
        io.load_arrays(path)


def _forge(path, header, data=b""):
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)


@pytest.mark.parametrize("header, data, words", [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, "not a fastnn file"),
    ({"a": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, "dtype 'Q7'"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "needs 12 bytes"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}, b"\0" * 8, "outside"),
    ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, "bad shape"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, "overlaps"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, "gap"),
    ({"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, "damaged entry"),
    ([1, 2], b"", "JSON list"),
    ({"__metadata__": {"format": 1}}, b"", "strings to strings"),
])
def test_forged_headers_are_refused(tmp_path, header, data, words):
    _forge(tmp_path / "f", header, data)
    with pytest.raises(ValueError, match=words):
        io.load_arrays(tmp_path / "f", allow_foreign=("not a fastnn" not in words))


def test_wrong_format_and_newer_version(tmp_path):
    (tmp_path / "p").write_bytes(b"\x80\x04\x95" + b"pickle?" * 10)
    with pytest.raises(ValueError, match="not a safetensors file"):
        io.load_arrays(tmp_path / "p")
    text = b'{"__metadata__": {"format": "fastnn", "format_version": "99"}}'
    (tmp_path / "v").write_bytes(len(text).to_bytes(8, "little") + text)
    with pytest.raises(ValueError, match="newer fastnn"):
        io.load_arrays(tmp_path / "v")
    text = b'{"a": 1, "a": 2}'
    (tmp_path / "d").write_bytes(len(text).to_bytes(8, "little") + text)
    with pytest.raises(ValueError, match="duplicate key"):
        io.load_arrays(tmp_path / "d")


# ---- bad input and atomic writes ---------------------------------------------------------------

@pytest.mark.parametrize("arrays, metadata, exc, words", [
    ({"a": [1.0, 2.0]}, None, TypeError, "expected a NumPy array"),
    ({"a": np.array(["x"])}, None, TypeError, "dtype"),
    ({"a": np.ones(2, dtype=np.complex64)}, None, TypeError, "dtype"),
    ({"a": np.array([object()])}, None, TypeError, "dtype"),
    ({"": np.ones(1)}, None, TypeError, "non-empty"),
    ({"__metadata__": np.ones(1)}, None, ValueError, "reserved"),
    ([np.ones(1)], None, TypeError, "dict"),
    ({"a": np.ones(1)}, {"checksum": "x"}, ValueError, "reserved"),
    ({"a": np.ones(1)}, {"f": object()}, TypeError, "JSON"),
    ({"a": np.ones(1)}, {"f": float("nan")}, TypeError, "JSON"),
    ({"a": np.ones(1)}, {1: "x"}, TypeError, "strings"),
])
def test_bad_input_leaves_previous_file_and_no_temp(tmp_path, arrays, metadata, exc, words):
    path = tmp_path / "m"
    io.save_arrays(path, {"old": np.arange(3)})
    before = path.read_bytes()
    with pytest.raises(exc, match=words):
        io.save_arrays(path, arrays, metadata)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m"]


def test_failure_while_writing_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "m"
    io.save_arrays(path, {"old": np.arange(3)})
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        io.save_arrays(path, {"new": np.ones((100, 100))})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m"]
    monkeypatch.undo()
    io.save_arrays(path, {"new": np.ones(2)})
    assert list(io.load_arrays(path)[0]) == ["new"]
    assert os.listdir(tmp_path) == ["m"]


def test_save_into_missing_directory_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        io.save_arrays(tmp_path / "nope" / "m", {"a": np.ones(1)})
