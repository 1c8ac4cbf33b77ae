"""Array-backend dispatch: numpy, PyTorch and JAX behind one small interface.

The math in :mod:`pkpo.transforms` and :mod:`pkpo.estimators` is written once against
:class:`Backend`. Each backend supplies only the handful of operations that differ between
libraries (sorting with indices, scattering back, cumulative sums, dtype and device
handling); everything else is ordinary arithmetic on arrays.

Array in, same kind out: numpy in gives numpy out, a torch tensor gives a torch tensor on the
same device, a JAX array gives a JAX array. Python lists and scalars are treated as numpy.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import numpy as np


class Backend:
    """Operations on arrays of one library. Subclasses fill in the library specifics."""

    name = "abstract"
    xp: Any = None  # the module with where/exp/... (numpy, torch, jax.numpy)

    # --- dtypes ---------------------------------------------------------------------------
    def is_floating(self, x) -> bool:
        raise NotImplementedError

    def is_bool(self, x) -> bool:
        raise NotImplementedError

    def is_integer(self, x) -> bool:
        raise NotImplementedError

    def compute_dtype(self, x):
        """dtype used for the arithmetic after the sort: float64 wherever the library has it."""
        raise NotImplementedError

    def result_dtype(self, x):
        """Floating input keeps its dtype; bool/int input gets the library's default float."""
        raise NotImplementedError

    def astype(self, x, dtype):
        raise NotImplementedError

    # --- construction ---------------------------------------------------------------------
    def from_numpy(self, a: np.ndarray, like):
        """A numpy array as an array of this library on the device of ``like`` (a copy)."""
        raise NotImplementedError

    def to_numpy(self, x) -> np.ndarray:
        raise NotImplementedError

    def arange(self, n: int, like):
        raise NotImplementedError

    def zeros(self, shape, dtype, like):
        raise NotImplementedError

    def dense_weights(self, size: int, n: int, k: int, like, dtype):
        """The cached host-side rank weights of a dense batch, on ``like``'s device in ``dtype``."""
        from ._combinatorics import RankWeights, dense_rank_weights

        return RankWeights(*(self.astype(self.from_numpy(value, like), dtype)
                             for value in dense_rank_weights(size, n, k)))

    def log_factorials(self, size: int, like, dtype):
        """The log-factorial table of :mod:`pkpo._combinatorics` on ``like``'s device in ``dtype``."""
        from ._combinatorics import LogFactorials, log_factorial_table

        return LogFactorials(*(self.astype(self.from_numpy(part, like), dtype)
                               for part in log_factorial_table(size)))

    # --- reductions and scans along the last axis -----------------------------------------
    def sort(self, x):
        """Ascending sort along the last axis: returns (values, indices).

        Not necessarily stable: every transform depends only on the sorted values (tied rewards
        get bit-identical results whatever their order, see tests/test_transforms.py), and
        numpy's default argsort is 2-4x faster than its stable one on (groups, n) float32 rows.
        """
        raise NotImplementedError

    def unsort(self, values, indices):
        """Inverse of :meth:`sort`: out[..., indices[..., j]] = values[..., j]."""
        raise NotImplementedError

    def cumsum(self, x):
        raise NotImplementedError

    def flip(self, x):
        raise NotImplementedError

    def sum(self, x, keepdims: bool = False):
        raise NotImplementedError

    def take_last(self, x, index):
        """x[..., index[..., j]] along the last axis (gather)."""
        raise NotImplementedError

    def concat_last(self, parts):
        raise NotImplementedError

    def all_finite(self, x):
        raise NotImplementedError

    def shape(self, x) -> tuple[int, ...]:
        return tuple(int(s) for s in x.shape)


class NumpyBackend(Backend):
    name = "numpy"
    xp = np

    def is_floating(self, x):
        return np.issubdtype(x.dtype, np.floating)

    def is_bool(self, x):
        return x.dtype == np.bool_

    def is_integer(self, x):
        return np.issubdtype(x.dtype, np.integer)

    def compute_dtype(self, x):
        return np.float64

    def result_dtype(self, x):
        return x.dtype if self.is_floating(x) else np.dtype(np.float64)

    def astype(self, x, dtype):
        return x.astype(dtype, copy=False)

    def from_numpy(self, a, like):
        return a

    def to_numpy(self, x):
        return np.asarray(x)

    def arange(self, n, like):
        return np.arange(n)

    def zeros(self, shape, dtype, like):
        return np.zeros(shape, dtype=dtype)

    def sort(self, x):
        idx = np.argsort(x, axis=-1)
        return np.take_along_axis(x, idx, axis=-1), idx

    def unsort(self, values, indices):
        out = np.empty_like(values)
        np.put_along_axis(out, indices, values, axis=-1)
        return out

    def cumsum(self, x):
        return np.cumsum(x, axis=-1)

    def flip(self, x):
        return np.flip(x, axis=-1)

    def sum(self, x, keepdims=False):
        return np.sum(x, axis=-1, keepdims=keepdims)

    def take_last(self, x, index):
        return np.take_along_axis(x, index, axis=-1)

    def concat_last(self, parts):
        return np.concatenate(parts, axis=-1)

    def all_finite(self, x):
        return np.isfinite(x)


class TorchBackend(Backend):
    name = "torch"

    def __init__(self):
        import torch

        self.torch = torch
        self.xp = torch
        # The weights are host-side constants (numpy + a cache): keep torch.compile out of them.
        self.dense_weights = torch.compiler.disable(self._cached_dense_weights)
        self.log_factorials = torch.compiler.disable(self._cached_log_factorials)

    def _cached_dense_weights(self, size, n, k, like, dtype):
        return _torch_constant(super().dense_weights, (size, n, k), like.device, dtype)

    def _cached_log_factorials(self, size, like, dtype):
        return _torch_constant(super().log_factorials, (size,), like.device, dtype)

    def is_floating(self, x):
        return x.dtype.is_floating_point

    def is_bool(self, x):
        return x.dtype == self.torch.bool

    def is_integer(self, x):
        return not x.dtype.is_floating_point and not x.dtype.is_complex and x.dtype != self.torch.bool

    def compute_dtype(self, x):
        # MPS has no float64; everywhere else the scans run in float64.
        return self.torch.float32 if x.device.type == "mps" else self.torch.float64

    def result_dtype(self, x):
        return x.dtype if self.is_floating(x) else self.torch.get_default_dtype()

    def astype(self, x, dtype):
        return x.to(dtype)

    def from_numpy(self, a, like):
        return self.torch.tensor(a, device=like.device)

    def to_numpy(self, x):
        return x.detach().cpu().numpy()

    def arange(self, n, like):
        return self.torch.arange(n, device=like.device)

    def zeros(self, shape, dtype, like):
        return self.torch.zeros(shape, dtype=dtype, device=like.device)

    def sort(self, x):
        values, idx = self.torch.sort(x, dim=-1)
        return values, idx

    def unsort(self, values, indices):
        return self.torch.empty_like(values).scatter_(-1, indices, values)

    def cumsum(self, x):
        return self.torch.cumsum(x, dim=-1)

    def flip(self, x):
        return self.torch.flip(x, dims=(-1,))

    def sum(self, x, keepdims=False):
        return self.torch.sum(x, dim=-1, keepdim=keepdims)

    def take_last(self, x, index):
        return self.torch.take_along_dim(x, index, dim=-1)

    def concat_last(self, parts):
        return self.torch.cat(parts, dim=-1)

    def all_finite(self, x):
        return self.torch.isfinite(x)


_TORCH_CONSTANTS: dict = {}


def _torch_constant(make, args: tuple, device, dtype):
    """``make(*args, like, dtype)`` built once per (args, device, dtype), then reused.

    The rank weights and log-factorial tables depend only on sizes, so repeated calls transfer
    nothing to the device and hash a few ints, not the arrays' bytes (which cost 0.2 ms per call
    at n = 64 and 3 ms at n = 65,536). They are built and cast on the host, then moved (MPS has no
    float64 to receive them in). At most 128 entries are kept, the oldest dropped first.
    """
    key = (make.__name__, args, str(device), dtype)
    value = _TORCH_CONSTANTS.get(key)
    if value is None:
        import torch

        value = make(*args, torch.empty(0), dtype)
        value = type(value)(*(part.to(device) for part in value))
        if len(_TORCH_CONSTANTS) >= 128:
            del _TORCH_CONSTANTS[next(iter(_TORCH_CONSTANTS))]
        _TORCH_CONSTANTS[key] = value
    return value


class JaxBackend(Backend):
    name = "jax"

    def __init__(self):
        import jax
        import jax.numpy as jnp

        self.jax = jax
        self.xp = jnp

    def is_floating(self, x):
        return self.xp.issubdtype(x.dtype, self.xp.floating)

    def is_bool(self, x):
        return x.dtype == self.xp.bool_

    def is_integer(self, x):
        return self.xp.issubdtype(x.dtype, self.xp.integer)

    def compute_dtype(self, x):
        # float64 only exists when the user enabled jax_enable_x64.
        return self.xp.float64 if self.jax.config.jax_enable_x64 else self.xp.float32

    def result_dtype(self, x):
        if self.is_floating(x):
            return x.dtype
        return self.xp.float64 if self.jax.config.jax_enable_x64 else self.xp.float32

    def astype(self, x, dtype):
        return x.astype(dtype)

    def from_numpy(self, a, like):
        if a.dtype == np.float64 and not self.jax.config.jax_enable_x64:
            a = a.astype(np.float32)
        return self.xp.asarray(a)

    def to_numpy(self, x):
        return np.asarray(x)

    def arange(self, n, like):
        return self.xp.arange(n)

    def zeros(self, shape, dtype, like):
        return self.xp.zeros(shape, dtype=dtype)

    def sort(self, x):
        idx = self.xp.argsort(x, axis=-1, stable=False)
        return self.xp.take_along_axis(x, idx, axis=-1), idx

    def unsort(self, values, indices):
        # Inverse permutation by a second argsort of integer indices: scatter-free and jit-safe.
        inverse = self.xp.argsort(indices, axis=-1)
        return self.xp.take_along_axis(values, inverse, axis=-1)

    def cumsum(self, x):
        return self.xp.cumsum(x, axis=-1)

    def flip(self, x):
        return self.xp.flip(x, axis=-1)

    def sum(self, x, keepdims=False):
        return self.xp.sum(x, axis=-1, keepdims=keepdims)

    def take_last(self, x, index):
        return self.xp.take_along_axis(x, index, axis=-1)

    def concat_last(self, parts):
        return self.xp.concatenate(parts, axis=-1)

    def all_finite(self, x):
        return self.xp.isfinite(x)


_NUMPY = NumpyBackend()


@functools.lru_cache(maxsize=None)
def _torch_backend() -> TorchBackend:
    return TorchBackend()


@functools.lru_cache(maxsize=None)
def _jax_backend() -> JaxBackend:
    return JaxBackend()


def backend_of(x) -> Backend:
    """The backend for ``x``, found without importing libraries the caller has not imported."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return _torch_backend()
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(x, jax.Array):
        return _jax_backend()
    return _NUMPY


def as_array(x, name: str = "rewards"):
    """``x`` itself if it is a torch/JAX array, else a numpy array.

    A nested Python list with rows of different lengths is refused with advice (numpy's own
    message names an "inhomogeneous shape").
    """
    backend = backend_of(x)
    if backend is _NUMPY:
        try:
            return backend, np.asarray(x)
        except ValueError:
            raise ValueError(
                f"{name} is a ragged nested list (rows of different lengths); pad it to a rectangular "
                "array and pass mask= (True on real samples), or use transform_grouped with a group id "
                "per reward."
            ) from None
    return backend, x
