"""File fuzzing: fastnn.load on crafted and mutated model files, in a child process with a memory
cap and a time limit (tests/_load_probe.py).

Crafted files carry recomputed checksums, so they reach the checks behind the checksum: wrong
dtypes, shapes that disagree with byte ranges, overlapping or out-of-range offsets, huge declared
sizes, NaN / inf / 1e300 weights, bad optimizer state, negative running variances, bad steps,
deeply nested JSON, wrong metadata types. Mutated files are valid files with random bit flips,
truncations and overwrites, some re-checksummed, some not. Every file must give a clean
ValueError or a model whose predictions are finite (or that warns that they are not): never a
crash, a hang, a MemoryError from a declared size, or a silent NaN.

The default run is small (a few seconds); `--runslow` runs a larger budget."""

import copy
import hashlib
import json

import numpy as np
import pytest

import fastnn
from fastnn import io, optim
from fastnn.layers import Activation, BatchNorm, Dense, Dropout
from fastnn.losses import SampledSoftmax

from _load_probe import LoadProbe

# ---- base files --------------------------------------------------------------------------------


def _base_models():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 3)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    out = {}
    m = fastnn.Sequential([Dense(5, "relu"), BatchNorm(), Dropout(0.2), Dense(3)], input_dim=3)
    m.compile("softmax_cross_entropy", optim.Adam(amsgrad=True), metrics=["accuracy"])
    m.fit(X, y, epochs=1, batch_size=8, verbose=0)
    out["adam_bn"] = m
    m = fastnn.Sequential([Dense(4, "tanh"), Activation("elu"), Dense(1)], input_dim=3)
    m.compile("mse", optim.SGD(lr=0.01, momentum=0.9, schedule=optim.StepLR(2)), clipnorm=1.0)
    m.fit(X, y.astype(np.float32), epochs=1, batch_size=8, verbose=0)
    out["sgd_regression"] = m
    m = fastnn.Sequential([Dense(4, "relu"), Dense(3, "softmax")], input_dim=3)
    m.compile("softmax_cross_entropy", optim.Adagrad(initial_accumulator_value=0.1))
    out["adagrad_unfitted"] = m
    out["uncompiled"] = fastnn.Sequential([Dense(2, "sigmoid")], input_dim=3)
    m = fastnn.Sequential([Dense(4, "relu"), Dense(20)], input_dim=3)
    m.compile(SampledSoftmax(num_sampled=4), optim.RMSprop(centered=True, momentum=0.5))
    m.fit(X, rng.integers(0, 20, 32), epochs=1, batch_size=8, verbose=0)
    out["sampled_rmsprop"] = m
    return out


def _split(blob):
    """(header dict, data bytes) of a file's bytes."""
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def _join(header, data, checksums=True):
    """A file's bytes from a header and data, with both checksums recomputed (as a forger would)."""
    header = copy.deepcopy(header)
    meta = header.get("__metadata__")
    if checksums and isinstance(meta, dict):
        meta["header_checksum"] = hashlib.sha256(io._canonical(header)).hexdigest()
        meta["checksum"] = hashlib.sha256(data).hexdigest()
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


# ---- crafted files -----------------------------------------------------------------------------

def _entries(header):
    return [k for k in header if k != "__metadata__"]


def _crafted(blob):
    """(name, bytes) of hand-made damage to one valid file, checksums recomputed."""
    header, data = _split(blob)
    meta = header["__metadata__"]
    model = json.loads(meta["fastnn_model"])
    names = _entries(header)
    first = names[0]
    out = []

    def variant(name, edit_header=None, new_data=None, edit_meta=None, edit_model=None):
        h = copy.deepcopy(header)
        if edit_model is not None:
            mdl = copy.deepcopy(model)
            edit_model(mdl)
            h["__metadata__"]["fastnn_model"] = json.dumps(mdl)
        if edit_meta is not None:
            edit_meta(h["__metadata__"])
        if edit_header is not None:
            edit_header(h)
        out.append((name, _join(h, data if new_data is None else new_data)))

    def entry(key, value, name=first):
        return lambda h: h[name].__setitem__(key, value)

    for code in ("F16", "F64", "I8", "U64", "BOOL", "I64", "Q9", 7, None):
        variant(f"dtype {code}", entry("dtype", code))
    for shape in ([], [0], [2**62], [2**31, 2**31], [-1], [1.5], "3", None, [[1]], [10**30]):
        variant(f"shape {shape}", entry("shape", shape))
    begin, end = header[first]["data_offsets"]
    for offsets in ([begin, end + 4], [begin + 4, end], [0, 2**62], [end, begin], [-4, end],
                    [begin], [0.0, end], "0", [0, len(data) + 8]):
        variant(f"offsets {offsets}", entry("data_offsets", offsets))
    if len(names) > 1:
        second = names[1]
        b2, e2 = header[second]["data_offsets"]
        variant("overlap", lambda h: h[second].__setitem__("data_offsets", [b2 - 4, e2 - 4]))
        variant("swapped", lambda h: (h[first].__setitem__("data_offsets", [b2, e2]),
                                      h[second].__setitem__("data_offsets", [begin, end])))
    variant("extra entry", lambda h: h.__setitem__("zzz", {"dtype": "F32", "shape": [2**40],
                                                           "data_offsets": [0, 4]}))
    variant("entry not a dict", lambda h: h.__setitem__(first, [1, 2]))
    variant("metadata not a dict", lambda h: h.__setitem__("__metadata__", ["x"]))
    variant("metadata value not a string", lambda h: h["__metadata__"].__setitem__("step", 3))
    variant("truncated data", new_data=data[:-4])
    variant("appended data", new_data=data + b"\0" * 8)

    # Values inside the arrays (the first float array is weights/0000).
    for value in (np.nan, np.inf, -np.inf, 3.0e38, 1e-45):
        new = bytearray(data)
        new[begin:begin + 4] = np.float32(value).tobytes()
        variant(f"weight {value}", new_data=bytes(new))
    f64 = np.frombuffer(data[begin:end], "<f4").astype("<f8")
    f64[0] = 1e300
    tail = data[end:]
    shift = len(f64.tobytes()) - (end - begin)

    def widen(h):
        h[first]["dtype"] = "F64"
        h[first]["data_offsets"] = [begin, begin + len(f64.tobytes())]
        for k in names:
            if k != first and h[k]["data_offsets"][0] >= end:
                h[k]["data_offsets"] = [o + shift for o in h[k]["data_offsets"]]
    variant("F64 weight 1e300", widen, data[:begin] + f64.tobytes() + tail)
    for name in names:
        if name.startswith("optimizer/"):
            b, e = header[name]["data_offsets"]
            for value in (np.nan, -1.0, np.inf):
                new = bytearray(data)
                new[b:b + 4] = np.float32(value).tobytes()
                variant(f"{name} = {value}", new_data=bytes(new))

    # The model description and compile arguments.
    for key, value in [("input_dim", 0), ("input_dim", 10**9), ("input_dim", "3"),
                       ("input_dim", True), ("seed", -1), ("seed", 2**64), ("layers", []),
                       ("layers", "dense"), ("layers", [[]] * 3)]:
        variant(f"model {key}={value!r}", edit_model=lambda m, k=key, v=value: m.__setitem__(k, v))
    for value in ({"class": "Dense", "units": 10**9}, {"class": "Dense", "units": 0},
                  {"class": "Dense", "units": 3, "activation": "nope"}, {"class": "BatchNorm",
                  "eps": -1}, {"class": "Dropout", "rate": 2}, {"class": "Eval"}, {}, None):
        variant(f"layer {value!r}", edit_model=lambda m, v=value: m["layers"].append(v))
    variant("units 10**8", edit_model=lambda m: m["layers"][0].update(units=10**8))
    for key, value in [("step", "-1"), ("step", "0"), ("step", "1.5"), ("step", "true"),
                       ("step", "null"), ("step", str(2**70)), ("compile", "[]"),
                       ("compile", '{"loss": "mse"}'), ("fastnn_model", "3"),
                       ("fastnn_model", "[" * 5000 + "]" * 5000), ("format_version", "2"),
                       ("format_version", "x")]:
        variant(f"meta {key}={value[:20]}", edit_meta=lambda m, k=key, v=value: m.__setitem__(k, v))
    if "compile" in meta:
        comp = json.loads(meta["compile"])
        for key, value in [("loss", "nope"), ("loss", 3), ("optimizer", {"kind": "adam",
                           "hyperparams": {"lr": -1}}), ("optimizer", {"kind": "lbfgs"}),
                           ("optimizer", "sgd"), ("metrics", ["nope"]), ("clipnorm", 0),
                           ("sampled", {"num_sampled": 10**12}), ("sampled", {"num_sampled": 0})]:
            c = dict(comp, **{key: value})
            variant(f"compile {key}={value!r}"[:60],
                    edit_meta=lambda m, c=c: m.__setitem__("compile", json.dumps(c)))
    text = b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    out.append(("nested header", len(text).to_bytes(8, "little") + text))
    text = b'{"x": [' + b",".join([b"{}"] * 1_100_000) + b"]}"
    out.append(("a million tiny containers", len(text).to_bytes(8, "little") + text))
    out.append(("header length 2**63", (2**63).to_bytes(8, "little") + blob[8:]))
    out.append(("empty", b""))
    return out


# ---- random mutations --------------------------------------------------------------------------

_POOL = [None, True, False, -1, 0, 1, 3, 2**31, 2**63, 10**30, -1e308, 1e308, 0.5, "", "relu",
         "adam", "F32", [], {}, [1, 2], [2**62], {"class": "Dense", "units": 10**9}]


def _leaf_paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaf_paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaf_paths(v, path + (i,))


def _replace(node, path, value):
    if not path:
        return value
    node = copy.deepcopy(node)
    target = node
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return node


def _mutated(blob, rng):
    """(name, bytes): one random mutation of a valid file."""
    kind = rng.integers(6)
    header, data = _split(blob)
    if kind == 0:  # bit flips anywhere, checksums left as they are
        new = bytearray(blob)
        for _ in range(int(rng.integers(1, 4))):
            new[rng.integers(len(new))] ^= 1 << int(rng.integers(8))
        return "bit flips", bytes(new)
    if kind == 1:  # truncation
        return "truncation", blob[:int(rng.integers(len(blob)))]
    if kind == 2:  # bit flips in the data section, re-checksummed
        new = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            new[rng.integers(len(new))] ^= 1 << int(rng.integers(8))
        return "data flips (re-checksummed)", _join(header, bytes(new))
    if kind == 3:  # one value of the safetensors header replaced, re-checksummed
        paths = [p for p in _leaf_paths(header) if p and p[0] != "__metadata__"]
        path = paths[rng.integers(len(paths))]
        return f"header {path}", _join(_replace(header, path, _POOL[rng.integers(len(_POOL))]),
                                       data)
    # One value inside the JSON metadata (the model description, compile arguments, step).
    meta = header["__metadata__"]
    keys = [k for k in meta if k not in ("checksum", "header_checksum", "format")]
    key = keys[rng.integers(len(keys))]
    try:
        value = json.loads(meta[key])
    except ValueError:
        value = meta[key]
    paths = list(_leaf_paths(value))
    path = paths[rng.integers(len(paths))]
    new = json.dumps(_replace(value, path, _POOL[rng.integers(len(_POOL))]))
    h = copy.deepcopy(header)
    h["__metadata__"][key] = new if key != "format_version" else new.strip('"')
    return f"meta {key} {path}", _join(h, data, checksums=kind == 4)


# ---- the runs ----------------------------------------------------------------------------------

def _run(tmp_path, files):
    """Probe every (name, bytes); returns (counts, failures)."""
    counts = {"files": 0, "refused": 0, "loaded": 0, "crash": 0, "hang": 0}
    failures = []
    with LoadProbe(timeout=30) as probe:
        for i, (name, blob) in enumerate(files):
            path = tmp_path / f"f{i}"
            path.write_bytes(blob)
            report = probe(path)
            counts["files"] += 1
            kind = report[0]
            if kind == "error" and report[1] == "ValueError":
                counts["refused"] += 1
            elif kind == "model" and report[1]:
                counts["loaded"] += 1
            else:
                if kind in ("crash", "hang"):
                    counts[kind] += 1
                failures.append((name, report))
            path.unlink()
    return counts, failures


def _fuzz(tmp_path, mutations_per_base, seed):
    bases = {name: _blob(tmp_path, m) for name, m in _base_models().items()}
    files = []
    for base, blob in bases.items():
        files += [(f"{base}: {name}", b) for name, b in _crafted(blob)]
    rng = np.random.default_rng(seed)
    for base, blob in bases.items():
        files += [(f"{base}: {name}", b)
                  for name, b in (_mutated(blob, rng) for _ in range(mutations_per_base))]
    counts, failures = _run(tmp_path, files)
    print(f"fuzz: {counts}")
    assert not failures, "\n".join(f"{name}: {report}" for name, report in failures[:40])
    return counts


def _blob(tmp_path, model):
    model.save(tmp_path / "base")
    return (tmp_path / "base").read_bytes()


def test_fuzz_model_files(tmp_path):
    counts = _fuzz(tmp_path, mutations_per_base=20, seed=1)
    assert counts["refused"] > counts["loaded"] > 0  # both outcomes reached


@pytest.mark.slow
def test_fuzz_model_files_long(tmp_path):
    _fuzz(tmp_path, mutations_per_base=2000, seed=np.random.SeedSequence().entropy % 2**32)
