"""Binomial ratios without binomials: the numerically delicate part of PKPO.

Every weight in the paper is a ratio of binomial coefficients such as C(i-1, k-1) / C(n, k).
The coefficients themselves overflow float64 long before n = 65,536 (C(4096, 2048) already
does), so in general they are never formed. Instead a table of log-factorials

    lf[m] = log(m!) = sum_{j=1}^{m} log(j),      m = 0 .. N

is built once per N, and every ratio is exp(log C(a, b) - log C(m, c)), with C(a, b) = 0
outside 0 <= b <= a mapped to exactly 0. The ratios are at most 1, so nothing overflows.

The table is stored as two parts, lf = hi + lo (:class:`LogFactorials`). ``hi`` is lf rounded to
a coarse binary grid (multiples of 2^-q, chosen so that every hi and every sum of the few hi
terms of a ratio stays below 2^24 grid steps), so the large, nearly cancelling terms of
log C(a, b) - log C(m, c) subtract *exactly*, even in float32; ``lo`` is the small remainder.
Without the split a float32 table (JAX without x64, MPS) loses log(m!) ~ 6.6e5 to 0.06 at
N = 65,536 and the ratios to several per cent. lf itself is accumulated in long double where
the platform has an extended one (absolute error 1e-14 up to N = 4096, 1.4e-12 at N = 65,536; a
float64 cumsum was off by 1e-9 there), else taken from math.lgamma (within about an ulp of lf:
1e-10 at N = 65,536).

For a dense batch with N <= EXACT_MAX_SIZE the cached weights are not formed in log space at
all: :func:`exact_rank_weights` computes each as a ratio of Python integers, which Python
rounds correctly to float64 (<= 0.5 ulp).

The functions take an array module ``xp`` (numpy, torch or jax.numpy) and integer arrays that
broadcast against each other, so the same code builds the weights for a dense batch (n a Python
int: computed once on the host in numpy and cached) and for ragged groups (n a per-row array on
the device).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

# Dense batches up to this size get exactly rounded weights from integer arithmetic. Measured on
# one core of the 2-core dev machine: about 40 ms for all seven weight vectors at N = 2048
# (k = N/2, the worst case; 10 ms at k <= 4), once per (N, n, k) thanks to the cache; 120 ms at
# N = 4096. The log-space path costs about 1 ms at N = 4096.
EXACT_MAX_SIZE = 2048


class LogFactorials(NamedTuple):
    """log(m!) = hi[m] + lo[m] for m = 0 .. size (see the module docstring)."""

    hi: Any
    lo: Any


@functools.lru_cache(maxsize=32)
def log_factorial_table(size: int) -> LogFactorials:
    """log(m!) for m = 0 .. size as read-only float64 numpy arrays ``(hi, lo)``."""
    if np.finfo(np.longdouble).eps < 1e-18:  # x87 extended or quad precision
        table = np.zeros(size + 1, dtype=np.longdouble)
        table[1:] = np.cumsum(np.log(np.arange(1, size + 1, dtype=np.longdouble)))
    else:  # long double is float64 here: lgamma is accurate to about an ulp, cumsum is not
        table = np.array([math.lgamma(j + 1.0) for j in range(size + 1)], dtype=np.longdouble)
    # grid 2^-q with (max + 2) 2^q <= 2^23: sums of two hi terms of a ratio stay exact in float32
    q = 23 - math.ceil(math.log2(float(table[-1]) + 2.0))
    hi = np.ldexp(np.round(np.ldexp(table, q)), -q)
    lo = (table - hi).astype(np.float64)
    hi = hi.astype(np.float64)
    for part in (hi, lo):
        part.setflags(write=False)
    return LogFactorials(hi, lo)


def _log_binomial_parts(xp, lf: LogFactorials, a, b):
    """(valid, hi, lo) with log C(a, b) = hi + lo where valid (0 <= b <= a), in ``lf``'s dtype."""
    valid = (b >= 0) & (b <= a) & (a >= 0)
    a = xp.where(valid, a, 0)
    b = xp.where(valid, b, 0)
    hi = lf.hi[a] - lf.hi[b] - lf.hi[a - b]  # exact: grid values, partial sums below 2^24 steps
    lo = lf.lo[a] - lf.lo[b] - lf.lo[a - b]
    return valid, hi, lo


def binomial_ratio(xp, lf: LogFactorials, a, b, m, c):
    """C(a, b) / C(m, c), exactly 0 where C(a, b) = 0. Requires C(m, c) > 0."""
    valid, hi, lo = _log_binomial_parts(xp, lf, a, b)
    _, hi_m, lo_m = _log_binomial_parts(xp, lf, m, c)
    return xp.where(valid, xp.exp((hi - hi_m) + (lo - lo_m)), 0.0)


# --- the rank weights of the paper (eqs. 12-13, 19-21, 29-34), as functions of the rank t ---


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
        # (k/n) (1 - C(t-2,k-1)/C(n-1,k-1)), with k/n = C(n-1,k-1)/C(n,k); 0 at k = 1
        "lift": lambda: xp.where(
            inside, ratio(n - 1, k - 1, n, k) * (1.0 - ratio(t - 2, k - 1, n - 1, k - 1)), 0.0
        ),
        "tail_drop_below": lambda: xp.where(drop, 1.0 - ratio(t - 1, k, n_drop, k, drop), 0.0),
        "tail_drop_above": lambda: xp.where(drop, 1.0 - ratio(t - 2, k, n_drop, k, drop), 0.0),
        # C(n-1,k-1)/C(n,k) = k/n, formed like the other ratios so it stays in float64
        "jack_below": lambda: ratio(n - 1, k - 1, n, k) * ratio(t - 1, k, n_drop, k, drop),
        # float times int first, so torch/JAX integer division never rounds to float32
        "jack_above": lambda: -(ratio(t - 2, k - 1, n, k, drop) * (n - t + 1))
        / xp.where(drop, n - k, 1),
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
    """:func:`rank_weights` for a dense batch (every group of size n), in numpy float64.

    Exactly rounded (:func:`exact_rank_weights`) for size <= EXACT_MAX_SIZE, log space beyond.
    """
    if size <= EXACT_MAX_SIZE:
        weights = exact_rank_weights(size, n, k)
    else:
        lazy = rank_weights(np, log_factorial_table(size + 1), np.arange(1, size + 1), n, k)
        weights = {key: lazy[key] for key in lazy._makers}
    for value in weights.values():
        value.setflags(write=False)
    return weights


def exact_rank_weights(size: int, n: int, k: int) -> dict:
    """The weights of :func:`rank_weights` from Python integers, each correctly rounded.

    Every weight is written as one ratio p/q of integers (C(a, b) by the exact recurrence
    C(u, j) = C(u-1, j) u / (u-j)), and Python's int / int rounds p/q correctly. Ranks t > n get 0.
    """

    def column(j: int) -> list:
        """C(u, j) for u = -1 .. size - 1 at index u + 1, so C(t-1, j) = out[t]."""
        out = [0] * (size + 1)
        value = 0
        for u in range(max(j, 0), size):
            value = 1 if u == j else value * u // (u - j)
            out[u + 1] = value
        return out

    c_k1, c_k = column(k - 1), column(k)
    total = math.comb(n, k)  # C(n, k)
    total_drop = math.comb(n - 1, k)  # C(n-1, k); 0 when n - 1 < k
    top_n = math.comb(n - 1, k - 1)  # C(n-1, k-1) = (k/n) C(n, k)
    keys = ("top", "tail", "lift", "tail_drop_below", "tail_drop_above", "jack_below", "jack_above")
    w = {key: [0.0] * size for key in keys}
    for t in range(1, min(n, size) + 1):
        i = t - 1
        w["top"][i] = c_k1[t] / total
        w["tail"][i] = (total - c_k[t]) / total
        w["lift"][i] = (top_n - c_k1[t - 1]) / total
        if total_drop:
            w["tail_drop_below"][i] = (total_drop - c_k[t]) / total_drop
            w["tail_drop_above"][i] = (total_drop - c_k[t - 1]) / total_drop
            w["jack_below"][i] = (k * c_k[t]) / (n * total_drop)
            w["jack_above"][i] = -(c_k1[t - 1] * (n - t + 1)) / ((n - k) * total)
    return {key: np.array(value, dtype=np.float64) for key, value in w.items()}
