"""Mean |advantage| of GRPO and of pkpo.transform at each scale: the step size a trainer sees.

    python benchmarks/advantage_scale.py    # prints the markdown table of docs/integrations.md

An engine's learning rate is tuned for the size of its advantages. This prints, for binary
rewards (each sample correct with probability p) and for continuous rewards (uniform on [0, 1]),
the expected mean |A| per sample of

- GRPO: (g_i - mean(g)) / (std(g) + 1e-6) per group, std with ddof = 1 (verl's ``grpo``; TRL's
  default differs only in its epsilon, 1e-4);
- ``pkpo.transform(g, k)`` (baseline ``loo_minus_one``, the paper's PKPO) at ``scale="none"``
  (the paper's values), ``"n_over_k"`` (times n/k) and ``"mean_abs"`` (divided by the mean |A|
  of the call). A "mean_abs" call has mean |A| = 1 exactly unless every advantage in it is 0, so
  its expected mean |A| is the chance that a call of 64 groups holds any signal, 1 - q^64 with q
  the chance that one group's advantages are all 0.

Binary rows are exact: an expectation over the number of correct samples c ~ Binomial(n, p).
Continuous rows average 2^17 / n groups drawn with a fixed seed (Monte Carlo; the seed makes the
printed table reproducible). The last column is how many times smaller the paper's advantages
are than GRPO's: the factor by which a GRPO-tuned learning rate is cut at ``scale="none"``.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

import pkpo

NS = (8, 16, 64)
PS = (0.1, 0.3, 0.7)
BASELINE = "loo_minus_one"
SCALES = pkpo.SCALES
CONTINUOUS_ROWS = 1 << 17  # rewards per n in the Monte Carlo rows (2^17 / n groups)
CALL_GROUPS = 64  # groups per transform call (one training batch) for "mean_abs"
SEED = 0


def ks_for(n: int) -> list[int]:
    return sorted({k for k in (1, 2, 4, 8, n) if k <= n})


def grpo_advantages(rewards: np.ndarray) -> np.ndarray:
    """GRPO advantages of groups on the last axis: group z-scores (std ddof=1, epsilon 1e-6)."""
    mean = rewards.mean(axis=-1, keepdims=True)
    std = rewards.std(axis=-1, ddof=1, keepdims=True)
    return (rewards - mean) / (std + 1e-6)


def _binary_groups(n: int) -> np.ndarray:
    """The n + 1 distinct binary groups up to order: row c holds c ones, shape (n + 1, n)."""
    return (np.arange(n)[None, :] < np.arange(n + 1)[:, None]).astype(np.float64)


def _binomial_pmf(n: int, p: float) -> np.ndarray:
    return np.array([math.comb(n, c) * p**c * (1 - p) ** (n - c) for c in range(n + 1)])


def _mean_abs_rows(advantages: np.ndarray) -> np.ndarray:
    return np.abs(advantages).mean(axis=-1)


def _row_values(groups: np.ndarray, weights: np.ndarray, k: int) -> dict:
    """Expected mean |A| at each scale over ``groups`` drawn with probabilities ``weights``."""
    values = {}
    for scale in ("none", "n_over_k"):
        advantages = pkpo.transform(groups, k, BASELINE, scale=scale)
        values[scale, k] = float(weights @ _mean_abs_rows(advantages))
    q = float(weights @ np.all(advantages == 0, axis=-1))  # chance that a group has no signal
    values["mean_abs", k] = 1.0 - q**CALL_GROUPS
    return values


def binary_row_values(n: int, p: float) -> dict:
    """{"grpo": value, (scale, k): value}: exact expected mean |A| for Bernoulli(p) rewards."""
    groups, weights = _binary_groups(n), _binomial_pmf(n, p)
    values = {"grpo": float(weights @ _mean_abs_rows(grpo_advantages(groups)))}
    for k in ks_for(n):
        values.update(_row_values(groups, weights, k))
    return values


def continuous_row_values(n: int, rng: np.random.Generator) -> dict:
    """Monte Carlo mean |A| for uniform(0, 1) rewards, ``CONTINUOUS_ROWS / n`` groups."""
    rewards = rng.random((CONTINUOUS_ROWS // n, n))
    weights = np.full(rewards.shape[0], 1.0 / rewards.shape[0])
    values = {"grpo": float(np.abs(grpo_advantages(rewards)).mean())}
    for k in ks_for(n):
        values.update(_row_values(rewards, weights, k))
    return values


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def table() -> str:
    """The markdown table: one row per (rewards, n, k)."""
    rng = np.random.default_rng(SEED)
    header = ["rewards", "n", "k", "GRPO", "none", "n_over_k", "mean_abs", "GRPO / none"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * 5) + "|"]
    sources = [
        (f"binary, p = {p}", n, lambda n=n, p=p: binary_row_values(n, p)) for p in PS for n in NS
    ]
    sources += [("uniform(0, 1)", n, lambda n=n: continuous_row_values(n, rng)) for n in NS]
    for label, n, compute in sources:
        values = compute()
        for k in ks_for(n):
            ratio = values["grpo"] / values["none", k] if values["none", k] > 0 else math.inf
            cells = [label, str(n), str(k), _fmt(values["grpo"])]
            cells += [_fmt(values[scale, k]) for scale in SCALES] + [_fmt(ratio)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
