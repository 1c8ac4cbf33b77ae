"""Brute-force reference implementations: every quantity straight from its SUBSET definition.

Nothing here sorts, forms a rank weight or uses a recursion: each function enumerates all size-k
subsets I of the n samples with :func:`itertools.combinations` and averages, in float64, exactly
as the paper defines the estimator (paper.md §1.3-1.5). The fast implementation in ``pkpo`` must
agree with these for every n <= 10 and every valid k; they are slow (O(C(n, k) k) per group and
worse for the leave-one-out variants) and only meant for tests.

Definitions, for one group g_1..g_n and the k-subsets I of [n] = {1..n}:

- maxg@k (eq. 15):   rho_k(g) = mean_{|I|=k} max_{j in I} g_j.
- pass@k (eq. 3 via Thm 1): the same mean of 1 - prod_{j in I} (1 - f_j) for 0/1 f.
- pass^k: the same mean of prod_{j in I} f_j (all k correct).
- s (eq. 27):        s_i = S(i, k, [n]) = (1/C(n,k)) sum_{|I|=k, i in I} max_{j in I} g_j.
- s^(loo) (eq. 29):  s_i - (1/(n-1)) sum_{j != i} S(j, k, [n] minus {i}), where S on a pool of
                     size m is normalised by C(m, k).
- s^(loo-1) (eq. 33): (1/C(n,k)) sum_{|I|=k, i in I} (max_I g - max_{I minus {i}} g), for k >= 2;
                     for k = 1 the package defines it (DESIGN.md) as (g_i - mean_{j != i} g_j) / n.
- centered (paper.md §1.5 item 4): rho_k(g) - rho_k(g without sample i).
- eq. 8 (binary closed form): r_i = k/n if f_i = 1, else (k/n) rho(n-1, c, k-1).
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np


def subset_mean_max(g, k: int) -> float:
    """rho_k(g): the mean over all size-k subsets of the subset maximum (eq. 15)."""
    subsets = list(itertools.combinations(range(len(g)), k))
    return math.fsum(max(g[j] for j in subset) for subset in subsets) / len(subsets)


def subset_pass_at_k(f, k: int) -> float:
    """pass@k of 0/1 outcomes: mean over size-k subsets of 1 - prod(1 - f_j) (Thm 1)."""
    subsets = list(itertools.combinations(range(len(f)), k))
    return math.fsum(1.0 - math.prod(1.0 - f[j] for j in subset) for subset in subsets) / len(
        subsets
    )


def subset_pass_all_k(f, k: int) -> float:
    """pass^k of 0/1 outcomes: mean over size-k subsets of prod(f_j), "all k are correct"."""
    subsets = list(itertools.combinations(range(len(f)), k))
    return math.fsum(math.prod(f[j] for j in subset) for subset in subsets) / len(subsets)


def subset_credit(g, k: int, pool) -> dict:
    """S(j, k, pool) for every j in ``pool``: (1/C(m,k)) sum over k-subsets of the pool holding j of their max."""
    total = {j: [] for j in pool}
    subsets = list(itertools.combinations(pool, k))
    for subset in subsets:
        top = max(g[j] for j in subset)
        for j in subset:
            total[j].append(top)
    return {j: math.fsum(values) / len(subsets) for j, values in total.items()}


def s_none(g, k: int) -> np.ndarray:
    """s_i = S(i, k, [n])   (eq. 27)."""
    credit = subset_credit(g, k, range(len(g)))
    return np.array([credit[i] for i in range(len(g))])


def s_loo(g, k: int) -> np.ndarray:
    """s_i^(loo) = S(i, k, [n]) - (1/(n-1)) sum_{j != i} S(j, k, [n] minus {i})   (eq. 29)."""
    n = len(g)
    s = s_none(g, k)
    out = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        credit = subset_credit(g, k, others)
        out.append(s[i] - math.fsum(credit.values()) / (n - 1))
    return np.array(out)


def s_loo_minus_one(g, k: int) -> np.ndarray:
    """s_i^(loo-1) = (1/C(n,k)) sum_{|I|=k, i in I} (max_I g - max_{I minus i} g)   (eq. 33).

    k = 1 (the max over the empty set is undefined) follows DESIGN.md: (g_i - mean_{j != i} g_j) / n.
    """
    n = len(g)
    if k == 1:
        return np.array(
            [(g[i] - math.fsum(g[j] for j in range(n) if j != i) / (n - 1)) / n for i in range(n)]
        )
    gains = {i: [] for i in range(n)}
    subsets = list(itertools.combinations(range(n), k))
    for subset in subsets:
        top = max(g[j] for j in subset)
        for i in subset:
            gains[i].append(top - max(g[j] for j in subset if j != i))
    return np.array([math.fsum(gains[i]) / len(subsets) for i in range(n)])


def s_centered(g, k: int) -> np.ndarray:
    """rho_k(g) - rho_k(g without i)   (paper.md §1.5 item 4)."""
    n = len(g)
    full = subset_mean_max(g, k)
    return np.array(
        [full - subset_mean_max([g[j] for j in range(n) if j != i], k) for i in range(n)]
    )


TRANSFORMS = {
    "none": s_none,
    "loo": s_loo,
    "loo_minus_one": s_loo_minus_one,
    "centered": s_centered,
}


def transform(rewards, k: int, baseline: str) -> np.ndarray:
    """Brute-force transform of every group (last axis) of ``rewards``."""
    rewards = np.asarray(rewards, dtype=np.float64)
    rows = rewards.reshape(-1, rewards.shape[-1])
    out = np.array([TRANSFORMS[baseline](list(row), k) for row in rows])
    return out.reshape(rewards.shape)


def maxg_at_k(rewards, k: int) -> np.ndarray:
    rewards = np.asarray(rewards, dtype=np.float64)
    rows = rewards.reshape(-1, rewards.shape[-1])
    return np.array([subset_mean_max(list(row), k) for row in rows]).reshape(rewards.shape[:-1])


def pass_at_k(correct, k: int) -> np.ndarray:
    correct = np.asarray(correct, dtype=np.float64)
    rows = correct.reshape(-1, correct.shape[-1])
    return np.array([subset_pass_at_k(list(row), k) for row in rows]).reshape(correct.shape[:-1])


def pass_all_k(correct, k: int) -> np.ndarray:
    correct = np.asarray(correct, dtype=np.float64)
    rows = correct.reshape(-1, correct.shape[-1])
    return np.array([subset_pass_all_k(list(row), k) for row in rows]).reshape(correct.shape[:-1])


def exact_pass_all_k(n: int, c: int, k: int) -> Fraction:
    """C(c, k) / C(n, k) as an exact rational."""
    return Fraction(math.comb(c, k), math.comb(n, k))


def pass_at_k_from_counts(n: int, c: int, k: int) -> float:
    """pass@k of a group with c correct out of n, by enumerating the subsets of [1]*c + [0]*(n-c)."""
    return subset_pass_at_k([1.0] * c + [0.0] * (n - c), k)


# --- closed forms (not subset enumeration), used as a second, exact reference ---------------


def exact_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """rho(n, c, k) = 1 - C(n-c, k)/C(n, k) as an exact rational (eq. 3)."""
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def binary_closed_form(f, k: int) -> np.ndarray:
    """eq. 8: r_i = k/n if f_i = 1 else (k/n) rho(n-1, c, k-1), with rho(., ., 0) = 0."""
    n, c = len(f), int(sum(f))
    if c == n:
        return np.full(n, k / n)
    wrong = 0.0 if k == 1 else (k / n) * float(exact_pass_at_k(n - 1, c, k - 1))
    return np.array([k / n if fi else wrong for fi in f])


def ulp_distance(a: float, b: float) -> int:
    """How many float64 steps separate a and b (0 for equal values)."""
    ia = np.array(a, dtype=np.float64).view(np.int64).item()
    ib = np.array(b, dtype=np.float64).view(np.int64).item()
    # map the sign-magnitude bit patterns onto a monotone integer line
    ia = ia if ia >= 0 else -(ia & 0x7FFFFFFFFFFFFFFF)
    ib = ib if ib >= 0 else -(ib & 0x7FFFFFFFFFFFFFFF)
    return abs(ia - ib)
