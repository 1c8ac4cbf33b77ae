"""Figure 4: the variance of estimators of d maxg@k / d theta for the toy policy.

The paper's setup (Walder & Karkhanis, arXiv:2505.15201, Appendix C, Figure 4): k = 4, the policy
at theta = 1, each point the sample variance of 10,000 independent gradient estimates, the group
size n on the x axis. Each estimate here uses its own fresh group of n samples; every
estimator is applied to the same draws (common random numbers), which does not change any
single estimator's variance but makes the comparison paired. The sample mean and its standard
error are kept too, so unbiasedness is visible against the exact derivative.
"""

from __future__ import annotations

import numpy as np

from .estimators import ESTIMATORS, gradient_estimates, is_defined
from .landscape import SIGMA, maxg_at_k_gradient_exact

__all__ = ["variance_at_n"]


def variance_at_n(
    n: int, k: int, theta: float, estimates: int, rng: np.random.Generator, estimators=ESTIMATORS
) -> dict:
    """Sample variance, mean and standard error of every estimator defined at (n, k).

    Returns ``{estimator: {"variance", "mean", "standard_error"}}`` plus ``"exact"``, the exact
    derivative (estimators that are undefined at this n, e.g. s^(loo) at n = k, are left out).
    """
    if estimates < 2:
        raise ValueError(f"need at least 2 estimates for a variance; got {estimates}.")
    x = theta + SIGMA * rng.standard_normal((estimates, n))  # (estimates, n)
    out = {"exact": float(maxg_at_k_gradient_exact(theta, k))}
    for name in estimators:
        if not is_defined(name, n, k):
            continue
        grads = gradient_estimates(name, x, np.full(estimates, theta), k)
        variance = float(np.var(grads, ddof=1))
        out[name] = {
            "variance": variance,
            "mean": float(np.mean(grads)),
            "standard_error": float(np.sqrt(variance / estimates)),
        }
    return out
