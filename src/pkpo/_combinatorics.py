"""Binomial ratios without binomials: the numerically delicate part of PKPO.

Every weight in the paper is a ratio of binomial coefficients such as C(i-1, k-1) / C(n, k).
The coefficients themselves overflow float64 long before n = 65,536 (C(4096, 2048) already
does), so they are never formed. Instead a table of log-factorials

    lf[m] = log(m!) = sum_{j=1}^{m} log(j),      m = 0 .. N

is built once per N in float64 (its absolute error stays below 1e-10 at N = 65,536), and every
ratio is exp(log C(a, b) - log C(m, b)), with C(a, b) = 0 outside 0 <= b <= a mapped to exactly
0 (log = -inf). The ratios are at most 1, so nothing overflows.

The functions take an array module ``xp`` (numpy, torch or jax.numpy) and integer arrays that
broadcast against each other, so the same code builds the weights for a dense batch (n a Python
int: computed once on the host in numpy and cached) and for ragged groups (n a per-row array on
the device).
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=32)
def log_factorial_table(size: int) -> np.ndarray:
    """lf[m] = log(m!) for m = 0 .. size, float64, as a read-only numpy array."""
    table = np.zeros(size + 1, dtype=np.float64)
    if size > 0:
        table[1:] = np.cumsum(np.log(np.arange(1, size + 1, dtype=np.float64)))
    table.setflags(write=False)
    return table


def log_binomial(xp, lf, a, b):
    """log C(a, b) from the log-factorial table ``lf``; -inf where C(a, b) = 0 (b < 0 or b > a)."""
    valid = (b >= 0) & (b <= a) & (a >= 0)
    a_safe = xp.where(valid, a, 0)
    b_safe = xp.where(valid, b, 0)
    value = lf[a_safe] - lf[b_safe] - lf[a_safe - b_safe]
    return xp.where(valid, value, -np.inf)


def binomial_ratio(xp, lf, a, b, m, c):
    """C(a, b) / C(m, c), exactly 0 where C(a, b) = 0. Requires C(m, c) > 0."""
    return xp.exp(log_binomial(xp, lf, a, b) - log_binomial(xp, lf, m, c))


# --- the rank weights of paper.md, as functions of the 1-based rank t ----------------------


def rank_weights(xp, lf, t, n, k: int) -> dict:
    """All rank-indexed weights the transforms need, for ranks t = 1..N and group size n.

    With d_t = g_(t) - g_(t-1) the gap below rank t of the ascending sort, the transforms are
    prefix and suffix sums of d_t (or of g_(t) - g_(1)) times these weights:

    - ``tail``:   P[max of a random k-subset of the n has rank >= t] = 1 - C(t-1, k)/C(n, k),
      so maxg@k = g_(1) + sum_t d_t * tail_t (the tail form of eq. 12).
    - ``top``:    C(t-1, k-1)/C(n, k), the weight of rank t in eq. 12 (mu_t / C(n, k)).
    - ``lift``:   k/n - C(t-2, k-1)/C(n, k) = (k/n) P[max of the k-1 companions of a sample has
      rank >= t - 1 among the other n - 1]: the weight of a gap above a sample in s (eq. 19).
    - ``tail_drop_below``: tail_t for a pool of n-1 (a sample below rank t was removed).
    - ``tail_drop_above``: tail_{t-1} for a pool of n-1 (a sample at or above rank t was removed).
    - ``jack_below`` / ``jack_above``: the differences tail_t(n) - tail_drop_below_t and
      tail_t(n) - tail_drop_above_t, written so that no two near-equal numbers are subtracted:
      (k/n) C(t-1,k)/C(n-1,k) and (k/n) C(t-2,k)/C(n-1,k) - C(t-2,k-1)/C(n,k), which simplifies
      to -C(t-2,k-1)/C(n,k) * (n-t+1)/(n-k).

    Weights that need a pool of n-1 >= k are 0 where n - 1 < k; callers validate n first.
    Ranks t > n (padding of ragged groups) get weight 0 in every entry.
    """
    defined = n >= k  # groups with n < k are rejected upstream; without validation they get 0
    n = xp.where(defined, n, k)
    inside = (t <= n) & defined
    has_drop = (n - 1) >= k
    n_drop = xp.where(has_drop, n - 1, k)  # any m with C(m, k) > 0; masked out below

    def ratio(a, b, m, c, where=inside):
        return xp.where(where, binomial_ratio(xp, lf, a, b, m, c), 0.0)

    drop = inside & has_drop
    makers = {
        "top": lambda: ratio(t - 1, k - 1, n, k),
        "tail": lambda: xp.where(inside, 1.0 - ratio(t - 1, k, n, k), 0.0),
        # 1 - C(t-2,k-1)/C(n-1,k-1), scaled by k/n = C(n-1,k-1)/C(n,k); 0 at k = 1
        "lift": lambda: xp.where(inside, ratio(n - 1, k - 1, n, k) * (1.0 - ratio(t - 2, k - 1, n - 1, k - 1)), 0.0),
        "tail_drop_below": lambda: xp.where(drop, 1.0 - ratio(t - 1, k, n_drop, k, drop), 0.0),
        "tail_drop_above": lambda: xp.where(drop, 1.0 - ratio(t - 2, k, n_drop, k, drop), 0.0),
        # C(n-1,k-1)/C(n,k) = k/n, formed like the other ratios so it stays in float64
        "jack_below": lambda: ratio(n - 1, k - 1, n, k) * ratio(t - 1, k, n_drop, k, drop),
        # float times int first, so torch/JAX integer division never rounds to float32
        "jack_above": lambda: -(ratio(t - 2, k - 1, n, k, drop) * (n - t + 1)) / xp.where(drop, n - k, 1),
    }
    return LazyWeights(makers)


class LazyWeights(dict):
    """A dict whose values are computed on first access (ragged groups only pay for what they use)."""

    def __init__(self, makers: dict):
        super().__init__()
        self._makers = makers

    def __missing__(self, key):
        value = self[key] = self._makers[key]()
        return value


@functools.lru_cache(maxsize=128)
def dense_rank_weights(size: int, n: int, k: int) -> dict:
    """:func:`rank_weights` for a dense batch (every group of size n = size), in numpy float64."""
    lf = log_factorial_table(size + 1)
    t = np.arange(1, size + 1)
    lazy = rank_weights(np, lf, t, n, k)
    weights = {key: lazy[key] for key in lazy._makers}
    for value in weights.values():
        value.setflags(write=False)
    return weights
