"""Reading tables for the command line (`fastnn train` / `fastnn predict`): CSV with a header,
.npy (a 2-D array) or .npz (arrays X and y). No pandas needed."""

import csv
import os

import numpy as np


def read_table(path):
    """(column names, list of columns as NumPy arrays: float where every value parses, else str)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        a = np.load(path, allow_pickle=False)
        if a.ndim != 2:
            raise ValueError(f"{path}: expected a 2-D array, got shape {a.shape}")
        return [str(i) for i in range(a.shape[1])], [a[:, i] for i in range(a.shape[1])]
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "X" not in z:
                raise ValueError(f"{path}: expected arrays 'X' (and 'y' to train), found "
                                 f"{sorted(z.files)}")
            X = z["X"]
            cols = [X[:, i] for i in range(X.shape[1])]
            names = [str(i) for i in range(X.shape[1])]
            if "y" in z:
                cols.append(z["y"])
                names.append("y")
        return names, cols
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise ValueError(f"{path}: expected a header line and at least one row of data")
    header, body = rows[0], rows[1:]
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise ValueError(f"{path}: line {i + 2} has {len(r)} fields, the header has "
                             f"{len(header)}")
    cols = []
    for j in range(len(header)):
        values = [r[j].strip() for r in body]
        try:
            cols.append(np.array([float(v) for v in values]))
        except ValueError:
            cols.append(np.array(values))
    return [h.strip() for h in header], cols


def split_target(names, cols, target):
    """(X float32, y column, feature names) with `target` a column name or index."""
    if target is None:
        if "y" in names:
            target = "y"
        else:
            raise ValueError("--target: name the column to predict")
    if target in names:
        j = names.index(target)
    else:
        try:
            j = int(target)
        except ValueError:
            raise ValueError(f"--target: no column {target!r}; columns are {names}") from None
        if not 0 <= j < len(names):
            raise ValueError(f"--target: column index {j} out of range")
    features = [c for i, c in enumerate(cols) if i != j]
    bad = [names[i] for i, c in enumerate(cols) if i != j and c.dtype.kind not in "fiub"]
    if bad:
        raise ValueError(f"feature columns must be numeric; not numeric: {bad}")
    X = np.column_stack(features).astype(np.float32) if features else None
    return X, cols[j], [n for i, n in enumerate(names) if i != j]


def features_only(names, cols, feature_names):
    """X with the training run's feature columns, in its order."""
    missing = [n for n in feature_names if n not in names]
    if missing:
        raise ValueError(f"missing feature columns: {missing}")
    X = []
    for n in feature_names:
        c = cols[names.index(n)]
        if c.dtype.kind not in "fiub":
            raise ValueError(f"feature column {n!r} is not numeric")
        X.append(c)
    return np.column_stack(X).astype(np.float32)
