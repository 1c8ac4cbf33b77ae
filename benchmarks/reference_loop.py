"""The paper's algorithm as a plain-Python loop, one group at a time: the reference that
benchmarks/transform.py times ``pkpo.transform`` against.

This is what a user would write by hand from Listing 1 and Theorems 5-7 of Walder & Karkhanis
(arXiv:2505.15201 v4): sort each group, then two O(n) recursions in Python floats. The rank weights
come either from ``math.comb`` (Listing 1's way, O(n k) big-integer work per group) or from O(1)
ratio recurrences (Theorem 5); both are deliberately independent of pkpo's own weights.
tests/commands/test_bench.py checks that both loops give ``pkpo.transform``'s numbers.
"""

from __future__ import annotations

import math
import time

import numpy as np


def comb_weights(n: int, k: int) -> tuple[list, list]:
    """w_i = C(i-1,k-1)/C(n,k) for ranks 1..n and v_j = C(j-1,k-2)/C(n-1,k-1) for ranks 1..n-1,
    each from math.comb (exact integers, one float64 division): Listing 1's way, one binomial
    per rank and so O(n k) big-integer work per group."""
    total = math.comb(n, k)
    w = [math.comb(i, k - 1) / total for i in range(n)]
    total = math.comb(n - 1, k - 1)
    v = [math.comb(j, k - 2) / total for j in range(n - 1)] if k >= 2 else []
    return w, v


def ratio_weights(n: int, k: int) -> tuple[list, list]:
    """The same weights by O(1) ratio recurrences from the top rank down (Theorem 5):
    w_n = k/n, w_(i-1) = w_i (i-k)/(i-1); v_(n-1) = (k-1)/(n-1), v_(j-1) = v_j (j-k+1)/(j-1)."""
    w = [0.0] * n
    w[n - 1] = k / n
    for i in range(n - 1, k - 1, -1):  # 0-based: w[i-1] = w[i] (i-k+1)/i
        w[i - 1] = w[i] * (i - k + 1) / i
    v = [0.0] * (n - 1)
    if k >= 2:
        v[n - 2] = (k - 1) / (n - 1)
        for j in range(n - 2, k - 2, -1):
            v[j - 1] = v[j] * (j - k + 2) / j
    return w, v


def loop_group(values: list, k: int, weights=comb_weights) -> list:
    """s^(loo-1) of one group (paper eq. 33) in plain Python floats, the paper's O(n) recursions.

    Theorem 5 and eq. 49 of the paper (arXiv:2505.15201 v4): sort once; s by the right-to-left
    recursion, s_(i) = s_(i+1) + w_i (g_(i) - g_(i+1)) with w_i = C(i-1,k-1)/C(n,k) and s_(n) = w_n
    g_(n); the baseline (k/n) rho_{k-1}(g without i) by the left-to-right recursion of eqs. 31-32
    (corrected form): R_1 = rho_{k-1}(g_(2..n)), R_(i+1) = R_i + v_i (g_(i) - g_(i+1)) with
    v_i = C(i-1,k-2)/C(n-1,k-1). k = 1 is leave-one-out centring divided by n.
    """
    n = len(values)
    order = sorted(range(n), key=values.__getitem__)
    g = [values[j] for j in order]
    out = [0.0] * n
    if k == 1:
        total = math.fsum(g)
        for rank, j in enumerate(order):
            out[j] = (g[rank] - (total - g[rank]) / (n - 1)) / n
        return out
    w, v = weights(n, k)  # 0-based ranks
    s = [0.0] * n
    s[n - 1] = w[n - 1] * g[n - 1]
    for i in range(n - 2, -1, -1):
        s[i] = s[i + 1] + w[i] * (g[i] - g[i + 1])
    rest = 0.0  # R_1 = rho_{k-1}(g_(2..n)) = sum_j v_j g_(j+1)
    for j in range(k - 2, n - 1):
        rest += v[j] * g[j + 1]
    scale = k / n
    for i in range(n):
        out[order[i]] = s[i] - scale * rest
        if i < n - 1:
            rest += v[i] * (g[i] - g[i + 1])
    return out


def time_loop(rewards: np.ndarray, k: int, weights, budget: float) -> dict:
    """Run :func:`loop_group` group by group until ``budget`` seconds are spent (at least one
    group); return the time scaled to all groups, how many were timed, and the results."""
    rows = rewards.tolist()
    results = []
    start = time.perf_counter()
    for row in rows:
        results.append(loop_group(row, k, weights))
        if time.perf_counter() - start >= budget:
            break
    elapsed = time.perf_counter() - start
    return {
        "seconds": elapsed * len(rows) / len(results),
        "timed": len(results),
        "out": np.array(results),
    }
