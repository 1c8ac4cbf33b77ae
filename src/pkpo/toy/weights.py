"""Figure 2: the rank weights of the unbiased maxg@k estimator.

rho^(g)(n, k) = sum_{i=k}^{n} w_i g_(i) with w_i = C(i-1, k-1) / C(n, k) for the ascending order
statistics g_(1) <= ... <= g_(n)   (Walder & Karkhanis, arXiv:2505.15201, eqs. 12-13). w_i is the
fraction of size-k subsets whose maximum is the sample of rank i: uniform 1/n at k = 1, all
weight on the maximum at k = n, in between otherwise.
"""

from __future__ import annotations

from math import comb

import numpy as np

__all__ = ["rank_weights"]


def rank_weights(n: int, k: int) -> np.ndarray:
    """w_i = C(i-1, k-1) / C(n, k) for ranks i = 1..n (ascending), exact integers then one division.

    Examples:
        >>> rank_weights(4, 2).round(4).tolist()   # C(i-1, 1) / C(4, 2) = (i-1)/6
        [0.0, 0.1667, 0.3333, 0.5]
    """
    if isinstance(n, bool) or isinstance(k, bool) or not (isinstance(n, int) and isinstance(k, int)):
        raise ValueError(f"n and k must be ints; got n={n!r}, k={k!r}.")
    if not 1 <= k <= n:
        raise ValueError(f"rank weights need 1 <= k <= n; got n={n}, k={k}.")
    total = comb(n, k)
    return np.array([comb(i - 1, k - 1) / total for i in range(1, n + 1)])
