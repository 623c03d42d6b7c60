"""Batch inference over data larger than memory: a model's predict on a Dask array or Dask
DataFrame, block by block (partition by partition), lazily.

    import dask.array as da, fastnn.dask
    X = da.from_zarr("features.zarr")               # (n, features), any row chunks
    P = fastnn.dask.predict(model, X)               # lazy (n, outputs) Dask array
    P.to_zarr("predictions.zarr")                   # computed on the cluster, block by block

The model enters the task graph once, as one task of its own (``dask.delayed(model)``) that every
block's task depends on: the scheduler ships it to each worker once (a fitted model pickles
through its save bytes), not once per block. The same by hand (the recipe this helper wraps):

    m = dask.delayed(model, pure=True)
    P = X.map_blocks(lambda b, m: m.predict(b), m, dtype=model.dtype,
                     chunks=(X.chunks[0], (model.output_dim,)))
    # a DataFrame: df.map_partitions(lambda p, m: m.predict(p.to_numpy(model.dtype)), m, ...)

dask is optional (``pip install 'fastnn[dask]'``) and imported only here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._optional import require

__all__ = ["predict"]

_METHODS = ("predict", "predict_classes")


def _predict_block(block: Any, model: Any, method: str, batch_size: int) -> Any:
    return getattr(model, method)(np.asarray(block, dtype=_dtype(model)), batch_size=batch_size)


def _dtype(model: Any) -> Any:
    """The model's float dtype (float32 for models that do not say, as QuantizedModel)."""
    return np.dtype(getattr(model, "dtype", np.float32))


def _predict_partition(frame: Any, model: Any, method: str, batch_size: int,
                       columns: Any) -> Any:
    import pandas as pd

    out = _predict_block(frame.to_numpy(dtype=_dtype(model)), model, method, batch_size)
    if method == "predict_classes":
        return pd.Series(out, index=frame.index, name=columns)
    return pd.DataFrame(out, index=frame.index, columns=columns)


def predict(model: Any, X: Any, method: str = "predict", batch_size: int = 1024) -> Any:
    """``model.predict`` (or ``method="predict_classes"``) over a Dask array (n, features) or
    Dask DataFrame of feature columns, one block at a time: a lazy Dask array (n, outputs) in
    the model's dtype (n int64 for predict_classes), or for a DataFrame a Dask DataFrame with columns
    "0".."outputs-1" (a Series "class") on the same index. The model is one task of the graph,
    shipped to each worker once. Blocks may split rows anywhere; the features are rechunked into
    one chunk if they are split."""
    da = require("dask.array", "dask", "fastnn.dask")
    delayed = require("dask.delayed", "dask", "fastnn.dask").delayed
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {_METHODS}, got {method!r}")
    for what in ("output_dim", "input_dim", method):
        if not hasattr(model, what):
            raise TypeError(f"model: expected a fitted fastnn model, got {type(model).__name__}")
    shipped = delayed(model, pure=True)
    classes = method == "predict_classes"
    dtype = _dtype(model)
    if isinstance(X, da.Array):
        if X.ndim != 2 or X.shape[1] != model.input_dim:
            raise ValueError(f"X: expected a Dask array (n, {model.input_dim}), got shape "
                             f"{X.shape}")
        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})
        # meta given: dask would otherwise call the function on the Delayed to learn it.
        if classes:
            return X.map_blocks(_predict_block, shipped, method, batch_size, dtype=np.int64,
                                drop_axis=1, meta=np.empty((0,), np.int64))
        return X.map_blocks(_predict_block, shipped, method, batch_size, dtype=dtype,
                            chunks=(X.chunks[0], (model.output_dim,)),
                            meta=np.empty((0, 0), dtype))
    try:
        from dask.dataframe import DataFrame
    except ImportError:  # dask.dataframe needs pandas and pyarrow
        DataFrame = None
    if DataFrame is None or not isinstance(X, DataFrame):
        raise TypeError(f"X: expected a Dask array or Dask DataFrame, got {type(X).__name__} "
                        f"(for data in memory call model.{method})")
    if len(X.columns) != model.input_dim:
        raise ValueError(f"X: expected {model.input_dim} feature columns, got {len(X.columns)}")
    import pandas as pd

    if classes:
        meta = pd.Series([], dtype=np.int64, name="class")
        columns = "class"
    else:
        columns = [str(c) for c in range(model.output_dim)]
        meta = pd.DataFrame({c: pd.Series([], dtype=dtype) for c in columns})
    return X.map_partitions(_predict_partition, shipped, method, batch_size, columns, meta=meta)
