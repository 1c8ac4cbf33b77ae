"""What every advantage estimator does before and after its formula: checks, masks, group sums.

:func:`prepare` validates a reward array with the math layer's own checks
(:mod:`pkpo._validation`) and returns :class:`Groups`: the rewards in the compute dtype of
:mod:`pkpo._backend` (float64 wherever the library has it) with padding set to 0, and each
group's size n (a Python float, or one per row for ragged groups). :meth:`Groups.finish` zeroes
the padding and casts back to the caller's dtype. Nothing here loops over groups.

With ``validate=False`` no check reads the data (no host sync; the estimators trace under
``jax.jit`` and ``torch.compile``): a ragged group that is too small for its estimator then gets
all-zero advantages instead of an error.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _validation
from .._backend import Backend, as_array


@dataclass(frozen=True)
class Groups:
    backend: Backend
    x: Any  # (..., N) rewards in the compute dtype, 0 on padding
    mask: Any  # None or (..., N) bool, False on padding
    n: Any  # group size: a Python float (dense) or a (..., 1) array in the compute dtype
    result_dtype: Any
    validate: bool
    binary: bool = False  # 0/1 rewards: every estimator's advantages are then bounded by n

    @property
    def xp(self):
        return self.backend.xp

    def total(self, v):
        """sum_i v_i over each group's valid entries, shape (..., 1)."""
        if self.mask is not None:
            v = self.xp.where(self.mask, v, 0.0)
        return self.xp.sum(v, axis=-1, keepdims=True)

    def mean(self, v):
        return self.total(v) / at_least_one(self.xp, self.n)

    def largest(self, v):
        """max_i v_i over each group's valid entries, shape (..., 1); -inf for an empty group."""
        if self.mask is not None:
            v = self.xp.where(self.mask, v, -math.inf)
        return self.xp.amax(v, axis=-1, keepdims=True)  # torch.max would return (values, indices)

    def is_correct(self):
        """The 0/1 rewards of a binary-only estimator as a bool array."""
        return self.x > 0.5

    def from_counts(self, per_correct, per_wrong, method: str):
        """A binary estimator's advantages: ``per_correct`` for a correct sample, ``per_wrong``
        for a wrong one (per-group (..., 1) arrays or numbers), rounded once to the output dtype."""
        ones = self.xp.ones_like(self.x[..., :1])
        correct, wrong = (
            self.backend.astype(value * ones, self.result_dtype)
            for value in (per_correct, per_wrong)
        )
        return self.finish(self.xp.where(self.is_correct(), correct, wrong), method)

    def int_dtype(self):
        return self.xp.int32 if self.backend.name == "jax" else self.xp.int64

    def finish(self, values, method: str):
        """Zero the padding, cast to the caller's dtype; with validate, refuse an overflow."""
        xp = self.xp
        if self.mask is not None:
            values = xp.where(self.mask, values, 0.0)
        out = self.backend.astype(values, self.result_dtype)
        if self.validate and not self.binary and not all_finite(self.backend, out):
            dtype = str(self.result_dtype).replace("torch.", "")
            raise ValueError(
                f"{method!r}: the advantages do not fit in {dtype}; the rewards are too close to "
                "the largest float: rescale them or pass float64."
            )
        return out


def all_finite(backend: Backend, x) -> bool:
    """Whether every entry of x is finite: one sum (finite only if every term is), and the
    elementwise test only when the sum is not finite (it may overflow on its own)."""
    xp = backend.xp
    if bool(backend.to_numpy(xp.isfinite(xp.sum(x)))):
        return True
    return bool(backend.to_numpy(xp.all(xp.isfinite(x))))


def at_least_one(xp, n):
    """n where n >= 1, else 1: a safe divisor for sums over (possibly empty) groups."""
    if isinstance(n, numbers.Real):
        return max(float(n), 1.0)
    return xp.where(n >= 1, n, 1.0)


def prepare(
    rewards,
    mask=None,
    *,
    validate: bool,
    method: str,
    binary: bool = False,
    min_n: int = 1,
    why: str = "",
    k: int | None = None,
) -> Groups:
    """Check ``rewards`` (and ``mask``) for estimator ``method`` and return its :class:`Groups`.

    Static checks always run: an array of at least one axis, a real or bool dtype, a mask of the
    same shape, and (dense groups) n >= ``min_n``. With ``validate`` also: no NaN/inf, only 0/1
    for a ``binary`` estimator, every ragged group of size >= ``min_n`` (``why`` says why; a
    too-small group is the math layer's :class:`~pkpo.GroupSizeError`, with ``k`` where taken).
    """
    backend, x = as_array(rewards)
    _validation.check_rewards_array(backend, x)
    if validate and backend.is_traced(x):
        _validation.traced_with_validate()
    mask = _validation.check_mask(backend, mask, x, validate)
    size = backend.shape(x)[-1]
    if mask is None and size < min_n:
        raise _too_small(method, min_n, size, None, why, k)
    if validate:
        _check_values(backend, x, mask, method, binary)

    xp = backend.xp
    compute = backend.compute_dtype(x)
    values = backend.astype(x, compute)
    n: Any = float(size)
    if mask is not None:
        values = xp.where(mask, values, 0.0)
        n = xp.sum(backend.astype(mask, compute), axis=-1, keepdims=True)
        if validate:
            check_min_samples(backend, n, min_n, method, why, k)
    return Groups(backend, values, mask, n, backend.result_dtype(x), validate, binary)


def _check_values(backend: Backend, x, mask, method: str, binary: bool):
    if backend.is_floating(x) and not all_finite(backend, x):
        _validation.check_finite(backend, x, mask)  # names the group; NaN in padding is fine
    if binary:
        try:
            _validation.check_binary(backend, x, mask, name="rewards")
        except ValueError as error:
            raise ValueError(f"{method!r} takes binary rewards only (0/1): {error}") from None


def check_min_samples(
    backend: Backend, n, min_n: int, method: str, why: str = "", k: int | None = None
):
    """Every ragged group (sizes ``n``, (..., 1)) must hold at least ``min_n`` valid samples, else
    the math layer's :class:`pkpo.GroupSizeError`: the rule of
    :func:`pkpo._validation.check_group_sizes` with the estimator's own minimum (not a PKPO k)
    and message."""
    small = _validation.first_small_group(n, min_n, backend)
    if small is not None:
        row, size = small
        raise _too_small(method, min_n, size, row, why, k)


def _too_small(method: str, min_n: int, n: int, row, why: str, k) -> _validation.GroupSizeError:
    """The error for a group of n < min_n samples (``row`` None: every group of a dense batch)."""
    where = "every group" if row is None else _validation.describe_group(row)
    reason = f" ({why})" if why else ""
    message = f"{where} has n={n} samples; {method!r} needs n >= {min_n}{reason}."
    return _validation.GroupSizeError(message, row, n, min_n, k, None)


# --- parameter checks (static: they never read the rewards) -----------------------------------


def check_real(
    name: str, value, *, positive: bool = False, nonnegative: bool = False, nonzero: bool = False
) -> float:
    """A finite real number (not bool), optionally > 0, >= 0 or != 0, as a Python float."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        kind = type(value).__name__
        raise ValueError(f"{name} must be a real number; got {value!r} of type {kind}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}.")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0; got {value}.")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0; got {value}.")
    if nonzero and value == 0:
        raise ValueError(f"{name} must be nonzero; got {value}.")
    return value
