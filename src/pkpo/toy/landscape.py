"""The toy objective of the paper, computed exactly: maxg@k(theta) and its derivative by quadrature.

Setup (Walder & Karkhanis, arXiv:2505.15201, Sec. 5.1, eq. 35): the policy is a 1-D Gaussian
x ~ N(theta, sigma^2) with standard deviation sigma = 0.1 and mean theta as its only parameter;
the reward is g(x) = x^2 on [0, 1] and 0 elsewhere, so there is a cliff just above x = 1.
The objective is maxg@k(theta) = E[max(g(x_1), ..., g(x_k))]   (eq. 11).

Because g >= 0, maxg@k = integral_0^1 (1 - F_g(v)^k) dv with F_g the CDF of g(x). For v in
[0, 1), g(x) <= v unless sqrt(v) < x <= 1, so with v = u^2 (dv = 2u du)

    F(u)     = 1 - Phi((1 - theta)/sigma) + Phi((u - theta)/sigma)
    maxg@k   = integral_0^1 2u (1 - F(u)^k) du
    d/dtheta = integral_0^1 2u k F(u)^(k-1) (phi((u - theta)/sigma) - phi((1 - theta)/sigma)) /
    sigma du

Both integrands are smooth in u, so Gauss-Legendre quadrature on [0, 1] is accurate to ~1e-15
with a few hundred nodes. The derivative is differentiated under the integral sign (analytic),
not by finite differences.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import optimize, special

SIGMA = 0.1  # standard deviation of the policy (Sec. 5.1: "N(theta, sigma = 0.1)")
QUADRATURE_NODES = 400

__all__ = [
    "SIGMA",
    "reward",
    "score",
    "maxg_at_k_exact",
    "maxg_at_k_gradient_exact",
    "theta_star",
]


def reward(x):
    """g(x) = x^2 for 0 <= x <= 1, else 0   (eq. 35)."""
    x = np.asarray(x, dtype=float)
    return np.where((x >= 0.0) & (x <= 1.0), x * x, 0.0)


def score(x, theta, sigma: float = SIGMA):
    """d log N(x | theta, sigma^2) / d theta = (x - theta) / sigma^2: the REINFORCE score."""
    return (np.asarray(x, dtype=float) - theta) / sigma**2


@functools.lru_cache(maxsize=8)
def _gauss_legendre_unit(nodes: int):
    """Nodes and weights of Gauss-Legendre quadrature on [0, 1] (computed once per size)."""
    u, w = np.polynomial.legendre.leggauss(nodes)
    u, w = 0.5 * (u + 1.0), 0.5 * w
    u.setflags(write=False)
    w.setflags(write=False)
    return u, w


def _reward_cdf(u, theta, sigma):
    """F(u) = P(g(x) <= u^2) for u in [0, 1): mass below 0, above 1, and in [0, u]."""
    return 1.0 - special.ndtr((1.0 - theta) / sigma) + special.ndtr((u - theta) / sigma)


def _check_k(k) -> np.ndarray:
    k = np.asarray(k)
    if k.dtype == np.bool_ or not np.issubdtype(k.dtype, np.integer) or np.any(k < 1):
        raise ValueError(f"k must be a positive integer (or an array of them); got {k.tolist()!r}.")
    return k


def maxg_at_k_exact(theta, k, sigma: float = SIGMA, nodes: int = QUADRATURE_NODES):
    """maxg@k(theta) = E[max_{i<=k} g(x_i)], x_i ~ N(theta, sigma^2) i.i.d.   (eq. 11, exact).

    Args:
        theta: scalar or array of policy means.
        k: positive int, or an int array that broadcasts against ``theta``.
        sigma: policy standard deviation (0.1 in the paper).
        nodes: Gauss-Legendre nodes on [0, 1].

    Returns:
        float64 array of the broadcast shape of ``theta`` and ``k``.

    Examples:
        >>> round(float(maxg_at_k_exact(1.0, 4)), 5)
        0.84695
    """
    k = _check_k(k)
    theta, k = np.broadcast_arrays(np.asarray(theta, dtype=float), k)
    u, w = _gauss_legendre_unit(nodes)
    cdf = _reward_cdf(u, theta[..., None], sigma)
    return np.sum(w * 2.0 * u * (1.0 - cdf ** k[..., None]), axis=-1)


def maxg_at_k_gradient_exact(theta, k, sigma: float = SIGMA, nodes: int = QUADRATURE_NODES):
    """d maxg@k / d theta, differentiating the quadrature of :func:`maxg_at_k_exact` analytically.

    d F(u)/d theta = (phi((1 - theta)/sigma) - phi((u - theta)/sigma)) / sigma, so
    d maxg@k / d theta = -integral_0^1 2u k F^(k-1) dF/dtheta du.
    """
    k = _check_k(k)
    theta, k = np.broadcast_arrays(np.asarray(theta, dtype=float), k)
    u, w = _gauss_legendre_unit(nodes)
    t = theta[..., None]
    cdf = _reward_cdf(u, t, sigma)
    pdf = lambda z: np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)  # noqa: E731
    dcdf = (pdf((1.0 - t) / sigma) - pdf((u - t) / sigma)) / sigma
    kk = k[..., None]
    return -np.sum(w * 2.0 * u * kk * cdf ** (kk - 1) * dcdf, axis=-1)


def theta_star(k, sigma: float = SIGMA, bracket=(0.5, 1.3)) -> float:
    """argmax_theta maxg@k(theta): the root of the exact derivative inside ``bracket``.

    maxg@k rises while mass moves towards 1 and falls once too much of it crosses the cliff,
    so its derivative changes sign exactly once in (0.5, 1.3) for the paper's sigma.
    Brent's method to 1e-12; cached per (k, sigma, bracket).

    Examples:
        >>> [round(theta_star(k), 3) for k in (1, 4, 16)]
        [0.862, 0.939, 0.986]
    """
    k = int(_check_k(k))
    return _theta_star(k, float(sigma), tuple(bracket))


@functools.lru_cache(maxsize=64)
def _theta_star(k: int, sigma: float, bracket: tuple) -> float:
    low, high = bracket
    grad = lambda t: float(maxg_at_k_gradient_exact(t, k, sigma))  # noqa: E731
    if not grad(low) > 0.0 > grad(high):
        raise ValueError(
            f"the derivative of maxg@{k} does not change sign on {bracket}; widen the bracket."
        )
    return float(optimize.brentq(grad, low, high, xtol=1e-12))
