"""Sequential.load_weights: weights from the files people have, ``.safetensors`` and ``.npz``, with
the names and layouts of ``to_torch().state_dict()`` (fastnn/_export_steps.py): ``dense_0.weight``
(units, inputs), ``dense_0.bias``, ``batch_norm_0.weight`` / ``.bias`` / ``.running_mean`` /
``.running_var``; PyTorch's ``*.num_batches_tracked`` counters are accepted and ignored.

What PyTorch users write loads as it is: ``safetensors.torch.save_file(module.state_dict(), p)``
or ``numpy.savez(p, **{k: v.numpy() for k, v in module.state_dict().items()})``, for a module
whose layers are named as to_torch names them.

safetensors files are read by fastnn's own reader (fastnn/io.py, the one that reads model files):
it needs no package, reads only regular files, checks the header (length, JSON, dtypes, shapes,
every offset inside the file) before it reads the data, and so refuses a truncated or crafted file
with a ValueError, never allocating more than the file's size. The ``safetensors`` package would
add a dependency for the same ~100 lines. ``.npz`` files are read with NumPy, pickles refused
(allow_pickle=False), and each array's header (dtype, shape) is checked against the model before
its data is read, so a crafted header cannot make NumPy allocate a huge array. A file is
recognised by its first bytes (a zip archive is an npz), not by its name.

The file must hold exactly the model's arrays: a missing or an unexpected name, a wrong shape, an
integer dtype, NaN or infinity, a negative running variance raise ValueError naming the array; the
model is left unchanged then. Values are stored in the model's dtype (float16 and float64 arrays
load into a float32 model, as set_weights does)."""

import os
import zipfile
import zlib
from typing import Any, Dict, List, Tuple

import numpy as np

from fastnn import io, layers as layers_mod
from fastnn._checks import finite_as
from fastnn._export_steps import TRANSPOSED, from_torch_layout, weight_names

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members / an empty zip
_IGNORED_SUFFIX = ".num_batches_tracked"
# Errors NumPy and zipfile raise on damaged archives: all become ValueError naming the file.
_NPZ_ERRORS = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
               NotImplementedError, SyntaxError)


def expected_arrays(model: Any) -> List[Tuple[str, str, Tuple[int, ...]]]:
    """(state-dict key, role, shape in the file) of each array of model.get_weights()."""
    shapes = [shape for _, shape in layers_mod.weight_shapes(model.layers, model.input_dim)]
    return [(key, role, tuple(reversed(shape)) if role in TRANSPOSED else tuple(shape))
            for (key, role), shape in zip(weight_names(model), shapes)]


def _check_array(where: str, key: str, dtype: np.dtype, shape: Tuple[int, ...],
                 expected: Tuple[int, ...]) -> None:
    if dtype.kind != "f":
        raise ValueError(f"{where}: array {key!r} has dtype {dtype}; expected floating-point "
                         f"values (float16, float32 or float64)")
    if tuple(shape) != expected:
        raise ValueError(f"{where}: array {key!r} has shape {tuple(shape)}; the model needs "
                         f"{expected}")


def _check_names(where: str, names: List[str], wanted: Dict[str, Tuple[int, ...]]) -> None:
    missing = [k for k in wanted if k not in names]
    extra = [k for k in names if k not in wanted and not k.endswith(_IGNORED_SUFFIX)]
    if not missing and not extra:
        return
    if any(k.startswith("weights/") for k in names):
        raise ValueError(f"{where}: a fastnn model file, not a state dict: read it with "
                         f"fastnn.load")
    if any(k.endswith(".pkl") for k in names):
        raise ValueError(f"{where}: a PyTorch pickle (torch.save's format, which can run code "
                         f"when read); fastnn reads no pickles: write the state dict with "
                         f"safetensors.torch.save_file or numpy.savez")
    parts = []
    if missing:
        parts.append(f"missing {', '.join(map(repr, missing))}")
    if extra:
        parts.append(f"unexpected {', '.join(map(repr, extra[:10]))}"
                     + (f" and {len(extra) - 10} more" if len(extra) > 10 else ""))
    raise ValueError(f"{where}: the arrays do not match the model's state-dict names "
                     f"({'; '.join(parts)}); the model's names are "
                     f"{', '.join(wanted)}")


def _read_npz(f: Any, where: str, wanted: Dict[str, Tuple[int, ...]]) -> Dict[str, np.ndarray]:
    fmt = np.lib.format
    with zipfile.ZipFile(f) as archive:
        members = archive.namelist()
        names = [m[:-len(".npy")] if m.endswith(".npy") else m for m in members]
        _check_names(where, names, wanted)
        out = {}
        for key, expected in wanted.items():
            member = f"{key}.npy"
            with archive.open(member) as m:
                version = fmt.read_magic(m)
                read_header = {(1, 0): fmt.read_array_header_1_0,
                               (2, 0): fmt.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise ValueError(f"{where}: array {key!r} is in .npy format version {version}; "
                                     f"fastnn reads 1.0 and 2.0 (numpy.savez's)")
                shape, _, dtype = read_header(m)
            _check_array(where, key, dtype, shape, expected)
            with archive.open(member) as m:
                out[key] = fmt.read_array(m, allow_pickle=False)
        return out


def read_weights_file(path: "str | os.PathLike[str]",
                      wanted: Dict[str, Tuple[int, ...]]) -> Dict[str, np.ndarray]:
    """The arrays of a .safetensors or .npz file, checked to be exactly `wanted` (key -> shape)
    with floating-point values. ValueError naming the file for anything else."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path (str or os.PathLike), got "
                        f"{type(path).__name__}")
    path = os.fspath(path)
    where = repr(path)
    with io._open_regular(path, where) as f:
        if f.read(4) in _ZIP_MAGIC:
            f.seek(0)
            try:
                return _read_npz(f, where, wanted)
            except _NPZ_ERRORS as e:
                if isinstance(e, ValueError) and str(e).startswith(where):
                    raise
                raise ValueError(f"{where}: not a readable .npz file ({type(e).__name__}: "
                                 f"{e})") from None
    try:
        arrays, _ = io.load_arrays(path, allow_foreign=True)
    except ValueError as e:
        raise ValueError(f"{e} (load_weights reads .safetensors and .npz files)") from None
    _check_names(where, list(arrays), wanted)
    for key, expected in wanted.items():
        _check_array(where, key, arrays[key].dtype, arrays[key].shape, expected)
    return {key: arrays[key] for key in wanted}


def load_weights(model: Any, path: "str | os.PathLike[str]") -> None:
    """Set model's weights from the file at `path` (see the module's doc)."""
    expected = expected_arrays(model)
    arrays = read_weights_file(path, {key: shape for key, _, shape in expected})
    where = repr(os.fspath(path))
    weights = []
    for key, role, _ in expected:
        a = finite_as(arrays[key], model.dtype, f"{where}: array {key!r}")
        what = layers_mod.ROLES[role].non_negative
        if what and (a < 0).any():
            raise ValueError(f"{where}: array {key!r} is {what} and must be >= 0, got {a.min()}")
        weights.append(from_torch_layout(role, a))
    model.set_weights(weights)
