"""Unbiased estimators of d maxg@k / d theta for the toy policy, from n samples x_1..x_n.

Every estimator has the REINFORCE form  sum_i A_i d log p(x_i | theta) / d theta  with the score
(x_i - theta) / sigma^2 of the Gaussian policy; they differ only in the weights A_i given to the
raw rewards g_i = g(x_i) (the "transformed rewards"). Seven are compared in the paper's
Figure 4 (Walder & Karkhanis, arXiv:2505.15201 v4, Sec. 5.1 and Appendix C):

- "s", "s_loo", "s_loo_minus_one": all-subsets estimators (eqs. 19, 29, 33), and "centered",
  rho_k(g) - rho_k(g without i) (not in the paper; see pkpo.transforms). These four come from
  :func:`pkpo.transform` with baseline "none", "loo", "loo_minus_one" and "centered".
- the partitioned estimators, which split the n samples into B = n/k disjoint blocks of size k
  and average one estimate per block:
  "naive_partitioned"           A_i = max(block of i) / B;
  "naive_partitioned_baselined" A_i = (max(block of i) - mean of the other blocks' maxima) / B;
  "loo_minus_one_partitioned"   A_i = (max(block) - max(block without i)) / B, i.e. [TZSM25]
                                (Tang et al. 2025, the n = k case of eq. 33) on each block.

All seven are unbiased; only their variance differs (which is what Figure 4 measures).
"""

from __future__ import annotations

import numpy as np

import pkpo

from .landscape import SIGMA, reward, score

ESTIMATORS = (
    "s",
    "s_loo",
    "s_loo_minus_one",
    "centered",
    "naive_partitioned",
    "naive_partitioned_baselined",
    "loo_minus_one_partitioned",
)

LABELS = {
    "s": "s (all subsets, no baseline)",
    "s_loo": "s^(loo) (all subsets, baselined)",
    "s_loo_minus_one": "s^(loo-1) (PKPO)",
    "centered": "centered rho(g) - rho(g_-i)",
    "naive_partitioned": "naive partitioned",
    "naive_partitioned_baselined": "naive partitioned baselined",
    "loo_minus_one_partitioned": "loo-1 partitioned [TZSM25]",
}

_ALL_SUBSETS_BASELINE = {
    "s": "none",
    "s_loo": "loo",
    "s_loo_minus_one": "loo_minus_one",
    "centered": "centered",
}

__all__ = ["ESTIMATORS", "LABELS", "is_defined", "transformed_rewards", "gradient_estimates"]


def is_defined(name: str, n: int, k: int) -> bool:
    """Whether estimator ``name`` exists for group size n and objective size k.

    s needs n >= k; s^(loo) and centered need n >= k + 1; s^(loo-1) at k = 1 is plain
    leave-one-out (n >= 2). The partitioned ones need k to divide n; the baselined one needs a
    second block (n >= 2k), and loo-1 partitioned needs k >= 2 (max over an empty set).
    """
    _check_name(name)
    if not (1 <= k <= n):
        return False
    if name in _ALL_SUBSETS_BASELINE:
        return n >= pkpo.min_group_size(k, _ALL_SUBSETS_BASELINE[name])
    if n % k:
        return False
    if name == "naive_partitioned_baselined":
        return n >= 2 * k
    if name == "loo_minus_one_partitioned":
        return k >= 2
    return True


def _check_name(name: str) -> None:
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; expected one of {', '.join(ESTIMATORS)}.")


def transformed_rewards(name: str, rewards: np.ndarray, k: int) -> np.ndarray:
    """The weights A_i of estimator ``name`` for rewards of shape (..., n); same shape out."""
    _check_name(name)
    rewards = np.asarray(rewards, dtype=float)
    n = rewards.shape[-1]
    if not is_defined(name, n, k):
        raise ValueError(f"estimator {name!r} is not defined for n={n}, k={k} (see is_defined).")
    if name in _ALL_SUBSETS_BASELINE:
        return pkpo.transform(rewards, k, baseline=_ALL_SUBSETS_BASELINE[name], validate=False)
    blocks = n // k
    grouped = rewards.reshape(rewards.shape[:-1] + (blocks, k))  # (..., B, k)
    if name == "loo_minus_one_partitioned":
        # with n = k, s^(loo-1)_i = max(g) - max(g without i)  (eq. 33, = [TZSM25])
        per_block = pkpo.transform(grouped, k, baseline="loo_minus_one", validate=False)
    else:
        block_max = grouped.max(axis=-1, keepdims=True)  # (..., B, 1)
        per_block = np.broadcast_to(block_max, grouped.shape)
        if name == "naive_partitioned_baselined":
            others = (block_max.sum(axis=-2, keepdims=True) - block_max) / (blocks - 1)
            per_block = per_block - others
    return per_block.reshape(rewards.shape) / blocks


def gradient_estimates(name: str, x: np.ndarray, theta, k: int, sigma: float = SIGMA) -> np.ndarray:
    """sum_i A_i (x_i - theta) / sigma^2 for samples x of shape (..., n): shape (...) out.

    ``theta`` broadcasts against x[..., 0] (one policy mean per group).
    """
    x = np.asarray(x, dtype=float)
    theta = np.asarray(theta, dtype=float)[..., None]
    weights = transformed_rewards(name, reward(x), k)
    return np.sum(weights * score(x, theta, sigma), axis=-1)
