"""Toy policy-gradient ascent on theta: does each estimator drive theta to theta*(k)?

Not in the paper (its toy section, Sec. 5.1 and Appendix C, has no training runs). The loop is plain
stochastic gradient ascent on maxg@k(theta) for the Gaussian policy x ~ N(theta, sigma^2):

    x_1..x_n ~ N(theta_t, sigma^2)                       # one group of n samples per step
    grad_t   = sum_i A_i (x_i - theta_t) / sigma^2       # any unbiased estimator of toy.estimators
    theta_{t+1} = theta_t + lr_t * grad_t,   lr_t = min(lr_max, lr_scale / (|H_k| (t + t0)))

H_k is the exact curvature of maxg@k at theta*(k), so lr_t is the Robbins-Monro 1/t schedule
that converges for every unbiased estimator; all estimators of one k share it, so the number of
samples they need to settle near theta*(k) reflects their variance. The cap lr_max only binds
for the flat k = 16 objective in its first few steps: without it an early noisy step can throw
theta past the cliff (theta > ~1.3), where every reward is 0 and no estimator can bring it back.
Many seeds run at once as a vector of thetas.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .estimators import gradient_estimates, is_defined
from .landscape import SIGMA, maxg_at_k_gradient_exact, theta_star

__all__ = [
    "AscentConfig",
    "curvature_at_optimum",
    "ascend",
    "settle_step",
    "samples_to_converge",
    "median_samples",
]


@dataclass(frozen=True)
class AscentConfig:
    """Settings shared by every toy training run."""

    n: int = 16
    """samples per step (one group)."""
    steps: int = 2000
    """gradient steps per run."""
    seeds: int = 64
    """independent runs, simulated together."""
    theta0: float = 0.5
    """starting policy mean."""
    lr_scale: float = 2.0
    """lr_t = min(lr_max, lr_scale / (|H_k| (t + t0)))."""
    t0: float = 4.0
    """offset of the 1/t schedule: the first step is lr_scale / (|H_k| t0)."""
    lr_max: float = 0.05
    """upper bound on the step size."""
    tolerance: float = 0.01
    """'converged' means |theta - theta*(k)| <= tolerance from some step to the end of the run."""


@functools.lru_cache(maxsize=64)
def curvature_at_optimum(k: int, sigma: float = SIGMA, h: float = 1e-4) -> float:
    """d^2 maxg@k / d theta^2 at theta*(k) (central difference of the exact derivative)."""
    t = theta_star(k, sigma)
    return float(
        (maxg_at_k_gradient_exact(t + h, k, sigma) - maxg_at_k_gradient_exact(t - h, k, sigma))
        / (2 * h)
    )


def ascend(
    estimator: str, ks, config: AscentConfig, rng: np.random.Generator, theta_init=None
) -> np.ndarray:
    """Run stochastic gradient ascent; returns theta of shape (steps + 1, seeds).

    Args:
        estimator: a name from :data:`pkpo.toy.estimators.ESTIMATORS`.
        ks: the k of every step, a sequence of length ``config.steps`` (a constant k, or an
            annealing schedule). The 1/t schedule restarts whenever k changes.
        config: the shared settings.
        rng: the only source of randomness.
        theta_init: optional starting thetas of shape (seeds,); default ``config.theta0``.
    """
    ks = [int(k) for k in ks]
    if len(ks) != config.steps:
        raise ValueError(f"ks must give one k per step ({config.steps}); got {len(ks)}.")
    for k in sorted(set(ks)):
        if not is_defined(estimator, config.n, k):
            raise ValueError(f"estimator {estimator!r} is not defined for n={config.n}, k={k}.")
    curvature = {k: abs(curvature_at_optimum(k)) for k in set(ks)}
    theta = (
        np.full(config.seeds, config.theta0, dtype=float)
        if theta_init is None
        else np.array(theta_init, float)
    )
    path = np.empty((config.steps + 1, config.seeds))
    path[0] = theta
    since_switch = 0
    for t, k in enumerate(ks):
        if t > 0 and k != ks[t - 1]:
            since_switch = 0
        x = theta[:, None] + SIGMA * rng.standard_normal((config.seeds, config.n))  # (seeds, n)
        grad = gradient_estimates(estimator, x, theta, k)  # (seeds,)
        lr = min(config.lr_max, config.lr_scale / (curvature[k] * (since_switch + config.t0)))
        theta = theta + lr * grad
        path[t + 1] = theta
        since_switch += 1
    return path


def settle_step(path: np.ndarray, target: float, tolerance: float) -> np.ndarray:
    """First step from which |theta - target| <= tolerance until the end, per seed (-1: never).

    ``path`` has shape (steps + 1, seeds); step s means after s gradient steps.
    """
    outside = np.abs(path - target) > tolerance  # (steps + 1, seeds)
    last_outside = np.where(
        outside.any(axis=0), outside.shape[0] - 1 - np.argmax(outside[::-1], axis=0), -1
    )
    settled = last_outside + 1
    return np.where(settled <= outside.shape[0] - 1, settled, -1)


def samples_to_converge(path: np.ndarray, k: int, config: AscentConfig) -> dict:
    """Samples (steps x n) each seed needed to settle within ``tolerance`` of theta*(k).

    Returns per-seed counts (None where a seed never settled), the fraction that settled, and
    the median over all seeds, counting unsettled seeds as infinitely slow (None when more than
    half never settled: the median is then only known to exceed the budget).
    """
    steps = settle_step(path, theta_star(k), config.tolerance)
    return {
        "per_seed": [None if s < 0 else int(s) * config.n for s in steps],
        "fraction_converged": float(np.mean(steps >= 0)),
        "median": median_samples(steps, config.n),
        "budget": config.steps * config.n,
    }


def median_samples(steps: np.ndarray, n: int) -> int | None:
    """The lower median over seeds of their settle steps (:func:`settle_step`), in samples (x n).

    A seed that never settled (-1) counts as infinitely slow, so the lower median is defined as
    long as half the seeds settled; None when more than half never did.
    """
    ordered = sorted(steps, key=lambda s: np.inf if s < 0 else s)
    middle = ordered[(len(ordered) - 1) // 2]
    return None if middle < 0 else int(middle) * n
