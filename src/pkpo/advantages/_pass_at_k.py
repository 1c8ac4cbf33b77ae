"""Estimators for pass@k / maxg@k: PKPO, TZSM (k = n), Pass@k Training, and MaxRL's PKPO port.

The binary ones are functions of each group's count c of correct samples; their binomial ratios
C(a, b)/C(m, c) come from the math layer's log-factorial table (:mod:`pkpo._combinatorics`,
exactly 0 where C(a, b) = 0 and exactly 1 where the two coefficients coincide).
"""

from __future__ import annotations

from .. import _validation
from .._combinatorics import binomial_ratio
from .._kernel import log_factorials
from .._typing import Array, Baseline, IntLike
from ..transforms import transform
from ._groups import Groups, at_least_one, prepare


def pkpo(
    rewards: Array,
    *,
    k: IntLike,
    baseline: Baseline = "loo_minus_one",
    mask: Array | None = None,
    validate: bool = True,
) -> Array:
    """PKPO: :func:`pkpo.transform` (scale "none"), the paper's transformed rewards.

    - Objective: pass@k (0/1 rewards) or maxg@k = E[max of k rewards] (real rewards).
      arXiv:2505.15201 (Walder & Karkhanis).
    - Formula: ``baseline`` "loo_minus_one" (default, eq. 33), "none" (eqs. 8/19), "loo" (eq. 29)
      or "centered"; see :mod:`pkpo.transforms`.
    - Rewards: any real.
    - Expected update: grad maxg@k exactly, for every baseline (at k = 1 "loo_minus_one" is
      RLOO / n, and maxg@1 = E[r]).
    - n = 1: k = 1 with "none" gives r; "loo_minus_one" at k = 1 needs n >= 2 (ValueError).
      All-equal rewards: 0 for "loo_minus_one" and "centered". Negative rewards: fine.
    """
    return transform(rewards, k, baseline, mask, validate=validate)


def tzsm(rewards: Array, *, mask: Array | None = None, validate: bool = True) -> Array:
    """TZSM (Tang et al.), verl's ``grpo_passk`` without std: the best sample gets r_max - r_2nd.

    - Objective: maxg@n (pass@n for 0/1 rewards), k = n. arXiv:2503.19595.
    - Formula: A_i = max(r) - (second largest r) for the sample holding the maximum, 0 for all
      others. Ties at the top: r_2nd = r_max, so every sample gets 0 (verl's topk gives the same).
    - Rewards: any real.
    - Expected update: grad maxg@n exactly (it is ``pkpo`` with "loo_minus_one" at k = n).
    - n = 1: ValueError (no second sample); with validate=False a ragged singleton gets 0.
      All-equal rewards: 0. Negative rewards: fine (shift-invariant).
    """
    g = prepare(
        rewards,
        mask,
        validate=validate,
        method="tzsm",
        min_n=2,
        why="it needs a second-best sample",
    )
    xp = g.xp
    top = g.largest(g.x)
    is_top = g.x == top
    if g.mask is not None:
        is_top = is_top & g.mask
    several = g.total(g.backend.astype(is_top, g.x.dtype)) > 1
    runner_up = g.largest(xp.where(is_top, -xp.inf, g.x))
    gain = top - xp.where(several, top, runner_up)
    if not isinstance(g.n, float):
        gain = xp.where(g.n >= 2, gain, 0.0)
    return g.finish(xp.where(is_top, gain, 0.0), "tzsm")


def passk_training(
    rewards: Array, *, k: IntLike, mask: Array | None = None, validate: bool = True
) -> Array:
    """Pass@k Training: the analytic group advantage of Chen et al., std-normalised.

    - Objective: pass@k. arXiv:2508.10751; code RUCAIBox/Passk_Training ``code/passk_adv.py``.
    - Formula: with c correct out of n, rho = 1 - C(n-c, k)/C(n, k) (the group's pass@k estimate)
      and sigma = sqrt(rho (1 - rho)):
      correct: (1 - rho)/(sigma + eps); wrong: (1 - rho - C(n-c-1, k-1)/C(n-1, k-1))/(sigma + eps),
      with eps = 1e-6 as in the authors' code. Without the division, A_i = (n/k) s_i - rho with s_i
      PKPO's s (eq. 8): the mean pass@k of the k-subsets holding i, minus the group's.
    - Rewards: binary only (0/1 or bool).
    - Expected update: biased. Without the sigma division it would be (n/k - 1) grad pass@k
      exactly (rho is unbiased for pass@k but depends on sample i); at k = n every advantage is 0.
      The division by sigma (a statistic of the same group) adds a bias that depends on p:
      docs/advantages.md gives E against grad pass@k by enumeration.
    - n = 1 (so k = 1): 0. All-equal rewards: 0 (rho is 0 or 1). Negative rewards: refused.
    """
    k = _validation.check_k(k)
    g = prepare(
        rewards,
        mask,
        validate=validate,
        method="passk_training",
        binary=True,
        min_n=k,
        why=f"k={k} <= n",
        k=k,
    )
    xp = g.xp

    def per_count(ratio, n, c):
        # c = 0 is set apart: there 1 - rho - all_fail is 1 - 0 - 1, and a rounding error in a
        # compiled graph would be multiplied by 1/eps = 1e6
        some = c > 0
        rho = xp.where(some, 1.0 - ratio(n - c, k, n, k), 0.0)
        all_fail = ratio(n - c - 1, k - 1, n - 1, k - 1)  # P(a wrong sample's k-1 companions fail)
        variance = rho * (1.0 - rho)
        divisor = xp.sqrt(xp.where(variance > 0, variance, 0.0)) + 1e-6
        return (1.0 - rho) / divisor, xp.where(some, 1.0 - rho - all_fail, 0.0) / divisor

    per_correct, per_wrong = (_where_defined(g, v, k) for v in _by_count(g, per_count))
    return g.from_counts(per_correct, per_wrong, "passk_training")


def pkpo_two_baselines(
    rewards: Array, *, k: IntLike, mask: Array | None = None, validate: bool = True
) -> Array:
    """MaxRL repository's PKPO port: s^(loo-1), then a second leave-one-out mean. BIASED.

    Kept for ablations: the maze benchmark of arXiv:2602.02710 reports PKPO numbers from this
    variant (tajwarfahim/maxrl, ``compute_pkpo_outcome_advantage``). Use ``pkpo`` otherwise.

    - Objective (intended): pass@k. arXiv:2505.15201 as ported in arXiv:2602.02710.
    - Formula: v_i = r_i C(n-c, k-1)/C(n-1, k-1) (= (n/k) s^(loo-1)_i for 0/1 rewards), then
      (n v_i - sum_j v_j)/(n - 1) (left as v_i when n = 1), as in the repository. pkpo returns it
      times k/n, on the paper's scale like ``pkpo``: A_i = s_i - mean_{j != i} s_j. With
      scale "n_over_k" you get the repository's values exactly.
    - Rewards: binary only (0/1 or bool; the repository rounds the rewards instead).
    - Expected update: biased, because the second baseline depends on sample i through c. Exactly
      ((n - k)/(n - 1)) grad pass@k + (k/(n - 1)) grad pass@(k-1) (pass@0 = 0): a mix of the
      pass@k and pass@(k-1) gradients. At n = 4, k = 2, p = 0.3 (Bernoulli bandit, logit
      parameter) that is 0.336 against grad pass@2 = 0.294. At k = 1 it is RLOO / n, unbiased for
      grad pass@1.
    - n = 1 (so k = 1): r. All-equal rewards: 0. Negative rewards: refused (binary only).
    """
    k = _validation.check_k(k)
    g = prepare(
        rewards,
        mask,
        validate=validate,
        method="pkpo_two_baselines",
        binary=True,
        min_n=k,
        why=f"k={k} <= n",
        k=k,
    )
    xp = g.xp

    def per_count(ratio, n, c):
        credit = ratio(n - c, k - 1, n - 1, k - 1)  # v of a correct sample; a wrong one has v = 0
        n, c = (g.backend.astype(v, credit.dtype) for v in (n, c))
        total = c * credit  # sum_j v_j
        several = n > 1  # n = 1: the repository keeps v
        divisor = at_least_one(xp, n - 1.0)
        per_correct = xp.where(several, (n * credit - total) / divisor, credit)
        per_wrong = xp.where(several, -total / divisor, 0.0)
        return per_correct * (k / n), per_wrong * (k / n)  # on the paper's scale

    per_correct, per_wrong = (_where_defined(g, v, k) for v in _by_count(g, per_count))
    return g.from_counts(per_correct, per_wrong, "pkpo_two_baselines")


def _by_count(g: Groups, formula):
    """``formula(ratio, n, c)`` for each group's size n and count c of correct samples: a tuple
    of (..., 1) arrays. ``ratio(a, b, m, d) = C(a, b)/C(m, d)`` on integer arrays.

    Dense groups have only n + 1 possible counts: the formula runs on those, and every group
    looks its values up. Ragged groups evaluate it on their own (n, c).
    """
    backend, xp = g.backend, g.xp
    size = backend.shape(g.x)[-1]
    lf = log_factorials(backend, size + 1, g.x)
    int_dtype = g.int_dtype()
    c = backend.astype(xp.round(g.total(g.x)), int_dtype)

    def ratio(a, b, m, d):
        return binomial_ratio(xp, lf, a, xp.zeros_like(a) + b, m, xp.zeros_like(m) + d)

    if not isinstance(g.n, float):
        return formula(ratio, backend.astype(g.n, int_dtype), c)
    counts = backend.astype(xp.arange(size + 1, device=backend.device(g.x)), int_dtype)
    return tuple(values[c] for values in formula(ratio, xp.zeros_like(counts) + size, counts))


def _where_defined(g: Groups, advantages, k: int):
    """0 for ragged groups smaller than k (reachable only with validate=False)."""
    if isinstance(g.n, float):
        return advantages
    return g.xp.where(g.n >= k, advantages, 0.0)
