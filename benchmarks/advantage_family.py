"""The estimators of pkpo.advantages side by side: the table and the figure of docs/advantages.md.

    python benchmarks/advantage_family.py                                  # the markdown table
    python benchmarks/advantage_family.py --figures docs/figures/advantages   # also the figure

Everything is exact, for binary rewards on a Bernoulli bandit: n = 16 samples per group, each
correct with probability p = sigmoid(theta), estimators that take k at k = 4. Every estimator is
permutation-equivariant, so a group is fixed by its count c of correct samples: one group per
c = 0..n, weighted by its probability C(n, c) p^c (1 - p)^(n - c), enumerates all 2^n outcomes.

- mean |A| / GRPO: the expected mean |A_i| of a group, divided by GRPO's (the step size a
  GRPO-tuned learning rate sees).
- E / target: E[sum_i A_i d/dtheta log P(y_i)] divided by the gradient of the estimator's
  objective times the constant in the "unbiased for" column (for the biased ones: the reference
  in the "target" column). 1 at every p means unbiased; anything else is the bias.
- The figure (``--figures DIR``): E[update] against p, for every estimator (DIR/expected_update.png,
  with the numbers in DIR/expected_update.json).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from pkpo import advantages

N = 16
K = 4
PS = (0.1, 0.3, 0.7)
BETA = 2.0  # rs_grpo's default
LAM = 0.1  # w_reinforce's default

# name -> (objective, A_i): the words of the table (the numbers come from the code below)
DESCRIPTION = {
    "pkpo": ("pass@k", "s^(loo-1) (eq. 33 of 2505.15201)"),
    "grpo": ("pass@1", "(r_i - mean) / (std + 1e-6)"),
    "dr_grpo": ("pass@1", "r_i - mean"),
    "rloo": ("pass@1", "r_i - mean of the others"),
    "maxrl": ("log pass@1", "(r_i - mean) / mean; 0 if mean = 0"),
    "tailrl": ("∫ log P(r > τ) dτ", "sorted gaps / survivors, centred"),
    "rs_grpo": ("log E[e^{βr}] / β", "(e^{βr_i} / mean e^{βr} - 1) / β, β = 2"),
    "w_reinforce": ("pass@1", "λ = 0.1 if correct, -1 if wrong"),
    "tzsm": ("pass@n", "r_max - r_2nd for the best, else 0"),
    "passk_training": ("pass@k", "analytic, / (sqrt(ρ(1-ρ)) + 1e-6)"),
    "pkpo_two_baselines": ("pass@k", "s^(loo-1) minus the mean of the others' s"),
}


def pass_gradient(p, j: int):
    """d/dtheta pass@j = j (1 - p)^(j-1) p (1 - p) for p = sigmoid(theta); 0 for j = 0."""
    return j * (1 - p) ** (j - 1) * p * (1 - p) if j > 0 else 0.0 * p


def risk_gradient(p):
    """d/dtheta (1/beta) log(1 - p + p e^beta), RS-GRPO's objective on 0/1 rewards."""
    return (math.exp(BETA) - 1) * p * (1 - p) / (BETA * (1 - p + p * math.exp(BETA)))


def likelihood_gradient(p):
    """d/dtheta sum_{j<n} pass@j / j (maxg@j = pass@j on 0/1 rewards)."""
    return sum(pass_gradient(p, j) / j for j in range(1, N))


# name -> (label, target(p)): what the expected update is compared with
TARGETS = {
    "pkpo": ("∇pass@k", lambda p: pass_gradient(p, K)),
    "grpo": ("n ∇pass@1", lambda p: N * pass_gradient(p, 1)),
    "dr_grpo": ("(n-1) ∇pass@1", lambda p: (N - 1) * pass_gradient(p, 1)),
    "rloo": ("n ∇pass@1", lambda p: N * pass_gradient(p, 1)),
    "maxrl": ("n ∇Σ_{j<n} pass@j / j", lambda p: N * likelihood_gradient(p)),
    "tailrl": ("n ∇Σ_{j<n} maxg@j / j", lambda p: N * likelihood_gradient(p)),
    "rs_grpo": ("n ∇log E[e^{βr}] / β", lambda p: N * risk_gradient(p)),
    "w_reinforce": ("n (1+λ) ∇pass@1", lambda p: N * (1 + LAM) * pass_gradient(p, 1)),
    "tzsm": ("∇pass@n", lambda p: pass_gradient(p, N)),
    "passk_training": ("(n/k - 1) ∇pass@k", lambda p: (N / K - 1) * pass_gradient(p, K)),
    "pkpo_two_baselines": ("∇pass@k", lambda p: pass_gradient(p, K)),
}


def params_for(name: str) -> dict:
    return {"k": K} if advantages.spec(name).takes_k else {}


def count_groups(n: int = N) -> np.ndarray:
    """The n + 1 binary groups up to order: row c holds c ones then n - c zeros."""
    return (np.arange(n)[None, :] < np.arange(n + 1)[:, None]).astype(np.float64)


def count_probabilities(p, n: int = N) -> np.ndarray:
    """P(c correct of n) for each p: shape (len(p), n + 1)."""
    p = np.atleast_1d(np.asarray(p, dtype=np.float64))[:, None]
    c = np.arange(n + 1)[None, :]
    comb = np.array([math.comb(n, j) for j in range(n + 1)], dtype=np.float64)
    return comb * p**c * (1 - p) ** (n - c)


def expected_update(name: str, p) -> np.ndarray:
    """E[sum_i A_i d/dtheta log P(y_i)] at each p, exactly (d/dtheta log P(y) = y - p)."""
    groups = count_groups()
    a = advantages.compute(name, groups, **params_for(name))
    p = np.atleast_1d(np.asarray(p, dtype=np.float64))
    per_count = (a[None, :, :] * (groups[None] - p[:, None, None])).sum(-1)  # (p, c)
    return (count_probabilities(p) * per_count).sum(-1)


def mean_abs(name: str, p: float) -> float:
    a = advantages.compute(name, count_groups(), **params_for(name))
    return float(count_probabilities(p)[0] @ np.abs(a).mean(-1))


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def table() -> str:
    """The markdown table of docs/advantages.md."""
    header = ["name", "objective", "A_i", "rewards", "unbiased for (E[Σ A_i ∇log π])", "target"]
    header += [f"mean abs A / GRPO, p = {p}" for p in PS] + [f"E / target, p = {p}" for p in PS]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 6 + ["---:"] * 6) + "|"]
    grpo = [mean_abs("grpo", p) for p in PS]
    for name in advantages.names():
        spec = advantages.spec(name)
        label, target = TARGETS[name]
        objective, formula = DESCRIPTION[name]
        shown = f"`{name}`" + (f" (k = {K})" if spec.takes_k else "")
        rewards = "0/1" if spec.rewards == "binary" else "any"
        cells = [shown, objective, formula, rewards, spec.unbiased_for, label]
        cells += [_fmt(mean_abs(name, p) / g) for p, g in zip(PS, grpo)]
        cells += [_fmt(float(expected_update(name, p)[0] / target(p))) for p in PS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_figure(folder: Path) -> list[Path]:
    """E[update] against p for every estimator (log scale, and each divided by its maximum)."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    p = np.linspace(0.005, 0.995, 199)
    curves = {name: expected_update(name, p) for name in advantages.names()}
    folder.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    colours = plt.get_cmap("tab20").colors
    for index, (name, values) in enumerate(curves.items()):
        style = "--" if name in ("pkpo_two_baselines", "tailrl") else "-"
        shown = name + (f" (k={K})" if advantages.spec(name).takes_k else "")
        colour = colours[(2 * index) % 20 + (2 * index) // 20]
        left.plot(p, np.abs(values), style, color=colour, label=shown)
        right.plot(p, values / np.abs(values).max(), style, color=colour, label=shown)
    left.set_yscale("log")
    left.set_ylim(1e-4, 2 * max(np.abs(v).max() for v in curves.values()))
    left.set_ylabel("|E[Σ_i A_i d/dθ log P(y_i)]|")
    right.set_ylabel("E[update] / its maximum over p")
    for axes in (left, right):
        axes.set_xlabel("p = P(correct)")
        axes.grid(alpha=0.3)
    right.legend(fontsize=7, ncol=2)
    fig.suptitle(f"Exact expected update on a Bernoulli bandit, n = {N} (enumerated, not sampled)")
    fig.tight_layout()
    png = folder / "expected_update.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    data = {
        "n": N,
        "k": K,
        "p": p.tolist(),
        "expected_update": {name: values.tolist() for name, values in curves.items()},
    }
    json_path = folder / "expected_update.json"
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    return [png, json_path]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figures", type=Path, help="also write the figure into this folder")
    args = parser.parse_args(argv)
    print(table())
    if args.figures is not None:
        for path in write_figure(args.figures):
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
