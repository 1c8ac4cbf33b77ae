"""Figure 5: what the transforms do to centred rewards, as a binned 1-D summary.

The paper's setup (Walder & Karkhanis, arXiv:2505.15201, Figure 5): n = 32 raw rewards drawn
uniformly from [-1/2, 1/2]; the transformed rewards plotted against the raw reward, averaged
within regular bins. The transform maps R^n to R^n, so this is a summary over many batches: the
value in a bin is the mean transformed reward of all samples whose raw reward fell in it.

The sums of the transformed rewards of a batch are known exactly (summing eqs. 28, 29 and 33 over
i): sum s = k rho_k, sum s^(loo) = -k rho_k / (n-1), sum s^(loo-1) = k (rho_k - rho_{k-1}),
sum centered = 0, which is the vertical offset the figure shows.
"""

from __future__ import annotations

import numpy as np

import pkpo

__all__ = ["binned_transform"]


def binned_transform(
    n: int, k: int, batches: int, bins: int, rng: np.random.Generator, baselines=pkpo.BASELINES
) -> dict:
    """Mean transformed reward per raw-reward bin, for each baseline, over ``batches`` batches.

    Returns ``{"bin_centers": [...], baseline: {"mean": [...], "count": [...],
    "mean_batch_sum": float}}``; empty bins get NaN as their mean (never happens at the sizes used).
    """
    raw = rng.uniform(-0.5, 0.5, size=(batches, n))  # (batches, n)
    edges = np.linspace(-0.5, 0.5, bins + 1)
    which = np.clip(np.digitize(raw, edges) - 1, 0, bins - 1).ravel()
    count = np.bincount(which, minlength=bins)
    out = {"bin_centers": (0.5 * (edges[:-1] + edges[1:])).tolist()}
    for baseline in baselines:
        advantages = pkpo.transform(raw, k, baseline=baseline)
        total = np.bincount(which, weights=advantages.ravel(), minlength=bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / count
        out[baseline] = {
            "mean": mean.tolist(),
            "count": count.tolist(),
            "mean_batch_sum": float(advantages.sum(axis=-1).mean()),
        }
    return out
