"""The type aliases of fastnn's annotations, one definition each (annotations only: nothing here
runs a check)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional, Protocol, Sequence, Union

from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from fastnn.tensor import Tensor

# What an op takes: anything NumPy reads as an array (it runs on the CPU), or a fastnn.Tensor
# (it runs where the tensor lives).
ArrayIn = Union[ArrayLike, "Tensor"]
# What an op returns: a NumPy array for CPU inputs, a Tensor on the inputs' GPU.
Array = Union[NDArray[Any], "Tensor"]
# An op's list arguments (the optimizer steps): a list of arrays, or one array.
Arrays = Union[Sequence[Array], Array]
# The optimizer steps' l1 / l2: None, one number for every tensor, or one per tensor.
Penalty = Union[Sequence[float], float, None]
# A path argument: a str or anything os.fspath takes.
PathLike = Union[str, "os.PathLike[str]"]


class ElementwiseOp(Protocol):
    """relu, sigmoid, tanh, ...: ``f(x, out=None)``."""

    def __call__(self, x: ArrayIn, out: Optional[Array] = None) -> Array: ...
