"""Estimators for the mean reward: GRPO, Dr. GRPO, RLOO, and the reweightings RS-GRPO, W-REINFORCE.

Every "expected update" below is E[sum_i A_i grad log pi(y_i)] for n i.i.d. samples of one prompt
(sequence-level REINFORCE), checked by exact enumeration in tests/test_advantages.py.
"""

from __future__ import annotations

from .._typing import Array
from ._groups import at_least_one, check_real, prepare


def grpo(
    rewards: Array, *, mask: Array | None = None, eps: float = 1e-6, validate: bool = True
) -> Array:
    """GRPO: each reward's z-score in its group, A_i = (r_i - mean(r)) / (std(r) + eps).

    - Objective: the mean reward E[r] (pass@1 for 0/1 rewards). arXiv:2402.03300 (DeepSeekMath).
    - Formula: std with Bessel's correction, sqrt(sum_j (r_j - mean)^2 / (n - 1)), and
      eps = 1e-6, as verl's ``grpo`` (TRL's default differs only in eps, 1e-4).
    - Rewards: any real.
    - Expected update: biased for every fixed multiple of grad E[r]; the division by a statistic of
      the same group reweights groups by 1/std. For 0/1 rewards it is g_n(p) grad p with g_n
      depending on p for n >= 4 (docs/advantages.md gives it against grad E[r] by enumeration);
      at n = 2 and 3 every group with signal has the same std, and it is a constant times RLOO.
    - n = 1: 0 (r - mean = 0). verl instead sets mean 0 and std 1 for a singleton (A = r/(1+eps));
      TRL refuses groups of one.
    - All-equal rewards: 0. Negative rewards: fine (shift- and scale-invariant up to eps).
    """
    eps = check_real("eps", eps, positive=True)
    g = prepare(rewards, mask, validate=validate, method="grpo")
    xp = g.xp
    centred = g.x - g.mean(g.x)
    variance = g.total(centred * centred) / at_least_one(xp, g.n - 1.0)  # Bessel's correction
    return g.finish(centred / (xp.sqrt(variance) + eps), "grpo")


def dr_grpo(rewards: Array, *, mask: Array | None = None, validate: bool = True) -> Array:
    """Dr. GRPO: the group-mean-centred reward, A_i = r_i - mean(r).

    - Objective: E[r] (pass@1 for 0/1 rewards). arXiv:2503.20783 ("Understanding R1-Zero-Like
      Training", GRPO without the std division).
    - Rewards: any real.
    - Expected update: (n - 1) grad E[r], exactly: A_i = (1 - 1/n) r_i - (1/n) sum_{j != i} r_j,
      and the second term does not depend on sample i. ``rloo`` is n/(n-1) times this.
    - n = 1: 0 (no signal). All-equal rewards: 0. Negative rewards: fine (shift-invariant).
    """
    g = prepare(rewards, mask, validate=validate, method="dr_grpo")
    return g.finish(g.x - g.mean(g.x), "dr_grpo")


def rloo(rewards: Array, *, mask: Array | None = None, validate: bool = True) -> Array:
    """RLOO: each reward minus the mean of the others, A_i = r_i - mean_{j != i} r_j.

    - Objective: E[r] (pass@1 for 0/1 rewards). Kool et al. 2019 (REINFORCE leave-one-out);
      arXiv:2402.14740 (Ahmadian et al., RLOO for LLMs).
    - Formula: (n r_i - sum_j r_j) / (n - 1).
    - Rewards: any real.
    - Expected update: n grad E[r], exactly (the baseline does not depend on sample i). Equals
      ``pkpo`` at k = 1 with scale "n_over_k".
    - n = 1: ValueError (the mean of no other sample); with validate=False a ragged singleton
      gets 0. All-equal rewards: 0. Negative rewards: fine (shift-invariant).
    """
    g = prepare(
        rewards,
        mask,
        validate=validate,
        method="rloo",
        min_n=2,
        why="leave-one-out needs another sample",
    )
    xp = g.xp
    n = g.n
    advantages = (n * g.x - g.total(g.x)) / at_least_one(xp, n - 1.0)
    if not isinstance(n, float):
        advantages = xp.where(n >= 2, advantages, 0.0)
    return g.finish(advantages, "rloo")


def rs_grpo(
    rewards: Array, *, mask: Array | None = None, beta: float = 2.0, validate: bool = True
) -> Array:
    """RS-GRPO (risk-seeking): A_i = (1/beta) (e^{beta r_i} / mean_j e^{beta r_j} - 1).

    - Objective: J_beta = (1/beta) log E[e^{beta r}], which moves from E[r] (beta -> 0) towards
      max r (beta -> inf). arXiv:2509.24261 (Jiang et al., risk-sensitive RL); beta = 2 recommended.
    - Formula: computed as (1/beta)(exp(beta r_i - beta m) / mean_j exp(beta r_j - beta m) - 1)
      with m the group's max (min for beta < 0), so nothing overflows: the exponents are <= 0.
      The authors' code uses the same logsumexp form.
    - Rewards: any real (beta sets their scale). beta must be a finite nonzero real; beta -> 0 is
      ``dr_grpo``.
    - Expected update: biased (a self-normalised ratio); as n grows, E / n tends to grad J_beta.
      docs/advantages.md gives the finite-n ratio by enumeration.
    - n = 1: 0. The authors' verl code instead returns (e^{beta r} - 1)/beta for a singleton.
    - All-equal rewards: 0. Negative rewards: fine (shift-invariant).
    """
    beta = check_real("beta", beta, nonzero=True)
    g = prepare(rewards, mask, validate=validate, method="rs_grpo")
    xp = g.xp
    z = beta * g.x
    top = g.largest(z)
    top = xp.where(xp.isfinite(top), top, 0.0)  # an empty ragged group (validate=False)
    weights = xp.exp(z - top)
    if g.mask is not None:
        weights = xp.where(g.mask, weights, 0.0)
    advantages = (weights / g.mean(weights) - 1.0) / beta
    return g.finish(advantages, "rs_grpo")


def w_reinforce(
    rewards: Array, *, mask: Array | None = None, lam: float = 0.1, validate: bool = True
) -> Array:
    """W-REINFORCE: A_i = lam for a correct sample, -1 for a wrong one (no group baseline).

    - Objective: E[r] = pass@1, with positive samples down-weighted. arXiv:2506.01347 (Zhu et
      al., "The Surprising Effectiveness of Negative Reinforcement"); lam = 0.1 there. The
      authors' code: ``advantage="weighted"``, ``positive_advantage_weight``.
    - Rewards: binary only (0/1 or bool).
    - Expected update: n (1 + lam) grad pass@1, exactly (A_i = (1 + lam) r_i - 1, and the constant
      -1 has zero mean): in expectation the same direction as RLOO; the down-weighting changes the
      variance and the per-step sizes, not the expected direction.
    - n = 1: lam or -1 (nothing depends on the group). All-equal rewards: all lam or all -1 (no
      baseline). Negative rewards: refused (binary only).
    """
    lam = check_real("lam", lam, nonnegative=True)
    g = prepare(rewards, mask, validate=validate, method="w_reinforce", binary=True)
    return g.from_counts(lam, -1.0, "w_reinforce")
