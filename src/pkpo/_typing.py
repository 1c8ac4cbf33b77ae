"""Type aliases of the public API (kept light: no torch or JAX import at run time).

``Array`` is any array pkpo accepts: a numpy array (or nested Python sequences of numbers), a
``torch.Tensor`` on any device, or a ``jax.Array``. Functions return the kind they were given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Sequence, Union

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import jax
    import torch

    Array = Union[np.ndarray, "torch.Tensor", "jax.Array", Sequence[Any]]
else:
    Array = Any

Baseline = Literal["none", "loo", "loo_minus_one", "centered"]
Scale = Literal["none", "n_over_k", "mean_abs"]
# k: a Python or numpy int, or a 0-d integer array or tensor
IntLike = Union[int, np.integer, Any]

__all__ = ["Array", "Baseline", "IntLike", "Scale"]
