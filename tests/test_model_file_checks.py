"""What set_weights and fastnn.load accept: values checked as they will be stored (float32), state
checked for meaning, and loading bounded by the file (type, size, header, nesting), so a damaged
or crafted file gives a clear ValueError, never a hang, a huge allocation or a model that later
computes NaN. Crafted files carry recomputed checksums: they are what an attacker would write."""

import os
import signal
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastnn
from fastnn import io, optim
from fastnn.layers import BatchNorm, Dense, Dropout

from _load_probe import LoadProbe


def _model(optimizer="adam"):
    m = fastnn.Sequential([Dense(6, "relu"), BatchNorm(), Dropout(0.1), Dense(3)], input_dim=4,
                          seed=2)
    if optimizer is not None:
        m.compile("softmax_cross_entropy", optimizer)
    return m


def _trained(path, optimizer="adam"):
    rng = np.random.default_rng(0)
    m = _model(optimizer)
    m.fit(rng.standard_normal((40, 4)), rng.integers(0, 3, 40), epochs=2, batch_size=8,
          verbose=0)
    m.save(path)
    return m


def _craft(src, dst, change):
    """dst: src's arrays and metadata after change(arrays, meta), with recomputed checksums."""
    arrays, meta = io.load_arrays(src)
    change(arrays, meta)
    io.save_arrays(dst, arrays, meta)
    return dst


# ---- values as stored --------------------------------------------------------------------------

def test_set_weights_checks_values_as_float32():
    m = _model(None)
    w = m.get_weights()
    big = [a.astype(np.float64) for a in w]
    big[0][0, 0] = 1e300  # finite in float64, inf in float32
    with pytest.raises(ValueError, match=r"weights\[0\]: has values beyond float32's range"):
        m.set_weights(big)
    np.testing.assert_array_equal(m.get_weights()[0], w[0])  # nothing stored
    w[5][1] = -0.5  # BatchNorm running variance
    with pytest.raises(ValueError, match=r"weights\[5\]: a BatchNorm running variance must be"):
        m.set_weights(w)
    w[5][1] = 0.0  # zero variance is legal (eps keeps the division finite)
    m.set_weights(w)
    with pytest.raises(TypeError, match=r"weights\[1\]: expected real numbers"):
        m.set_weights([w[0], w[1].astype(np.complex64)] + w[2:])


def test_predict_says_when_finite_weights_overflow():
    # 3e38 is a legal float32: loadable, but the arithmetic overflows. Said, never a silent NaN.
    m = _model(None)
    w = m.get_weights()
    w[0][:] = 3e38
    m.set_weights(w)
    with pytest.warns(RuntimeWarning, match="outputs overflowed"):
        out = m.predict(np.ones((2, 4)))
    assert not np.isfinite(out).all()


@pytest.mark.parametrize("index, value, words", [
    (0, 1e300, "beyond float32's range"),
    (0, np.nan, "NaN or infinity"),
    (1, -np.inf, "NaN or infinity"),
    (5, -1.0, "running variance must be >= 0"),
])
def test_load_refuses_weights_that_cannot_be_stored(tmp_path, index, value, words):
    _trained(tmp_path / "m")

    def change(arrays, meta):
        key = f"weights/{index:04d}"
        a = arrays[key].astype(np.float64)  # an F64 array, as another writer may produce
        a.flat[0] = value
        arrays[key] = a

    _craft(tmp_path / "m", tmp_path / "bad", change)
    with pytest.raises(ValueError, match=words):
        fastnn.load(tmp_path / "bad")


def _state_change(index, value):
    def change(arrays, meta):
        arrays[f"optimizer/{index:04d}"].flat[0] = value
    return change


def _step(value):
    def change(arrays, meta):
        meta["step"] = value
    return change


def _drop_state(arrays, meta):
    for k in [k for k in arrays if k.startswith("optimizer/")]:
        del arrays[k]


@pytest.mark.parametrize("optimizer, change, words", [
    ("adam", _state_change(0, np.nan), "NaN or infinity"),
    ("adam", _state_change(1, -1e-3), "negative"),           # exp_avg_sq of weights/0000
    ("adam", _state_change(2, -1e-3), "negative"),           # max_exp_avg_sq
    ("adagrad", _state_change(0, -1.0), "negative"),         # sum
    ("rmsprop", _state_change(0, -1.0), "negative"),         # square_avg
    ("sgd", _state_change(0, np.inf), "NaN or infinity"),    # momentum_buffer
    ("adam", _step(-1), "step must be an int"),
    ("adam", _step(0), "step 0 with optimizer state"),
    ("adam", _step(1.5), "step must be an int"),
    ("adam", _step(True), "step must be an int"),
    ("adam", _step(2**80), "step must be an int"),
    ("adam", _step("7"), "step must be an int"),
    ("adam", lambda a, m: m.pop("step"), "step must be an int"),
    ("adam", _drop_state, "optimizer state has 0 arrays"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_load_checks_optimizer_state_for_meaning(tmp_path, optimizer, change, words):
    _trained(tmp_path / "m", optimizer)
    _craft(tmp_path / "m", tmp_path / "bad", change)
    with pytest.raises(ValueError, match=words):
        fastnn.load(tmp_path / "bad")


def test_state_loaded_as_saved_still_resumes(tmp_path):
    # The checks refuse nothing a real save writes: every optimizer, trained and not.
    for opt in ("sgd", "adam", "adamw", "adagrad", "rmsprop",
                optim.RMSprop(momentum=0.5, centered=True), optim.Adam(amsgrad=True)):
        m = _trained(tmp_path / "m", opt)
        got = fastnn.load(tmp_path / "m")
        assert got._net.step == m._net.step > 0
        _model(opt).save(tmp_path / "fresh")
        assert fastnn.load(tmp_path / "fresh")._net.step == 0


# ---- the model description ---------------------------------------------------------------------

def _config(edit):
    def change(arrays, meta):
        edit(meta["fastnn_model"])
    return change


@pytest.mark.parametrize("change, words", [
    (_config(lambda c: c["layers"][0].update(units=7)), "architecture needs"),
    (_config(lambda c: c.update(input_dim=5)), "architecture needs"),
    (_config(lambda c: c.update(layers={"a": 1})), "layers: expected a list"),
    (_config(lambda c: c["layers"].__setitem__(0, [1])), "unknown layer class"),
    (_config(lambda c: c.update(input_dim="4")), "damaged model description"),
    # A text input_dim must not be multiplied out into a huge string (a MemoryError, or worse,
    # before the fix).
    (_config(lambda c: c.update(input_dim="4", layers=[{"class": "Dense", "units": 2**62}])),
     "input_dim: expected an int"),
    (_config(lambda c: c.pop("seed")), "missing key 'seed'"),
    (lambda a, m: m.update(fastnn_model=[1, 2]), "fastnn_model: expected a JSON object"),
    (lambda a, m: m.update(compile="adam"), "compile: expected a JSON object"),
    (lambda a, m: m["compile"].update(optimizer=["adam"]), "optimizer: expected a JSON object"),
    (lambda a, m: m["compile"].update(loss=3), "damaged model description"),
    (lambda a, m: m["compile"].update(clipnorm=-1), "clipnorm"),
    (lambda a, m: m["compile"]["optimizer"]["hyperparams"].update(lr=-1), "lr"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_load_refuses_a_damaged_description(tmp_path, change, words):
    _trained(tmp_path / "m")
    _craft(tmp_path / "m", tmp_path / "bad", change)
    with pytest.raises(ValueError, match=words):
        fastnn.load(tmp_path / "bad")


def test_save_refuses_the_format_keys_in_metadata(tmp_path):
    m = _model()
    for key in ("compile", "step", "fastnn_model", "fastnn_version"):
        with pytest.raises(ValueError, match=f"'{key}' are reserved by the model format"):
            m.save(tmp_path / "m", metadata={key: 1})
        assert not os.listdir(tmp_path)
    m.save(tmp_path / "m", metadata={"note": "mine"})
    assert io.load_arrays(tmp_path / "m")[1]["note"] == "mine"


# ---- bounded loading ---------------------------------------------------------------------------

def test_load_refuses_what_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # In a child process with a time limit: before the fix, opening a FIFO waited for a writer.
    with LoadProbe(timeout=20) as probe:
        for path, words in [(fifo, "is a FIFO"), ("/dev/zero", "is a device"),
                            (tmp_path, "is a directory")]:
            if isinstance(path, str) and not os.path.exists(path):
                continue
            report = probe(path)
            assert report[:2] == ("error", "ValueError") and words in report[2], (path, report)


def test_header_is_checked_before_a_huge_file_is_read(tmp_path):
    # A sparse file of 64 GiB (no disk used): damaged at byte 0, so nothing after needs reading.
    # Before the fix load read it all into memory first (here: a MemoryError under the cap).
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(64 * 2**30)
    valid = tmp_path / "m"
    _trained(valid)
    blob = valid.read_bytes()
    # A valid header and data, followed by 64 GiB of holes: refused from the sizes alone.
    padded = tmp_path / "padded"
    with open(padded, "wb") as f:
        f.write(blob)
        f.truncate(64 * 2**30)
    with LoadProbe(timeout=20) as probe:
        for path, words in [(sparse, "header length 0 is impossible"), (padded, "belong to none")]:
            report = probe(path)
            assert report[:2] == ("error", "ValueError") and words in report[2], report


def test_declared_sizes_larger_than_the_file_allocate_nothing(tmp_path):
    # Small files whose architecture declares gigabytes of weights: refused before allocating
    # (before the fix: the model was built first, 40 GB for the first one).
    _trained(tmp_path / "m")
    edits = [lambda c: c.update(input_dim=10**5, layers=[{"class": "Dense", "units": 10**5}]),
             lambda c: c["layers"][0].update(units=10**8),
             lambda c: c.update(input_dim=10**9),
             lambda c: c["layers"].append({"class": "Dense", "units": 10**9})]
    with LoadProbe(timeout=20) as probe:
        for i, edit in enumerate(edits):
            bad = _craft(tmp_path / "m", tmp_path / f"bad{i}", _config(edit))
            assert os.path.getsize(bad) < 10_000
            report = probe(bad)
            assert report[:2] == ("error", "ValueError") and "architecture needs" in report[2], \
                (i, report)


def _nested(depth):
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("where", ["header", "metadata"])
def test_deeply_nested_json_is_a_clear_error(tmp_path, where):
    depth = 100_000
    if where == "header":
        text = ('{"x": ' + _nested(depth) + "}").encode()
        (tmp_path / "f").write_bytes(len(text).to_bytes(8, "little") + text)
        words = "nests deeper than"
    else:
        # Valid checksums around a metadata value that nests too deep.
        io.save_arrays(tmp_path / "f", {"a": np.zeros(1)}, {"k": 0})
        arrays, meta = io.load_arrays(tmp_path / "f")
        blob = io.dumps_arrays(arrays, {"k": "PLACEHOLDER"})
        blob = _rewrite_metadata(blob, "k", _nested(depth))
        (tmp_path / "f").write_bytes(blob)
        words = "metadata 'k' is not JSON.*nests deeper than"
    with pytest.raises(ValueError, match=words):
        io.load_arrays(tmp_path / "f")
    io.save_arrays(tmp_path / "ok", {"a": np.zeros(1)}, {"k": [[[[1]]]]})  # shallow is fine
    assert io.load_arrays(tmp_path / "ok")[1] == {"k": [[[[1]]]]}


@pytest.mark.parametrize("body, words", [
    (b"[" + b",".join([b"{}"] * 1_000_001) + b"]", "1,000,000 JSON objects/lists"),
    (b"[" + b",".join([b"0"] * 4_000_001) + b"]", "4,000,000 values"),
])
def test_a_header_of_countless_tiny_values_is_refused_unparsed(tmp_path, body, words):
    # Parsed, "{}," costs ~65 bytes per 3 bytes of text: refused from a count instead.
    text = b'{"x": ' + body + b"}"
    (tmp_path / "f").write_bytes(len(text).to_bytes(8, "little") + text)
    with pytest.raises(ValueError, match=words):
        io.load_arrays(tmp_path / "f")


def _rewrite_metadata(blob, key, raw_json):
    """blob with metadata[key] replaced by the raw JSON text raw_json, checksums recomputed."""
    import hashlib
    import json

    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    header["__metadata__"][key] = raw_json
    header["__metadata__"]["header_checksum"] = hashlib.sha256(io._canonical(header)).hexdigest()
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


# ---- temporary files of killed saves -----------------------------------------------------------

_KILLED_SAVE = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from fastnn import io
    def die(fd):  # the process is killed between writing the data and renaming the file
        os.kill(os.getpid(), signal.SIGKILL)
    io.os.fsync = die
    io.save_arrays(sys.argv[1], {"w": np.ones((256, 256), np.float32)})
""")


def _temps(directory):
    return sorted(n for n in os.listdir(directory) if n.endswith(".tmp"))


def test_next_save_removes_the_temp_file_of_a_killed_save(tmp_path):
    path = tmp_path / "model.safetensors"
    io.save_arrays(path, {"w": np.zeros(3)})
    left = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", _KILLED_SAVE, str(path)], timeout=60)
        assert done.returncode == -signal.SIGKILL
        left.append(_temps(tmp_path))
    # What kill -9 leaves behind; the second killed save had already removed the first's.
    assert len(left[0]) == 1 and len(left[1]) == 1 and left[0] != left[1]
    np.testing.assert_array_equal(io.load_arrays(path)[0]["w"], np.zeros(3))  # old file intact
    # A live process's temp file (a save in progress elsewhere) and other paths' temps stay.
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ours = tmp_path / f".model.safetensors.{live.pid}.abcd1234.tmp"
        other = tmp_path / ".model.safetensors.5.1.abcd1234.tmp"  # a temp of "model.safetensors.5"
        ours.write_bytes(b"x")
        other.write_bytes(b"x")
        io.save_arrays(path, {"w": np.ones(3)})
        assert _temps(tmp_path) == sorted([ours.name, other.name])
    finally:
        live.kill()
        live.wait()
    np.testing.assert_array_equal(io.load_arrays(path)[0]["w"], np.ones(3))
    # Through Sequential.save too, once the writer is gone.
    _model().save(path)
    assert _temps(tmp_path) == [other.name]
    assert stat.S_ISREG(os.stat(path).st_mode)
