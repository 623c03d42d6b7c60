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
bytes only: no pickle, no eval, nothing in a file can run code."""

import hashlib
import json
import os
import tempfile

import numpy as np

__all__ = ["save_arrays", "load_arrays", "FORMAT_VERSION"]

FORMAT_NAME = "fastnn"
FORMAT_VERSION = 1
_RESERVED = ("format", "format_version", "checksum", "header_checksum")
# The safetensors reference reader refuses headers above 100 MB; a larger length means damage.
_MAX_HEADER = 100_000_000

_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype("<u1"), "I8": np.dtype("<i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8"),
}
_CODES = {(dt.kind, dt.itemsize): code for code, dt in _DTYPES.items()}


def _as_array(name, value):
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


def _canonical(header):
    """Bytes the header checksum covers: the header without the checksums, in one fixed spelling."""
    meta = {k: v for k, v in header.get("__metadata__", {}).items()
            if k not in ("checksum", "header_checksum")}
    body = {k: v for k, v in header.items() if k != "__metadata__"}
    body["__metadata__"] = meta
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _encode(arrays, metadata):
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


def save_arrays(path, arrays, metadata=None):
    """Write a dict of arrays (and JSON-able metadata) to `path` as a safetensors file, atomically.

    The file is written to a temporary file in the same directory, flushed to disk and renamed over
    `path`, so a crash or an error leaves either the old file or the new one, never a partial one.
    Raises TypeError for values that are not arrays of a supported dtype or not JSON-able."""
    path = os.fspath(path)
    # Everything that can be refused is refused before the first byte touches the disk.
    head, chunks = _encode(arrays, metadata)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
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


def _fsync_dir(directory):
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


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r} in the header")
        seen[key] = value
    return seen


def _is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _parse_header(blob, where):
    size = len(blob)
    if size < 8:
        raise ValueError(f"{where}: truncated: {size} bytes, shorter than the 8-byte header length")
    n = int.from_bytes(blob[:8], "little")
    if n < 2 or n > _MAX_HEADER:
        raise ValueError(f"{where}: not a safetensors file (header length {n} is impossible)")
    if 8 + n > size:
        raise ValueError(f"{where}: truncated: header of {n} bytes but only {size - 8} bytes "
                         f"follow the length")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError:
        raise ValueError(f"{where}: damaged or not a safetensors file (header is not UTF-8)") \
            from None
    except ValueError as exc:        # json.JSONDecodeError and duplicate keys
        raise ValueError(f"{where}: damaged or not a safetensors file (bad JSON header: {exc})") \
            from None
    if not isinstance(header, dict):
        raise ValueError(f"{where}: damaged: the header is a JSON {type(header).__name__}, "
                         f"expected an object")
    return header, 8 + n


def _check_entries(header, data_len, where):
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
        if code not in _DTYPES:
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


def _read_metadata(header, data, where, allow_foreign):
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
            meta[key] = json.loads(text)
        except ValueError:
            raise ValueError(f"{where}: damaged: metadata {key!r} is not JSON") from None
    return meta


def load_arrays(path, allow_foreign=False):
    """Read a file written by save_arrays: (dict of arrays, metadata dict).

    Arrays come back in the saved order as writable, native-byte-order copies; metadata holds the
    values given to save_arrays (without the format's own keys). Any damage (truncation, flipped
    bytes, another format) raises ValueError naming the problem. allow_foreign=True also reads
    safetensors files from other programs (no checksum to verify; metadata as raw strings)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        blob = f.read()
    where = repr(path)
    header, start = _parse_header(blob, where)
    data = memoryview(blob)[start:]
    entries = _check_entries(header, len(data), where)
    meta = _read_metadata(header, data, where, allow_foreign)
    arrays = {}
    for name, dtype, shape, begin, end in entries:
        flat = np.frombuffer(data[begin:end], dtype=dtype)
        # astype(native) copies, giving a writable array that does not pin the whole file in memory.
        arrays[name] = flat.astype(dtype.newbyteorder("="), copy=True).reshape(shape)
    return arrays, meta
