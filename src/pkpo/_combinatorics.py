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

Each rank weight is defined once (:data:`FORMULAS`), as a combination of such ratios, and
evaluated in one of two arithmetics. For a dense batch with N <= EXACT_MAX_SIZE the cached
weights are not formed in log space at all: every ratio is a pair of Python integers, so each
weight is one ratio p/q that Python rounds correctly to float64 (<= 0.5 ulp). Otherwise
(:func:`log_space_rank_weights`) the ratios come from the table; that code takes an array
module ``xp`` (numpy, torch or jax.numpy) and integer arrays that broadcast against each other,
so it builds the weights of a large dense batch (n a Python int: once on the host, cached) and
of ragged groups (n a per-row array on the device).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

# Dense batches up to this size get exactly rounded weights from integer arithmetic. Measured on
# one core of the 2-core dev machine (under load): about 0.14 s for all seven weight vectors at
# N = 2048 (k = N/2, the worst case; 40 ms at k <= 4), once per (N, n, k) thanks to the cache. The
# log-space path costs about 1 ms at N = 4096.
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


def traced_log_factorial_table(xp, size: int, like) -> LogFactorials:
    """log(m!) for m = 0 .. size from array operations only, on ``like``'s device and dtype.

    The table of :func:`log_factorial_table` for code that cannot run host code (``torch.compile``
    graphs): lgamma(m + 1), within about an ulp of log(m!) (1e-10 absolute at m = 65,536, so
    weights off by about that relative amount; 1e-14 at m = 64), split on the same grid.
    """
    m = xp.arange(size + 1, device=like.device).to(like.dtype)
    table = xp.lgamma(m + 1)
    q = 23 - xp.ceil(xp.log2(table[-1:] + 2.0))
    hi = xp.ldexp(xp.round(xp.ldexp(table, q)), -q)
    return LogFactorials(hi, table - hi)


def _log_binomial_parts(xp, lf: LogFactorials, a, b):
    """(valid, hi, lo) with log C(a, b) = hi + lo where valid (0 <= b <= a), in ``lf``'s dtype."""
    valid = (b >= 0) & (b <= a) & (a >= 0)
    a = xp.where(valid, a, 0)
    b = xp.where(valid, b, 0)
    hi = lf.hi[a] - lf.hi[b] - lf.hi[a - b]  # exact: grid values, partial sums below 2^24 steps
    lo = lf.lo[a] - lf.lo[b] - lf.lo[a - b]
    return valid, hi, lo


def binomial_ratio(xp, lf: LogFactorials, a, b, m, c):
    """C(a, b) / C(m, c), exactly 0 where C(a, b) = 0.

    Where C(m, c) = 0 or the ratio exceeds e the value is meaningless (finite): callers mask it.
    Arguments are broadcast only at the end, so numerators indexed by rank and denominators
    indexed by group cost one pass over the (groups, ranks) array.
    """
    valid, hi, lo = _log_binomial_parts(xp, lf, a, b)
    _, hi_m, lo_m = _log_binomial_parts(xp, lf, m, c)
    return xp.where(valid, xp.exp(xp.clip((hi - hi_m) + (lo - lo_m), None, 1.0)), 0.0)


# --- the rank weights of the paper (eqs. 12-13, 19-21, 29-34), as functions of the rank t ---


class RankWeights(NamedTuple):
    """The rank-indexed weights the transforms need, for ranks t = 1..N of a group of size n.

    With d_t = g_(t) - g_(t-1) the gap below rank t of the ascending sort, every transform is a
    prefix or suffix sum of d_t times one of these (:data:`FORMULAS` gives their formulas):

    - ``top``:    C(t-1, k-1)/C(n, k), the weight of rank t in eq. 12 (mu_t / C(n, k)).
    - ``tail``:   P[max of a random k-subset of the n has rank >= t] = 1 - C(t-1, k)/C(n, k),
      so maxg@k = g_(1) + sum_t d_t * tail_t (the tail form of eq. 12).
    - ``lift``:   k/n - C(t-2, k-1)/C(n, k) = (k/n) P[max of the k-1 companions of a sample has
      rank >= t - 1 among the other n - 1]: the weight of a gap above a sample in s (eq. 19).
    - ``tail_drop_below``: tail_t for a pool of n-1 (a sample below rank t was removed).
    - ``tail_drop_above``: tail_{t-1} for a pool of n-1 (a sample at or above rank t was removed).
    - ``jack_below`` / ``jack_above``: tail_t(n) - tail_drop_below_t and tail_t(n) -
      tail_drop_above_t, written so that no two near-equal numbers are subtracted.

    The last four need a pool of n - 1 >= k and are 0 where n - 1 < k. Ranks t > n (padding of
    ragged groups) get 0 in every field. :data:`FORMULAS` defines each in binomial ratios.
    """

    top: Any
    tail: Any
    lift: Any
    tail_drop_below: Any
    tail_drop_above: Any
    jack_below: Any
    jack_above: Any


# The one definition of every weight, as a combination of binomial ratios
# ratio(a, b, m, c) = C(a, b) / C(m, c); ``ratio`` decides the arithmetic (exact integers for a
# dense batch, log space on arrays otherwise). No two near-equal numbers are subtracted:
# C(n-1,k-1)/C(n,k) = k/n is formed like the other ratios (so it stays in float64), and the jack
# weights are the differences of two tails in closed form. Each multiplies a float by an int
# before dividing by an int, so torch/JAX integer division never rounds to float32.
FORMULAS = RankWeights(
    top=lambda ratio, t, n, k: ratio(t - 1, k - 1, n, k),
    tail=lambda ratio, t, n, k: 1 - ratio(t - 1, k, n, k),
    lift=lambda ratio, t, n, k: ratio(n - 1, k - 1, n, k) * (1 - ratio(t - 2, k - 1, n - 1, k - 1)),
    tail_drop_below=lambda ratio, t, n, k: 1 - ratio(t - 1, k, n - 1, k),
    tail_drop_above=lambda ratio, t, n, k: 1 - ratio(t - 2, k, n - 1, k),
    jack_below=lambda ratio, t, n, k: ratio(n - 1, k - 1, n, k) * ratio(t - 1, k, n - 1, k),
    jack_above=lambda ratio, t, n, k: -ratio(t - 2, k - 1, n - 1, k) * (n - t + 1) / n,
)
_NEED_DROP = frozenset(("tail_drop_below", "tail_drop_above", "jack_below", "jack_above"))


class LazyRankWeights:
    """The fields of :class:`RankWeights`, each computed on first access (ragged groups only pay
    for the weights their transform uses). ``evaluate(name)`` computes one field."""

    def __init__(self, evaluate):
        self._evaluate = evaluate

    def __getattr__(self, name: str):
        if name not in RankWeights._fields:
            raise AttributeError(name)
        value = self._evaluate(name)
        setattr(self, name, value)  # later accesses find the attribute, not __getattr__
        return value

    def all(self) -> RankWeights:
        return RankWeights(*(getattr(self, name) for name in RankWeights._fields))


def log_space_rank_weights(xp, lf: LogFactorials, t, n, k: int) -> LazyRankWeights:
    """The :data:`FORMULAS` from the log-factorial table, for integer arrays t and n that broadcast.

    Works for any n (a Python int, or per-group sizes on the device for ragged groups). Groups
    with n < k (rejected upstream; reachable with validate=False) get 0 everywhere.
    """
    defined = n >= k
    n = xp.where(defined, n, k)
    inside = (t <= n) & defined
    drop = inside & (n - 1 >= k)
    ratio = functools.partial(binomial_ratio, xp, lf)

    def evaluate(name):
        value = getattr(FORMULAS, name)(ratio, t, n, k)
        return xp.where(drop if name in _NEED_DROP else inside, value, 0.0)

    return LazyRankWeights(evaluate)


@functools.lru_cache(maxsize=128)
def dense_rank_weights(size: int, n: int, k: int) -> RankWeights:
    """:class:`RankWeights` of a dense batch (every group of size n) for ranks 1..size, numpy
    float64.

    Exactly rounded for size <= EXACT_MAX_SIZE: each weight is one ratio of Python integers
    (binomials by the exact recurrence C(u, j) = C(u-1, j) u / (u-j)), which Python's int / int
    rounds correctly. Log space beyond. The arrays are read-only (they are cached).
    """
    if size <= EXACT_MAX_SIZE:
        weights = _exact_rank_weights(size, n, k)
    else:
        weights = log_space_rank_weights(
            np, log_factorial_table(size + 1), np.arange(1, size + 1), n, k
        ).all()
    for value in weights:
        value.setflags(write=False)
    return weights


def _exact_rank_weights(size: int, n: int, k: int) -> RankWeights:
    """:data:`FORMULAS` in exact integer arithmetic, for all ranks at once (numpy object arrays)."""
    columns = {j: np.array(_binomial_column(j, size), dtype=object) for j in (k - 1, k)}

    def binomial(a, b: int):
        if isinstance(a, np.ndarray):  # a rank-indexed numerator: t - 1 or t - 2, from the columns
            return columns[b][(a + 1).astype(np.intp)]
        return math.comb(a, b) if 0 <= b <= a else 0

    def ratio(a, b, m, c):
        return _Rational(binomial(a, b), binomial(m, c))

    t = np.arange(1, min(n, size) + 1).astype(object)  # Python ints: products never overflow
    values = {name: np.zeros(size) for name in RankWeights._fields}
    for name in RankWeights._fields:
        if n - 1 >= k or name not in _NEED_DROP:
            values[name][: t.size] = getattr(FORMULAS, name)(ratio, t, n, k).to_float()
    return RankWeights(**values)


def _binomial_column(j: int, size: int) -> list:
    """C(u, j) for u = -1 .. size - 1 at index u + 1, so C(t-1, j) = out[t]."""
    out = [0] * (size + 1)
    value = 0
    for u in range(max(j, 0), size):
        value = 1 if u == j else value * u // (u - j)
        out[u + 1] = value
    return out


class _Rational:
    """p/q of Python integers (or object arrays of them), unreduced: the exact arithmetic that
    :data:`FORMULAS` needs. to_float() divides once, and Python rounds int / int correctly, so
    every weight is exactly rounded.
    """

    __slots__ = ("p", "q")

    def __init__(self, p, q=1):
        if (
            isinstance(p, int) and isinstance(q, int) and q
        ):  # a constant such as C(n-1,k-1)/C(n,k) = k/n
            common = math.gcd(p, q)
            p, q = p // common, q // common
        self.p, self.q = p, q

    def __rsub__(self, other: int) -> "_Rational":  # other - self
        return _Rational(other * self.q - self.p, self.q)

    def __mul__(self, other) -> "_Rational":
        if isinstance(other, _Rational):
            return _Rational(self.p * other.p, self.q * other.q)
        return _Rational(self.p * other, self.q)

    def __truediv__(self, other: int) -> "_Rational":
        return _Rational(self.p, self.q * other)

    def __neg__(self) -> "_Rational":
        return _Rational(-self.p, self.q)

    def to_float(self) -> np.ndarray:
        return np.asarray(self.p / self.q, dtype=np.float64)
