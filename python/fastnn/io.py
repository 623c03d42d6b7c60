"""Safe array files: the safetensors format, written and read here with no dependency.

Layout (https://github.com/huggingface/safetensors):
    8 bytes   N, the header length, unsigned little-endian
    N bytes   JSON: {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
                     "__metadata__": {str: str}}, padded with spaces to a multiple of 8
    the rest  the arrays' raw little-endian bytes; offsets are relative to the start of this part

fastnn adds to __metadata__: "format": "fastnn", "format_version": "1", "checksum" (SHA-256 of the
data section, so flipped bits in the arrays are caught) and "header_checksum" (SHA-256 of the
header's canonical JSON without the two checksums, so a damaged name, shape or metadata value is
caught too). The caller's metadata values are stored as JSON strings. Loading parses JSON and raw
bytes only: no pickle, no eval, nothing in a file can run code.

Loading is bounded by the file: only regular files are read (a FIFO or a device is refused without
blocking), the header is read first and checked (length, JSON nesting, every array inside the
file's own size) before the data section is read, so a damaged or crafted file costs at most its
own size in memory. dumps_arrays / loads_arrays do the same on bytes (pickling models uses them).

Model files (`Sequential.save`, `fastnn.load`, pickling) are such files: the weights in get_weights
order, optionally the optimizer state, and in the metadata the architecture, the compile arguments
and the step count, so that a loaded model predicts the same and can resume training. A model file
is checked for meaning before and after the model is built: the architecture must declare exactly
the weights the file holds (so a small file cannot make `load` allocate a huge model), weights and
optimizer state must be finite in the model's dtype, variances and second moments >= 0, and the
step count a non-negative int consistent with the state. This module builds models without
importing fastnn.model: the caller passes the class (fastnn.model.load, unpickling)."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import numbers
import os
import stat
import tempfile
from collections.abc import Mapping
from io import FileIO
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastnn import layers as layers_mod
from fastnn import optim as optim_mod
from fastnn._checks import finite_as, integer
from fastnn._typing import PathLike
from fastnn.losses import SampledSoftmax

__all__ = ["save_arrays", "load_arrays", "dumps_arrays", "loads_arrays", "FORMAT_VERSION"]

FORMAT_NAME = "fastnn"
FORMAT_VERSION = 1
_RESERVED = ("format", "format_version", "checksum", "header_checksum")
# The safetensors reference reader refuses headers above 100 MB; a larger length means damage.
_MAX_HEADER = 100_000_000
# Nesting deeper than this in the header or a metadata value is damage (a model description is
# about 6 levels deep); it also keeps json and the checks below far from Python's recursion limit.
_MAX_DEPTH = 64
# Parsed JSON takes ~20 times its text in memory when the text is all tiny containers ("{},{},..."):
# the number of values is capped too, far above any real header (~3 containers and ~6 values per
# array: a 50,000-tensor checkpoint has 150,000 containers), so a header costs at most ~200 MB.
_MAX_CONTAINERS = 1_000_000
_MAX_VALUES = 4_000_000

_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype("<u1"), "I8": np.dtype("<i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8"),
}
_CODES = {(dt.kind, dt.itemsize): code for code, dt in _DTYPES.items()}


def _as_array(name: str, value: Any) -> tuple[str, NDArray[Any]]:
    """value as a C-contiguous little-endian array of a safetensors dtype (TypeError otherwise)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"arrays: keys must be non-empty strings, got {name!r}")
    if name == "__metadata__":
        raise ValueError("arrays: the key '__metadata__' is reserved by the format")
    if isinstance(value, (np.ndarray, np.generic)):
        arr = np.asarray(value)
    elif hasattr(value, "numpy") and callable(value.numpy):
        arr = np.asarray(value.numpy())          # fastnn.Tensor and friends: copy to host
    elif hasattr(value, "__array__"):
        arr = np.asarray(value)
    else:
        raise TypeError(f"arrays[{name!r}]: expected a NumPy array, got {type(value).__name__}")
    code = _CODES.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None:
        raise TypeError(f"arrays[{name!r}]: dtype {arr.dtype} has no safetensors code; "
                        f"supported: {', '.join(str(d) for d in _DTYPES.values())}")
    # asarray, not ascontiguousarray: the latter turns 0-d arrays into shape (1,).
    return code, np.asarray(arr, dtype=_DTYPES[code], order="C")


def _canonical(header: dict[str, Any]) -> bytes:
    """Bytes the header checksum covers: the header without the checksums, in one fixed spelling."""
    meta = {k: v for k, v in header.get("__metadata__", {}).items()
            if k not in ("checksum", "header_checksum")}
    body = {k: v for k, v in header.items() if k != "__metadata__"}
    body["__metadata__"] = meta
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _encode(arrays: Mapping[str, ArrayLike],
            metadata: Mapping[str, Any] | None) -> tuple[bytes, list[bytes]]:
    if not isinstance(arrays, dict):
        raise TypeError(f"arrays: expected a dict of name -> array, got {type(arrays).__name__}")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata: expected a dict, got {type(metadata).__name__}")
    meta = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"metadata: keys must be strings, got {key!r}")
        if key in _RESERVED:
            raise ValueError(f"metadata: the key {key!r} is reserved by fastnn's format")
        try:
            # allow_nan=False: NaN is not JSON, and other readers would choke on it.
            meta[key] = json.dumps(value, allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"metadata[{key!r}]: expected a JSON value (dict, list, str, "
                            f"number, bool, None), got {type(value).__name__} ({exc})") from None
    header, chunks, offset = {}, [], 0
    for name, value in arrays.items():
        code, arr = _as_array(name, value)
        raw = arr.tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    digest = hashlib.sha256()
    for raw in chunks:
        digest.update(raw)
    meta.update(format=FORMAT_NAME, format_version=str(FORMAT_VERSION))
    header["__metadata__"] = meta
    meta["header_checksum"] = hashlib.sha256(_canonical(header)).hexdigest()
    meta["checksum"] = digest.hexdigest()
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode()
    # Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, chunks


def dumps_arrays(arrays: Mapping[str, ArrayLike],
                 metadata: Mapping[str, Any] | None = None) -> bytes:
    """The bytes save_arrays would write: a safetensors file in memory."""
    head, chunks = _encode(arrays, metadata)
    return b"".join([head, *chunks])


def save_arrays(path: PathLike, arrays: Mapping[str, ArrayLike],
                metadata: Mapping[str, Any] | None = None) -> None:
    """Write a dict of arrays (and JSON-able metadata) to `path` as a safetensors file, atomically.

    The file is written to a temporary file in the same directory, flushed to disk and renamed over
    `path`, so a crash or an error leaves either the old file or the new one, never a partial one.
    A temporary file left by a save that was killed (kill -9, power loss) is removed by the next
    save to the same path. Raises TypeError for values that are not arrays of a supported dtype or
    not JSON-able."""
    path = os.fspath(path)
    # Everything that can be refused is refused before the first byte touches the disk.
    head, chunks = _encode(arrays, metadata)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    prefix = _temp_prefix(path)
    _remove_stale_temps(directory, prefix)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f"{prefix}{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            for raw in chunks:
                f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)


def _temp_prefix(path: str) -> str:
    # ".<name>.<pid>.<random>.tmp": hidden, tied to its target, and naming the writer's process
    # so that the next save can tell a dead writer's leftover from a live one's file in progress.
    return "." + os.path.basename(path) + "."


def _remove_stale_temps(directory: str, prefix: str) -> None:
    """Delete the temporary files of earlier saves to the same path whose process is gone."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        # Exactly "<pid>.<random>" between them: the temps of "m.5" are not those of "m".
        pid, dot, rand = name[len(prefix):-len(".tmp")].partition(".")
        if not (pid.isdigit() and dot and rand and "." not in rand) or _process_alive(int(pid)):
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass  # removed by someone else meanwhile, or not ours to remove


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process may be saving right now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError as e:
        return e.errno != errno.ESRCH  # EPERM: alive, another user's
    return True


def _fsync_dir(directory: str) -> None:
    """Make the rename itself durable; best effort (some systems cannot open directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r} in the header")
        seen[key] = value
    return seen


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _json(text: bytes | str, what: str) -> Any:
    """json.loads with duplicate keys and nesting deeper than _MAX_DEPTH refused (ValueError)."""
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise ValueError(f"{what} nests deeper than {_MAX_DEPTH} levels") from None
    # An explicit stack, not recursion: the depth is what is being checked.
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > _MAX_DEPTH:
                raise ValueError(f"{what} nests deeper than {_MAX_DEPTH} levels")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return value


def _header_length(first8: bytes | bytearray | memoryview, size: int, where: str) -> int:
    """N from the first 8 bytes, checked against the cap and the `size` bytes available."""
    if size < 8:
        raise ValueError(f"{where}: truncated: {size} bytes, shorter than the 8-byte header length")
    n = int.from_bytes(first8, "little")
    if n < 2 or n > _MAX_HEADER:
        raise ValueError(f"{where}: not a safetensors file (header length {n} is impossible)")
    if 8 + n > size:
        raise ValueError(f"{where}: truncated: header of {n} bytes but only {size - 8} bytes "
                         f"follow the length")
    return n


def _parse_header(text: bytes | bytearray | memoryview, where: str) -> dict[str, Any]:
    text = bytes(text)
    # Counted on the raw text, brackets inside strings included: a bound, found without parsing.
    containers = text.count(b"{") + text.count(b"[")
    if containers > _MAX_CONTAINERS or containers + text.count(b",") > _MAX_VALUES:
        raise ValueError(f"{where}: damaged or not a model file: its header holds more than "
                         f"{_MAX_CONTAINERS:,} JSON objects/lists or {_MAX_VALUES:,} values")
    try:
        header = _json(text.decode("utf-8"), "the header")
    except UnicodeDecodeError:
        raise ValueError(f"{where}: damaged or not a safetensors file (header is not UTF-8)") \
            from None
    except ValueError as exc:        # json.JSONDecodeError, duplicate keys, nesting
        raise ValueError(f"{where}: damaged or not a safetensors file (bad JSON header: {exc})") \
            from None
    if not isinstance(header, dict):
        raise ValueError(f"{where}: damaged: the header is a JSON {type(header).__name__}, "
                         f"expected an object")
    return header


def _check_entries(header: dict[str, Any], data_len: int, where: str) -> list[Any]:
    """(name, dtype, shape, begin, end) for every array, after checking that the offsets tile the
    data section exactly: in bounds, no overlap, no gap, nothing left over."""
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{where}: damaged entry {name!r}: expected keys dtype, shape, "
                             f"data_offsets, got {info!r}")
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(code, str) or code not in _DTYPES:
            raise ValueError(f"{where}: array {name!r} has dtype {code!r}, which fastnn cannot "
                             f"read (known: {', '.join(_DTYPES)})")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise ValueError(f"{where}: array {name!r} has a bad shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(_is_count(o) for o in offsets)):
            raise ValueError(f"{where}: array {name!r} has bad data_offsets {offsets!r}")
        begin, end = offsets
        if not begin <= end <= data_len:
            raise ValueError(f"{where}: array {name!r} has data_offsets [{begin}, {end}] outside "
                             f"the {data_len}-byte data section (truncated file?)")
        expected = _DTYPES[code].itemsize * int(np.prod(shape, dtype=object))
        if end - begin != expected:
            raise ValueError(f"{where}: array {name!r} of shape {shape} {code} needs {expected} "
                             f"bytes, its offsets span {end - begin}")
        entries.append((name, _DTYPES[code], tuple(shape), begin, end))
    covered = 0
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin != covered:
            problem = "overlaps another array" if begin < covered else "leaves a gap before it"
            raise ValueError(f"{where}: array {name!r} at bytes [{begin}, {end}] {problem}")
        covered = end
    if covered != data_len:
        raise ValueError(f"{where}: damaged: {data_len - covered} bytes after the last array "
                         f"belong to none")
    return entries


def _read_metadata(header: dict[str, Any], data: Any, where: str,
                   allow_foreign: bool) -> dict[str, Any]:
    raw = header.get("__metadata__", {})
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in raw.items()):
        raise ValueError(f"{where}: damaged: __metadata__ must map strings to strings")
    if raw.get("format") != FORMAT_NAME:
        if allow_foreign:
            return dict(raw)
        raise ValueError(f"{where}: not a fastnn file (its __metadata__ has no "
                         f"format={FORMAT_NAME!r}); pass allow_foreign=True to read another "
                         f"program's safetensors file")
    version = raw.get("format_version", "")
    if not version.isdigit():
        raise ValueError(f"{where}: damaged: format_version {version!r} is not a number")
    if int(version) > FORMAT_VERSION:
        raise ValueError(f"{where}: written by a newer fastnn (format_version {version}); this "
                         f"version reads up to {FORMAT_VERSION}: upgrade fastnn")
    expected = raw.get("header_checksum")
    if expected != hashlib.sha256(_canonical(header)).hexdigest():
        raise ValueError(f"{where}: damaged: the header checksum does not match (names, shapes "
                         f"or metadata were altered)")
    if raw.get("checksum") != hashlib.sha256(data).hexdigest():
        raise ValueError(f"{where}: damaged: the data checksum does not match (the array bytes "
                         f"were altered or truncated)")
    meta = {}
    for key, text in raw.items():
        if key in _RESERVED:
            continue
        try:
            meta[key] = _json(text, f"metadata {key!r}")
        except ValueError as exc:
            raise ValueError(f"{where}: damaged: metadata {key!r} is not JSON ({exc})") from None
    return meta


def _decode(header: dict[str, Any], data: Any, where: str,
            allow_foreign: bool) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    entries = _check_entries(header, len(data), where)
    meta = _read_metadata(header, data, where, allow_foreign)
    arrays = {}
    for name, dtype, shape, begin, end in entries:
        flat = np.frombuffer(data[begin:end], dtype=dtype)
        # astype(native) copies, giving a writable array that does not pin the whole file in memory.
        arrays[name] = flat.astype(dtype.newbyteorder("="), copy=True).reshape(shape)
    return arrays, meta


def loads_arrays(blob: bytes | bytearray | memoryview,
                 allow_foreign: bool = False) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """load_arrays on bytes (from dumps_arrays): (dict of arrays, metadata dict)."""
    blob = memoryview(blob).cast("B")
    where = "<bytes>"
    n = _header_length(blob[:8], len(blob), where)
    header = _parse_header(blob[8:8 + n], where)
    return _decode(header, blob[8 + n:], where, allow_foreign)


def load_arrays(path: PathLike,
                allow_foreign: bool = False) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """Read a file written by save_arrays: (dict of arrays, metadata dict).

    Arrays come back in the saved order as writable, native-byte-order copies; metadata holds the
    values given to save_arrays (without the format's own keys). Any damage (truncation, flipped
    bytes, another format) raises ValueError naming the problem, and so does a path that is not a
    regular file (a directory, FIFO or device). allow_foreign=True also reads safetensors files
    from other programs (no checksum to verify; metadata as raw strings)."""
    path = os.fspath(path)
    where = repr(path)
    with _open_regular(path, where) as f:
        size = os.fstat(f.fileno()).st_size
        n = _header_length(_read_exactly(f, min(size, 8), where), size, where)
        header = _parse_header(_read_exactly(f, n, where), where)
        # The entries are checked against the size on disk before the data section is read: a
        # header declaring more than the file holds costs nothing.
        _check_entries(header, size - 8 - n, where)
        data = _read_exactly(f, size - 8 - n, where)
        if f.read(1):
            raise ValueError(f"{where}: the file grew while it was read")
    return _decode(header, memoryview(data), where, allow_foreign)


def _open_regular(path: PathLike, where: str) -> FileIO:
    """The file at `path`, opened for reading, if it is a regular file (ValueError otherwise).

    O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer; fstat then
    tells what was opened, without reading a byte of a FIFO or a device such as /dev/zero."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
            raise ValueError(f"{where}: is {kind}; fastnn reads model files from regular files "
                             f"only")
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def _read_exactly(f: FileIO, count: int, where: str) -> bytearray:
    """`count` bytes from f into one preallocated buffer (ValueError if the file is shorter)."""
    buf = bytearray(count)
    view, done = memoryview(buf), 0
    while done < count:
        got = f.readinto(view[done:])
        if not got:
            raise ValueError(f"{where}: truncated: the file ended {count - done} bytes early "
                             f"(it shrank while it was read)")
        done += got
    return buf


# ------------------------------------------------------------------ model files
FORMAT_KEY = "fastnn_model"
# Metadata keys the model format itself writes; a caller's metadata may not use them.
MODEL_KEYS = (FORMAT_KEY, "fastnn_version", "compile", "step")
# The engine's step counter is an int64; anything near that is damage, not a long training run.
_MAX_STEP = 2**53
# Per optimizer kind, the engine's state slots that hold squares (never negative). The engine keeps
# 1 slot per parameter for sgd/adagrad and 3 for the others (csrc/engine: optim_states).
_SQUARE_SLOTS = {"adam": (1, 2), "adamw": (1, 2), "adagrad": (0,), "rmsprop": (0,)}
# Other kinds of model stored in this format, by the metadata key that marks their files:
# key -> reader(arrays, meta, where, device, precision). Each registers itself when imported
# (fastnn.quantized: int8 models), so that this module imports none of them.
MODEL_READERS = {}


def model_arrays(model: Any, include_optimizer: bool = True,
                 metadata: Mapping[str, Any] | None = None
                 ) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """(arrays, metadata) of the model file: weights, optimizer state (include_optimizer) and the
    description. The caller keeps the model still meanwhile (Sequential._to_arrays)."""
    from fastnn import __version__

    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"metadata: expected a dict, got {type(metadata).__name__}")
    clash = sorted(k for k in (metadata or {}) if k in MODEL_KEYS)
    if clash:
        raise ValueError(f"metadata: the keys {', '.join(map(repr, clash))} are reserved by the "
                         f"model format (reserved: {', '.join(MODEL_KEYS)})")
    arrays = {f"weights/{i:04d}": w for i, w in enumerate(model.get_weights())}
    meta = dict(metadata or {})
    meta.update({FORMAT_KEY: model.get_config(), "fastnn_version": __version__})
    if model.loss is not None:
        meta["compile"] = {"loss": model.loss, "optimizer": model.optimizer.get_config(),
                           "metrics": list(model.metrics), "clipnorm": model.clipnorm}
        if getattr(model, "sampled", None) is not None:
            meta["compile"]["sampled"] = model.sampled.get_config()
        if include_optimizer:
            for i, s in enumerate(model._net.read("state")[0]):
                arrays[f"optimizer/{i:04d}"] = s
            meta["step"] = int(model._net.step)
    return arrays, meta


def model_from_arrays(cls: Any, arrays: Mapping[str, NDArray[Any]], meta: dict[str, Any],
                      where: str, device: str = "cpu", precision: str = "fp32", strict: bool = True,
                      options: Mapping[str, Any] | None = None) -> Any:
    """The model of class `cls` (fastnn.Sequential) a model file's (arrays, metadata) describe,
    compiled as it was and with its optimizer state. where: the file, for messages. strict=False
    (unpickling, whose data is trusted) gives back the values as they were, even weights or
    state that diverged to NaN; the structure is checked all the same. options: further
    arguments of `cls` (fused_mlp, ...). A file of another kind of model (MODEL_READERS) is
    read by that kind's reader."""
    for key, reader in MODEL_READERS.items():
        if key in meta and FORMAT_KEY not in meta:
            return reader(arrays, meta, where, device, precision)
    if FORMAT_KEY not in meta:
        raise ValueError(f"{where}: not a fastnn model file (no {FORMAT_KEY!r} in its metadata)")
    weight_keys = sorted(k for k in arrays if k.startswith("weights/"))
    state_keys = sorted(k for k in arrays if k.startswith("optimizer/"))
    try:
        config = _dict(meta[FORMAT_KEY], FORMAT_KEY)
        if not isinstance(config["layers"], list):
            raise TypeError(f"layers: expected a list, got {type(config['layers']).__name__}")
        layers = [layers_mod.from_config(c) for c in config["layers"]]
        # Before anything is allocated: the architecture must need exactly the weights stored
        # (counted in ints: a text input_dim would multiply out into a huge string).
        input_dim = integer(config["input_dim"], "input_dim")
        sizes = [math.prod(shape) for _, shape in layers_mod.weight_shapes(layers, input_dim)]
        stored = [arrays[k].size for k in weight_keys]
        if sizes != stored:
            raise ValueError(f"the architecture needs {len(sizes)} weight arrays of "
                             f"{sizes} values, the file holds {len(stored)} of {stored}")
        model = cls(layers, input_dim=config["input_dim"], seed=config["seed"],
                    device=device, precision=precision,
                    dtype=config.get("dtype", "float32"), **(options or {}))
        if "compile" in meta:
            c = _dict(meta["compile"], "compile")
            loss = c["loss"]
            if c.get("sampled") is not None:
                loss = SampledSoftmax(**_dict(c["sampled"], "sampled"))
            model.compile(loss, optim_mod.get(_dict(c["optimizer"], "optimizer")),
                          c["metrics"], c["clipnorm"])
        shapes = [w.shape for w in model.get_weights()]
        model._put_weights([_one_row_as_2d(arrays[k], shape)
                            for k, shape in zip(weight_keys, shapes)], check_values=strict)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        text = f"missing key {e}" if isinstance(e, KeyError) else str(e)
        raise ValueError(f"{where}: damaged model description: {text}") from None
    if state_keys or "step" in meta:
        _restore_optimizer(model, [arrays[k] for k in state_keys], meta, where, strict)
    return model


def _one_row_as_2d(stored: NDArray[Any], shape: tuple[int, ...]) -> NDArray[Any]:
    """Files written by fastnn 0.1.0 before parameters carried their shape hold a one-row kernel
    (input_dim 1, or after a width-1 layer) and its optimizer state as 1-D (out,): read as
    (1, out)."""
    if stored.ndim == 1 and len(shape) == 2 and shape[0] == 1 and stored.shape[0] == shape[1]:
        return stored.reshape(shape)
    return stored


def _dict(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{name}: expected a JSON object, got {type(value).__name__}")
    return value


def _restore_optimizer(model: Any, state: list[NDArray[Any]], meta: dict[str, Any], where: str,
                       strict: bool) -> None:
    """Copy saved optimizer state and step into a freshly compiled model, after checking them."""
    if model._net is None:
        raise ValueError(f"{where}: optimizer state without a compiled model (no 'compile' in "
                         f"the metadata)")
    step = meta.get("step")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) \
            or not 0 <= step <= _MAX_STEP:
        raise ValueError(f"{where}: damaged: step must be an int in [0, {_MAX_STEP}], got "
                         f"{step!r}")
    views = model._net.read("state")[0]
    if len(views) != len(state):
        raise ValueError(f"{where}: optimizer state has {len(state)} arrays, the model expects "
                         f"{len(views)}")
    slots = len(views) // max(1, len(model._net.param_names()))
    squares = _SQUARE_SLOTS.get(model.optimizer.kind, ())
    converted = []
    for i, (v, s) in enumerate(zip(views, state)):
        name = f"optimizer/{i:04d}"
        s = _one_row_as_2d(s, v.shape)
        if v.shape != s.shape:
            raise ValueError(f"{where}: optimizer state {name} has shape {s.shape}, expected "
                             f"{v.shape}")
        if not strict:
            converted.append(s.astype(model.dtype))
            continue
        s32 = finite_as(s, model.dtype, f"{where}: optimizer state {name}")
        if i % slots in squares and (s32 < 0).any():
            raise ValueError(f"{where}: damaged: optimizer state {name} holds squares (second "
                             f"moments / accumulated squares) but has negative values")
        # Nothing has been learned at step 0: the state must still be the one compile sets.
        if step == 0 and not np.array_equal(s32, v):
            raise ValueError(f"{where}: damaged: step 0 with optimizer state {name} that is not "
                             f"its initial value")
        converted.append(s32)
    model._net.write(state=converted)
    model._net.step = int(step)
