"""Optional packages (onnx, torch, mpi4py, dask): imported on first use, with the pip line that installs them
when they are missing. fastnn itself needs NumPy only."""

import importlib
from types import ModuleType


def require(module: str, extra: str, what: str) -> ModuleType:
    """The module `module`, or ImportError saying that `what` needs it and which extra of
    fastnn installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.partition(".")[0]
        raise ImportError(f"{what} needs the {top!r} package: pip install 'fastnn[{extra}]' "
                          f"(or pip install {top})") from e
