"""The kernel every estimator and transform runs on: sort each group once, then scan its gaps.

For one group with ascending order statistics g_(1) <= ... <= g_(n), write

    floor = g_(1),      d_t = g_(t) - g_(t-1)  (t = 2..n),  d_1 = 0.

Every PKPO quantity is then the floor times a constant plus prefix/suffix sums of d_t times the
rank weights of :mod:`pkpo._combinatorics`. The gaps are non-negative, so most of these sums add
non-negative terms only: they are shift-invariant and lose no precision to cancellation, even in
float32 at n = 65,536 or for rewards far from zero.

Ragged groups (a boolean ``mask``) are sorted with their masked entries pushed to the end; the
padding then repeats the group's largest valid value, so its gaps are exactly 0 and it
contributes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from . import _validation
from ._backend import Backend, as_array, backend_of
from ._combinatorics import (
    LazyRankWeights,
    LogFactorials,
    RankWeights,
    dense_rank_weights,
    log_factorial_table,
    log_space_rank_weights,
    traced_log_factorial_table,
)

# A dense numpy batch of groups up to this size may apply a transform as one matrix product (BLAS)
# instead of running sums (GapForm.for_dense_numpy), ...
MATRIX_MAX_SIZE = 64
# ... when the matrix has at most this many rows per running sum it replaces. Each row of the
# matrix costs a multiply-add per element; a blocked running sum (pkpo._backend) about 9-17 and
# a few passes. Measured with apply alone, float64, one core: at 16384 x 16 the matrix takes
# 0.20-0.48 ms against 0.37-1.2 ms for the sums (every baseline, k < n); at 8192 x 32 one sum
# (loo_minus_one, none: 17-31 rows) takes 0.24-0.42 ms against 0.26-0.58 ms for the matrix, and
# two (centered, loo: 16-32 rows) 0.64-0.83 ms against 0.25-0.62 ms; at 4096 x 64 one sum takes
# 0.27-0.53 ms against 0.42-0.97 ms (33-63 rows), two 0.83-1.1 ms against 0.41-0.92 ms (32-64).
MATRIX_ROWS_PER_SUM = 24


class GapForm(NamedTuple):
    """A transform of sorted groups, in the gap form every PKPO transform takes:

        A_(i) = value g_(i) + floor g_(1) + sum_{t <= i} d_t prefix_t + sum_{t > i} d_t suffix_t

    ``value`` and ``floor`` are numbers (or per-group arrays), ``prefix`` and ``suffix`` rank
    weights (or None for no such sum). ``matrix`` (dense groups only) holds both sums as one
    matrix M[u, t] = prefix_u (u <= t) or suffix_u (u > t), so that the sums are d @ M.
    """

    value: Any
    floor: Any
    prefix: Any
    suffix: Any
    matrix: Any = None

    def for_dense_numpy(self) -> "GapForm":
        """This form (weights: host numpy arrays of one size n <= MATRIX_MAX_SIZE) with its sums
        as the matrix M, read-only, where d @ M is cheaper than the running sums it replaces
        (MATRIX_ROWS_PER_SUM); else the form itself."""
        size = (self.prefix if self.prefix is not None else self.suffix).shape[-1]
        rank = np.arange(size)
        below = rank[:, None] <= rank[None, :]  # u <= t
        matrix = np.zeros((size, size))
        if self.prefix is not None:
            matrix += np.where(below, np.asarray(self.prefix)[:, None], 0.0)
        if self.suffix is not None:
            matrix += np.where(below, 0.0, np.asarray(self.suffix)[:, None])
        # rows of ranks whose gaps carry no weight (t < k for s^(loo-1)) are dropped: d @ M uses
        # only the gaps from rank ``start`` on
        start = int(np.argmax(matrix.any(axis=1))) if matrix.any() else size
        matrix = matrix[start:]
        sums = (self.prefix is not None) + (self.suffix is not None)
        if matrix.shape[0] > MATRIX_ROWS_PER_SUM * sums:
            return self
        matrix.setflags(write=False)
        return GapForm(self.value, self.floor, None, None, matrix)


@dataclass
class SortedGroups:
    backend: Backend
    values: (
        Any  # (..., N) ascending, compute dtype, times ``scale``; padding repeats the group maximum
    )
    indices: Any  # (..., N) sort permutation, for scattering results back (Backend.sort)
    gaps: Any  # (..., N) d_t >= 0 (scaled, compute dtype), zero at t = 1 and on padding
    n: Any  # int (dense) or (..., 1) integer array (ragged)
    mask: Any  # None or (..., N) bool in the caller's order
    result_dtype: Any
    like: Any  # an array on the caller's device
    scale: Any = (
        1.0  # values = rewards * scale, a power of two (magnitude_scale); 0-d array on the device
    )
    check_output: bool = False  # rewards so large that a result may not fit the output dtype
    name: str = "rewards"
    caller: Any = None  # the caller's backend when it differs (torch CPU computed by numpy)
    _weights: dict = field(default_factory=dict, repr=False)  # k -> rank weights, built once

    @property
    def floor(self):
        """(..., 1) the smallest value of each group (scaled, compute dtype)."""
        return self.values[..., :1]

    @property
    def n_float(self):
        """The group size as a float (int) or float array (ragged), for arithmetic."""
        return (
            float(self.n)
            if isinstance(self.n, int)
            else self.backend.astype(self.n, self.gaps.dtype)
        )

    @property
    def size(self) -> int:
        return self.backend.shape(self.gaps)[-1]

    def weights(self, k: int) -> RankWeights | LazyRankWeights:
        """The :class:`~pkpo._combinatorics.RankWeights` of these groups on their backend/device.

        Built once per k for these groups (a transform and its diagnostics share them). Dense
        groups get the cached host weights; ragged groups compute the fields they use, from a
        table over every group size when there are more groups than sizes.
        """
        if k not in self._weights:
            backend = self.backend
            dtype = self.gaps.dtype
            if backend.is_compiling():  # inside torch.compile: no host tables, all in the graph
                lf = log_factorials(backend, self.size + 1, self.gaps)
                n = self._arange(1) + self.n if isinstance(self.n, int) else self.n  # as an array
                self._weights[k] = log_space_rank_weights(
                    backend.xp, lf, self._arange(self.size) + 1, n, k
                )
            elif isinstance(self.n, int):
                self._weights[k] = backend.constant(
                    dense_rank_weights, (self.size, self.n, k), self.like, dtype
                )
            else:
                lf = log_factorials(backend, self.size + 1, self.gaps)
                t = self._arange(self.size) + 1
                if math.prod(backend.shape(self.n)) > self.size + 1:
                    # more groups than possible sizes: the weights of every n = 0..N,
                    # a row per group
                    table = log_space_rank_weights(
                        backend.xp, lf, t, self._arange(self.size + 1)[:, None], k
                    )
                    rows = self.n[..., 0]
                    self._weights[k] = LazyRankWeights(lambda name: getattr(table, name)[rows])
                else:
                    self._weights[k] = log_space_rank_weights(backend.xp, lf, t, self.n, k)
        return self._weights[k]

    def maxg_estimate(self, k: int):
        """rho_k of every group, (..., 1): g_(1) + sum_t d_t P[max rank >= t]
        (tail form of eq. 12)."""
        return self.floor + self.backend.xp.sum(
            self.gaps * self.weights(k).tail, axis=-1, keepdims=True
        )

    def uses_matrix(self) -> bool:
        """Whether :meth:`apply` may take a matrix form (:meth:`GapForm.for_dense_numpy`: dense
        numpy groups of at most MATRIX_MAX_SIZE), rather than rank weights on the device."""
        return self.backend.name == "numpy" and self.mask is None and self.size <= MATRIX_MAX_SIZE

    def apply(self, form: GapForm):
        """The transform ``form`` of every group, in sorted order (compute dtype).

        sum_{t <= i} and sum_{t > i} are running sums along the ranks; the second is formed from
        the right, so that sums of non-negative terms never cancel. numpy keeps its work arrays
        in per-thread buffers (pkpo._backend.scratch)."""
        if form.matrix is not None:
            start = self.size - form.matrix.shape[0]  # the first rank with a weight
            out = self.backend.matmul(
                self.gaps[..., start:], form.matrix.astype(self.gaps.dtype, copy=False)
            )
        else:
            backend = self.backend
            parts = []
            if form.prefix is not None:
                skip = (
                    _leading_zeros(form.prefix) if form.suffix is None else 0
                )  # s^(loo-1): ranks < k
                parts.append(
                    backend.running_sum(
                        self.gaps[..., skip:], form.prefix[..., skip:], slot="prefix", skip=skip
                    )
                )
            if form.suffix is not None:
                parts.append(
                    backend.running_sum(
                        self.gaps, form.suffix, from_right=True, inclusive=False, slot="suffix"
                    )
                )
            out = parts[0] if len(parts) == 1 else backend.accumulate(parts[0], parts[1])
        if _nonzero(form.value):
            out = self.backend.accumulate(out, self.values, form.value)
        if _nonzero(form.floor):
            out = self.backend.accumulate(out, self.floor, form.floor)
        return out

    # --- scans ------------------------------------------------------------------------------
    def without_padding(self, sorted_result):
        """``sorted_result`` with the padding ranks t > n (ragged groups) set to 0."""
        if self.mask is None:
            return sorted_result
        return self.backend.xp.where(self._arange(self.size) < self.n, sorted_result, 0.0)

    def _arange(self, size: int):
        return self.backend.xp.arange(size, device=self.backend.device(self.like))

    def finish(self, sorted_result, rescale: bool = True):
        """Scatter a per-rank result back to the caller's order (cast to the result dtype on the
        way), zero the mask."""
        backend = self.backend
        out = backend.unsort(self._unscale(sorted_result, rescale), self.indices, self.result_dtype)
        if self.mask is not None:
            out = backend.xp.where(self.mask, out, 0.0)
        return self.to_caller(self._checked(out))

    def per_group(self, value, rescale: bool = True):
        """Cast a per-group (..., 1) result to the result dtype and drop the last axis."""
        out = self.backend.astype(self._unscale(value[..., 0], rescale), self.result_dtype)
        return self.to_caller(self._checked(out))

    def to_caller(self, array):
        """A result as the caller's kind of array."""
        return array if self.caller is None else self.caller.to_caller(array)

    def _unscale(self, value, rescale: bool = True):
        """Undo the power-of-two scaling (every output is linear in the rewards; ``rescale=False``
        for scale-free results)."""
        if rescale and not _is_one(self.scale):
            value = value * (1.0 / self.scale)
        return value

    def _checked(self, out):
        """``out``, or a ValueError for a result beyond the output dtype's range (never inf)."""
        if self.check_output and not bool(
            self.backend.to_numpy(self.backend.xp.isfinite(out)).all()
        ):
            raise ValueError(
                f"the result does not fit in {_dtype_name(self.result_dtype)}: {self.name} this "
                "close to the largest float give transformed values beyond it; rescale the "
                "rewards (every output of pkpo is proportional to them) or pass float64."
            )
        return out


class CheckedInput(NamedTuple):
    """Rewards that passed the checks of :func:`check_input`, with what the checks found."""

    backend: Backend
    x: Any  # the caller's array (numpy for lists)
    mask: Any  # None or a bool array of x's shape
    n: Any  # int (dense) or (..., 1) integer array (ragged)


def check_input(
    rewards,
    mask=None,
    *,
    validate=True,
    binary=False,
    labels=None,
    k=None,
    baseline=None,
    name="rewards",
) -> CheckedInput:
    """Validate ``rewards`` (and ``mask``): the checks of the math layer that come before the sort.

    Static checks always run; with ``validate`` the 0/1 values of ``binary`` input and the sizes of
    ragged groups are read. NaN/inf are found after the sort, at the ends of each group
    (:func:`sort_groups`), which costs no pass over the data.
    """
    backend, x = as_array(rewards, name)
    _validation.check_rewards_array(backend, x, name)
    if validate and backend.is_traced(x):
        _validation.traced_with_validate(name)
    mask = _validation.check_mask(backend, mask, x, validate)
    xp = backend.xp
    if mask is None:
        n = backend.shape(x)[-1]
    else:
        n = xp.sum(backend.astype(mask, backend.compute_dtype(x)), axis=-1, keepdims=True)
        n = backend.astype(n, xp.int32 if backend.name == "jax" else xp.int64)

    if validate and binary:
        _validation.check_binary(backend, x, mask, labels, name)
    if validate and mask is not None and k is not None:
        _validation.check_group_sizes(n, k, baseline or "none", labels, backend)
    if mask is None and k is not None:
        _validation.check_group_sizes(n, k, baseline or "none", labels)
    return CheckedInput(backend, x, mask, n)


def sort_groups(
    rewards,
    mask=None,
    *,
    validate=True,
    binary=False,
    labels=None,
    k=None,
    baseline=None,
    name="rewards",
) -> SortedGroups:
    """Validate ``rewards`` (and ``mask``), sort every group, and return its floor and gaps."""
    checked = check_input(
        rewards,
        mask,
        validate=validate,
        binary=binary,
        labels=labels,
        k=k,
        baseline=baseline,
        name=name,
    )
    backend, x, mask, n = checked
    result_dtype = backend.result_dtype(x)
    caller, host = None, backend.host_view(x)
    if host is not None:  # a torch CPU tensor, computed by numpy (Backend.host_view)
        caller, backend, x = backend, backend_of(host), host
        result_dtype = caller.host_view(
            caller.xp.empty((0,), dtype=result_dtype)
        ).dtype  # the same dtype
        mask = None if mask is None else caller.to_numpy(mask)
        n = n if isinstance(n, int) else caller.to_numpy(n)
    size = backend.shape(x)[-1]
    xp = backend.xp
    compute_dtype = backend.compute_dtype(x)

    # Sort in the input's own dtype (faster on GPUs, and exact; numpy hands float32 rows back in
    # float64, see Backend.sort), then do the scans in float64.
    values = x if backend.is_floating(x) else backend.astype(x, compute_dtype)
    if mask is not None:
        # Masked entries sort to the end, then repeat the last valid value (gap 0, finite).
        values = xp.where(mask, values, np.inf)
    ordered, indices = backend.sort(values, padded=mask is not None)
    if mask is not None:
        ordered = backend.astype(ordered, compute_dtype)
        last = xp.take_along_axis(ordered, xp.where(n > 0, n - 1, 0), axis=-1)
        t = xp.arange(size, device=backend.device(x))
        ordered = xp.where(t < n, ordered, last)
        ordered = xp.where(n > 0, ordered, 0.0)  # an all-masked row is all zeros

    check_values = validate and backend.is_floating(x)
    scale, check_output = magnitude_scale(
        backend,
        ordered,
        check_values,
        compute_dtype,
        result_dtype,
        labels,
        name,
        readable=validate or backend.reads_cheaply(x),
    )
    values = backend.to_compute_dtype(ordered, compute_dtype)  # exact: float32 -> float64
    if not _is_one(scale):  # before the gaps: near the largest float unscaled gaps could overflow
        values = values * scale
    gaps = backend.differences(values)
    return SortedGroups(
        backend, values, indices, gaps, n, mask, result_dtype, x, scale, check_output, name, caller
    )


def _leading_zeros(weights) -> int:
    """How many leading ranks of 1-D host (numpy) rank weights are exactly 0; 0 for others."""
    if not isinstance(weights, np.ndarray) or weights.ndim != 1:
        return 0
    nonzero = np.flatnonzero(weights)
    return int(nonzero[0]) if nonzero.size else weights.size - 1


def _is_one(scale) -> bool:
    return isinstance(scale, float) and scale == 1.0


def magnitude_scale(
    backend, values, check_values, compute_dtype, result_dtype, labels, name, readable
):
    """(scale, check_output): the power of two the sorted ``values`` are multiplied by, and
    whether the results must be checked to fit ``result_dtype``.

    Every output of pkpo is linear in the rewards, so they can be scaled by a power of two
    (exactly) and the results scaled back. Rewards within 1/8 of the largest float get 2^-3 (the
    gaps and sums reach a few times max |g|); rewards whose largest magnitude is below
    sqrt(tiny) (1.5e-154 in float64) are scaled up towards 1, so that no intermediate goes
    subnormal. Only the ends of each sorted group are read: max |g| is at one of them, and NaN
    and inf sort there too (NaN last), so ``check_values`` rejects them (naming the group) from
    2 numbers per group. ``readable``: the values may be read on the host (one synchronisation);
    otherwise (GPU without validation, torch.compile, jax.jit) the scale is computed on the
    device, as a 0-d array.
    """
    xp = backend.xp
    if math.prod(backend.shape(values)) == 0:
        return 1.0, False
    low, high = values[..., 0], values[..., -1]
    info = xp.finfo(compute_dtype)
    if not readable:
        largest = backend.astype(
            xp.maximum(xp.max(xp.abs(low)), xp.max(xp.abs(high))), compute_dtype
        )
        return _device_scale(xp, largest, float(info.max), float(info.smallest_normal)), False
    ends = backend.to_numpy(xp.stack([xp.min(low), xp.max(high)]))  # one host read
    if check_values and not np.isfinite(ends).all():
        finite = xp.isfinite(low) & xp.isfinite(high)
        row = _validation.first_bad_row(~backend.to_numpy(finite))
        raise ValueError(f"{name} contain NaN or inf in {_validation.describe_group(row, labels)}.")
    largest = float(np.abs(ends).max())
    scale = power_of_two_scale(largest, float(info.max), float(info.smallest_normal))
    return scale, check_values and largest > _max_float(xp, result_dtype) / 8


def power_of_two_scale(largest: float, max_float: float, tiny: float) -> float:
    """2^-3 when ``largest`` is within 1/8 of ``max_float``; 2^e bringing it to [1/2, 1) when it is
    below sqrt(tiny) (e capped so that 2^-e stays a normal float); else 1."""
    if largest > max_float / 8:
        return 0.125
    if 0 < largest < math.sqrt(tiny):
        return math.ldexp(1.0, min(-math.frexp(largest)[1], -math.frexp(tiny)[1] - 2))
    return 1.0


def _device_scale(xp, largest, max_float: float, tiny: float):
    """:func:`power_of_two_scale` on the device (no host read): a 0-d array of ``largest``'s
    dtype."""
    _, exponent = xp.frexp(largest)
    cap = -math.frexp(tiny)[1] - 2
    up = xp.ldexp(xp.ones_like(largest), xp.clip(-exponent, 0, cap))
    small = (largest > 0) & (largest < math.sqrt(tiny))
    return xp.where(largest > max_float / 8, 0.125, xp.where(small, up, 1.0))


def log_factorials(backend: Backend, size: int, like) -> LogFactorials:
    """The log-factorial table for m = 0 .. size on ``like``'s device and dtype: the cached host
    table, or (inside torch.compile, where host code would break the graph) one made by array
    operations in the graph."""
    if backend.is_compiling():
        return traced_log_factorial_table(backend.xp, size, like)
    return backend.constant(log_factorial_table, (size,), like, like.dtype)


def _nonzero(coefficient) -> bool:
    """Whether a GapForm coefficient (a number or a per-group array) takes part."""
    return not (isinstance(coefficient, (int, float)) and coefficient == 0)


def _max_float(xp, dtype) -> float:
    """The largest finite value of a float dtype."""
    return float(xp.finfo(dtype).max)


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")
